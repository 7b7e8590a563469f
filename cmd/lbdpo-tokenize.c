/* lbdpo-tokenize — preference JSONL (TRL formats) -> token records. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "formats/jsonl.h"
#include "formats/prefs.h"
#include "formats/records.h"
#include "formats/tokenizer.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/util.h"
#include "formats/schema.h"

typedef struct {
	uint32_t *v;
	size_t n, cap;
} idvec;

static int starts_with(const char *s, size_t n, const char *p, size_t pn) { return pn && n >= pn && !memcmp(s, p, pn); }
static int ends_with(const char *s, size_t n, const char *p, size_t pn)
{
	return pn && n >= pn && !memcmp(s + n - pn, p, pn);
}

static size_t lcp_ids(const idvec *a, const idvec *b)
{
	size_t k = 0, m = a->n < b->n ? a->n : b->n;
	while (k < m && a->v[k] == b->v[k])
		k++;
	return k;
}

/* Tokenize text; BOS only if asked and the text does not already begin
 * with the BOS text (the guard against a doubled BOS). */
static int encode(tok *t, const strbuf *b, unsigned flags, const char *bos, size_t nbos, idvec *out)
{
	if ((flags & TOK_ADD_BOS) && starts_with(b->s, b->n, bos, nbos))
		flags &= ~TOK_ADD_BOS;
	return tok_encode(t, b->s, b->n, flags, &out->v, &out->n, &out->cap);
}

static int is_own_key(const char *k)
{
	static const char *own[] = {"prompt",  "chosen",       "rejected",     KEY_ID,
				    KEY_GROUP, KEY_PROMPT_IDS, KEY_CHOSEN_IDS, KEY_REJECTED_IDS};
	/* "tools" and "chat_template_kwargs" are passed through as well: TRL keeps them */
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		if (!strcmp(k, own[i]))
			return 1;
	return 0;
}

static void put_str(json_t *o, const char *k, const strbuf *b)
{
	json_object_set_new(o, k, json_stringn_nocheck(b->s ? b->s : "", b->n));
}

/* --render: the texts that would be tokenized, one JSON object per pair. */
static void run_render(jsonl *r, const char *out, const pref_tpl *tpl, int skip_invalid)
{
	outfile *of = out_open(out);
	pref_text pt = {0};
	const char *line;
	size_t len;
	char err[600];
	int rc;
	uint64_t nread = 0, nwritten = 0, ninvalid = 0, nties = 0;
	while ((rc = jsonl_next(r, &line, &len)) == 1) {
		nread++;
		json_t *o = jsonl_parse(line, len, err, sizeof err);
		int prc = o ? pref_extract_tpl(o, tpl, &pt, err, sizeof err) : -1;
		if (prc == PREF_TIE) {
			nties++;
			json_decref(o);
			continue;
		}
		if (prc) {
			json_decref(o);
			if (!skip_invalid)
				die("%s: line %llu: %s", jsonl_name(r), (unsigned long long)jsonl_lineno(r), err);
			ninvalid++;
			continue;
		}
		json_t *j = json_object();
		json_t *id = json_object_get(o, "id");
		if (id)
			json_object_set(j, "id", id);
		put_str(j, "prompt", &pt.prompt);
		put_str(j, "chosen", &pt.chosen);
		put_str(j, "rejected", &pt.rejected);
		char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!s || fputs(s, of->fp) == EOF || fputc('\n', of->fp) == EOF)
			die("%s: write error", out ? out : "<stdout>");
		free(s);
		json_decref(j);
		json_decref(o);
		nwritten++;
	}
	if (rc < 0)
		die("%s: %s", jsonl_name(r), jsonl_error(r));
	out_close(of);
	pref_text_free(&pt);
	info("read %llu, rendered %llu, invalid %llu, dropped ties %llu", (unsigned long long)nread,
	     (unsigned long long)nwritten, (unsigned long long)ninvalid, (unsigned long long)nties);
}

/* The header, true to what is done to the records: bos_prepended, BOS put
 * before each prompt; eos_appended, EOS after each completion (both unless
 * the text already has it). Plain texts get what the tokenizer and --no-bos
 * / --no-eos say; a chat rendering gets no BOS when its template is Jinja
 * (its text carries its special tokens) and no EOS when the template ends
 * its turns itself. */
