/* prefs.h — preference pairs from JSONL objects (Hugging Face TRL formats):
 *   standard        {"prompt": str, "chosen": str, "rejected": str}
 *   implicit prompt {"chosen": str, "rejected": str}: the prompt is their
 *                   common prefix, as TRL's extract_prompt splits it
 *   conversational  prompt / chosen / rejected as lists of {"role","content"}
 *                   messages (prompt optional: then the leading messages
 *                   both share, as TRL's extract_prompt), rendered with a chat
 *                   template: the model's own Jinja chat_template, a Jinja
 *                   file, or a built-in one.
 * Plus the truncation rule of lbdpo-tokenize(1). */
#ifndef LBDPO_PREFS_H
#define LBDPO_PREFS_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	char *s;
	size_t n, cap;
} strbuf;
void sb_add(strbuf *b, const char *s, size_t n);
void sb_free(strbuf *b);

enum { TPL_NONE = 0, TPL_CHATML, TPL_LLAMA3, TPL_HH, TPL_JINJA };
/* Template by name ("chatml", "llama3", "hh"); -1 if unknown. */
int pref_template(const char *name);

/* A chat template: built-in or Jinja (formats/jinja.h). */
typedef struct pref_tpl pref_tpl;
/* spec NULL: the tokenizer's own chat template, found as transformers finds
 * it: chat_template.jinja in tokdir, else tokenizer_config.json's
 * "chat_template" (a string, or a list of {name, template}: "default").
 * spec a built-in name: that template; otherwise spec is a Jinja file.
 * Template variables: bos_token, eos_token, unk_token, pad_token from
 * tokenizer_config.json in tokdir, else bos/eos (token texts, may be NULL).
 * Dies naming the file when spec names a file that cannot be read or
 * compiled. With spec NULL and no template, or one that does not compile,
 * the result renders nothing: pref_extract() then fails each conversational
 * record with the reason. tokdir may be NULL. */
pref_tpl *pref_tpl_load(const char *spec, const char *tokdir, const char *bos, const char *eos);
void pref_tpl_free(pref_tpl *t);
/* The built-in template tpl (TPL_CHATML...), static. */
pref_tpl *pref_tpl_builtin(int tpl);
/* "chatml", "tokenizer_config.json", the file's path..., or NULL if none. */
const char *pref_tpl_name(const pref_tpl *t);
/* 1 if the template ends each turn itself (chatml, llama3, every Jinja
 * template): no EOS is appended to its completions. */
int pref_tpl_eot(const pref_tpl *t);
/* 1 for a Jinja template: its text carries every special token it wants
 * (transformers tokenizes it with add_special_tokens=False): no BOS is
 * added to it. */
int pref_tpl_is_jinja(const pref_tpl *t);
/* Render a message list (add_gen: with the generation prompt) appended to
 * out. rec (may be NULL) is the input record: its "tools" (a list, or a JSON
 * string of one) and "chat_template_kwargs" (an object) become template
 * variables, as TRL passes them. Returns 0, or -1 with a one-line reason
 * (the template's own raise_exception message is "chat template: MESSAGE"). */
int pref_tpl_render(const pref_tpl *t, json_t *messages, int add_gen, json_t *rec, strbuf *out, char *err,
		    size_t errlen);


enum { PREF_STANDARD, PREF_IMPLICIT, PREF_CONVERSATIONAL };
typedef struct {
	strbuf prompt, chosen, rejected; /* rendered text; completions without the prompt */
	int format;
	/* conversational records (rendered): the prompt with the generation
	 * prompt as rendered, and the full renderings of prompt + chosen and
	 * prompt + rejected; prompt is gen cut back to the longest common
	 * prefix of the three, chosen/rejected the full texts after it (TRL's
	 * apply_chat_template). */
	int rendered;
	strbuf gen, full_c, full_r;
} pref_text;

/* Fill p (its buffers reused) from a JSON object. Returns 0; PREF_TIE when
 * chosen and rejected are identical (no preference: callers drop the pair);
 * or -1 with a one-line reason in err: a missing key, a wrong type, an empty
 * completion, a prompt equal to both completions, conversational data
 * without a template, a template's refusal. */
#define PREF_TIE 1
int pref_extract_tpl(json_t *o, const pref_tpl *tpl, pref_text *p, char *err, size_t errlen);
/* The same with a built-in template (TPL_NONE: none). */
int pref_extract(json_t *o, int tpl, pref_text *p, char *err, size_t errlen);
void pref_text_free(pref_text *p);

/* Length of the implicit prompt of two texts, as TRL's extract_prompt splits
 * them: up to their first differing character, less one space if the
 * character before it is one (the completions keep it); when the shorter text
 * is a prefix of the other, up to its last character. A first difference at
 * character 0 gives 0 (TRL would index character -1, the last). Both
 * completions are non-empty unless the texts are equal. */
size_t pref_implicit_prompt_len(const char *c, size_t nc, const char *r, size_t nr);

/* Truncation (lbdpo-tokenize(1)):
 *  1. a prompt longer than max_prompt (> 0) keeps its last max_prompt tokens
 *     (keep_end; a leading BOS stays first) or its first (keep_start);
 *  2. with max_length > 0, a pair whose prompt + longer completion exceeds
 *     max_length is cut by seq_keep_end (TRL's truncation_mode):
 *       keep_end (1): the prompt loses its start and keeps its last
 *       max_length - longer completion tokens (a leading BOS stays first);
 *       if that is < 1, the pair is dropped;
 *       keep_start (0): each completion keeps at most max_length - prompt
 *       tokens (its first ones); if that is < 1, the pair is dropped;
 *  3. a pair whose completions became identical is dropped.
 * Returns 1 to keep (*truncated set if anything was cut), 0 to drop. */
typedef struct {
	long max_length, max_prompt;
	int keep_end;     /* rule 1 */
	int64_t bos;      /* -1 if none */
	int seq_keep_end; /* rule 2 */
} pref_trunc;
int pref_truncate(const pref_trunc *o, uint32_t *prompt, size_t *np, size_t *nc, size_t *nr, const uint32_t *c,
		  const uint32_t *r, int *truncated);

/* The token ids of a JSONL record's "prompt" as lbdpo-sample(1) feeds it to
 * the model (and lbdpo-reward(1) scores it): a string is encoded, BOS first
 * when the tokenizer adds one, add_bos is set and the text does not already
 * begin with BOS's text; a message list is rendered with tpl and its
 * generation prompt (a Jinja rendering carries its own special tokens: no BOS
 * is added). ids are replaced (*n set); scratch holds the rendering. Returns
 * 0, or -1 with a one-line reason in err. */
struct tok;
int pref_prompt_ids(struct tok *tk, const pref_tpl *tpl, json_t *rec, int add_bos, strbuf *scratch, uint32_t **ids,
		    size_t *n, size_t *cap, char *err, size_t errlen);

/* Pack a JSON value as msgpack (integers, reals, strings, arrays, objects). */
void pref_pack_json(msgpack_packer *pk, json_t *v);

#endif
