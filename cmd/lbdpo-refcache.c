/* lbdpo-refcache — attach reference-model scores to token pairs, computing
 * each (reference, record) once: a persistent cache (formats/refcache.h),
 * deterministic sharding, and a merge of shard outputs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pairs.h"
#include "formats/records.h"
#include "libcore/dist/dist.h"
#include "libcore/dist/distrec.h"
#include "libcore/nn/model.h"
#include "formats/refcache.h"
#include "libcore/train/adapter.h"
#include "libcore/train/score.h"
#include "libcore/train/eval.h"
#include "libcore/train/rlstep.h"
#include "libcore/train/samples.h"
#include "libcore/nn/backend_opts.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/util.h"
#include "formats/schema.h"

/* One record between reading and writing. */
typedef struct {
	held_pair h;
	uint8_t key[32];
	refcache_val v;
	int state; /* 0 known (cache or earlier record), 1 to compute, 2 same key as a record to compute */
} item;

typedef struct {
	const model *m;
	model_ws *ws;
	refcache *cache;
	distrec *d;
	rs_writer *w; /* distrec_writer(d) */
	item *win;    /* the window: records not yet written, in input order */
	int n, cap;
	long pend_tokens; /* tokens of state-1 records in the window */
	int pend;
	uint64_t computed, cached, tok_computed, written;
} state;

static void emit(state *s, item *it)
{
	rs_rec_begin(s->w, pair_obj(&it->h));
	rs_put_f64(s->w, KEY_REF_CHOSEN_LOGP, it->v.chosen_logp);
	rs_put_f64(s->w, KEY_REF_REJECTED_LOGP, it->v.rejected_logp);
	rs_put_i64(s->w, KEY_REF_CHOSEN_N, it->v.chosen_n);
	rs_put_i64(s->w, KEY_REF_REJECTED_N, it->v.rejected_n);
	rs_put_f64(s->w, KEY_REF_PROMPT_LOGP, it->v.prompt_logp);
	rs_put_f64(s->w, KEY_REF_PROMPT_ENTROPY, it->v.prompt_entropy);
	rs_rec_end(s->w);
	distrec_mark(s->d);
	s->written++;
}

/* Score the window's pending records in one forward, store them in the cache
 * (one append per batch), write the whole window in input order. */
static void process(state *s)
{
	if (s->pend) {
		score_pair *pp = xmalloc(s->pend * sizeof *pp);
		score_out *out = xcalloc(s->pend, sizeof *out);
		int k = 0;
		for (int i = 0; i < s->n; i++)
			if (s->win[i].state == 1)
				pp[k++] = s->win[i].h.pair;
		score_pairs(s->m, s->ws, pp, k, out);
		k = 0;
		for (int i = 0; i < s->n; i++) {
			item *it = &s->win[i];
			if (it->state != 1)
				continue;
			const score_out *o = &out[k++];
			it->v = (refcache_val){.chosen_logp = o->chosen_logp,
					       .rejected_logp = o->rejected_logp,
					       .prompt_logp = o->prompt_logp,
					       .prompt_entropy = o->prompt_entropy,
					       .chosen_n = o->chosen_n,
					       .rejected_n = o->rejected_n,
					       .prompt_n = it->h.pair.n_prompt};
			refcache_put(s->cache, it->key, &it->v);
			s->computed++;
			s->tok_computed += (uint64_t)score_pair_tokens(&it->h.pair);
		}
		refcache_flush(s->cache);
		free(pp);
		free(out);
	}
	for (int i = 0; i < s->n; i++) {
		item *it = &s->win[i];
		if (it->state == 2 && !refcache_get(s->cache, it->key, &it->v))
			BUG("a duplicate record's score is missing");
		emit(s, it);
	}
	s->n = 0;
	s->pend = 0;
	s->pend_tokens = 0;
}

static int counts_match(const refcache_val *v, const score_pair *p)
{
	return v->chosen_n == p->n_chosen && v->rejected_n == p->n_rejected && v->prompt_n == p->n_prompt;
}