static void put_header(rs_writer *w, tok *t, const pref_tpl *tpl, int bos_prepended, int eos_appended, int argc,
		       char **argv)
{
	rs_header_begin(w, NULL, "tokens", argc, argv);
	msgpack_packer *pk = rs_put_key(w, HDR_TOKENIZER);
	msgpack_pack_map(pk, 6);
	const char *kv[][2] = {{"path", tok_path(t)}, {HDR_SHA256, tok_fingerprint(t)}, {"type", tok_kind(t)}};
	for (int i = 0; i < 3; i++) {
		msgpack_pack_str_with_body(pk, kv[i][0], strlen(kv[i][0]));
		msgpack_pack_str_with_body(pk, kv[i][1], strlen(kv[i][1]));
	}
	msgpack_pack_str_with_body(pk, HDR_VOCAB_SIZE, 10);
	msgpack_pack_uint32(pk, tok_vocab_size(t));
	msgpack_pack_str_with_body(pk, "bos", 3);
	if (tok_bos(t) >= 0)
		msgpack_pack_int64(pk, tok_bos(t));
	else
		msgpack_pack_nil(pk);
	msgpack_pack_str_with_body(pk, "eos", 3);
	if (tok_eos(t) >= 0)
		msgpack_pack_int64(pk, tok_eos(t));
	else
		msgpack_pack_nil(pk);
	rs_put_bool(w, "bos_prepended", bos_prepended);
	rs_put_bool(w, "eos_appended", eos_appended);
	if (pref_tpl_name(tpl))
		rs_put_cstr(w, "template", pref_tpl_name(tpl));
	rs_header_end(w);
}

/* the option that needs code (the others are typed rows) */
enum { O_MAXLEN = 256 };

static const char *const trunc_modes[] = {"keep_end", "keep_start", NULL};

