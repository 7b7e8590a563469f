/* jinja.h — the subset of Jinja2 that real Hugging Face chat templates use,
 * rendered the way transformers' apply_chat_template renders them
 * (trim_blocks, lstrip_blocks, loop controls, one trailing newline of the
 * source dropped, raise_exception, tojson as json.dumps(ensure_ascii=False)).
 *
 * Supported: {{ }}, {% if/elif/else %}, {% for a[, b] in x [if c] %} with
 * else, loop.index/index0/first/last/length/revindex/revindex0/previtem/
 * nextitem, break/continue, {% set x = e %}, {% set ns.a = e %}, comments,
 * whitespace control (- and +); literals (strings, numbers, true/false/none,
 * lists, dicts), names, .attr, [key], slices [a:b:c], calls of namespace(),
 * raise_exception(), range(), strftime_now() and of string/dict methods (strip, lstrip,
 * rstrip, split, startswith, endswith, lower, upper, replace, title,
 * capitalize, items, keys, values, get); operators + - * / // % ~ == != < <=
 * > >= in, not in, and, or, not, a if c else b; filters trim, length/count,
 * tojson, items, join, first, last, lower, upper, string, list, default/d,
 * reject, select, capitalize, title, replace, int, float, abs, round;
 * tests defined, undefined, none, string, number, integer, float, boolean,
 * true, false, mapping, iterable, sequence, equalto/eq/==, ne/!=, odd, even,
 * divisibleby, in.
 * Anything else (macros, blocks, filters or methods not listed, printing a
 * list or dict) is an error, at compile time where it can be seen there:
 * the engine never renders something different from Jinja2.
 */
#ifndef LBDPO_JINJA_H
#define LBDPO_JINJA_H

#include <jansson.h>
#include <stddef.h>

typedef struct jinja jinja;

/* Templates over this size are refused (real ones are under 20 KiB). */
#define JINJA_MAX_SOURCE (256 << 10)

/* Compile a template. NULL and "line N: what" in err on a syntax error, an
 * unsupported construct, bytes that are not UTF-8, or a source over
 * JINJA_MAX_SOURCE bytes. Messages carry no control characters. */
jinja *jinja_compile(const char *src, size_t n, char *err, size_t errlen);
void jinja_free(jinja *t);

/* Render with the variables of the JSON object vars (borrowed; e.g.
 * messages, add_generation_prompt, bos_token, eos_token). Returns 0 and a
 * malloc'd NUL-terminated *out of *outlen bytes; JINJA_RAISED with the
 * template's own raise_exception message in err; or -1 with "line N: what"
 * in err (a type error, an undefined value used, naming it, an unsupported
 * method, an integer past 64 bits). One rendering is bounded: its work (20
 * million statements, or about as much string and list work) and the
 * memory of the values it makes (256 MiB); past either it fails with
 * "the template exceeded its work/memory budget". strftime_now(fmt) is
 * strftime of the current local time, as in transformers. */
#define JINJA_RAISED 1
int jinja_render(const jinja *t, json_t *vars, char **out, size_t *outlen, char *err, size_t errlen);

#endif
