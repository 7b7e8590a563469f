/* test_cli.c — base/cli.c: an option table drives parsing (keys, arguments,
 * operands), old spellings (parsed as the new option, one warning each),
 * option errors (one line, exit 2), -h/-V, and --help generated from the
 * table. Errors and exits run in a child process (run_child) so their
 * status and output are checked, not just "it exited". */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/util.h"
#include "tests/unit/expect_die.h"

enum { K_STEPS = 256, K_QUIET };

static const cli_opt opts[] = {CLI_OPT('m', 'm', "model", "PATH", "the model"),
			       CLI_OPT('o', 'o', "output", "FILE", "where to write"),
			       CLI_OPT(K_STEPS, 0, "steps", "N", "steps to run\nsecond line"),
			       CLI_SECTION("More:"),
			       CLI_OPT(K_QUIET, 'q', "quiet", NULL, "be quiet"),
			       CLI_ALIAS('c', "checkpoint", "model"),
			       CLI_ALIAS(0, "out", "output"),
			       CLI_GONE('t', NULL, "-t is gone: use --tokenizer"),
			       {0}};

static const cli_spec spec = {"prog", "prog -m PATH [-o FILE]\nprog --version", "Does things.", opts, NULL};

static void setup(void) { set_progname("prog"); }
TestSuite(cli, .init = setup);

/* Run code in a child with stdout and stderr into one pipe; check the
 * exit status and that the output contains needle. */
static void run_child(int status, const char *needle, void (*code)(void *), void *arg)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		code(arg);
		fflush(NULL);
		_exit(99); /* code returned: cli_next did not exit */
	}
	close(pfd[1]);
	char buf[8192];
	size_t n = 0;
	ssize_t k;
	while (n < sizeof buf - 1 && (k = read(pfd[0], buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = 0;
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	if (status < 0) /* -SIGABRT: a BUG() */
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == -status, "status %d, want signal %d (output: %s)", st,
			  -status, buf);
	else
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == status, "exit status %d, want %d (output: %s)",
			  WIFEXITED(st) ? WEXITSTATUS(st) : -1, status, buf);
	cr_assert(strstr(buf, needle), "output '%s' lacks '%s'", buf, needle);
}

static int n_args(char **argv)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	return argc;
}

/* Parse argv (NULL-terminated) to the end. */
static void parse_all(void *p)
{
	cli c;
	cli_start(&c, &spec, n_args(p), p);
	while (cli_next(&c) != -1)
		;
}

Test(cli, parses_keys_arguments_and_operands)
{
	char *argv[] = {"prog", "-m", "a", "x", "--output=b", "--steps", "3", "-q", "--", "-y", NULL};
	cli c;
	cli_start(&c, &spec, 10, argv);
	int k = cli_next(&c);
	cr_assert_eq(k, 'm');
	cr_assert_str_eq(c.arg, "a");
	cr_assert_eq(cli_next(&c), 'o');
	cr_assert_str_eq(c.arg, "b");
	cr_assert_eq(cli_next(&c), K_STEPS);
	cr_assert_str_eq(c.arg, "3");
	cr_assert_eq(cli_next(&c), K_QUIET);
	cr_assert_eq(cli_next(&c), -1);
	/* getopt_long moves operands after the options: x, then -y after "--" */
	cr_assert_eq(c.ind, 8);
	cr_assert_str_eq(argv[c.ind], "x");
	cr_assert_str_eq(argv[c.ind + 1], "-y");
	/* a second table in the same process starts over */
	char *argv2[] = {"prog", "-o", "z", NULL};
	cli_start(&c, &spec, 3, argv2);
	cr_assert_eq(cli_next(&c), 'o');
	cr_assert_str_eq(c.arg, "z");
	cr_assert_eq(cli_next(&c), -1);
	cr_assert_eq(c.ind, 3);
}

