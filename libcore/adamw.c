/* adamw.c — AdamW, LR schedules and global-norm clipping (formulas: adamw.h). */
#include "libcore/adamw.h"
#include "libcore/cpu.h"

#include <math.h>
#include <string.h>

LBDPO_KERNEL void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, double lr, double wd,
		  const adamw_hp *hp, long t)
{
	const float b1 = (float)hp->beta1, b2 = (float)hp->beta2;
	const double bc1 = 1.0 - pow(hp->beta1, (double)t), bc2 = 1.0 - pow(hp->beta2, (double)t);
	const float a = (float)(lr / bc1), rb2 = (float)(1.0 / sqrt(bc2)), eps = (float)hp->eps;
	const float decay = (float)(lr * wd);
	/* Element-wise and order-independent: bit-identical for any thread count. */
#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		float g = grad[i];
		float mi = b1 * m[i] + (1 - b1) * g;
		float vi = b2 * v[i] + (1 - b2) * g * g;
		m[i] = mi;
		v[i] = vi;
		float p = param[i];
		param[i] = p - a * mi / (sqrtf(vi) * rb2 + eps) - decay * p;
	}
}

static const char *const sched_names[] = {"constant", "linear", "cosine"};

int sched_parse(const char *s)
{
	for (int k = 0; s && k < 3; k++)
		if (!strcmp(s, sched_names[k]))
			return k;
	return -1;
}

const char *sched_name(sched_kind k) { return (unsigned)k < 3 ? sched_names[k] : "?"; }

double sched_lr(sched_kind k, double lr, long s, long warmup, long total)
{
	if (warmup > 0 && s < warmup)
		return lr * (double)s / (double)warmup;
	if (k == SCHED_CONSTANT || total <= warmup)
		return lr;
	double p = (double)(s - warmup) / (double)(total - warmup);
	if (p > 1)
		p = 1;
	if (p < 0)
		p = 0;
	if (k == SCHED_LINEAR)
		return lr * (1 - p);
	return lr * 0.5 * (1 + cos(M_PI * p));
}

LBDPO_KERNEL double sumsq(const float *g, size_t n)
{
	/* Fixed-order partial sums: the result does not depend on threads. */
	enum { BLK = 4096 };
	size_t nb = (n + BLK - 1) / BLK;
	double tot = 0;
	for (size_t b = 0; b < nb; b++) {
		double s = 0;
		size_t e = (b + 1) * BLK < n ? (b + 1) * BLK : n;
#pragma omp simd reduction(+ : s) /* a fixed order still: lanes, then their sum */
		for (size_t i = b * BLK; i < e; i++)
			s += (double)g[i] * g[i];
		tot += s;
	}
	return tot;
}

LBDPO_KERNEL void scale_inplace(float *g, size_t n, float s)
{
	for (size_t i = 0; i < n; i++)
		g[i] *= s;
}

double clip_factor(double norm, double max_norm)
{
	if (max_norm <= 0 || norm <= max_norm)
		return 1.0;
	return max_norm / (norm + 1e-6);
}
