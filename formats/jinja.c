/* jinja.c — a Jinja2 subset for chat templates (see jinja.h).
 *
 * Three stages: the lexer cuts the source into text and tag items, applying
 * Jinja2's whitespace rules exactly (lexer.py: "-" strips all whitespace
 * beside the tag, lstrip_blocks strips the spaces/tabs between a line start
 * and a block/comment tag, trim_blocks drops one newline after one); a
 * recursive-descent parser with Jinja2's precedence (condexpr < or < and <
 * not < compare < + - < ~ < * / // % < unary < postfix/filter/test) builds
 * an AST; the renderer walks it. Values are jansson values, NULL meaning
 * Undefined. Every value made while rendering is registered in the render
 * context and released at the end, so errors can unwind with longjmp
 * without leaking.
 */
#define _GNU_SOURCE
#include "formats/jinja.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/util.h"
#include "formats/tokenizer.h"

/* ---------------- small buffers ---------------- */

typedef struct {
	char *s;
	size_t n, cap;
} buf;

static void bput(buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap)
		xgrow((void **)&b->s, &b->cap, b->n + n + 1, 1);
	if (n)
		memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}
static void bputs(buf *b, const char *s) { bput(b, s, strlen(s)); }

/* memmem for the split and replace loops. ASan's memmem interceptor checks
 * the whole rest of the haystack on every call, which makes a loop over
 * 30M separators quadratic there (make SANITIZE=1 test stalled on it);
 * its memchr checks only up to the match. glibc's memmem stays the search
 * elsewhere: it is linear where the memchr+memcmp loop can be O(n·m). */
#if defined(__SANITIZE_ADDRESS__)
#define JINJA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JINJA_ASAN 1
#endif
#endif
static const char *find(const char *s, size_t n, const char *p, size_t pn)
{
#ifdef JINJA_ASAN
	if (!pn || pn > n)
		return pn ? NULL : s;
	const char *end = s + n - pn + 1;
	for (const char *c = s; c < end; c++) {
		c = memchr(c, p[0], (size_t)(end - c));
		if (!c)
			return NULL;
		if (!memcmp(c + 1, p + 1, pn - 1))
			return c;
	}
	return NULL;
#else
	return memmem(s, n, p, pn);
#endif
}

/* Python's str.isspace() set, on UTF-8: returns the length of the whitespace
 * character at s (0 if none). */
static size_t py_space(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	if (!n)
		return 0;
	if (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0D) || (s[0] >= 0x1C && s[0] <= 0x1F))
		return 1;
	if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
		return 2;
	if (n >= 3) {
		uint32_t c = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
		if ((s[0] & 0xF0) == 0xE0 && (c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
					      c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000))
			return 3;
	}
	return 0;
}
/* whitespace ending at s[n] (scanning back over UTF-8) */
static size_t py_space_back(const char *s, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++)
		if (py_space(s + n - k, k) == k)
			return k;
	return 0;
}

/* ---------------- errors ---------------- */

typedef struct {
	jmp_buf jb;
	char *err;
	size_t errlen;
	int raised;
} errctx;

LBDPO_NORETURN static void fail(errctx *e, int line, const char *fmt, ...) LBDPO_PRINTF(3, 4);
static void fail(errctx *e, int line, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(e->err, e->errlen, "line %d: %s", line, msg);
	else
		snprintf(e->err, e->errlen, "%s", msg);
	longjmp(e->jb, 1);
}

/* Messages reach a terminal: a template's own text (raise_exception, an
 * echoed character) loses its control characters there; bytes that are not
 * UTF-8 become '?'. */
static void clean_msg(char *s)
{
	size_t n = strlen(s), o = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
		if (c >= 0x80 && (k > n - i || utf8_invalid_at(s + i, k) != k)) {
			s[o++] = '?', i++;
			continue;
		}
		if (c < 0x20 || c == 0x7F || (c == 0xC2 && (unsigned char)s[i + 1] <= 0x9F)) { /* C0, DEL, C1 */
			if (c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
				s[o++] = ' ';
			i += k;
			continue;
		}
		memmove(s + o, s + i, k);
		o += k, i += k;
	}
	s[o] = 0;
}

/* ---------------- AST ---------------- */

enum {
	E_LIT,
	E_NAME,
	E_ATTR,
	E_ITEM,
	E_SLICE,
	E_CALL,
	E_FILTER,
	E_TEST,
	E_BIN,
	E_NOT,
	E_NEG,
	E_POS,
	E_AND,
	E_OR,
	E_COND,
	E_LIST,
	E_DICT,
	E_CONCAT
};
enum {
	OP_ADD,
	OP_SUB,
	OP_MUL,
	OP_DIV,
	OP_FDIV,
	OP_MOD,
	OP_POW,
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_IN,
	OP_NOTIN
};

typedef struct expr {
	int k, op, line, negate;
	int h;       /* height of the tree below: evaluation recurses that deep */
	char *name;  /* name, attribute, filter, test */
	json_t *lit; /* literal */
	struct expr *a, *b, *c;
	struct expr **args; /* call / filter / test args; list, dict items */
	char **kw;          /* keyword names (NULL = positional) */
	int nargs;
} expr;

enum { N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_BREAK, N_CONTINUE };

typedef struct node node;
typedef struct {
	node **v;
	size_t n, cap;
} body;

struct node {
	int k, line;
	char *text;
	size_t len;
	expr *e, *cond;
	char *target[2], *attr; /* for: 1-2 targets; set: name (+ attr for ns.attr) */
	int ntarget;
	body then, els;
};

struct jinja {
	body root;
	void **allocs;
	size_t nallocs, capallocs;
	json_t **lits;
	size_t nlits, caplits;
};

static void *talloc(jinja *t, size_t n)
{
	void *p = xcalloc(1, n);
	if (t->nallocs == t->capallocs)
		xgrow((void **)&t->allocs, &t->capallocs, t->nallocs + 1, sizeof(void *));
	t->allocs[t->nallocs++] = p;
	return p;
}
static char *tstrndup(jinja *t, const char *s, size_t n)
{
	char *p = talloc(t, n + 1);
	memcpy(p, s, n);
	return p;
}
static json_t *tlit(jinja *t, json_t *v)
{
	if (t->nlits == t->caplits)
		xgrow((void **)&t->lits, &t->caplits, t->nlits + 1, sizeof(json_t *));
	t->lits[t->nlits++] = v;
	return v;
}
static void body_add(jinja *t, body *b, node *n)
{
	if (b->n == b->cap) {
		size_t c = b->cap ? 2 * b->cap : 8;
		node **v = talloc(t, c * sizeof *v);
		if (b->n)
			memcpy(v, b->v, b->n * sizeof *v);
		b->v = v, b->cap = c;
	}
	b->v[b->n++] = n;
}

void jinja_free(jinja *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nallocs; i++)
		free(t->allocs[i]);
	for (size_t i = 0; i < t->nlits; i++)
		json_decref(t->lits[i]);
	free(t->allocs), free(t->lits);
	free(t);
}

/* ---------------- lexer ---------------- */

enum { T_NAME, T_STR, T_INT, T_FLOAT, T_OP, T_END };
typedef struct {
	int k, line;
	char *s; /* name / op text / string value */
	size_t len;
	long long i;
	double f;
} token;

enum { I_TEXT, I_VAR, I_BLOCK };
typedef struct {
	int k, line;
	char *text; /* I_TEXT */
	size_t len;
	token *tok; /* tags: tokens, ending in T_END */
	size_t ntok;
} item;

typedef struct {
	jinja *t;
	errctx *e;
	item *items;
	size_t nitems, capitems, pos; /* parser position in items */
	token *tk;                    /* current tag's tokens */
	size_t tp;                    /* position in tk */
	int line;
	int depth; /* nesting of expressions and blocks, bounded: no stack overflow */
} P;

static int is_name_start(int c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_name_char(int c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

static void put_utf8(buf *b, uint32_t c)
{
	char o[4];
	size_t n;
	if (c < 0x80)
		o[0] = (char)c, n = 1;
	else if (c < 0x800)
		o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), n = 2;
	else if (c < 0x10000)
		o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | ((c >> 6) & 0x3F)),
		o[2] = (char)(0x80 | (c & 0x3F)), n = 3;
	else
		o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | ((c >> 12) & 0x3F)),
		o[2] = (char)(0x80 | ((c >> 6) & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F)), n = 4;
	bput(b, o, n);
}

/* Tokenize tag content s[0..n) (the part between the delimiters). */
static void lex_tag(P *p, item *it, const char *s, size_t n, int line)
{
	size_t cap = 0;
	it->ntok = 0;
	it->tok = NULL;
	size_t i = 0;
	for (;;) {
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
			if (s[i] == '\n')
				line++;
			i++;
		}
		if (it->ntok == cap) {
			size_t c = cap ? 2 * cap : 16;
			token *v = talloc(p->t, c * sizeof *v);
			if (it->ntok)
				memcpy(v, it->tok, it->ntok * sizeof *v);
			it->tok = v, cap = c;
		}
		token *tk = &it->tok[it->ntok++];
		memset(tk, 0, sizeof *tk);
		tk->line = line;
		if (i >= n) {
			tk->k = T_END;
			return;
		}
		unsigned char c = (unsigned char)s[i];
		if (is_name_start(c)) {
			size_t j = i;
			while (j < n && is_name_char((unsigned char)s[j]))
				j++;
			tk->k = T_NAME, tk->s = tstrndup(p->t, s + i, j - i), tk->len = j - i;
			i = j;
		} else if (c >= '0' && c <= '9') {
			size_t j = i;
			int isf = 0;
			while (j < n && s[j] >= '0' && s[j] <= '9')
				j++;
			if (j + 1 < n && s[j] == '.' && s[j + 1] >= '0' && s[j + 1] <= '9') {
				isf = 1;
				j++;
				while (j < n && s[j] >= '0' && s[j] <= '9')
					j++;
			}
			if (j < n && (s[j] == 'e' || s[j] == 'E')) {
				size_t k = j + 1;
				if (k < n && (s[k] == '+' || s[k] == '-'))
					k++;
				if (k < n && s[k] >= '0' && s[k] <= '9') {
					isf = 1;
					j = k;
					while (j < n && s[j] >= '0' && s[j] <= '9')
						j++;
				}
			}
			if ((j < n && (s[j] == '_' || is_name_start((unsigned char)s[j]))) ||
			    (!isf && s[i] == '0' && j > i + 1))
				fail(p->e, line, "unsupported number literal");
			char *num = tstrndup(p->t, s + i, j - i);
			errno = 0;
			if (isf)
				tk->k = T_FLOAT, tk->f = strtod(num, NULL);
			else
				tk->k = T_INT, tk->i = strtoll(num, NULL, 10);
			/* Python's integers are unbounded: one past 64 bits is refused,
			 * not clamped; a float literal past 1.8e308 is inf, which
			 * values here cannot be */
			if (!isf && errno == ERANGE)
				fail(p->e, line, "integer literal %.30s beyond 64 bits is not supported", num);
			if (isf && !isfinite(tk->f))
				fail(p->e, line, "float literal %.30s is infinite (not supported)", num);
			i = j;
		} else if (c == '\'' || c == '"') {
			buf b = {0};
			bput(&b, "", 0);
			size_t j = i + 1;
			for (;;) {
				if (j >= n) {
					free(b.s);
					fail(p->e, line, "unterminated string literal");
				}
				if ((unsigned char)s[j] == c)
					break;
				if (s[j] == '\\' && j + 1 < n) {
					char d = s[j + 1];
					const char *simple = strchr("nrtabfv\\'\"0", d);
					if (d && simple) {
						static const char from[] = "nrtabfv\\'\"0",
								  to[] = "\n\r\t\a\b\f\v\\'\"\0";
						bput(&b, &to[strchr(from, d) - from], 1);
						j += 2;
					} else if (d == 'x' || d == 'u' || d == 'U') {
						size_t nd = d == 'x' ? 2 : d == 'u' ? 4 : 8;
						uint32_t v = 0;
						if (j + 2 + nd > n) {
							free(b.s);
							fail(p->e, line, "bad \\%c escape in a string literal", d);
						}
						for (size_t q = 0; q < nd; q++) {
							char h = s[j + 2 + q];
							int dv = h >= '0' && h <= '9'   ? h - '0'
								 : h >= 'a' && h <= 'f' ? h - 'a' + 10
								 : h >= 'A' && h <= 'F' ? h - 'A' + 10
											: -1;
							if (dv < 0) {
								free(b.s);
								fail(p->e, line, "bad \\%c escape in a string literal",
								     d);
							}
							v = v * 16 + (uint32_t)dv;
						}
						if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
							free(b.s);
							fail(p->e, line, "unsupported code point in a string literal");
						}
						put_utf8(&b, v);
						j += 2 + nd;
					} else if (d == '\n') { /* line continuation */
						j += 2;
						line++;
					} else { /* Python keeps unknown escapes as they are */
						bput(&b, s + j, 2);
						j += 2;
					}
				} else {
					if (s[j] == '\n')
						line++;
					bput(&b, s + j, 1);
					j++;
				}
			}
			tk->k = T_STR, tk->s = tstrndup(p->t, b.s, b.n), tk->len = b.n;
			free(b.s);
			i = j + 1;
		} else {
			static const char *ops2[] = {"==", "!=", ">=", "<=", "//", "**"};
			size_t l = 0;
			for (size_t q = 0; q < 6; q++)
				if (i + 1 < n && s[i] == ops2[q][0] && s[i + 1] == ops2[q][1])
					l = 2;
			if (!l && strchr("+-*/%~<>()[]{},:.|=", c))
				l = 1;
			if (!l)
				fail(p->e, line, "unexpected character '%c' in a tag", c);
			tk->k = T_OP, tk->s = tstrndup(p->t, s + i, l), tk->len = l;
			i += l;
		}
	}
}

