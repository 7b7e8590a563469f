/* test_model_hf.c — forward outputs and parameter gradients against Hugging
 * Face transformers (fixtures made by tests/ref/make_model_fixtures.py):
 * llama (GQA, head_dim ≠ dim/heads, rope_theta 5e5, separate lm_head),
 * qwen2 (q/k/v biases, tied) and gpt2. transformers scores prompt+chosen and
 * prompt+rejected as two sequences; we score them as one prefix-shared pair. */
#include <criterion/criterion.h>
#include <jansson.h>

#include "tests/unit/model_testlib.h"

static json_t *load_fixture(const char *name)
{
	const char *root = getenv("LBDPO_ROOT");
	char path[4096];
	snprintf(path, sizeof path, "%s/tests/fixtures/model_hf_%s.json", root ? root : ".", name);
	json_error_t e;
	json_t *j = json_load_file(path, 0, &e);
	cr_assert(j, "cannot read %s: %s (line %d)", path, e.text, e.line);
	return j;
}

static int geti(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }
static double getd(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static uint32_t *ids(json_t *a, int *n)
{
	*n = (int)json_array_size(a);
	uint32_t *t = xmalloc(sizeof(uint32_t) * *n);
	for (int i = 0; i < *n; i++)
		t[i] = (uint32_t)json_integer_value(json_array_get(a, i));
	return t;
}

static float *floats(json_t *a, size_t *n)
{
	*n = json_array_size(a);
	float *f = xmalloc(sizeof(float) * (*n ? *n : 1));
	for (size_t i = 0; i < *n; i++)
		f[i] = (float)json_number_value(json_array_get(a, i));
	return f;
}

/* |a − b| ≤ tol·max(1, |b|) */
#define CLOSE(a, b, tol) (fabs((double)(a) - (double)(b)) <= (tol)*fmax(1.0, fabs((double)(b))))

static void check_hf(const char *name)
{
	json_t *fx = load_fixture(name), *jc = json_object_get(fx, "config");
	model_config c = {0};
	c.arch = strcmp(json_string_value(json_object_get(jc, "arch")), "gpt2") ? ARCH_LLAMA : ARCH_GPT2;
	c.dim = geti(jc, "dim");
	c.hidden_dim = geti(jc, "hidden_dim");
	c.n_layers = geti(jc, "n_layers");
	c.n_heads = geti(jc, "n_heads");
	c.n_kv_heads = geti(jc, "n_kv_heads");
	c.head_dim = geti(jc, "head_dim");
	c.vocab_size = geti(jc, "vocab_size");
	c.max_seq_len = geti(jc, "max_seq_len");
	c.rope_theta = (float)getd(jc, "rope_theta");
	c.norm_eps = (float)getd(jc, "norm_eps");
	c.tied_embeddings = geti(jc, "tied");
	c.qkv_bias = geti(jc, "qkv_bias");
	c.bos_id = c.eos_id = -1;
	model *m = model_new(&c);
	json_t *jp = json_object_get(fx, "params"), *jg = json_object_get(fx, "grads");
	cr_assert_eq((int)json_object_size(jp), model_n_tensors(m), "%s: %zu HF parameters, we have %d tensors", name,
		     json_object_size(jp), model_n_tensors(m));
	for (int i = 0; i < model_n_tensors(m); i++) {
		const model_tensor *t = model_tensor_at(m, i);
		json_t *a = json_object_get(jp, t->name);
		cr_assert(a, "%s: HF has no parameter %s", name, t->name);
		json_t *sh = json_object_get(json_object_get(fx, "shapes"), t->name);
		cr_expect_eq((int)json_array_size(sh), t->ndim, "%s", t->name);
		for (int d = 0; d < t->ndim; d++)
			cr_expect_eq(json_integer_value(json_array_get(sh, d)), t->shape[d], "%s dim %d", t->name, d);
		size_t n;
		float *v = floats(a, &n);
		cr_assert_eq(n, t->numel, "%s", t->name);
		memcpy(model_params(m) + t->offset, v, sizeof(float) * n);
		free(v);
	}
	int P, n0, n1;
	uint32_t *pr = ids(json_object_get(fx, "prompt"), &P), *ch = ids(json_object_get(fx, "chosen"), &n0);
	uint32_t *rj = ids(json_object_get(fx, "rejected"), &n1);
	size_t nr, nu;
	float *r = floats(json_object_get(fx, "r"), &nr), *u = floats(json_object_get(fx, "u"), &nu);
	model_seq s = {.prompt = pr, .n_prompt = P, .comp = {ch, rj}, .n_comp_tok = {n0, n1}, .n_comp = 2};
	float *tl0 = xmalloc(sizeof(float) * n0), *tl1 = xmalloc(sizeof(float) * n1);
	float *hl = xmalloc(sizeof(float) * c.dim), *hm = xmalloc(sizeof(float) * c.dim);
	model_scores o = {.h_last = hl, .h_mean = hm, .tok_logp = {tl0, tl1}};
	model_ws *ws = model_ws_new(m);
	model_forward(m, ws, &s, 1, &o, 1);
	const double tol = 1e-4;
	double worst = 0;
	for (int k = 0; k < 2; k++) {
		json_t *ref = json_object_get(fx, k ? "logp_rejected" : "logp_chosen");
		float *tl = k ? tl1 : tl0;
		double sum = 0;
		for (int j = 0; j < (k ? n1 : n0); j++) {
			double want = json_number_value(json_array_get(ref, j));
			sum += want;
			worst = fmax(worst, fabs(tl[j] - want) / fmax(1, fabs(want)));
			cr_expect(CLOSE(tl[j], want, tol), "%s comp %d token %d: %.7f, transformers %.7f", name, k, j,
				  tl[j], want);
		}
		cr_expect(CLOSE(o.logp[k], sum, tol), "%s comp %d sum %.7f vs %.7f", name, k, o.logp[k], sum);
	}
	cr_expect(CLOSE(o.prompt_mean_logp, getd(fx, "prompt_mean_logp"), tol), "%s prompt mean %.7f vs %.7f", name,
		  o.prompt_mean_logp, getd(fx, "prompt_mean_logp"));
	cr_expect(CLOSE(o.prompt_entropy, getd(fx, "prompt_entropy"), tol), "%s prompt entropy %.7f vs %.7f", name,
		  o.prompt_entropy, getd(fx, "prompt_entropy"));
	for (int i = 0; i < c.dim; i++) {
		double a = json_number_value(json_array_get(json_object_get(fx, "h_last"), i));
		double b = json_number_value(json_array_get(json_object_get(fx, "h_mean"), i));
		cr_expect(CLOSE(hl[i], a, tol) && CLOSE(hm[i], b, tol), "%s h[%d]: %.6f %.6f vs %.6f %.6f", name, i,
			  hl[i], hm[i], a, b);
	}
	/* gradients of L = Σ coef·logp + 1.3·prompt_mean + r·h_last + u·h_mean */
	model_seq_grad g = {.d_logp = {getd(fx, "coef_chosen"), getd(fx, "coef_rejected")},
			    .d_prompt_mean_logp = getd(fx, "coef_prompt_mean"),
			    .d_h_last = r,
			    .d_h_mean = u};
	float *grad = xcalloc(model_n_params(m), sizeof(float));
	model_backward(m, ws, &g, grad);
	double gworst = 0;
	for (int i = 0; i < model_n_tensors(m); i++) {
		const model_tensor *t = model_tensor_at(m, i);
		size_t n;
		float *want = floats(json_object_get(jg, t->name), &n);
		cr_assert_eq(n, t->numel);
		double mx = 0, err = 0;
		for (size_t k = 0; k < n; k++) {
			mx = fmax(mx, fabs(want[k]));
			err = fmax(err, fabs(grad[t->offset + k] - want[k]));
		}
		/* relative to the tensor's largest gradient (elementwise relative
		 * error is meaningless for entries that are ~0) */
		double rel = err / fmax(mx, 1e-6);
		gworst = fmax(gworst, rel);
		cr_expect(rel <= tol, "%s grad %s: max error %.3g, largest entry %.3g", name, t->name, err, mx);
		free(want);
	}
	fprintf(stderr, "%s vs transformers: worst log-prob rel error %.2g, worst gradient rel error %.2g\n", name,
		worst, gworst);
	free(grad), free(pr), free(ch), free(rj), free(r), free(u), free(tl0), free(tl1), free(hl), free(hm);
	model_ws_free(ws);
	model_free(m);
	json_decref(fx);
}

Test(model_hf, llama_gqa_headdim6_untied) { check_hf("llama"); }
Test(model_hf, qwen2_qkv_bias_tied) { check_hf("qwen2"); }
Test(model_hf, gpt2) { check_hf("gpt2"); }
