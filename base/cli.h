/* cli.h — the one command-line skeleton of every program.
 *
 * A program describes its options once, in a table; from it cli_next()
 * parses (getopt_long underneath), cli_help() prints --help, and
 * tests/sh/test_man_help.sh compares that --help with the man page. -h/--help
 * and -V/--version are added to every table and handled here. Errors keep the
 * one shape of base/util.h:
 *   prog: error: unknown option '--bogus'
 *   prog: error: option '--model' needs an argument
 *   prog: error: option --lr: '0x' is not a number in [0, 10]
 * plus "Try 'prog --help' ..." and exit 2.
 *
 * A typed row (OPT_*, below) names where its value goes, its type, range and
 * names, and cli_next stores it; --help shows the default from the
 * destination. A keyed row (CLI_OPT) is returned by cli_next for code:
 *
 *   const char *model = NULL, *in = NULL;
 *   int steps = 8;
 *   const cli_opt opts[] = {
 *       OPT_STRING_REQUIRED('m', "model", "DIR", &model, "model or checkpoint (required)"),
 *       OPT_STRING('i', "input", "FILE", &in, "records to read (default stdin)"),
 *       OPT_INT(0, "steps", "N", &steps, 1, 1000, "steps to run"),   // --help: "(default 8)"
 *       CLI_OPT(K_DTYPE, 0, "dtype", "T", "what needs code"),
 *       CLI_ALIAS('c', "checkpoint", "model"),
 *       {0}};
 *   const cli_spec spec = {"lbdpo-x", "lbdpo-x -m DIR", "What it does.", opts, print_version};
 *   cli c;
 *   cli_start(&c, &spec, argc, argv);  // a program that computes: program_start (backend_opts.h)
 *   for (int k; (k = cli_next(&c)) != -1;)
 *       switch (k) { case K_DTYPE: ...; break; }
 *   cli_end(&c, 0);                    // no operands; --model given
 *   // or, without keyed rows: cli_parse(&c, 0);
 *
 * Old spellings: an entry with alias_of parses as the option of that long
 * name, warns once "prog: warning: --checkpoint is the old spelling of
 * --model; it will be removed in the next release", and is listed not with
 * the options but on one "Old spellings (one more release): ..." line. An
 * entry with gone set is a spelling that cannot stay (its letter now means
 * something else): using it is a usage error with that text, which --help
 * shows on a "Changed: ..." line (without a spelling: only shown). */
#ifndef LBDPO_CLI_H
#define LBDPO_CLI_H

#include <stdio.h>

/* What a typed row (OPT_*) stores; CLI_KEY: nothing, cli_next returns its key. */
typedef enum { CLI_KEY = 0, CLI_INT, CLI_DOUBLE, CLI_STRING, CLI_SET, CLI_ENUM, CLI_CALLBACK } cli_type;
enum { CLI_REQUIRED = 1 }; /* cli_opt.flags: "--NAME is required" when not given */

typedef struct cli_opt {
	int key;              /* what cli_next returns: the short letter, or a value >= 256 */
	char shrt;            /* short option letter, 0 for none */
	const char *lng;      /* long name without "--"; NULL for a short-only option */
	const char *arg;      /* argument name shown in --help ("FILE"); NULL: takes none */
	const char *help;     /* description, wrapped by cli_help; '\n' starts a new line */
	const char *alias_of; /* old spelling: long name of the option it stands for */
	const char *gone;     /* removed spelling: the error message naming the new one */
	/* typed rows (OPT_* below): cli_next stores the value and goes on */
	cli_type type;
	void *dest;                              /* where the value goes */
	size_t size;                             /* sizeof *dest, checked against type by cli_start */
	long ilo, ihi;                           /* CLI_INT: the range; CLI_SET: the value stored */
	double lo, hi;                           /* CLI_DOUBLE: the range */
	const char *const *names;                /* CLI_ENUM: the values' names, NULL-terminated */
	void (*cb)(void *dest, const char *arg); /* CLI_CALLBACK (arg NULL for a flag) */
	int flags;                               /* CLI_REQUIRED */
} cli_opt;

/* Table entries (designated, so that rows may grow fields): an option; an
 * old spelling of the option whose long name is `of`; a removed spelling
 * whose use is an error saying `msg` (shrt 0 and lng NULL: a note in --help
 * only); a section title in the option list ("Loss:"). A table ends with
 * {0}. */
#define CLI_OPT(key_, shrt_, lng_, arg_, help_)                                                                        \
	{                                                                                                              \
		.key = (key_), .shrt = (shrt_), .lng = (lng_), .arg = (arg_), .help = (help_)                          \
	}
#define CLI_ALIAS(shrt_, lng_, of)                                                                                     \
	{                                                                                                              \
		.shrt = (shrt_), .lng = (lng_), .alias_of = (of)                                                       \
	}
#define CLI_GONE(shrt_, lng_, msg)                                                                                     \
	{                                                                                                              \
		.shrt = (shrt_), .lng = (lng_), .gone = (msg)                                                          \
	}
#define CLI_SECTION(title)                                                                                             \
	{                                                                                                              \
		.help = (title)                                                                                        \
	}

