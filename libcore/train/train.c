/* train.c — records in memory, checkpoints, batch scoring (see train.h). */
#define _GNU_SOURCE
#include "libcore/train/train.h"

#include "formats/jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <ctype.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/records.h"
#include "formats/safetensors.h"
#include "base/util.h"
#include "formats/schema.h"

/* ---------------- records ---------------- */

static int group_index(pref_set *s, const char *g, size_t n)
{
	for (int i = 0; i < s->n_groups; i++)
		if (strlen(s->groups[i]) == n && !memcmp(s->groups[i], g, n))
			return i;
	s->groups = xrealloc(s->groups, sizeof(char *) * (size_t)(s->n_groups + 1));
	char *c = xmalloc(n + 1);
	memcpy(c, g, n);
	c[n] = 0;
	s->groups[s->n_groups] = c;
	return s->n_groups++;
}

static int is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* "key": {..., sub: <64 hex>} -> out ("" when the key is absent) */
static void header_hash(rs_reader *r, const char *key, const char *sub, char out[65])
{
	const msgpack_object *o = rs_get(rs_header(r), key);
	out[0] = 0;
	if (!o)
		return;
	if (o->type != MSGPACK_OBJECT_MAP)
		rs_die(r, "header: \"%s\" is not a map", key);
	const char *v;
	size_t n;
	if (!rs_get_str(r, o, sub, &v, &n))
		rs_die(r, "header: \"%s\" has no %s", key, sub);
	if (!is_hex64(v, n))
		rs_die(r, "header: %s %s '%.*s' is not 64 lowercase hex digits", key, sub, (int)(n > 80 ? 80 : n), v);
	memcpy(out, v, 64);
	out[64] = 0;
}

void prov_read(rs_reader *r, int model_vocab, provenance *p)
{
	memset(p, 0, sizeof *p);
	const char *k;
	size_t kn;
	rs_req(r, rs_get_str(r, rs_header(r), HDR_KIND, &k, &kn), HDR_KIND);
	snprintf(p->kind, sizeof p->kind, "%.*s", (int)kn, k);
	header_hash(r, HDR_TOKENIZER, HDR_SHA256, p->tok_sha);
	header_hash(r, HDR_REFERENCE, HDR_FINGERPRINT, p->ref_fp);
	const msgpack_object *tok = rs_get(rs_header(r), HDR_TOKENIZER);
	int64_t v;
	if (tok && rs_get_i64(r, tok, HDR_VOCAB_SIZE, &v)) {
		if (v < 1 || (model_vocab > 0 && v > model_vocab))
			rs_die(r, "header: the tokenizer's vocab_size %lld does not fit the model's vocabulary of %d",
			       (long long)v, model_vocab);
		p->tok_vocab = v;
	}
}

pref_set *pref_load(const char *path, int need_ref, uint32_t vocab)
{
	rs_reader *r = rs_open(path, need_ref ? "ref" : "tokens,ref");
	pref_set *s = xcalloc(1, sizeof *s);
	s->name = xstrdup(rs_name(r));
	prov_read(r, (int)vocab, &s->prov);
	if (s->prov.tok_vocab > 0 && (vocab == 0 || s->prov.tok_vocab < vocab))
		vocab = (uint32_t)s->prov.tok_vocab; /* ids beyond the tokenizer's vocabulary are corrupt */
	if (need_ref && !s->prov.ref_fp[0])
		rs_die(r, "header: a stream of kind 'ref' names no reference model (\"reference\" with a fingerprint)");
	size_t cap = 0;
	const msgpack_object *rec;
	while (rs_next(r, &rec)) {
		xgrow((void **)&s->r, &cap, (size_t)s->n + 1, sizeof(pref_rec));
		pref_rec *p = &s->r[s->n];
		memset(p, 0, sizeof *p);
		p->index = rs_index(r);
		p->offset = rs_offset(r);
		size_t n, c0 = 0, c1 = 0, c2 = 0;
		rs_req(r, rs_get_ids(r, rec, KEY_PROMPT_IDS, vocab, &p->prompt, &n, &c0), KEY_PROMPT_IDS);
		p->np = (int)n;
		rs_req(r, rs_get_ids(r, rec, KEY_CHOSEN_IDS, vocab, &p->chosen, &n, &c1), KEY_CHOSEN_IDS);
		p->nc = (int)n;
		rs_req(r, rs_get_ids(r, rec, KEY_REJECTED_IDS, vocab, &p->rejected, &n, &c2), KEY_REJECTED_IDS);
		p->nr = (int)n;
		if (p->np < 1 || p->nc < 1 || p->nr < 1)
			rs_die(r, "empty prompt_ids, chosen_ids or rejected_ids");
		if (p->np > 1000000 || p->nc > 1000000 || p->nr > 1000000)
			rs_die(r, "sequence longer than 1000000 tokens");
		const char *str;
		size_t sl;
		p->group = -1;
		if (rs_get_str(r, rec, KEY_GROUP, &str, &sl))
			p->group = group_index(s, str, sl);
		if (rs_get_str(r, rec, KEY_ID, &str, &sl)) {
			p->id = xmalloc(sl + 1);
			memcpy(p->id, str, sl);
			p->id[sl] = 0;
		}
		int a = rs_get_f64(r, rec, KEY_REF_CHOSEN_LOGP, &p->ref_c);
		int b = rs_get_f64(r, rec, KEY_REF_REJECTED_LOGP, &p->ref_r);
		p->has_ref = a && b;
		if (need_ref) {
			rs_req(r, a, KEY_REF_CHOSEN_LOGP);
			rs_req(r, b, KEY_REF_REJECTED_LOGP);
		}
		int64_t cn;
		if (rs_get_i64(r, rec, KEY_REF_CHOSEN_N, &cn) && cn != p->nc)
			rs_die(r, "ref_chosen_n %lld differs from the %d chosen_ids: cache made from other tokens",
			       (long long)cn, p->nc);
		if (rs_get_i64(r, rec, KEY_REF_REJECTED_N, &cn) && cn != p->nr)
			rs_die(r, "ref_rejected_n %lld differs from the %d rejected_ids: cache made from other tokens",
			       (long long)cn, p->nr);
		if (rs_get_f64(r, rec, KEY_MARGIN, &p->margin) && !isfinite(p->margin))
			rs_die(r, "non-finite margin");
		p->has_plogp = rs_get_f64(r, rec, KEY_REF_PROMPT_LOGP, &p->ref_plogp);
		p->has_entropy = rs_get_f64(r, rec, KEY_REF_PROMPT_ENTROPY, &p->ref_entropy);
		if (!isfinite(p->ref_c) || !isfinite(p->ref_r) || !isfinite(p->ref_plogp) || !isfinite(p->ref_entropy))
			rs_die(r, "non-finite reference score");
		s->n++;
	}
	rs_close(r);
	return s;
}

