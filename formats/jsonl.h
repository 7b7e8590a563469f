/* jsonl.h — JSON Lines input, one object per line, gzip read transparently
 * (zlib). Lines are counted from 1; blank lines are skipped (but counted), so
 * error messages can name "<file>: line N". */
#ifndef LBDPO_JSONL_H
#define LBDPO_JSONL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits of one line, for every reader (lbdpo-tokenize, lbdpo-sample,
 * lbdpo-show --from-json, lbdpo-eval). Parsed, a JSON value takes ~45 bytes
 * (jansson); BPE holds ~24 bytes per byte of the word it works on. Peak RSS
 * of lbdpo-tokenize with Llama 3's tokenizer (man lbdpo-tokenize): 170 MB on
 * a 15 MiB line of text, 390-440 MB on a 15 MiB line of one word. Longer lines
 * are an error. */
#define JSONL_MAX_LINE ((size_t)1 << 24)   /* 16 MiB */
#define JSONL_MAX_VALUES ((size_t)1 << 22) /* 4M values (array elements, members) */

typedef struct jsonl jsonl;

/* Open path ("-" or NULL = stdin), gzip or plain; dies naming the file. */
jsonl *jsonl_open(const char *path);
/* Read from an open descriptor (taken over and closed by jsonl_close). */
jsonl *jsonl_open_fd(int fd, const char *name);
/* Read plain JSON Lines from an open stream, e.g. one whose first byte was
 * peeked at with getc/ungetc (the caller closes it after jsonl_close). */
jsonl *jsonl_open_fp(FILE *fp, const char *name);
void jsonl_close(jsonl *r);

/* Next non-blank line (without its "\n" / "\r\n"), NUL-terminated; may
 * contain NUL bytes (len is the truth). Returns 1, 0 at end of input, or -1
 * with jsonl_error() set (read error, corrupt gzip, line too long). Valid
 * until the next call. */
int jsonl_next(jsonl *r, const char **line, size_t *len);
uint64_t jsonl_lineno(const jsonl *r); /* line number of the last line returned */
const char *jsonl_name(const jsonl *r);
const char *jsonl_error(const jsonl *r);

/* Parse one line as a JSON object. Returns a new reference, or NULL with a
 * one-line reason in err ("invalid UTF-8 at byte 12", "column 7: ...",
 * "not a JSON object", more than JSONL_MAX_VALUES values). */
json_t *jsonl_parse(const char *line, size_t len, char *err, size_t errlen);
/* The JSONL_MAX_VALUES check alone (for a line parsed by other means):
 * 0, or -1 with the reason in err. */
int jsonl_limits(const char *line, size_t len, char *err, size_t errlen);

/* Write one JSON document (jansson flags) and a newline to path ("-" =
 * stdout), atomically (out_open/out_close); dies on any failure. */
void json_save_file(const char *path, const json_t *j, size_t flags);

#endif
