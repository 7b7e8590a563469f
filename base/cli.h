/* cli.h — the one command-line skeleton of every program.
 *
 * A program describes its options once, in a table; from it cli_next()
 * parses (getopt_long underneath, returning each option's key like getopt),
 * cli_help() prints --help, and tests/sh/test_man_help.sh compares that
 * --help with the man page. -h/--help and -V/--version are added to every
 * table and handled here. Errors keep the one shape of base/util.h:
 *   prog: error: unknown option '--bogus'
 *   prog: error: option '--model' needs an argument
 * plus "Try 'prog --help' ..." and exit 2.
 *
 *   static const cli_opt opts[] = {
 *       CLI_OPT('m', 'm', "model", "DIR", "model or checkpoint (required)"),
 *       CLI_OPT('i', 'i', "input", "FILE", "records to read (default stdin)"),
 *       CLI_ALIAS('c', "checkpoint", "model"),
 *       {0}};
 *   cli c;
 *   cli_start(&c, &(cli_spec){"lbdpo-x", "lbdpo-x -m DIR", "What it does.", opts, print_version}, argc, argv);
 *   for (int k; (k = cli_next(&c)) != -1;)
 *       switch (k) { case 'm': model = c.arg; break; ... }
 *   // operands: argv[c.ind .. argc-1]
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

typedef struct cli_opt {
	int key;	      /* what cli_next returns: the short letter, or a value >= 256 */
	char shrt;	      /* short option letter, 0 for none */
	const char *lng;      /* long name without "--"; NULL for a short-only option */
	const char *arg;      /* argument name shown in --help ("FILE"); NULL: takes none */
	const char *help;     /* description, wrapped by cli_help; '\n' starts a new line */
	const char *alias_of; /* old spelling: long name of the option it stands for */
	const char *gone;     /* removed spelling: the error message naming the new one */
} cli_opt;

/* Table entries (every field named: -Wextra wants no field left out):
 * an option; an old spelling of the option whose long name is `of`; a
 * removed spelling whose use is an error saying `msg` (shrt 0 and lng NULL:
 * a note in --help only); a section title in
 * the option list ("Loss:"). A table ends with {0}. */
#define CLI_OPT(key, shrt, lng, arg, help) {(key), (shrt), (lng), (arg), (help), NULL, NULL}
#define CLI_ALIAS(shrt, lng, of) {0, (shrt), (lng), NULL, NULL, (of), NULL}
#define CLI_GONE(shrt, lng, msg) {0, (shrt), (lng), NULL, NULL, NULL, (msg)}
#define CLI_SECTION(title) {0, 0, NULL, NULL, (title), NULL, NULL}

typedef struct cli_spec {
	const char *prog;  /* "lbdpo-beta" */
	const char *usage; /* synopsis lines, '\n'-separated, each starting with prog */
	const char *about; /* what the program does: printed under the synopsis */
	const cli_opt *opts; /* ends with an all-zero entry {0} */
	/* -V/--version: print the version on stdout (and close it); NULL prints
	 * "prog lbdpo VERSION" */
	void (*version)(const char *prog);
} cli_spec;

typedef struct cli {
	const char *arg; /* the argument of the option cli_next just returned */
	int ind;	 /* once cli_next returned -1: argv index of the first operand */
	/* private */
	const cli_spec *spec;
	int argc;
	char **argv;
	int n;		    /* entries in spec->opts */
	void *longopts;	    /* struct option[], built by cli_start */
	char *shortopts;
	unsigned char *warned; /* per entry: alias warning given */
} cli;

/* Build getopt_long's tables from spec (options after operands are parsed
 * too, as getopt_long does). Dies on an inconsistent table (a bug). */
void cli_start(cli *c, const cli_spec *spec, int argc, char **argv);
/* The key of the next option (its argument in c->arg), or -1 after the last
 * (operands start at c->ind; the tables are freed). --help and --version
 * print and exit 0; a bad option prints the error line and the --help hint
 * and exits 2. */
int cli_next(cli *c);
/* --help's text: synopsis, about, one aligned line (or wrapped paragraph)
 * per option, -h and -V, then the old spellings. */
void cli_help(const cli_spec *spec, FILE *fp);

#endif
