/* eval.h — held-out scoring of a preference set (lbdpo-eval, lbdpo-step
 * --eval-input) and the per-pair summaries. */
#ifndef LBDPO_TRAIN_EVAL_H
#define LBDPO_TRAIN_EVAL_H

#include "libcore/train/batch.h"

/* ---- held-out scoring (lbdpo-eval, lbdpo-step --eval-input) ---- */
/* One pair's results. nc, nr: completion token counts. */
typedef struct {
	double loss, beta, ppl, delta, pc, pr, rc, rr, nc, nr;
	int group;
} pair_res;

/* The held-out loss of a run trained with run: its kind or loss list with
 * weights, learned β or not, β, label smoothing, γ, discopop τ and SFT
 * weight; beta-dpo is dpo at β0 (no batch calibration held out); no
 * regularizers. */
void eval_loss_opts(loss_opts *lo, const loss_opts *run);
/* Score data's n records in batches of bs (b: batch_new(bs, ...)) with c
 * and lo: per pair the loss term (loss_batch of the pair alone: preference
 * + weighted SFT term), β, PPL, log-probs. pm (may be NULL) shows progress. */
void score_pref_set(const ckpt *c, model_ws *ws, batch_buf *b, const pref_set *data, const loss_opts *lo, int bs,
		    pair_res *res, progress_meter *pm);
/* Implicit rewards of one pair. simpo has no reference: TRL's CPO trainer
 * logs β × the average log-prob, rewards = β·pc/nc, β·pr/nr; every other
 * loss the DPO reward β(log πθ − log πref). */
void pair_rewards(const pair_res *q, int simpo, double *c, double *j);
/* Means over the pairs of group g (g = -2: all); the lbdpo-eval summary
 * and lbdpo-step's eval/ metrics. Values are 0 when n = 0. */
typedef struct {
	int n;
	double loss, acc, rc, rr, margin, lc, lr, dc, dr, bmean, bstd, bmin, bmax, ppl;
} res_summary;
void pair_summary(res_summary *s, const pair_res *r, int n, int g, int simpo);


#endif
