/* samples.c — see samples.h. */
#include "libcore/train/samples.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "formats/jsonl.h"
#include "libcore/dist/dist.h"
#include "libcore/dist/distrec.h"
#include "formats/refcache.h"
#include "libcore/train/score.h"
#include "libcore/train/checkpoint.h"
#include "libcore/train/data.h"

int input_is_jsonl(FILE *in)
{
	int first = getc(in);
	if (first == EOF)
		return -1;
	ungetc(first, in);
	return first == '{' || first == ' ' || first == '\n';
}

void model_tok_open(model_tok *t, const model *m, const char *model_path, const char *tok_path, const char *tpl_name,
		    int ignore_prov)
{
	memset(t, 0, sizeof *t);
	t->path = tok_path ? xstrdup(tok_path) : tok_file_in(model_path);
	if (!t->path) {
		if (tpl_name)
			die_usage("--template needs --tokenizer");
		return;
	}
	t->tk = tok_load(t->path);
	/* its ids and chat template must be the model's */
	provenance tp = {0};
	snprintf(tp.tok_sha, sizeof tp.tok_sha, "%s", tok_fingerprint(t->tk));
	prov_check(&tp, t->path, model_path, NULL, 0, NULL, ignore_prov);
	const model_config *cfg = model_cfg(m);
	if (tok_vocab_size(t->tk) > (uint32_t)cfg->vocab_size)
		die("%s: vocabulary of %u tokens exceeds the model's %d", t->path, tok_vocab_size(t->tk),
		    cfg->vocab_size);
	/* BOS and EOS texts: the template's bos_token and eos_token */
	size_t nb = 0, ne = 0;
	const char *bos = tok_bos(t->tk) >= 0 ? tok_piece(t->tk, (uint32_t)tok_bos(t->tk), &nb) : NULL;
	const char *eos = tok_eos(t->tk) >= 0 ? tok_piece(t->tk, (uint32_t)tok_eos(t->tk), &ne) : NULL;
	char *dir = tok_dir(t->tk);
	t->tpl = pref_tpl_load(tpl_name, dir, bos, eos);
	free(dir);
}

void model_tok_close(model_tok *t)
{
	pref_tpl_free(t->tpl);
	if (t->tk)
		tok_free(t->tk);
	free(t->path);
	memset(t, 0, sizeof *t);
}

void sample_text_check(const model_tok *t, json_t *obj, const uint32_t *ids, int n, const char *name, uint64_t lineno,
		       int ignore_prov, int *warned, char **dec, size_t *dec_cap)
{
	/* A decoding that is not valid UTF-8 (a sample cut inside a
	 * character) was written with U+FFFD: not compared. */
	json_t *text = json_object_get(obj, "text");
	if (!t->tk || !json_is_string(text))
		return;
	const uint32_t V = tok_vocab_size(t->tk);
	int known = 1;
	for (int i = 0; i < n; i++)
		known &= ids[i] < V;
	long len = known ? tok_decode(t->tk, ids, (size_t)n, TOK_SKIP_SPECIAL | TOK_NO_STRIP, dec, dec_cap) : -1;
	if (len >= 0 && utf8_invalid_at(*dec, (size_t)len) == (size_t)len &&
	    ((size_t)len != json_string_length(text) || memcmp(*dec, json_string_value(text), (size_t)len))) {
		if (!ignore_prov)
			die("%s: line %llu: \"ids\" do not decode to \"text\" with %s: the samples come from a model "
			    "with another tokenizer (--ignore-provenance scores them anyway)",
			    name, (unsigned long long)lineno, t->path);
		if (!(*warned)++)
			warning("%s: line %llu: \"ids\" do not decode to \"text\" with %s (scored anyway)", name,
				(unsigned long long)lineno, t->path);
	}
}

/* One line of a round. */
typedef struct {
	json_t *obj;
	uint64_t lineno;
	uint32_t *ids; /* prompt then completion (this rank's lines) */
	size_t cap;
	int np, nc;
	int cached; /* reward from the cache */
	double reward;
} line;

/* A JSON array of token ids, appended to *ids; -1 with a reason. */
static int json_ids(json_t *a, uint32_t vocab, uint32_t **ids, size_t *n, size_t *cap, const char *key, char *err,
		    size_t errlen)
{
	if (!json_is_array(a)) {
		snprintf(err, errlen, "no \"%s\" list of token ids (not lbdpo-sample output?)", key);
		return -1;
	}
	xgrow((void **)ids, cap, *n + json_array_size(a) + 1, sizeof **ids);
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
			snprintf(err, errlen, "\"%s\"[%zu]: not a token id below the vocabulary size %u", key, i,
				 vocab);
			return -1;
		}
		(*ids)[(*n)++] = (uint32_t)json_integer_value(v);
	}
	return 0;
}

