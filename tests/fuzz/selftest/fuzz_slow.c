/* fuzz_slow.c — a planted hang for tests/sh/test_fuzz_report.sh: every
 * non-empty input runs forever, so make fuzz's per-input timeout must fire
 * and count it. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	volatile unsigned spin = 0;
	while (size > 0 && data)
		spin++;
	return 0;
}
