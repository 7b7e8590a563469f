/* emu.cc — the scheduler of the CPU emulator (emu.h): each thread of a
 * block is a coroutine on its own stack; it runs until it reaches a barrier
 * (__syncthreads, or the warp barrier inside a shuffle) or returns. When
 * every live thread of a warp waits at the warp barrier, or every live
 * thread of the block at __syncthreads, they are released. Threads start
 * with makecontext/setcontext and switch with _setjmp/_longjmp (no signal-
 * mask system call per switch). */
#undef _FORTIFY_SOURCE /* longjmp between coroutine stacks is intended */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include <map>

#include "emu.h"

/* ---- device memory: start address → size ---- */
static std::map<uintptr_t, size_t> g_dev;

void emu_dev_add(void *p, size_t n) { g_dev[(uintptr_t)p] = n; }

int emu_dev_del(void *p) { return g_dev.erase((uintptr_t)p) == 1; }

int emu_is_dev(const void *p)
{
	auto it = g_dev.upper_bound((uintptr_t)p);
	if (it == g_dev.begin())
		return 0;
	--it;
	/* one past the end counts: an empty range at the end of a block */
	return (uintptr_t)p <= it->first + it->second;
}

void emu_need_dev(const void *p, const char *call, int arg)
{
	if (p && !emu_is_dev(p)) {
		fprintf(stderr, "emu: %s: argument %d (%p) is not device memory (a fault on a GPU)\n", call, arg, p);
		abort();
	}
}

void emu_need_host(const void *p, const char *call, int arg)
{
	if (p && emu_is_dev(p)) {
		fprintf(stderr, "emu: %s: argument %d (%p) is device memory where host memory is expected\n", call, arg,
			p);
		abort();
	}
}

enum { RUN, WBLOCK, WWARP, DONE };
struct Thr {
	jmp_buf jb;
	dim3 tid;
	int state, started;
};

enum { MAXT = 1024, STACK = 1 << 16 };
static Thr thr[MAXT];
static char *stacks[MAXT];
static jmp_buf sched_jb;
static Thr *cur;
static int cur_i;
static dim3 g_bid, g_bdim, g_gdim;
static const std::function<void()> *g_fn;
static double slot[MAXT];

const dim3 &emu_tid(void) { return cur->tid; }
const dim3 &emu_bid(void) { return g_bid; }
const dim3 &emu_bdim(void) { return g_bdim; }
const dim3 &emu_gdim(void) { return g_gdim; }
int emu_lane_linear(void) { return cur_i; }
void *emu_lane_slot(int linear) { return &slot[linear]; }

static void wait_at(int st)
{
	cur->state = st;
	if (!_setjmp(cur->jb))
		_longjmp(sched_jb, 1);
}

void emu_syncthreads(void) { wait_at(WBLOCK); }
void emu_syncwarp(void) { wait_at(WWARP); }

static void tramp(void)
{
	(*g_fn)();
	cur->state = DONE;
	_longjmp(sched_jb, 1);
}

__attribute__((noinline)) static void init_block(int n)
{
	for (int i = 0; i < n; i++) {
		thr[i].state = RUN;
		thr[i].started = 0;
		thr[i].tid = dim3((unsigned)i, 0, 0);
	}
}

static void run_block(int n)
{
	init_block(n);
	for (;;) {
		for (volatile int i = 0; i < n; i++) {
			if (thr[i].state != RUN)
				continue;
			cur = &thr[i];
			cur_i = i;
			if (!_setjmp(sched_jb)) {
				if (thr[i].started)
					_longjmp(thr[i].jb, 1);
				thr[i].started = 1;
				ucontext_t uc;
				getcontext(&uc);
				if (!stacks[i] && !(stacks[i] = (char *)malloc(STACK)))
					abort();
				uc.uc_stack.ss_sp = stacks[i];
				uc.uc_stack.ss_size = STACK;
				uc.uc_link = NULL;
				makecontext(&uc, tramp, 0);
				setcontext(&uc);
			}
		}
		int done = 0, released = 0;
		for (int i = 0; i < n; i++)
			done += thr[i].state == DONE;
		if (done == n)
			return;
		for (int lo = 0; lo < n; lo += 32) {
			int hi = lo + 32 < n ? lo + 32 : n, any = 0, all = 1;
			for (int i = lo; i < hi; i++) {
				if (thr[i].state == WWARP)
					any = 1;
				else if (thr[i].state != DONE)
					all = 0;
			}
			if (any && all)
				for (int i = lo; i < hi; i++)
					if (thr[i].state == WWARP)
						thr[i].state = RUN, released = 1;
		}
		if (!released) {
			int any = 0, all = 1;
			for (int i = 0; i < n; i++) {
				if (thr[i].state == WBLOCK)
					any = 1;
				else if (thr[i].state != DONE)
					all = 0;
			}
			if (any && all)
				for (int i = 0; i < n; i++)
					if (thr[i].state == WBLOCK)
						thr[i].state = RUN, released = 1;
		}
		if (!released) {
			fprintf(stderr, "emu: deadlock in block %u: threads wait at barriers that cannot complete\n",
				g_bid.x);
			abort();
		}
	}
}

void emu_run(dim3 grid, dim3 block, const std::function<void()> &fn)
{
	const unsigned n = block.x;
	if (block.y != 1 || block.z != 1 || grid.y != 1 || grid.z != 1 || n == 0 || n > MAXT || n % 32 || grid.x == 0) {
		fprintf(stderr, "emu: unsupported launch <<<%u, %u>>>\n", grid.x, block.x);
		abort();
	}
	g_fn = &fn;
	g_gdim = grid;
	g_bdim = block;
	for (unsigned b = 0; b < grid.x; b++) {
		g_bid = dim3(b, 0, 0);
		run_block((int)n);
	}
}
