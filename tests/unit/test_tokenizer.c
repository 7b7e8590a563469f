/* test_tokenizer.c — token ids against other people's tokenizers:
 *   tests/fixtures/tokenizer/cases.jsonl (Hugging Face `tokenizers`, made by
 *   tests/ref/make_tokenizer_fixtures.py), the shared goldens (gpt-3-encoder,
 *   llama2.c encode()); decoding; hostile tokenizer files; the JSONL reader;
 *   the implicit-prompt and truncation rules of lbdpo-tokenize(1). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "formats/jsonl.h"
#include "formats/prefs.h"
#include "formats/tokenizer.h"
#include "base/util.h"

#define FIX "tests/fixtures/tokenizer/"

static void setup(void) { set_progname("test_tokenizer"); }
TestSuite(tokenizer, .init = setup);

static const char *shared(void) { return getenv("LBDPO_SHARED"); }

static int ids_equal(json_t *want, const uint32_t *ids, size_t n)
{
	if (json_array_size(want) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((uint64_t)json_integer_value(json_array_get(want, i)) != ids[i])
			return 0;
	return 1;
}

static void print_ids(const char *what, const uint32_t *ids, size_t n)
{
	fprintf(stderr, "%s:", what);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %u", ids[i]);
	fprintf(stderr, "\n");
}

/* Check every line of a {"text", "ids"} JSONL file against t. Returns cases. */
static int check_file(const char *path, tok *fixed, unsigned flags, int check_decode)
{
	FILE *f = fopen(path, "r");
	cr_assert(f, "cannot open %s", path);
	char *line = NULL, tokp[512];
	size_t cap = 0;
	int ncase = 0, nbad = 0;
	tok *cur = NULL;
	char curname[256] = "";
	uint32_t *ids = NULL;
	size_t n = 0, icap = 0;
	char *dec = NULL;
	size_t dcap = 0;
	while (getline(&line, &cap, f) > 0) {
		json_error_t je;
		json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
		cr_assert(o, "%s: %s", path, je.text);
		tok *t = fixed;
		unsigned fl = flags;
		if (!t) {
			const char *name = json_string_value(json_object_get(o, "tokenizer"));
			if (strcmp(name, curname)) {
				tok_free(cur);
				cur = NULL;
				snprintf(curname, sizeof curname, "%s", name);
				if (!strcmp(name, "gpt2")) {
					if (!shared()) {
						json_decref(o);
						continue;
					}
					snprintf(tokp, sizeof tokp, "%s/assets/gpt2/tokenizer.json", shared());
				} else
					snprintf(tokp, sizeof tokp, FIX "%s", name);
				cur = tok_load(tokp);
			}
			if (!cur) {
				json_decref(o);
				continue;
			}
			t = cur;
			if (json_is_true(json_object_get(o, "bos")))
				fl |= TOK_ADD_BOS;
		}
		json_t *text = json_object_get(o, "text");
		n = 0;
		cr_assert_eq(tok_encode(t, json_string_value(text), json_string_length(text), fl, &ids, &n, &icap), 0,
			     "%s", tok_error(t));
		if (!ids_equal(json_object_get(o, "ids"), ids, n)) {
			nbad++;
			fprintf(stderr, "MISMATCH %s [%s]\n", tok_path(t), json_string_value(text));
			print_ids("  got", ids, n);
		}
		json_t *want = json_object_get(o, "decoded");
		if (check_decode && want) {
			long l = tok_decode(t, ids, n, TOK_SKIP_SPECIAL, &dec, &dcap);
			if (l != (long)json_string_length(want) || memcmp(dec, json_string_value(want), (size_t)l)) {
				nbad++;
				fprintf(stderr, "DECODE MISMATCH %s [%s] -> [%s]\n", tok_path(t),
					json_string_value(want), dec);
			}
		}
		ncase++;
		json_decref(o);
	}
	tok_free(cur);
	free(line), free(ids), free(dec);
	fclose(f);
	cr_assert_eq(nbad, 0, "%s: %d of %d cases differ", path, nbad, ncase);
	return ncase;
}

Test(tokenizer, hf_tokenizers_fixture)
{
	int n = check_file(FIX "cases.jsonl", NULL, 0, 1);
	cr_assert_gt(n, 100);
}

