/* test_jinja.c — the chat-template Jinja subset: whitespace rules, expressions,
 * refusals, and every rendering in ../shared/assets/chat/golden.jsonl
 * (transformers' apply_chat_template output) byte for byte. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	if (t)
		*rc = jinja_render(t, v, &out, &n, err, errlen);
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
	ok("  {{ 'v' }}\n", NULL, "  v"); /* one trailing newline of the source dropped */
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
	ok("{{ 'b' in 'abc' }}|{{ 'k' in d }}|{{ 'z' not in d }}|{{ 2 in [1,2] }}", "{\"d\":{\"k\":1}}",
	   "True|True|True|True");
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
	ok("{{ x | items | list | length }}{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}",
	   "{\"x\":{\"a\":1,\"b\":2}}", "2a=1;b=2;");
	ok("{{ ['a','code','b'] | reject('equalto', 'code') | join(', ') }}", NULL, "a, b");
	ok("{{ 'x' is string }}{{ [1] is iterable }}{{ {} is mapping }}{{ 1 is number }}{{ 3 is odd }}", NULL,
	   "TrueTrueTrueTrueTrue");
	ok("{{ missing }}|{{ missing | default('d') }}|{{ x.get('z', 5) }}", "{\"x\":{}}", "|d|5");
	/* found by tests/ref/jinja_differential.py against Jinja2 3.1.6 */
	ok("{{ 'a' if false else 'b' if false else 'c' }}", NULL, "c");
	/* repetition (built by doubling): every count from 0 to 9, both operand orders */
	ok("{% for k in range(10) %}{{ 'abc' * k }}|{{ k * 'é' }};{% endfor %}{{ 'x' * -2 }}{{ ('ab' * 100000) | length }}",
	   NULL,
	   "|;abc|é;abcabc|éé;abcabcabc|ééé;abcabcabcabc|éééé;abcabcabcabcabc|ééééé;abcabcabcabcabcabc|éééééé;"
	   "abcabcabcabcabcabcabc|ééééééé;abcabcabcabcabcabcabcabc|éééééééé;abcabcabcabcabcabcabcabcabc|ééééééééé;200000");
	ok("{{ u is iterable }}{{ u is sequence }}{{ 'a' in u }}{% for x in u %}a{% else %}e{% endfor %}", NULL,
	   "TrueTrueFalsee");
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
	ok("{% set x = 'o' %}{% for i in [1,2] %}[{{ x }}]{% set x = 'a' %}[{{ x }}]{% endfor %}{{ x }}", NULL,
	   "[o][a][o][a]o");
	ok("{% for i in [1] %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}", NULL, "10");
	ok("{% if false %}a{% elif true %}b{% else %}c{% endif %}{% for x in [] %}y{% else %}e{% endfor %}", NULL,
	   "be");
	ok("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", NULL, "2242");
	ok("{% for x in [1,2,3] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
	   NULL, "1");
	ok("{% for a in [1,2] %}{% for b in [3] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}", NULL,
	   "1112");
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
	bad("{{ strftime_now }}", NULL, -1, "strftime_now");
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
	bad("{{ 'x' * 2222 * 22222222222222222 }}", NULL, -1, "memory budget");
	bad("{{ 'x' * (2222 * 22222222222222222) }}", NULL, -1, "integer overflow");
	bad("{{ 'x' * 4611686018427387904 }}", NULL, -1, "memory budget");
	bad("{{ 'xy' * 4611686018427387904 }}", NULL, -1, "memory budget");
	bad("{{ 9223372036854775807 + 1 }}", NULL, -1, "integer overflow");
	bad("{{ -9223372036854775807 - 2 }}", NULL, -1, "integer overflow");
	ok("{{ 'ab' * 3 }}", NULL, "ababab");
	/* found by fuzz_jinja (out of memory): loops nested over the messages make
	 * one value per step; their number is bounded, not only the steps */
	char nest[2048];
	size_t q = 0;
	for (int i = 0; i < 14; i++)
		q += (size_t)sprintf(nest + q, "{%% for m%d in messages %%}", i);
	q += (size_t)sprintf(nest + q, "{{ m0.content | trim }}");
	for (int i = 0; i < 14; i++)
		q += (size_t)sprintf(nest + q, "{%% endfor %%}");
	bad(nest, "{\"messages\": [{\"content\": \" a \"}, {\"content\": \"b\"}, {\"content\": \"c\"}]}", -1,
	    "too many values");
	/* hostile nesting: an error, not a stack overflow */
	char deep[20000];
	size_t k = 0;
	k += (size_t)sprintf(deep + k, "{{ ");
	for (int i = 0; i < 5000; i++)
		deep[k++] = '(';
	deep[k++] = '1';
	for (int i = 0; i < 5000; i++)
		deep[k++] = ')';
	sprintf(deep + k, " }}");
	bad(deep, NULL, -1, "nested too deeply");
	k = 0;
	for (int i = 0; i < 1000; i++)
		k += (size_t)sprintf(deep + k, "{%% if 1 %%}");
	bad(deep, NULL, -1, "nested too deeply");
	k = 0;
	k += (size_t)sprintf(deep + k, "{{ ");
	for (int i = 0; i < 3000; i++)
		k += (size_t)sprintf(deep + k, "not ");
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
	if (!shared())
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	char p[4096];
	snprintf(p, sizeof p, "%s/assets/chat/golden.jsonl", shared());
	FILE *g = fopen(p, "r");
	if (!g)
		cr_skip_test("%s absent", p);
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
			if (json_object_get(meta, toks[i]))
				json_object_set(vars, toks[i], json_object_get(meta, toks[i]));
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
			cr_expect_eq(outn, json_string_length(text), "%s %s %s: length %zu, want %zu", model, conv,
				     kind, outn, json_string_length(text));
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

