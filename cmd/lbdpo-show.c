/* lbdpo-show — look at record streams: msgpack -> JSON Lines, and back. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "formats/mpjson.h"
#include "formats/jsonl.h"
#include "formats/schema.h"
#include "formats/records.h"
#include "formats/tokenizer.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/util.h"

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
	xgrow((void **)buf, cap, *len + n + 1, 1);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = 0;
}

/* Append "KEY_text": decode(KEY_ids) for each token-id array of rec to the
 * JSON object text in buf (before its closing brace). */
static void add_texts(rs_reader *r, const msgpack_object *rec, tok *tk, uint32_t **ids, size_t *idcap, char **text,
		      size_t *tcap, char **buf, size_t *len, size_t *bcap)
{
	for (uint32_t k = 0; k < rec->via.map.size; k++) {
		const msgpack_object *key = &rec->via.map.ptr[k].key;
		size_t kl = key->via.str.size, n;
		if (kl < 5 || kl > 200 || memcmp(key->via.str.ptr + kl - 4, "_ids", 4) ||
		    rec->via.map.ptr[k].val.type != MSGPACK_OBJECT_ARRAY)
			continue;
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)kl, key->via.str.ptr);
		rs_get_ids(r, rec, name, tok_vocab_size(tk), ids, &n, idcap);
		/* prompt_ids start a text; every other array continues it (as
		 * lbdpo-tokenize encodes completions): prompt_text followed by
		 * chosen_text is the decoded pair, a SentencePiece completion's
		 * leading space included */
		unsigned fl = strcmp(name, KEY_PROMPT_IDS) ? TOK_NO_STRIP : 0;
		long tl = tok_decode(tk, *ids, n, fl, text, tcap);
		if (tl < 0)
			rs_die(r, "key '%s': %s", name, tok_error(tk));
		memcpy(name + kl - 4, "_text", 6);
		(*len)--; /* reopen the object: drop its '}' */
		append(buf, len, bcap, ",", 1);
		mpj_string(name, strlen(name), buf, len, bcap);
		append(buf, len, bcap, ":", 1);
		mpj_string(*text, (size_t)tl, buf, len, bcap);
		append(buf, len, bcap, "}", 1);
	}
}

int main(int argc, char **argv)
{
	const char *in = NULL, *out = NULL;
	int no_header = 0, header_only = 0, from_json = 0, f32 = 0;
	long limit = -1;
	const char *tokpath = NULL;
	const cli_opt opts[] = {
		OPT_STRING('i', "input", "FILE", &in, "read FILE instead of standard input"),
		OPT_STRING('o', "output", "FILE", &out, "write FILE (atomically) instead of standard output"),
		OPT_BOOL(0, "no-header", &no_header, "do not print the header"),
		OPT_BOOL(0, "header-only", &header_only, "print only the header (the records are not read)"),
		OPT_BOOL(0, "f32", &f32,
			 "show bin values as lists of little-endian f32 ({\"$f32le\": [...]}) instead of base64"),
		OPT_STRING(0, "tokenizer", "FILE", &tokpath,
			   "decode every token-id array KEY_ids of a record into an added key KEY_text with FILE "
			   "(tokenizer.json, tokenizer.model, tokenizer.bin or a model directory; a view: not for "
			   "--from-json)"),
		OPT_INT('n', "records", "N", &limit, 0, __LONG_MAX__, "stop after N records (header not counted)"),
		OPT_BOOL(0, "from-json", &from_json, "convert JSON Lines to msgpack"),
		{0}};
	const cli_spec spec = {"lbdpo-show",
			       "lbdpo-show [-i FILE] [-o FILE] [--no-header] [--f32] [-n N]\n"
			       "lbdpo-show --from-json [-i FILE] [-o FILE]",
			       "\nPrint an lbdpo record stream (msgpack) as JSON Lines, one object per\n"
			       "record, header first; or, with --from-json, turn such JSON Lines back\n"
			       "into the identical msgpack stream.",
			       opts, print_version};
	set_progname(spec.prog);
	cli c;
	cli_start(&c, &spec, argc, argv);
	cli_parse(&c, 0);
	const int flags = f32 ? MPJ_F32 : 0;
	if (from_json && (no_header || header_only || flags || limit >= 0 || tokpath))
		die_usage("--from-json takes no display options");

	if (from_json) {
		/* the shared JSONL reader: gzip, and a bounded line length */
		jsonl *jr = jsonl_open(in);
		rs_writer *w = rs_create(out);
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		const char *line;
		char err[512];
		size_t n;
		int rc;
		uint64_t nobj = 0;
		while ((rc = jsonl_next(jr, &line, &n)) == 1) {
			size_t k = strspn(line, " \t\r\n");
			if (line[k] == 0)
				continue;
			if (line[k] != '{')
				die("%s: line %llu: expected a JSON object", jsonl_name(jr),
				    (unsigned long long)jsonl_lineno(jr));
			msgpack_sbuffer_clear(&sb);
			if (jsonl_limits(line, n, err, sizeof err) || mpj_from_json(line, n, &pk, err, sizeof err))
				die("%s: line %llu: %s", jsonl_name(jr), (unsigned long long)jsonl_lineno(jr), err);
			rs_write_raw(w, sb.data, sb.size);
			nobj++;
		}
		if (rc < 0)
			die("%s: %s", jsonl_name(jr), jsonl_error(jr));
		if (nobj == 0)
			die("%s: empty input: no header line", jsonl_name(jr));
		msgpack_sbuffer_destroy(&sb);
		jsonl_close(jr);
		rs_finish(w);
		close_stdout();
		return 0;
	}

	tok *tk = tokpath ? tok_load(tokpath) : NULL;
	uint32_t *ids = NULL;
	size_t idcap = 0, tcap = 0;
	char *text = NULL;
	rs_reader *r = rs_open_raw(in);
	outfile *o = out_open(out);
	const msgpack_object *rec;
	char *buf = NULL;
	size_t len = 0, bcap = 0;
	long shown = 0;
	uint64_t i = 0;
	/* --header-only stops before reading a record: a damaged one is not its business */
	for (; !(i > 0 && header_only) && rs_next(r, &rec); i++) {
		if (i == 0 && no_header)
			continue;
		if (i > 0 && limit >= 0 && shown++ >= limit)
			break;
		len = 0;
		mpj_to_json(rec, flags, &buf, &len, &bcap);
		if (tk && i > 0)
			add_texts(r, rec, tk, &ids, &idcap, &text, &tcap, &buf, &len, &bcap);
		if (fwrite(buf, 1, len, o->fp) != len || putc('\n', o->fp) == EOF)
			die("%s: write error", out ? out : "standard output");
	}
	if (i == 0) /* the same rule as every other reader */
		die("%s: empty stream: no header (is this an lbdpo record stream?)", rs_name(r));
	free(buf);
	free(ids);
	free(text);
	if (tk)
		tok_free(tk);
	rs_close(r);
	out_close(o);
	close_stdout();
	return 0;
}