Test(tokenizer, gpt2_golden)
{
	if (!shared())
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char p[512], g[512];
	snprintf(p, sizeof p, "%s/assets/gpt2/tokenizer.json", shared());
	snprintf(g, sizeof g, "%s/golden/gpt2_token_ids.jsonl", shared());
	tok *t = tok_load(p);
	cr_assert_eq(tok_vocab_size(t), 50257);
	cr_assert_eq(tok_eos(t), 50256);
	cr_assert_eq(tok_add_bos(t), 0);
	cr_assert_gt(check_file(g, t, 0, 0), 10);
	tok_free(t);
}

Test(tokenizer, stories260K_golden)
{
	if (!shared())
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char p[512], g[512];
	snprintf(p, sizeof p, "%s/assets/stories260K/tok512.bin", shared());
	snprintf(g, sizeof g, "%s/golden/stories260K_logprobs.jsonl", shared());
	tok *t = tok_load(p);
	cr_assert_eq(tok_vocab_size(t), 512);
	cr_assert_eq(tok_bos(t), 1);
	cr_assert_eq(tok_eos(t), 2);
	cr_assert_gt(check_file(g, t, TOK_ADD_BOS, 0), 5);
	/* decoding gives the text back (the dummy-prefix space removed) */
	uint32_t *ids = NULL;
	size_t n = 0, cap = 0, dcap = 0;
	char *dec = NULL;
	const char *s = "Once upon a time, Tom said \"hi\" \xE2\x98\x83!";
	cr_assert_eq(tok_encode(t, s, strlen(s), TOK_ADD_BOS, &ids, &n, &cap), 0);
	cr_assert_eq(tok_decode(t, ids, n, TOK_SKIP_SPECIAL, &dec, &dcap), (long)strlen(s));
	cr_assert_str_eq(dec, s);
	free(ids), free(dec);
	tok_free(t);
}

Test(tokenizer, llama2_32k_vocab_roundtrip)
{
	if (!shared())
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char p[512];
	snprintf(p, sizeof p, "%s/assets/llama2c-tokenizer/tokenizer.bin", shared());
	tok *t = tok_load(p);
	cr_assert_eq(tok_vocab_size(t), 32000);
	uint32_t *ids = NULL;
	size_t n = 0, cap = 0, dcap = 0;
	char *dec = NULL;
	const char *s = "Hello world! naïve 日本語 🤖 tabs\tnew\nline";
	cr_assert_eq(tok_encode(t, s, strlen(s), TOK_ADD_BOS, &ids, &n, &cap), 0);
	cr_assert_eq(ids[0], 1);
	cr_assert_eq(tok_decode(t, ids, n, TOK_SKIP_SPECIAL, &dec, &dcap), (long)strlen(s));
	cr_assert_str_eq(dec, s);
	free(ids), free(dec);
	tok_free(t);
}

/* prompt and completion tokenized separately decode to their concatenation */
Test(tokenizer, continuation_decodes_to_concatenation)
{
	const char *names[] = {FIX "sp_bytefallback.json", FIX "sp_metaspace.json", FIX "bl_split.json"};
	for (int k = 0; k < 3; k++) {
		tok *t = tok_load(names[k]);
		uint32_t *ids = NULL;
		size_t n = 0, cap = 0, dcap = 0;
		char *dec = NULL;
		const char *p = "\n\nHuman: Why is the sky blue?\n\nAssistant:", *c = " Rayleigh scattering, mostly.";
		cr_assert_eq(tok_encode(t, p, strlen(p), TOK_ADD_BOS, &ids, &n, &cap), 0);
		cr_assert_eq(tok_encode(t, c, strlen(c), TOK_CONTINUE, &ids, &n, &cap), 0);
		tok_decode(t, ids, n, TOK_SKIP_SPECIAL, &dec, &dcap);
		char want[256];
		snprintf(want, sizeof want, "%s%s", p, c);
		cr_assert_str_eq(dec, want, "%s", names[k]);
		free(ids), free(dec);
		tok_free(t);
	}
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f);
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	rewind(f);
	char *b = malloc(*n + 1);
	cr_assert_eq(fread(b, 1, *n, f), *n);
	fclose(f);
	return b;
}

/* Every truncation of a tokenizer file is rejected with a message, never a
 * crash; byte flips load or fail cleanly. */