/* ---- hostile templates: bounded, with a one-line error ---- */

/* "{{ HEAD" + n times SEP + " }}" */
static char *chain(const char *head, const char *sep, int n)
{
	size_t hl = strlen(head), sl = strlen(sep);
	char *s = malloc(hl + sl * (size_t)n + 16), *q = s;
	q += sprintf(q, "{{ %s", head);
	for (int i = 0; i < n; i++)
		memcpy(q, sep, sl), q += sl;
	strcpy(q, " }}");
	return s;
}

Test(jinja, long_chains_are_refused_not_a_stack_overflow)
{
	/* the parser builds left-deep trees without recursing; rendering them
	 * recursed 25000 deep (SIGSEGV in lbdpo-tokenize on a 50 KB template) */
	const char *seps[][2] = {{"1", " + 1"}, {"'a'", " ~ 'a'"}, {"1", " and 1"}, {"'a'", "|trim"},
				 {"x", "[0]"},  {"1", " * 1"},     {"1", " or 1"},  {"x", ".a"}};
	for (size_t i = 0; i < sizeof seps / sizeof seps[0]; i++) {
		char *t = chain(seps[i][0], seps[i][1], 25000);
		bad(t, "{\"x\": [1]}", -1, "nested too deeply");
		free(t);
	}
	/* what real templates write still works */
	char *t = chain("1", " + 1", 150);
	ok(t, NULL, "151");
	free(t);
}

Test(jinja, work_is_bounded)
{
	/* Jinja2 gives "" at once; the repetition check skipped empty strings
	 * and looped 9.2e18 times */
	ok("{{ '' * 9223372036854775807 }}|{{ 'ab' * -3 }}", NULL, "|");
	/* doubling structures: comparison visits 2^41 nodes */
	const char *dbl = "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(40) %}"
			  "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}";
	char t[512];
	snprintf(t, sizeof t, "%s{{ ns.a == ns.b }}", dbl);
	bad(t, NULL, -1, "exceeded its work budget");
	snprintf(t, sizeof t, "%s{{ ns.a in [ns.b] }}", dbl);
	bad(t, NULL, -1, "exceeded its work budget");
	snprintf(t, sizeof t, "%s{{ ns.a | tojson }}", dbl);
	bad(t, NULL, -1, "budget");
	bad("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", NULL, -1,
	    "memory budget");
	/* a statement loop past the 5 million statement bound, now work */
	bad("{% set s = 'a' * 1000000 %}{% set t = 'a' * 1000000 %}{% for i in range(10000) %}{% if s < t or s == t %}{% endif %}{% endfor %}",
	    NULL, -1, "exceeded its work budget");
	/* string scanning counts: indexing a long string in a loop */
	bad("{% set s = 'a' * 10000000 %}{% for i in range(1000000) %}{% set c = s[-1] %}{% endfor %}", NULL, -1,
	    "exceeded its work budget");
}

