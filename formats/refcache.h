/* refcache.h — persistent cache of reference-model scores (lbdpo-refcache).
 *
 * Keyed by (model fingerprint, record content hash). Layout of a cache
 * directory (see man/lbdpo-refcache.1, "CACHE"):
 *
 *   DIR/LBDPO-REFCACHE           tag file, marks DIR as a cache root
 *   DIR/<fingerprint>/seg-*.rc   append-only segments, one per writing run
 *   DIR/<fingerprint>/tok-*.rc   the same for per-token entries (rollouts)
 *
 * Why append-only segments and not one file per entry: an entry is ~100
 * bytes, so a file per entry would cost a 4 KiB block and an inode each
 * (a million records = 4 GiB of metadata) and a rename + directory update per
 * record. A segment is written by exactly one process (O_EXCL name with host,
 * pid and time), so concurrent writers never share a file and no lock is
 * needed. Every entry carries its own checksum over (fingerprint, entry), so a
 * tail torn by SIGKILL or a crash, a zero-filled block after a power loss, a
 * flipped bit, or an entry copied from another model's directory all fail the
 * check and are skipped, never read back. Readers scan every segment at open,
 * including segments other processes are still appending to.
 */
#ifndef LBDPO_REFCACHE_H
#define LBDPO_REFCACHE_H

#include <stddef.h>
#include <stdint.h>

/* The reference quantities stored per record. */
typedef struct {
	double chosen_logp;                     /* sum of chosen completion-token log-probs */
	double rejected_logp;                   /* sum of rejected completion-token log-probs */
	double prompt_logp;                     /* mean prompt-token log-prob (PPL = exp(-it)) */
	double prompt_entropy;                  /* mean next-token entropy over prompt positions */
	int32_t chosen_n, rejected_n, prompt_n; /* token counts (checked on lookup) */
} refcache_val;

typedef struct {
	uint64_t loaded;     /* valid entries read at open */
	uint64_t corrupt;    /* entries / byte ranges that failed a check */
	uint64_t duplicates; /* valid entries whose key was already loaded */
	uint64_t segments;   /* segment files scanned */
	uint64_t written;    /* entries appended by this process */
} refcache_stats;

typedef struct refcache refcache;

/* Open (creating if needed) the cache root dir and load every entry stored
 * for the model with this fingerprint (64 hex chars). Dies when dir exists
 * but is not a cache root, or when a segment in this model's directory
 * declares another model (a wrong-model cache is refused, not mixed in).
 * model_path is informational (written to DIR/<fp>/model). dir NULL: a
 * table in memory only (nothing read or written). */
refcache *refcache_open(const char *dir, const char *fp_hex, const char *model_path);
/* 1 and *v filled if key is cached, else 0. */
int refcache_get(const refcache *c, const uint8_t key[32], refcache_val *v);
/* Add an entry: visible to refcache_get at once, buffered for the disk. */
void refcache_put(refcache *c, const uint8_t key[32], const refcache_val *v);
/* Append the buffered entries to this process's segment with one write(). */
void refcache_flush(refcache *c);
/* Flush, fdatasync, close, free. NULL is fine. */
void refcache_close(refcache *c);
const refcache_stats *refcache_get_stats(const refcache *c);

/* Per-token entries: the reference's log-prob of every completion token of
 * a rollout (lbdpo-refcache on lbdpo-sample --logprobs output), in their own
 * segments DIR/<fingerprint>/tok-*.rc of the same cache root, keyed by
 * refcache_key(prompt, np, completion, nc, NULL, 0) over the tokens scored.
 * Unlike a sequence-score segment, a per-token segment with a damaged entry
 * before its end is refused (dies naming the file and byte offset): only a
 * torn tail, what a kill leaves, is skipped. */
refcache *refcache_open_tokens(const char *dir, const char *fp_hex, const char *model_path);
/* The n cached log-probs of key (valid until the next put), or NULL. */
const float *refcache_get_tokens(const refcache *c, const uint8_t key[32], int32_t *n);
void refcache_put_tokens(refcache *c, const uint8_t key[32], const float *lp, int32_t n);

/* Content hash of a record: sha256 over a versioned, length-prefixed
 * little-endian encoding of the prompt, chosen and rejected ids. */
void refcache_key(const uint32_t *prompt, size_t np, const uint32_t *chosen, size_t nc, const uint32_t *rejected,
		  size_t nr, uint8_t key[32]);

/* Sizes of the on-disk format (tests corrupt files at known offsets). */
#define REFCACHE_SEG_HEADER 56
#define REFCACHE_ENTRY 96
#define REFCACHE_TOK_ENTRY(n) (56 + 4 * (size_t)(n))

#endif