static void add_item(P *p, item it)
{
	if (p->nitems == p->capitems)
		xgrow((void **)&p->items, &p->capitems, p->nitems + 1, sizeof it);
	p->items[p->nitems++] = it;
}

static int count_nl(const char *s, size_t n)
{
	int k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == '\n';
	return k;
}

static void lex(P *p, const char *src, size_t n)
{
	int line = 1, line_starting = 1;
	size_t pos = 0;
	for (;;) {
		/* next tag start */
		size_t ts = pos;
		while (ts + 1 < n &&
		       !(src[ts] == '{' && (src[ts + 1] == '{' || src[ts + 1] == '%' || src[ts + 1] == '#')))
			ts++;
		if (ts + 1 >= n)
			ts = n;
		size_t tl = ts - pos; /* text length */
		int kind = ts < n ? src[ts + 1] : 0;
		char sign = ts < n && ts + 2 < n ? src[ts + 2] : 0;
		if (sign != '-' && sign != '+')
			sign = 0;
		if (ts < n && sign == '-') {
			while (tl) {
				size_t k = py_space_back(src + pos, tl);
				if (!k)
					break;
				tl -= k;
			}
		} else if (ts < n && sign != '+' && kind != '{') { /* lstrip_blocks */
			size_t lp = tl;
			while (lp && src[pos + lp - 1] != '\n')
				lp--;
			if (lp > 0 || line_starting) {
				size_t q = lp;
				while (q < tl) {
					size_t k = py_space(src + pos + q, tl - q);
					if (!k)
						break;
					q += k;
				}
				if (q == tl)
					tl = lp;
			}
		}
		if (tl)
			add_item(p, (item){I_TEXT, line, tstrndup(p->t, src + pos, tl), tl, NULL, 0});
		line += count_nl(src + pos, ts - pos);
		if (ts >= n)
			return;
		size_t cs = ts + 2 + (sign ? 1 : 0), ce; /* content start/end */
		char esign = 0;
		size_t after;
		if (kind == '#') {
			const char *e = memmem(src + cs, n - cs, "#}", 2);
			if (!e)
				fail(p->e, line, "unterminated comment");
			ce = (size_t)(e - src);
			if (ce > cs && (src[ce - 1] == '-' || src[ce - 1] == '+'))
				esign = src[ce - 1];
			after = ce + 2;
		} else {
			/* the end delimiter outside string literals */
			char close = kind == '{' ? '}' : '%';
			size_t i = cs;
			char q = 0;
			int depth = 0; /* brackets balance first, as in Jinja2: {{ {'a': {}} }} */
			for (;; i++) {
				if (i + 1 >= n)
					fail(p->e, line, "unterminated tag");
				if (q) {
					if (src[i] == '\\')
						i++;
					else if (src[i] == q)
						q = 0;
					continue;
				}
				if (src[i] == '\'' || src[i] == '"')
					q = src[i];
				else if (depth == 0 && src[i] == close && src[i + 1] == '}')
					break;
				else if (src[i] == '(' || src[i] == '[' || src[i] == '{')
					depth++;
				else if ((src[i] == ')' || src[i] == ']' || src[i] == '}') && depth > 0)
					depth--;
			}
			ce = i;
			if (ce > cs && (src[ce - 1] == '-' || src[ce - 1] == '+'))
				esign = src[ce - 1];
			after = ce + 2;
			item it = {kind == '{' ? I_VAR : I_BLOCK, line, NULL, 0, NULL, 0};
			lex_tag(p, &it, src + cs, ce - cs - (esign ? 1 : 0), line);
			if (it.k == I_BLOCK && it.tok[0].k == T_NAME &&
			    (!strcmp(it.tok[0].s, "raw") || !strcmp(it.tok[0].s, "verbatim")))
				fail(p->e, line, "{%% %s %%} is not supported", it.tok[0].s);
			add_item(p, it);
		}
		line += count_nl(src + ts, after - ts);
		if (esign == '-') {
			while (after < n) {
				size_t k = py_space(src + after, n - after);
				if (!k)
					break;
				line += src[after] == '\n';
				after += k;
			}
		} else if (kind != '{' && esign != '+' && after < n && src[after] == '\n') { /* trim_blocks */
			after++;
			line++;
		}
		line_starting = src[after - 1] == '\n';
		pos = after;
	}
}

/* ---------------- parser ---------------- */

static token *cur(P *p) { return &p->tk[p->tp]; }
static int is_op(P *p, const char *op) { return cur(p)->k == T_OP && !strcmp(cur(p)->s, op); }
static int is_kw(P *p, const char *kw) { return cur(p)->k == T_NAME && !strcmp(cur(p)->s, kw); }
static int is_kw_at(P *p, size_t k, const char *kw)
{
	for (size_t i = p->tp; i < p->tp + k; i++)
		if (p->tk[i].k == T_END)
			return 0;
	return p->tk[p->tp + k].k == T_NAME && !strcmp(p->tk[p->tp + k].s, kw);
}
static void expect_op(P *p, const char *op)
{
	if (!is_op(p, op))
		fail(p->e, cur(p)->line, "expected '%s'", op);
	p->tp++;
}
static char *expect_name(P *p)
{
	if (cur(p)->k != T_NAME)
		fail(p->e, cur(p)->line, "expected a name");
	return p->tk[p->tp++].s;
}

static expr *mk(P *p, int k)
{
	expr *e = talloc(p->t, sizeof *e);
	e->k = k;
	e->line = cur(p)->line;
	return e;
}

/* The parser builds left-deep trees for chains (a + b + c ..., x|f|g ...,
 * x[0][0] ...) without recursing, but rendering them recurses: every tree's
 * height is bounded, as the nesting of brackets is. Real templates stay
 * under 20. */
#define MAX_HEIGHT 200
static expr *fin(P *p, expr *e)
{
	int h = 0;
	expr *c[3] = {e->a, e->b, e->c};
	for (int i = 0; i < 3; i++)
		if (c[i] && c[i]->h > h)
			h = c[i]->h;
	int na = e->k == E_SLICE ? 3 : e->nargs;
	for (int i = 0; i < na; i++)
		if (e->args[i] && e->args[i]->h > h)
			h = e->args[i]->h;
	e->h = h + 1;
	if (e->h > MAX_HEIGHT)
		fail(p->e, e->line, "expression nested too deeply (over %d levels, chained operators included)",
		     MAX_HEIGHT);
	return e;
}

static expr *parse_expr(P *p);
static expr *parse_or(P *p);
static expr *parse_unary(P *p, int with_filter);

static const char *FILTERS[] = {"trim",       "length", "count",   "tojson", "items",   "join", "first",  "last",
				"lower",      "upper",  "string",  "list",   "default", "d",    "reject", "select",
				"capitalize", "title",  "replace", "int",    "float",   "abs",  "round",  NULL};
static const char *TESTS[] = {"defined",  "undefined", "none",        "string", "number",  "integer",
			      "float",    "boolean",   "true",        "false",  "mapping", "iterable",
			      "sequence", "equalto",   "eq",          "==",     "ne",      "!=",
			      "odd",      "even",      "divisibleby", "in",     NULL};
static int in_list(const char **l, const char *s)
{
	for (; *l; l++)
		if (!strcmp(*l, s))
			return 1;
	return 0;
}

static void parse_args(P *p, expr *e)
{
	expect_op(p, "(");
	expr *tmp[32];
	char *kw[32];
	int n = 0;
	while (!is_op(p, ")")) {
		if (n == 32)
			fail(p->e, cur(p)->line, "too many arguments");
		kw[n] = NULL;
		if (cur(p)->k == T_NAME && p->tk[p->tp + 1].k == T_OP && !strcmp(p->tk[p->tp + 1].s, "=")) {
			kw[n] = cur(p)->s;
			p->tp += 2;
		} else if (n && kw[n - 1])
			fail(p->e, cur(p)->line, "positional argument after a keyword argument");
		tmp[n++] = parse_expr(p);
		if (!is_op(p, ","))
			break;
		p->tp++;
	}
	expect_op(p, ")");
	e->nargs = n;
	e->args = talloc(p->t, (size_t)(n + 1) * sizeof *e->args);
	e->kw = talloc(p->t, (size_t)(n + 1) * sizeof *e->kw);
	memcpy(e->args, tmp, (size_t)n * sizeof *tmp);
	memcpy(e->kw, kw, (size_t)n * sizeof *kw);
}

static expr *parse_primary(P *p)
{
	token *t = cur(p);
	expr *e;
	switch (t->k) {
	case T_STR: {
		/* adjacent string literals concatenate */
		buf b = {0};
		bput(&b, "", 0);
		int line = t->line;
		while (cur(p)->k == T_STR)
			bput(&b, cur(p)->s, cur(p)->len), p->tp++;
		e = mk(p, E_LIT);
		e->line = line;
		e->lit = tlit(p->t, json_stringn(b.s, b.n));
		free(b.s);
		if (!e->lit)
			fail(p->e, line, "string literal is not valid UTF-8");
		return e;
	}
	case T_INT: e = mk(p, E_LIT), e->lit = tlit(p->t, json_integer(t->i)), p->tp++; return e;
	case T_FLOAT: e = mk(p, E_LIT), e->lit = tlit(p->t, json_real(t->f)), p->tp++; return e;
	case T_NAME:
		if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
			e = mk(p, E_LIT), e->lit = json_true();
		else if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
			e = mk(p, E_LIT), e->lit = json_false();
		else if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
			e = mk(p, E_LIT), e->lit = json_null();
		else
			e = mk(p, E_NAME), e->name = t->s;
		p->tp++;
		return e;
	case T_OP:
		if (is_op(p, "(")) {
			p->tp++;
			if (is_op(p, ")"))
				fail(p->e, t->line, "tuples are not supported");
			e = parse_expr(p);
			if (is_op(p, ","))
				fail(p->e, t->line, "tuples are not supported");
			expect_op(p, ")");
			return e;
		}
		if (is_op(p, "[") || is_op(p, "{")) {
			int dict = is_op(p, "{");
			p->tp++;
			e = mk(p, dict ? E_DICT : E_LIST);
			expr *tmp[256];
			int n = 0;
			while (!is_op(p, dict ? "}" : "]")) {
				if (n >= 254)
					fail(p->e, t->line, "literal too long");
				tmp[n++] = parse_expr(p);
				if (dict) {
					expect_op(p, ":");
					tmp[n++] = parse_expr(p);
				}
				if (!is_op(p, ","))
					break;
				p->tp++;
			}
			expect_op(p, dict ? "}" : "]");
			e->nargs = n;
			e->args = talloc(p->t, (size_t)(n + 1) * sizeof *e->args);
			memcpy(e->args, tmp, (size_t)n * sizeof *tmp);
			return fin(p, e);
		}
		break;
	case T_END: fail(p->e, t->line, "unexpected end of tag");
	}
	fail(p->e, t->line, "unexpected '%s'", t->s ? t->s : "?");
}

static expr *parse_postfix(P *p, expr *e)
{
	for (;;) {
		if (is_op(p, ".")) {
			p->tp++;
			expr *a = mk(p, E_ATTR);
			if (cur(p)->k == T_INT) { /* x.0 means x[0] */
				a->k = E_ITEM;
				a->b = mk(p, E_LIT);
				a->b->lit = tlit(p->t, json_integer(cur(p)->i));
				p->tp++;
			} else
				a->name = expect_name(p);
			a->a = e;
			e = fin(p, a);
		} else if (is_op(p, "[")) {
			p->tp++;
			expr *idx[3] = {0};
			int colons = 0;
			while (!is_op(p, "]")) {
				if (is_op(p, ":")) {
					if (++colons > 2)
						fail(p->e, cur(p)->line, "bad slice");
					p->tp++;
					continue;
				}
				if (idx[colons])
					fail(p->e, cur(p)->line, "expected ']'");
				idx[colons] = parse_expr(p);
				if (is_op(p, ","))
					fail(p->e, cur(p)->line, "tuple subscripts are not supported");
			}
			p->tp++;
			expr *a = mk(p, colons ? E_SLICE : E_ITEM);
			a->a = e;
			if (colons) {
				a->args = talloc(p->t, 3 * sizeof *a->args);
				memcpy(a->args, idx, sizeof idx);
			} else {
				if (!idx[0])
					fail(p->e, cur(p)->line, "empty subscript");
				a->b = idx[0];
			}
			e = fin(p, a);
		} else if (is_op(p, "(")) {
			expr *c = mk(p, E_CALL);
			c->a = e;
			parse_args(p, c);
			e = fin(p, c);
		} else
			return e;
	}
}

