/* test_jinja.c — the chat-template Jinja subset: whitespace rules, expressions,
 * refusals, and every rendering in ../shared/assets/chat/golden.jsonl
 * (transformers' apply_chat_template output) byte for byte. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/jinja.h"

/* Render src with vars (JSON text); returns malloc'd output or NULL (err set). */
static char *render(const char *src, const char *vars, int *rc, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v = json_loads(vars ? vars : "{}", 0, &je);
	cr_assert(v, "bad vars JSON: %s", je.text);
	jinja *t = jinja_compile(src, strlen(src), err, errlen);
	char *out = NULL;
	size_t n;
	*rc = -2;
	if (t) *rc = jinja_render(t, v, &out, &n, err, errlen);
	jinja_free(t);
	json_decref(v);
	return out;
}

static void ok(const char *src, const char *vars, const char *want)
{
	char err[512] = "";
	int rc;
	char *out = render(src, vars, &rc, err, sizeof err);
	cr_assert_eq(rc, 0, "template %s: rc %d: %s", src, rc, err);
	cr_expect_str_eq(out, want, "template %s", src);
	free(out);
}

static void bad(const char *src, const char *vars, int want_rc, const char *want_in_err)
{
	char err[512] = "";
	int rc;
	char *out = render(src, vars, &rc, err, sizeof err);
	cr_expect_null(out);
	/* -1: refused at compile time (-2 here) or while rendering */
	cr_expect(rc == want_rc || (want_rc == -1 && rc == -2), "template %s: rc %d (%s)", src, rc, err);
	cr_expect(strstr(err, want_in_err), "template %s: error '%s' lacks '%s'", src, err, want_in_err);
	free(out);
}

Test(jinja, whitespace_control)
{
	/* trim_blocks: one newline after a block tag goes; lstrip_blocks: the
	 * indentation before a block tag goes; {{ }} keeps both */
	ok("{% if true %}\nA\n{% endif %}\nB", NULL, "A\nB");
	ok("  {% if true %}x{% endif %}", NULL, "x");
	ok("a  {% if true %}x{% endif %}", NULL, "a  x");
	ok("  {{ 'v' }}\n", NULL, "  v");          /* one trailing newline of the source dropped */
	ok("  {{ 'v' }}\n\n", NULL, "  v\n");
	ok("a   {{- 'b' -}}   \n c", NULL, "abc");
	ok("x\n    {%- if true %}y{% endif %}", NULL, "xy");
	ok("x\n  {%+ if true %}y{% endif %}", NULL, "x\n  y");
	ok("{% if true +%}\ny{% endif %}", NULL, "\ny");
	ok("{# comment #}\nA{#- c -#}  B", NULL, "AB");
	ok("a\r\nb", NULL, "a\nb");
}