/* one warning per old option (-c after --checkpoint: the same entry) */
Test(cli, old_spellings_parse_as_the_new_option_and_warn_once, .init = cr_redirect_stderr)
{
	set_progname("prog");
	char *argv[] = {"prog", "--checkpoint", "ck", "--out", "d", "-c", "ck2", "--checkpoint=ck3", NULL};
	cli c;
	cli_start(&c, &spec, 8, argv);
	const char *want[][2] = {{"m", "ck"}, {"o", "d"}, {"m", "ck2"}, {"m", "ck3"}};
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(cli_next(&c), want[i][0][0], "option %d", i);
		cr_assert_str_eq(c.arg, want[i][1]);
	}
	cr_assert_eq(cli_next(&c), -1);
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"prog: warning: --checkpoint is the old spelling of --model; it will be removed in the next release\n"
		"prog: warning: --out is the old spelling of --output; it will be removed in the next release\n");
}

#define CHILD_ARGS(...) ((char *[]){"prog", __VA_ARGS__, NULL})

Test(cli, option_errors_are_one_line_and_exit_2)
{
	run_child(2, "prog: error: option '--model' needs an argument\nTry 'prog --help'", parse_all,
		  CHILD_ARGS("--model"));
	run_child(2, "prog: error: option '--checkpoint' needs an argument\n", parse_all, CHILD_ARGS("--checkpoint"));
	run_child(2, "prog: error: option '-m' needs an argument\n", parse_all, CHILD_ARGS("-q", "-m"));
	run_child(2, "prog: error: unknown option '--bogus'\n", parse_all, CHILD_ARGS("--bogus=1"));
	run_child(2, "prog: error: unknown option '-x'\n", parse_all, CHILD_ARGS("-qx"));
	run_child(2, "prog: error: option '--quiet' takes no argument\n", parse_all, CHILD_ARGS("--quiet=1"));
	run_child(2, "prog: error: option '--ou' is ambiguous\n", parse_all, CHILD_ARGS("--ou", "f"));
	run_child(2, "prog: error: -t is gone: use --tokenizer\n", parse_all, CHILD_ARGS("-t", "tok.json"));
	/* unique abbreviations still work (getopt_long): --mod is --model */
	run_child(99, "", parse_all, CHILD_ARGS("--mod", "m", "--outp", "o"));
}

Test(cli, unknown_option_exit_code)
{
	char *argv[] = {"prog", "--no-such-option", NULL};
	EXPECT_DIE(2, "prog: error: unknown option '--no-such-option'\nTry 'prog --help'", parse_all(argv));
}

Test(cli, help_and_version_exit_0)
{
	run_child(0, "usage: prog -m PATH [-o FILE]\n", parse_all, CHILD_ARGS("-m", "x", "-h", "--bogus"));
	run_child(0, "Old spellings", parse_all, CHILD_ARGS("--help"));
	run_child(0, "prog lbdpo " LBDPO_VERSION "\n", parse_all, CHILD_ARGS("-V"));
	run_child(0, "prog lbdpo " LBDPO_VERSION "\n", parse_all, CHILD_ARGS("--version"));
}

static char *help_text(const cli_spec *s)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *fp = open_memstream(&buf, &n);
	cr_assert(fp);
	cli_help(s, fp);
	cr_assert_eq(fclose(fp), 0);
	return buf;
}

Test(cli, help_is_generated_from_the_table)
{
	char *h = help_text(&spec);
	cr_assert_str_eq(h, "usage: prog -m PATH [-o FILE]\n"
			    "       prog --version\n"
			    "Does things.\n"
			    "\n"
			    "  -m, --model PATH   the model\n"
			    "  -o, --output FILE  where to write\n"
			    "      --steps N      steps to run\n"
			    "                     second line\n"
			    "\n"
			    "More:\n"
			    "  -q, --quiet        be quiet\n"
			    "  -h, --help         show this help and exit\n"
			    "  -V, --version      show the version and exit\n"
			    "\n"
			    "Old spellings (one more release): -c/--checkpoint = -m/--model, --out = -o/--output\n"
			    "Changed: -t is gone: use --tokenizer\n");
	free(h);
}

