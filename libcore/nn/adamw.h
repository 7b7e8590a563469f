/* adamw.h — AdamW on flat float arrays, LR schedules, global-norm clipping.
 *
 * AdamW (Loshchilov & Hutter), step t = 1, 2, ...:
 *   m ← β1 m + (1−β1) g,   v ← β2 v + (1−β2) g²
 *   m̂ = m/(1−β1^t),        v̂ = v/(1−β2^t)
 *   θ ← θ − lr·(m̂/(√v̂ + eps) + wd·θ)        (decoupled decay, as torch.optim.AdamW)
 */
#ifndef LBDPO_ADAMW_H
#define LBDPO_ADAMW_H

#include <stddef.h>

typedef struct {
	double beta1, beta2, eps;
} adamw_hp;

/* One AdamW update of n parameters; m, v [n] are the moments (zeroed at
 * t = 0). t is the 1-based step. */
void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, double lr, double wd,
		  const adamw_hp *hp, long t);

typedef enum { SCHED_CONSTANT = 0, SCHED_LINEAR = 1, SCHED_COSINE = 2 } sched_kind;
extern const char *const sched_names[]; /* by sched_kind, NULL-terminated (option rows) */
int sched_parse(const char *s);         /* -1 if unknown */
const char *sched_name(sched_kind k);

/* Learning rate at 0-based step s of total, as transformers'
 * get_{constant,linear,cosine}_schedule_with_warmup: linear warmup
 * lr·s/warmup for s < warmup (so step 0 has lr 0), then constant, linear
 * decay to 0, or cosine decay to 0 over the remaining steps:
 *   p = (s − warmup)/(total − warmup)
 *   linear: lr·(1 − p);  cosine: lr·½(1 + cos(π p)) */
double sched_lr(sched_kind k, double lr, long s, long warmup, long total);

/* Σ g² over n floats (double accumulation). */
double sumsq(const float *g, size_t n);
/* Multiply n floats by s. */
void scale_inplace(float *g, size_t n, float s);
/* Clip factor for a global norm: min(1, max_norm/(norm + 1e-6)); 1 if
 * max_norm <= 0. */
double clip_factor(double norm, double max_norm);

#endif
