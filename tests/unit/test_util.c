/* test_util.c — base/util.c: BUG() for programmer errors is told apart from
 * die() for bad data (abort, not exit 1/2) and still removes temporaries. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "tests/unit/expect_die.h"

Test(util, bug_aborts, .signal = SIGABRT)
{
	setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
	BUG("never");
}

Test(util, bug_names_file_and_line)
{
	set_progname("prog");
	char want[128];
	/* the BUG below is on the next line */
	snprintf(want, sizeof want, "prog: BUG: %s:%d: table 'x' has 3 rows\n", __FILE__, __LINE__ + 1);
	EXPECT_BUG(want, BUG("table '%s' has %d rows", "x", 3));
}

Test(util, bug_on_prints_the_condition)
{
	set_progname("prog");
	int n = 2;
	EXPECT_BUG("prog: BUG: ", BUG_ON(n > 1));
	EXPECT_BUG(": n > 1\n", BUG_ON(n > 1));
	EXPECT_DIE(0, "", BUG_ON(n > 2)); /* false: nothing happens */
}

Test(util, die_exits_1_not_a_bug)
{
	set_progname("prog");
	EXPECT_DIE(1, "prog: error: bad byte at offset 7\n", die("bad byte at offset %d", 7));
}

Test(util, bug_removes_temporaries)
{
	char dir[] = "/tmp/lbdpo-bugXXXXXX";
	cr_assert(mkdtemp(dir));
	char *target = path_join(dir, "out"), *tmp = NULL;
	int fd = temp_file_create(target, &tmp);
	cr_assert_geq(fd, 0);
	close(fd);
	struct stat sb;
	cr_assert_eq(stat(tmp, &sb), 0);
	EXPECT_BUG("BUG", BUG("after a temporary"));
	cr_assert_neq(stat(tmp, &sb), 0, "%s left behind by BUG()", tmp);
	rmdir(dir);
	free(target);
	free(tmp);
}