static expr *parse_filter_expr(P *p, expr *e)
{
	for (;;) {
		if (is_op(p, "|")) {
			p->tp++;
			expr *f = mk(p, E_FILTER);
			f->name = expect_name(p);
			if (!in_list(FILTERS, f->name))
				fail(p->e, f->line, "filter '%s' is not supported", f->name);
			f->a = e;
			if (is_op(p, "("))
				parse_args(p, f);
			e = fin(p, f);
		} else if (is_kw(p, "is")) {
			p->tp++;
			expr *f = mk(p, E_TEST);
			if (is_kw(p, "not"))
				f->negate = 1, p->tp++;
			if (cur(p)->k == T_NAME)
				f->name = expect_name(p);
			else if (cur(p)->k == T_OP && (is_op(p, "==") || is_op(p, "!=")))
				f->name = p->tk[p->tp++].s;
			else
				fail(p->e, f->line, "expected a test name after 'is'");
			/* none/true/false are test names too */
			if (!in_list(TESTS, f->name))
				fail(p->e, f->line, "test '%s' is not supported", f->name);
			if (e->k == E_TEST)
				fail(p->e, f->line, "You cannot chain multiple tests with is");
			f->a = e;
			if (is_op(p, "("))
				parse_args(p, f);
			else if ((cur(p)->k == T_NAME || cur(p)->k == T_STR || cur(p)->k == T_INT ||
				  cur(p)->k == T_FLOAT || is_op(p, "[") || is_op(p, "{")) &&
				 !is_kw(p, "else") && !is_kw(p, "or") && !is_kw(p, "and")) {
				/* one argument without parentheses, as Jinja2's parse_test
				 * takes it: x is divisibleby 3 (and x is defined if y is an
				 * error there too) */
				if (is_kw(p, "is"))
					fail(p->e, f->line, "You cannot chain multiple tests with is");
				f->nargs = 1;
				f->args = talloc(p->t, 2 * sizeof *f->args);
				f->kw = talloc(p->t, 2 * sizeof *f->kw);
				f->args[0] = parse_postfix(p, parse_primary(p));
			}
			e = fin(p, f);
		} else if (is_op(p, "(")) {
			expr *c = mk(p, E_CALL);
			c->a = e;
			parse_args(p, c);
			e = fin(p, c);
		} else
			return e;
	}
}

static expr *parse_unary(P *p, int with_filter)
{
	expr *e;
	if (is_op(p, "-") || is_op(p, "+")) {
		int neg = is_op(p, "-");
		p->tp++;
		e = mk(p, neg ? E_NEG : E_POS);
		if (++p->depth > 200)
			fail(p->e, cur(p)->line, "expression nested too deeply");
		e->a = parse_unary(p, 0);
		p->depth--;
		fin(p, e);
	} else {
		e = parse_primary(p);
	}
	e = parse_postfix(p, e);
	if (with_filter)
		e = parse_filter_expr(p, e);
	return e;
}

static expr *bin(P *p, int op, expr *a, expr *b)
{
	expr *e = mk(p, E_BIN);
	e->op = op, e->a = a, e->b = b;
	return fin(p, e);
}

static expr *parse_pow(P *p)
{
	expr *l = parse_unary(p, 1);
	while (is_op(p, "**")) {
		p->tp++;
		l = bin(p, OP_POW, l, parse_unary(p, 1));
	}
	return l;
}
static expr *parse_math2(P *p)
{
	expr *l = parse_pow(p);
	for (;;) {
		int op = is_op(p, "*")    ? OP_MUL
			 : is_op(p, "/")  ? OP_DIV
			 : is_op(p, "//") ? OP_FDIV
			 : is_op(p, "%")  ? OP_MOD
					  : -1;
		if (op < 0)
			return l;
		p->tp++;
		l = bin(p, op, l, parse_pow(p));
	}
}
static expr *parse_concat(P *p)
{
	expr *l = parse_math2(p);
	while (is_op(p, "~")) {
		p->tp++;
		expr *e = mk(p, E_CONCAT);
		e->a = l, e->b = parse_math2(p);
		l = fin(p, e);
	}
	return l;
}
static expr *parse_math1(P *p)
{
	expr *l = parse_concat(p);
	for (;;) {
		int op = is_op(p, "+") ? OP_ADD : is_op(p, "-") ? OP_SUB : -1;
		if (op < 0)
			return l;
		p->tp++;
		l = bin(p, op, l, parse_concat(p));
	}
}
static expr *parse_compare(P *p)
{
	expr *l = parse_math1(p);
	for (;;) {
		int op = -1;
		if (is_op(p, "=="))
			op = OP_EQ;
		else if (is_op(p, "!="))
			op = OP_NE;
		else if (is_op(p, "<"))
			op = OP_LT;
		else if (is_op(p, "<="))
			op = OP_LE;
		else if (is_op(p, ">"))
			op = OP_GT;
		else if (is_op(p, ">="))
			op = OP_GE;
		else if (is_kw(p, "in"))
			op = OP_IN;
		else if (is_kw(p, "not") && is_kw_at(p, 1, "in"))
			op = OP_NOTIN, p->tp++;
		if (op < 0)
			return l;
		p->tp++;
		/* chained comparisons (a < b < c) are not supported */
		l = bin(p, op, l, parse_math1(p));
		if (is_op(p, "==") || is_op(p, "!=") || is_op(p, "<") || is_op(p, "<=") || is_op(p, ">") ||
		    is_op(p, ">="))
			fail(p->e, cur(p)->line, "chained comparisons are not supported");
	}
}
static expr *parse_not(P *p)
{
	if (is_kw(p, "not")) {
		expr *e = mk(p, E_NOT);
		p->tp++;
		if (++p->depth > 200)
			fail(p->e, cur(p)->line, "expression nested too deeply");
		e->a = parse_not(p);
		p->depth--;
		return fin(p, e);
	}
	return parse_compare(p);
}
static expr *parse_and(P *p)
{
	expr *l = parse_not(p);
	while (is_kw(p, "and")) {
		p->tp++;
		expr *e = mk(p, E_AND);
		e->a = l, e->b = parse_not(p);
		l = fin(p, e);
	}
	return l;
}
static expr *parse_or(P *p)
{
	expr *l = parse_and(p);
	while (is_kw(p, "or")) {
		p->tp++;
		expr *e = mk(p, E_OR);
		e->a = l, e->b = parse_and(p);
		l = fin(p, e);
	}
	return l;
}
static expr *parse_expr(P *p)
{
	if (++p->depth > 200)
		fail(p->e, cur(p)->line, "expression nested too deeply");
	expr *l = parse_or(p);
	while (is_kw(p, "if")) { /* a if c else (b if d else e), as Jinja2 */
		p->tp++;
		expr *e = mk(p, E_COND);
		e->b = parse_or(p); /* condition */
		e->a = l;
		if (is_kw(p, "else")) {
			p->tp++;
			e->c = parse_expr(p);
		}
		l = fin(p, e);
	}
	p->depth--;
	return l;
}

static void expect_end(P *p)
{
	if (cur(p)->k != T_END)
		fail(p->e, cur(p)->line, "unexpected '%s' in the tag", cur(p)->s ? cur(p)->s : "literal");
}

static const char *parse_body1(P *p, body *b, const char **ends);
/* Parse items into b until a block tag whose first word is in ends; returns
 * that word (the tag's tokens current in p->tk) or NULL at the end. */
static const char *parse_body(P *p, body *b, const char **ends)
{
	if (++p->depth > 200)
		fail(p->e, p->pos < p->nitems ? p->items[p->pos].line : 0, "blocks nested too deeply");
	const char *r = parse_body1(p, b, ends);
	p->depth--;
	return r;
}

static const char *parse_body1(P *p, body *b, const char **ends)
{
	while (p->pos < p->nitems) {
		item *it = &p->items[p->pos++];
		node *n;
		if (it->k == I_TEXT) {
			n = talloc(p->t, sizeof *n);
			n->k = N_TEXT, n->line = it->line, n->text = it->text, n->len = it->len;
			body_add(p->t, b, n);
			continue;
		}
		p->tk = it->tok, p->tp = 0;
		if (it->k == I_VAR) {
			n = talloc(p->t, sizeof *n);
			n->k = N_OUT, n->line = it->line;
			n->e = parse_expr(p);
			expect_end(p);
			body_add(p->t, b, n);
			continue;
		}
		if (cur(p)->k != T_NAME)
			fail(p->e, it->line, "expected a statement name");
		const char *w = cur(p)->s;
		for (const char **e = ends; ends && *e; e++)
			if (!strcmp(w, *e)) {
				p->tp++;
				return *e;
			}
		p->tp++;
		n = talloc(p->t, sizeof *n);
		n->line = it->line;
		if (!strcmp(w, "if")) {
			static const char *ifends[] = {"elif", "else", "endif", NULL};
			n->k = N_IF;
			n->cond = parse_or(p); /* Jinja2: no conditional expression here */
			expect_end(p);
			node *cur_if = n;
			for (;;) {
				const char *end = parse_body(p, &cur_if->then, ifends);
				if (!end)
					fail(p->e, n->line, "missing {%% endif %%}");
				if (!strcmp(end, "endif")) {
					expect_end(p);
					break;
				}
				if (!strcmp(end, "else")) {
					expect_end(p);
					static const char *eends[] = {"endif", NULL};
					if (!parse_body(p, &cur_if->els, eends))
						fail(p->e, n->line, "missing {%% endif %%}");
					expect_end(p);
					break;
				}
				/* elif: a nested if in the else branch */
				node *m = talloc(p->t, sizeof *m);
				m->k = N_IF, m->line = cur(p)->line;
				m->cond = parse_or(p);
				expect_end(p);
				body_add(p->t, &cur_if->els, m);
				cur_if = m;
			}
		} else if (!strcmp(w, "for")) {
			static const char *forends[] = {"else", "endfor", NULL};
			n->k = N_FOR;
			n->target[n->ntarget++] = expect_name(p);
			if (is_op(p, ",")) {
				p->tp++;
				n->target[n->ntarget++] = expect_name(p);
				if (is_op(p, ","))
					fail(p->e, n->line, "more than two loop variables are not supported");
			}
			if (!is_kw(p, "in"))
				fail(p->e, n->line, "expected 'in'");
			p->tp++;
			n->e = parse_or(p); /* no condexpr: 'if' filters the loop */
			if (is_kw(p, "if")) {
				p->tp++;
				n->cond = parse_expr(p);
			}
			if (is_kw(p, "recursive"))
				fail(p->e, n->line, "recursive loops are not supported");
			expect_end(p);
			const char *end = parse_body(p, &n->then, forends);
			if (!end)
				fail(p->e, n->line, "missing {%% endfor %%}");
			expect_end(p);
			if (!strcmp(end, "else")) {
				static const char *eends[] = {"endfor", NULL};
				if (!parse_body(p, &n->els, eends))
					fail(p->e, n->line, "missing {%% endfor %%}");
				expect_end(p);
			}
		} else if (!strcmp(w, "set")) {
			n->k = N_SET;
			n->target[0] = expect_name(p);
			if (is_op(p, ".")) {
				p->tp++;
				n->attr = expect_name(p);
			}
			if (is_op(p, ","))
				fail(p->e, n->line, "tuple assignment is not supported");
			if (!is_op(p, "="))
				fail(p->e, n->line, "block {%% set %%} ... {%% endset %%} is not supported");
			p->tp++;
			n->e = parse_expr(p);
			expect_end(p);
		} else if (!strcmp(w, "break") || !strcmp(w, "continue")) {
			n->k = !strcmp(w, "break") ? N_BREAK : N_CONTINUE;
			expect_end(p);
		} else {
			fail(p->e, it->line, "{%% %s %%} is not supported", w);
		}
		body_add(p->t, b, n);
	}
	return NULL;
}

jinja *jinja_compile(const char *src0, size_t n0, char *err, size_t errlen)
{
	errctx e = {.err = err, .errlen = errlen};
	/* Jinja2 takes a Python str: bytes that are not UTF-8 never get there */
	if (n0 > JINJA_MAX_SOURCE) {
		snprintf(err, errlen, "the template is over the limit of %d KiB", JINJA_MAX_SOURCE >> 10);
		return NULL;
	}
	size_t bad = utf8_invalid_at(src0, n0);
	if (bad < n0) {
		snprintf(err, errlen, "line %d: invalid UTF-8 at byte %zu of the template", count_nl(src0, bad) + 1,
			 bad);
		return NULL;
	}
	jinja *t = xcalloc(1, sizeof *t);
	P p = {.t = t, .e = &e};
	/* newlines normalised to \n and one trailing newline dropped, as
	 * Jinja2's lexer does (keep_trailing_newline=False) */
	char *src = xmalloc(n0 + 1);
	size_t n = 0;
	for (size_t i = 0; i < n0; i++) {
		if (src0[i] == '\r') {
			src[n++] = '\n';
			if (i + 1 < n0 && src0[i + 1] == '\n')
				i++;
		} else
			src[n++] = src0[i];
	}
	if (n && src[n - 1] == '\n')
		n--;
	src[n] = 0;
	if (setjmp(e.jb)) {
		free(src);
		free(p.items);
		jinja_free(t);
		clean_msg(err);
		return NULL;
	}
	lex(&p, src, n);
	static const char *none[] = {NULL};
	if (parse_body(&p, &t->root, none))
		fail(&e, 0, "unexpected end tag");
	/* an end tag without its start is caught here */
	free(src);
	free(p.items);
	return t;
}

/* ---------------- values ---------------- */

