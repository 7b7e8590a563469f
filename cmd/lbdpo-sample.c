/* lbdpo-sample — generate continuations of prompts with a KV cache.
 *
 * Input (detected by the first byte): JSON Lines with a "prompt" string or
 * list of chat messages (needs a tokenizer; messages are rendered with the
 * chat template and its generation prompt, as lbdpo-tokenize renders
 * prompts), or a token record stream with "prompt_ids". Output:
 * JSON Lines, one object per (prompt, sample): the input's fields (JSONL:
 * all of them; records: the scalar ones and prompt_ids) followed by
 * "sample", "text" (with a tokenizer), "ids", "n_new", "stop"; with
 * --logprobs (rollouts for lbdpo-step --loss ppo|grpo|rloo) also
 * "prompt_ids", "eos_id" (when it stopped at one) and "token_logps".
 * The tokenizer is --tokenizer, else the model directory's own.
 *
 * Decoding: each new token costs one model_kv_feed of one token, so a
 * sample of n tokens is O(n) forward steps, not O(n²).
 * Sampling, in transformers' order: the repetition penalty, then
 * p ∝ softmax(logits / T), restricted to the k most likely tokens (--top-k)
 * and then to the smallest most-likely set whose mass reaches --top-p
 * (nucleus). T = 0 (or --greedy) takes the argmax. Defaults come from the
 * model directory's generation_config.json; options override them. Ids of a
 * padded vocabulary that the tokenizer lacks are never sampled. The random
 * stream of sample k of input record i depends only on (--seed, i, k).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/jsonl.h"
#include "formats/prefs.h"
#include "formats/records.h"
#include "formats/tokenizer.h"
#include "libcore/nn/model.h"
#include "libcore/train/adapter.h"
#include "libcore/train/samples.h"
#include "libcore/train/eval.h"
#include "libcore/nn/backend_opts.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/rng.h"
#include "base/util.h"
#include "formats/schema.h"

#define MAX_EOS 16

typedef struct {
	double temperature;
	int top_k;
	double top_p;
	double rep_penalty; /* 1 = off */
	uint64_t seed;
	int max_new;
	int n;
	int64_t eos[MAX_EOS]; /* stop ids */
	int n_eos;
	int logprobs; /* --logprobs: rollout records (prompt_ids, token_logps, eos_id) */
} sample_opts;

typedef struct {
	float p;
	uint32_t id;
} cand;

static int cand_desc(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	if (x->p != y->p)
		return x->p < y->p ? 1 : -1;
	return x->id < y->id ? -1 : x->id > y->id; /* ties: the smaller id first */
}

/* transformers' RepetitionPenaltyLogitsProcessor: the logit of every id
 * already in the prompt or the generation is divided by the penalty when
 * positive, multiplied when negative. seen: the distinct ids [ns]. */
static void rep_penalize(float *logits, const uint32_t *seen, size_t ns, double penalty)
{
	for (size_t i = 0; i < ns; i++) {
		float *l = &logits[seen[i]];
		*l = *l < 0 ? (float)(*l * penalty) : (float)(*l / penalty);
	}
}

/* Pick the next token from logits [V] (V: the ids that may be sampled).
 * c: scratch [V]. */
