/* fuzz_ub.c — planted undefined behaviour for tests/sh/test_fuzz_report.sh:
 * every non-empty input overflows a signed int, which UBSan reports as
 * "runtime error:" and make fuzz must count. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	volatile int x = INT_MAX;
	if (size > 0)
		x = x + 1 + data[0];
	return x == 0;
}