Test(cli, help_wraps_long_text_and_long_option_names)
{
	static const char text[] = "one two three four five six seven eight nine ten eleven twelve thirteen "
				   "fourteen fifteen sixteen seventeen eighteen nineteen twenty";
	static const cli_opt o2[] = {CLI_OPT('a', 'a', "alpha", "X", text),
				     CLI_OPT('b', 0, "a-very-long-option-name", "VALUE", "short help"),
				     {0}};
	static const cli_spec s2 = {"p2", "p2 [options]", NULL, o2, NULL};
	char *h = help_text(&s2);
	/* every line fits in 79 columns */
	for (const char *l = h; *l;) {
		size_t n = strcspn(l, "\n");
		cr_assert_leq(n, 79, "line too long: '%.*s'", (int)n, l);
		l += n + (l[n] == '\n');
	}
	/* alpha's words come back in order, over several lines */
	const char *a = strstr(h, "  -a, --alpha X "), *end = strstr(h, "      --a-very-long-option-name VALUE\n");
	cr_assert(a && end && end > a, "%s", h);
	char words[1024] = "";
	int lines = 0;
	for (const char *q = a + 15; q < end;) {
		lines += *q == '\n';
		if (*q == ' ' || *q == '\n') {
			q++;
			continue;
		}
		size_t n = strcspn(q, " \n");
		strncat(words, q, n);
		strcat(words, " ");
		q += n;
	}
	words[strlen(words) - 1] = 0;
	cr_assert_str_eq(words, text);
	cr_assert_geq(lines, 2);
	/* an option name wider than the column: its help on the next line */
	cr_assert(strstr(h, "      --a-very-long-option-name VALUE\n                 short help\n"), "%s", h);
	free(h);
}

static void bad_table(void *p)
{
	(void)p;
	static const cli_opt bad[] = {CLI_OPT('x', 'x', "x", NULL, "x"), CLI_ALIAS(0, "old", "nothing"), {0}};
	static const cli_spec s = {"prog", "prog", NULL, bad, NULL};
	char *argv[] = {"prog", NULL};
	cli c;
	cli_start(&c, &s, 1, argv);
}

static void reserved_letter(void *p)
{
	(void)p;
	static const cli_opt bad[] = {CLI_OPT('h', 'h', "hidden", NULL, "x"), {0}};
	static const cli_spec s = {"prog", "prog", NULL, bad, NULL};
	char *argv[] = {"prog", NULL};
	cli c;
	cli_start(&c, &s, 1, argv);
}

Test(cli, inconsistent_tables_are_refused)
{
	/* a broken table is the programmer's error, not the user's: BUG() */
	EXPECT_BUG("prog: BUG: base/cli.c:", bad_table(NULL));
	EXPECT_BUG("'old' is an old spelling of 'nothing', which is not in the table", bad_table(NULL));
	EXPECT_BUG("-h/--help and -V/--version are cli.c's", reserved_letter(NULL));
}

/* ---- typed rows (OPT_*): the row stores the value; only keyed rows come back ---- */

static const char *const modes[] = {"fast", "slow", "exact", NULL};
enum { K_RAW = 300 };

/* The destinations of typed_table's rows, with their defaults. */
typedef struct {
	int n;
	long big;
	double lr, tau, unset;
	const char *name;
	int flag, level;
	int mode;
	int calls;
	const char *seen;
} dests;

static void count_cb(void *d, const char *arg)
{
	dests *x = d;
	x->calls++;
	x->seen = arg;
}

