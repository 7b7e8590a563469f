/* pairs.h — token-pair records held across a batch (lbdpo-logprob,
 * lbdpo-refcache).
 *
 * A record from rs_next() is valid only until the next call, but a record is
 * written only after the batch it belongs to is scored: a held record keeps
 * its raw bytes (for exact pass-through of the keys we do not touch) and its
 * ids (prompt_ids, chosen_ids, rejected_ids) in one buffer.
 */
#ifndef LBDPO_PAIRS_H
#define LBDPO_PAIRS_H

#include <msgpack.h>
#include <stdint.h>

#include "formats/records.h"

/* One preference pair's token ids (what libcore/train/score.h scores). */
typedef struct {
	const uint32_t *prompt, *chosen, *rejected;
	int n_prompt, n_chosen, n_rejected; /* n_prompt >= 1; completions may be empty */
} score_pair;

/* Tokens one pair occupies in a packed batch (prompt once, both completions). */
static inline long score_pair_tokens(const score_pair *p)
{
	return (long)p->n_prompt + p->n_chosen + p->n_rejected + (!p->n_chosen && !p->n_rejected);
}

typedef struct {
	char *raw;
	size_t raw_n, raw_cap;
	uint32_t *ids; /* prompt, chosen, rejected concatenated */
	size_t ids_cap;
	score_pair pair; /* points into ids (valid until the next pair_hold) */
	uint64_t index;  /* rs_index of the record */
	msgpack_unpacked u;
	int u_init;
} held_pair;

/* Copy the record last returned by rs_next(r) into h. Dies (through rs_die,
 * naming the record) on a missing or mistyped id array, an id >= vocab, an
 * empty prompt, or a pair longer than max_pos positions (0 = no limit). */
void pair_hold(held_pair *h, rs_reader *r, const msgpack_object *rec, uint32_t vocab, int max_pos);
/* The record as a msgpack map again (valid until the next pair_obj / pair_hold). */
const msgpack_object *pair_obj(held_pair *h);
void pair_free(held_pair *h);

/* Header checks against the model: the tokenizer's declared vocab_size must
 * fit the model's; want_sha (may be NULL) must equal tokenizer.sha256. The
 * model's own tokenizer is compared by prov_check (libcore/train/checkpoint.h). */
void pairs_check_header(rs_reader *r, int model_vocab, const char *want_sha);

/* Pack {"path": path, "fingerprint": fp} as the value of key in a header. */
void pairs_put_model(rs_writer *w, const char *key, const char *path, const char *fp);

#endif