/* After input record k (every rank reads every record): at the end of a
 * round, score what is pending and send it to rank 0 (libcore/dist/distrec.h). */
static void end_of_round(state *s, uint64_t k)
{
	if (distrec_after(s->d, k)) {
		process(s);
		distrec_round(s->d, 0);
	}
}

typedef struct {
	long i, n;
} shard_opt;

/* --shard I/N into a shard_opt */
static void parse_shard(void *dest, const char *s)
{
	long *i = &((shard_opt *)dest)->i, *n = &((shard_opt *)dest)->n;
	const char *slash = strchr(s, '/');
	if (!slash)
		die_usage("option --shard: '%s' is not I/N", s);
	char a[32];
	size_t la = (size_t)(slash - s);
	if (la == 0 || la >= sizeof a)
		die_usage("option --shard: '%s' is not I/N", s);
	memcpy(a, s, la);
	a[la] = 0;
	*n = parse_long("--shard (N)", slash + 1, 1, 1L << 20);
	*i = parse_long("--shard (I)", a, 0, *n - 1);
}

static int get_fp(rs_reader *r, const msgpack_object *hd, const char *key, const char **fp, size_t *n)
{
	const msgpack_object *o = rs_get(hd, key);
	if (!o)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		rs_die(r, "header: \"%s\" is not a map", key);
	if (!rs_get_str(r, o, HDR_FINGERPRINT, fp, n))
		rs_die(r, "header: \"%s\" has no fingerprint", key);
	return 1;
}

/* ---- --merge ---- */

/* shard.input: "sha256:<hex>" of the input file, or "header-sha256:<hex>" of
 * its header when it came through a pipe */
#define SHARD_INPUT "input"

static int merge(int nf, char **files, const char *outp, int argc, char **argv)
{
	if (nf < 1)
		die_usage("--merge needs the shard files as arguments");
	rs_reader **rd = xcalloc(nf, sizeof *rd);
	const char *fp0 = NULL, *in0 = NULL;
	size_t fp0n = 0, in0n = 0;
	for (int f = 0; f < nf; f++) {
		rs_reader *r = rs_open(files[f], "ref");
		const msgpack_object *hd = rs_header(r), *sh = rs_get(hd, "shard");
		int64_t idx, cnt;
		if (!sh || sh->type != MSGPACK_OBJECT_MAP)
			rs_die(r, "header has no \"shard\" map: not an lbdpo-refcache --shard output");
		rs_req(r, rs_get_i64(r, sh, "index", &idx), "shard.index");
		rs_req(r, rs_get_i64(r, sh, "count", &cnt), "shard.count");
		if (cnt != nf)
			rs_die(r, "shard %lld of %lld, but %d files were given", (long long)idx, (long long)cnt, nf);
		if (idx < 0 || idx >= nf || rd[idx])
			rs_die(r, "shard index %lld is out of range or given twice", (long long)idx);
		const char *fp, *inp;
		size_t fpn, inn;
		rs_req(r, get_fp(r, hd, HDR_REFERENCE, &fp, &fpn), HDR_REFERENCE);
		if (!rs_get_str(r, sh, SHARD_INPUT, &inp, &inn))
			rs_die(r,
			       "header has no \"shard.%s\": a shard of an older lbdpo-refcache, which merge "
			       "cannot check; run it again",
			       SHARD_INPUT);
		/* the first file is the one every other is compared with */
		if (f && (fpn != fp0n || memcmp(fp, fp0, fpn)))
			die("%s and %s are shards of different reference models (%.*s, %.*s): refusing to merge",
			    files[0], files[f], (int)fp0n, fp0, (int)fpn, fp);
		if (f && (inn != in0n || memcmp(inp, in0, inn)))
			die("%s and %s are shards of different inputs (%.*s, %.*s): refusing to merge", files[0],
			    files[f], (int)in0n, in0, (int)inn, inp);
		if (!f) {
			fp0 = fp, fp0n = fpn;
			in0 = inp, in0n = inn;
		}
		rd[idx] = r;
	}
	rs_writer *w = rs_create(outp);
	rs_header_begin(w, rs_header(rd[0]), "ref", argc, argv);
	rs_drop(w, "shard");
	rs_header_end(w);
	/* Record j of the input went to shard j mod N: take one from each
	 * shard in turn. When shard e first runs out (in round q), the input
	 * had q*N + e records: shards after e must end in this round too and
	 * shards before e must end after exactly one more record each. */
	uint64_t n = 0;
	for (;;) {
		int e = -1;
		for (int k = 0; k < nf; k++) {
			const msgpack_object *rec;
			if (!rs_next(rd[k], &rec)) {
				e = k;
				break;
			}
			size_t len;
			const char *raw = rs_raw(rd[k], &len);
			rs_write_raw(w, raw, len);
			n++;
		}
		if (e < 0)
			continue;
		const msgpack_object *rec;
		for (int k = 0; k < nf; k++)
			if (k != e && rs_next(rd[k], &rec))
				rs_die(rd[k],
				       "shard has more records than shard %d allows: shards of "
				       "different inputs?",
				       e);
		break;
	}
	rs_finish(w);
	for (int k = 0; k < nf; k++)
		rs_close(rd[k]);
	free(rd);
	info("merged %d shards: %llu records", nf, (unsigned long long)n);
	close_stdout();
	return 0;
}