typedef struct {
	errctx e;
	json_t **owned;
	size_t nowned, capowned;
	size_t extra;    /* values held inside owned containers (a loop object's fields) */
	json_t **frames; /* variable scopes, innermost last */
	size_t nframes, capframes;
	json_t *namespaces; /* array of namespace objects (identity) */
	buf out;
	int line;
	int loopctl;   /* 1 break, 2 continue */
	uint64_t work; /* work done (statements, bytes, elements): a runaway template stops with an error */
	size_t mem;    /* bytes of the values made: all live until the end */
	buf tmp[4];    /* scratch buffers (freed at the end, also after an error) */
	int ntmp;
	char undef[128]; /* what the last undefined value was: "'x' is undefined" */
} R;

/* One rendering's budgets. Work: a statement costs 64 units, a byte copied or
 * scanned 1, a list or dict element visited 64; 5 million statements or
 * 320 MB of string work: a quarter second at most here, a few seconds under
 * ASan (20 million, the old statement bound, let make fuzz find renderings
 * past its 10 s per-input limit). Real templates use thousands; 320 MB is
 * 20 passes over the largest record. Memory: the values a
 * rendering makes stay until it ends; 256 MiB is 16 copies of the largest
 * record the JSONL reader takes. */
#define MAX_WORK (5000000ull * 64)
#define W_STMT 64
#define W_ELEM 64
#define MAX_MEM ((size_t)256 << 20)
#define V_SIZE 64 /* a value's own bytes (jansson's struct, malloc's header) */

LBDPO_NORETURN static void over_work(R *r)
{
	fail(&r->e, r->line,
	     "the template exceeded its work budget (%llu units: 5 million statements, or 320 MB of string work)",
	     MAX_WORK);
}
static void work(R *r, uint64_t units)
{
	r->work += units;
	if (r->work > MAX_WORK)
		over_work(r);
}
LBDPO_NORETURN static void over_mem(R *r)
{
	fail(&r->e, r->line, "the template exceeded its memory budget (%zu MiB of values in one rendering)",
	     MAX_MEM >> 20);
}
static void charge(R *r, size_t bytes)
{
	if (bytes > MAX_MEM - r->mem)
		over_mem(r);
	r->mem += bytes;
}

/* Scratch buffer for a value being built; rput checks the budgets as it
 * grows, so a value too large is refused before it exists. */
static buf *tmp_open(R *r)
{
	if (r->ntmp == 4)
		fail(&r->e, r->line, "internal: scratch buffers exhausted");
	buf *b = &r->tmp[r->ntmp++];
	b->n = 0;
	bput(b, "", 0);
	return b;
}
static void rput(R *r, buf *b, const char *s, size_t n)
{
	work(r, n + 1);
	if (n > MAX_MEM - r->mem || b->n > MAX_MEM - r->mem - n)
		over_mem(r);
	bput(b, s, n);
}
static void rputs(R *r, buf *b, const char *s) { rput(r, b, s, strlen(s)); }

/* Values a rendering may create before it is refused: real chat templates
 * make thousands; a hostile one (loops nested over the messages) would make
 * one per step, so memory stays bounded apart from the step limit. */
#define MAX_OWNED ((size_t)2 << 20)
static json_t *own(R *r, json_t *v)
{
	if (!v)
		fail(&r->e, r->line, "out of memory or invalid UTF-8 in a value");
	if (r->nowned + r->extra >= MAX_OWNED) {
		json_decref(v);
		fail(&r->e, r->line, "the template makes too many values (over %zu)", MAX_OWNED);
	}
	size_t sz = V_SIZE + (json_is_string(v) ? json_string_length(v) : 0) +
		    (json_is_array(v) ? json_array_size(v) * sizeof(json_t *) : 0);
	if (sz > MAX_MEM - r->mem) {
		json_decref(v);
		over_mem(r);
	}
	r->mem += sz;
	if (r->nowned == r->capowned)
		xgrow((void **)&r->owned, &r->capowned, r->nowned + 1, sizeof(json_t *));
	r->owned[r->nowned++] = v;
	return v;
}
static json_t *mkstr(R *r, const char *s, size_t n)
{
	work(r, n);
	return own(r, json_stringn_nocheck(s, n));
}
/* the scratch buffer b (the last opened) as a string value, b closed */
static json_t *tmp_str(R *r, buf *b)
{
	json_t *v = mkstr(r, b->s, b->n);
	r->ntmp--;
	return v;
}
/* elements added to a list or dict that is already owned: each a value of its
 * own (bytes: a new string's length) */
static void charge_elems(R *r, size_t n, size_t bytes)
{
	work(r, n * W_ELEM);
	if (n > (MAX_MEM - r->mem) / V_SIZE)
		over_mem(r);
	charge(r, n * V_SIZE);
	charge(r, bytes);
}
static json_t *mkint(R *r, long long v) { return own(r, json_integer(v)); }
static json_t *mkreal(R *r, double x)
{
	if (!isfinite(x))
		fail(&r->e, r->line, "a float result that is %s is not supported", isnan(x) ? "nan" : "infinite");
	return own(r, json_real(x));
}
static json_t *mkbool(int v) { return v ? json_true() : json_false(); }

static int is_ns(R *r, json_t *v)
{
	for (size_t i = 0; i < json_array_size(r->namespaces); i++)
		if (json_array_get(r->namespaces, i) == v)
			return 1;
	return 0;
}

static const char *tname(R *r, json_t *v)
{
	if (!v)
		return r->undef[0] ? r->undef : "undefined";
	switch (json_typeof(v)) {
	case JSON_OBJECT: return is_ns(r, v) ? "namespace" : "dict";
	case JSON_ARRAY: return "list";
	case JSON_STRING: return "str";
	case JSON_INTEGER: return "int";
	case JSON_REAL: return "float";
	case JSON_TRUE:
	case JSON_FALSE: return "bool";
	case JSON_NULL: return "NoneType";
	}
	return "?";
}

static int truthy(json_t *v)
{
	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT: return json_object_size(v) > 0;
	case JSON_ARRAY: return json_array_size(v) > 0;
	case JSON_STRING: return json_string_length(v) > 0;
	case JSON_INTEGER: return json_integer_value(v) != 0;
	case JSON_REAL: return json_real_value(v) != 0;
	case JSON_TRUE: return 1;
	default: return 0;
	}
}

static int is_num(json_t *v) { return v && (json_is_integer(v) || json_is_real(v) || json_is_boolean(v)); }
static double num(json_t *v)
{
	return json_is_integer(v) ? (double)json_integer_value(v)
	       : json_is_real(v)  ? json_real_value(v)
				  : json_is_true(v);
}
static int is_intlike(json_t *v) { return v && (json_is_integer(v) || json_is_boolean(v)); }
static long long ival(json_t *v) { return json_is_integer(v) ? json_integer_value(v) : json_is_true(v); }

/* Python's repr() of a float */
static void put_float(buf *b, double x)
{
	char s[64];
	if (isnan(x))
		return bputs(b, "nan");
	if (isinf(x))
		return bputs(b, x < 0 ? "-inf" : "inf");
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(s, sizeof s, "%.*e", prec - 1, x);
		if (strtod(s, NULL) == x)
			break;
	}
	/* s = d.ddde±XX with prec significant digits */
	char digits[32];
	size_t nd = 0;
	const char *q = s;
	int neg = 0;
	if (*q == '-')
		neg = 1, q++;
	for (; *q && *q != 'e'; q++)
		if (*q != '.')
			digits[nd++] = *q;
	int ex = atoi(q + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (neg)
		bputs(b, "-");
	if (ex >= -5 && ex < 16) {
		if (ex >= 0) {
			for (int i = 0; i <= ex; i++)
				bput(b, i < (int)nd ? &digits[i] : "0", 1);
			bputs(b, ".");
			if ((int)nd > ex + 1)
				bput(b, digits + ex + 1, nd - (size_t)ex - 1);
			else
				bputs(b, "0");
		} else {
			bputs(b, "0.");
			for (int i = 0; i < -ex - 1; i++)
				bputs(b, "0");
			bput(b, digits, nd);
		}
	} else {
		bput(b, digits, 1);
		if (nd > 1)
			bputs(b, "."), bput(b, digits + 1, nd - 1);
		snprintf(s, sizeof s, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
		bputs(b, s);
	}
}

/* str(v) appended to b, as Jinja2 prints it */
static void to_str(R *r, buf *b, json_t *v)
{
	char s[32];
	if (!v)
		return;
	switch (json_typeof(v)) {
	case JSON_STRING: rput(r, b, json_string_value(v), json_string_length(v)); return;
	case JSON_INTEGER:
		snprintf(s, sizeof s, "%lld", (long long)json_integer_value(v));
		rputs(r, b, s);
		return;
	case JSON_REAL: {
		char fs[64]; /* a float's repr fits: bput never grows it */
		buf f = {fs, 0, sizeof fs};
		put_float(&f, json_real_value(v));
		rput(r, b, f.s, f.n);
		return;
	}
	case JSON_TRUE: rputs(r, b, "True"); return;
	case JSON_FALSE: rputs(r, b, "False"); return;
	case JSON_NULL: rputs(r, b, "None"); return;
	default: fail(&r->e, r->line, "printing a %s is not supported (use tojson)", tname(r, v));
	}
}

static json_t *str_of(R *r, json_t *v)
{
	if (v && json_is_string(v))
		return v;
	buf *b = tmp_open(r);
	to_str(r, b, v);
	return tmp_str(r, b);
}

static void dump_str(R *r, buf *b, const char *p, size_t n)
{
	char s[8];
	rputs(r, b, "\"");
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && (unsigned char)p[j] >= 0x20 && p[j] != '"' && p[j] != '\\')
			j++;
		rput(r, b, p + i, j - i);
		if (j == n)
			break;
		unsigned char c = (unsigned char)p[j];
		if (c == '"')
			rputs(r, b, "\\\"");
		else if (c == '\\')
			rputs(r, b, "\\\\");
		else if (c == '\n')
			rputs(r, b, "\\n");
		else if (c == '\r')
			rputs(r, b, "\\r");
		else if (c == '\t')
			rputs(r, b, "\\t");
		else if (c == '\b')
			rputs(r, b, "\\b");
		else if (c == '\f')
			rputs(r, b, "\\f");
		else
			snprintf(s, sizeof s, "\\u%04x", c), rputs(r, b, s);
		i = j + 1;
	}
	rputs(r, b, "\"");
}

/* json.dumps(v, ensure_ascii=False, indent=indent) */
static void dump_json(R *r, buf *b, json_t *v, int indent, int depth)
{
	char s[32];
	if (!v)
		fail(&r->e, r->line, "tojson of an undefined value (%s)", tname(r, v));
	if (depth > 64)
		fail(&r->e, r->line, "tojson: nesting too deep");
	work(r, W_ELEM);
	switch (json_typeof(v)) {
	case JSON_NULL: rputs(r, b, "null"); return;
	case JSON_TRUE: rputs(r, b, "true"); return;
	case JSON_FALSE: rputs(r, b, "false"); return;
	case JSON_INTEGER:
		snprintf(s, sizeof s, "%lld", (long long)json_integer_value(v));
		rputs(r, b, s);
		return;
	case JSON_REAL: {
		double x = json_real_value(v);
		if (isnan(x))
			rputs(r, b, "NaN");
		else if (isinf(x))
			rputs(r, b, x < 0 ? "-Infinity" : "Infinity");
		else {
			char fs[64];
			buf f = {fs, 0, sizeof fs};
			put_float(&f, x);
			rput(r, b, f.s, f.n);
		}
		return;
	}
	case JSON_STRING: dump_str(r, b, json_string_value(v), json_string_length(v)); return;
	case JSON_ARRAY:
	case JSON_OBJECT: {
		int arr = json_is_array(v);
		size_t n = arr ? json_array_size(v) : json_object_size(v);
		rputs(r, b, arr ? "[" : "{");
		if (!n) {
			rputs(r, b, arr ? "]" : "}");
			return;
		}
		size_t i = 0;
		const char *k;
		json_t *x;
		void *it = arr ? NULL : json_object_iter(v);
		for (i = 0; i < n; i++) {
			if (i)
				rputs(r, b, indent >= 0 ? "," : ", ");
			if (indent >= 0) {
				rputs(r, b, "\n");
				for (int q = 0; q < indent * (depth + 1); q++)
					rputs(r, b, " ");
			}
			if (arr)
				x = json_array_get(v, i);
			else {
				k = json_object_iter_key(it);
				x = json_object_iter_value(it);
				it = json_object_iter_next(v, it);
				dump_str(r, b, k, strlen(k));
				rputs(r, b, ": ");
			}
			dump_json(r, b, x, indent, depth + 1);
		}
		if (indent >= 0) {
			rputs(r, b, "\n");
			for (int q = 0; q < indent * depth; q++)
				rputs(r, b, " ");
		}
		rputs(r, b, arr ? "]" : "}");
		return;
	}
	}
}

/* Python's comparison of two numbers: exact, also between a 64-bit integer
 * and a float (no rounding of the integer); 2 when unordered (NaN) */
static int cmp_num(json_t *a, json_t *b)
{
	if (is_intlike(a) && is_intlike(b)) {
		long long x = ival(a), y = ival(b);
		return x < y ? -1 : x > y;
	}
	if (!is_intlike(a) && !is_intlike(b)) {
		double x = num(a), y = num(b);
		return x < y ? -1 : x > y ? 1 : x == y ? 0 : 2;
	}
	int flip = is_intlike(b); /* a: the integer */
	long long i = flip ? ival(b) : ival(a);
	double d = flip ? num(a) : num(b);
	int c;
	if (isnan(d))
		return 2;
	if (d >= 9223372036854775808.0)
		c = -1;
	else if (d < -9223372036854775808.0)
		c = 1;
	else {
		double f = floor(d);
		long long fi = (long long)f;
		c = i < fi ? -1 : i > fi ? 1 : d > f ? -1 : 0;
	}
	return flip ? -c : c;
}

