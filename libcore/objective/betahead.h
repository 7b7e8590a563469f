/* betahead.h — the learnable β model of LB-DPO (doc/design.md §2.2):
 *
 *     β(x) = w · PPL(x) · f(x),   f(x) = 1 + ε·tanh(a),   a = NN(h(x))
 *     PPL(x) = exp(−m),  m = mean prompt-token log-prob
 *
 * NN is linear (a = W·h + b) or an MLP (a = W2·relu(W1 h + b1) + b2).
 * All learnable numbers live in one flat float array p[n_params]:
 *     p[0]               log w
 *     linear: p[1..C]    W [C],  p[C+1]  b
 *     mlp:    W1 [K×C] (row-major), b1 [K], W2 [K], b2
 * so AdamW treats them like the policy's flat buffer.
 */
#ifndef LBDPO_BETAHEAD_H
#define LBDPO_BETAHEAD_H

#include <stddef.h>
#include <stdint.h>

typedef enum { HEAD_LINEAR = 0, HEAD_MLP = 1 } head_kind;
const char *head_kind_name(head_kind k);    /* "linear", "mlp" */
extern const char *const head_kind_names[]; /* by head_kind, NULL-terminated (option rows) */
int head_kind_parse(const char *s);         /* -1 if unknown */

typedef struct {
	head_kind kind;
	int C;     /* input width (model dim) */
	int K;     /* MLP hidden width (0 for linear) */
	float eps; /* ε in (0,1) */
	size_t n_params;
	float *p; /* [n_params] owned */
} betahead;

/* Per-record parts of β, for metrics and lbdpo-beta. */
typedef struct {
	double beta, w, ppl, f, a;
} beta_parts;

betahead *betahead_new(head_kind kind, int C, int K, float eps);
/* W (linear) / W2 (mlp) zero so f = 1 at the start; W1 ~ N(0, 1/C) so the
 * MLP's ReLU units are not all identical; log w = log(w0). */
void betahead_init(betahead *bh, uint64_t seed, double w0);
void betahead_free(betahead *bh);

/* Forward for B records: h [B×C], m [B] (mean prompt log-probs). Writes
 * parts[B]; act [B×K] (mlp hidden pre-activations, may be NULL for linear)
 * is kept for the backward. */
void betahead_forward(const betahead *bh, beta_parts *parts, float *act, const float *h, const double *m, int B);
/* Backward: dbeta [B] = dL/dβ_b. Accumulates dL/dp into dp [n_params];
 * writes dL/dm into dm [B] (may be NULL) and dL/dh into dh [B×C] (may be
 * NULL). Uses parts and act from the forward.
 *   ∂β/∂log w = β
 *   ∂β/∂m     = −β              (PPL = e^−m)
 *   ∂β/∂a     = w·PPL·ε·(1 − tanh² a)
 *   linear: ∂a/∂W = h, ∂a/∂b = 1, ∂a/∂h = W
 *   mlp:    z = W1 h + b1, r = relu(z): ∂a/∂W2 = r, ∂a/∂b2 = 1,
 *           ∂a/∂z_k = W2_k·1[z_k>0], ∂a/∂W1_kc = ∂a/∂z_k·h_c, ∂a/∂h = W1ᵀ ∂a/∂z */
void betahead_backward(const betahead *bh, float *dp, double *dm, float *dh, const double *dbeta,
		       const beta_parts *parts, const float *act, const float *h, int B);

/* --beta-init: set log w so that mean_b β_b = target on this batch
 * (β is linear in w: w' = w·target/mean β). */
void betahead_set_mean_beta(betahead *bh, const beta_parts *parts, int B, double target);

#endif