Test(jinja, expressions)
{
	ok("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 / 2 }}", NULL, "7|3|-4|1|2|3.5");
	ok("{{ 'a' ~ 1 ~ none ~ true }}|{{ 'a' + 'b' }}", NULL, "a1NoneTrue|ab");
	ok("{{ x | length - 1 }}|{{ 'héllo' | length }}", "{\"x\":[1,2,3]}", "2|5");
	ok("{{ not x is defined }}|{{ y is defined }}|{{ y is none }}|{{ y is not none }}", "{\"y\":null}",
	   "True|True|True|False");
	ok("{{ 'b' in 'abc' }}|{{ 'k' in d }}|{{ 'z' not in d }}|{{ 2 in [1,2] }}", "{\"d\":{\"k\":1}}", "True|True|True|True");
	ok("{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s | trim }}", "{\"s\":\" \\u3000x \\n\"}",
	   "x|x \n| \u3000x|x");
	ok("{{ s.strip('\\n') }}|{{ 'a</t>b</t>c'.split('</t>')[-1] }}|{{ ' a  b '.split() | length }}",
	   "{\"s\":\"\\n\\nx\\n\"}", "x|c|2");
	ok("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.endswith('x') }}", NULL, "TrueTrueFalse");
	ok("{{ [1,2,3,4][1:] | join(',') }}|{{ [1,2,3][::-1] | join }}|{{ 'héllo'[1:3] }}|{{ [1,2,3][-2:] | join }}",
	   NULL, "2,3,4|321|él|23");
	ok("{{ 'y' if x else 'n' }}{{ 'y' if not x else 'n' }}{{ 'q' if false }}", "{\"x\":0}", "ny");
	ok("{{ m.role }}{{ m['role'] }}{{ m.nokey is defined }}", "{\"m\":{\"role\":\"user\"}}", "useruserFalse");
	ok("{{ {'a': 1, 'b': [1, 'x']} | tojson }}", NULL, "{\"a\": 1, \"b\": [1, \"x\"]}");
	ok("{{ {'a': {'b': 'é\"\\n'}} | tojson(indent=2) }}", NULL, "{\n  \"a\": {\n    \"b\": \"é\\\"\\n\"\n  }\n}");
	ok("{{ 0.1 }}|{{ 1e20 }}|{{ 2.0 }}|{{ 1e-7 }}", NULL, "0.1|1e+20|2.0|1e-07");
	ok("{{ x | items | list | length }}{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}", "{\"x\":{\"a\":1,\"b\":2}}",
	   "2a=1;b=2;");
	ok("{{ ['a','code','b'] | reject('equalto', 'code') | join(', ') }}", NULL, "a, b");
	ok("{{ 'x' is string }}{{ [1] is iterable }}{{ {} is mapping }}{{ 1 is number }}{{ 3 is odd }}", NULL,
	   "TrueTrueTrueTrueTrue");
	ok("{{ missing }}|{{ missing | default('d') }}|{{ x.get('z', 5) }}", "{\"x\":{}}", "|d|5");
	/* found by tests/ref/jinja_differential.py against Jinja2 3.1.6 */
	ok("{{ 'a' if false else 'b' if false else 'c' }}", NULL, "c");
	ok("{{ u is iterable }}{{ u is sequence }}{{ 'a' in u }}{% for x in u %}a{% else %}e{% endfor %}", NULL, "TrueTrueFalsee");
}

Test(jinja, statements)
{
	ok("{% for m in ms %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
	   "{\"ms\":[1,2]}", "01TrueFalse2;12FalseTrue2;");
	ok("{% set ns = namespace(s='', n=0) %}{% for m in ms %}{% set ns.s = ns.s + m %}{% set ns.n = ns.n + 1 %}{% endfor %}"
	   "{{ ns.s }}{{ ns.n }}",
	   "{\"ms\":[\"a\",\"b\"]}", "ab2");
	/* a set inside a loop does not leak out of it; one at top level does */
	ok("{% set x = 1 %}{% for m in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", NULL, "21");
	/* and each iteration starts afresh (Jinja2 3.1.6 gives these) */
	ok("{% for i in [1,2] %}{% if i == 1 %}{% set x = 'a' %}{% endif %}[{{ x }}]{% endfor %}", NULL, "[a][]");
	ok("{% set x = 'o' %}{% for i in [1,2] %}[{{ x }}]{% set x = 'a' %}[{{ x }}]{% endfor %}{{ x }}", NULL, "[o][a][o][a]o");
	ok("{% for i in [1] %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}", NULL, "10");
	ok("{% if false %}a{% elif true %}b{% else %}c{% endif %}{% for x in [] %}y{% else %}e{% endfor %}", NULL, "be");
	ok("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", NULL, "2242");
	ok("{% for x in [1,2,3] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
	   NULL, "1");
	ok("{% for a in [1,2] %}{% for b in [3] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}", NULL, "1112");
}

