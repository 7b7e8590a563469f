/* fuzz_tokenizer.c — libFuzzer target for the tokenizer loaders
 * (tokenizer.json, llama2.c tokenizer.bin), the BPE engine and the JSONL
 * reader + preference extraction. The first input byte picks the target:
 *   0..84    the rest is a tokenizer file (tok_load_mem); if it loads, encode
 *            and decode a few texts with it
 *   85..169  the rest is JSONL: jsonl_next / jsonl_parse / pref_extract
 *   170..255 the rest is text for tests/fixtures/tokenizer/bl_split.json and
 *            sp_bytefallback.json (encode, then decode; invalid UTF-8 must be
 *            refused, not crash)
 * Build and run (from the repository root), or `make fuzz`:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_tokenizer.c \
 *     formats/tokenizer.c formats/jsonl.c formats/prefs.c base/util.c \
 *     $(pkg-config --cflags --libs msgpack jansson libpcre2-8 zlib libcrypto) -lm \
 *     -o fuzz_tokenizer
 *   ./fuzz_tokenizer -max_total_time=600 corpus/ tests/fixtures/tokenizer
 * Nothing here calls die() on bad input: the loaders return errors. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "formats/jsonl.h"
#include "formats/prefs.h"
#include "formats/tokenizer.h"
#include "base/util.h"

static jmp_buf back;
static void on_die(void) { longjmp(back, 1); }

static void exercise(tok *t, const char *s, size_t n)
{
	static uint32_t *ids;
	static size_t cap, dcap;
	static char *dec;
	size_t ni = 0;
	if (tok_encode(t, s, n, TOK_ADD_BOS, &ids, &ni, &cap) == 0) {
		tok_encode(t, s, n, TOK_CONTINUE, &ids, &ni, &cap);
		tok_decode(t, ids, ni, 0, &dec, &dcap);
		tok_decode(t, ids, ni, TOK_SKIP_SPECIAL, &dec, &dcap);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static tok *fixed[2];
	static int once;
	if (!once) {
		once = 1;
		set_progname("fuzz_tokenizer");
		atdie(on_die);
		char err[600];
		const char *names[2] = {"tests/fixtures/tokenizer/bl_split.json",
					"tests/fixtures/tokenizer/sp_bytefallback.json"};
		for (int i = 0; i < 2; i++) {
			FILE *f = fopen(names[i], "rb");
			if (!f)
				continue;
			static char buf[1 << 18];
			size_t n = fread(buf, 1, sizeof buf, f);
			fclose(f);
			fixed[i] = tok_load_mem(names[i], buf, n, NULL, err, sizeof err);
		}
	}
	if (size < 1)
		return 0;
	unsigned mode = data[0];
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	if (setjmp(back))
		return 0; /* an I/O-level die(): a clean rejection */
	if (mode < 85) {
		char err[600];
		tok *t = tok_load_mem("fuzz", s, n, NULL, err, sizeof err);
		if (t) {
			exercise(t, "Hello, world! 123 \xE2\x96\x81 <s> caf\xC3\xA9 \xF0\x9F\xA4\x96", 32);
			exercise(t, " ", 1);
			tok_free(t);
		}
	} else if (mode < 170) {
		int fd = memfd_create("jsonl", 0);
		if (fd < 0)
			return 0;
		if (write(fd, s, n) != (ssize_t)n) {
			close(fd);
			return 0;
		}
		lseek(fd, 0, SEEK_SET);
		jsonl *r = jsonl_open_fd(fd, "fuzz.jsonl");
		const char *line;
		size_t len;
		char err[600];
		pref_text p = {0};
		while (jsonl_next(r, &line, &len) == 1) {
			json_t *o = jsonl_parse(line, len, err, sizeof err);
			if (!o)
				continue;
			for (int tpl = 0; tpl <= TPL_HH; tpl++)
				if (pref_extract(o, tpl, &p, err, sizeof err) == 0 && fixed[0])
					exercise(fixed[0], p.chosen.s, p.chosen.n);
			json_decref(o);
		}
		pref_text_free(&p);
		jsonl_close(r);
	} else {
		for (int i = 0; i < 2; i++)
			if (fixed[i])
				exercise(fixed[i], s, n);
	}
	return 0;
}
