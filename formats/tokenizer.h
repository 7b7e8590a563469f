/* tokenizer.h — the model's own tokenizer, loaded from the file it ships with.
 *
 * Formats (detected by content):
 *   - Hugging Face tokenizer.json with a BPE model:
 *       byte-level (GPT-2, SmolLM, Qwen2, Llama 3): ByteLevel pre-tokenizer and/or
 *       Split pre-tokenizers with a Unicode regex (PCRE2, UTF + UCP), Digits;
 *       SentencePiece-style (Llama 2, TinyLlama): Prepend/Replace normalizers or a
 *       Metaspace pre-tokenizer, byte_fallback <0xXX> tokens, unk.
 *     Added tokens (special or not) are matched in the raw text before BPE.
 *     BOS: from the TemplateProcessing post-processor, or tokenizer_config.json
 *     beside the file (bos_token, add_bos_token); EOS: tokenizer_config.json's
 *     eos_token, else the first added token among </s>, <|endoftext|>,
 *     <|end_of_text|>, <|eot_id|>, <|im_end|>.
 *   - llama2.c tokenizer.bin: uint32 max_token_length, then per token
 *     {f32 score, i32 len, bytes}. Merges are score-ordered (highest first,
 *     leftmost on ties), byte fallback <0xXX> = id byte+3, a dummy-prefix space,
 *     BOS = 1, EOS = 2.
 *
 * Not thread-safe: a tok holds scratch buffers and a word cache; use one per
 * thread.
 */
#ifndef LBDPO_TOKENIZER_H
#define LBDPO_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok tok;

/* Load a tokenizer file, or a model directory's tokenizer.json, else its
 * tokenizer.model; dies with "<path>: <what>" on any error. */
tok *tok_load(const char *path);
/* The tokenizer a model directory ships, as transformers' AutoTokenizer
 * prefers it: dir/tokenizer.json, else dir/tokenizer.model (malloc'd);
 * NULL when dir is not a directory or holds neither. */
char *tok_file_in(const char *dir);
/* The directory of the file loaded (malloc'd): where tokenizer_config.json
 * and chat templates are looked for. */
char *tok_dir(const tok *t);
/* Load from memory; name is used in messages. Returns NULL and a one-line
 * message in err on failure (never exits: the fuzz target uses this).
 * dir (may be NULL) is where tokenizer_config.json is looked for. */
tok *tok_load_mem(const char *name, const void *buf, size_t n, const char *dir, char *err, size_t errlen);
void tok_free(tok *t);

/* Flags for tok_encode. */
#define TOK_ADD_BOS 1u /* prepend BOS if the tokenizer adds one (tok_add_bos) */
#define TOK_CONTINUE                                                                                                   \
	2u                /* the text continues earlier text: no dummy-prefix space /
			    Metaspace "first" prefix (used for completions, so that
			    decode(prompt_ids ++ completion_ids) == prompt ++ completion) */
#define TOK_NO_SPECIAL 4u /* do not match added/special tokens in the text */

/* Tokenize text[0..len) (UTF-8) and APPEND the ids to *ids (of *n, capacity
 * *cap, reallocated as needed). Returns 0, or -1 with tok_error() set
 * (invalid UTF-8, a character the vocabulary cannot express). */
int tok_encode(tok *t, const char *text, size_t len, unsigned flags, uint32_t **ids, size_t *n, size_t *cap);

/* Flags for tok_decode. */
#define TOK_SKIP_SPECIAL 1u /* leave out special tokens (BOS, EOS, ...) */
#define TOK_NO_STRIP 2u     /* keep the leading dummy-prefix space */

/* Decode ids to bytes, written (NUL-terminated) to *out (capacity *cap,
 * reallocated). Returns the length, or -1 with tok_error() set on an id out of
 * range. The leading space of a SentencePiece dummy prefix is removed unless
 * TOK_NO_STRIP. */
long tok_decode(tok *t, const uint32_t *ids, size_t n, unsigned flags, char **out, size_t *cap);

const char *tok_error(const tok *t);
uint32_t tok_vocab_size(const tok *t);
int64_t tok_bos(const tok *t); /* -1 when the tokenizer has none */
int64_t tok_eos(const tok *t);
int tok_add_bos(const tok *t); /* 1 if the model expects BOS before the prompt */
/* The decoded bytes of one token (NULL if out of range). */
const char *tok_piece(const tok *t, uint32_t id, size_t *len);
/* Look up a token by its exact text (added tokens and vocabulary); -1 if none. */
int64_t tok_lookup(const tok *t, const char *s, size_t len);
/* sha256 (hex) of the file's bytes; the path of the file loaded (a
 * directory given to tok_load: the file in it). */
const char *tok_fingerprint(const tok *t);
const char *tok_path(const tok *t);
/* "hf-bpe-bytelevel", "hf-bpe-sentencepiece" or "llama2c". */
const char *tok_kind(const tok *t);

/* Byte offset of the first invalid UTF-8 sequence in s[0..n), or n if valid
 * (overlongs, surrogates and > U+10FFFF are invalid). */
size_t utf8_invalid_at(const char *s, size_t n);

#endif