void pref_check_context(const pref_set *s, int max_pos)
{
	for (int i = 0; max_pos > 0 && i < s->n; i++) {
		const pref_rec *p = &s->r[i];
		int longest = p->np + (p->nc > p->nr ? p->nc : p->nr);
		if (longest > max_pos)
			die("%s: record %llu (byte offset %llu): prompt + completion is %d tokens, more than the "
			    "model's context of %d positions",
			    s->name, (unsigned long long)p->index, (unsigned long long)p->offset, longest, max_pos);
	}
}

void pref_free(pref_set *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		free(s->r[i].prompt);
		free(s->r[i].chosen);
		free(s->r[i].rejected);
		free(s->r[i].id);
	}
	for (int i = 0; i < s->n_groups; i++)
		free(s->groups[i]);
	free(s->groups);
	free(s->r);
	free(s->name);
	free(s);
}

/* ---------------- checkpoints ---------------- */

/* The file that marks a directory as a checkpoint lbdpo wrote: --output
 * replaces nothing else. */
#define CKPT_MARKER ".lbdpo-checkpoint"

int ckpt_is(const char *path)
{
	char *p = path_join(path, "trainer_state.json");
	struct stat st;
	int r = stat(p, &st) == 0;
	free(p);
	return r;
}

static const char *const pool_names[] = {"last", "mean"};
static const char *const ppl_names[] = {"policy", "ref"};
static const char *const bgrad_names[] = {"full", "head", "none"};
const char *pool_kind_name(pool_kind k) { return name_of(pool_names, 2, (int)k); }
int pool_kind_parse(const char *s) { return name_index(pool_names, 2, s); }
const char *ppl_source_name(ppl_source k) { return name_of(ppl_names, 2, (int)k); }
int ppl_source_parse(const char *s) { return name_index(ppl_names, 2, s); }
const char *beta_grad_name(beta_grad_mode k) { return name_of(bgrad_names, 3, (int)k); }
int beta_grad_parse(const char *s) { return name_index(bgrad_names, 3, s); }

static void head_names(const betahead *bh, st_tensor_out *t, int *n)
{
	const int C = bh->C, K = bh->K;
	const float *p = bh->p;
	t[0] = (st_tensor_out){"log_w", 1, {1}, p};
	if (bh->kind == HEAD_LINEAR) {
		t[1] = (st_tensor_out){"head.weight", 2, {1, C}, p + 1};
		t[2] = (st_tensor_out){"head.bias", 1, {1}, p + 1 + C};
		*n = 3;
	} else {
		const float *W1 = p + 1, *b1 = W1 + (size_t)K * C, *W2 = b1 + K, *b2 = W2 + K;
		t[1] = (st_tensor_out){"head.0.weight", 2, {K, C}, W1};
		t[2] = (st_tensor_out){"head.0.bias", 1, {K}, b1};
		t[3] = (st_tensor_out){"head.2.weight", 2, {1, K}, W2};
		t[4] = (st_tensor_out){"head.2.bias", 1, {1}, b2};
		*n = 5;
	}
}

static size_t tensor_numel(const st_tensor_out *t)
{
	size_t n = 1;
	for (int i = 0; i < t->ndim; i++)
		n *= (size_t)t->shape[i];
	return n;
}

void ckpt_opts_default(ckpt_opts *o)
{
	*o = (ckpt_opts){.fresh = 0, .head = HEAD_LINEAR, .head_hidden = 64, .eps = 0.1, .pool = POOL_LAST,
			 .ppl_from = PPL_POLICY, .w0 = 1.0, .seed = 1};
}