/* 1 when the input is JSON Lines (rollouts): its first byte peeked, and a
 * regular file on standard input put back where it was (rs_scan counts the
 * records from there). */
static int input_rollouts(const char *in)
{
	FILE *f = in_open(in);
	long off = f == stdin ? ftell(stdin) : -1;
	int j = input_is_jsonl(f);
	if (f != stdin)
		fclose(f);
	else if (off >= 0 && fseek(stdin, off, SEEK_SET) != 0)
		die("<stdin>: cannot seek back: %s", strerror(errno));
	return j == 1;
}

/* Rollouts of lbdpo-sample --logprobs (JSON Lines): "ref_token_logps" added
 * by lbdpo-logprob's code (one rollout per forward: a value depends on the
 * rollout's tokens only, so a cached value and a computed one are the same
 * bits), each rollout's values kept in the cache's per-token segments. */
static void score_rollouts(model *m, const char *fp, const char *ref, const char *base, const char *cache_dir,
			   const char *in, const char *outp, int ignore_prov, double t0)
{
	/* the provenance rule: each line's ids are its text in the reference's
	 * tokenizer (when the model ships one) */
	model_tok t;
	model_tok_open(&t, m, base, NULL, NULL, ignore_prov);
	refcache *cache = refcache_open_tokens(cache_dir, fp, ref);
	const refcache_stats *cst = refcache_get_stats(cache);
	FILE *f = in_open(in);
	rl_logprobs_run run = {
		.key = "ref_token_logps", .one_per_forward = 1, .cache = cache, .tok = &t, .ignore_prov = ignore_prov};
	rl_rollout_logprobs(m, f, in_name(in), outp, &run);
	if (f != stdin)
		fclose(f);
	double dt = now_s() - t0;
	info("%llu rollouts: %llu computed, %llu from cache; %llu tokens computed in %.2f s (%.0f tokens/s) on %s; "
	     "cache: %llu entries loaded, %llu torn tails ignored, %llu written",
	     (unsigned long long)run.n_lines, (unsigned long long)run.n_computed, (unsigned long long)run.n_cached,
	     (unsigned long long)run.tok_computed, dt, run.tok_computed / (dt > 0 ? dt : 1), backend_device(),
	     (unsigned long long)cst->loaded, (unsigned long long)cst->corrupt, (unsigned long long)cst->written);
	refcache_close(cache);
	model_tok_close(&t);
}

