/* cli.c — option tables to getopt_long, --help and old spellings (cli.h). */
#define _GNU_SOURCE
#include "base/cli.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* getopt_long's val for table entry i is CLI_VAL0 + i (so an old spelling
 * is told from the option it stands for); -h and -V get their own. */
enum { CLI_VAL0 = 0x10000, CLI_HELP = CLI_VAL0 - 1, CLI_VERSION = CLI_VAL0 - 2 };
enum { HELP_WIDTH = 79, LEFT_MAX = 28 };

static int is_end(const cli_opt *o) { return !o->key && !o->shrt && !o->lng && !o->help && !o->alias_of && !o->gone; }
static int is_section(const cli_opt *o) { return !o->key && !o->shrt && !o->lng && o->help && !o->gone; }

static int count(const cli_opt *opts)
{
	int n = 0;
	while (!is_end(&opts[n]))
		n++;
	return n;
}

/* The option an old spelling stands for (NULL when none has that name). */
static const cli_opt *target(const cli_opt *opts, const char *lng)
{
	for (const cli_opt *o = opts; !is_end(o); o++)
		if (o->lng && !o->alias_of && !o->gone && !strcmp(o->lng, lng))
			return o;
	return NULL;
}

static int has_value(const cli_opt *o) { return o->type == CLI_INT || o->type == CLI_DOUBLE || o->type == CLI_ENUM; }

/* A typed row that cannot work is a bug in the program's table. */
static void check_row(const cli_spec *s, const cli_opt *o)
{
	const char *bad = NULL;
	const char *name = o->lng ? o->lng : "?";
	switch (o->type) {
	case CLI_KEY: return;
	case CLI_INT:
		if (o->size != sizeof(int) && o->size != sizeof(long))
			bad = "the destination is no int or long";
		else if (o->ilo > o->ihi)
			bad = "an empty range";
		break;
	case CLI_DOUBLE:
		if (o->size != sizeof(double))
			bad = "the destination is no double";
		else if (!(o->lo <= o->hi))
			bad = "an empty range";
		break;
	case CLI_STRING:
		if (o->size != sizeof(char *))
			bad = "the destination is no string";
		break;
	case CLI_SET:
		if (o->size != sizeof(int))
			bad = "the destination is no int";
		else if (o->arg)
			bad = "a flag with an argument";
		break;
	case CLI_ENUM:
		if (o->size != sizeof(int))
			bad = "the destination is no int or enum";
		else if (!o->names || !o->names[0])
			bad = "no names";
		break;
	case CLI_CALLBACK:
		if (!o->cb)
			bad = "no function";
		break;
	default: bad = "an unknown type"; break;
	}
	if (!bad && o->type != CLI_CALLBACK && !o->dest)
		bad = "no destination";
	if (!bad && o->key)
		bad = "a key (a typed row is not returned by cli_next)";
	if (!bad && o->arg == NULL && o->type != CLI_SET && o->type != CLI_CALLBACK)
		bad = "no argument name";
	const char *d = o->help ? strstr(o->help, "default ") : NULL;
	if (!bad && has_value(o) && d && (d[8] == '-' || (d[8] >= '0' && d[8] <= '9')))
		bad = "its default in the help text (it is shown from the destination)";
	if (bad)
		BUG("%s: option table: --%s has %s", s->prog, name, bad);
}