typedef struct {
	const model *m;
	const samples_run *o;
	const char *name;
	strbuf scratch;
	char *dec;
	size_t dec_cap;
	int warned;
} ctx;

/* The ids of line l (this rank's to score): its prompt and completion, or die naming it. */
static void line_ids(ctx *c, line *l)
{
	const model_config *cfg = model_cfg(c->m);
	const model_tok *t = c->o->t;
	char err[512];
	size_t n = 0;
	json_t *pids = json_object_get(l->obj, "prompt_ids");
	int bad;
	if (pids)
		bad = json_ids(pids, (uint32_t)cfg->vocab_size, &l->ids, &n, &l->cap, "prompt_ids", err, sizeof err);
	else if (!t->tk) {
		snprintf(err, sizeof err,
			 "no \"prompt_ids\", and no tokenizer to encode \"prompt\" (give --tokenizer)");
		bad = 1;
	} else
		bad = pref_prompt_ids(t->tk, t->tpl, l->obj, c->o->add_bos, &c->scratch, &l->ids, &n, &l->cap, err,
				      sizeof err);
	if (!bad && !n) {
		snprintf(err, sizeof err, "empty prompt");
		bad = 1;
	}
	l->np = (int)n;
	if (!bad)
		bad = json_ids(json_object_get(l->obj, "ids"), (uint32_t)cfg->vocab_size, &l->ids, &n, &l->cap, "ids",
			       err, sizeof err);
	if (bad)
		die("%s: line %llu: %s", c->name, (unsigned long long)l->lineno, err);
	l->nc = (int)n - l->np;
	if ((long)n + 1 > cfg->max_seq_len)
		die("%s: line %llu: %zu tokens do not fit the model's %d positions", c->name,
		    (unsigned long long)l->lineno, n, cfg->max_seq_len);
	sample_text_check(t, l->obj, l->ids + l->np, l->nc, c->name, l->lineno, c->o->ignore_prov, &c->warned, &c->dec,
			  &c->dec_cap);
}

/* Score the lines q[0..n) that are not cached. The forwards are planned
 * over all n, cached or not, so that a re-run that finds part of a round in
 * the cache (a killed run's) packs the rest exactly as the first run did and
 * writes the same bytes: lines in a row with the same prompt share a pass two
 * by two (the prompt once), packed into passes of up to batch_tokens tokens;
 * a pass whose lines are all cached is skipped. batch_tokens 0: each line
 * alone. */
static void score_lines(ctx *c, model_ws *ws, line **q, int n)
{
	score_pair *pp = xmalloc(((size_t)n + 1) * sizeof *pp);
	line *(*who)[2] = xmalloc(((size_t)n + 1) * sizeof *who);
	score_out *out = xcalloc((size_t)n + 1, sizeof *out);
	const long bt = c->o->batch_tokens;
	int np = 0, todo = 0;
	long tokens = 0;
	for (int i = 0; i <= n;) {
		line *a = i < n ? q[i] : NULL, *b = NULL;
		if (a && bt > 0 && i + 1 < n && q[i + 1]->np == a->np &&
		    !memcmp(q[i + 1]->ids, a->ids, (size_t)a->np * sizeof *a->ids))
			b = q[i + 1];
		/* a line alone is scored as both sides of its pair */
		score_pair p = {0};
		if (a)
			p = (score_pair){a->ids, a->ids + a->np, b ? b->ids + b->np : a->ids + a->np,
					 a->np,  a->nc,          b ? b->nc : a->nc};
		long t = a ? score_pair_tokens(&p) : 0;
		if (np && (!a || tokens + t > bt)) {
			if (todo)
				score_pairs(c->m, ws, pp, np, out);
			for (int k = 0; todo && k < np; k++)
				for (int s = 0; s < 2; s++)
					if (who[k][s] && !who[k][s]->cached)
						who[k][s]->reward = s ? out[k].reward_rejected : out[k].reward_chosen;
			np = 0, tokens = 0, todo = 0;
		}
		if (!a)
			break;
		pp[np] = p;
		who[np][0] = a, who[np][1] = b;
		todo += !a->cached || (b && !b->cached);
		np++, tokens += t;
		i += b ? 2 : 1;
	}
	free(out);
	free(who);
	free(pp);
}

