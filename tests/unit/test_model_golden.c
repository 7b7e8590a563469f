/* test_model_golden.c — per-token log-probs of the real stories260K model
 * against llama2.c's own forward pass (../shared/golden). */
#include <criterion/criterion.h>
#include <jansson.h>

#include "tests/unit/model_testlib.h"

static model *load_stories(void)
{
	const char *sh = getenv("LBDPO_SHARED");
	if (!sh || !*sh)
		cr_skip_test("LBDPO_SHARED not set: real assets absent");
	char path[4096];
	snprintf(path, sizeof path, "%s/assets/stories260K/stories260K.bin", sh);
	model *m = tl_load_llama2c(path);
	if (!m)
		cr_skip_test("cannot read %s", path);
	return m;
}

static json_t *load_golden(void)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/golden/stories260K_logprobs.jsonl", getenv("LBDPO_SHARED"));
	FILE *f = fopen(path, "r");
	cr_assert(f, "cannot open %s", path);
	json_t *arr = json_array();
	char line[1 << 16];
	while (fgets(line, sizeof line, f)) {
		json_error_t e;
		json_t *j = json_loads(line, 0, &e);
		cr_assert(j, "bad json in %s: %s", path, e.text);
		json_array_append_new(arr, j);
	}
	fclose(f);
	cr_assert(json_array_size(arr) >= 3);
	return arr;
}

static uint32_t *ids_of(json_t *j, int *n)
{
	json_t *ids = json_object_get(j, "ids");
	*n = (int)json_array_size(ids);
	uint32_t *t = xmalloc(sizeof(uint32_t) * *n);
	for (int i = 0; i < *n; i++)
		t[i] = (uint32_t)json_integer_value(json_array_get(ids, i));
	return t;
}

/* Every token after BOS as a completion of the one-token prompt [BOS]. */
Test(model_golden, stories260K_per_token)
{
	model *m = load_stories();
	json_t *g = load_golden();
	model_ws *ws = model_ws_new(m);
	double maxerr = 0;
	for (size_t r = 0; r < json_array_size(g); r++) {
		json_t *j = json_array_get(g, r);
		int n;
		uint32_t *ids = ids_of(j, &n);
		json_t *lp = json_object_get(j, "logprobs");
		cr_assert_eq((int)json_array_size(lp), n - 1);
		float *tl = xmalloc(sizeof(float) * n);
		model_seq s = {
			.prompt = ids, .n_prompt = 1, .comp = {ids + 1, NULL}, .n_comp_tok = {n - 1, 0}, .n_comp = 1};
		model_scores o = {.tok_logp = {tl, NULL}};
		model_forward(m, ws, &s, 1, &o, 0);
		double sum = 0;
		for (int i = 0; i < n - 1; i++) {
			double want = json_real_value(json_array_get(lp, i));
			double err = fabs(tl[i] - want);
			maxerr = err > maxerr ? err : maxerr;
			cr_expect(err <= 1e-4, "text %zu token %d: got %.7f want %.7f", r, i, tl[i], want);
			sum += want;
		}
		cr_expect(fabs(o.logp[0] - sum) <= 1e-3, "text %zu: sum %.6f want %.6f", r, o.logp[0], sum);
		free(tl);
		free(ids);
	}
	fprintf(stderr, "stories260K: max |logprob - llama2.c| = %.3g\n", maxerr);
	json_decref(g);
	model_ws_free(ws);
	model_free(m);
}

/* The same numbers through the other outputs and the tree layout: the
 * whole text as a prompt (mean log-prob) and a prompt split into a pair
 * whose two completions are the same remainder. All texts in one batch. */
Test(model_golden, stories260K_prompt_and_pairs_packed)
{
	model *m = load_stories();
	json_t *g = load_golden();
	size_t nt = json_array_size(g);
	model_seq *s = xcalloc(2 * nt, sizeof *s);
	model_scores *o = xcalloc(2 * nt, sizeof *o);
	uint32_t **ids = xcalloc(nt, sizeof *ids);
	int *len = xcalloc(nt, sizeof *len);
	for (size_t r = 0; r < nt; r++) {
		ids[r] = ids_of(json_array_get(g, r), &len[r]);
		int k = len[r] / 2;
		s[2 * r] = (model_seq){.prompt = ids[r],
				       .n_prompt = len[r],
				       .comp = {ids[r], NULL},
				       .n_comp_tok = {1, 0},
				       .n_comp = 1};
		s[2 * r + 1] = (model_seq){.prompt = ids[r],
					   .n_prompt = k,
					   .comp = {ids[r] + k, ids[r] + k},
					   .n_comp_tok = {len[r] - k, len[r] - k},
					   .n_comp = 2};
		o[2 * r + 1].tok_logp[0] = xmalloc(sizeof(float) * len[r]);
		o[2 * r + 1].tok_logp[1] = xmalloc(sizeof(float) * len[r]);
	}
	model_ws *ws = model_ws_new(m);
	model_forward(m, ws, s, (int)(2 * nt), o, 0);
	for (size_t r = 0; r < nt; r++) {
		json_t *lp = json_object_get(json_array_get(g, r), "logprobs");
		double mean = 0;
		for (int i = 0; i < len[r] - 1; i++)
			mean += json_real_value(json_array_get(lp, i));
		mean /= len[r] - 1;
		cr_expect(fabs(o[2 * r].prompt_mean_logp - mean) <= 1e-4, "text %zu: prompt mean %.7f want %.7f", r,
			  o[2 * r].prompt_mean_logp, mean);
		cr_expect(o[2 * r].prompt_entropy > 0);
		int k = len[r] / 2;
		for (int c = 0; c < 2; c++)
			for (int i = 0; i < len[r] - k; i++) {
				double want = json_real_value(json_array_get(lp, k - 1 + i));
				cr_expect(fabs(o[2 * r + 1].tok_logp[c][i] - want) <= 1e-4,
					  "text %zu comp %d token %d: got %.7f want %.7f", r, c, i,
					  o[2 * r + 1].tok_logp[c][i], want);
			}
		free(o[2 * r + 1].tok_logp[0]);
		free(o[2 * r + 1].tok_logp[1]);
		free(ids[r]);
	}
	free(ids), free(len), free(s), free(o);
	json_decref(g);
	model_ws_free(ws);
	model_free(m);
}