static void typed_table(dests *d, cli_opt *t)
{
	*d = (dests){.n = 8, .big = 1L << 40, .lr = 5e-6, .tau = 1e-3, .unset = -1, .flag = 0, .level = 1, .mode = 1};
	const cli_opt rows[] = {OPT_STRING_REQUIRED('m', "model", "PATH", &d->name, "the model"),
				OPT_INT('n', "num", "N", &d->n, 1, 9, "how many"),
				OPT_INT(0, "big", "N", &d->big, 0, 1L << 50, "a long"),
				OPT_DOUBLE(0, "lr", "X", &d->lr, 0, 10, "learning rate"),
				OPT_DOUBLE(0, "tau", "X", &d->tau, 1e-9, 1, "temperature"),
				OPT_DOUBLE(0, "unset", "X", &d->unset, 0, 1, "not given: -1"),
				OPT_BOOL('f', "flag", &d->flag, "a flag"),
				OPT_SET(0, "loud", &d->level, 3, "level 3"),
				OPT_ENUM(0, "mode", "M", &d->mode, modes, "how"),
				OPT_CALLBACK(0, "call", "A", count_cb, d, "a callback"),
				OPT_DOUBLE(0, "words", "X", &d->tau, 0, 1, "default: --tau"),
				CLI_OPT(K_RAW, 0, "raw", "S", "a keyed row"),
				CLI_ALIAS(0, "name", "model"),
				{0}};
	memcpy(t, rows, sizeof rows);
}

Test(cli, typed_rows_store_their_values_and_keyed_rows_come_back)
{
	dests d;
	cli_opt t[16];
	typed_table(&d, t);
	const cli_spec s = {"prog", "prog", NULL, t, NULL};
	char *argv[] = {"prog",   "-n",    "3",      "--big", "1099511627777", "--lr", "0.5",    "-f", "--loud",
			"--mode", "exact", "--call", "x",     "--raw",         "r",    "--name", "mm", "op",
			NULL};
	cli c;
	cli_start(&c, &s, 18, argv);
	cr_assert_eq(cli_next(&c), K_RAW);
	cr_assert_str_eq(c.arg, "r");
	cr_assert_eq(cli_next(&c), -1);
	cr_assert_eq(d.n, 3);
	cr_assert_eq(d.big, 1099511627777L);
	cr_assert_float_eq(d.lr, 0.5, 0);
	cr_assert_eq(d.flag, 1);
	cr_assert_eq(d.level, 3);
	cr_assert_eq(d.mode, 2);
	cr_assert_eq(d.calls, 1);
	cr_assert_str_eq(d.seen, "x");
	cr_assert_str_eq(d.name, "mm");
	cr_assert_float_eq(d.tau, 1e-3, 0); /* not given: untouched */
	cr_assert(cli_given(&c, "num") && cli_given(&c, "model") && cli_given(&c, "raw"));
	cr_assert(!cli_given(&c, "tau") && !cli_given(&c, "unset"));
	cr_assert_str_eq(argv[c.ind], "op");
}

static void parse_typed(void *p)
{
	dests d;
	cli_opt t[16];
	typed_table(&d, t);
	/* without the keyed row: cli_parse */
	t[11] = t[12];
	t[12] = (cli_opt){0};
	const cli_spec s = {"prog", "prog", NULL, t, NULL};
	cli c;
	cli_start(&c, &s, n_args(p), p);
	cli_parse(&c, 0);
}

Test(cli, typed_rows_refuse_values_out_of_range_in_the_one_error_shape)
{
	run_child(2, "prog: error: option --num: '0' is not an integer in [1, 9]\nTry 'prog --help'", parse_typed,
		  CHILD_ARGS("-m", "x", "-n", "0"));
	run_child(2, "prog: error: option --num: '3x' is not an integer in [1, 9]\n", parse_typed,
		  CHILD_ARGS("--num", "3x"));
	run_child(2, "prog: error: option --lr: '11' is not a number in [0, 10]\n", parse_typed,
		  CHILD_ARGS("--lr", "11"));
	run_child(2, "prog: error: option --lr: 'nan' is not a number in [0, 10]\n", parse_typed,
		  CHILD_ARGS("--lr", "nan"));
	run_child(2, "prog: error: --mode: expected fast, slow or exact, got 'quick'\n", parse_typed,
		  CHILD_ARGS("--mode", "quick"));
	run_child(2, "prog: error: unexpected argument 'op'\n", parse_typed, CHILD_ARGS("-m", "x", "op"));
	run_child(2, "prog: error: --model is required\n", parse_typed, CHILD_ARGS("-n", "2"));
	run_child(99, "", parse_typed, CHILD_ARGS("--name", "x", "--mode", "slow"));
}