int main(int argc, char **argv)
{
	const char *ref = NULL, *cache_dir = getenv("LBDPO_REFCACHE"), *in = NULL, *outp = NULL, *adapter = NULL;
	const char *tok_sha = NULL;
	long batch_tokens = 0;
	shard_opt shard = {0, 1};
	int do_merge = 0, ignore_prov = 0;
	char about[512];
	snprintf(about, sizeof about,
		 "Attach reference scores to each record: ref_chosen_logp, ref_rejected_logp,\n"
		 "ref_chosen_n, ref_rejected_n, ref_prompt_logp, ref_prompt_entropy. Scores\n"
		 "found in the cache are not computed again. Given rollouts (JSON Lines of\n"
		 "lbdpo-sample --logprobs), add \"ref_token_logps\", lbdpo-logprob -b 0's values,\n"
		 "each rollout's cached too.\n%s",
		 dist_help_text());
	backend_opts bo = {0};
	const cli_opt opts[] = {
		OPT_STRING('m', "model", "MODEL", &ref, "reference model: HF directory or llama2.c .bin"),
		OPT_STRING('c', "cache", "DIR", &cache_dir,
			   "persistent score cache (default: $LBDPO_REFCACHE, else none)"),
		OPT_STRING('i', "input", "FILE", &in, "token records to read (default: standard input)"),
		OPT_STRING('o', "output", "FILE", &outp, "records to write (default: standard output)"),
		OPT_CALLBACK('s', "shard", "I/N", parse_shard, &shard,
			     "process only records with index mod N == I (0-based)"),
		OPT_BOOL(0, "merge", &do_merge, "join shard outputs (the arguments) back into input order"),
		OPT_STRING(0, "tokenizer-sha", "SHA", &tok_sha, "refuse input whose header names another tokenizer"),
		OPT_INT('b', "batch-tokens", "N", &batch_tokens, 0, 1L << 24,
			"pack pairs into forwards of up to N tokens; 0 (default): one pair per forward, scores independent of "
			"batching (rollouts: always one per forward)"),
		BACKEND_CLI_OPTS(&bo),
		ADAPTER_CLI_OPT(&adapter),
		OPT_BOOL(0, "ignore-provenance", &ignore_prov,
			 "score records of another tokenizer than the model's (warns; default: refuse)"),
		OPT_BOOL('q', "quiet", &lbdpo_quiet, "no summary line on standard error"),
		CLI_ALIAS('r', "ref", "model"),
		{0}};
	const cli_spec spec = {"lbdpo-refcache",
			       "lbdpo-refcache -m MODEL [-c DIR] [OPTIONS] [< pairs.tok] [> pairs.ref]\n"
			       "lbdpo-refcache -m MODEL [-c DIR] [OPTIONS] [< rollouts.jsonl] [> rollouts.ref.jsonl]\n"
			       "lbdpo-refcache --merge [-o pairs.ref] SHARD...",
			       about, opts, print_version};
	cli c;
	program_start(&c, &spec, argc, argv);
	cli_parse(&c, -1);
	if (do_merge) {
		if (ref || in)
			die_usage("--merge takes shard files only (no --model, --input)");
		return merge(argc - c.ind, argv + c.ind, outp, argc, argv);
	}
	cli_end(&c, 0);
	if (!ref)
		die_usage("--model MODEL is required");
	/* Under mpirun every rank reads the input and takes its 1/N of the
	 * records by the --shard rule; rank 0 writes the whole output. */
	dist_init(&argc, &argv);
	int rank = dist_rank(), nrank = dist_size();
	if (nrank > 1 && shard.n > 1)
		dist_die_usage("--shard and %d MPI ranks: the ranks already split the records", nrank);
	if (nrank > 1 && (!in || !strcmp(in, "-")))
		dist_die_usage("with %d MPI ranks the input must be a file every rank can read "
			       "(-i FILE), not standard input",
			       nrank);
	if (cache_dir && !*cache_dir)
		cache_dir = NULL;
	const int rollouts = input_rollouts(in); /* every rank: with several, in is a file */
	if (rollouts && (nrank > 1 || shard.n > 1))
		dist_die_usage("rollouts (JSON Lines) are scored by one process: no --shard, no mpirun");
	if (rollouts && (tok_sha || batch_tokens))
		die_usage("%s: rollouts (JSON Lines) have no header naming a tokenizer and are scored one per forward",
			  tok_sha ? "--tokenizer-sha" : "--batch-tokens");
	backend_opts_apply(&bo);

	double t0 = now_s();
	lora *lo;
	char *base_owned;
	const char *base;
	model *m = adapter_model_load(ref, adapter, 1, &lo, &base_owned, &base);
	model_need_lm(m, ref);
	const model_config *cfg = model_cfg(m);
	char fp[65];
	model_fingerprint(m, fp);
	if (rollouts) {
		score_rollouts(m, fp, ref, base, cache_dir, in, outp, ignore_prov, t0);
		model_free(m);
		lora_free(lo);
		free(base_owned);
		close_stdout();
		dist_finalize();
		return 0;
	}

	/* The input read through once first (a file: not a pipe): its record
	 * count is the progress total, its sha256 a shard's input identity. */
	uint64_t n_total = 0;
	char in_sha[65] = "";
	int scanned = (shard.n > 1 || (rank == 0 && !lbdpo_quiet)) &&
		      rs_scan(in, &n_total, shard.n > 1 ? in_sha : NULL) == 0;
	rs_reader *r = rs_open(in, NULL);
	const msgpack_object *hd = rs_header(r);
	char in_id[80] = "";
	if (shard.n > 1 && scanned) {
		snprintf(in_id, sizeof in_id, "sha256:%s", in_sha);
	} else if (shard.n > 1) { /* a pipe: its header is all there is to know */
		size_t hn;
		const char *hb = rs_raw(r, &hn);
		sha256_hex(hb, hn, in_sha);
		snprintf(in_id, sizeof in_id, "header-sha256:%s", in_sha);
	}
	pairs_check_header(r, cfg->vocab_size, tok_sha);
	provenance pv;
	prov_read(r, cfg->vocab_size, &pv);
	prov_check(&pv, rs_name(r), base, NULL, 0, NULL, ignore_prov);
	const char *old_fp;
	size_t old_n;
	int had_ref = get_fp(r, hd, HDR_REFERENCE, &old_fp, &old_n);
	if (had_ref && (old_n != 64 || memcmp(old_fp, fp, 64)))
		rs_die(r, "the stream already carries reference scores of model %.*s, not of %s (%s)",
		       (int)(old_n > 64 ? 64 : old_n), old_fp, fp, ref);
	if (rs_get(hd, "shard"))
		rs_die(r, "input is one shard of an lbdpo-refcache output; merge the shards first");

	state s = {.m = m, .ws = model_ws_new(m)};
	s.cache = refcache_open(cache_dir, fp, ref);
	const refcache_stats *cst = refcache_get_stats(s.cache);
	rs_writer *out = rank == 0 ? rs_create(outp) : NULL;
	if (out) {
		rs_header_begin(out, hd, "ref", argc, argv);
		pairs_put_model(out, HDR_REFERENCE, ref, fp);
		if (shard.n > 1) {
			msgpack_packer *pk = rs_put_key(out, "shard");
			msgpack_pack_map(pk, 3);
			msgpack_pack_str_with_body(pk, "index", 5);
			msgpack_pack_int64(pk, shard.i);
			msgpack_pack_str_with_body(pk, "count", 5);
			msgpack_pack_int64(pk, shard.n);
			msgpack_pack_str_with_body(pk, SHARD_INPUT, strlen(SHARD_INPUT));
			msgpack_pack_str_with_body(pk, in_id, strlen(in_id));
		}
		rs_header_end(out);
	}
	s.d = distrec_new(out);
	s.w = distrec_writer(s.d);

	progress_meter pm;
	progress_init(&pm, scanned ? (long)n_total : 0, "records read");
	const msgpack_object *rec;
	uint64_t k = 0, n_in = 0;
	for (; rs_next(r, &rec); end_of_round(&s, k++)) {
		if (shard.n > 1 ? (long)(k % (uint64_t)shard.n) != shard.i : !distrec_mine(s.d, k))
			continue;
		n_in++;
		if (!had_ref && rs_get(rec, KEY_REF_CHOSEN_LOGP))
			rs_die(r, "record carries ref_chosen_logp but the header names no reference "
				  "model: refusing scores of unknown origin");
		if (s.n == s.cap) {
			int nc = s.cap ? 2 * s.cap : 64;
			s.win = xrealloc(s.win, nc * sizeof *s.win);
			memset(s.win + s.cap, 0, (nc - s.cap) * sizeof *s.win);
			s.cap = nc;
		}
		item *it = &s.win[s.n];
		pair_hold(&it->h, r, rec, (uint32_t)cfg->vocab_size, cfg->max_seq_len);
		const score_pair *p = &it->h.pair;
		refcache_key(p->prompt, p->n_prompt, p->chosen, p->n_chosen, p->rejected, p->n_rejected, it->key);
		int known = refcache_get(s.cache, it->key, &it->v) && counts_match(&it->v, p);
		if (known) {
			it->state = 0;
			s.cached++;
		} else {
			/* The first record with this content is computed; later
			 * ones in the same window take its score, so a record's
			 * score never depends on whether a copy came first. */
			it->state = 1;
			for (int j = 0; j < s.n; j++)
				if (s.win[j].state == 1 && !memcmp(s.win[j].key, it->key, 32)) {
					it->state = 2;
					s.cached++;
					break;
				}
		}
		if (it->state == 1) {
			long t = score_pair_tokens(p);
			if (s.pend && s.pend_tokens + t > batch_tokens) {
				/* Greedy packing over the records still to compute:
				 * a re-run after a kill packs the rest exactly as
				 * the killed run would have. */
				int last = s.n;
				process(&s);
				item tmp = s.win[0];
				s.win[0] = s.win[last];
				s.win[last] = tmp;
				it = &s.win[0];
			}
			s.pend++;
			s.pend_tokens += t;
			s.n++;
		} else if (!s.pend) {
			s.n++;
			process(&s); /* nothing to wait for: write it now */
		} else {
			s.n++;
			/* Bound the memory held behind a pending record. */
			if (s.n >= 4096)
				process(&s);
		}
		if (rank == 0) {
			double dt = now_s() - t0;
			progress_show(&pm, (long)k + 1, "%llu computed, %.0f tokens/s computed",
				      (unsigned long long)s.computed, s.tok_computed / (dt > 0 ? dt : 1));
		}
	}
	process(&s);
	distrec_round(s.d, 1);
	if (out)
		rs_finish(out);
	progress_end(&pm);
	rs_close(r);
	double dt = now_s() - t0;
	char sh[64] = "";
	if (shard.n > 1)
		snprintf(sh, sizeof sh, " (shard %ld/%ld)", shard.i, shard.n);
	/* One summary for the job: counts summed over ranks; the cache
	 * figures loaded and damaged are rank 0's (each rank reads the cache). */
	double tot[5] = {(double)n_in, (double)s.computed, (double)s.cached, (double)s.tok_computed,
			 (double)cst->written};
	dist_allreduce_sum_f64(tot, 5);
	n_in = (uint64_t)tot[0], s.computed = (uint64_t)tot[1], s.cached = (uint64_t)tot[2];
	s.tok_computed = (uint64_t)tot[3];
	uint64_t cwritten = (uint64_t)tot[4];
	if (nrank > 1)
		snprintf(sh, sizeof sh, " (%d ranks)", nrank);
	if (rank == 0)
		info("%llu records%s: %llu computed, %llu from cache; %llu tokens computed in %.2f s "
		     "(%.0f tokens/s) on %s; cache: %llu entries loaded, %llu damaged ranges ignored, %llu written",
		     (unsigned long long)n_in, sh, (unsigned long long)s.computed, (unsigned long long)s.cached,
		     (unsigned long long)s.tok_computed, dt, s.tok_computed / (dt > 0 ? dt : 1), backend_device(),
		     (unsigned long long)cst->loaded, (unsigned long long)cst->corrupt, (unsigned long long)cwritten);
	refcache_close(s.cache);
	for (int i = 0; i < s.cap; i++)
		pair_free(&s.win[i].h);
	free(s.win);
	model_ws_free(s.ws);
	model_free(m);
	lora_free(lo);
	free(base_owned);
	distrec_free(s.d);
	close_stdout();
	dist_finalize();
	return 0;
}
