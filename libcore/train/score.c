/* score.c — see score.h. */
#include "libcore/train/score.h"

#include <stdlib.h>
#include <string.h>

#include "formats/records.h"
#include "libcore/nn/backend.h"
#include "libcore/train/eval.h"
#include "libcore/dist/dist.h"
#include "libcore/dist/distrec.h"
#include "base/util.h"

void score_pairs(const model *m, model_ws *ws, const score_pair *pairs, int n, score_out *out)
{
	if (n <= 0)
		return;
	model_seq *seqs = xcalloc((size_t)n, sizeof *seqs);
	model_scores *sc = xcalloc((size_t)n, sizeof *sc);
	/* which[i][k]: the pair's completion (0 chosen, 1 rejected) that went into
	 * slot k of seqs[i], or -1 for the placeholder of a pair with no
	 * completion tokens at all (the forward needs >= 1 completion token; the
	 * prompt's quantities never see the completions, so it changes nothing). */
	int(*which)[2] = xcalloc((size_t)n, sizeof *which);
	const model_config *cfg = model_cfg(m);
	/* a reward model scores the last non-pad token: a pad placeholder
	 * leaves the prompt's last token scored */
	const uint32_t placeholder = cfg->score_labels && cfg->has_pad ? (uint32_t)cfg->pad_id : 0;
	for (int i = 0; i < n; i++) {
		const score_pair *p = &pairs[i];
		model_seq *s = &seqs[i];
		s->prompt = p->prompt;
		s->n_prompt = p->n_prompt;
		const uint32_t *c[2] = {p->chosen, p->rejected};
		int nc[2] = {p->n_chosen, p->n_rejected};
		for (int k = 0; k < 2; k++) {
			if (!nc[k])
				continue;
			s->comp[s->n_comp] = c[k];
			s->n_comp_tok[s->n_comp] = nc[k];
			sc[i].tok_logp[s->n_comp] = out[i].tok_logp[k];
			which[i][s->n_comp++] = k;
		}
		if (cfg->score_labels && s->n_comp < 2 && !cfg->has_pad)
			die("pair %d: an empty completion, and the reward model has no pad_token_id to score the prompt "
			    "alone",
			    i);
		if (cfg->score_labels && s->n_comp < 2) { /* both sides scored, the empty one at the prompt */
			for (int k = 0; k < 2; k++)
				if (!nc[k]) {
					s->comp[s->n_comp] = &placeholder;
					s->n_comp_tok[s->n_comp] = 1;
					which[i][s->n_comp++] = 2 + k; /* k's reward, no log-prob */
				}
		}
		if (!s->n_comp) {
			s->comp[0] = &placeholder;
			s->n_comp_tok[0] = 1;
			s->n_comp = 1;
			which[i][0] = -1;
		}
	}
	model_forward(m, ws, seqs, n, sc, 0);
	for (int i = 0; i < n; i++) {
		score_out *o = &out[i];
		o->chosen_logp = o->rejected_logp = 0;
		o->chosen_n = o->rejected_n = 0;
		o->reward_chosen = o->reward_rejected = 0;
		for (int k = 0; k < seqs[i].n_comp; k++) {
			if (which[i][k] == 0 || which[i][k] == 2)
				o->reward_chosen = sc[i].reward[k];
			else if (which[i][k] == 1 || which[i][k] == 3)
				o->reward_rejected = sc[i].reward[k];
			if (which[i][k] == 0) {
				o->chosen_logp = sc[i].logp[k];
				o->chosen_n = sc[i].n[k];
			} else if (which[i][k] == 1) {
				o->rejected_logp = sc[i].logp[k];
				o->rejected_n = sc[i].n[k];
			}
		}
		o->prompt_logp = sc[i].prompt_mean_logp;
		o->prompt_entropy = sc[i].prompt_entropy;
	}
	free(which);
	free(sc);
	free(seqs);
}

/* The pairs held for one forward. */
typedef struct {
	held_pair *h;
	score_out *out;
	float *tok; /* per-token buffers of the batch, [sum of completion tokens] */
	size_t tok_cap;
	int n, cap;
	long tokens;
} batch;

static void flush(batch *b, const model *m, model_ws *ws, distrec *d, const score_run *o)
{
	if (!b->n)
		return;
	score_pair *pp = xmalloc(b->n * sizeof *pp);
	size_t need = 0;
	for (int i = 0; i < b->n; i++) {
		pp[i] = b->h[i].pair;
		need += (size_t)pp[i].n_chosen + pp[i].n_rejected;
	}
	if (o->per_token)
		xgrow((void **)&b->tok, &b->tok_cap, need + 1, sizeof *b->tok);
	size_t at = 0;
	for (int i = 0; i < b->n; i++) {
		memset(&b->out[i], 0, sizeof b->out[i]);
		if (o->per_token) {
			b->out[i].tok_logp[0] = b->tok + at;
			b->out[i].tok_logp[1] = b->tok + at + pp[i].n_chosen;
			at += (size_t)pp[i].n_chosen + pp[i].n_rejected;
		}
	}
	score_pairs(m, ws, pp, b->n, b->out);
	rs_writer *w = distrec_writer(d);
	for (int i = 0; i < b->n; i++) {
		rs_rec_begin(w, pair_obj(&b->h[i]));
		o->put(o->ctx, w, &b->out[i]);
		rs_rec_end(w);
		distrec_mark(d);
	}
	free(pp);
	b->n = 0;
	b->tokens = 0;
}

