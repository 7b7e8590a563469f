/* lbdpo-tokenize — preference JSONL (TRL formats) -> token records. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "formats/jsonl.h"
#include "formats/prefs.h"
#include "formats/records.h"
#include "formats/tokenizer.h"
#include "libcore/cpu.h"
#include "libcore/util.h"

static const char usage_text[] =
	"usage: lbdpo-tokenize --tokenizer FILE [options] [-i FILE] [-o FILE]\n"
	"\n"
	"Tokenize preference pairs (JSON Lines, gzip accepted) into an lbdpo\n"
	"record stream of kind \"tokens\": prompt_ids, chosen_ids, rejected_ids.\n"
	"Input formats: standard {prompt, chosen, rejected}; implicit prompt\n"
	"{chosen, rejected}; conversational (lists of {role, content}).\n"
	"\n"
	"  -t, --tokenizer FILE        tokenizer.json (Hugging Face) or llama2.c\n"
	"                              tokenizer.bin (required)\n"
	"  -i, --input FILE            read FILE (.jsonl or .jsonl.gz) instead of stdin\n"
	"  -o, --output FILE           write FILE (atomically) instead of stdout\n"
	"      --template NAME         chat template for conversational records:\n"
	"                              chatml, llama3, hh\n"
	"      --max-length N          at most N tokens of prompt + completion\n"
	"      --max-prompt-length N   at most N prompt tokens\n"
	"      --truncation MODE       keep_end (default) or keep_start: which end\n"
	"                              of a long prompt to keep\n"
	"      --no-eos                do not append EOS to the completions\n"
	"      --no-bos                never prepend BOS to the prompt\n"
	"      --keep-text             also write the prompt / chosen / rejected\n"
	"                              texts (as tokenized) into each record\n"
	"      --skip-invalid          skip (and count) invalid lines instead of\n"
	"                              stopping at the first one\n"
	"  -q, --quiet                 no summary line on stderr\n"
	"  -h, --help                  show this help\n"
	"  -V, --version               show the version\n";

typedef struct {
	uint32_t *v;
	size_t n, cap;
} idvec;

static int is_own_key(const char *k)
{
	static const char *own[] = {"prompt", "chosen", "rejected", "id", "group",
				    "prompt_ids", "chosen_ids", "rejected_ids"};
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		if (!strcmp(k, own[i])) return 1;
	return 0;
}

int main(int argc, char **argv)
{
	set_progname("lbdpo-tokenize");
	const char *in = NULL, *out = NULL, *tokpath = NULL, *tplname = NULL;
	int no_eos = 0, no_bos = 0, skip_invalid = 0, keep_text = 0, keep_end = 1;
	long max_length = 0, max_prompt = 0;
	enum { O_TPL = 256, O_MAXLEN, O_MAXPROMPT, O_TRUNC, O_NOEOS, O_NOBOS, O_SKIP, O_KEEPTEXT };
	static const struct option opts[] = {
		{"tokenizer", required_argument, 0, 't'},
		{"input", required_argument, 0, 'i'},
		{"output", required_argument, 0, 'o'},
		{"template", required_argument, 0, O_TPL},
		{"max-length", required_argument, 0, O_MAXLEN},
		{"max-prompt-length", required_argument, 0, O_MAXPROMPT},
		{"truncation", required_argument, 0, O_TRUNC},
		{"no-eos", no_argument, 0, O_NOEOS},
		{"no-bos", no_argument, 0, O_NOBOS},
		{"keep-text", no_argument, 0, O_KEEPTEXT},
		{"skip-invalid", no_argument, 0, O_SKIP},
		{"quiet", no_argument, 0, 'q'},
		{"help", no_argument, 0, 'h'},
		{"version", no_argument, 0, 'V'},
		{0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "t:i:o:qhV", opts, NULL)) != -1) {
		switch (c) {
		case 't': tokpath = optarg; break;
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case O_TPL: tplname = optarg; break;
		case O_MAXLEN: max_length = parse_long("--max-length", optarg, 2, 1L << 30); break;
		case O_MAXPROMPT: max_prompt = parse_long("--max-prompt-length", optarg, 1, 1L << 30); break;
		case O_TRUNC:
			if (!strcmp(optarg, "keep_end")) keep_end = 1;
			else if (!strcmp(optarg, "keep_start")) keep_end = 0;
			else die_usage("--truncation: expected keep_end or keep_start, got '%s'", optarg);
			break;
		case O_NOEOS: no_eos = 1; break;
		case O_NOBOS: no_bos = 1; break;
		case O_KEEPTEXT: keep_text = 1; break;
		case O_SKIP: skip_invalid = 1; break;
		case 'q': lbdpo_quiet = 1; break;
		case 'h': fputs(usage_text, stdout); close_stdout(); return 0;
		case 'V': print_version("lbdpo-tokenize"); return 0;
		default: die_usage("unknown option");
		}
	}
	if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
	if (!tokpath) die_usage("--tokenizer FILE is required");
	int tpl = TPL_NONE;
	if (tplname && (tpl = pref_template(tplname)) < 0)
		die_usage("--template: unknown template '%s' (chatml, llama3, hh)", tplname);
	if (max_length && max_prompt && max_prompt >= max_length)
		die_usage("--max-prompt-length must be smaller than --max-length");

	tok *t = tok_load(tokpath);
	if (!no_eos && tok_eos(t) < 0)
		die("%s: the tokenizer has no EOS token to append (use --no-eos)", tokpath);
	unsigned pflags = no_bos ? 0 : TOK_ADD_BOS;
	int bos_used = !no_bos && tok_add_bos(t) && tok_bos(t) >= 0;

	jsonl *r = jsonl_open(in);
	rs_writer *w = rs_create(out);
	rs_header_begin(w, NULL, "tokens", argc, argv);
	msgpack_packer *pk = rs_put_key(w, "tokenizer");
	msgpack_pack_map(pk, 6);
	const char *kv[][2] = {{"path", tok_path(t)}, {"sha256", tok_fingerprint(t)}, {"type", tok_kind(t)}};
	for (int i = 0; i < 3; i++) {
		msgpack_pack_str_with_body(pk, kv[i][0], strlen(kv[i][0]));
		msgpack_pack_str_with_body(pk, kv[i][1], strlen(kv[i][1]));
	}
	msgpack_pack_str_with_body(pk, "vocab_size", 10);
	msgpack_pack_uint32(pk, tok_vocab_size(t));
	msgpack_pack_str_with_body(pk, "bos", 3);
	if (tok_bos(t) >= 0) msgpack_pack_int64(pk, tok_bos(t));
	else msgpack_pack_nil(pk);
	msgpack_pack_str_with_body(pk, "eos", 3);
	if (tok_eos(t) >= 0) msgpack_pack_int64(pk, tok_eos(t));
	else msgpack_pack_nil(pk);
	rs_put_bool(w, "bos_prepended", bos_used);
	rs_put_bool(w, "eos_appended", !no_eos);
	if (tplname) rs_put_cstr(w, "template", tplname);
	rs_header_end(w);

	pref_trunc tr = {max_length, max_prompt, keep_end, bos_used ? tok_bos(t) : -1};
	pref_text pt = {0};
	idvec P = {0}, C = {0}, R = {0};
	uint64_t nread = 0, nwritten = 0, ntrunc = 0, ndropped = 0, ninvalid = 0, nties = 0;
	const char *line;
	size_t len;
	char err[600];
	int rc;
	double t0 = now_s(), tlast = t0;
	while ((rc = jsonl_next(r, &line, &len)) == 1) {
		nread++;
		const char *why = NULL;
		json_t *o = jsonl_parse(line, len, err, sizeof err);
		int prc = o ? pref_extract(o, tpl, &pt, err, sizeof err) : 0;
		if (prc == PREF_TIE) { /* identical completions: no preference to learn */
			nties++;
			ndropped++;
			json_decref(o);
			continue;
		}
		if (prc) why = err;
		json_t *id = o ? json_object_get(o, "id") : NULL, *group = o ? json_object_get(o, "group") : NULL;
		if (o && !why && id && !json_is_string(id) && !json_is_integer(id)) why = "\"id\" must be a string or an integer";
		if (o && !why && group && !json_is_string(group) && !json_is_integer(group))
			why = "\"group\" must be a string or an integer";
		if (o && !why) {
			/* prompt and completions are tokenized separately and concatenated,
			 * so prompt_ids is always a prefix of the sequence the model sees */
			P.n = C.n = R.n = 0;
			if (tok_encode(t, pt.prompt.s, pt.prompt.n, pflags, &P.v, &P.n, &P.cap) ||
			    tok_encode(t, pt.chosen.s, pt.chosen.n, TOK_CONTINUE, &C.v, &C.n, &C.cap) ||
			    tok_encode(t, pt.rejected.s, pt.rejected.n, TOK_CONTINUE, &R.v, &R.n, &R.cap)) {
				snprintf(err, sizeof err, "%s", tok_error(t));
				why = err;
			}
		} else if (!o) why = err;
		if (why) {
			json_decref(o);
			if (!skip_invalid) die("%s: line %llu: %s", jsonl_name(r), (unsigned long long)jsonl_lineno(r), why);
			ninvalid++;
			continue;
		}
		if (!no_eos) {
			uint32_t e = (uint32_t)tok_eos(t);
			xgrow((void **)&C.v, &C.cap, C.n + 1, sizeof(uint32_t));
			xgrow((void **)&R.v, &R.cap, R.n + 1, sizeof(uint32_t));
			C.v[C.n++] = e;
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
		if (id) pref_pack_json(rs_put_key(w, "id"), id);
		if (group) pref_pack_json(rs_put_key(w, "group"), group);
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v) {
			if (!is_own_key(k)) pref_pack_json(rs_put_key(w, k), v);
		}
		if (keep_text) {
			rs_put_str(w, "prompt", pt.prompt.s, pt.prompt.n);
			rs_put_str(w, "chosen", pt.chosen.s, pt.chosen.n);
			rs_put_str(w, "rejected", pt.rejected.s, pt.rejected.n);
		}
		rs_put_ids(w, "prompt_ids", P.v, P.n);
		rs_put_ids(w, "chosen_ids", C.v, C.n);
		rs_put_ids(w, "rejected_ids", R.v, R.n);
		rs_rec_end(w);
		nwritten++;
		json_decref(o);
		if (stderr_is_tty() && !lbdpo_quiet && now_s() - tlast > 0.5) {
			tlast = now_s();
			fprintf(stderr, "\rlbdpo-tokenize: %llu records", (unsigned long long)nread);
		}
	}
	if (rc < 0) die("%s: %s", jsonl_name(r), jsonl_error(r));
	if (stderr_is_tty() && !lbdpo_quiet && tlast != t0) fputc('\n', stderr);
	rs_finish(w);
	jsonl_close(r);
	info("read %llu, written %llu, truncated %llu, dropped %llu, invalid %llu (dropped ties: %llu)",
	     (unsigned long long)nread, (unsigned long long)nwritten, (unsigned long long)ntrunc,
	     (unsigned long long)ndropped, (unsigned long long)ninvalid, (unsigned long long)nties);
	pref_text_free(&pt);
	free(P.v), free(C.v), free(R.v);
	tok_free(t);
	close_stdout();
	return 0;
}