Test(tokenizer, hostile_tokenizer_json)
{
	size_t n;
	char *b = slurp(FIX "bl_split.json", &n), err[600];
	int rejected = 0;
	for (size_t cut = 0; cut < n; cut += 1 + cut / 16) {
		tok *t = tok_load_mem("cut.json", b, cut, NULL, err, sizeof err);
		if (!t) {
			rejected++;
			cr_assert(strlen(err) > 0 && !strchr(err, '\n'), "message: %s", err);
		}
		tok_free(t);
	}
	cr_assert_gt(rejected, 10);
	srand(7);
	for (int k = 0; k < 300; k++) {
		char *c = malloc(n);
		memcpy(c, b, n);
		for (int j = 0; j < 3; j++)
			c[rand() % n] = (char)(rand() & 0xFF);
		tok *t = tok_load_mem("flip.json", c, n, NULL, err, sizeof err);
		if (t) {
			uint32_t *ids = NULL;
			size_t ni = 0, cap = 0;
			tok_encode(t, "Hello world, 123 foo!", 21, TOK_ADD_BOS, &ids, &ni, &cap);
			free(ids);
		}
		tok_free(t);
		free(c);
	}
	free(b);
	const char *bad[] = {
		"{}",
		"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}",
		"{\"model\": {\"vocab\": {\"a\": -1}, \"merges\": []}}",
		"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
		"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}}}",
		"\x10\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\x7f"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = i == 5 ? 12 : strlen(bad[i]);
		tok *t = tok_load_mem("bad", bad[i], len, NULL, err, sizeof err);
		cr_assert_null(t, "case %zu loaded", i);
		cr_assert(strlen(err) > 0);
	}
}

Test(tokenizer, hostile_llama2c_bin)
{
	if (!shared())
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char p[512], err[600];
	snprintf(p, sizeof p, "%s/assets/stories260K/tok512.bin", shared());
	size_t n;
	char *b = slurp(p, &n);
	for (size_t cut = 0; cut < n; cut++) {
		tok *t = tok_load_mem("cut.bin", b, cut, NULL, err, sizeof err);
		tok_free(t);
	}
	free(b);
}

Test(tokenizer, utf8_validation)
{
	struct {
		const char *s;
		size_t n, bad;
	} c[] = {{"abc", 3, 3},
		 {"a\xC3\xA9", 3, 3},
		 {"a\xC3", 2, 1},
		 {"\xC0\xAF", 2, 0},         /* overlong */
		 {"\xED\xA0\x80", 3, 0},     /* surrogate */
		 {"\xF4\x90\x80\x80", 4, 0}, /* > U+10FFFF */
		 {"ok\xFF", 3, 2},
		 {"\xF0\x9F\xA4\x96", 4, 4}};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
		cr_assert_eq(utf8_invalid_at(c[i].s, c[i].n), c[i].bad, "case %zu", i);
}

Test(tokenizer, implicit_prompt_boundary)
{
	/* TRL's extract_prompt (trl/data_utils.py): the first differing
	 * character, less the space before it */
	const char *c = "\n\nHuman: hi\n\nAssistant: Sure, here", *r = "\n\nHuman: hi\n\nAssistant: No";
	size_t k = pref_implicit_prompt_len(c, strlen(c), r, strlen(r));
	cr_assert_eq(k, strlen("\n\nHuman: hi\n\nAssistant:"));
	/* "I'm" vs "It": TRL splits the word after the shared "I" */
	c = "\n\nHuman: hi\n\nAssistant: I'm here", r = "\n\nHuman: hi\n\nAssistant: It is";
	k = pref_implicit_prompt_len(c, strlen(c), r, strlen(r));
	cr_assert_eq(k, strlen("\n\nHuman: hi\n\nAssistant: I"));
	/* only a space is given back, not a newline */
	cr_assert_eq(pref_implicit_prompt_len("a\nb", 3, "a\nc", 3), 2);
	/* a text that is a prefix of the other: up to its last character */
	c = "A: You are welcome! It was a pleasure.";
	r = "A: You are welcome!";
	k = pref_implicit_prompt_len(c, strlen(c), r, strlen(r));
	cr_assert_eq(k, strlen("A: You are welcome"));
	/* characters, not bytes: "é" (C3 A9) and "è" (C3 A8) differ as a whole */
	cr_assert_eq(pref_implicit_prompt_len("x \xC3\xA9", 4, "x \xC3\xA8", 4), 1);
	cr_assert_eq(pref_implicit_prompt_len("ab\xC3\xA9", 4, "ab\xC3\xA9z", 5), 2);
	cr_assert_eq(pref_implicit_prompt_len("abc", 3, "abd", 3), 2);
	cr_assert_eq(pref_implicit_prompt_len("xbc", 3, "abd", 3), 0);
}