static uint32_t pick(const float *logits, int V, const sample_opts *o, uint64_t *rng, cand *c)
{
	if (o->temperature <= 0 || o->top_k == 1) {
		int best = 0;
		for (int v = 1; v < V; v++)
			if (logits[v] > logits[best])
				best = v;
		return (uint32_t)best;
	}
	/* softmax(logits / T), max subtracted for stability */
	float mx = logits[0];
	for (int v = 1; v < V; v++)
		mx = logits[v] > mx ? logits[v] : mx;
	double z = 0;
	for (int v = 0; v < V; v++) {
		c[v].id = (uint32_t)v;
		c[v].p = expf((float)((logits[v] - mx) / o->temperature));
		z += c[v].p;
	}
	int n = V;
	if (o->top_k > 0 || o->top_p < 1) {
		qsort(c, (size_t)V, sizeof *c, cand_desc);
		if (o->top_k > 0 && o->top_k < n) {
			/* transformers keeps every token tied with the k-th */
			n = o->top_k;
			while (n < V && c[n].p == c[o->top_k - 1].p)
				n++;
		}
		z = 0;
		for (int i = 0; i < n; i++)
			z += c[i].p;
		if (o->top_p < 1) {
			double acc = 0;
			int keep = n;
			for (int i = 0; i < n; i++) {
				acc += c[i].p / z;
				if (acc >= o->top_p) {
					keep = i + 1;
					break;
				}
			}
			n = keep;
			z = 0;
			for (int i = 0; i < n; i++)
				z += c[i].p;
		}
	}
	double u = rng_unif(rng) * z, acc = 0;
	for (int i = 0; i < n; i++) {
		acc += c[i].p;
		if (u < acc)
			return c[i].id;
	}
	return c[n - 1].id; /* rounding: u landed past the last boundary */
}

typedef struct {
	const model *m;
	model_kv *kv;
	tok *tk;
	const sample_opts *o;
	int V_pick;    /* ids that may be sampled: those the tokenizer has */
	float *logits; /* [V] */
	cand *c;       /* [V] */
	uint8_t *mark; /* [V]: in seen */
	uint32_t *gen, *seen, *known;
	size_t gen_cap, seen_cap, known_cap, n_seen;
	double *glp; /* [max_new + 1] log-probs of the generated tokens (--logprobs) */
	float *raw;  /* [V] the logits before warping (--logprobs) */
	uint32_t eos_hit;
	char *text, *fix;
	size_t text_cap, fix_cap;
	FILE *out;
	long n_out, n_tokens;
	progress_meter pm;
} sampler;

/* log Σ exp(z[0..n)) in double */
static double logsumexp_f(const float *z, int n)
{
	float mx = z[0];
	for (int i = 1; i < n; i++)
		mx = z[i] > mx ? z[i] : mx;
	double s = 0;
	for (int i = 0; i < n; i++)
		s += exp((double)z[i] - mx);
	return mx + log(s);
}

/* Decode ids as transformers does: an id the tokenizer lacks (a padded
 * vocabulary's extra rows) decodes to nothing. */
static long decode_known(sampler *s, const uint32_t *ids, size_t n, unsigned flags)
{
	const uint32_t V = tok_vocab_size(s->tk);
	size_t k = 0;
	xgrow((void **)&s->known, &s->known_cap, n + 1, sizeof *s->known);
	for (size_t i = 0; i < n; i++)
		if (ids[i] < V)
			s->known[k++] = ids[i];
	return tok_decode(s->tk, s->known, k, flags, &s->text, &s->text_cap);
}

static void see(sampler *s, uint32_t id)
{
	if (s->mark[id])
		return;
	s->mark[id] = 1;
	xgrow((void **)&s->seen, &s->seen_cap, s->n_seen + 1, sizeof *s->seen);
	s->seen[s->n_seen++] = id;
}

/* A JSON string of s[0..n) with each invalid UTF-8 byte replaced by U+FFFD
 * (a sampled token sequence may end, or wander, inside a character). */
static json_t *valid_utf8_json(const char *s, size_t n, char **buf, size_t *cap)
{
	size_t o = 0;
	while (n > 0) {
		size_t k = utf8_invalid_at(s, n);
		xgrow((void **)buf, cap, o + k + 4, 1);
		memcpy(*buf + o, s, k);
		o += k;
		if (k == n)
			break;
		memcpy(*buf + o, "\xEF\xBF\xBD", 3);
		o += 3;
		s += k + 1;
		n -= k + 1;
	}
	return json_stringn(o ? *buf : "", o);
}

/* Generate o->n samples for one prompt and write them, each as a copy of
 * base (borrowed) with the generated keys appended. */