Test(cli, help_shows_defaults_from_the_rows)
{
	dests d;
	cli_opt t[16];
	typed_table(&d, t);
	const cli_spec s = {"prog", "prog", NULL, t, NULL};
	char *h = help_text(&s);
	const char *want[] = {
		"  -n, --num N       how many (default 8)\n",
		"      --big N       a long (default 1099511627776)\n",
		"      --lr X        learning rate (default 5e-6)\n",
		"      --tau X       temperature (default 1e-3)\n",
		"      --unset X     not given: -1\n", /* outside its range: no default */
		"  -f, --flag        a flag\n",
		"      --mode M      how (default slow)\n",
		"      --words X     default: --tau\n", /* the text speaks of its default */
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		cr_assert(strstr(h, want[i]), "help lacks '%s':\n%s", want[i], h);
	free(h);
	/* --help after options shows the defaults, not the values given */
	run_child(0, "how many (default 8)\n", parse_typed, CHILD_ARGS("-n", "3", "--mode", "fast", "--help"));
	run_child(0, "how (default slow)\n", parse_typed, CHILD_ARGS("-n", "3", "--mode", "fast", "--help"));
}

/* A table whose row i is replaced by *bad: cli_start must refuse it. */
static cli_opt g_bad;
static void start_with_bad_row(void *p)
{
	(void)p;
	cli_opt t[3] = {CLI_OPT('x', 'x', "x", NULL, "x"), g_bad, {0}};
	const cli_spec s = {"prog", "prog", NULL, t, NULL};
	char *argv[] = {"prog", NULL};
	cli c;
	cli_start(&c, &s, 1, argv);
}

Test(cli, a_table_with_a_bad_typed_row_is_a_bug)
{
	static char small;
	static int i;
	static double dv;
	static const char *const none[] = {NULL};
	const struct {
		cli_opt row;
		const char *msg;
	} cases[] = {
		{OPT_INT(0, "c", "N", &small, 0, 9, "a char"), "--c has the destination is no int or long"},
		{OPT_INT(0, "r", "N", &i, 9, 0, "range"), "--r has an empty range"},
		{OPT_DOUBLE(0, "d", "X", &i, 0, 1, "an int"), "--d has the destination is no double"},
		{OPT_ENUM(0, "e", "E", &i, none, "no names"), "--e has no names"},
		{OPT_INT(0, "a", NULL, &i, 0, 9, "no arg"), "--a has no argument name"},
		{OPT_DOUBLE(0, "h", "X", &dv, 0, 1, "twice (default 0.5)"), "--h has its default in the help text"},
		{OPT_CALLBACK(0, "f", "A", NULL, NULL, "no fn"), "--f has no function"},
		{{.key = 'k', .lng = "k", .arg = "N", .help = "k", .type = CLI_INT, .dest = &i, .size = sizeof i},
		 "--k has a key"},
	};
	for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
		g_bad = cases[k].row;
		run_child(-SIGABRT, cases[k].msg, start_with_bad_row, NULL);
	}
}

static void parse_keyed_with_cli_parse(void *p)
{
	cli c;
	cli_start(&c, &spec, n_args(p), p);
	cli_parse(&c, 0);
}

/* even when the keyed row is not given: a row merged into a typed table
 * without a type fails every run */
Test(cli, cli_parse_refuses_a_keyed_row)
{
	run_child(-SIGABRT, "--model is a keyed row (key 109) in a table parsed by cli_parse",
		  parse_keyed_with_cli_parse, CHILD_ARGS("--steps", "2"));
	run_child(-SIGABRT, "--model is a keyed row (key 109) in a table parsed by cli_parse",
		  parse_keyed_with_cli_parse, CHILD_ARGS("x"));
}
