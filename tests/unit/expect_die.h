/* expect_die.h — run code that must die() (or BUG()) in a child process and
 * check both how it ended and its message: a bare `.exit_code = 1` passes on
 * any die, whatever went wrong. */
#ifndef EXPECT_DIE_H
#define EXPECT_DIE_H
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child ends with exit status `status` (sig 0) or is killed by signal
 * sig; its stderr contains needle. */
#define EXPECT_END_(sig, status, needle, code)                                                                         \
	do {                                                                                                           \
		int pfd_[2];                                                                                           \
		cr_assert_eq(pipe(pfd_), 0);                                                                           \
		fflush(NULL);                                                                                          \
		pid_t pid_ = fork();                                                                                   \
		cr_assert_neq(pid_, -1);                                                                               \
		if (pid_ == 0) {                                                                                       \
			/* no core file from an expected abort() */                                                    \
			setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});                                                \
			dup2(pfd_[1], 2);                                                                              \
			close(pfd_[0]);                                                                                \
			{                                                                                              \
				code;                                                                                  \
			}                                                                                              \
			_exit(0);                                                                                      \
		}                                                                                                      \
		close(pfd_[1]);                                                                                        \
		char buf_[4096];                                                                                       \
		size_t n_ = 0;                                                                                         \
		ssize_t k_;                                                                                            \
		while (n_ < sizeof buf_ - 1 && (k_ = read(pfd_[0], buf_ + n_, sizeof buf_ - 1 - n_)) > 0)              \
			n_ += (size_t)k_;                                                                              \
		buf_[n_] = 0;                                                                                          \
		close(pfd_[0]);                                                                                        \
		int st_;                                                                                               \
		waitpid(pid_, &st_, 0);                                                                                \
		if (sig)                                                                                               \
			cr_assert(WIFSIGNALED(st_) && WTERMSIG(st_) == (sig),                                          \
				  "ended with %s %d, want signal %d (stderr: %s)",                                     \
				  WIFSIGNALED(st_) ? "signal" : "exit status",                                         \
				  WIFSIGNALED(st_) ? WTERMSIG(st_) : WEXITSTATUS(st_), (sig), buf_);                   \
		else                                                                                                   \
			cr_assert(WIFEXITED(st_) && WEXITSTATUS(st_) == (status),                                      \
				  "exit status %d, want %d (stderr: %s)", WIFEXITED(st_) ? WEXITSTATUS(st_) : -1,      \
				  (status), buf_);                                                                     \
		cr_assert(strstr(buf_, (needle)), "message '%s' lacks '%s'", buf_, (needle));                          \
	} while (0)

/* code must exit with status (die: 1, die_usage: 2) printing needle. */
#define EXPECT_DIE(status, needle, code) EXPECT_END_(0, status, needle, code)
/* code must BUG(): abort() after printing needle. */
#define EXPECT_BUG(needle, code) EXPECT_END_(SIGABRT, 0, needle, code)

#endif