Test(jinja, refusals_are_loud)
{
	bad("{{ raise_exception('No system role') }}", NULL, JINJA_RAISED, "No system role");
	bad("{% macro f() %}x{% endmacro %}", NULL, -1, "macro");
	bad("{{ x | wordcount }}", NULL, -1, "wordcount");
	bad("{{ x is sameas y }}", NULL, -1, "sameas");
	bad("{{ 'a'.zfill(3) }}", NULL, -1, "zfill");
	bad("{{ [1, 2] }}", NULL, -1, "list");
	bad("{{ 'a' + 1 }}", NULL, -1, "unsupported operand");
	bad("{{ x + 'a' }}", NULL, -1, "undefined");
	bad("{{ x.y }}", NULL, -1, "undefined");
	bad("{{ strftime_now('%d') }}", NULL, -1, "strftime_now");
	bad("{% if x %}", NULL, -1, "endif");
	bad("{{ 'abc }}", NULL, -1, "unterminated");
	bad("{% set x %}a{% endset %}", NULL, -1, "endset");
	bad("{% raw %}{{x}}{% endraw %}", NULL, -1, "raw");
	bad("{{ 'É'.lower() }}", NULL, -1, "non-ASCII");
	bad("{{ m.items is defined }}", "{\"m\":{}}", -1, "method");
	bad("{{ x is string is none }}", NULL, -1, "chain");
	bad("{{ x is defined in y }}", NULL, -1, "");
	bad("{% if 1 if 2 else 3 %}{% endif %}", NULL, -1, "");
	bad("{{ {'a': 1} in {'a': 1} }}", NULL, -1, "unhashable");
	bad("{{ 'a'.foo is defined }}", NULL, -1, "attribute 'foo' of a str");
	/* found by fuzz_jinja (an out-of-memory): products past 64 bits refuse,
	 * never wrap, and a string repetition's size is checked without overflow */
	bad("{{ 'x' * 2222 * 22222222222222222 }}", NULL, -1, "string repetition too large");
	bad("{{ 'x' * (2222 * 22222222222222222) }}", NULL, -1, "integer overflow");
	bad("{{ 'x' * 4611686018427387904 }}", NULL, -1, "string repetition too large");
	bad("{{ 'xy' * 4611686018427387904 }}", NULL, -1, "string repetition too large");
	bad("{{ 9223372036854775807 + 1 }}", NULL, -1, "integer overflow");
	bad("{{ -9223372036854775807 - 2 }}", NULL, -1, "integer overflow");
	ok("{{ 'ab' * 3 }}", NULL, "ababab");
	/* found by fuzz_jinja (out of memory): loops nested over the messages make
	 * one value per step; their number is bounded, not only the steps */
	char nest[2048];
	size_t q = 0;
	for (int i = 0; i < 14; i++) q += (size_t)sprintf(nest + q, "{%% for m%d in messages %%}", i);
	q += (size_t)sprintf(nest + q, "{{ m0.content | trim }}");
	for (int i = 0; i < 14; i++) q += (size_t)sprintf(nest + q, "{%% endfor %%}");
	bad(nest, "{\"messages\": [{\"content\": \" a \"}, {\"content\": \"b\"}, {\"content\": \"c\"}]}", -1,
	    "too many values");
	/* hostile nesting: an error, not a stack overflow */
	char deep[20000];
	size_t k = 0;
	k += (size_t)sprintf(deep + k, "{{ ");
	for (int i = 0; i < 5000; i++) deep[k++] = '(';
	deep[k++] = '1';
	for (int i = 0; i < 5000; i++) deep[k++] = ')';
	sprintf(deep + k, " }}");
	bad(deep, NULL, -1, "nested too deeply");
	k = 0;
	for (int i = 0; i < 1000; i++) k += (size_t)sprintf(deep + k, "{%% if 1 %%}");
	bad(deep, NULL, -1, "nested too deeply");
	k = 0;
	k += (size_t)sprintf(deep + k, "{{ ");
	for (int i = 0; i < 3000; i++) k += (size_t)sprintf(deep + k, "not ");
	sprintf(deep + k, "1 }}");
	bad(deep, NULL, -1, "nested too deeply");
}

