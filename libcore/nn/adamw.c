/* adamw.c — LR schedules and global-norm clipping (formulas: adamw.h); the
 * AdamW update itself is a kernel: cpu/optim.c and its twin cuda/optim.cu. */
#include "libcore/nn/adamw.h"

#include <math.h>
#include <string.h>

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

double clip_factor(double norm, double max_norm)
{
	if (max_norm <= 0 || norm <= max_norm)
		return 1.0;
	return max_norm / (norm + 1e-6);
}