static int eq(R *r, json_t *a, json_t *b, int depth)
{
	work(r, W_ELEM);
	if (!a || !b)
		return !a && !b;
	if (is_num(a) && is_num(b))
		return cmp_num(a, b) == 0;
	if (a == b && (json_is_array(a) || json_is_object(a)))
		return 1;
	if (depth > 64 && (json_is_array(a) || json_is_object(a)))
		fail(&r->e, r->line, "comparison nested too deeply");
	if (json_is_array(a) && json_is_array(b)) {
		if (json_array_size(a) != json_array_size(b))
			return 0;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!eq(r, json_array_get(a, i), json_array_get(b, i), depth + 1))
				return 0;
		return 1;
	}
	if (json_is_object(a) && json_is_object(b)) {
		if (json_object_size(a) != json_object_size(b))
			return 0;
		const char *k;
		json_t *x;
		json_object_foreach(a, k, x)
		{
			if (!eq(r, x, json_object_get(b, k), depth + 1))
				return 0;
		}
		return 1;
	}
	if (json_typeof(a) != json_typeof(b))
		return 0;
	if (json_is_string(a))
		work(r, json_string_length(a));
	return json_equal(a, b);
}

/* number of code points */
static size_t cp_count(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

/* ---------------- evaluation ---------------- */

static json_t *eval(R *r, expr *e);

static json_t *lookup(R *r, const char *name)
{
	for (size_t i = r->nframes; i-- > 0;) {
		json_t *v = json_object_get(r->frames[i], name);
		if (v)
			return v;
	}
	return NULL;
}

static json_t *get_item(R *r, json_t *o, json_t *k)
{
	if (!o)
		fail(&r->e, r->line, "subscript of an undefined value (%s)", tname(r, o));
	if (json_is_object(o)) {
		if (!json_is_string(k))
			return NULL;
		return json_object_get(o, json_string_value(k));
	}
	if (json_is_array(o) || json_is_string(o)) {
		if (!is_intlike(k))
			return NULL;
		long long i = ival(k);
		if (json_is_array(o)) {
			long long n = (long long)json_array_size(o);
			if (i < 0)
				i += n;
			return i >= 0 && i < n ? json_array_get(o, (size_t)i) : NULL;
		}
		/* string: by code point */
		const char *s = json_string_value(o);
		size_t n = json_string_length(o), nc = cp_count(s, n);
		work(r, 2 * n); /* counted, then scanned */
		if (i < 0)
			i += (long long)nc;
		if (i < 0 || i >= (long long)nc)
			return NULL;
		size_t pos = 0;
		for (long long c = 0;; pos++)
			if (((unsigned char)s[pos] & 0xC0) != 0x80 && c++ == i)
				break;
		size_t e = pos + 1;
		while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80)
			e++;
		return mkstr(r, s + pos, e - pos);
	}
	if (json_is_null(o))
		fail(&r->e, r->line, "'NoneType' object is not subscriptable");
	return NULL;
}

/* x.name: a dict's key, as Jinja2 gives it unless name is a dict method
 * (then Jinja2 gives the method, whatever the keys: refused here, as are
 * attributes of strings, numbers and lists, which are Python's) */
static json_t *get_attr(R *r, json_t *o, const char *name)
{
	static const char *dict_methods[] = {"items",  "keys", "values", "get",        "pop",      "popitem",
					     "update", "copy", "clear",  "setdefault", "fromkeys", NULL};
	if (!o)
		fail(&r->e, r->line, "attribute '%s' of an undefined value (%s)", name, tname(r, o));
	if (json_is_object(o)) {
		if (!is_ns(r, o) && !json_object_get(o, "index0"))
			for (const char **m = dict_methods; *m; m++)
				if (!strcmp(*m, name))
					fail(&r->e, r->line,
					     "'.%s' of a dict is its method in Jinja2 (use ['%s'] for the key)", name,
					     name);
		return json_object_get(o, name);
	}
	if (json_is_null(o))
		fail(&r->e, r->line, "'NoneType' object has no attribute '%s'", name);
	fail(&r->e, r->line, "attribute '%s' of a %s is not supported", name,
	     json_is_array(o)    ? "list"
	     : json_is_string(o) ? "str"
				 : "number");
}

/* Python slice index normalisation */
static long long slice_idx(long long i, long long n, int step_neg, int is_start, int given)
{
	if (!given)
		return step_neg ? (is_start ? n - 1 : -1) : (is_start ? 0 : n);
	if (i < 0) {
		i += n;
		if (i < 0)
			i = step_neg ? -1 : 0;
	} else if (i >= n)
		i = step_neg ? n - 1 : n;
	return i;
}

static json_t *do_slice(R *r, json_t *o, json_t *a, json_t *b, json_t *c)
{
	if (!o || !(json_is_array(o) || json_is_string(o)))
		fail(&r->e, r->line, "slicing a %s is not supported", tname(r, o));
	for (int q = 0; q < 3; q++) {
		json_t *x = q == 0 ? a : q == 1 ? b : c;
		if (x && !json_is_null(x) && !is_intlike(x))
			fail(&r->e, r->line, "slice indices must be integers");
	}
	long long step = c && !json_is_null(c) ? ival(c) : 1;
	if (!step)
		fail(&r->e, r->line, "slice step cannot be zero");
	int isstr = json_is_string(o);
	const char *s = isstr ? json_string_value(o) : NULL;
	size_t sn = isstr ? json_string_length(o) : 0;
	long long n = isstr ? (long long)cp_count(s, sn) : (long long)json_array_size(o);
	/* code point offsets of a string */
	size_t *off = NULL;
	work(r, (uint64_t)n + sn);
	if (isstr) {
		/* the table is temporary, its size checked as a value's would be */
		if ((size_t)n + 1 > (MAX_MEM - r->mem) / sizeof *off)
			over_mem(r);
		off = xmalloc(((size_t)n + 1) * sizeof *off);
		size_t k = 0;
		for (size_t i = 0; i < sn; i++)
			if (((unsigned char)s[i] & 0xC0) != 0x80)
				off[k++] = i;
		off[k] = sn;
	}
	long long st = slice_idx(a && !json_is_null(a) ? ival(a) : 0, n, step < 0, 1, a && !json_is_null(a));
	long long en = slice_idx(b && !json_is_null(b) ? ival(b) : 0, n, step < 0, 0, b && !json_is_null(b));
	json_t *res;
	/* indices stay in [-1, n]: i += step cannot overflow past them unless
	 * step is huge, which ends the loop */
	if (isstr) {
		buf bb = {0};
		bput(&bb, "", 0);
		for (long long i = st; step > 0 ? i < en : i > en;) {
			bput(&bb, s + off[i], off[i + 1] - off[i]);
			if (__builtin_add_overflow(i, step, &i))
				break;
		}
		free(off);
		/* no longer than the string: its size is within the budget */
		res = json_stringn_nocheck(bb.s, bb.n);
		free(bb.s);
		own(r, res);
	} else {
		res = own(r, json_array());
		size_t k = 0;
		for (long long i = st; step > 0 ? i < en : i > en;) {
			json_array_append(res, json_array_get(o, (size_t)i));
			k++;
			if (__builtin_add_overflow(i, step, &i))
				break;
		}
		charge(r, k * sizeof(json_t *));
	}
	return res;
}

/* strip chars (NULL = Python whitespace) from the ends of s */
static json_t *do_strip(R *r, json_t *v, json_t *chars, int left, int right)
{
	if (chars && json_is_null(chars))
		chars = NULL;
	if (chars && !json_is_string(chars))
		fail(&r->e, r->line, "strip arg must be None or str");
	const char *s = json_string_value(v);
	size_t a = 0, b = json_string_length(v);
	const char *cs = chars ? json_string_value(chars) : NULL;
	size_t cn = chars ? json_string_length(chars) : 0;
	/* match one char of the set at s+i (forward) */
	for (;;) {
		if (!left || a >= b)
			break;
		work(r, cn + 1);
		size_t k;
		if (!cs)
			k = py_space(s + a, b - a);
		else {
			k = 0;
			size_t l = 1;
			while (a + l < b && ((unsigned char)s[a + l] & 0xC0) == 0x80)
				l++;
			for (size_t i = 0; i < cn;) {
				size_t m = 1;
				while (i + m < cn && ((unsigned char)cs[i + m] & 0xC0) == 0x80)
					m++;
				if (m == l && !memcmp(cs + i, s + a, l))
					k = l;
				i += m;
			}
		}
		if (!k)
			break;
		a += k;
	}
	for (;;) {
		if (!right || b <= a)
			break;
		work(r, cn + 1);
		size_t k;
		if (!cs)
			k = py_space_back(s + a, b - a);
		else {
			k = 0;
			size_t l = 1;
			while (b - l > a && ((unsigned char)s[b - l] & 0xC0) == 0x80)
				l++;
			for (size_t i = 0; i < cn;) {
				size_t m = 1;
				while (i + m < cn && ((unsigned char)cs[i + m] & 0xC0) == 0x80)
					m++;
				if (m == l && !memcmp(cs + i, s + b - l, l))
					k = l;
				i += m;
			}
		}
		if (!k)
			break;
		b -= k;
	}
	return mkstr(r, s + a, b - a);
}

static json_t *do_split(R *r, json_t *v, json_t *sep, json_t *maxsplit)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	long long max = maxsplit && !json_is_null(maxsplit) ? ival(maxsplit) : -1;
	json_t *res = own(r, json_array());
	if (sep && !json_is_null(sep)) {
		if (!json_is_string(sep))
			fail(&r->e, r->line, "split: separator must be a string");
		const char *p = json_string_value(sep);
		size_t pn = json_string_length(sep);
		if (!pn)
			fail(&r->e, r->line, "split: empty separator");
		size_t a = 0;
		for (;;) {
			const char *f = max != 0 ? find(s + a, n - a, p, pn) : NULL;
			if (!f)
				break;
			charge_elems(r, 1, (size_t)(f - s) - a + pn);
			json_array_append_new(res, json_stringn_nocheck(s + a, (size_t)(f - s) - a));
			a = (size_t)(f - s) + pn;
			if (max > 0)
				max--;
		}
		charge_elems(r, 1, n - a);
		json_array_append_new(res, json_stringn_nocheck(s + a, n - a));
		return res;
	}
	size_t i = 0;
	for (;;) {
		size_t k;
		while (i < n && (k = py_space(s + i, n - i)))
			i += k;
		if (i >= n)
			break;
		size_t a = i;
		if (max == 0) {
			size_t e = n;
			while (e > a && (k = py_space_back(s + a, e - a)))
				e -= k;
			charge_elems(r, 1, n - a);
			json_array_append_new(res, json_stringn_nocheck(s + a, e - a));
			break;
		}
		while (i < n && !py_space(s + i, n - i))
			i++;
		charge_elems(r, 1, i - a + 1);
		json_array_append_new(res, json_stringn_nocheck(s + a, i - a));
		if (max > 0)
			max--;
	}
	return res;
}

static json_t *do_replace(R *r, json_t *v, json_t *a, json_t *b)
{
	if (!a || !b || !json_is_string(a) || !json_is_string(b))
		fail(&r->e, r->line, "replace: arguments must be strings");
	const char *s = json_string_value(v), *p = json_string_value(a);
	size_t n = json_string_length(v), pn = json_string_length(a);
	if (!pn)
		fail(&r->e, r->line, "replace with an empty pattern is not supported");
	buf *bb = tmp_open(r);
	size_t i = 0;
	for (;;) {
		const char *f = find(s + i, n - i, p, pn);
		if (!f)
			break;
		rput(r, bb, s + i, (size_t)(f - s) - i);
		rput(r, bb, json_string_value(b), json_string_length(b));
		i = (size_t)(f - s) + pn;
	}
	rput(r, bb, s + i, n - i);
	return tmp_str(r, bb);
}

/* ASCII-only case mapping; other characters make it refuse */
static json_t *do_case(R *r, json_t *v, int mode) /* 0 lower, 1 upper, 2 capitalize, 3 title */
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	work(r, n);
	if (n > MAX_MEM - r->mem)
		over_mem(r); /* the copy below */
	char *o = xmalloc(n + 1);
	int prev_alpha = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			free(o);
			fail(&r->e, r->line, "case mapping of non-ASCII text is not supported");
		}
		int up = mode == 1 || (mode == 2 && i == 0) || (mode == 3 && !prev_alpha);
		o[i] = (char)(up ? (c >= 'a' && c <= 'z' ? c - 32 : c) : (c >= 'A' && c <= 'Z' ? c + 32 : c));
		prev_alpha = (c | 32) >= 'a' && (c | 32) <= 'z';
	}
	json_t *res = json_stringn_nocheck(o, n);
	free(o);
	return own(r, res);
}

static int run_test(R *r, const char *name, json_t *v, json_t **args, int nargs);

