/* test_tokenizer_real.c — real vocabularies from ../shared/assets/tokenizers
 * against the reference libraries' ids (tokenizers 0.23.3 for Llama-3's
 * tokenizer.json, sentencepiece 0.2.3 for Mistral v0.3's tokenizer.model):
 * every id exact, and decoding gives the text back. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer.h"

static const char *shared(void) { return getenv("LBDPO_SHARED"); }

static void check_golden(const char *tokfile, const char *golden, int want_records)
{
	if (!shared())
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char tp[4096], gp[4096];
	snprintf(tp, sizeof tp, "%s/assets/tokenizers/%s", shared(), tokfile);
	snprintf(gp, sizeof gp, "%s/assets/tokenizers/%s", shared(), golden);
	FILE *g = fopen(gp, "r");
	if (!g)
		cr_skip_test("%s absent", gp);
	tok *t = tok_load(tp);
	char *line = NULL, *dec = NULL;
	size_t cap = 0, dcap = 0;
	uint32_t *ids = NULL;
	size_t nids = 0, icap = 0;
	int nrec = 0, nexact = 0;
	while (getline(&line, &cap, g) > 0) {
		json_t *r = json_loads(line, 0, NULL);
		cr_assert(r);
		json_t *text = json_object_get(r, "text"), *want = json_object_get(r, "ids");
		nids = 0;
		int rc = tok_encode(t, json_string_value(text), json_string_length(text), TOK_NO_SPECIAL, &ids, &nids,
				    &icap);
		cr_assert_eq(rc, 0, "%s: %s", json_string_value(text), tok_error(t));
		int same = nids == json_array_size(want);
		for (size_t i = 0; same && i < nids; i++)
			same = ids[i] == (uint32_t)json_integer_value(json_array_get(want, i));
		if (!same) {
			char got[4096] = "";
			for (size_t i = 0; i < nids && strlen(got) < 4000; i++)
				snprintf(got + strlen(got), sizeof got - strlen(got), "%u,", ids[i]);
			char *w = json_dumps(want, JSON_COMPACT);
			cr_expect(same, "%s: text %s\n got [%s]\nwant %s", tokfile, json_string_value(text), got, w);
			free(w);
		}
		nexact += same;
		long n = tok_decode(t, ids, nids, 0, &dec, &dcap);
		cr_expect(n == (long)json_string_length(text) && !memcmp(dec, json_string_value(text), (size_t)n),
			  "%s: decode of %s gave %s", tokfile, json_string_value(text), dec);
		json_decref(r);
		nrec++;
	}
	cr_expect_eq(nrec, want_records);
	cr_log_info("%s: %d/%d texts with exact ids", tokfile, nexact, nrec);
	free(line), free(ids), free(dec);
	fclose(g);
	tok_free(t);
}

Test(tokenizer_real, llama3_tokenizer_json) { check_golden("llama3/tokenizer.json", "llama3/golden.jsonl", 26); }

Test(tokenizer_real, mistral_v3_sentencepiece_model)
{
	check_golden("mistral-v3/tokenizer.model.v3", "mistral-v3/golden.jsonl", 26);
	if (!shared())
		return;
	char tp[4096];
	snprintf(tp, sizeof tp, "%s/assets/tokenizers/mistral-v3/tokenizer.model.v3", shared());
	tok *t = tok_load(tp);
	cr_expect_str_eq(tok_kind(t), "sentencepiece");
	cr_expect_eq(tok_bos(t), 1);
	cr_expect_eq(tok_eos(t), 2);
	cr_expect_eq(tok_add_bos(t), 1);
	/* control pieces are whole tokens in chat text, as in Hugging Face's conversion */
	uint32_t *ids = NULL;
	size_t n = 0, cap = 0;
	const char *s = "<s>[INST] Hi [/INST]";
	cr_assert_eq(tok_encode(t, s, strlen(s), 0, &ids, &n, &cap), 0);
	cr_expect(n >= 4 && ids[0] == 1 && ids[1] == 3 && ids[n - 1] == 4, "control pieces not matched whole");
	free(ids);
	tok_free(t);
}