Test(tokenizer, truncation_rule)
{
	uint32_t p[6] = {1, 10, 11, 12, 13, 14}, c[4] = {20, 21, 22, 2}, r[4] = {20, 21, 23, 2};
	size_t np = 6, nc = 4, nr = 4;
	int tr;
	pref_trunc o = {.max_length = 7, .max_prompt = 4, .keep_end = 1, .bos = 1};
	cr_assert_eq(pref_truncate(&o, p, &np, &nc, &nr, c, r, &tr), 1);
	cr_assert_eq(tr, 1);
	cr_assert_eq(np, 4);
	cr_assert(p[0] == 1 && p[1] == 12 && p[2] == 13 && p[3] == 14);
	cr_assert_eq(nc, 3);
	cr_assert_eq(nr, 3);
	/* completions identical after the cut: dropped */
	np = 6, nc = 4, nr = 4;
	uint32_t p2[6] = {1, 10, 11, 12, 13, 14};
	o.max_length = 8;
	o.max_prompt = 6;
	cr_assert_eq(pref_truncate(&o, p2, &np, &nc, &nr, c, r, &tr), 0);
}

/* --truncation-mode keep_end (TRL's default): an over-long pair loses the
 * prompt's start, the completions stay whole; keep_start cuts their ends. */
Test(tokenizer, truncation_mode_keep_end)
{
	uint32_t p[6] = {1, 10, 11, 12, 13, 14}, c[4] = {20, 21, 22, 2}, r[3] = {23, 24, 2};
	size_t np = 6, nc = 4, nr = 3;
	int tr;
	pref_trunc o = {.max_length = 7, .keep_end = 1, .bos = 1, .seq_keep_end = 1};
	cr_assert_eq(pref_truncate(&o, p, &np, &nc, &nr, c, r, &tr), 1);
	cr_assert_eq(tr, 1);
	cr_assert_eq(np, 3, "7 - the longer completion (4)");
	cr_assert(p[0] == 1 && p[1] == 13 && p[2] == 14, "BOS stays first, then the prompt's end");
	cr_assert(nc == 4 && nr == 3, "completions whole");
	/* no BOS: the last tokens only */
	uint32_t q[6] = {1, 10, 11, 12, 13, 14};
	np = 6, nc = 4, nr = 3;
	o.bos = -1;
	cr_assert_eq(pref_truncate(&o, q, &np, &nc, &nr, c, r, &tr), 1);
	cr_assert(np == 3 && q[0] == 12 && q[1] == 13 && q[2] == 14);
	/* short enough: untouched */
	np = 3, nc = 4, nr = 3, tr = 7;
	cr_assert_eq(pref_truncate(&o, q, &np, &nc, &nr, c, r, &tr), 1);
	cr_assert(tr == 0 && np == 3 && nc == 4);
	/* the longer completion alone fills max_length: dropped */
	o.max_length = 4;
	np = 3, nc = 4, nr = 3;
	cr_assert_eq(pref_truncate(&o, q, &np, &nc, &nr, c, r, &tr), 0);
	/* keep_start: the completions' ends go */
	uint32_t s[6] = {1, 10, 11, 12, 13, 14};
	pref_trunc k = {.max_length = 8, .keep_end = 1, .bos = 1, .seq_keep_end = 0};
	np = 6, nc = 4, nr = 3;
	cr_assert_eq(pref_truncate(&k, s, &np, &nc, &nr, c, r, &tr), 1);
	cr_assert(np == 6 && nc == 2 && nr == 2 && s[1] == 10);
}

static int memfd_with(const char *data, size_t n)
{
	int fd = memfd_create("jsonl", 0);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, data, n), (ssize_t)n);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

Test(tokenizer, jsonl_reader_lines)
{
	const char data[] = "{\"a\":1}\n\n   \r\n{\"b\":2}\r\n{\"c\":\"\xC3\"}\n[1]\n{\"d\":4}";
	jsonl *r = jsonl_open_fd(memfd_with(data, sizeof data - 1), "mem");
	const char *line;
	size_t len;
	char err[256];
	uint64_t want_line[] = {1, 4, 5, 6, 7};
	int want_ok[] = {1, 1, 0, 0, 1};
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(jsonl_next(r, &line, &len), 1);
		cr_assert_eq(jsonl_lineno(r), want_line[i]);
		json_t *o = jsonl_parse(line, len, err, sizeof err);
		cr_assert_eq(o != NULL, want_ok[i], "line %d: %s", i, err);
		if (i == 2)
			cr_assert(strstr(err, "UTF-8"), "%s", err);
		json_decref(o);
	}
	cr_assert_eq(jsonl_next(r, &line, &len), 0);
	jsonl_close(r);
}
