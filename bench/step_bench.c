/* step_bench.c — one full LB-DPO training step (issue 7: "make bench") against
 * the plain packed forward+backward of the same batch:
 *   plain: model_forward(train) + model_backward with d_logp only
 *   step:  train_microbatch (lbdpo, --beta-grad full: Δ, PPL and h paths, the
 *          β head) + global norm + clipping + AdamW on every tensor and the head
 * Same model (llama ≈110M: dim 768, 12 layers, vocab 32000 by default), same
 * two pairs [prompt 128 | chosen 128 | rejected 128]. Prints tokens/s and
 * pairs/s of both, the per-token slowdown of the step (target: ≤ 10%), and
 * the share of the step's time spent outside the model's forward/backward.
 *
 * usage: step_bench [--threads N] [--reps N] [--dim C --layers L --vocab V] [--beta-grad full|head|none]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/adamw.h"
#include "libcore/betahead.h"
#include "libcore/loss.h"
#include "libcore/model.h"
#include "libcore/train.h"
#include "libcore/util.h"

int main(int argc, char **argv)
{
	set_progname("step_bench");
	lbdpo_runtime_init(argv);
	int threads = 0, reps = 2, dim = 768, layers = 12, vocab = 32000;
	beta_grad_mode bgm = BGRAD_FULL;
	static const struct option lo[] = {{"threads", required_argument, 0, 't'}, {"reps", required_argument, 0, 'r'},
					   {"dim", required_argument, 0, 'd'},	   {"layers", required_argument, 0, 'l'},
					   {"vocab", required_argument, 0, 'v'},   {"beta-grad", required_argument, 0, 'b'},
					   {0, 0, 0, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "t:r:d:l:v:b:", lo, NULL)) != -1) {
		switch (ch) {
		case 't': threads = (int)parse_long("--threads", optarg, 1, 1024); break;
		case 'r': reps = (int)parse_long("--reps", optarg, 1, 100); break;
		case 'd': dim = (int)parse_long("--dim", optarg, 64, 8192); break;
		case 'l': layers = (int)parse_long("--layers", optarg, 1, 256); break;
		case 'v': vocab = (int)parse_long("--vocab", optarg, 16, 1 << 20); break;
		case 'b':
			bgm = !strcmp(optarg, "head") ? BGRAD_HEAD : !strcmp(optarg, "none") ? BGRAD_NONE : BGRAD_FULL;
			break;
		default: die_usage("usage: step_bench [--threads N] [--reps N] [--dim C --layers L --vocab V]");
		}
	}
	lbdpo_set_threads(threads);
	model_config cfg = {.arch = ARCH_LLAMA, .dim = dim, .hidden_dim = dim * 8 / 3 / 16 * 16, .n_layers = layers,
			    .n_heads = dim / 64, .n_kv_heads = dim / 64, .head_dim = 64, .vocab_size = vocab,
			    .max_seq_len = 1024, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied_embeddings = 1,
			    .bos_id = 1, .eos_id = 2};
	ckpt c;
	memset(&c, 0, sizeof c);
	c.m = model_new(&cfg);
	model_init_random(c.m, 1, 0.02f);
	c.bh = betahead_new(HEAD_LINEAR, dim, 0, 0.1f);
	betahead_init(c.bh, 1, 0.005);
	size_t np = model_n_params(c.m), hn = c.bh->n_params;
	c.pm = xcalloc(np, sizeof(float));
	c.pv = xcalloc(np, sizeof(float));
	c.hm = xcalloc(hn, sizeof(float));
	c.hv = xcalloc(hn, sizeof(float));
	float *G = xcalloc(np, sizeof(float)), *HG = xcalloc(hn, sizeof(float));

	enum { NP = 2, L = 128 };
	uint32_t *t = xmalloc(sizeof(uint32_t) * NP * 3 * L);
	uint64_t s = 7;
	for (int i = 0; i < NP * 3 * L; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		t[i] = (uint32_t)((s >> 33) % (uint64_t)vocab);
	}
	pref_rec recs[NP], *rp[NP];
	memset(recs, 0, sizeof recs);
	for (int i = 0; i < NP; i++) {
		recs[i] = (pref_rec){.prompt = t + i * 3 * L, .np = L, .chosen = t + i * 3 * L + L, .nc = L,
				     .rejected = t + i * 3 * L + 2 * L, .nr = L, .has_ref = 1,
				     .ref_c = -L * log((double)vocab), .ref_r = -L * log((double)vocab), .group = -1};
		rp[i] = &recs[i];
	}
	const long T = NP * 3 * L;
	model_ws *ws = model_ws_new(c.m);
	batch_buf *bb = batch_new(NP, dim, 0);
	loss_opts lop;
	loss_opts_default(&lop);
	const adamw_hp hp = {0.9, 0.999, 1e-8};

	/* plain forward+backward of the same pairs */
	model_scores sc[NP];
	model_seq seqs[NP];
	model_seq_grad g[NP];
	for (int i = 0; i < NP; i++) {
		seqs[i] = (model_seq){recs[i].prompt, L, {recs[i].chosen, recs[i].rejected}, {L, L}, 2};
		memset(&sc[i], 0, sizeof sc[i]);
		g[i] = (model_seq_grad){.d_logp = {-0.05, 0.05}};
	}
	double plain = 1e30, step = 1e30, outside = 0;
	model_forward(c.m, ws, seqs, NP, sc, 1); /* warm the workspace */
	for (int r = 0; r < reps; r++) {
		double t0 = now_s();
		model_forward(c.m, ws, seqs, NP, sc, 1);
		model_backward(c.m, ws, g, G);
		double t1 = now_s();
		plain = fmin(plain, t1 - t0);

		/* the step */
		memset(G, 0, np * sizeof(float));
		memset(HG, 0, hn * sizeof(float));
		double t2 = now_s();
		train_microbatch(&c, ws, bb, rp, NP, &lop, bgm, 1, 1.0, G, HG, NULL, NULL, NULL);
		double t3 = now_s();
		double gn = sqrt(sumsq(G, np) + sumsq(HG, hn));
		float cf = (float)clip_factor(gn, 1.0);
		if (cf != 1.0f) {
			scale_inplace(G, np, cf);
			scale_inplace(HG, hn, cf);
		}
		float *P = model_params(c.m);
		for (int k = 0; k < model_n_tensors(c.m); k++) {
			const model_tensor *mt = model_tensor_at(c.m, k);
			adamw_update(P + mt->offset, G + mt->offset, c.pm + mt->offset, c.pv + mt->offset, mt->numel, 1e-6,
				     mt->ndim == 2 ? 0.01 : 0.0, &hp, r + 1);
		}
		adamw_update(c.bh->p, HG, c.hm, c.hv, hn, 1e-3, 0.0, &hp, r + 1);
		double t4 = now_s();
		if (t4 - t2 < step) {
			step = t4 - t2;
			outside = (t4 - t3) / (t4 - t2);
		}
	}
	printf("llama dim %d, %d layers, vocab %d (%.1fM params), %d pairs of %d+%d+%d tokens, threads %d\n", dim, layers,
	       vocab, np * 1e-6, NP, L, L, L, threads);
	printf("plain fwd+bwd: %8.1f tokens/s %6.2f pairs/s\n", T / plain, NP / plain);
	printf("--beta-grad %s\n", bgm == BGRAD_FULL ? "full" : bgm == BGRAD_HEAD ? "head" : "none");
	printf("lbdpo step:    %8.1f tokens/s %6.2f pairs/s   per-token slowdown %+.1f%% (target <= 10%%)\n", T / step,
	       NP / step, 100 * (step / plain - 1));
	printf("step time outside the model forward/backward (norm, clip, AdamW): %.1f%%\n", 100 * outside);
	batch_free(bb);
	model_ws_free(ws);
	free(t);
	free(G);
	free(HG);
	free(c.pm), free(c.pv), free(c.hm), free(c.hv);
	betahead_free(c.bh);
	model_free(c.m);
	return 0;
}
