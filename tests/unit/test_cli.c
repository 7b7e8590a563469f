/* test_cli.c — base/cli.c: an option table drives parsing (keys, arguments,
 * operands), old spellings (parsed as the new option, one warning each),
 * option errors (one line, exit 2), -h/-V, and --help generated from the
 * table. Errors and exits run in a child process (run_child) so their
 * status and output are checked, not just "it exited". */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/util.h"
#include "tests/unit/expect_die.h"

enum { K_STEPS = 256, K_QUIET };

static const cli_opt opts[] = {
	CLI_OPT('m', 'm', "model", "PATH", "the model"),
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
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == status, "exit status %d, want %d (output: %s)",
		  WIFEXITED(st) ? WEXITSTATUS(st) : -1, status, buf);
	cr_assert(strstr(buf, needle), "output '%s' lacks '%s'", buf, needle);
}

/* Parse argv (NULL-terminated) to the end. */
static void parse_all(void *p)
{
	char **argv = p;
	int argc = 0;
	while (argv[argc])
		argc++;
	cli c;
	cli_start(&c, &spec, argc, argv);
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
				     CLI_OPT('b', 0, "a-very-long-option-name", "VALUE", "short help"), {0}};
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
