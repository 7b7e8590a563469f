/* cli.c — option tables to getopt_long, --help and old spellings (cli.h). */
#define _GNU_SOURCE
#include "base/cli.h"

#include <getopt.h>
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

void cli_start(cli *c, const cli_spec *s, int argc, char **argv)
{
	memset(c, 0, sizeof *c);
	c->spec = s;
	c->argc = argc;
	c->argv = argv;
	c->n = count(s->opts);
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
		if (o->shrt == 'h' || o->shrt == 'V' || (o->lng && (!strcmp(o->lng, "help") || !strcmp(o->lng, "version"))))
			BUG("%s: option table: -h/--help and -V/--version are cli.c's", s->prog);
		const int has_arg = t->arg && !o->gone;
		if (o->lng)
			lo[nl++] = (struct option){o->lng, has_arg ? required_argument : no_argument, NULL, CLI_VAL0 + i};
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
	c->longopts = c->shortopts = NULL;
	c->warned = NULL;
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
	}
	c->arg = optarg;
	return o->key;
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
		put_wrapped(fp, o->help ? o->help : "", w, col);
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