void score_stream(const model *m, rs_reader *r, distrec *d, score_run *o)
{
	const model_config *cfg = model_cfg(m);
	model_ws *ws = model_ws_new(m);
	batch b = {0};
	const msgpack_object *rec;
	progress_meter pm;
	progress_init(&pm, 0, "records");
	const int show = dist_rank() == 0;
	o->n_rec = o->n_tok = 0;
	for (uint64_t k = 0; rs_next(r, &rec); k++) {
		if (!distrec_mine(d, k))
			goto next;
		if (b.n == b.cap) {
			int nc = b.cap ? 2 * b.cap : 64;
			b.h = xrealloc(b.h, nc * sizeof *b.h);
			memset(b.h + b.cap, 0, (nc - b.cap) * sizeof *b.h);
			b.out = xrealloc(b.out, nc * sizeof *b.out);
			b.cap = nc;
		}
		held_pair *h = &b.h[b.n];
		pair_hold(h, r, rec, (uint32_t)cfg->vocab_size, cfg->max_seq_len);
		long t = score_pair_tokens(&h->pair);
		if (b.n && b.tokens + t > o->batch_tokens) {
			/* This record starts the next batch: score the full one
			 * (slots 0..n-1), then swap the record into slot 0. */
			int last = b.n;
			flush(&b, m, ws, d, o);
			held_pair tmp = b.h[0];
			b.h[0] = b.h[last];
			b.h[last] = tmp;
		}
		b.n++;
		b.tokens += t;
		o->n_rec++;
		o->n_tok += (uint64_t)t;
		if (show)
			progress_show(&pm, (long)o->n_rec, NULL);
	next:
		/* End of a round (distrec.h): score what is held, send it to rank 0. */
		if (distrec_after(d, k)) {
			flush(&b, m, ws, d, o);
			distrec_round(d, 0);
		}
	}
	flush(&b, m, ws, d, o);
	distrec_round(d, 1);
	for (int i = 0; i < b.cap; i++)
		pair_free(&b.h[i]);
	free(b.h);
	free(b.out);
	free(b.tok);
	model_ws_free(ws);
}

model *score_prog_open(int *argc, char ***argv, score_prog *p, char fp[65])
{
	if (!p->model_path)
		die_usage("--model PATH is required");
	dist_init(argc, argv);
	const int nrank = dist_size();
	if (nrank > 1 && (!p->in || !strcmp(p->in, "-")))
		dist_die_usage("with %d MPI ranks the input must be a file every rank can read "
			       "(-i FILE), not standard input",
			       nrank);
	backend_opts_apply(p->bo);
	p->t0 = now_s();
	model *m = adapter_model_load(p->model_path, p->adapter, 1, &p->lo, &p->base_owned, &p->base);
	const model_config *cfg = model_cfg(m);
	if (p->need_lm)
		model_need_lm(m, p->model_path);
	else if (!cfg->score_labels)
		die("%s: not a reward model (config.json's architectures names no XxxForSequenceClassification; "
		    "lbdpo-step --loss reward trains one)",
		    p->model_path);
	model_fingerprint(m, fp);
	return m;
}

void score_prog_close(score_prog *p, model *m, const char *unit, uint64_t n_rec, uint64_t n_tok, const char *extra)
{
	double dt = now_s() - p->t0;
	if (dist_rank() == 0)
		info("%llu %s%s, %llu tokens in %.2f s (%.1f %s/s, %.0f tokens/s) on %s", (unsigned long long)n_rec,
		     unit, extra ? extra : "", (unsigned long long)n_tok, dt, n_rec / (dt > 0 ? dt : 1), unit,
		     n_tok / (dt > 0 ? dt : 1), backend_device());
	model_free(m);
	lora_free(p->lo);
	free(p->base_owned);
	close_stdout();
	dist_finalize();
}

int score_program(int *argc, char ***argv, score_prog *p)
{
	char fp[65];
	model *m = score_prog_open(argc, argv, p, fp);
	const model_config *cfg = model_cfg(m);
	const int rank = dist_rank();
	rs_reader *r = rs_open(p->in, NULL);
	provenance pv;
	prov_read(r, cfg->vocab_size, &pv);
	prov_check(&pv, rs_name(r), p->base, NULL, 0, NULL, p->ignore_prov);
	rs_writer *w = rank == 0 ? rs_create(p->out) : NULL;
	if (w) {
		rs_header_begin(w, rs_header(r), p->kind, *argc, *argv);
		pairs_put_model(w, p->model_key, p->model_path, fp);
		rs_header_end(w);
	}
	distrec *d = distrec_new(w);
	score_stream(m, r, d, &p->run);
	if (w)
		rs_finish(w);
	rs_close(r);
	double tot[2] = {(double)p->run.n_rec, (double)p->run.n_tok}; /* the job's totals */
	dist_allreduce_sum_f64(tot, 2);
	distrec_free(d);
	score_prog_close(p, m, "records", (uint64_t)tot[0], (uint64_t)tot[1], NULL);
	return 0;
}