ckpt *ckpt_load(const char *path, const ckpt_opts *o)
{
	const int fresh = o->fresh, K = o->head_hidden;
	const head_kind kind = o->head;
	const float eps = (float)o->eps;
	const pool_kind pool = o->pool;
	const ppl_source ppl_from = o->ppl_from;
	const double w0 = o->w0;
	const uint64_t seed = o->seed;
	ckpt *c = xcalloc(1, sizeof *c);
	c->m = model_load(path);
	c->src = xstrdup(path);
	c->save_dtype = -1;
	/* every program scores the weights that are shipped (model.safetensors
	 * as stored); only training resumed continues from the f32 master copy */
	if (o->master && !fresh && ckpt_is(path))
		ckpt_master_weights(c->m, path);
	if (o->reward && !model_cfg(c->m)->score_labels) { /* score head ~ N(0, 0.02²), transformers' init */
		model *rm = model_reward_from(c->m, seed, 0.02f);
		model_free(c->m);
		c->m = rm;
	}
	const int C = model_cfg(c->m)->dim;
	size_t np = model_n_params(c->m);
	c->pm = xcalloc(np, sizeof(float));
	c->pv = xcalloc(np, sizeof(float));
	c->rng = seed * 0x9E3779B97F4A7C15ull + 1;
	if (!fresh && !ckpt_is(path)) {
		/* a checkpoint missing its trainer state must not silently
		 * restart at step 0 with a new β model and zero moments */
		static const char *parts[] = {CKPT_MARKER, "beta_head.safetensors", "optimizer.safetensors"};
		for (int i = 0; i < 3; i++) {
			char *q = path_join(path, parts[i]);
			struct stat sb;
			int has = stat(q, &sb) == 0;
			free(q);
			if (has)
				die("%s: a checkpoint without trainer_state.json (has %s): cannot resume it; --fresh "
				    "starts over from its model",
				    path, parts[i]);
		}
	}
	if (fresh || !ckpt_is(path)) {
		c->bh = betahead_new(kind, C, K, eps);
		betahead_init(c->bh, seed, w0);
		c->pool = pool;
		c->ppl_from = ppl_from;
	} else {
		/* the β model */
		char *hp = path_join(path, "beta_head.safetensors");
		st_file *f = st_open(hp);
		int hk = head_kind_parse(st_meta(f, "head"));
		const char *se = st_meta(f, "eps"), *sk = st_meta(f, "hidden"), *sd = st_meta(f, "dim");
		int pk = pool_kind_parse(st_meta(f, "pool"));
		int pf = ppl_source_parse(st_meta(f, "ppl_from"));
		if (hk < 0 || !se || !sk || !sd || pk < 0 || pf < 0)
			die("%s: missing or bad metadata (head, eps, hidden, dim, pool, ppl_from)", hp);
		double e = strtod(se, NULL);
		long k = strtol(sk, NULL, 10), d = strtol(sd, NULL, 10);
		if (d != C || !(e >= 0 && e < 1) || (hk == HEAD_MLP && (k < 1 || k > 1 << 16)))
			die("%s: head metadata does not fit the model (dim %ld vs %d, eps %g, hidden %ld)", hp, d, C, e, k);
		c->bh = betahead_new((head_kind)hk, C, (int)k, (float)e);
		c->pool = (pool_kind)pk;
		c->ppl_from = (ppl_source)pf;
		st_tensor_out t[5];
		int nt;
		head_names(c->bh, t, &nt);
		for (int i = 0; i < nt; i++)
			st_read_f32(f, t[i].name, (float *)t[i].data, tensor_numel(&t[i]));
		st_close(f);
		free(hp);
		c->hm = xcalloc(c->bh->n_params, sizeof(float));
		c->hv = xcalloc(c->bh->n_params, sizeof(float));
		/* optimizer */
		char *op = path_join(path, "optimizer.safetensors");
		f = st_open(op);
		st_read_f32(f, "policy.m", c->pm, np);
		st_read_f32(f, "policy.v", c->pv, np);
		st_read_f32(f, "beta.m", c->hm, c->bh->n_params);
		st_read_f32(f, "beta.v", c->hv, c->bh->n_params);
		st_close(f);
		free(op);
		/* trainer state */
		char *sp = path_join(path, "trainer_state.json");
		json_error_t err;
		c->state = json_load_file(sp, JSON_REJECT_DUPLICATES, &err);
		if (!c->state || !json_is_object(c->state))
			die("%s: line %d: %s", sp, err.line, c->state ? "not a JSON object" : err.text);
		json_t *st = c->state;
		const char *rng = json_string_value(json_object_get(st, "rng"));
		if (!json_is_integer(json_object_get(st, "step")) || !json_is_integer(json_object_get(st, "epoch")) ||
		    !json_is_integer(json_object_get(st, "pos")) || !rng)
			die("%s: missing step, epoch, pos or rng", sp);
		c->step = (long)json_integer_value(json_object_get(st, "step"));
		c->epoch = (long)json_integer_value(json_object_get(st, "epoch"));
		c->pos = (long)json_integer_value(json_object_get(st, "pos"));
		char *end;
		errno = 0;
		c->rng = strtoull(rng, &end, 16);
		if (errno || !*rng || *end || strlen(rng) > 16 || rng[0] == '-' || rng[0] == '+' || isspace((unsigned char)rng[0]))
			die("%s: malformed rng '%.40s': expected up to 16 hex digits", sp, rng);
		if (!json_is_number(json_object_get(st, "bdpo_m0")) || !json_is_number(json_object_get(st, "bdpo_sd")) ||
		    !json_is_integer(json_object_get(st, "bdpo_n")))
			die("%s: missing bdpo_m0, bdpo_sd or bdpo_n", sp);
		c->bs.m0 = json_number_value(json_object_get(st, "bdpo_m0"));
		c->bs.sd = json_number_value(json_object_get(st, "bdpo_sd"));
		c->bs.n_updates = json_integer_value(json_object_get(st, "bdpo_n"));
		json_t *pv = json_object_get(st, "provenance");
		if (pv) {
			const char *ts = json_string_value(json_object_get(pv, "tokenizer_sha256"));
			const char *rf = json_string_value(json_object_get(pv, "reference_fingerprint"));
			const char *kd = json_string_value(json_object_get(pv, "kind"));
			json_t *tv = json_object_get(pv, "tokenizer_vocab_size");
			if (!json_is_object(pv) || !ts || !rf || !kd || !json_is_integer(tv) ||
			    (ts[0] && !is_hex64(ts, strlen(ts))) || (rf[0] && !is_hex64(rf, strlen(rf))))
				die("%s: malformed \"provenance\"", sp);
			snprintf(c->prov.tok_sha, sizeof c->prov.tok_sha, "%s", ts);
			snprintf(c->prov.ref_fp, sizeof c->prov.ref_fp, "%s", rf);
			snprintf(c->prov.kind, sizeof c->prov.kind, "%s", kd);
			c->prov.tok_vocab = json_integer_value(tv);
			c->has_prov = 1;
		}
		if (c->step < 0 || c->epoch < 0 || c->pos < 0)
			die("%s: negative step, epoch or pos", sp);
		free(sp);
		c->resumed = 1;
	}
	if (!c->hm) {
		c->hm = xcalloc(c->bh->n_params, sizeof(float));
		c->hv = xcalloc(c->bh->n_params, sizeof(float));
	}
	return c;
}