static json_t *iter_list(R *r, json_t *v)
{
	if (v && json_is_array(v))
		return v;
	json_t *l = own(r, json_array());
	if (!v)
		return l; /* Undefined iterates as empty */
	if (v && json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			charge_elems(r, 1, strlen(k));
			json_array_append_new(l, json_string_nocheck(k));
		}
		return l;
	}
	if (v && json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		for (size_t i = 0; i < n;) {
			size_t e = i + 1;
			while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80)
				e++;
			charge_elems(r, 1, e - i + sizeof(json_t *));
			json_array_append_new(l, json_stringn_nocheck(s + i, e - i));
			i = e;
		}
		return l;
	}
	fail(&r->e, r->line, "'%s' object is not iterable", tname(r, v));
}

static json_t *items_of(R *r, json_t *v)
{
	if (!v || !json_is_object(v))
		fail(&r->e, r->line, "items of a %s", tname(r, v));
	json_t *l = own(r, json_array());
	const char *k;
	json_t *x;
	json_object_foreach(v, k, x)
	{
		charge_elems(r, 3, strlen(k) + 3 * sizeof(json_t *));
		json_t *pair = json_array();
		json_array_append_new(pair, json_string_nocheck(k));
		json_array_append(pair, x);
		json_array_append_new(l, pair);
	}
	return l;
}

static json_t *kwarg(expr *e, json_t **vals, const char *name, int pos)
{
	for (int i = 0; i < e->nargs; i++)
		if (e->kw[i] ? !strcmp(e->kw[i], name) : i == pos)
			return vals[i];
	return NULL;
}
static void check_args(R *r, expr *e, int maxpos, const char **kws, const char *what)
{
	for (int i = 0; i < e->nargs; i++) {
		if (!e->kw[i]) {
			if (i >= maxpos)
				fail(&r->e, r->line, "%s: too many arguments", what);
			continue;
		}
		int ok = 0;
		for (const char **k = kws; k && *k; k++)
			ok |= !strcmp(*k, e->kw[i]);
		if (!ok)
			fail(&r->e, r->line, "%s: keyword argument '%s' is not supported", what, e->kw[i]);
	}
}

/* int(x) of a float, as Jinja2's int filter takes it: NaN gives its
 * default 0 (Python raises ValueError, the filter catches it); infinity and
 * what does not fit 64 bits are errors, never a wrong number */
static long long float_to_int(R *r, double d)
{
	if (isnan(d))
		return 0;
	if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
		fail(&r->e, r->line, "int of %g: integer overflow (beyond 64 bits)", d);
	return (long long)d;
}

/* ASCII digits with single underscores between them (Python's int() and
 * float() syntax); returns the end */
static const char *py_digits(const char *s, const char *end, buf *out)
{
	const char *p = s;
	while (p < end && *p >= '0' && *p <= '9') {
		bput(out, p++, 1);
		if (p + 1 < end && *p == '_' && p[1] >= '0' && p[1] <= '9')
			p++;
	}
	return p;
}

/* "s"|int as Jinja2 does it: int(s), else int(float(s)), else 0 */
static long long str_to_int(R *r, const char *s, size_t n)
{
	work(r, n);
	size_t k;
	while (n && (k = py_space(s, n)))
		s += k, n -= k;
	while (n && (k = py_space_back(s, n)))
		n -= k;
	const char *p = s, *end = s + n;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			fail(&r->e, r->line, "int of a non-ASCII string is not supported");
	buf b = {0};
	bput(&b, "", 0);
	if (p < end && (*p == '+' || *p == '-'))
		bput(&b, p++, 1);
	const char *q = py_digits(p, end, &b);
	long long v = 0;
	if (q > p && q == end) { /* an integer */
		errno = 0;
		v = strtoll(b.s, NULL, 10);
		int big = errno == ERANGE;
		free(b.s);
		if (big)
			fail(&r->e, r->line, "int of a string: integer overflow (beyond 64 bits)");
		return v;
	}
	/* float(s): digits[.digits][e[+-]digits], .digits..., inf, infinity, nan */
	const char *f = q;
	int ok = q > p;
	if (f < end && *f == '.') {
		bput(&b, f++, 1);
		const char *g = py_digits(f, end, &b);
		ok |= g > f;
		f = g;
	}
	if (ok && f < end && (*f == 'e' || *f == 'E')) {
		bput(&b, "e", 1), f++;
		if (f < end && (*f == '+' || *f == '-'))
			bput(&b, f++, 1);
		const char *g = py_digits(f, end, &b);
		ok = g > f;
		f = g;
	}
	double d = 0;
	if (ok && f == end)
		d = strtod(b.s, NULL);
	else {
		size_t l = (size_t)(end - p);
		ok = (l == 3 && !strncasecmp(p, "inf", 3)) || (l == 8 && !strncasecmp(p, "infinity", 8)) ||
		     (l == 3 && !strncasecmp(p, "nan", 3));
		d = !ok ? 0 : (p[0] | 32) == 'n' ? NAN : b.s[0] == '-' ? -INFINITY : INFINITY;
	}
	free(b.s);
	/* int(float(s)) of inf raises OverflowError, which the filter catches */
	return ok && !isinf(d) ? float_to_int(r, d) : 0;
}

static json_t *filter(R *r, expr *e)
{
	json_t *v = eval(r, e->a);
	json_t *a[32];
	for (int i = 0; i < e->nargs; i++)
		a[i] = eval(r, e->args[i]);
	const char *f = e->name;
	if (!strcmp(f, "trim")) {
		check_args(r, e, 1, NULL, f);
		return do_strip(r, str_of(r, v), e->nargs ? a[0] : NULL, 1, 1);
	}
	if (!strcmp(f, "length") || !strcmp(f, "count")) {
		check_args(r, e, 0, NULL, f);
		if (!v)
			return mkint(r, 0);
		if (json_is_string(v))
			return mkint(r, (long long)cp_count(json_string_value(v), json_string_length(v)));
		if (json_is_array(v))
			return mkint(r, (long long)json_array_size(v));
		if (json_is_object(v))
			return mkint(r, (long long)json_object_size(v));
		fail(&r->e, r->line, "object of type '%s' has no len()", tname(r, v));
	}
	if (!strcmp(f, "tojson")) {
		static const char *kws[] = {"indent", NULL};
		check_args(r, e, 1, kws, f);
		json_t *ind = kwarg(e, a, "indent", 0);
		if (ind && !json_is_null(ind) && !json_is_integer(ind))
			fail(&r->e, r->line, "tojson: indent must be an integer");
		int indent = ind && json_is_integer(ind) ? (int)json_integer_value(ind) : -1;
		if (indent > 64)
			fail(&r->e, r->line, "tojson: indent too large");
		buf *b = tmp_open(r);
		dump_json(r, b, v, indent, 0);
		return tmp_str(r, b);
	}
	if (!strcmp(f, "items")) {
		check_args(r, e, 0, NULL, f);
		if (!v)
			return own(r, json_array());
		return items_of(r, v);
	}
	if (!strcmp(f, "join")) {
		check_args(r, e, 1, NULL, f);
		json_t *l = iter_list(r, v);
		json_t *sep = e->nargs ? str_of(r, a[0]) : NULL;
		buf *b = tmp_open(r);
		for (size_t i = 0; i < json_array_size(l); i++) {
			if (i && sep)
				rput(r, b, json_string_value(sep), json_string_length(sep));
			json_t *x = json_array_get(l, i);
			if (!json_is_string(x) && !is_num(x) && !json_is_null(x))
				fail(&r->e, r->line, "join of a %s is not supported", tname(r, x));
			to_str(r, b, x);
		}
		return tmp_str(r, b);
	}
	if (!strcmp(f, "first") || !strcmp(f, "last")) {
		check_args(r, e, 0, NULL, f);
		json_t *l = iter_list(r, v);
		size_t n = json_array_size(l);
		return n ? json_array_get(l, f[0] == 'f' ? 0 : n - 1) : NULL;
	}
	if (!strcmp(f, "lower") || !strcmp(f, "upper") || !strcmp(f, "capitalize") || !strcmp(f, "title")) {
		check_args(r, e, 0, NULL, f);
		int mode = f[0] == 'l' ? 0 : f[0] == 'u' ? 1 : f[0] == 'c' ? 2 : 3;
		return do_case(r, str_of(r, v), mode);
	}
	if (!strcmp(f, "string")) {
		check_args(r, e, 0, NULL, f);
		return str_of(r, v);
	}
	if (!strcmp(f, "list")) {
		check_args(r, e, 0, NULL, f);
		json_t *l = iter_list(r, v);
		work(r, json_array_size(l) * W_ELEM);
		return own(r, json_copy(l));
	}
	if (!strcmp(f, "default") || !strcmp(f, "d")) {
		static const char *kws[] = {"default_value", "boolean", NULL};
		check_args(r, e, 2, kws, f);
		json_t *dv = kwarg(e, a, "default_value", 0), *bo = kwarg(e, a, "boolean", 1);
		if (!dv)
			dv = mkstr(r, "", 0);
		if (bo && truthy(bo))
			return truthy(v) ? v : dv;
		return v ? v : dv;
	}
	if (!strcmp(f, "reject") || !strcmp(f, "select")) {
		if (!e->nargs || e->kw[0] || !json_is_string(a[0]))
			fail(&r->e, r->line, "%s needs a test name", f);
		const char *tn = json_string_value(a[0]);
		if (!in_list(TESTS, tn))
			fail(&r->e, r->line, "test '%s' is not supported", tn);
		for (int i = 1; i < e->nargs; i++)
			if (e->kw[i])
				fail(&r->e, r->line, "%s: keyword arguments are not supported", f);
		json_t *l = iter_list(r, v), *res = own(r, json_array());
		for (size_t i = 0; i < json_array_size(l); i++) {
			json_t *x = json_array_get(l, i);
			int t = run_test(r, tn, x, a + 1, e->nargs - 1);
			if (t == (f[0] == 's'))
				charge(r, sizeof(json_t *)), json_array_append(res, x);
		}
		return res;
	}
	if (!strcmp(f, "replace")) {
		check_args(r, e, 2, NULL, f);
		return do_replace(r, str_of(r, v), e->nargs > 0 ? a[0] : NULL, e->nargs > 1 ? a[1] : NULL);
	}
	if (!strcmp(f, "int")) {
		check_args(r, e, 0, NULL, f);
		if (is_intlike(v))
			return mkint(r, ival(v));
		if (is_num(v))
			return mkint(r, float_to_int(r, num(v)));
		if (v && json_is_string(v))
			return mkint(r, str_to_int(r, json_string_value(v), json_string_length(v)));
		return mkint(r, 0);
	}
	if (!strcmp(f, "float")) {
		check_args(r, e, 0, NULL, f);
		if (is_num(v))
			return mkreal(r, num(v));
		fail(&r->e, r->line, "float of a %s is not supported", tname(r, v));
	}
	if (!strcmp(f, "abs")) {
		check_args(r, e, 0, NULL, f);
		if (is_intlike(v)) {
			if (ival(v) == LLONG_MIN)
				fail(&r->e, r->line, "integer overflow (beyond 64 bits)");
			return mkint(r, llabs(ival(v)));
		}
		if (is_num(v))
			return mkreal(r, fabs(num(v)));
		fail(&r->e, r->line, "abs of a %s", tname(r, v));
	}
	if (!strcmp(f, "round")) {
		check_args(r, e, 0, NULL, f);
		if (!is_num(v))
			fail(&r->e, r->line, "round of a %s", tname(r, v));
		/* Jinja2's round() is Python's round(x, 0): an int stays an int, a
		 * float rounds half to even (rint in the default rounding mode) */
		if (is_intlike(v))
			return mkint(r, ival(v));
		return mkreal(r, rint(num(v)));
	}
	fail(&r->e, r->line, "filter '%s' is not supported", f);
}

static int run_test(R *r, const char *t, json_t *v, json_t **args, int nargs)
{
	int want = !strcmp(t, "equalto") || !strcmp(t, "eq") || !strcmp(t, "==") || !strcmp(t, "ne") ||
				   !strcmp(t, "!=") || !strcmp(t, "divisibleby") || !strcmp(t, "in")
			   ? 1
			   : 0;
	if (nargs != want)
		fail(&r->e, r->line, "test '%s' takes %d argument(s)", t, want);
	if (!strcmp(t, "defined"))
		return v != NULL;
	if (!strcmp(t, "undefined"))
		return v == NULL;
	if (!strcmp(t, "none"))
		return v && json_is_null(v);
	if (!strcmp(t, "string"))
		return v && json_is_string(v);
	if (!strcmp(t, "number"))
		return v && (json_is_integer(v) || json_is_real(v) || json_is_boolean(v));
	if (!strcmp(t, "integer"))
		return v && json_is_integer(v);
	if (!strcmp(t, "float"))
		return v && json_is_real(v);
	if (!strcmp(t, "boolean"))
		return v && json_is_boolean(v);
	if (!strcmp(t, "true"))
		return v && json_is_true(v);
	if (!strcmp(t, "false"))
		return v && json_is_false(v);
	if (!strcmp(t, "mapping"))
		return v && json_is_object(v) && !is_ns(r, v);
	/* Jinja2's Undefined iterates as empty: iterable and a sequence */
	if (!strcmp(t, "iterable"))
		return !v || json_is_array(v) || json_is_string(v) || (json_is_object(v) && !is_ns(r, v));
	if (!strcmp(t, "sequence"))
		return !v || json_is_array(v) || json_is_string(v) || (json_is_object(v) && !is_ns(r, v));
	if (!strcmp(t, "equalto") || !strcmp(t, "eq") || !strcmp(t, "=="))
		return eq(r, v, args[0], 0);
	if (!strcmp(t, "ne") || !strcmp(t, "!="))
		return !eq(r, v, args[0], 0);
	if (!strcmp(t, "odd") || !strcmp(t, "even")) {
		if (!is_intlike(v))
			fail(&r->e, r->line, "test '%s' of a %s", t, tname(r, v));
		return (int)(ival(v) & 1) == (t[0] == 'o');
	}
	if (!strcmp(t, "divisibleby")) {
		if (!is_intlike(v) || !is_intlike(args[0]) || !ival(args[0]))
			fail(&r->e, r->line, "test 'divisibleby' needs integers");
		return ival(args[0]) == -1 || ival(v) % ival(args[0]) == 0;
	}
	if (!strcmp(t, "in")) {
		json_t *c = args[0];
		if (!c)
			return 0; /* Undefined contains nothing */
		if (json_is_string(c)) {
			if (!v || !json_is_string(v))
				fail(&r->e, r->line, "'in <string>' requires string as left operand");
			work(r, json_string_length(c) + json_string_length(v));
			return memmem(json_string_value(c), json_string_length(c), json_string_value(v),
				      json_string_length(v)) != NULL;
		}
		if (json_is_array(c)) {
			for (size_t i = 0; i < json_array_size(c); i++)
				if (eq(r, v, json_array_get(c, i), 0))
					return 1;
			return 0;
		}
		if (json_is_object(c)) {
			if (v && (json_is_array(v) || json_is_object(v)))
				fail(&r->e, r->line, "unhashable type: '%s'", tname(r, v));
			return v && json_is_string(v) && json_object_get(c, json_string_value(v)) != NULL;
		}
		fail(&r->e, r->line, "argument of type '%s' is not iterable", tname(r, c));
	}
	fail(&r->e, r->line, "test '%s' is not supported", t);
}

