/* prefs.h — preference pairs from JSONL objects (Hugging Face TRL formats):
 *   standard        {"prompt": str, "chosen": str, "rejected": str}
 *   implicit prompt {"chosen": str, "rejected": str}: the prompt is their
 *                   longest common prefix cut back to a whitespace boundary
 *   conversational  prompt / chosen / rejected as lists of {"role","content"}
 *                   messages (prompt optional: then the common leading
 *                   messages), rendered with a built-in chat template.
 * Plus the truncation rule of lbdpo-tokenize(1). */
#ifndef LBDPO_PREFS_H
#define LBDPO_PREFS_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

enum { TPL_NONE = 0, TPL_CHATML, TPL_LLAMA3, TPL_HH };
/* Template by name ("chatml", "llama3", "hh"); -1 if unknown. */
int pref_template(const char *name);

typedef struct {
	char *s;
	size_t n, cap;
} strbuf;
void sb_add(strbuf *b, const char *s, size_t n);
void sb_free(strbuf *b);

enum { PREF_STANDARD, PREF_IMPLICIT, PREF_CONVERSATIONAL };
typedef struct {
	strbuf prompt, chosen, rejected; /* rendered text; completions without the prompt */
	int format;
} pref_text;

/* Fill p (its buffers reused) from a JSON object. Returns 0; PREF_TIE when
 * chosen and rejected are identical (no preference: callers drop the pair);
 * or -1 with a one-line reason in err: a missing key, a wrong type, an empty
 * completion, a prompt equal to both completions, conversational data
 * without a template. */
#define PREF_TIE 1
int pref_extract(json_t *o, int tpl, pref_text *p, char *err, size_t errlen);
void pref_text_free(pref_text *p);

/* Length of the implicit prompt of two texts: their longest common prefix,
 * shortened until it ends just before whitespace that both texts have there,
 * and does not itself end in whitespace (0 if there is no such place). So no
 * word is split, both completions start with whitespace, and one text being
 * a prefix of the other leaves no empty completion. */
size_t pref_implicit_prompt_len(const char *c, size_t nc, const char *r, size_t nr);

/* Truncation (lbdpo-tokenize(1)):
 *  1. a prompt longer than max_prompt (> 0) keeps its last max_prompt tokens
 *     (keep_end; a leading BOS stays first) or its first (keep_start);
 *  2. with max_length > 0, each completion keeps at most max_length - prompt
 *     tokens (its first ones); if that is < 1, the pair is dropped;
 *  3. a pair whose completions became identical is dropped.
 * Returns 1 to keep (*truncated set if anything was cut), 0 to drop. */
typedef struct {
	long max_length, max_prompt;
	int keep_end;
	int64_t bos; /* -1 if none */
} pref_trunc;
int pref_truncate(const pref_trunc *o, uint32_t *prompt, size_t *np, size_t *nc, size_t *nr,
		  const uint32_t *c, const uint32_t *r, int *truncated);

/* Pack a JSON value as msgpack (integers, reals, strings, arrays, objects). */
void pref_pack_json(msgpack_packer *pk, json_t *v);

#endif