static const char *or_none(const char *s) { return s[0] ? s : "(none)"; }

/* The tokenizer file of model directory dir whose sha256 is sha (into
 * file), or, when none matches, the first one it ships (0: it ships none). */
static int model_tokenizer(const char *dir, const char *sha, char file[4096], char file_sha[65])
{
	static const char *const names[] = {"tokenizer.json", "tokenizer.model"};
	struct stat sb;
	int found = 0;
	if (!dir || stat(dir, &sb) || !S_ISDIR(sb.st_mode))
		return 0;
	for (int i = 0; i < 2; i++) {
		char *f = path_join(dir, names[i]), h[65];
		if (!access(f, R_OK)) {
			sha256_file_hex(f, h);
			if (!found || !strcmp(h, sha)) {
				snprintf(file, 4096, "%s", f);
				memcpy(file_sha, h, 65);
			}
			found = 1;
		}
		free(f);
		if (found && !strcmp(file_sha, sha))
			break;
	}
	return found;
}

void prov_check(const provenance *p, const char *stream, const char *model_path, const ckpt *c, int need_ref,
		const char *ref_fp, int override)
{
	char msg[8192] = "", file[4096], sha[65];
	/* only what both sides name can mismatch: records without a tokenizer
	 * or reference (hand-made, or sft) and models that ship no tokenizer
	 * constrain nothing */
	if (p->tok_sha[0] && model_tokenizer(model_path, p->tok_sha, file, sha) && strcmp(sha, p->tok_sha))
		snprintf(msg, sizeof msg, "tokenized with tokenizer %s, but the model ships tokenizer %s (%s)", p->tok_sha, sha, file);
	else if (c && c->has_prov && c->prov.tok_sha[0] && strcmp(c->prov.tok_sha, p->tok_sha))
		snprintf(msg, sizeof msg, "records tokenized with tokenizer %s, the checkpoint was trained on tokenizer %s",
			 or_none(p->tok_sha), or_none(c->prov.tok_sha));
	else if (c && c->has_prov && c->prov.tok_vocab && p->tok_vocab && c->prov.tok_vocab != p->tok_vocab)
		snprintf(msg, sizeof msg, "records say vocab_size %lld, the checkpoint's records said %lld",
			 (long long)p->tok_vocab, (long long)c->prov.tok_vocab);
	else if (c && c->has_prov && c->prov.ref_fp[0] && (need_ref || p->ref_fp[0]) && strcmp(c->prov.ref_fp, p->ref_fp))
		snprintf(msg, sizeof msg,
			 "records scored by reference %s, the checkpoint was trained against reference %s",
			 or_none(p->ref_fp), or_none(c->prov.ref_fp));
	else if (ref_fp && p->ref_fp[0] && strcmp(ref_fp, p->ref_fp))
		snprintf(msg, sizeof msg,
			 "records scored by reference %s, but the run starts from model %s (%s), the reference of a "
			 "new run",
			 p->ref_fp, ref_fp, model_path);
	if (!msg[0])
		return;
	if (override)
		warning("%s: PROVENANCE MISMATCH IGNORED (--ignore-provenance): %s", stream, msg);
	else
		die("%s: %s (--ignore-provenance to use them anyway)", stream, msg);
}