static json_t *call(R *r, expr *e)
{
	json_t *a[32];
	expr *fn = e->a;
	if (fn->k == E_NAME && !lookup(r, fn->name)) {
		const char *n = fn->name;
		for (int i = 0; i < e->nargs; i++)
			a[i] = eval(r, e->args[i]);
		if (!strcmp(n, "raise_exception")) {
			buf *b = tmp_open(r);
			if (e->nargs)
				to_str(r, b, a[0]);
			snprintf(r->e.err, r->e.errlen, "%s", b->s);
			r->e.raised = 1;
			longjmp(r->e.jb, 1);
		}
		if (!strcmp(n, "strftime_now")) {
			/* transformers: datetime.now().strftime(format), the local time */
			if (e->nargs != 1 || e->kw[0] || !a[0] || !json_is_string(a[0]))
				fail(&r->e, r->line, "strftime_now() takes one string argument");
			const char *fmt = json_string_value(a[0]);
			if (json_string_length(a[0]) > 256 || strlen(fmt) != json_string_length(a[0]))
				fail(&r->e, r->line, "strftime_now(): format too long or with a NUL");
			time_t now = time(NULL);
			struct tm tm;
			if (!localtime_r(&now, &tm))
				fail(&r->e, r->line, "strftime_now(): no local time");
			char out[16384]; /* 256 directives of at most ~60 bytes */
			size_t k = *fmt ? strftime(out, sizeof out, fmt, &tm) : 0;
			json_t *v = json_stringn(out, k);
			if (!v)
				fail(&r->e, r->line, "strftime_now(): the date is not UTF-8");
			return own(r, v);
		}
		if (!strcmp(n, "namespace")) {
			json_t *ns = own(r, json_object());
			for (int i = 0; i < e->nargs; i++) {
				if (!e->kw[i])
					fail(&r->e, r->line, "namespace(): only keyword arguments are supported");
				if (!a[i])
					fail(&r->e, r->line, "namespace(): undefined value for '%s' (%s)", e->kw[i],
					     tname(r, a[i]));
				charge_elems(r, 1, strlen(e->kw[i]));
				json_object_set(ns, e->kw[i], a[i]);
			}
			json_array_append(r->namespaces, ns);
			return ns;
		}
		if (!strcmp(n, "range")) {
			long long st = 0, en, step = 1;
			for (int i = 0; i < e->nargs; i++)
				if (e->kw[i] || !is_intlike(a[i]))
					fail(&r->e, r->line, "range(): integer arguments only");
			if (e->nargs == 1)
				en = ival(a[0]);
			else if (e->nargs == 2 || e->nargs == 3)
				st = ival(a[0]), en = ival(a[1]), step = e->nargs == 3 ? ival(a[2]) : 1;
			else
				fail(&r->e, r->line, "range(): 1 to 3 arguments");
			if (!step)
				fail(&r->e, r->line, "range(): step must not be zero");
			json_t *l = own(r, json_array());
			for (long long i = st; step > 0 ? i < en : i > en;) {
				if (json_array_size(l) > 1000000)
					fail(&r->e, r->line, "range(): too long");
				charge_elems(r, 1, sizeof(json_t *));
				json_array_append_new(l, json_integer(i));
				if (__builtin_add_overflow(i, step, &i))
					break;
			}
			return l;
		}
		fail(&r->e, r->line, "function '%s' is not supported", n);
	}
	if (fn->k != E_ATTR)
		fail(&r->e, r->line, "only methods and namespace/raise_exception/range can be called");
	json_t *o = eval(r, fn->a);
	const char *m = fn->name;
	for (int i = 0; i < e->nargs; i++) {
		if (e->kw[i])
			fail(&r->e, r->line, "%s(): keyword arguments are not supported", m);
		a[i] = eval(r, e->args[i]);
	}
	int n = e->nargs;
#define ARGS(lo, hi)                                                                                                   \
	if (n < (lo) || n > (hi))                                                                                      \
	fail(&r->e, r->line, "%s() takes %d to %d arguments", m, lo, hi)
	if (o && json_is_string(o)) {
		if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
			ARGS(0, 1);
			return do_strip(r, o, n ? a[0] : NULL, m[0] != 'r', m[0] != 'l');
		}
		if (!strcmp(m, "split")) {
			ARGS(0, 2);
			return do_split(r, o, n > 0 ? a[0] : NULL, n > 1 ? a[1] : NULL);
		}
		if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
			ARGS(1, 1);
			if (!a[0] || !json_is_string(a[0]))
				fail(&r->e, r->line, "%s(): a string argument is needed", m);
			size_t ln = json_string_length(o), pn = json_string_length(a[0]);
			if (pn > ln)
				return mkbool(0);
			const char *s = json_string_value(o) + (m[0] == 's' ? 0 : ln - pn);
			return mkbool(!memcmp(s, json_string_value(a[0]), pn));
		}
		if (!strcmp(m, "lower") || !strcmp(m, "upper") || !strcmp(m, "capitalize") || !strcmp(m, "title")) {
			ARGS(0, 0);
			return do_case(r, o, m[0] == 'l' ? 0 : m[0] == 'u' ? 1 : m[0] == 'c' ? 2 : 3);
		}
		if (!strcmp(m, "replace")) {
			ARGS(2, 2);
			return do_replace(r, o, a[0], a[1]);
		}
	} else if (o && json_is_object(o) && !is_ns(r, o)) {
		if (!strcmp(m, "items")) {
			ARGS(0, 0);
			return items_of(r, o);
		}
		if (!strcmp(m, "keys")) {
			ARGS(0, 0);
			return iter_list(r, o);
		}
		if (!strcmp(m, "values")) {
			ARGS(0, 0);
			json_t *l = own(r, json_array());
			const char *k;
			json_t *x;
			json_object_foreach(o, k, x)
			{
				charge_elems(r, 1, 0);
				json_array_append(l, x);
			}
			return l;
		}
		if (!strcmp(m, "get")) {
			ARGS(1, 2);
			json_t *x = a[0] && json_is_string(a[0]) ? json_object_get(o, json_string_value(a[0])) : NULL;
			return x ? x : n > 1 ? a[1] : json_null();
		}
	}
#undef ARGS
	fail(&r->e, r->line, "method '%s' of a %s is not supported", m, tname(r, o));
}

/* Python's float divmod (floatobject.c): floor division and modulo with the
 * sign of the divisor, exact where floor(p / q) is not */
static void py_divmod(double vx, double wx, double *fdiv, double *fmod_)
{
	double mod = fmod(vx, wx), div = (vx - mod) / wx;
	if (mod) {
		if ((wx < 0) != (mod < 0))
			mod += wx, div -= 1.0;
	} else
		mod = copysign(0.0, wx);
	double fl;
	if (div) {
		fl = floor(div);
		if (div - fl > 0.5)
			fl += 1.0;
	} else
		fl = copysign(0.0, vx / wx);
	*fdiv = fl, *fmod_ = mod;
}

/* b ** e for e >= 0, or 0 when it does not fit 64 bits */
static int ipow(long long b, long long e, long long *res)
{
	long long v = 1;
	while (e) {
		if ((e & 1) && __builtin_mul_overflow(v, b, &v))
			return 0;
		e >>= 1;
		/* |b| > 1 squared only while bits remain: the result needs it */
		if (e && __builtin_mul_overflow(b, b, &b))
			return 0;
	}
	*res = v;
	return 1;
}

static json_t *binop(R *r, int op, json_t *x, json_t *y)
{
	if (op == OP_EQ)
		return mkbool(eq(r, x, y, 0));
	if (op == OP_NE)
		return mkbool(!eq(r, x, y, 0));
	if (op == OP_IN || op == OP_NOTIN) {
		json_t *args[1] = {y};
		int in = run_test(r, "in", x, args, 1);
		return mkbool(op == OP_IN ? in : !in);
	}
	if (!x || !y)
		fail(&r->e, r->line, "an undefined value used in an operation (%s)", tname(r, NULL));
	if (op == OP_ADD) {
		if (json_is_string(x) && json_is_string(y)) {
			buf *b = tmp_open(r);
			rput(r, b, json_string_value(x), json_string_length(x));
			rput(r, b, json_string_value(y), json_string_length(y));
			return tmp_str(r, b);
		}
		if (json_is_array(x) && json_is_array(y)) {
			charge_elems(r, json_array_size(x) + json_array_size(y), 0);
			json_t *l = own(r, json_copy(x));
			json_array_extend(l, y);
			return l;
		}
	}
	if (op == OP_MUL && ((json_is_string(x) && is_intlike(y)) || (is_intlike(x) && json_is_string(y)))) {
		json_t *s = json_is_string(x) ? x : y;
		long long k = json_is_string(x) ? ival(y) : ival(x);
		size_t len = json_string_length(s);
		/* "" * k is "" at once, as in Python; otherwise the size is
		 * checked before anything is built */
		if (k <= 0 || !len)
			return mkstr(r, "", 0);
		if ((unsigned long long)k > (MAX_MEM - r->mem) / len)
			over_mem(r);
		/* built by doubling: a few memcpy, not k appends (100M appends of
		 * "ab" took seconds, past the fuzzer's per-input limit) */
		const size_t total = (size_t)k * len;
		work(r, total);
		buf *b = tmp_open(r);
		rput(r, b, json_string_value(s), len);
		if (total + 1 > b->cap)
			xgrow((void **)&b->s, &b->cap, total + 1, 1);
		while (b->n < total) {
			size_t c = b->n < total - b->n ? b->n : total - b->n;
			memcpy(b->s + b->n, b->s, c);
			b->n += c;
		}
		b->s[b->n] = 0;
		return tmp_str(r, b);
	}
	if (op >= OP_LT && op <= OP_GE) {
		int c;
		if (is_num(x) && is_num(y)) {
			c = cmp_num(x, y);
			if (c == 2)
				return mkbool(0); /* NaN: every order comparison is false */
		} else if (json_is_string(x) && json_is_string(y)) {
			size_t lx = json_string_length(x), ly = json_string_length(y);
			work(r, lx < ly ? lx : ly);
			c = memcmp(json_string_value(x), json_string_value(y), lx < ly ? lx : ly);
			if (!c)
				c = lx < ly ? -1 : lx > ly;
		} else
			fail(&r->e, r->line, "comparison of %s and %s is not supported", tname(r, x), tname(r, y));
		return mkbool(op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0);
	}
	if (!is_num(x) || !is_num(y))
		fail(&r->e, r->line, "unsupported operand types for an arithmetic operator: %s and %s", tname(r, x),
		     tname(r, y));
	int ints = is_intlike(x) && is_intlike(y);
	if (ints && op != OP_DIV) {
		long long p = ival(x), q = ival(y), v;
		/* Python's integers are unbounded; past 64 bits we refuse, never wrap */
		switch (op) {
		case OP_ADD:
			if (__builtin_add_overflow(p, q, &v))
				fail(&r->e, r->line, "integer overflow (beyond 64 bits)");
			return mkint(r, v);
		case OP_SUB:
			if (__builtin_sub_overflow(p, q, &v))
				fail(&r->e, r->line, "integer overflow (beyond 64 bits)");
			return mkint(r, v);
		case OP_MUL:
			if (__builtin_mul_overflow(p, q, &v))
				fail(&r->e, r->line, "integer overflow (beyond 64 bits)");
			return mkint(r, v);
		case OP_FDIV:
		case OP_MOD: {
			if (!q)
				fail(&r->e, r->line, "division by zero");
			if (q == -1 && p == LLONG_MIN)
				fail(&r->e, r->line, "integer overflow (beyond 64 bits)");
			long long d = p / q, m = p % q;
			if (m && ((m < 0) != (q < 0)))
				d--, m += q; /* Python floors */
			return mkint(r, op == OP_FDIV ? d : m);
		}
		case OP_POW:
			if (q >= 0) {
				if (!ipow(p, q, &v))
					fail(&r->e, r->line, "integer overflow (beyond 64 bits): %lld ** %lld", p, q);
				return mkint(r, v);
			}
			if (!p)
				fail(&r->e, r->line, "0.0 cannot be raised to a negative power");
			break; /* a float, as in Python */
		}
	}
	double p = num(x), q = num(y), d, m;
	switch (op) {
	case OP_ADD: return mkreal(r, p + q);
	case OP_SUB: return mkreal(r, p - q);
	case OP_MUL: return mkreal(r, p * q);
	case OP_DIV:
		if (!q)
			fail(&r->e, r->line, "division by zero");
		return mkreal(r, p / q);
	case OP_FDIV:
	case OP_MOD:
		if (!q)
			fail(&r->e, r->line, "division by zero");
		py_divmod(p, q, &d, &m);
		return mkreal(r, op == OP_FDIV ? d : m);
	case OP_POW:
		if (!p && q < 0)
			fail(&r->e, r->line, "0.0 cannot be raised to a negative power");
		/* Python gives a complex number there: not supported */
		if (p < 0 && q != floor(q))
			fail(&r->e, r->line, "a negative number to a fractional power is not supported");
		return mkreal(r, pow(p, q));
	}
	fail(&r->e, r->line, "unsupported operator");
}