void score_samples(const model *m, const char *model_path, const char *fp, FILE *in, const char *name, samples_run *o)
{
	const int rank = dist_rank(), nrank = dist_size();
	ctx c = {.m = m, .o = o, .name = name};
	refcache *cache = o->cache_dir ? refcache_open(o->cache_dir, fp, model_path) : NULL;
	outfile *out = rank == 0 ? out_open(o->out_path) : NULL;
	const char *out_name = o->out_path && strcmp(o->out_path, "-") ? o->out_path : "<stdout>";
	model_ws *ws = model_ws_new(m);
	jsonl *r = jsonl_open_fp(in, name);
	const int R = DISTREC_ROUND * nrank;
	line *L = xcalloc((size_t)R, sizeof *L);
	line **q = xmalloc((size_t)R * sizeof *q);
	double *rw = xmalloc((size_t)R * sizeof *rw);
	progress_meter pm;
	progress_init(&pm, 0, "samples");
	uint64_t n_all = 0, n_mine = 0, n_cached = 0, n_tok = 0;
	int rc = 1;
	while (rc == 1) {
		/* a round: R lines, every rank reads them all */
		int n = 0;
		const char *s;
		size_t len;
		while (n < R && (rc = jsonl_next(r, &s, &len)) == 1) {
			char err[512];
			line *l = &L[n];
			l->lineno = jsonl_lineno(r);
			l->obj = jsonl_parse(s, len, err, sizeof err);
			if (!l->obj)
				die("%s: line %llu: %s", name, (unsigned long long)l->lineno, err);
			if (!json_is_object(l->obj))
				die("%s: line %llu: not a JSON object", name, (unsigned long long)l->lineno);
			n++;
		}
		if (rc < 0)
			die("%s: %s", name, jsonl_error(r));
		int nq = 0;
		for (int k = 0; k < n; k++) {
			line *l = &L[k];
			l->reward = 0;
			if ((n_all + (uint64_t)k) % (uint64_t)nrank != (uint64_t)rank)
				continue;
			line_ids(&c, l);
			n_mine++;
			n_tok += (uint64_t)l->np + (uint64_t)l->nc;
			uint8_t key[32];
			refcache_val v;
			l->cached = 0;
			if (cache) {
				refcache_key(l->ids, (size_t)l->np, l->ids + l->np, (size_t)l->nc, NULL, 0, key);
				if (refcache_get(cache, key, &v) && v.prompt_n == l->np && v.chosen_n == l->nc) {
					l->reward = v.chosen_logp;
					l->cached = 1;
					n_cached++;
				}
			}
			q[nq++] = l;
		}
		score_lines(&c, ws, q, nq);
		if (cache) {
			for (int k = 0; k < nq; k++) {
				if (q[k]->cached)
					continue;
				uint8_t key[32];
				refcache_val v = {
					.chosen_logp = q[k]->reward, .chosen_n = q[k]->nc, .prompt_n = q[k]->np};
				refcache_key(q[k]->ids, (size_t)q[k]->np, q[k]->ids + q[k]->np, (size_t)q[k]->nc, NULL,
					     0, key);
				refcache_put(cache, key, &v);
			}
			refcache_flush(cache); /* a killed run keeps every round scored so far */
		}
		/* every rank's rewards to rank 0: the others' lines hold 0 */
		for (int k = 0; k < n; k++)
			rw[k] = L[k].reward;
		if (nrank > 1)
			dist_allreduce_sum_f64(rw, (size_t)n);
		for (int k = 0; k < n; k++) {
			if (out) {
				json_object_set_new(L[k].obj, "reward", json_real(rw[k]));
				if (json_dumpf(L[k].obj, out->fp, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
				    fputc('\n', out->fp) == EOF)
					die("%s: write failed", out_name);
			}
			json_decref(L[k].obj);
			L[k].obj = NULL;
		}
		n_all += (uint64_t)n;
		if (rank == 0)
			progress_show(&pm, (long)n_all, NULL);
	}
	/* every rank must have read the same lines */
	double tot[4] = {(double)n_all, (double)n_mine, (double)n_cached, (double)n_tok};
	dist_allreduce_sum_f64(tot, 4);
	if (tot[0] != (double)n_all * nrank)
		die("%s: the ranks read different inputs (%llu lines here)", name, (unsigned long long)n_all);
	o->n_lines = (uint64_t)tot[1], o->n_cached = (uint64_t)tot[2], o->n_tok = (uint64_t)tot[3];
	if (out)
		out_close(out);
	refcache_close(cache);
	jsonl_close(r);
	for (int k = 0; k < R; k++)
		free(L[k].ids);
	free(L);
	free(q);
	free(rw);
	free(c.dec);
	sb_free(&c.scratch);
	model_ws_free(ws);
}
