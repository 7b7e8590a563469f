/* fuzz_safetensors.c — libFuzzer target for the model-file readers. The first
 * input byte picks the reader:
 *   0..169   the rest is a safetensors file (st_parse); if it parses, every
 *            tensor of a readable dtype is converted to f32 (st_read_f32_err)
 *   170..211 the rest is a config.json (hfconfig_parse); if it parses, the
 *            config is written back and must parse to the same config
 *   212..255 the rest is a llama2.c header + the file size as given
 *            (llama2c_parse_header)
 * Build and run (from the repository root), or `make fuzz`:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_safetensors.c \
 *     formats/safetensors.c formats/hfconfig.c formats/llama2c.c base/util.c \
 *     $(pkg-config --cflags --libs jansson libcrypto) -lm -o fuzz_safetensors
 *   ./fuzz_safetensors -max_total_time=600 corpus/ tests/fixtures/fuzz/fuzz_safetensors
 * The readers return errors instead of calling die() on bad input; a die()
 * here (e.g. from hfconfig_dump on a config that parsed) is a bug. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hfconfig.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char err[1024];
	uint8_t sel = data[0];
	data++, size--;
	/* A private copy so that reads past the input are caught by ASan. */
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	if (sel < 170) {
		st_file *f = st_parse(buf, size, "fuzz", err, sizeof err);
		if (f) {
			for (int i = 0; i < st_count(f); i++) {
				const st_info_t *t = st_info(f, i);
				if (t->dtype == ST_OTHER || t->numel > (1u << 22))
					continue;
				float *dst = malloc(t->numel ? t->numel * sizeof(float) : 1);
				st_read_f32_err(f, t->name, dst, t->numel, err, sizeof err);
				free(dst);
			}
			st_meta(f, "format");
			st_close(f);
		}
	} else if (sel < 212) {
		model_config a, b;
		if (hfconfig_parse((const char *)buf, size, "fuzz", &a, err, sizeof err) == 0) {
			char *s = hfconfig_dump(&a);
			if (hfconfig_parse(s, strlen(s), "dump", &b, err, sizeof err) != 0 || a.dim != b.dim ||
			    a.n_layers != b.n_layers || a.vocab_size != b.vocab_size || a.hidden_dim != b.hidden_dim)
				abort(); /* a config we accept must survive config.json */
			free(s);
		}
	} else if (size >= LLAMA2C_HEADER_BYTES + 8) {
		uint64_t fsize;
		memcpy(&fsize, buf + LLAMA2C_HEADER_BYTES, 8);
		model_config c;
		int shared;
		llama2c_parse_header(buf, fsize, "fuzz", &c, &shared, err, sizeof err);
	}
	free(buf);
	return 0;
}