/* the functions transformers' environment defines (dict() aside) */
static int is_builtin_fn(const char *name)
{
	static const char *fns[] = {"raise_exception", "namespace", "range", "strftime_now", NULL};
	return in_list(fns, name);
}

/* an undefined value was made by e: later errors about it name it */
static json_t *undef_from(R *r, expr *e, json_t *v)
{
	if (v)
		return v;
	if (e->k == E_NAME)
		snprintf(r->undef, sizeof r->undef, "'%.60s' is undefined", e->name);
	else if (e->k == E_ATTR && e->a->k == E_NAME)
		snprintf(r->undef, sizeof r->undef, "'%.40s.%.40s' is undefined", e->a->name, e->name);
	else if (e->k == E_ATTR)
		snprintf(r->undef, sizeof r->undef, "attribute '%.60s' is undefined", e->name);
	else if (e->k == E_ITEM && e->a->k == E_NAME)
		snprintf(r->undef, sizeof r->undef, "an item of '%.60s' is undefined", e->a->name);
	else
		r->undef[0] = 0;
	return NULL;
}

static json_t *eval(R *r, expr *e)
{
	r->line = e->line;
	switch (e->k) {
	case E_LIT: return e->lit;
	case E_NAME: {
		json_t *v = lookup(r, e->name);
		if (!v && is_builtin_fn(e->name))
			fail(&r->e, e->line,
			     "the function '%s' used as a value is not supported (only called, or tested with 'is defined')",
			     e->name);
		return undef_from(r, e, v);
	}
	case E_ATTR: {
		json_t *o = eval(r, e->a);
		r->line = e->line;
		return undef_from(r, e, get_attr(r, o, e->name));
	}
	case E_ITEM: {
		json_t *o = eval(r, e->a), *k = eval(r, e->b);
		r->line = e->line;
		return undef_from(r, e, get_item(r, o, k));
	}
	case E_SLICE: {
		json_t *o = eval(r, e->a);
		json_t *x[3];
		for (int i = 0; i < 3; i++)
			x[i] = e->args[i] ? eval(r, e->args[i]) : NULL;
		r->line = e->line;
		return do_slice(r, o, x[0], x[1], x[2]);
	}
	case E_CALL:
	case E_FILTER: {
		json_t *v = e->k == E_CALL ? call(r, e) : filter(r, e);
		if (!v)
			r->undef[0] = 0; /* first of an empty list...: nothing to name */
		return v;
	}
	case E_TEST: {
		/* strftime_now is defined (Llama 3.2 asks): a function is */
		if (e->a->k == E_NAME && (!strcmp(e->name, "defined") || !strcmp(e->name, "undefined")) &&
		    is_builtin_fn(e->a->name) && !lookup(r, e->a->name))
			return mkbool((e->name[0] == 'd') != e->negate);
		json_t *v = eval(r, e->a);
		json_t *a[32];
		for (int i = 0; i < e->nargs; i++) {
			if (e->kw && e->kw[i])
				fail(&r->e, e->line, "test arguments must be positional");
			a[i] = eval(r, e->args[i]);
		}
		r->line = e->line;
		int t = run_test(r, e->name, v, a, e->nargs);
		return mkbool(e->negate ? !t : t);
	}
	case E_BIN: {
		json_t *x = eval(r, e->a), *y = eval(r, e->b);
		r->line = e->line;
		return binop(r, e->op, x, y);
	}
	case E_CONCAT: {
		json_t *x = eval(r, e->a), *y = eval(r, e->b);
		r->line = e->line;
		buf *b = tmp_open(r);
		to_str(r, b, x);
		to_str(r, b, y);
		return tmp_str(r, b);
	}
	case E_NOT: return mkbool(!truthy(eval(r, e->a)));
	case E_NEG:
	case E_POS: {
		json_t *v = eval(r, e->a);
		if (!is_num(v))
			fail(&r->e, e->line, "bad operand type for unary %c: %s", e->k == E_NEG ? '-' : '+',
			     tname(r, v));
		if (e->k == E_POS)
			return v;
		if (is_intlike(v) && ival(v) == LLONG_MIN)
			fail(&r->e, e->line, "integer overflow (beyond 64 bits)");
		return is_intlike(v) ? mkint(r, -ival(v)) : mkreal(r, -num(v));
	}
	case E_AND: {
		json_t *x = eval(r, e->a);
		return truthy(x) ? eval(r, e->b) : x;
	}
	case E_OR: {
		json_t *x = eval(r, e->a);
		return truthy(x) ? x : eval(r, e->b);
	}
	case E_COND: return truthy(eval(r, e->b)) ? eval(r, e->a) : e->c ? eval(r, e->c) : NULL;
	case E_LIST: {
		json_t *l = own(r, json_array());
		for (int i = 0; i < e->nargs; i++) {
			json_t *v = eval(r, e->args[i]);
			if (!v)
				fail(&r->e, e->line, "an undefined value in a list literal is not supported (%s)",
				     tname(r, v));
			charge(r, sizeof(json_t *));
			json_array_append(l, v);
		}
		return l;
	}
	case E_DICT: {
		json_t *d = own(r, json_object());
		for (int i = 0; i < e->nargs; i += 2) {
			json_t *k = eval(r, e->args[i]), *v = eval(r, e->args[i + 1]);
			if (!k || !json_is_string(k))
				fail(&r->e, e->line, "dict literal keys must be strings");
			if (!v)
				fail(&r->e, e->line, "an undefined value in a dict literal is not supported (%s)",
				     tname(r, v));
			charge_elems(r, 1, json_string_length(k));
			json_object_set(d, json_string_value(k), v);
		}
		return d;
	}
	}
	fail(&r->e, e->line, "bad expression");
}

static void push_frame(R *r)
{
	if (r->nframes == r->capframes)
		xgrow((void **)&r->frames, &r->capframes, r->nframes + 1, sizeof(json_t *));
	r->frames[r->nframes++] = own(r, json_object());
}

static void exec_body(R *r, body *b);

static void set_var(R *r, const char *name, json_t *v)
{
	json_t *f = r->frames[r->nframes - 1];
	if (v)
		json_object_set(f, name, v);
	else
		json_object_del(f, name); /* Undefined: the name is unset here */
}

/* A rendering is one record's text: the JSONL reader already refuses lines
 * over 16 MiB, so 64 MiB of output is only a runaway loop. */
#define MAX_OUTPUT ((size_t)1 << 26)

static void exec_node(R *r, node *n)
{
	r->line = n->line;
	work(r, W_STMT);
	if (r->out.n > MAX_OUTPUT)
		fail(&r->e, n->line, "the rendering is too large (over 64 MiB)");
	switch (n->k) {
	case N_TEXT: rput(r, &r->out, n->text, n->len); return;
	case N_OUT: {
		json_t *v = eval(r, n->e);
		r->line = n->line;
		to_str(r, &r->out, v);
		return;
	}
	case N_IF: exec_body(r, truthy(eval(r, n->cond)) ? &n->then : &n->els); return;
	case N_SET: {
		json_t *v = eval(r, n->e);
		r->line = n->line;
		if (n->attr) {
			json_t *ns = lookup(r, n->target[0]);
			if (!ns || !is_ns(r, ns))
				fail(&r->e, n->line, "cannot assign attribute on a non-namespace object");
			if (!v)
				fail(&r->e, n->line, "assigning an undefined value to a namespace attribute");
			json_object_set(ns, n->attr, v);
		} else if (!strcmp(n->target[0], "loop")) {
			fail(&r->e, n->line, "cannot assign to 'loop'");
		} else
			set_var(r, n->target[0], v);
		return;
	}
	case N_FOR: {
		json_t *it = eval(r, n->e);
		r->line = n->line;
		json_t *l = iter_list(r, it);
		push_frame(r);
		/* loop filter: decided before the loop runs, so loop.length and
		 * loop.last count the kept items only */
		if (n->cond) {
			json_t *kept = own(r, json_array());
			charge(r, json_array_size(l) * sizeof(json_t *));
			for (size_t i = 0; i < json_array_size(l); i++) {
				json_t *x = json_array_get(l, i);
				if (n->ntarget == 1)
					set_var(r, n->target[0], x);
				else {
					if (!json_is_array(x) || json_array_size(x) != 2)
						fail(&r->e, n->line, "cannot unpack a loop item into 2 variables");
					set_var(r, n->target[0], json_array_get(x, 0));
					set_var(r, n->target[1], json_array_get(x, 1));
				}
				work(r, W_STMT);
				if (truthy(eval(r, n->cond)))
					json_array_append(kept, x);
			}
			l = kept;
		}
		size_t len = json_array_size(l);
		for (size_t i = 0; i < len; i++) {
			json_t *x = json_array_get(l, i);
			/* each iteration starts afresh: what one set is gone in the next */
			json_object_clear(r->frames[r->nframes - 1]);
			json_t *lo = own(r, json_object());
			r->extra += 12; /* its fields below count against MAX_OWNED */
			charge(r, 12 * V_SIZE);
			json_object_set_new(lo, "depth", json_integer(1));
			json_object_set_new(lo, "depth0", json_integer(0));
			json_object_set_new(lo, "index0", json_integer((json_int_t)i));
			json_object_set_new(lo, "index", json_integer((json_int_t)i + 1));
			json_object_set_new(lo, "revindex0", json_integer((json_int_t)(len - i - 1)));
			json_object_set_new(lo, "revindex", json_integer((json_int_t)(len - i)));
			json_object_set_new(lo, "first", mkbool(i == 0));
			json_object_set_new(lo, "last", mkbool(i + 1 == len));
			json_object_set_new(lo, "length", json_integer((json_int_t)len));
			if (i)
				json_object_set(lo, "previtem", json_array_get(l, i - 1));
			if (i + 1 < len)
				json_object_set(lo, "nextitem", json_array_get(l, i + 1));
			set_var(r, "loop", lo);
			if (n->ntarget == 1)
				set_var(r, n->target[0], x);
			else {
				if (!json_is_array(x) || json_array_size(x) != 2)
					fail(&r->e, n->line, "cannot unpack a loop item into 2 variables");
				set_var(r, n->target[0], json_array_get(x, 0));
				set_var(r, n->target[1], json_array_get(x, 1));
			}
			exec_body(r, &n->then);
			if (r->loopctl == 1) {
				r->loopctl = 0;
				break;
			}
			r->loopctl = 0;
		}
		r->nframes--;
		if (!len)
			exec_body(r, &n->els);
		return;
	}
	case N_BREAK:
	case N_CONTINUE:
		if (r->nframes < 3)
			fail(&r->e, n->line, "'%s' outside a loop", n->k == N_BREAK ? "break" : "continue");
		r->loopctl = n->k == N_BREAK ? 1 : 2;
		return;
	}
}

static void exec_body(R *r, body *b)
{
	for (size_t i = 0; i < b->n && !r->loopctl; i++)
		exec_node(r, b->v[i]);
}

int jinja_render(const jinja *t, json_t *vars, char **out, size_t *outlen, char *err, size_t errlen)
{
	R r = {.e = {.err = err, .errlen = errlen}};
	volatile int rc = 0;
	*out = NULL;
	*outlen = 0;
	if (setjmp(r.e.jb)) {
		rc = r.e.raised ? JINJA_RAISED : -1;
		free(r.out.s);
		r.out.s = NULL;
		clean_msg(err);
		goto done;
	}
	r.namespaces = own(&r, json_array());
	push_frame(&r);
	if (vars)
		json_object_update(r.frames[0], vars);
	push_frame(&r); /* the template's own top-level variables */
	bput(&r.out, "", 0);
	exec_body(&r, (body *)&t->root);
	*out = r.out.s;
	*outlen = r.out.n;
done:
	for (int i = 0; i < 4; i++)
		free(r.tmp[i].s);
	for (size_t i = r.nowned; i-- > 0;)
		json_decref(r.owned[i]);
	free(r.owned);
	free(r.frames);
	return rc;
}