void ckpt_adopt_prov(ckpt *c, const provenance *p)
{
	char ref[65];
	memcpy(ref, c->prov.ref_fp, sizeof ref);
	int kept = c->has_prov && !p->ref_fp[0];
	c->prov = *p;
	if (kept) /* sft on plain tokens: the reference trained against stays known */
		memcpy(c->prov.ref_fp, ref, sizeof ref);
	c->has_prov = 1;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void fsync_path(const char *p)
{
	int fd = open(p, O_RDONLY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}


void ckpt_check_out(const char *dir)
{
	struct stat sb;
	if (lstat(dir, &sb) != 0) {
		if (errno == ENOENT)
			return;
		die("%s: %s", dir, strerror(errno));
	}
	if (S_ISLNK(sb.st_mode))
		die("%s: is a symbolic link; --output replaces only a checkpoint directory lbdpo wrote", dir);
	if (!S_ISDIR(sb.st_mode))
		die("%s: exists and is not a directory; --output replaces only a checkpoint lbdpo wrote", dir);
	char *m = path_join(dir, CKPT_MARKER);
	int ok = lstat(m, &sb) == 0 && S_ISREG(sb.st_mode);
	free(m);
	if (!ok)
		die("%s: exists and is not a checkpoint lbdpo wrote (no %s file); refusing to replace it", dir,
		    CKPT_MARKER);
}

/* The names ckpt_save writes; everything else in a checkpoint directory is
 * someone else's (an eval result, plots) and moves into its replacement. */
static int ckpt_own_name(const char *name)
{
	static const char *own[] = {CKPT_MARKER,	     "config.json",	      "model.safetensors",
				    "beta_head.safetensors", "optimizer.safetensors", "trainer_state.json", NULL};
	for (int i = 0; own[i]; i++)
		if (!strcmp(name, own[i]))
			return 1;
	return model_asset_name(name);
}

static void carry_tree(const char *src, const char *dst);

/* The entries of the directory src into the directory dst (carry_tree);
 * top: src is the old checkpoint, whose own files stay behind. */
static void carry_dir(const char *src, const char *dst, int top)
{
	DIR *d = opendir(src);
	if (!d)
		die("%s: %s", src, strerror(errno));
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (top && ckpt_own_name(e->d_name)))
			continue;
		char *a = path_join(src, e->d_name), *b = path_join(dst, e->d_name);
		carry_tree(a, b);
		free(a);
		free(b);
	}
	closedir(d);
}

/* Recreate src at dst: directories made anew, files hard-linked (copied
 * where the file system refuses a link), symbolic links remade. The old
 * checkpoint keeps its own links until it is swapped out, so a crash at any
 * point leaves the user's files in one of the two. */
static void carry_tree(const char *src, const char *dst)
{
	struct stat sb;
	if (lstat(src, &sb) != 0)
		die("%s: %s", src, strerror(errno));
	if (S_ISREG(sb.st_mode)) {
		if (link(src, dst) != 0) {
			if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != EOPNOTSUPP)
				die("cannot link %s into %s: %s", src, dst, strerror(errno));
			copy_file(src, dst);
			chmod(dst, sb.st_mode & 07777);
		}
	} else if (S_ISDIR(sb.st_mode)) {
		if (mkdir(dst, 0700) != 0)
			die("cannot create %s: %s", dst, strerror(errno));
		carry_dir(src, dst, 0);
		chmod(dst, sb.st_mode & 07777); /* after filling it: a read-only directory too */
	} else if (S_ISLNK(sb.st_mode)) {
		char t[4096];
		ssize_t n = readlink(src, t, sizeof t - 1);
		if (n < 0)
			die("%s: %s", src, strerror(errno));
		t[n] = 0;
		if (symlink(t, dst) != 0)
			die("cannot create %s: %s", dst, strerror(errno));
	} else {
		warning("%s: not a file, directory or symbolic link; not carried into the new checkpoint", src);
	}
}