Test(jinja, memory_is_bounded)
{
	static const char *over[] = {
		"{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
		"{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
		"{{ ('a' * 1000000) | replace('a', 'b' * 1000) }}",
		"{{ ('a' * 60000000) | list | length }}",
		"{{ ('a,' * 30000000).split(',') | length }}",
		"{{ ('a ' * 30000000).split() | length }}",
		"{{ range(1000000) | list | tojson | length }}{{ ('a' * 200000000) | length }}",
	};
	/* building a string of 256 MiB copies more than 320 MB, so the work
	 * budget may stop these first: either bound ends them */
	for (size_t i = 0; i < sizeof over / sizeof over[0]; i++)
		bad(over[i], NULL, -1, "budget");
	/* values that cost memory more than work: the memory budget itself */
	bad("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", NULL, -1,
	    "memory budget");
	/* within the budget these work */
	ok("{{ ('a,' * 1000).split(',') | length }}|{{ ('a' * 100000) | replace('a', 'bc') | length }}", NULL,
	   "1001|200000");
	/* the template itself: over JINJA_MAX_SOURCE bytes it is refused */
	size_t n = JINJA_MAX_SOURCE + 1;
	char *big = malloc(n + 1);
	memset(big, 'a', n);
	big[n] = 0;
	char err[512] = "";
	cr_expect_null(jinja_compile(big, n, err, sizeof err));
	cr_expect(strstr(err, "over the limit of 256 KiB"), "%s", err);
	jinja *j = jinja_compile(big, n - 1, err, sizeof err);
	cr_expect(j, "a template at the limit compiles: %s", err);
	jinja_free(j);
	free(big);
}

