/* fuzz_records.c — libFuzzer target for the record-stream reader.
 * Build and run: make fuzz (tests/fuzz/run.sh), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_records.c \
 *     formats/*.c base/util.c $(pkg-config --cflags --libs msgpack jansson libcrypto) -lm
 * die() would exit the process, which libFuzzer counts as a failure, so an
 * atdie() hook jumps back here: a clean rejection is an ordinary outcome. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include "formats/records.h"

static jmp_buf back;
static void on_die(void) { longjmp(back, 1); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	if (!once) {
		once = 1;
		set_progname("fuzz_records");
		atdie(on_die);
	}
	FILE *f = fmemopen((void *)data, size, "rb");
	if (!f)
		return 0;
	static uint32_t *ids;
	static float *v;
	static size_t cap, vcap;
	if (!setjmp(back)) {
		rs_reader *r = rs_open_fp(f, "fuzz", NULL);
		const msgpack_object *rec;
		size_t n;
		while (rs_next(r, &rec)) {
			rs_get_ids(r, rec, "prompt_ids", 1000, &ids, &n, &cap);
			rs_get_f32v(r, rec, "tok", &v, &n, &vcap);
			double d;
			rs_get_f64(r, rec, "score", &d);
		}
	}
	rs_close_all(); /* also after a longjmp out of die() */
	fclose(f);
	return 0;
}