static void run_prompt(sampler *s, const uint32_t *prompt, int np, uint64_t index, json_t *base, const char *where)
{
	const model_config *cfg = model_cfg(s->m);
	const int V = cfg->vocab_size;
	if (np < 1)
		die("%s: empty prompt", where);
	if (np >= cfg->max_seq_len)
		die("%s: prompt of %d tokens does not fit the model's %d positions", where, np, cfg->max_seq_len);
	for (int i = 0; i < np; i++)
		if (prompt[i] >= (uint32_t)V)
			die("%s: token id %u >= vocabulary size %d", where, prompt[i], V);
	for (int k = 0; k < s->o->n; k++) {
		uint64_t rng = s->o->seed ^ (index * 0x100000001B3ull) ^ ((uint64_t)k << 40);
		rng_next(&rng);
		for (size_t i = 0; i < s->n_seen; i++)
			s->mark[s->seen[i]] = 0;
		s->n_seen = 0;
		if (s->o->rep_penalty != 1)
			for (int i = 0; i < np; i++)
				see(s, prompt[i]);
		model_kv_reset(s->kv);
		model_kv_feed(s->m, s->kv, prompt, np, s->logits);
		int n = 0;
		const char *stop = "length";
		xgrow((void **)&s->gen, &s->gen_cap, (size_t)s->o->max_new + 1, sizeof *s->gen);
		while (n < s->o->max_new) {
			/* the policy's own log-softmax at temperature 1, before any
			 * warping: what lbdpo-step's ratio divides by */
			double lse = s->o->logprobs ? logsumexp_f(s->logits, V) : 0;
			if (s->o->logprobs)
				memcpy(s->raw, s->logits, sizeof(float) * V);
			if (s->o->rep_penalty != 1)
				rep_penalize(s->logits, s->seen, s->n_seen, s->o->rep_penalty);
			uint32_t t = pick(s->logits, s->V_pick, s->o, &rng, s->c);
			if (s->o->logprobs)
				s->glp[n] = s->raw[t] - lse;
			int is_eos = 0;
			for (int e = 0; e < s->o->n_eos; e++)
				is_eos |= t == (uint32_t)s->o->eos[e];
			if (is_eos) {
				stop = "eos";
				s->eos_hit = t;
				break;
			}
			s->gen[n++] = t;
			if (s->o->rep_penalty != 1)
				see(s, t);
			if (n == s->o->max_new)
				break;
			if (model_kv_len(s->kv) >= cfg->max_seq_len) {
				stop = "context";
				break;
			}
			model_kv_feed(s->m, s->kv, &t, 1, s->logits);
		}
		json_t *o = json_deep_copy(base);
		json_object_set_new(o, "sample", json_integer(k));
		if (s->tk) {
			/* NO_STRIP: a continuation keeps its leading space */
			long len = decode_known(s, s->gen, (size_t)n, TOK_SKIP_SPECIAL | TOK_NO_STRIP);
			if (len < 0)
				die("%s: cannot decode the generation: %s", where, tok_error(s->tk));
			json_object_set_new(o, "text", valid_utf8_json(s->text, (size_t)len, &s->fix, &s->fix_cap));
		}
		json_t *ids = json_array();
		for (int i = 0; i < n; i++)
			json_array_append_new(ids, json_integer(s->gen[i]));
		json_object_set_new(o, "ids", ids);
		json_object_set_new(o, "n_new", json_integer(n));
		json_object_set_new(o, "stop", json_string(stop));
		if (s->o->logprobs) {
			/* the rollout: the prompt's ids, and one log-prob per id of
			 * ids plus the stop token when it stopped at one (eos_id) */
			if (!json_object_get(o, "prompt_ids")) {
				json_t *pids = json_array();
				for (int i = 0; i < np; i++)
					json_array_append_new(pids, json_integer(prompt[i]));
				json_object_set_new(o, "prompt_ids", pids);
			}
			int is_eos = !strcmp(stop, "eos");
			if (is_eos)
				json_object_set_new(o, "eos_id", json_integer(s->eos_hit));
			json_t *lps = json_array();
			for (int i = 0; i < n + is_eos; i++)
				json_array_append_new(lps, json_real(s->glp[i]));
			json_object_set_new(o, "token_logps", lps);
		}
		if (json_dumpf(o, s->out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || fputc('\n', s->out) == EOF)
			die("write failed");
		json_decref(o);
		s->n_out++;
		s->n_tokens += n;
		progress_show(&s->pm, s->n_out, "%ld new tokens", s->n_tokens);
	}
}

/* msgpack scalar → JSON (NULL for arrays, maps, bin, ext). */
static json_t *scalar_json(const msgpack_object *v)
{
	switch (v->type) {
	case MSGPACK_OBJECT_NIL: return json_null();
	case MSGPACK_OBJECT_BOOLEAN: return json_boolean(v->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER: return json_integer((json_int_t)v->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(v->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return json_real(v->via.f64);
	case MSGPACK_OBJECT_STR: return json_stringn(v->via.str.ptr, v->via.str.size);
	default: return NULL;
	}
}

/* A comma-separated list of stop ids (--eos-id) into o->eos. */
static void parse_eos(sample_opts *o, const char *arg)
{
	o->n_eos = 0;
	char *dup = xstrdup(arg), *save = NULL;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (o->n_eos == MAX_EOS)
			die_usage("--eos-id: more than %d ids", MAX_EOS);
		o->eos[o->n_eos++] = parse_long("--eos-id", t, 0, INT32_MAX);
	}
	if (!o->n_eos)
		die_usage("--eos-id: no id in '%s'", arg);
	free(dup);
}

/* A number of generation_config.json in [lo, hi], or die naming the key. */
static int gen_num(json_t *g, const char *path, const char *key, double lo, double hi, double *v)
{
	json_t *j = json_object_get(g, key);
	if (!j || json_is_null(j))
		return 0;
	if (!json_is_number(j) || json_number_value(j) < lo || json_number_value(j) > hi)
		die("%s: \"%s\" must be a number in [%g, %g]", path, key, lo, hi);
	*v = json_number_value(j);
	return 1;
}

/* The model directory's generation_config.json, as transformers reads it:
 * temperature, top_k, top_p, repetition_penalty, do_sample (false: greedy)
 * and eos_token_id (one id or a list) become the defaults; keys it lacks
 * keep lbdpo-sample's own. Returns whether eos ids were set. */
static int gen_config(const char *model_path, sample_opts *o)
{
	char *path = path_join(model_path, "generation_config.json");
	json_error_t je;
	json_t *g = access(path, F_OK) ? NULL : json_load_file(path, 0, &je);
	if (!g && !access(path, F_OK))
		die("%s: line %d: %s", path, je.line, je.text);
	int have_eos = 0;
	if (g) {
		if (!json_is_object(g))
			die("%s: not a JSON object", path);
		double v;
		if (gen_num(g, path, "temperature", 0, 100, &v))
			o->temperature = v;
		if (gen_num(g, path, "top_k", 0, 1 << 30, &v))
			o->top_k = (int)v;
		if (gen_num(g, path, "top_p", 0, 1, &v))
			o->top_p = v > 0 ? v : 1e-9;
		if (gen_num(g, path, "repetition_penalty", 1e-6, 1e6, &v))
			o->rep_penalty = v;
		json_t *ds = json_object_get(g, "do_sample");
		if (ds && !json_is_boolean(ds))
			die("%s: \"do_sample\" must be true or false", path);
		if (json_is_false(ds))
			o->temperature = 0;
		json_t *e = json_object_get(g, "eos_token_id");
		if (json_is_integer(e))
			e = json_pack("[O]", e);
		else
			json_incref(e);
		if (e && !json_is_null(e)) {
			if (!json_is_array(e) || json_array_size(e) > MAX_EOS)
				die("%s: \"eos_token_id\" must be an id or a list of at most %d ids", path, MAX_EOS);
			o->n_eos = 0;
			for (size_t i = 0; i < json_array_size(e); i++) {
				json_t *x = json_array_get(e, i);
				if (!json_is_integer(x) || json_integer_value(x) < 0 ||
				    json_integer_value(x) > INT32_MAX)
					die("%s: \"eos_token_id\"[%zu]: not a token id", path, i);
				o->eos[o->n_eos++] = json_integer_value(x);
			}
			have_eos = 1;
		}
		json_decref(e);
		json_decref(g);
	}
	free(path);
	return have_eos;
}

/* --greedy: temperature 0 */
static void set_greedy(void *temperature, const char *arg)
{
	(void)arg;
	*(double *)temperature = 0;
}

int main(int argc, char **argv)
{
	sample_opts o = {.temperature = 1, .top_k = 0, .top_p = 1, .rep_penalty = 1, .seed = 1, .max_new = 64, .n = 1};
	const char *model_path = NULL, *adapter = NULL, *tok_path = NULL, *in_path = "-", *out_path = "-",
		   *tpl_name = NULL;
	int no_eos = 0, no_bos = 0, ignore_prov = 0;
	const char *eos_arg = NULL;
	backend_opts bo = {0};
	const cli_opt opts[] = {
		OPT_STRING_REQUIRED('m', "model", "PATH", &model_path,
				    "model: Hugging Face directory, checkpoint, or llama2.c .bin"),
		OPT_STRING(
			0, "tokenizer", "FILE", &tok_path,
			"tokenizer.json, SentencePiece tokenizer.model, llama2.c tokenizer.bin or a model directory "
			"(default: the model directory's tokenizer.json or tokenizer.model; needed for JSONL input)"),
		OPT_STRING('i', "input", "FILE", &in_path, "input (default: stdin)"),
		OPT_STRING('o', "output", "FILE", &out_path, "output JSONL (default: stdout)"),
		CLI_SECTION("Sampling (defaults: the model directory's generation_config.json, else those below):"),
		OPT_CALLBACK(0, "greedy", NULL, set_greedy, &o.temperature,
			     "take the most likely token (same as --temperature 0)"),
		OPT_DOUBLE(0, "temperature", "T", &o.temperature, 0, 100, "sampling temperature, 0 = greedy"),
		OPT_INT(0, "top-k", "K", &o.top_k, 0, 1 << 30, "sample among the K most likely tokens, 0 = all"),
		OPT_DOUBLE(0, "top-p", "P", &o.top_p, 1e-9, 1, "nucleus: the smallest set with mass >= P, 1 = off"),
		OPT_DOUBLE(
			0, "repetition-penalty", "R", &o.rep_penalty, 1e-6, 1e6,
			"divide positive logits of ids already in the prompt or sample by R, multiply negative ones, 1 = "
			"off"),
		OPT_STRING(
			0, "eos-id", "ID[,ID...]", &eos_arg,
			"stop tokens (default: generation_config.json's eos_token_id, else the tokenizer's EOS, else the "
			"model's)"),
		OPT_BOOL(0, "no-eos", &no_eos, "never stop early at an end-of-sequence token"),
		OPT_INT(0, "seed", "N", &o.seed, 0, INT64_MAX, "random seed"),
		OPT_INT(0, "max-new-tokens", "N", &o.max_new, 1, 1 << 24, "stop after N new tokens"),
		OPT_INT(0, "n", "N", &o.n, 1, 1 << 20, "samples per prompt"),
		CLI_SECTION("Other:"),
		OPT_BOOL(0, "no-bos", &no_bos, "do not prepend BOS to JSONL prompts"),
		OPT_BOOL(
			0, "logprobs", &o.logprobs,
			"rollout records for lbdpo-step --loss ppo|grpo|rloo: add prompt_ids, token_logps (the model's "
			"log-probs at temperature 1 of ids and of the stop token) and eos_id"),
		OPT_STRING(0, "template", "NAME|FILE", &tpl_name,
			   "chat template for message-list prompts: a Jinja file, or chatml, llama3, hh (default: the "
			   "tokenizer's own chat_template)"),
		OPT_BOOL('q', "quiet", &lbdpo_quiet, "no progress lines and no summary"),
		BACKEND_CLI_OPTS(&bo),
		ADAPTER_CLI_OPT(&adapter),
		OPT_BOOL(0, "ignore-provenance", &ignore_prov,
			 "use a tokenizer or records of another tokenizer than the model's (warns; default: refuse)"),
		CLI_GONE(0, NULL,
			 "-t no longer names the tokenizer (-t is --threads in every program that computes): give "
			 "--tokenizer FILE"),
		{0}};
	const cli_spec spec = {"lbdpo-sample", "lbdpo-sample -m MODEL [OPTIONS] [-i INPUT] [-o OUTPUT]",
			       "Generate continuations of prompts (JSONL with \"prompt\", or token records with\n"
			       "\"prompt_ids\") and write JSON Lines with the text and token ids.",
			       opts, print_version};
	cli c;
	program_start(&c, &spec, argc, argv);
	cli_parse(&c, 0);
	if (eos_arg)
		parse_eos(&o, eos_arg);
	backend_opts_apply(&bo);

	FILE *in = in_open(in_path);
	int is_jsonl = input_is_jsonl(in);
	if (is_jsonl < 0)
		die("%s: empty input", in_name(in_path));

	lora *lo;
	char *base_owned;
	const char *base;
	model *m = adapter_model_load(model_path, adapter, 1, &lo, &base_owned, &base);
	model_need_lm(m, model_path);
	const model_config *cfg = model_cfg(m);
	model_tok mt;
	/* an adapter directory without tokenizer files: its base's */
	char *own_tok = tok_path || base == model_path ? NULL : tok_file_in(model_path);
	const char *tok_dir_of = tok_path || base == model_path || own_tok ? model_path : base;
	free(own_tok);
	model_tok_open(&mt, m, tok_dir_of, tok_path, tpl_name, ignore_prov);
	tok *tk = mt.tk;
	pref_tpl *tpl = mt.tpl;
	if (is_jsonl && !tk)
		die_usage("JSONL input needs --tokenizer (the model has no tokenizer.json or tokenizer.model)");
	sample_opts from_file = o; /* the file's values where it has them */
	int gen_eos = gen_config(model_path, &from_file);
	if (!eos_arg) {
		if (gen_eos)
			memcpy(o.eos, from_file.eos, sizeof o.eos), o.n_eos = from_file.n_eos;
		else if (tk && tok_eos(tk) >= 0)
			o.eos[0] = tok_eos(tk), o.n_eos = 1;
		else if (cfg->eos_id >= 0)
			o.eos[0] = cfg->eos_id, o.n_eos = 1;
	}
	/* sampling options given on the command line win over the file */
	if (!cli_given(&c, "temperature") && !cli_given(&c, "greedy"))
		o.temperature = from_file.temperature;
	if (!cli_given(&c, "top-k"))
		o.top_k = from_file.top_k;
	if (!cli_given(&c, "top-p"))
		o.top_p = from_file.top_p;
	if (!cli_given(&c, "repetition-penalty"))
		o.rep_penalty = from_file.rep_penalty;
	if (no_eos)
		o.n_eos = 0;
	strbuf rendered = {0};

	sampler s = {.m = m, .tk = tk, .o = &o};
	/* a padded vocabulary's rows beyond the tokenizer's are never sampled
	 * (transformers could draw one: it has no text) */
	s.V_pick = tk ? (int)tok_vocab_size(tk) : cfg->vocab_size;
	s.kv = model_kv_new(m, cfg->max_seq_len);
	s.logits = xmalloc((size_t)cfg->vocab_size * sizeof *s.logits);
	s.c = xmalloc((size_t)cfg->vocab_size * sizeof *s.c);
	s.mark = xcalloc((size_t)cfg->vocab_size, 1);
	if (o.logprobs) {
		s.raw = xmalloc((size_t)cfg->vocab_size * sizeof *s.raw);
		s.glp = xmalloc(((size_t)o.max_new + 1) * sizeof *s.glp);
	}
	outfile *out = out_open(out_path);
	s.out = out->fp;
	progress_init(&s.pm, 0, "samples");
	uint32_t *ids = NULL;
	size_t nids = 0, cap = 0;
	char where[512];

	if (is_jsonl) {
		/* the shared JSONL reader: its line and value limits */
		jsonl *jr = jsonl_open_fp(in, in_name(in_path));
		const char *line;
		size_t len;
		int rc;
		while ((rc = jsonl_next(jr, &line, &len)) == 1) {
			uint64_t lineno = jsonl_lineno(jr);
			snprintf(where, sizeof where, "%s: line %llu", in_name(in_path), (unsigned long long)lineno);
			char perr[512];
			json_t *j = jsonl_parse(line, len, perr, sizeof perr);
			if (!j)
				die("%s: %s", where, perr);
			if (pref_prompt_ids(tk, tpl, j, !no_bos, &rendered, &ids, &nids, &cap, perr, sizeof perr))
				die("%s: %s", where, perr);
			run_prompt(&s, ids, (int)nids, lineno, j, where);
			json_decref(j);
		}
		if (rc < 0)
			die("%s: %s", in_name(in_path), jsonl_error(jr));
		jsonl_close(jr);
		if (in != stdin)
			fclose(in);
	} else {
		rs_reader *r = rs_open_fp(in, in_name(in_path), NULL);
		provenance pv;
		prov_read(r, cfg->vocab_size, &pv);
		prov_check(&pv, rs_name(r), model_path, NULL, 0, NULL, ignore_prov);
		const msgpack_object *rec;
		while (rs_next(r, &rec)) {
			snprintf(where, sizeof where, "%s: record %llu", rs_name(r), (unsigned long long)rs_index(r));
			if (!rs_get_ids(r, rec, KEY_PROMPT_IDS, (uint32_t)cfg->vocab_size, &ids, &nids, &cap))
				rs_die(r, "no prompt_ids");
			json_t *base = json_object();
			for (uint32_t i = 0; i < rec->via.map.size; i++) {
				const msgpack_object_kv *kv = &rec->via.map.ptr[i];
				if (kv->key.type != MSGPACK_OBJECT_STR)
					continue;
				char key[256];
				size_t kn = kv->key.via.str.size < 255 ? kv->key.via.str.size : 255;
				memcpy(key, kv->key.via.str.ptr, kn);
				key[kn] = 0;
				json_t *v = scalar_json(&kv->val);
				if (v)
					json_object_set_new(base, key, v);
			}
			if (tk && !json_object_get(base, "prompt")) {
				long len = decode_known(&s, ids, nids, TOK_SKIP_SPECIAL);
				if (len >= 0)
					json_object_set_new(base, "prompt",
							    valid_utf8_json(s.text, (size_t)len, &s.fix, &s.fix_cap));
			}
			json_t *pids = json_array();
			for (size_t i = 0; i < nids; i++)
				json_array_append_new(pids, json_integer(ids[i]));
			json_object_set_new(base, "prompt_ids", pids);
			run_prompt(&s, ids, (int)nids, rs_index(r), base, where);
			json_decref(base);
		}
		rs_close(r);
	}
	out_close(out);
	double dt = progress_end(&s.pm);
	info("%ld samples, %ld new tokens in %.2fs (%.0f tokens/s) on %s", s.n_out, s.n_tokens, dt,
	     dt > 0 ? s.n_tokens / dt : 0.0, backend_device());
	free(ids);
	sb_free(&rendered);
	free(s.gen);
	free(s.text);
	free(s.fix);
	free(s.logits);
	free(s.raw);
	free(s.glp);
	free(s.c);
	free(s.mark);
	free(s.seen);
	free(s.known);
	model_kv_free(s.kv);
	model_tok_close(&mt);
	model_free(m);
	lora_free(lo);
	free(base_owned);
	close_stdout();
	return 0;
}
