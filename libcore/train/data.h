/* data.h — preference records in memory (what lbdpo-step, lbdpo-beta and
 * lbdpo-eval read) and the provenance a stream's header declares. */
#ifndef LBDPO_TRAIN_DATA_H
#define LBDPO_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

/* ---- provenance: what made a stream's records ----
 * From the header: kind, tokenizer.sha256, tokenizer.vocab_size and
 * reference.fingerprint ("" / 0 when the header names none). A checkpoint
 * remembers the provenance of the records it was trained on, and every
 * program that combines a checkpoint with records compares the two: a
 * mismatch is an error, never a silent mix. */
typedef struct {
	char kind[16];
	char tok_sha[65];
	char ref_fp[65];
	int64_t tok_vocab;
} provenance;

/* 1 when s[0..n) is 64 lower-case hex digits: a sha256 as headers write it. */
int is_hex64(const char *s, size_t n);

struct rs_reader;
/* Read and validate r's header: hashes must be 64 hex digits, vocab_size in
 * [1, model_vocab]. Dies naming the stream. */
void prov_read(struct rs_reader *r, int model_vocab, provenance *p);

/* ---- records ---- */
typedef struct {
	uint32_t *prompt, *chosen, *rejected; /* token ids */
	int np, nc, nr;
	int has_ref;
	double ref_c, ref_r;        /* ref_chosen_logp, ref_rejected_logp */
	double ref_plogp;           /* ref_prompt_logp (mean) */
	double ref_entropy;         /* ref_prompt_entropy */
	int has_plogp, has_entropy; /* the two keys above were present */
	double margin;              /* reward margin (--loss reward; 0 when absent) */
	int group;                  /* index into pref_set.groups, -1 = none */
	char *id;                   /* NULL if absent */
	uint64_t index;             /* record index in the stream (1 = first) */
	uint64_t offset;            /* byte offset of the record in the stream */
} pref_rec;

typedef struct {
	pref_rec *r;
	int n;
	char **groups;
	int n_groups;
	char *name; /* stream name for messages */
	provenance prov;
} pref_set;

/* Read every record of a stream. need_ref: the reference keys are required
 * and the stream must be of kind "ref" (else "tokens" or "ref"). vocab:
 * token ids must be < vocab and < the header's tokenizer vocab_size (0 =
 * unchecked). Every sequence is non-empty. Dies naming the stream, record
 * and byte offset on any problem. */
pref_set *pref_load(const char *path, int need_ref, uint32_t vocab);
/* Die (naming stream, record, byte offset) if a record's prompt + longer
 * completion exceeds max_pos positions, the model's context (every arch). */
void pref_check_context(const pref_set *s, int max_pos);
void pref_free(pref_set *s);

#endif
