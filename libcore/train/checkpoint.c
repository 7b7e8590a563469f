/* checkpoint.c — checkpoints and the provenance rule (checkpoint.h). */
#define _GNU_SOURCE
#include "libcore/train/checkpoint.h"
#include "libcore/train/adapter.h"

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

#include "base/util.h"
#include "formats/jsonl.h"
#include "formats/records.h"
#include "formats/safetensors.h"
#include "formats/schema.h"

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

const char *const pool_names[] = {"last", "mean", NULL};
const char *const ppl_names[] = {"policy", "ref", NULL};
const char *const bgrad_names[] = {"full", "head", "none", NULL};
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
	*o = (ckpt_opts){.fresh = 0,
			 .head = HEAD_LINEAR,
			 .head_hidden = 64,
			 .eps = 0.1,
			 .pool = POOL_LAST,
			 .ppl_from = PPL_POLICY,
			 .w0 = 1.0,
			 .seed = 1};
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
	const char *base;
	/* a LoRA base is frozen: 16-bit storage for a 16-bit file (model_load_frozen) */
	c->m = adapter_model_load(path, o->adapter, o->frozen || o->lora.r > 0, &c->lo, &c->base_owned, &base);
	if (c->lo && o->lora.r > 0)
		die_usage("%s: an adapter sets its own rank and targets: no --lora-r with it",
			  o->adapter ? o->adapter : path);
	const char *sdir = path; /* where the training state lives */
	int new_lora = 0;
	if (c->lo) {
		sdir = o->adapter ? o->adapter : path;
		path = base;
	} else if (o->lora.r > 0) {
		c->lo = lora_new(c->m, &o->lora, seed);
		model_set_lora(c->m, c->lo);
		new_lora = 1;
	}
	c->src = xstrdup(path);
	c->save_dtype = -1;
	if (c->lo) { /* the base's own fingerprint (the adapter detached) */
		model_set_lora(c->m, NULL);
		model_fingerprint(c->m, c->base_fp);
		model_set_lora(c->m, c->lo);
	}
	/* every program scores the weights that are shipped (model.safetensors
	 * as stored); only training resumed continues from the f32 master copy */
	if (o->master && !fresh && !c->lo && ckpt_is(path))
		ckpt_master_weights(c->m, path);
	if (o->reward && !model_cfg(c->m)->score_labels) { /* score head ~ N(0, 0.02²), transformers' init */
		model *rm = model_reward_from(c->m, seed, 0.02f);
		model_free(c->m);
		c->m = rm;
	}
	const int C = model_cfg(c->m)->dim;
	size_t np = model_n_trainable(c->m);
	c->pm = xcalloc(np, sizeof(float));
	c->pv = xcalloc(np, sizeof(float));
	c->rng = seed * 0x9E3779B97F4A7C15ull + 1;
	/* a new adapter starts fresh whatever the base is; an adapter
	 * directory resumes when lbdpo-step wrote it */
	const int resume = !fresh && !new_lora && ckpt_is(sdir);
	path = sdir;
	if (!fresh && !new_lora && !ckpt_is(path)) {
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
	if (!resume) {
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
			die("%s: head metadata does not fit the model (dim %ld vs %d, eps %g, hidden %ld)", hp, d, C, e,
			    k);
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
		if (errno || !*rng || *end || strlen(rng) > 16 || rng[0] == '-' || rng[0] == '+' ||
		    isspace((unsigned char)rng[0]))
			die("%s: malformed rng '%.40s': expected up to 16 hex digits", sp, rng);
		if (!json_is_number(json_object_get(st, "bdpo_m0")) ||
		    !json_is_number(json_object_get(st, "bdpo_sd")) || !json_is_integer(json_object_get(st, "bdpo_n")))
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
		json_t *lb = json_object_get(st, "lora_base");
		json_t *ld = json_object_get(lb, "dropout_forwards");
		const char *ls = json_string_value(json_object_get(lb, "dropout_seed"));
		if (c->lo && json_is_integer(ld) && ls) /* the dropout masks continue where they were */
			lora_set_dropout_state(c->lo, strtoull(ls, NULL, 16), (uint64_t)json_integer_value(ld));
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
		snprintf(msg, sizeof msg, "tokenized with tokenizer %s, but the model ships tokenizer %s (%s)",
			 p->tok_sha, sha, file);
	else if (c && c->has_prov && c->prov.tok_sha[0] && strcmp(c->prov.tok_sha, p->tok_sha))
		snprintf(msg, sizeof msg,
			 "records tokenized with tokenizer %s, the checkpoint was trained on tokenizer %s",
			 or_none(p->tok_sha), or_none(c->prov.tok_sha));
	else if (c && c->has_prov && c->prov.tok_vocab && p->tok_vocab && c->prov.tok_vocab != p->tok_vocab)
		snprintf(msg, sizeof msg, "records say vocab_size %lld, the checkpoint's records said %lld",
			 (long long)p->tok_vocab, (long long)c->prov.tok_vocab);
	else if (c && c->has_prov && c->prov.ref_fp[0] && (need_ref || p->ref_fp[0]) &&
		 strcmp(c->prov.ref_fp, p->ref_fp))
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
	static const char *own[] = {CKPT_MARKER,
				    "config.json",
				    "model.safetensors",
				    "beta_head.safetensors",
				    "optimizer.safetensors",
				    "trainer_state.json",
				    "adapter_config.json",
				    "adapter_model.safetensors",
				    NULL}; /* LoRA's */
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
	if (c->lo) { /* the adapter only: the base stays where it is */
		lora_save(c->lo, tmp, c->src);
	} else {
		model_save_hf_dtype(c->m, tmp, c->save_dtype);
		model_carry_config(c->m, c->src, tmp, c->save_dtype);
	}
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
	const char *meta[] = {"head",     head_kind_name(c->bh->kind),
			      "eps",      eps,
			      "hidden",   hid,
			      "dim",      dim,
			      "pool",     pool_names[c->pool],
			      "ppl_from", ppl_names[c->ppl_from],
			      "formula",  "beta = exp(log_w) * exp(-mean prompt logp) * (1 + eps*tanh(head(h)))",
			      NULL};
	char *p = path_join(tmp, "beta_head.safetensors");
	st_save(p, t, nt, meta);
	free(p);

	/* optimizer */
	size_t np = model_n_trainable(c->m);
	st_tensor_out o[5] = {{"policy.m", 1, {(int64_t)np}, c->pm},
			      {"policy.v", 1, {(int64_t)np}, c->pv},
			      {"beta.m", 1, {(int64_t)c->bh->n_params}, c->hm},
			      {"beta.v", 1, {(int64_t)c->bh->n_params}, c->hv},
			      {"policy.w", 1, {(int64_t)np}, c->lo ? NULL : model_params(c->m)}};
	int sd = c->lo ? ST_F32 : c->save_dtype >= 0 ? c->save_dtype : model_cfg(c->m)->save_dtype;
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
	if (c->lo) {
		uint64_t dseed, dctr;
		lora_dropout_state(c->lo, &dseed, &dctr);
		char ds[32];
		snprintf(ds, sizeof ds, "%016llx", (unsigned long long)dseed);
		json_object_set_new(st, "lora_base",
				    json_pack("{s:s, s:s, s:s, s:I}", "path", c->src, "fingerprint", c->base_fp,
					      "dropout_seed", ds, "dropout_forwards", (json_int_t)dctr));
	}
	if (c->has_prov)
		json_object_set_new(st, "provenance",
				    json_pack("{s:s, s:s, s:s, s:I}", "kind", c->prov.kind, "tokenizer_sha256",
					      c->prov.tok_sha, "reference_fingerprint", c->prov.ref_fp,
					      "tokenizer_vocab_size", (json_int_t)c->prov.tok_vocab));
	p = path_join(tmp, "trainer_state.json");
	json_save_file(p, st, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
	free(p);
	json_decref(st);
	if (c->save_extra)
		c->save_extra(c->save_extra_arg, tmp);
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
	free(c->base_owned);
	model_free(c->m);
	lora_free(c->lo);
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