void cli_start(cli *c, const cli_spec *s, int argc, char **argv)
{
	memset(c, 0, sizeof *c);
	c->spec = s;
	c->argc = argc;
	c->argv = argv;
	c->n = count(s->opts);
	if (c->n > CLI_MAX_OPTS)
		BUG("%s: option table: %d entries, more than %d", s->prog, c->n, CLI_MAX_OPTS);
	c->init = xcalloc((size_t)c->n + 1, sizeof *c->init);
	for (int i = 0; i < c->n; i++) {
		const cli_opt *o = &s->opts[i];
		check_row(s, o);
		if (o->type != CLI_KEY && o->type != CLI_CALLBACK)
			memcpy(&c->init[i], o->dest, o->size);
	}
	struct option *lo = xcalloc((size_t)c->n + 3, sizeof *lo);
	char *so = xmalloc(2 * (size_t)c->n + 4);
	size_t ns = 0, nl = 0;
	so[ns++] = ':'; /* a missing argument returns ':', told from an unknown option */
	for (int i = 0; i < c->n; i++) {
		const cli_opt *o = &s->opts[i];
		if (is_section(o))
			continue;
		const cli_opt *t = o;
		if (o->alias_of && !(t = target(s->opts, o->alias_of)))
			BUG("%s: option table: '%s' is an old spelling of '%s', which is not in the table", s->prog,
			    o->lng ? o->lng : "?", o->alias_of);
		if (o->shrt == 'h' || o->shrt == 'V' ||
		    (o->lng && (!strcmp(o->lng, "help") || !strcmp(o->lng, "version"))))
			BUG("%s: option table: -h/--help and -V/--version are cli.c's", s->prog);
		const int has_arg = t->arg && !o->gone;
		if (o->lng)
			lo[nl++] =
				(struct option){o->lng, has_arg ? required_argument : no_argument, NULL, CLI_VAL0 + i};
		if (o->shrt) {
			so[ns++] = o->shrt;
			if (has_arg)
				so[ns++] = ':';
		}
	}
	lo[nl++] = (struct option){"help", no_argument, NULL, CLI_HELP};
	lo[nl++] = (struct option){"version", no_argument, NULL, CLI_VERSION};
	so[ns++] = 'h';
	so[ns++] = 'V';
	so[ns] = 0;
	c->longopts = lo;
	c->shortopts = so;
	c->warned = xcalloc((size_t)c->n + 1, 1);
	opterr = 0; /* the one message is ours */
	optind = 0; /* glibc: start over (a second table in one process) */
}

static void cli_free(cli *c)
{
	free(c->longopts);
	free(c->shortopts);
	free(c->warned);
	free(c->init);
	c->longopts = c->shortopts = NULL;
	c->warned = NULL;
	c->init = NULL;
}