/* Typed rows (as git's parse-options OPT_*): the row names its destination,
 * and cli_next parses and stores the value itself, so a program's option
 * handling is its table plus the few keyed rows that need code.
 *
 *   OPT_INT     an int or a long (or int64/uint64) in [lo, hi]; the error is
 *               parse_long's: "option --steps: 'x' is not an integer in [0, 9]"
 *   OPT_DOUBLE  a double in [lo, hi] (parse_double's error)
 *   OPT_STRING  a const char *: the argument itself
 *   OPT_BOOL    an int set to 1; OPT_SET: set to v
 *   OPT_ENUM    an int (or enum) set to the index of the argument in names
 *               (NULL-terminated): "--head: expected linear or mlp, got 'x'"
 *   OPT_CALLBACK fn(dest, arg) does it (arg NULL for an option without one)
 *
 * --help shows the default of an INT, DOUBLE or ENUM row from its
 * destination's value before parsing: " (default 8)" is appended to the help
 * text, unless the text speaks of the default itself (a computed one: "default:
 * --beta") or the value is outside the row's range (unset: -1 for "not
 * given"). A number after "default " in such a row's text is a table bug: it
 * would say the default twice. */
#define CLI_ROW_(shrt_, lng_, arg_, help_) .shrt = (shrt_), .lng = (lng_), .arg = (arg_), .help = (help_)
#define OPT_INT(shrt_, lng_, arg_, dest_, lo_, hi_, help_)                                                             \
	{                                                                                                              \
		CLI_ROW_(shrt_, lng_, arg_, help_), .type = CLI_INT, .dest = (dest_), .size = sizeof *(dest_),         \
						    .ilo = (lo_), .ihi = (hi_)                                         \
	}
#define OPT_DOUBLE(shrt_, lng_, arg_, dest_, lo_, hi_, help_)                                                          \
	{                                                                                                              \
		CLI_ROW_(shrt_, lng_, arg_, help_), .type = CLI_DOUBLE, .dest = (dest_), .size = sizeof *(dest_),      \
						    .lo = (lo_), .hi = (hi_)                                           \
	}
#define OPT_STRING(shrt_, lng_, arg_, dest_, help_)                                                                    \
	{                                                                                                              \
		CLI_ROW_(shrt_, lng_, arg_, help_), .type = CLI_STRING, .dest = (dest_), .size = sizeof *(dest_)       \
	}
#define OPT_SET(shrt_, lng_, dest_, v_, help_)                                                                         \
	{                                                                                                              \
		CLI_ROW_(shrt_, lng_, NULL, help_), .type = CLI_SET, .dest = (dest_), .size = sizeof *(dest_),         \
						    .ilo = (v_)                                                        \
	}
#define OPT_BOOL(shrt_, lng_, dest_, help_) OPT_SET(shrt_, lng_, dest_, 1, help_)
#define OPT_ENUM(shrt_, lng_, arg_, dest_, names_, help_)                                                              \
	{                                                                                                              \
		CLI_ROW_(shrt_, lng_, arg_, help_), .type = CLI_ENUM, .dest = (dest_), .size = sizeof *(dest_),        \
						    .names = (names_)                                                  \
	}
#define OPT_CALLBACK(shrt_, lng_, arg_, fn_, dest_, help_)                                                             \
	{                                                                                                              \
		CLI_ROW_(shrt_, lng_, arg_, help_), .type = CLI_CALLBACK, .dest = (dest_), .size = 0, .cb = (fn_)      \
	}
/* an OPT_STRING that must be given: "--model is required" after the last option */
#define OPT_STRING_REQUIRED(shrt_, lng_, arg_, dest_, help_)                                                           \
	{                                                                                                              \
		CLI_ROW_(shrt_, lng_, arg_, help_), .type = CLI_STRING, .dest = (dest_), .size = sizeof *(dest_),      \
						    .flags = CLI_REQUIRED                                              \
	}

typedef struct cli_spec {
	const char *prog;    /* "lbdpo-beta" */
	const char *usage;   /* synopsis lines, '\n'-separated, each starting with prog */
	const char *about;   /* what the program does: printed under the synopsis */
	const cli_opt *opts; /* ends with an all-zero entry {0} */
	/* -V/--version: print the version on stdout (and close it); NULL prints
	 * "prog lbdpo VERSION" */
	void (*version)(const char *prog);
} cli_spec;

enum { CLI_MAX_OPTS = 256 }; /* entries of one table, at most */

typedef struct cli {
	const char *arg; /* the argument of the option cli_next just returned */
	int ind;         /* once cli_next returned -1: argv index of the first operand */
	/* private */
	const cli_spec *spec;
	int argc;
	char **argv;
	int n;          /* entries in spec->opts */
	void *longopts; /* struct option[], built by cli_start */
	char *shortopts;
	unsigned char *warned;             /* per entry: alias warning given */
	unsigned long long *init;          /* per entry: a typed row's destination before parsing (--help) */
	unsigned char given[CLI_MAX_OPTS]; /* per entry: on the command line (cli_given) */
} cli;

/* Build getopt_long's tables from spec (options after operands are parsed
 * too, as getopt_long does). Dies on an inconsistent table (a bug). */
void cli_start(cli *c, const cli_spec *spec, int argc, char **argv);
/* The key of the next keyed option (its argument in c->arg), or -1 after
 * the last (operands start at c->ind; the tables are freed). Typed rows are stored, not returned; a bad
 * value is a usage error in the one shape (parse_long, parse_double).
 * --help and --version print and exit 0; a bad option prints the error
 * line and the --help hint and exits 2. */
int cli_next(cli *c);
/* After the last option: more than max operands (max < 0: any number) is
 * a usage error naming the first one too many ("unexpected argument 'x'"),
 * then a required row not given is ("--model is required"). */
void cli_end(const cli *c, int max);
/* cli_next to the end, for a table of typed rows only (a keyed row in it is
 * a bug, refused before parsing), then cli_end(c, max). */
void cli_parse(cli *c, int max);
/* Was the option of long name lng (or an old spelling of it) given? */
int cli_given(const cli *c, const char *lng);
/* --help's text: synopsis, about, one aligned line (or wrapped paragraph)
 * per option, -h and -V, then the old spellings. */
void cli_help(const cli_spec *spec, FILE *fp);

#endif