void ckpt_save(const ckpt *c, const char *dir, json_t *options)
{
	ckpt_check_out(dir);
	temp_sweep(dir);
	char *tmp = temp_dir_create(dir);
	model_save_hf_dtype(c->m, tmp, c->save_dtype);
	model_carry_config(c->m, c->src, tmp, c->save_dtype);
	model_copy_assets(c->m, c->src, tmp);
	char *mk = path_join(tmp, CKPT_MARKER);
	outfile *mo = out_open(mk);
	fputs("lbdpo checkpoint: lbdpo-step --out may replace this directory\n", mo->fp);
	out_close(mo);
	free(mk);

	/* β model */
	st_tensor_out t[5];
	int nt;
	head_names(c->bh, t, &nt);
	char eps[32], hid[32], dim[32];
	snprintf(eps, sizeof eps, "%.9g", (double)c->bh->eps);
	snprintf(hid, sizeof hid, "%d", c->bh->K);
	snprintf(dim, sizeof dim, "%d", c->bh->C);
	const char *meta[] = {"head", head_kind_name(c->bh->kind), "eps", eps, "hidden", hid, "dim",
			      dim, "pool", pool_names[c->pool], "ppl_from", ppl_names[c->ppl_from],
			      "formula", "beta = exp(log_w) * exp(-mean prompt logp) * (1 + eps*tanh(head(h)))", NULL};
	char *p = path_join(tmp, "beta_head.safetensors");
	st_save(p, t, nt, meta);
	free(p);

	/* optimizer */
	size_t np = model_n_params(c->m);
	st_tensor_out o[5] = {{"policy.m", 1, {(int64_t)np}, c->pm},
			      {"policy.v", 1, {(int64_t)np}, c->pv},
			      {"beta.m", 1, {(int64_t)c->bh->n_params}, c->hm},
			      {"beta.v", 1, {(int64_t)c->bh->n_params}, c->hv},
			      {"policy.w", 1, {(int64_t)np}, model_params(c->m)}};
	int sd = c->save_dtype >= 0 ? c->save_dtype : model_cfg(c->m)->save_dtype;
	p = path_join(tmp, "optimizer.safetensors");
	st_save(p, o, sd != ST_F32 ? 5 : 4, NULL); /* rounded policy: keep the f32 master weights */
	free(p);

	/* trainer state */
	json_t *st = json_object();
	char rng[32];
	snprintf(rng, sizeof rng, "%016llx", (unsigned long long)c->rng);
	json_object_set_new(st, "format", json_string("lbdpo-checkpoint"));
	json_object_set_new(st, "version", json_string(LBDPO_VERSION));
	json_object_set_new(st, "step", json_integer(c->step));
	json_object_set_new(st, "epoch", json_integer(c->epoch));
	json_object_set_new(st, "pos", json_integer(c->pos));
	json_object_set_new(st, "rng", json_string(rng));
	json_object_set_new(st, "bdpo_m0", json_real(c->bs.m0));
	json_object_set_new(st, "bdpo_sd", json_real(c->bs.sd));
	json_object_set_new(st, "bdpo_n", json_integer(c->bs.n_updates));
	if (options)
		json_object_set(st, "options", options);
	if (c->best)
		json_object_set(st, "best", c->best);
	if (lbdpo_run_device) /* informational: the state is the same on every device */
		json_object_set_new(st, "device", json_string(lbdpo_run_device));
	if (c->has_prov)
		json_object_set_new(st, "provenance",
				    json_pack("{s:s, s:s, s:s, s:I}", "kind", c->prov.kind, "tokenizer_sha256",
					      c->prov.tok_sha, "reference_fingerprint", c->prov.ref_fp,
					      "tokenizer_vocab_size", (json_int_t)c->prov.tok_vocab));
	p = path_join(tmp, "trainer_state.json");
	json_save_file(p, st, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
	free(p);
	json_decref(st);
	fsync_path(tmp);

	temp_dir_mode(tmp, dir);
	/* swap into place: a crash leaves either the old or the new directory */
	struct stat sb;
	int had = lstat(dir, &sb) == 0;
	if (had) /* what else is in dir (a user's files) moves into the new checkpoint */
		carry_dir(dir, tmp, 1);
	if (had && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
		/* atomic swap: there is no moment without a checkpoint at dir;
		 * tmp now holds the old checkpoint (checked above to be ours) */
		nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	} else {
		char *old = NULL;
		if (had) {
			/* an empty directory that rename replaces; not a temporary
			 * that die() may remove: it will hold the old checkpoint */
			old = temp_dir_create(dir);
			temp_forget(old);
			if (rename(dir, old) != 0) {
				rmdir(old);
				die("cannot move %s aside: %s", dir, strerror(errno));
			}
		}
		if (rename(tmp, dir) != 0) {
			int e = errno;
			if (old)
				rename(old, dir);
			die("cannot rename %s to %s: %s", tmp, dir, strerror(e));
		}
		if (old) {
			nftw(old, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
			free(old);
		}
	}
	temp_forget(tmp);
	free(tmp);
}

int ckpt_master_weights(model *m, const char *dir)
{
	char *op = path_join(dir, "optimizer.safetensors");
	struct stat sb;
	int got = 0;
	if (stat(op, &sb) == 0) {
		st_file *f = st_open(op);
		if (st_find(f, "policy.w")) {
			st_read_f32(f, "policy.w", model_params(m), model_n_params(m));
			got = 1;
		}
		st_close(f);
	}
	free(op);
	return got;
}

void ckpt_free(ckpt *c)
{
	if (!c)
		return;
	free(c->src);
	model_free(c->m);
	betahead_free(c->bh);
	free(c->pm);
	free(c->pv);
	free(c->hm);
	free(c->hv);
	if (c->state)
		json_decref(c->state);
	if (c->best)
		json_decref(c->best);
	free(c);
}

/* ---------------- batches ---------------- */

batch_buf *batch_new(int B, int C, int K)
{
	batch_buf *b = xcalloc(1, sizeof *b);
	b->B = B;
	b->C = C;
	b->seqs = xcalloc((size_t)B, sizeof *b->seqs);
	b->sc = xcalloc((size_t)B, sizeof *b->sc);
	b->sg = xcalloc((size_t)B, sizeof *b->sg);
	b->h = xcalloc((size_t)B * C, sizeof(float));
	b->act = xcalloc((size_t)B * (K > 0 ? K : 1), sizeof(float));
	b->m = xcalloc((size_t)B, sizeof(double));
	b->parts = xcalloc((size_t)B, sizeof *b->parts);
	b->dbeta = xcalloc((size_t)B, sizeof(double));
	b->dm = xcalloc((size_t)B, sizeof(double));
	b->dh = xcalloc((size_t)B * C, sizeof(float));
	b->lp = xcalloc((size_t)B, sizeof *b->lp);
	b->lg = xcalloc((size_t)B, sizeof *b->lg);
	return b;
}

void batch_free(batch_buf *b)
{
	if (!b)
		return;
	free(b->seqs);
	free(b->sc);
	free(b->sg);
	free(b->h);
	free(b->act);
	free(b->m);
	free(b->parts);
	free(b->dbeta);
	free(b->dm);
	free(b->dh);
	free(b->lp);
	free(b->lg);
	free(b);
}

void batch_forward(const ckpt *c, model_ws *ws, batch_buf *b, pref_rec *const *recs, int B, const batch_opts *o)
{
	const int n_comp = o->n_comp, train = o->train, need_head = o->need_head;
	const double fixed_beta = o->fixed_beta;
	const int C = b->C;
	for (int i = 0; i < B; i++) {
		const pref_rec *r = recs[i];
		b->seqs[i] = (model_seq){.prompt = r->prompt,
					 .n_prompt = r->np,
					 .comp = {r->chosen, r->rejected},
					 .n_comp_tok = {r->nc, r->nr},
					 .n_comp = n_comp};
		memset(&b->sc[i], 0, sizeof b->sc[i]);
		if (need_head) {
			if (c->pool == POOL_LAST)
				b->sc[i].h_last = b->h + (size_t)i * C;
			else
				b->sc[i].h_mean = b->h + (size_t)i * C;
		}
	}
	model_forward(c->m, ws, b->seqs, B, b->sc, train);
	for (int i = 0; i < B; i++)
		b->m[i] = c->ppl_from == PPL_POLICY ? b->sc[i].prompt_mean_logp : recs[i]->ref_plogp;
	if (need_head)
		betahead_forward(c->bh, b->parts, b->act, b->h, b->m, B);
	for (int i = 0; i < B; i++) {
		const pref_rec *r = recs[i];
		b->lp[i] = (loss_pair){.pc = b->sc[i].logp[0],
				       .pr = n_comp > 1 ? b->sc[i].logp[1] : 0,
				       .rc = r->ref_c,
				       .rr = r->ref_r,
				       .nc = r->nc,
				       .nr = r->nr,
				       .beta = need_head ? b->parts[i].beta : fixed_beta,
				       .group = r->group,
				       .h_ref = r->ref_entropy,
				       .margin = r->margin};
		if (model_cfg(c->m)->score_labels) { /* a reward model: its scores take the log-probs' place */
			b->lp[i].pc = b->sc[i].reward[0];
			b->lp[i].pr = n_comp > 1 ? b->sc[i].reward[1] : 0;
		}
	}
}

/* The loss of a micro-batch split over workers (microbatch_opts.share):
 * every worker puts its pairs' scalars into their slots of a zeroed
 * [n_all × LP_FIELDS] array and the allreduce sums them, which hands every
 * worker the whole batch exactly (x + 0 = x). Each then runs loss_batch on
 * the same pairs in the one-worker order, so beta-dpo's statistics, its
 * sampled selection (the rng and moving statistics advance alike on every
 * worker) and the group means are the one-worker ones, and keeps the
 * gradients of its own slots: the sum over workers is the one-worker
 * gradient. */
enum { LP_PC, LP_PR, LP_RC, LP_RR, LP_NC, LP_NR, LP_BETA, LP_GROUP, LP_HREF, LP_MARGIN, LP_FIELDS };

static double loss_shared(const microbatch_opts *o, batch_buf *b, int B, loss_stats *st)
{
	const int n = o->n_all;
	double *x = xcalloc((size_t)n * LP_FIELDS, sizeof *x);
	for (int j = 0; j < B; j++) {
		const loss_pair *q = &b->lp[j];
		double *r = x + (size_t)o->slot[j] * LP_FIELDS;
		r[LP_PC] = q->pc, r[LP_PR] = q->pr, r[LP_RC] = q->rc, r[LP_RR] = q->rr;
		r[LP_NC] = q->nc, r[LP_NR] = q->nr, r[LP_BETA] = q->beta, r[LP_GROUP] = q->group;
		r[LP_HREF] = q->h_ref;
		r[LP_MARGIN] = q->margin;
	}
	o->share(o->share_ctx, x, (size_t)n * LP_FIELDS);
	loss_pair *p = xmalloc(sizeof *p * (size_t)n);
	loss_pair_grad *g = xmalloc(sizeof *g * (size_t)n);
	for (int i = 0; i < n; i++) {
		const double *r = x + (size_t)i * LP_FIELDS;
		p[i] = (loss_pair){.pc = r[LP_PC], .pr = r[LP_PR], .rc = r[LP_RC], .rr = r[LP_RR], .nc = (int)r[LP_NC],
				   .nr = (int)r[LP_NR], .beta = r[LP_BETA], .group = (int)r[LP_GROUP], .h_ref = r[LP_HREF],
				   .margin = r[LP_MARGIN]};
	}
	double L = loss_batch(o->loss, p, n, g, o->bdpo, o->rng, st);
	for (int j = 0; j < B; j++)
		b->lg[j] = g[o->slot[j]];
	free(x);
	free(p);
	free(g);
	return L;
}

double train_microbatch(const ckpt *c, model_ws *ws, batch_buf *b, pref_rec *const *recs, int B,
			const microbatch_opts *o, float *G, float *HG, loss_stats *st)
{
	const loss_opts *lo = o->loss;
	const beta_grad_mode bg = o->beta_grad;
	const int policy_trained = o->policy_trained;
	const double scale = o->scale;
	bdpo_state *bs = o->bdpo;
	uint64_t *rng = o->rng;
	const int learned = loss_learned_beta(lo);
	const int n_comp = loss_opts_needs_rejected(lo) ? 2 : 1;
	const int head_trained = learned && bg != BGRAD_NONE;
	const int C = b->C;
	if (B > 0)
		batch_forward(c, ws, b, recs, B,
			      &(batch_opts){.n_comp = n_comp, .train = policy_trained, .need_head = learned,
					    .fixed_beta = lo->beta});
	loss_stats s;
	double L = o->share ? loss_shared(o, b, B, &s) : loss_batch(lo, b->lp, B, b->lg, bs, rng, &s);
	if (st)
		*st = s;
	if (B == 0)
		return L;
	for (int i = 0; i < B; i++)
		b->dbeta[i] = b->lg[i].d_beta * scale;
	if (head_trained)
		betahead_backward(c->bh, HG, b->dm, bg == BGRAD_FULL ? b->dh : NULL, b->dbeta, b->parts, b->act, b->h,
				  B);
	if (policy_trained) {
		for (int i = 0; i < B; i++) {
			model_seq_grad *g = &b->sg[i];
			memset(g, 0, sizeof *g);
			/* through Δ (and the SFT term); a reward model: through its scores */
			const int rm = model_cfg(c->m)->score_labels;
			g->d_logp[0] = rm ? 0 : b->lg[i].d_pc * scale;
			g->d_logp[1] = rm ? 0 : b->lg[i].d_pr * scale;
			g->d_reward[0] = rm ? b->lg[i].d_pc * scale : 0;
			g->d_reward[1] = rm ? b->lg[i].d_pr * scale : 0;
			if (head_trained && bg == BGRAD_FULL) {
				/* through PPL: ∂β/∂m = −β, m the policy's mean prompt log-prob */
				if (c->ppl_from == PPL_POLICY)
					g->d_prompt_mean_logp = b->dm[i];
				/* through h */
				if (c->pool == POOL_LAST)
					g->d_h_last = b->dh + (size_t)i * C;
				else
					g->d_h_mean = b->dh + (size_t)i * C;
			}
		}
		model_backward(c->m, ws, b->sg, G);
	}
	return L;
}

double mean_d(const double *x, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++)
		s += x[i];
	return n > 0 ? s / n : 0;
}

void eval_loss_opts(loss_opts *lo, const loss_opts *run)
{
	loss_opts_default(lo);
	lo->kind = run->kind == LOSS_BETADPO ? LOSS_DPO : run->kind;
	lo->n_terms = run->n_terms; /* a loss list, its weights, and whether β is learned */
	memcpy(lo->terms, run->terms, sizeof lo->terms);
	memcpy(lo->term_w, run->term_w, sizeof lo->term_w);
	lo->learned_beta = run->learned_beta;
	lo->discopop_tau = run->discopop_tau;
	lo->beta = run->beta;
	lo->label_smoothing = run->label_smoothing;
	lo->gamma = run->gamma;
	lo->sft_weight = run->sft_weight;
}

void score_pref_set(const ckpt *c, model_ws *ws, batch_buf *b, const pref_set *data, const loss_opts *lo, int bs,
		   pair_res *res, progress_meter *pm)
{
	pref_rec **recs = xmalloc(sizeof(pref_rec *) * (size_t)bs);
	const int learned = loss_learned_beta(lo);
	for (int s = 0; s < data->n; s += bs) {
		if (pm)
			progress_show(pm, s, NULL);
		int B = data->n - s < bs ? data->n - s : bs;
		for (int i = 0; i < B; i++)
			recs[i] = &data->r[s + i];
		batch_forward(c, ws, b, recs, B, &(batch_opts){.n_comp = 2, .need_head = learned, .fixed_beta = lo->beta});
		/* per-pair loss terms: a batch of one pair at a time gives ℓ_i */
		for (int i = 0; i < B; i++) {
			loss_stats st;
			loss_batch(lo, &b->lp[i], 1, NULL, NULL, NULL, &st);
			pair_res *q = &res[s + i];
			q->loss = st.loss; /* preference term + weighted SFT term (no regularizers) */
			q->beta = b->lp[i].beta;
			q->ppl = exp(-b->m[i]);
			q->pc = b->lp[i].pc;
			q->pr = b->lp[i].pr;
			q->rc = b->lp[i].rc;
			q->rr = b->lp[i].rr;
			q->nc = b->lp[i].nc;
			q->nr = b->lp[i].nr;
			q->delta = (q->pc - q->rc) - (q->pr - q->rr);
			q->group = recs[i]->group;
		}
	}
	free(recs);
}

void pair_rewards(const pair_res *q, int simpo, double *c, double *j)
{
	if (simpo) {
		*c = q->beta * q->pc / q->nc;
		*j = q->beta * q->pr / q->nr;
	} else {
		*c = q->beta * (q->pc - q->rc);
		*j = q->beta * (q->pr - q->rr);
	}
}

void pair_summary(res_summary *s, const pair_res *r, int n, int g, int simpo)
{
	int k = 0;
	double L = 0, acc = 0, rc = 0, rr = 0, lc = 0, lr = 0, dc = 0, dr = 0, bmin = INFINITY, bmax = -INFINITY,
	       bm = 0, b2 = 0, pm = 0;
	for (int i = 0; i < n; i++) {
		if (g != -2 && r[i].group != g)
			continue;
		const pair_res *q = &r[i];
		L += q->loss;
		double c, j;
		pair_rewards(q, simpo, &c, &j);
		rc += c;
		rr += j;
		acc += c > j;
		lc += q->pc;
		lr += q->pr;
		dc += q->pc - q->rc;
		dr += q->pr - q->rr;
		bm += q->beta;
		b2 += q->beta * q->beta;
		bmin = fmin(bmin, q->beta);
		bmax = fmax(bmax, q->beta);
		pm += q->ppl;
		k++;
	}
	memset(s, 0, sizeof *s);
	s->n = k;
	if (k == 0)
		return;
	bm /= k;
	s->loss = L / k;
	s->acc = acc / k;
	s->rc = rc / k;
	s->rr = rr / k;
	s->margin = (rc - rr) / k;
	s->lc = lc / k;
	s->lr = lr / k;
	s->dc = dc / k;
	s->dr = dr / k;
	s->bmean = bm;
	s->bstd = sqrt(fmax(0, b2 / k - bm * bm));
	s->bmin = bmin;
	s->bmax = bmax;
	s->ppl = pm / k;
}