/* The same Llama-2 vocabulary as llama2.c tokenizer.bin and as SentencePiece
 * tokenizer.model: identical ids (llama2.c's encode() is SentencePiece BPE). */
Test(tokenizer_real, llama2_model_equals_llama2c_bin)
{
	if (!shared())
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char a[4096], b[4096], g[4096];
	snprintf(a, sizeof a, "%s/assets/llama2c-tokenizer/tokenizer.model", shared());
	snprintf(b, sizeof b, "%s/assets/llama2c-tokenizer/tokenizer.bin", shared());
	snprintf(g, sizeof g, "%s/assets/tokenizers/llama3/golden.jsonl", shared());
	FILE *f = fopen(g, "r");
	if (!f)
		cr_skip_test("%s absent", g);
	tok *tm = tok_load(a), *tb = tok_load(b);
	cr_expect_eq(tok_vocab_size(tm), 32000);
	char *line = NULL;
	size_t cap = 0;
	int ntexts = 0;
	uint32_t *x = NULL, *y = NULL;
	size_t nx = 0, ny = 0, cx = 0, cy = 0;
	while (getline(&line, &cap, f) > 0) {
		json_t *r = json_loads(line, 0, NULL);
		const char *s = json_string_value(json_object_get(r, "text"));
		size_t l = json_string_length(json_object_get(r, "text"));
		nx = ny = 0;
		cr_assert_eq(tok_encode(tm, s, l, TOK_ADD_BOS | TOK_NO_SPECIAL, &x, &nx, &cx), 0);
		cr_assert_eq(tok_encode(tb, s, l, TOK_ADD_BOS, &y, &ny, &cy), 0);
		cr_expect(nx == ny && !memcmp(x, y, nx * sizeof *x), "ids differ for %s", s);
		json_decref(r);
		ntexts++;
	}
	cr_expect_eq(ntexts, 26);
	free(line), free(x), free(y);
	fclose(f);
	tok_free(tm), tok_free(tb);
}

/* NFC normalizer (Qwen2's): decomposed text tokenizes as its composed form. */
Test(tokenizer_real, nfc_normalizer)
{
	if (!shared())
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char p[4096];
	snprintf(p, sizeof p, "%s/assets/tokenizers/llama3/tokenizer.json", shared());
	json_error_t je;
	json_t *j = json_load_file(p, 0, &je);
	cr_assert(j, "%s", je.text);
	tok *plain = tok_load(p);
	json_object_set_new(j, "normalizer", json_pack("{s:s}", "type", "NFC"));
	char *buf = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	char err[600];
	tok *t = tok_load_mem("nfc.json", buf, strlen(buf), NULL, err, sizeof err);
	free(buf);
	cr_assert(t, "%s", err);
	const char
		*nfd = "cafe\xCC\x81 Ame\xCC\x81lie \xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", /* e + U+0301; Hangul jamo */
		*nfc = "caf\xC3\xA9 Am\xC3\xA9lie \xED\x95\x9C";
	uint32_t *x = NULL, *y = NULL, *z = NULL;
	size_t nx = 0, ny = 0, nz = 0, cx = 0, cy = 0, cz = 0;
	cr_assert_eq(tok_encode(t, nfd, strlen(nfd), 0, &x, &nx, &cx), 0);
	cr_assert_eq(tok_encode(plain, nfc, strlen(nfc), 0, &y, &ny, &cy), 0);
	cr_assert_eq(tok_encode(plain, nfd, strlen(nfd), 0, &z, &nz, &cz), 0);
	cr_expect(nx == ny && !memcmp(x, y, nx * sizeof *x), "NFC normalizer: NFD text must tokenize as NFC");
	cr_expect(!(nz == ny && !memcmp(z, y, nz * sizeof *z)), "without the normalizer the NFD ids differ");
	free(x), free(y), free(z);
	tok_free(t), tok_free(plain);
}
