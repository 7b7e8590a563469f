/* bpetrain.h — a small byte-level BPE trainer and a Hugging Face
 * tokenizer.json writer (GPT-2 style ByteLevel pre-tokenizer).
 *
 * Used by lbdpo-gendata to build the demo's own tokenizer from the text it
 * generates. Vocabulary layout of the written file:
 *   ids 0..255            one token per byte (GPT-2 byte-to-unicode strings)
 *   256 "<s>", 257 "</s>" special tokens (BOS, EOS), also in added_tokens
 *   258..vocab_size-1     merged tokens, in merge order
 */
#ifndef LBDPO_BPETRAIN_H
#define LBDPO_BPETRAIN_H

#include <stddef.h>
#include <stdint.h>

#define BPE_N_SPECIAL 2
#define BPE_BOS_ID 256
#define BPE_EOS_ID 257
#define BPE_FIRST_MERGE 258

typedef struct bpe_trainer bpe_trainer;

bpe_trainer *bpe_trainer_new(void);
/* Pre-tokenize text (GPT-2 regex, ASCII classes; bytes >= 0x80 count as
 * letters) and count its words. */
void bpe_trainer_add(bpe_trainer *t, const char *text, size_t n);
/* Learn merges until the vocabulary has vocab_size tokens (or no pair occurs
 * twice). no_digit_merges: never merge a symbol containing a digit, so
 * numbers stay one token per digit. Returns the vocabulary size reached. */
int bpe_trainer_learn(bpe_trainer *t, int vocab_size, int no_digit_merges);
/* Write the learned tokenizer as a Hugging Face tokenizer.json. */
void bpe_trainer_write_json(const bpe_trainer *t, const char *path);
void bpe_trainer_free(bpe_trainer *t);

/* GPT-2 byte-to-unicode: the code point that stands for byte b. */
uint32_t bpe_byte_to_unicode(uint8_t b);
/* Split text into GPT-2 pre-tokens: calls fn(start, len, ctx) per piece. */
void bpe_pretokenize(const char *s, size_t n, void (*fn)(const char *, size_t, void *), void *ctx);

#endif
