/* optim.c — CPU twins of cuda/optim.cu: the AdamW update, Σg² and scaling
 * of flat float arrays (formulas: adamw.h). */
#include "libcore/nn/adamw.h"
#include "libcore/nn/cpu/runtime.h"

#include <math.h>
#include <stddef.h>

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