int main(int argc, char **argv)
{
	const char *in = NULL, *out = NULL, *tokpath = NULL, *tplname = NULL;
	int no_eos = 0, no_bos = 0, skip_invalid = 0, keep_text = 0, render = 0;
	long max_length = 1024, max_prompt = 0; /* TRL's DPOConfig max_length */
	int seq_trunc = 0, prompt_trunc = 0;    /* and truncation_mode: keep_end */
	const cli_opt opts[] = {
		OPT_STRING(
			0, "tokenizer", "FILE", &tokpath,
			"tokenizer.json (Hugging Face), SentencePiece tokenizer.model, llama2.c tokenizer.bin, or a model "
			"directory holding one (required)"),
		OPT_STRING('i', "input", "FILE", &in, "read FILE (.jsonl or .jsonl.gz) instead of stdin"),
		OPT_STRING('o', "output", "FILE", &out, "write FILE (atomically) instead of stdout"),
		OPT_STRING(
			0, "template", "NAME|FILE", &tplname,
			"chat template for conversational records: a Jinja file, or chatml, llama3, hh (default: the "
			"tokenizer's own chat_template)"),
		OPT_BOOL(0, "render", &render,
			 "write the rendered texts as JSON Lines (prompt, chosen, rejected) instead of tokens"),
		CLI_OPT(O_MAXLEN, 0, "max-length", "N",
			"at most N tokens of prompt + longer completion (default 1024, as TRL; 0 = no limit)"),
		OPT_ENUM(
			0, "truncation-mode", "MODE", &seq_trunc, trunc_modes,
			"keep_end (default, as TRL): cut an over-long pair's prompt start; keep_start: cut the completions' "
			"ends"),
		OPT_INT(0, "max-prompt-length", "N", &max_prompt, 1, 1L << 30, "at most N prompt tokens"),
		OPT_ENUM(0, "truncation", "MODE", &prompt_trunc, trunc_modes,
			 "keep_end (default) or keep_start: which end of a prompt over --max-prompt-length to keep"),
		OPT_BOOL(0, "no-eos", &no_eos, "never append EOS to the completions"),
		OPT_BOOL(0, "no-bos", &no_bos, "never prepend BOS to the prompt"),
		OPT_BOOL(0, "keep-text", &keep_text,
			 "also write the prompt / chosen / rejected texts (as tokenized) into each record"),
		OPT_BOOL(0, "skip-invalid", &skip_invalid,
			 "skip (and count) invalid lines instead of stopping at the first one"),
		OPT_BOOL('q', "quiet", &lbdpo_quiet, "no summary line on stderr"),
		CLI_GONE('t', NULL,
			 "-t no longer names the tokenizer (-t is --threads in every program that computes): give "
			 "--tokenizer FILE"),
		{0}};
	const cli_spec spec = {"lbdpo-tokenize", "lbdpo-tokenize --tokenizer FILE [options] [-i FILE] [-o FILE]",
			       "\nTokenize preference pairs (JSON Lines, gzip accepted) into an lbdpo\n"
			       "record stream of kind \"tokens\": prompt_ids, chosen_ids, rejected_ids.\n"
			       "Input formats: standard {prompt, chosen, rejected}; implicit prompt\n"
			       "{chosen, rejected}; conversational (lists of {role, content}).",
			       opts, print_version};
	set_progname(spec.prog);
	cli c;
	cli_start(&c, &spec, argc, argv);
	for (int key; (key = cli_next(&c)) != -1;) {
		switch (key) {
		case O_MAXLEN:
			max_length = parse_long("--max-length", c.arg, 0, 1L << 30);
			if (max_length == 1)
				die_usage(
					"--max-length: 1 leaves no room for a prompt and a completion (0 = no limit)");
			break;
		}
	}
	cli_end(&c, 0);
	const int seq_keep_end = seq_trunc == 0, keep_end = prompt_trunc == 0;
	if (!tokpath)
		die_usage("--tokenizer FILE is required");
	if (max_length && max_prompt && max_prompt >= max_length)
		die_usage("--max-prompt-length must be smaller than --max-length (%ld; 0 = no limit)", max_length);

	tok *t = tok_load(tokpath);
	if (!no_eos && tok_eos(t) < 0)
		die("%s: the tokenizer has no EOS token to append (use --no-eos)", tokpath);
	unsigned pflags = no_bos ? 0 : TOK_ADD_BOS;
	int bos_used = !no_bos && tok_add_bos(t) && tok_bos(t) >= 0;
	/* BOS / EOS as text, for the guard and the template's bos_token/eos_token */
	size_t nbos = 0, neos = 0;
	const char *bos = tok_bos(t) >= 0 ? tok_piece(t, (uint32_t)tok_bos(t), &nbos) : NULL;
	const char *eos = tok_eos(t) >= 0 ? tok_piece(t, (uint32_t)tok_eos(t), &neos) : NULL;
	char *tokdir = tok_dir(t);
	pref_tpl *tpl = pref_tpl_load(tplname, tokdir, bos, eos);
	free(tokdir);

	jsonl *r = jsonl_open(in);
	if (render) {
		run_render(r, out, tpl, skip_invalid);
		jsonl_close(r);
		pref_tpl_free(tpl);
		tok_free(t);
		close_stdout();
		return 0;
	}
	rs_writer *w = rs_create(out);
	/* the header says what was added, which depends on the records' form
	 * (put_header): it is written with the first record */
	int hdr_bos = -1, hdr_eos = -1;

	pref_trunc tr = {max_length, max_prompt, keep_end, bos_used ? tok_bos(t) : -1, seq_keep_end};
	pref_text pt = {0};
	idvec P = {0}, C = {0}, R = {0}, FC = {0}, FR = {0};
	uint64_t nread = 0, nwritten = 0, ntrunc = 0, ndropped = 0, ninvalid = 0, nties = 0, nempty = 0;
	const char *line;
	size_t len;
	char err[600];
	int rc;
	double t0 = now_s(), tlast = t0;
	progress_meter pm;
	progress_init(&pm, 0, "records");
	while ((rc = jsonl_next(r, &line, &len)) == 1) {
		nread++;
		const char *why = NULL;
		json_t *o = jsonl_parse(line, len, err, sizeof err);
		int prc = o ? pref_extract_tpl(o, tpl, &pt, err, sizeof err) : 0;
		if (prc == PREF_TIE) { /* identical completions: no preference to learn */
			nties++;
			ndropped++;
			json_decref(o);
			continue;
		}
		if (prc)
			why = err;
		json_t *id = o ? json_object_get(o, "id") : NULL, *group = o ? json_object_get(o, "group") : NULL;
		if (o && !why && id && !json_is_string(id) && !json_is_integer(id))
			why = "\"id\" must be a string or an integer";
		if (o && !why && group && !json_is_string(group) && !json_is_integer(group))
			why = "\"group\" must be a string or an integer";
		int eos_c = 0, eos_r = 0;
		if (o && !why) {
			P.n = C.n = R.n = 0;
			int bad;
			if (pt.rendered) {
				/* a chat rendering is tokenized whole, as TRL's DPOTrainer
				 * does: prompt_ids = the tokens the generation prompt shares
				 * with both full conversations; the completions the rest of
				 * each, so prompt_ids + chosen_ids is exactly the full
				 * conversation's tokenization */
				unsigned f = pref_tpl_is_jinja(tpl) ? 0 : pflags;
				bad = encode(t, &pt.gen, f, bos, nbos, &P) ||
				      encode(t, &pt.full_c, f, bos, nbos, &FC) ||
				      encode(t, &pt.full_r, f, bos, nbos, &FR);
				if (!bad) {
					size_t k = lcp_ids(&P, &FC), k2 = lcp_ids(&P, &FR);
					if (k2 < k)
						k = k2;
					P.n = k;
					xgrow((void **)&C.v, &C.cap, FC.n - k + 1, sizeof(uint32_t));
					xgrow((void **)&R.v, &R.cap, FR.n - k + 1, sizeof(uint32_t));
					memcpy(C.v, FC.v + k, (FC.n - k) * sizeof(uint32_t)), C.n = FC.n - k;
					memcpy(R.v, FR.v + k, (FR.n - k) * sizeof(uint32_t)), R.n = FR.n - k;
				}
				FC.n = FR.n = 0;
			} else {
				/* prompt and completions are tokenized separately and
				 * concatenated, so prompt_ids is always a prefix of the
				 * sequence the model sees */
				bad = encode(t, &pt.prompt, pflags, bos, nbos, &P) ||
				      encode(t, &pt.chosen, TOK_CONTINUE, bos, nbos, &C) ||
				      encode(t, &pt.rejected, TOK_CONTINUE, bos, nbos, &R);
			}
			if (bad) {
				snprintf(err, sizeof err, "%s", tok_error(t));
				why = err;
			} else if (!C.n || !R.n) {
				snprintf(err, sizeof err, "empty completion \"%s\" after tokenization",
					 !C.n ? "chosen" : "rejected");
				why = err;
			} else if (P.n + C.n + R.n + 64 > RS_MAX_OBJECTS) {
				/* a record no reader would accept (records.h) */
				snprintf(err, sizeof err, "%zu tokens: more than a record may hold (%u values)",
					 P.n + C.n + R.n, RS_MAX_OBJECTS);
				why = err;
			}
			/* EOS: not after a chat template's own end of turn (TRL adds
			 * none to conversational data), and not when the text already
			 * ends with it */
			if (!no_eos && !(pt.rendered && pref_tpl_eot(tpl))) {
				eos_c = !ends_with(pt.chosen.s, pt.chosen.n, eos, neos);
				eos_r = !ends_with(pt.rejected.s, pt.rejected.n, eos, neos);
			}
		} else if (!o)
			why = err;
		if (why) {
			json_decref(o);
			if (!skip_invalid)
				die("%s: line %llu: %s", jsonl_name(r), (unsigned long long)jsonl_lineno(r), why);
			ninvalid++;
			continue;
		}
		if (!P.n) {
			/* an implicit prompt with no common prefix, or an empty one,
			 * and no BOS: nothing to condition on, and every reader of
			 * token records needs a prompt token; skipped like a tie */
			if (nempty++ < 5)
				warning("%s: line %llu: no prompt tokens (no common prefix or an empty prompt, and no BOS): "
					"skipped%s",
					jsonl_name(r), (unsigned long long)jsonl_lineno(r),
					nempty == 5 ? " (further ones are only counted)" : "");
			ndropped++;
			json_decref(o);
			continue;
		}
		const int rb = pt.rendered && pref_tpl_is_jinja(tpl) ? 0 : bos_used;
		const int re = !no_eos && !(pt.rendered && pref_tpl_eot(tpl));
		if (hdr_bos < 0) {
			put_header(w, t, tpl, rb, re, argc, argv);
			hdr_bos = rb, hdr_eos = re;
		} else if (rb != hdr_bos || re != hdr_eos) {
			die("%s: line %llu: a %s record after %s ones, which get BOS/EOS otherwise (the header says "
			    "bos_prepended %s, eos_appended %s): tokenize the two forms into separate streams",
			    jsonl_name(r), (unsigned long long)jsonl_lineno(r),
			    pt.rendered ? "conversational" : "plain-text",
			    pt.rendered ? "plain-text" : "conversational", hdr_bos ? "true" : "false",
			    hdr_eos ? "true" : "false");
		}
		uint32_t e = (uint32_t)tok_eos(t);
		if (eos_c) {
			xgrow((void **)&C.v, &C.cap, C.n + 1, sizeof(uint32_t));
			C.v[C.n++] = e;
		}
		if (eos_r) {
			xgrow((void **)&R.v, &R.cap, R.n + 1, sizeof(uint32_t));
			R.v[R.n++] = e;
		}
		int truncated;
		if (!pref_truncate(&tr, P.v, &P.n, &C.n, &R.n, C.v, R.v, &truncated)) {
			ndropped++;
			json_decref(o);
			continue;
		}
		ntrunc += truncated;
		rs_rec_begin(w, NULL);
		if (id)
			pref_pack_json(rs_put_key(w, KEY_ID), id);
		if (group)
			pref_pack_json(rs_put_key(w, KEY_GROUP), group);
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v)
		{
			if (!is_own_key(k))
				pref_pack_json(rs_put_key(w, k), v);
		}
		if (keep_text) {
			rs_put_str(w, "prompt", pt.prompt.s, pt.prompt.n);
			rs_put_str(w, "chosen", pt.chosen.s, pt.chosen.n);
			rs_put_str(w, "rejected", pt.rejected.s, pt.rejected.n);
		}
		rs_put_ids(w, KEY_PROMPT_IDS, P.v, P.n);
		rs_put_ids(w, KEY_CHOSEN_IDS, C.v, C.n);
		rs_put_ids(w, KEY_REJECTED_IDS, R.v, R.n);
		rs_rec_end(w);
		nwritten++;
		json_decref(o);
		if (stderr_is_tty() && !lbdpo_quiet && now_s() - tlast > 0.5) {
			tlast = now_s();
			fprintf(stderr, "\rlbdpo-tokenize: %llu records", (unsigned long long)nread);
		} else if (!stderr_is_tty()) {
			progress_show(&pm, (long)nread, NULL); /* a periodic line for logs */
		}
	}
	if (rc < 0)
		die("%s: %s", jsonl_name(r), jsonl_error(r));
	if (hdr_bos < 0) /* no records: what plain texts would get */
		put_header(w, t, tpl, bos_used, !no_eos, argc, argv);
	if (stderr_is_tty() && !lbdpo_quiet && tlast != t0)
		fputc('\n', stderr);
	rs_finish(w);
	jsonl_close(r);
	char empty[64] = "";
	if (nempty)
		snprintf(empty, sizeof empty, "; empty prompts: %llu", (unsigned long long)nempty);
	info("read %llu, written %llu, truncated %llu, dropped %llu, invalid %llu (dropped ties: %llu%s)",
	     (unsigned long long)nread, (unsigned long long)nwritten, (unsigned long long)ntrunc,
	     (unsigned long long)ndropped, (unsigned long long)ninvalid, (unsigned long long)nties, empty);
	pref_text_free(&pt);
	free(P.v), free(C.v), free(R.v), free(FC.v), free(FR.v);
	pref_tpl_free(tpl);
	tok_free(t);
	close_stdout();
	return 0;
}