/* ---- the real templates ---- */

static const char *shared(void) { return getenv("LBDPO_SHARED"); }

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)sz + 1);
	cr_assert_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
	b[sz] = 0;
	fclose(f);
	*n = (size_t)sz;
	return b;
}

Test(jinja, golden_chat_templates)
{
	if (!shared()) cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char p[4096];
	snprintf(p, sizeof p, "%s/assets/chat/golden.jsonl", shared());
	FILE *g = fopen(p, "r");
	if (!g) cr_skip_test("%s absent", p);
	char *line = NULL;
	size_t cap = 0;
	int nrec = 0, ntext = 0, nraise = 0;
	while (getline(&line, &cap, g) > 0) {
		json_error_t je;
		json_t *rec = json_loads(line, 0, &je);
		cr_assert(rec, "golden line %d: %s", nrec + 1, je.text);
		nrec++;
		const char *model = json_string_value(json_object_get(rec, "model"));
		char tp[4096], jp[4096];
		snprintf(tp, sizeof tp, "%s/assets/chat/templates/%s.jinja", shared(), model);
		snprintf(jp, sizeof jp, "%s/assets/chat/templates/%s.json", shared(), model);
		size_t n;
		char *src = slurp(tp, &n);
		json_t *meta = json_load_file(jp, 0, &je);
		cr_assert(meta, "%s: %s", jp, je.text);
		json_t *vars = json_object();
		json_object_set(vars, "messages", json_object_get(rec, "messages"));
		json_object_set(vars, "add_generation_prompt", json_object_get(rec, "add_generation_prompt"));
		/* as transformers' render_jinja_template passes them */
		json_object_set_new(vars, "tools", json_null());
		json_object_set_new(vars, "documents", json_null());
		const char *toks[] = {"bos_token", "eos_token", "pad_token", "unk_token"};
		for (int i = 0; i < 4; i++)
			if (json_object_get(meta, toks[i])) json_object_set(vars, toks[i], json_object_get(meta, toks[i]));
		char err[512] = "";
		jinja *t = jinja_compile(src, n, err, sizeof err);
		cr_assert(t, "%s: %s", model, err);
		char *out = NULL;
		size_t outn = 0;
		int rc = jinja_render(t, vars, &out, &outn, err, sizeof err);
		json_t *text = json_object_get(rec, "text");
		const char *conv = json_string_value(json_object_get(rec, "conv_id")),
			   *kind = json_string_value(json_object_get(rec, "kind"));
		if (json_is_string(text)) {
			cr_assert_eq(rc, 0, "%s %s %s: %s", model, conv, kind, err);
			cr_expect_eq(outn, json_string_length(text), "%s %s %s: length %zu, want %zu", model, conv, kind, outn,
				     json_string_length(text));
			cr_expect(outn == json_string_length(text) && !memcmp(out, json_string_value(text), outn),
				  "%s %s %s:\n got: %s\nwant: %s", model, conv, kind, out, json_string_value(text));
			ntext++;
		} else {
			/* "TemplateError: <the template's message>" */
			const char *want = json_string_value(json_object_get(rec, "error"));
			cr_assert(want, "golden record without text or error");
			const char *msg = strchr(want, ':') ? strchr(want, ':') + 2 : want;
			cr_expect_eq(rc, JINJA_RAISED, "%s %s %s: rc %d (%s)", model, conv, kind, rc, err);
			cr_expect_str_eq(err, msg, "%s %s %s", model, conv, kind);
			nraise++;
		}
		free(out);
		jinja_free(t);
		json_decref(vars);
		json_decref(meta);
		json_decref(rec);
		free(src);
	}
	free(line);
	fclose(g);
	cr_expect_eq(nrec, 144, "golden records: %d", nrec);
	cr_log_info("chat goldens: %d renderings byte-identical, %d refusals", ntext, nraise);
}