Test(jinja, integers_never_wrong)
{
	/* Jinja2 3.1.6 gives these */
	ok("{{ 3 ** 39 }}|{{ 2 ** 62 }}|{{ (-2) ** 63 }}|{{ 2 ** -1 }}|{{ 1 ** 9223372036854775807 }}", NULL,
	   "4052555153018976267|4611686018427387904|-9223372036854775808|0.5|1");
	ok("{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 3 | round }}|{{ true | round }}", NULL, "2.0|4.0|3|1");
	ok("{{ '42.7' | int }}|{{ ' 1_000 ' | int }}|{{ 'nan' | int }}|{{ '1e3' | int }}|{{ 'inf' | int }}|{{ 'x' | int }}|{{ 2.9 | int }}",
	   NULL, "42|1000|0|1000|0|0|2");
	ok("{{ 9007199254740993 == 9007199254740992 }}|{{ 9007199254740993 == 9007199254740992.0 }}|"
	   "{{ 9223372036854775807 < 9223372036854775807.0 }}",
	   NULL, "False|False|True");
	ok("{{ 1 // 0.1 }}|{{ 1 % 0.1 }}|{{ -7.5 // 2 }}|{{ -7.5 % 2 }}", NULL, "9.0|0.09999999999999995|-4.0|0.5");
	ok("{{ x is divisibleby(-1) }}|{{ -(x + 1) }}", "{\"x\": -9223372036854775808}", "True|9223372036854775807");
	/* Jinja2 renders the exact big integer; here it is an error, never a
	 * wrapped or clamped number */
	static const char *refused[][3] = {
		{"{{ 3 ** 41 }}", NULL, "integer overflow"},
		{"{{ 2 ** 64 }}", NULL, "integer overflow"},
		{"{{ 2 ** 63 }}", NULL, "integer overflow"},
		{"{{ -x }}", "{\"x\": -9223372036854775808}", "integer overflow"},
		{"{{ x | abs }}", "{\"x\": -9223372036854775808}", "integer overflow"},
		{"{{ 1e300 | int }}", NULL, "integer overflow"},
		{"{{ '1e300' | int }}", NULL, "integer overflow"},
		{"{{ '99999999999999999999' | int }}", NULL, "integer overflow"},
		{"{{ 99999999999999999999 }}", NULL, "beyond 64 bits"},
		{"{{ 1e999 }}", NULL, "infinite"},
		{"{{ 007 }}", NULL, "number literal"},
		{"{{ 0 ** -1 }}", NULL, "negative power"},
		{"{{ 10.0 ** 400 }}", NULL, "infinite"},
		{"{{ (-8) ** (1/3) }}", NULL, "fractional power"},
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		bad(refused[i][0], refused[i][1], -1, refused[i][2]);
	/* steps that would overflow past the end */
	ok("{% for i in range(9223372036854775800, 9223372036854775807, 5) %}{{ i }},{% endfor %}{{ [1,2,3][::9223372036854775807] | join }}"
	   "{{ 'abc'[::-9223372036854775807] }}",
	   NULL, "9223372036854775800,9223372036854775805,1c");
}

Test(jinja, messages)
{
	/* bytes that are not UTF-8 in the template: the template's error (it
	 * went out as the data line's "invalid UTF-8 at byte 1") */
	bad("x\xff{{ 1 }}", NULL, -1, "line 1: invalid UTF-8 at byte 1 of the template");
	bad("a\nb\n\xc3(", NULL, -1, "line 3: invalid UTF-8 at byte 4 of the template");
	/* raise_exception's text reaches a terminal without control characters */
	char err[512] = "";
	int rc;
	char *out = render("{{ raise_exception('a\x1b[31mred\nx\x07\xc2\x9b!') }}", NULL, &rc, err, sizeof err);
	cr_expect_null(out);
	cr_expect_eq(rc, JINJA_RAISED);
	cr_expect_str_eq(err, "a[31mred x!");
	/* an echoed character too */
	bad("{{ \x1b }}", NULL, -1, "unexpected character '' in a tag");
}

Test(jinja, undefined_variables_are_named)
{
	bad("{{ x + 'a' }}", NULL, -1, "'x' is undefined");
	bad("{{ m.foo + 1 }}", "{\"m\": {}}", -1, "'m.foo' is undefined");
	bad("{% set y = z %}{{ -y }}", NULL, -1, "'y' is undefined");
	bad("{{ u.a }}", NULL, -1, "'u' is undefined");
	bad("{{ u | tojson }}", NULL, -1, "'u' is undefined");
}

Test(jinja, strftime_now)
{
	/* transformers: datetime.now().strftime(format) */
	char want[2][64];
	for (int k = 0; k < 2; k++) {
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(want[k], sizeof want[k], "%d %b %Y", &tm);
		if (k == 0) {
			char err[512] = "";
			int rc;
			/* Llama 3.2's own lines */
			const char *l32 = "{%- if not date_string is defined %}\n"
					  "    {%- if strftime_now is defined %}\n"
					  "        {%- set date_string = strftime_now(\"%d %b %Y\") %}\n"
					  "    {%- else %}\n"
					  "        {%- set date_string = \"26 Jul 2024\" %}\n"
					  "    {%- endif %}\n"
					  "{%- endif %}\n"
					  "Today Date: {{ date_string }}";
			char *out = render(l32, NULL, &rc, err, sizeof err);
			cr_assert_eq(rc, 0, "%s", err);
			char *out2 = render("{{ strftime_now('%d %b %Y') }}", NULL, &rc, err, sizeof err);
			cr_assert_eq(rc, 0, "%s", err);
			now = time(NULL);
			localtime_r(&now, &tm);
			strftime(want[1], sizeof want[1], "%d %b %Y", &tm);
			char w0[80], w1[80];
			snprintf(w0, sizeof w0, "Today Date: %s", want[0]);
			snprintf(w1, sizeof w1, "Today Date: %s", want[1]);
			cr_expect(!strcmp(out, w0) || !strcmp(out, w1), "got '%s', want '%s'", out, w0);
			cr_expect(!strcmp(out2, want[0]) || !strcmp(out2, want[1]), "got '%s', want '%s'", out2,
				  want[0]);
			free(out), free(out2);
			/* chat_template_kwargs pins it */
			ok(l32, "{\"date_string\": \"26 Jul 2024\"}", "Today Date: 26 Jul 2024");
			break;
		}
	}
	ok("{{ raise_exception is defined }}{{ namespace is defined }}{{ range is undefined }}{{ strftime_now is not defined }}",
	   NULL, "TrueTrueFalseFalse");
	bad("{{ strftime_now(1) }}", NULL, -1, "strftime_now");
}