/* "a, b or c" */
static void name_list(const char *const *names, char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = 0;
	for (int i = 0; names[i] && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s%s", i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
}

/* Store the value of typed row o given as typed ("--lr") with arg. */
static void store(const cli_opt *o, const char *typed, const char *arg)
{
	switch (o->type) {
	case CLI_INT: {
		long v = parse_long(typed, arg, o->ilo, o->ihi);
		if (o->size == sizeof(int)) {
			int i = (int)v;
			memcpy(o->dest, &i, sizeof i);
		} else {
			memcpy(o->dest, &v, sizeof v);
		}
		break;
	}
	case CLI_DOUBLE: *(double *)o->dest = parse_double(typed, arg, o->lo, o->hi); break;
	case CLI_STRING: *(const char **)o->dest = arg; break;
	case CLI_SET: *(int *)o->dest = (int)o->ilo; break;
	case CLI_ENUM: {
		int k = 0;
		while (o->names[k] && strcmp(o->names[k], arg))
			k++;
		if (!o->names[k]) {
			char list[512];
			name_list(o->names, list, sizeof list);
			die_usage("%s: expected %s, got '%s'", typed, list, arg);
		}
		*(int *)o->dest = k;
		break;
	}
	case CLI_CALLBACK: o->cb(o->dest, arg); break;
	default: break;
	}
}

/* "--name" as typed, without "=value". */
static LBDPO_NORETURN void die_long(const char *fmt, const char *typed)
{
	size_t n = strcspn(typed, "=");
	char buf[256];
	snprintf(buf, sizeof buf, "%.*s", (int)(n < 200 ? n : 200), typed);
	die_usage(fmt, buf);
}

/* Which of the long names start with the unknown (abbreviated) one: two
 * or more is an ambiguous abbreviation. */
static int n_prefixed(const cli *c, const char *typed)
{
	const char *p = typed + 2;
	size_t n = strcspn(p, "=");
	int k = 0;
	for (const struct option *o = c->longopts; o->name; o++)
		k += !strncmp(o->name, p, n);
	return k;
}

static void bad_option(cli *c, int r)
{
	const char *typed = optind > 0 && optind <= c->argc ? c->argv[optind - 1] : "?";
	const int is_long = typed[0] == '-' && typed[1] == '-';
	if (r == ':') {
		if (is_long)
			die_long("option '%s' needs an argument", typed);
		die_usage("option '-%c' needs an argument", optopt);
	}
	if (is_long) {
		if (optopt && strchr(typed, '='))
			die_long("option '%s' takes no argument", typed);
		if (n_prefixed(c, typed) > 1)
			die_long("option '%s' is ambiguous", typed);
		die_long("unknown option '%s'", typed);
	}
	if (optopt > 0 && optopt < 128)
		die_usage("unknown option '-%c'", optopt);
	die_usage("bad option '%s'", typed);
}

int cli_next(cli *c)
{
	const cli_spec *s = c->spec;
	int idx = -1;
again:;
	int r = getopt_long(c->argc, c->argv, c->shortopts, c->longopts, &idx);
	if (r == -1) {
		c->ind = optind;
		c->arg = NULL;
		cli_free(c);
		return -1;
	}
	if (r == '?' || r == ':')
		bad_option(c, r);
	if (r == CLI_HELP || r == 'h') {
		for (int i = 0; i < c->n; i++) /* the defaults, as they were before parsing */
			if (s->opts[i].type != CLI_KEY && s->opts[i].type != CLI_CALLBACK)
				memcpy(s->opts[i].dest, &c->init[i], s->opts[i].size);
		cli_help(s, stdout);
		close_stdout();
		exit(0);
	}
	if (r == CLI_VERSION || r == 'V') {
		if (s->version) {
			s->version(s->prog);
		} else {
			printf("%s lbdpo %s\n", s->prog, LBDPO_VERSION);
			close_stdout();
		}
		exit(0);
	}
	int i = r - CLI_VAL0;
	char typed[64];
	if (r >= CLI_VAL0) {
		snprintf(typed, sizeof typed, "--%s", s->opts[i].lng);
	} else {
		for (i = 0; i < c->n && s->opts[i].shrt != r; i++)
			;
		if (i == c->n) /* getopt returned a letter not in shortopts */
			die_usage("bad option '-%c'", r);
		snprintf(typed, sizeof typed, "-%c", r);
	}
	const cli_opt *o = &s->opts[i];
	if (o->gone)
		die_usage("%s", o->gone);
	if (o->alias_of) {
		const cli_opt *t = target(s->opts, o->alias_of);
		if (!c->warned[i]) {
			char now[64];
			if (r < CLI_VAL0 && t->shrt)
				snprintf(now, sizeof now, "-%c", t->shrt);
			else
				snprintf(now, sizeof now, "--%s", t->lng);
			warning("%s is the old spelling of %s; it will be removed in the next release", typed, now);
			c->warned[i] = 1;
		}
		o = t;
		snprintf(typed, sizeof typed, "--%s", t->lng);
	}
	c->given[o - s->opts] = 1;
	if (o->type != CLI_KEY) {
		if (o->lng)
			snprintf(typed, sizeof typed, "--%s", o->lng);
		store(o, typed, optarg);
		goto again;
	}
	c->arg = optarg;
	return o->key;
}

void cli_end(const cli *c, int max)
{
	if (max >= 0 && c->ind + max < c->argc)
		die_usage("unexpected argument '%s'", c->argv[c->ind + max]);
	for (int i = 0; i < c->n; i++)
		if ((c->spec->opts[i].flags & CLI_REQUIRED) && !c->given[i])
			die_usage("--%s is required", c->spec->opts[i].lng);
}

void cli_parse(cli *c, int max)
{
	/* checked before parsing, so that a keyed row merged into such a
	 * table fails every run, not only the runs that give it */
	for (int i = 0; i < c->n; i++) {
		const cli_opt *o = &c->spec->opts[i];
		if (o->type == CLI_KEY && o->key)
			BUG("%s: option table: --%s is a keyed row (key %d) in a table parsed by cli_parse: give it a type "
			    "(OPT_*) or read it with cli_next",
			    c->spec->prog, o->lng ? o->lng : "?", o->key);
	}
	if (cli_next(c) != -1)
		BUG("%s: option table: cli_next returned a key in cli_parse", c->spec->prog);
	cli_end(c, max);
}

int cli_given(const cli *c, const char *lng)
{
	const cli_opt *t = target(c->spec->opts, lng);
	if (!t)
		BUG("%s: cli_given: no option --%s", c->spec->prog, lng);
	return c->given[t - c->spec->opts];
}

/* ---- --help ---- */

/* "  -m, --model DIR" */
static int left_column(const cli_opt *o, char *buf, size_t n)
{
	char sh[8] = "    ";
	if (o->shrt)
		snprintf(sh, sizeof sh, "-%c%s", o->shrt, o->lng ? ", " : "");
	return snprintf(buf, n, "  %s%s%s%s%s", sh, o->lng ? "--" : "", o->lng ? o->lng : "", o->arg ? " " : "",
			o->arg ? o->arg : "");
}

/* text from column col, wrapped at HELP_WIDTH, continuation lines indented
 * to indent; '\n' in text starts a new line. */
static void put_wrapped(FILE *fp, const char *text, int col, int indent)
{
	const char *p = text;
	while (*p) {
		if (*p == '\n') {
			fprintf(fp, "\n%*s", indent, "");
			col = indent;
			p++;
			continue;
		}
		if (*p == ' ') {
			p++;
			continue;
		}
		size_t w = strcspn(p, " \n");
		if (col > indent && col + 1 + (int)w > HELP_WIDTH) {
			fprintf(fp, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', fp);
			col++;
		}
		fwrite(p, 1, w, fp);
		col += (int)w;
		p += w;
	}
	fputc('\n', fp);
}

/* "5e-06" -> "5e-6", "1e+30" -> "1e30" */
static void strip_exponent(char *t)
{
	char *q = strchr(t, 'e');
	if (!q)
		return;
	char *d = q + 1, *r = q + 1;
	if (*r == '+')
		r++;
	else if (*r == '-')
		*d++ = *r++;
	while (*r == '0' && r[1])
		r++;
	memmove(d, r, strlen(r) + 1);
}

/* v as --help shows it: the shortest %g that reads back as v, with an
 * exponent without '+' and leading zeros ("5e-6"); below 1, the exponent
 * form when it is shorter ("1e-3", not "0.001"); a whole number as one. */
static void fmt_double(double v, char *buf, size_t n)
{
	char g[64], e[64];
	if (v == floor(v) && fabs(v) < 1e15) { /* 10, not 1e+01 */
		snprintf(buf, n, "%.0f", v);
		return;
	}
	int p = 1;
	for (; p < 17; p++) {
		snprintf(g, sizeof g, "%.*g", p, v);
		if (strtod(g, NULL) == v)
			break;
	}
	snprintf(e, sizeof e, "%.*e", p - 1, v);
	strip_exponent(g);
	strip_exponent(e);
	snprintf(buf, n, "%s", fabs(v) < 1 && v != 0 && strlen(e) < strlen(g) ? e : g);
}

/* " (default 8)" for a typed row whose destination holds a value in the
 * row's range and whose help does not speak of its default; else "". */
static void default_text(const cli_opt *o, char *buf, size_t n)
{
	char v[64];
	buf[0] = 0;
	if (!has_value(o) || (o->help && strstr(o->help, "default")))
		return;
	if (o->type == CLI_INT) {
		long x;
		if (o->size == sizeof(int))
			x = *(const int *)o->dest;
		else
			memcpy(&x, o->dest, sizeof x);
		if (x < o->ilo || x > o->ihi)
			return;
		snprintf(v, sizeof v, "%ld", x);
	} else if (o->type == CLI_DOUBLE) {
		double x = *(const double *)o->dest;
		if (!(x >= o->lo && x <= o->hi))
			return;
		fmt_double(x, v, sizeof v);
	} else {
		int k = *(const int *)o->dest, m = 0;
		while (o->names[m])
			m++;
		if (k < 0 || k >= m)
			return;
		snprintf(v, sizeof v, "%s", o->names[k]);
	}
	snprintf(buf, n, " (default %s)", v);
}

/* "-c/--checkpoint" */
static void spelling(const cli_opt *o, char *buf, size_t n)
{
	if (o->shrt && o->lng)
		snprintf(buf, n, "-%c/--%s", o->shrt, o->lng);
	else if (o->shrt)
		snprintf(buf, n, "-%c", o->shrt);
	else
		snprintf(buf, n, "--%s", o->lng);
}

void cli_help(const cli_spec *s, FILE *fp)
{
	static const cli_opt std[] = {CLI_OPT('h', 'h', "help", NULL, "show this help and exit"),
				      CLI_OPT('V', 'V', "version", NULL, "show the version and exit")};
	const char *u = s->usage;
	for (int line = 0; *u; line++) {
		size_t n = strcspn(u, "\n");
		fprintf(fp, "%s%.*s\n", line ? "       " : "usage: ", (int)n, u);
		u += n + (u[n] == '\n');
	}
	if (s->about && *s->about)
		fprintf(fp, "%s%s", s->about, s->about[strlen(s->about) - 1] == '\n' ? "" : "\n");
	const int n = count(s->opts);
	int width = 0;
	char left[128];
	for (int i = 0; i < n + 2; i++) {
		const cli_opt *o = i < n ? &s->opts[i] : &std[i - n];
		if (is_section(o) || o->alias_of || o->gone)
			continue;
		int w = left_column(o, left, sizeof left);
		if (w <= LEFT_MAX && w > width)
			width = w;
	}
	const int col = width + 2;
	fputc('\n', fp);
	int n_old = 0, n_gone = 0;
	for (int i = 0; i < n + 2; i++) {
		const cli_opt *o = i < n ? &s->opts[i] : &std[i - n];
		if (is_section(o)) {
			fprintf(fp, "%s%s\n", i ? "\n" : "", o->help);
			continue;
		}
		if (o->alias_of || o->gone) {
			n_old += !!o->alias_of;
			n_gone += !!o->gone;
			continue;
		}
		int w = left_column(o, left, sizeof left);
		if (w > col - 2) {
			fprintf(fp, "%s\n%*s", left, col, "");
			w = col;
		} else {
			fprintf(fp, "%s%*s", left, col - w, "");
			w = col;
		}
		char def[96], *text;
		default_text(o, def, sizeof def);
		if (asprintf(&text, "%s%s", o->help ? o->help : "", def) < 0)
			die("out of memory");
		put_wrapped(fp, text, w, col);
		free(text);
	}
	if (n_old) {
		/* one line, never starting with a blank and '-': not an option line */
		fputs("\nOld spellings (one more release):", fp);
		const char *sep = " ";
		for (int i = 0; i < n; i++) {
			const cli_opt *o = &s->opts[i];
			if (!o->alias_of)
				continue;
			char a[64], b[64];
			spelling(o, a, sizeof a);
			spelling(target(s->opts, o->alias_of), b, sizeof b);
			fprintf(fp, "%s%s = %s", sep, a, b);
			sep = ", ";
		}
		fputc('\n', fp);
	}
	if (n_gone && !n_old)
		fputc('\n', fp);
	for (int i = 0; n_gone && i < n; i++)
		if (s->opts[i].gone)
			fprintf(fp, "Changed: %s\n", s->opts[i].gone);
}
