/* expect_die.h — run code that must die() in a child process and check both
 * its exit status and its message: a bare `.exit_code = 1` passes on any
 * die, whatever went wrong. */
#ifndef EXPECT_DIE_H
#define EXPECT_DIE_H
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXPECT_DIE(status, needle, code)                                                               \
	do {                                                                                           \
		int pfd_[2];                                                                           \
		cr_assert_eq(pipe(pfd_), 0);                                                           \
		fflush(NULL);                                                                          \
		pid_t pid_ = fork();                                                                   \
		cr_assert_neq(pid_, -1);                                                               \
		if (pid_ == 0) {                                                                       \
			dup2(pfd_[1], 2);                                                              \
			close(pfd_[0]);                                                                \
			{ code; }                                                                      \
			_exit(0);                                                                      \
		}                                                                                      \
		close(pfd_[1]);                                                                        \
		char buf_[4096];                                                                       \
		size_t n_ = 0;                                                                         \
		ssize_t k_;                                                                            \
		while (n_ < sizeof buf_ - 1 && (k_ = read(pfd_[0], buf_ + n_, sizeof buf_ - 1 - n_)) > 0) \
			n_ += (size_t)k_;                                                              \
		buf_[n_] = 0;                                                                          \
		close(pfd_[0]);                                                                        \
		int st_;                                                                               \
		waitpid(pid_, &st_, 0);                                                                \
		cr_assert(WIFEXITED(st_) && WEXITSTATUS(st_) == (status), "exit status %d, want %d (stderr: %s)", \
			  WIFEXITED(st_) ? WEXITSTATUS(st_) : -1, (status), buf_);                    \
		cr_assert(strstr(buf_, (needle)), "message '%s' lacks '%s'", buf_, (needle));          \
	} while (0)

#endif
