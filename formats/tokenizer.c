/* tokenizer.c — BPE tokenizers from Hugging Face tokenizer.json and llama2.c
 * tokenizer.bin (see tokenizer.h for what is supported).
 *
 * One BPE engine serves every format. Text is cut into "words" (added tokens
 * first, then normalizers and pre-tokenizers); each word is split into initial
 * units (bytes for byte-level, UTF-8 characters otherwise, with <0xXX> byte
 * fallback) and adjacent pairs are merged lowest rank first, leftmost on ties,
 * using a binary heap over a linked list of symbols: O(n log n) per word, so a
 * SentencePiece text with no pre-tokenizer (one long "word") stays fast.
 * Ranks: tokenizer.json's merge order; llama2.c's token scores (dense rank of
 * the score, highest first), looked up by concatenating the pieces exactly as
 * llama2.c's encode() does. Byte-level vocabularies are converted back from
 * GPT-2's byte-to-unicode alphabet to raw bytes at load time, so the engine
 * works on raw bytes everywhere.
 */
#define _GNU_SOURCE /* qsort_r, memmem */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "formats/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdarg.h>
#include <utf8proc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "base/util.h"

#define TOK_MAX_VOCAB (1u << 24)
#define TOK_MAX_FILE ((size_t)1 << 30)
#define CACHE_MAX_WORD 256 /* longer words are not cached */
#define CACHE_MAX_ENTRIES (1u << 16)

enum { K_BYTELEVEL, K_SENTENCEPIECE, K_LLAMA2C, K_SPM };

/* ---------------- hashing ---------------- */

static uint64_t hash_bytes(const void *p, size_t n)
{
	/* FNV-1a over 8-byte words with a final mix: short keys, good enough. */
	const unsigned char *s = p;
	uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = (h ^ w) * 0x100000001B3ull;
		h ^= h >> 29;
		s += 8;
		n -= 8;
	}
	uint64_t w = 0;
	if (n)
		memcpy(&w, s, n);
	h = (h ^ w) * 0x100000001B3ull;
	h ^= h >> 32;
	h *= 0xD6E8FEB86659FD93ull;
	h ^= h >> 32;
	return h;
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xFF51AFD7ED558CCDull;
	x ^= x >> 33;
	x *= 0xC4CEB9FE1A85EC53ull;
	x ^= x >> 33;
	return x;
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 16;
	while (c < n)
		c <<= 1;
	return c;
}

/* ---------------- the tokenizer ---------------- */

typedef struct {
	uint32_t off, len;
} span;

/* One pre-tokenizer split step: a regex whose matches (and the gaps between,
 * unless removed) become words. */
typedef struct {
	pcre2_code *re;
	pcre2_match_data *md;
	int removed; /* behavior Removed: drop the matches, keep gaps */
} split_step;

typedef struct {
	char *s;
	uint32_t len, id;
} added_tok;

struct tok {
	int kind;
	char *path;
	char sha[65];
	char err[512];

	/* vocabulary: piece = the form BPE matches; dec = decoded bytes */
	uint32_t V;
	char *arena; /* pieces then decoded forms */
	size_t arena_len, arena_cap;
	uint32_t *piece_off, *piece_len;
	uint32_t *dec_off, *dec_len;
	uint8_t *special;
	uint32_t *vmap; /* id+1, open addressing by piece */
	size_t vmap_cap;

	/* merges (HF): key (a<<32|b) -> rank, result */
	uint64_t *mkey;
	uint32_t *mrank, *mres;
	size_t mcap;
	/* llama2.c: rank of each token's score (0 = highest) */
	uint32_t *score_rank;

	int byte_fallback, fuse_unk, ignore_merges;
	int64_t unk;
	uint32_t byte_id[256]; /* initial unit of each byte (byte-level) / <0xXX> token; UINT32_MAX none */

	/* normalizers (SentencePiece style) */
	char *prepend; /* Prepend normalizer */
	struct {
		char *from, *to;
	} repl[8];
	int nrepl;
	/* Metaspace pre-tokenizer */
	int metaspace, ms_prepend; /* 0 never, 1 always, 2 first */
	int ms_split;
	char ms_repl[8];
	/* ByteLevel add_prefix_space */
	int bl_prefix_space;
	split_step steps[8];
	int nsteps;
	int nfc;           /* NFC normalizer (Qwen2) */
	int dummy_prefix;  /* llama2.c, SentencePiece: a leading space */
	int squeeze_ws;    /* SentencePiece remove_extra_whitespaces */
	int strip_leading; /* decoder removes one leading space (SentencePiece
			      with squeeze_ws: every leading space piece's) */

	added_tok *added;
	int nadded;
	uint8_t added_first[256]; /* some added token starts with this byte */

	int64_t bos, eos;
	int add_bos;

	/* scratch */
	char *nbuf;
	size_t nbuf_cap;
	span *spans;
	size_t nspans, spans_cap;
	span *spans2;
	size_t spans2_cap;
	uint32_t *sym_id, *sym_next; /* a unit merged away: sym_id NONE, sym_next the unit it went into */
	size_t sym_cap;
	/* 8 bytes per candidate merge: a word of n bytes holds up to 2n (its
	 * pairs, plus 2 per merge less 1 popped); the pair is looked up again
	 * when popped (peak memory on a 16 MiB word: see bpe_word) */
	struct heap_ent {
		uint32_t rank, left;
	} * heap;
	size_t heap_n, heap_cap, heap_lim; /* heap_lim: compact at this size */
	char *cat;
	size_t cat_cap;

	/* word cache: word bytes -> ids */
	struct cache_ent {
		uint64_t h;
		uint32_t koff, klen, voff, vlen;
	} * cache;
	size_t cache_n;
	char *ckeys;
	size_t ckeys_len, ckeys_cap;
	uint32_t *cvals;
	size_t cvals_len, cvals_cap;
};

static void seterr(tok *t, const char *fmt, ...) LBDPO_PRINTF(2, 3);
static void seterr(tok *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof t->err, fmt, ap);
	va_end(ap);
}

const char *tok_error(const tok *t) { return t->err; }
uint32_t tok_vocab_size(const tok *t) { return t->V; }
int64_t tok_bos(const tok *t) { return t->bos; }
int64_t tok_eos(const tok *t) { return t->eos; }
int tok_add_bos(const tok *t) { return t->add_bos; }
const char *tok_fingerprint(const tok *t) { return t->sha; }
const char *tok_path(const tok *t) { return t->path; }
const char *tok_kind(const tok *t)
{
	return t->kind == K_BYTELEVEL       ? "hf-bpe-bytelevel"
	       : t->kind == K_SENTENCEPIECE ? "hf-bpe-sentencepiece"
	       : t->kind == K_SPM           ? "sentencepiece"
					    : "llama2c";
}
const char *tok_piece(const tok *t, uint32_t id, size_t *len)
{
	if (id >= t->V)
		return NULL;
	*len = t->dec_len[id];
	return t->arena + t->dec_off[id];
}

/* ---------------- UTF-8 ---------------- */

size_t utf8_invalid_at(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp, min;
		if ((c & 0xE0) == 0xC0)
			k = 1, cp = c & 0x1F, min = 0x80;
		else if ((c & 0xF0) == 0xE0)
			k = 2, cp = c & 0x0F, min = 0x800;
		else if ((c & 0xF8) == 0xF0)
			k = 3, cp = c & 0x07, min = 0x10000;
		else
			return i;
		if (i + k >= n)
			return i;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += k + 1;
	}
	return n;
}

static size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4; }

/* decode one code point at s (valid UTF-8 assumed, n bytes left) */
static uint32_t utf8_cp(const unsigned char *s, size_t n, size_t *k)
{
	size_t l = utf8_len(s[0]);
	if (l > n)
		l = n;
	*k = l;
	if (l == 1)
		return s[0];
	uint32_t cp = s[0] & (0x7F >> l);
	for (size_t j = 1; j < l; j++)
		cp = cp << 6 | (s[j] & 0x3F);
	return cp;
}

/* GPT-2's byte-to-unicode alphabet: printable bytes map to themselves, the
 * other 68 to U+0100.. in byte order. Inverse: code point -> byte (or -1). */
static void bytelevel_inverse(int16_t inv[324])
{
	for (int i = 0; i < 324; i++)
		inv[i] = -1;
	int n = 0;
	for (int b = 0; b < 256; b++) {
		int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
		if (keep)
			inv[b] = (int16_t)b;
		else
			inv[256 + n++] = (int16_t)b;
	}
}

/* ---------------- vocabulary ---------------- */

static uint32_t arena_add(tok *t, const char *s, size_t n)
{
	if (t->arena_len + n + 1 > t->arena_cap) {
		size_t c = t->arena_cap ? t->arena_cap : 1 << 16;
		while (c < t->arena_len + n + 1)
			c *= 2;
		t->arena = xrealloc(t->arena, c);
		t->arena_cap = c;
	}
	uint32_t off = (uint32_t)t->arena_len;
	memcpy(t->arena + off, s, n);
	t->arena[off + n] = 0;
	t->arena_len += n + 1;
	return off;
}

static int64_t vmap_find(const tok *t, const char *s, size_t n)
{
	if (!t->vmap_cap)
		return -1;
	size_t m = t->vmap_cap - 1, i = hash_bytes(s, n) & m;
	for (;;) {
		uint32_t e = t->vmap[i];
		if (!e)
			return -1;
		uint32_t id = e - 1;
		if (t->piece_len[id] == n && !memcmp(t->arena + t->piece_off[id], s, n))
			return id;
		i = (i + 1) & m;
	}
}

/* Insert id's piece; the first id wins on duplicates. */
static void vmap_insert(tok *t, uint32_t id)
{
	const char *s = t->arena + t->piece_off[id];
	size_t n = t->piece_len[id];
	size_t m = t->vmap_cap - 1, i = hash_bytes(s, n) & m;
	for (;;) {
		uint32_t e = t->vmap[i];
		if (!e) {
			t->vmap[i] = id + 1;
			return;
		}
		uint32_t o = e - 1;
		if (t->piece_len[o] == n && !memcmp(t->arena + t->piece_off[o], s, n))
			return;
		i = (i + 1) & m;
	}
}

int64_t tok_lookup(const tok *t, const char *s, size_t n)
{
	for (int i = 0; i < t->nadded; i++)
		if (t->added[i].len == n && !memcmp(t->added[i].s, s, n))
			return t->added[i].id;
	return vmap_find(t, s, n);
}

static void vocab_alloc(tok *t, uint32_t V)
{
	t->V = V;
	t->piece_off = xcalloc(V, sizeof(uint32_t));
	t->piece_len = xcalloc(V, sizeof(uint32_t));
	t->dec_off = xcalloc(V, sizeof(uint32_t));
	t->dec_len = xcalloc(V, sizeof(uint32_t));
	t->special = xcalloc(V, 1);
}

static void vmap_build(tok *t)
{
	t->vmap_cap = pow2_at_least((size_t)t->V * 2 + 2);
	t->vmap = xcalloc(t->vmap_cap, sizeof(uint32_t));
	for (uint32_t id = 0; id < t->V; id++)
		vmap_insert(t, id);
}

/* <0xXX> -> XX, or -1 */
static int parse_byte_token(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
		return -1;
	int v = 0;
	for (int i = 3; i < 5; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* ---------------- merges ---------------- */

static void merges_alloc(tok *t, size_t n)
{
	t->mcap = pow2_at_least(n * 2 + 2);
	t->mkey = xmalloc(t->mcap * sizeof(uint64_t));
	memset(t->mkey, 0xFF, t->mcap * sizeof(uint64_t));
	t->mrank = xmalloc(t->mcap * sizeof(uint32_t));
	t->mres = xmalloc(t->mcap * sizeof(uint32_t));
}

/* First rank wins on duplicates (tokenizers keeps the first too). */
static void merges_put(tok *t, uint32_t a, uint32_t b, uint32_t rank, uint32_t res)
{
	uint64_t k = (uint64_t)a << 32 | b;
	size_t m = t->mcap - 1, i = hash_u64(k) & m;
	while (t->mkey[i] != UINT64_MAX) {
		if (t->mkey[i] == k)
			return;
		i = (i + 1) & m;
	}
	t->mkey[i] = k;
	t->mrank[i] = rank;
	t->mres[i] = res;
}

/* Rank and result of merging a,b; 0 if they do not merge. */
static int pair_lookup(tok *t, uint32_t a, uint32_t b, uint32_t *rank, uint32_t *res)
{
	if (t->kind != K_LLAMA2C && t->kind != K_SPM) {
		uint64_t k = (uint64_t)a << 32 | b;
		size_t m = t->mcap - 1, i = hash_u64(k) & m;
		for (;;) {
			uint64_t e = t->mkey[i];
			if (e == UINT64_MAX)
				return 0;
			if (e == k) {
				*rank = t->mrank[i];
				*res = t->mres[i];
				return 1;
			}
			i = (i + 1) & m;
		}
	}
	/* llama2.c: the concatenated piece must be in the vocabulary */
	size_t la = t->piece_len[a], lb = t->piece_len[b];
	if (la + lb + 1 > t->cat_cap)
		xgrow((void **)&t->cat, &t->cat_cap, la + lb + 1, 1);
	memcpy(t->cat, t->arena + t->piece_off[a], la);
	memcpy(t->cat + la, t->arena + t->piece_off[b], lb);
	int64_t id = vmap_find(t, t->cat, la + lb);
	if (id < 0 || t->score_rank[id] == UINT32_MAX)
		return 0;
	*rank = t->score_rank[id];
	*res = (uint32_t)id;
	return 1;
}

/* ---------------- BPE on one word ---------------- */

static int heap_less(const struct heap_ent *x, const struct heap_ent *y)
{
	return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static void heap_compact(tok *t);

static void heap_push(tok *t, struct heap_ent e)
{
	if (t->heap_lim && t->heap_n >= t->heap_lim)
		heap_compact(t);
	if (t->heap_n == t->heap_cap)
		xgrow((void **)&t->heap, &t->heap_cap, t->heap_n + 1, sizeof e);
	size_t i = t->heap_n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!heap_less(&e, &t->heap[p]))
			break;
		t->heap[i] = t->heap[p];
		i = p;
	}
	t->heap[i] = e;
}

static struct heap_ent heap_pop(tok *t)
{
	struct heap_ent top = t->heap[0], e = t->heap[--t->heap_n];
	size_t i = 0, n = t->heap_n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && heap_less(&t->heap[c + 1], &t->heap[c]))
			c++;
		if (!heap_less(&t->heap[c], &e))
			break;
		t->heap[i] = t->heap[c];
		i = c;
	}
	if (n)
		t->heap[i] = e;
	return top;
}

#define NONE UINT32_MAX

/* The merge an entry stands for, if it is still to be done: left alive, a
 * right neighbour, and their pair of the entry's rank. A pair of the same
 * rank is the same merge (ranks are unique per pair; SentencePiece: per
 * score, and an entry of the same rank at the same place is where a fresh
 * entry would be in the order), so no more than this is kept. */
static int heap_live(tok *t, struct heap_ent e, uint32_t *res)
{
	uint32_t l = e.left, r = t->sym_next[l], rank;
	return t->sym_id[l] != NONE && r != NONE && pair_lookup(t, t->sym_id[l], t->sym_id[r], &rank, res) &&
	       rank == e.rank;
}

static int heap_cmp(const void *a, const void *b)
{
	const struct heap_ent *x = a, *y = b;
	return heap_less(x, y) ? -1 : heap_less(y, x) ? 1 : 0;
}

/* Drop the stale and duplicate entries; sorted, the rest is a heap. Every
 * merge adds up to two entries: without this a long word's heap would grow
 * to twice its length. */
static void heap_compact(tok *t)
{
	size_t k = 0;
	uint32_t res;
	for (size_t i = 0; i < t->heap_n; i++)
		if (heap_live(t, t->heap[i], &res))
			t->heap[k++] = t->heap[i];
	qsort(t->heap, k, sizeof *t->heap, heap_cmp);
	size_t u = 0;
	for (size_t i = 0; i < k; i++)
		if (!u || heap_cmp(&t->heap[u - 1], &t->heap[i]))
			t->heap[u++] = t->heap[i];
	t->heap_n = u;
	/* still mostly live: let it grow (compacting again soon would cost
	 * O(n log n) for little) */
	if (u > t->heap_lim / 2)
		t->heap_lim = u * 2;
}

static void try_pair(tok *t, uint32_t l)
{
	uint32_t r = t->sym_next[l];
	if (r == NONE)
		return;
	uint32_t rank, res;
	if (pair_lookup(t, t->sym_id[l], t->sym_id[r], &rank, &res))
		heap_push(t, (struct heap_ent){rank, l});
}

static void push_id(uint32_t **ids, size_t *n, size_t *cap, uint32_t id)
{
	if (*n == *cap)
		xgrow((void **)ids, cap, *n + 1, sizeof(uint32_t));
	(*ids)[(*n)++] = id;
}

static int add_unit(tok *t, size_t *ns, uint32_t id)
{
	if (*ns == t->sym_cap) {
		size_t c = t->sym_cap;
		xgrow((void **)&t->sym_id, &c, *ns + 1, sizeof(uint32_t));
		c = t->sym_cap;
		xgrow((void **)&t->sym_next, &c, *ns + 1, sizeof(uint32_t));
		t->sym_cap = c;
	}
	t->sym_id[(*ns)++] = id;
	return 0;
}

/* The live unit before l, NONE at the start. Units merged away point to
 * the unit they went into, further left: followed (and shortened) they lead
 * to it, for 4 bytes a unit less than a sym_prev array (a 16 MiB word is
 * 16M units). Unit 0 is never merged away. */
static uint32_t prev_live(tok *t, uint32_t l)
{
	if (!l)
		return NONE;
	uint32_t j = l - 1;
	while (t->sym_id[j] == NONE)
		j = t->sym_next[j];
	for (uint32_t k = l - 1, nx; t->sym_id[k] == NONE; k = nx)
		nx = t->sym_next[k], t->sym_next[k] = j;
	return j;
}

/* BPE of word w[0..n) into ids (appended). */
static int bpe_word(tok *t, const char *w, size_t n, uint32_t **ids, size_t *nids, size_t *cap)
{
	if (!n)
		return 0;
	if (t->ignore_merges) {
		int64_t id = vmap_find(t, w, n);
		if (id >= 0) {
			push_id(ids, nids, cap, (uint32_t)id);
			return 0;
		}
	}
	/* initial units */
	size_t ns = 0;
	const unsigned char *s = (const unsigned char *)w;
	if (t->kind == K_BYTELEVEL) {
		for (size_t i = 0; i < n; i++) {
			uint32_t id = t->byte_id[s[i]];
			if (id == NONE) {
				if (t->unk < 0) {
					seterr(t, "byte 0x%02X is not in the vocabulary and there is no unk token",
					       s[i]);
					return -1;
				}
				id = (uint32_t)t->unk;
			}
			add_unit(t, &ns, id);
		}
	} else {
		for (size_t i = 0; i < n;) {
			size_t k = utf8_len(s[i]);
			if (k > n - i)
				k = n - i;
			int64_t id = vmap_find(t, w + i, k);
			if (id >= 0)
				add_unit(t, &ns, (uint32_t)id);
			else {
				int ok = t->byte_fallback;
				for (size_t j = 0; ok && j < k; j++)
					ok = t->byte_id[s[i + j]] != NONE;
				if (ok) {
					for (size_t j = 0; j < k; j++)
						add_unit(t, &ns, t->byte_id[s[i + j]]);
				} else if (t->unk >= 0) {
					if (!(t->fuse_unk && ns && t->sym_id[ns - 1] == (uint32_t)t->unk))
						add_unit(t, &ns, (uint32_t)t->unk);
				} else {
					seterr(t,
					       "character at byte %zu is not in the vocabulary and there is no unk token or byte fallback",
					       i);
					return -1;
				}
			}
			i += k;
		}
	}
	for (size_t i = 0; i < ns; i++)
		t->sym_next[i] = i + 1 < ns ? (uint32_t)i + 1 : NONE;
	t->heap_n = 0;
	t->heap_lim = ns + ns / 4 + 64;
	for (size_t i = 0; i + 1 < ns; i++)
		try_pair(t, (uint32_t)i);
	while (t->heap_n) {
		struct heap_ent e = heap_pop(t);
		uint32_t l = e.left, r = t->sym_next[l], res;
		if (!heap_live(t, e, &res))
			continue; /* stale: left merged away, or its pair changed */
		t->sym_id[l] = res;
		t->sym_id[r] = NONE;
		t->sym_next[l] = t->sym_next[r];
		t->sym_next[r] = l;
		uint32_t p = prev_live(t, l);
		if (p != NONE)
			try_pair(t, p);
		try_pair(t, l);
	}
	for (uint32_t i = 0; i != NONE && ns; i = t->sym_next[i])
		push_id(ids, nids, cap, t->sym_id[i]);
	return 0;
}

/* BPE with the word cache. */
static int bpe_cached(tok *t, const char *w, size_t n, uint32_t **ids, size_t *nids, size_t *cap)
{
	if (n > CACHE_MAX_WORD)
		return bpe_word(t, w, n, ids, nids, cap);
	uint64_t h = hash_bytes(w, n);
	size_t m = 2 * CACHE_MAX_ENTRIES - 1, i = h & m;
	if (!t->cache)
		t->cache = xcalloc(2 * CACHE_MAX_ENTRIES, sizeof *t->cache);
	for (;;) {
		struct cache_ent *c = &t->cache[i];
		if (!c->klen)
			break;
		if (c->h == h && c->klen == n && !memcmp(t->ckeys + c->koff, w, n)) {
			for (uint32_t j = 0; j < c->vlen; j++)
				push_id(ids, nids, cap, t->cvals[c->voff + j]);
			return 0;
		}
		i = (i + 1) & m;
	}
	size_t before = *nids;
	if (bpe_word(t, w, n, ids, nids, cap))
		return -1;
	if (t->cache_n >= CACHE_MAX_ENTRIES) { /* full: start over */
		memset(t->cache, 0, 2 * CACHE_MAX_ENTRIES * sizeof *t->cache);
		t->cache_n = t->ckeys_len = t->cvals_len = 0;
		i = h & m;
	}
	size_t nv = *nids - before;
	if (t->ckeys_len + n > t->ckeys_cap)
		xgrow((void **)&t->ckeys, &t->ckeys_cap, t->ckeys_len + n, 1);
	if (t->cvals_len + nv > t->cvals_cap)
		xgrow((void **)&t->cvals, &t->cvals_cap, t->cvals_len + nv, sizeof(uint32_t));
	struct cache_ent *c = &t->cache[i];
	c->h = h;
	c->koff = (uint32_t)t->ckeys_len;
	c->klen = (uint32_t)n;
	c->voff = (uint32_t)t->cvals_len;
	c->vlen = (uint32_t)nv;
	memcpy(t->ckeys + t->ckeys_len, w, n);
	memcpy(t->cvals + t->cvals_len, *ids + before, nv * sizeof(uint32_t));
	t->ckeys_len += n;
	t->cvals_len += nv;
	t->cache_n++;
	return 0;
}

/* ---------------- normalize + pre-tokenize one segment ---------------- */

static void nbuf_reserve(tok *t, size_t n)
{
	if (n > t->nbuf_cap)
		xgrow((void **)&t->nbuf, &t->nbuf_cap, n, 1);
}

static void spans_push(span **sp, size_t *n, size_t *cap, size_t off, size_t len)
{
	if (!len)
		return;
	if (*n == *cap)
		xgrow((void **)sp, cap, *n + 1, sizeof(span));
	(*sp)[(*n)++] = (span){(uint32_t)off, (uint32_t)len};
}

/* Replace every `from` by `to` in nbuf[0..*len); uses `cat` as scratch. */
static void replace_all(tok *t, size_t *len, const char *from, const char *to)
{
	size_t lf = strlen(from), lt = strlen(to), n = *len;
	if (!lf)
		return;
	size_t out = 0;
	xgrow((void **)&t->cat, &t->cat_cap, n * (lt + 1) + 1, 1);
	for (size_t i = 0; i < n;) {
		if (i + lf <= n && !memcmp(t->nbuf + i, from, lf)) {
			memcpy(t->cat + out, to, lt);
			out += lt;
			i += lf;
		} else
			t->cat[out++] = t->nbuf[i++];
	}
	nbuf_reserve(t, out + 1);
	memcpy(t->nbuf, t->cat, out);
	*len = out;
}

/* at_start: the segment starts the text (no added token before it); cont: the
 * text continues earlier text (TOK_CONTINUE). Prepend normalizers, Metaspace
 * "always" and ByteLevel add_prefix_space apply to every segment as in
 * tokenizers, except the first of a continuation; Metaspace "first" and the
 * llama2.c dummy prefix only to the start of a text that is not one. */
static int encode_segment(tok *t, const char *s, size_t n, int at_start, int cont, uint32_t **ids, size_t *nids,
			  size_t *cap)
{
	int first = at_start && !cont, every = !(at_start && cont);
	if (t->kind == K_LLAMA2C || t->kind == K_SPM) {
		/* llama2.c / SentencePiece BPE: whole text, one word, dummy prefix " "
		 * (pieces hold ' ' where the model file has U+2581) */
		nbuf_reserve(t, n + 2);
		size_t len = 0;
		int lead = n && s[0] == ' ';
		if (t->squeeze_ws) { /* no leading/trailing spaces, runs become one */
			while (n && s[0] == ' ')
				s++, n--;
			while (n && s[n - 1] == ' ')
				n--;
		}
		/* a continuation's leading spaces are a run inside the whole
		 * text: one space (the word boundary) is kept */
		if (((t->dummy_prefix && first) || (t->squeeze_ws && lead && at_start && cont)) && n)
			t->nbuf[len++] = ' ';
		for (size_t i = 0; i < n; i++)
			if (!(t->squeeze_ws && s[i] == ' ' && i && s[i - 1] == ' '))
				t->nbuf[len++] = s[i];
		return bpe_word(t, t->nbuf, len, ids, nids, cap);
	}
	/* normalizers: NFC first (utf8proc; ASCII is already NFC) */
	utf8proc_uint8_t *nfc = NULL;
	if (t->nfc) {
		size_t i = 0;
		while (i < n && (unsigned char)s[i] < 0x80)
			i++;
		if (i < n) {
			utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfc,
							  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
			if (r < 0) {
				seterr(t, "NFC normalization failed: %s", utf8proc_errmsg(r));
				return -1;
			}
			s = (const char *)nfc, n = (size_t)r;
		}
	}
	nbuf_reserve(t, n + 16);
	size_t len = 0;
	if (t->prepend && n && every) {
		size_t lp = strlen(t->prepend);
		nbuf_reserve(t, n + lp + 1);
		memcpy(t->nbuf, t->prepend, lp);
		len = lp;
	}
	memcpy(t->nbuf + len, s, n);
	len += n;
	free(nfc);
	for (int i = 0; i < t->nrepl; i++)
		replace_all(t, &len, t->repl[i].from, t->repl[i].to);
	/* Metaspace pre-tokenizer: spaces become the replacement, maybe a prefix */
	if (t->metaspace) {
		char rep[8];
		strcpy(rep, t->ms_repl);
		replace_all(t, &len, " ", rep);
		size_t lr = strlen(rep);
		int pre = (t->ms_prepend == 1 && every) || (t->ms_prepend == 2 && first);
		if (pre && len && !(len >= lr && !memcmp(t->nbuf, rep, lr))) {
			nbuf_reserve(t, len + lr + 1);
			memmove(t->nbuf + lr, t->nbuf, len);
			memcpy(t->nbuf, rep, lr);
			len += lr;
		}
	}
	if (t->bl_prefix_space && every && len && t->nbuf[0] != ' ') {
		nbuf_reserve(t, len + 2);
		memmove(t->nbuf + 1, t->nbuf, len);
		t->nbuf[0] = ' ';
		len++;
	}
	/* pre-tokenize into spans */
	t->nspans = 0;
	spans_push(&t->spans, &t->nspans, &t->spans_cap, 0, len);
	if (t->metaspace && t->ms_split) {
		size_t lr = strlen(t->ms_repl), n2 = 0;
		for (size_t k = 0; k < t->nspans; k++) {
			span sp = t->spans[k];
			size_t start = sp.off;
			for (size_t i = sp.off + 1; i + lr <= (size_t)sp.off + sp.len; i++)
				if (!memcmp(t->nbuf + i, t->ms_repl, lr)) {
					spans_push(&t->spans2, &n2, &t->spans2_cap, start, i - start);
					start = i;
				}
			spans_push(&t->spans2, &n2, &t->spans2_cap, start, sp.off + sp.len - start);
		}
		span *tmp = t->spans;
		size_t tc = t->spans_cap;
		t->spans = t->spans2, t->spans_cap = t->spans2_cap, t->nspans = n2;
		t->spans2 = tmp, t->spans2_cap = tc;
	}
	for (int st = 0; st < t->nsteps; st++) {
		split_step *ss = &t->steps[st];
		size_t n2 = 0;
		for (size_t k = 0; k < t->nspans; k++) {
			span sp = t->spans[k];
			size_t pos = sp.off, end = (size_t)sp.off + sp.len;
			const PCRE2_SPTR subj = (PCRE2_SPTR)t->nbuf;
			while (pos < end) {
				int rc = pcre2_match(ss->re, subj, end, pos, PCRE2_NO_UTF_CHECK, ss->md, NULL);
				if (rc < 0)
					break;
				PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ss->md);
				size_t ms = ov[0], me = ov[1];
				if (me == ms) { /* empty match: step one character */
					if (ms >= end)
						break;
					size_t k2 = utf8_len((unsigned char)t->nbuf[ms]);
					pos = ms + k2 <= end ? ms + k2 : end;
					continue;
				}
				spans_push(&t->spans2, &n2, &t->spans2_cap, pos, ms - pos);
				if (!ss->removed)
					spans_push(&t->spans2, &n2, &t->spans2_cap, ms, me - ms);
				pos = me;
			}
			if (pos < end)
				spans_push(&t->spans2, &n2, &t->spans2_cap, pos, end - pos);
		}
		span *tmp = t->spans;
		size_t tc = t->spans_cap;
		t->spans = t->spans2, t->spans_cap = t->spans2_cap, t->nspans = n2;
		t->spans2 = tmp, t->spans2_cap = tc;
	}
	for (size_t k = 0; k < t->nspans; k++)
		if (bpe_cached(t, t->nbuf + t->spans[k].off, t->spans[k].len, ids, nids, cap))
			return -1;
	return 0;
}

int tok_encode(tok *t, const char *text, size_t len, unsigned flags, uint32_t **ids, size_t *n, size_t *cap)
{
	size_t bad = utf8_invalid_at(text, len);
	if (bad != len) {
		seterr(t, "invalid UTF-8 at byte %zu", bad);
		return -1;
	}
	if ((flags & TOK_ADD_BOS) && t->add_bos && t->bos >= 0)
		push_id(ids, n, cap, (uint32_t)t->bos);
	int at_start = 1, cont = (flags & TOK_CONTINUE) != 0;
	size_t seg = 0, i = 0;
	int match = t->nadded && !(flags & TOK_NO_SPECIAL) && t->kind != K_LLAMA2C;
	while (match && i < len) {
		unsigned char c = (unsigned char)text[i];
		int best = -1;
		if (t->added_first[c])
			for (int a = 0; a < t->nadded; a++) {
				added_tok *at = &t->added[a];
				if (at->len <= len - i && (unsigned char)at->s[0] == c &&
				    !memcmp(text + i, at->s, at->len) && (best < 0 || at->len > t->added[best].len))
					best = a;
			}
		if (best < 0) {
			i++;
			continue;
		}
		if (i > seg) {
			if (encode_segment(t, text + seg, i - seg, at_start, cont, ids, n, cap))
				return -1;
		}
		at_start = 0;
		push_id(ids, n, cap, t->added[best].id);
		i += t->added[best].len;
		seg = i;
	}
	if (len > seg && encode_segment(t, text + seg, len - seg, at_start, cont, ids, n, cap))
		return -1;
	return 0;
}

long tok_decode(tok *t, const uint32_t *ids, size_t n, unsigned flags, char **out, size_t *cap)
{
	size_t len = 0, visible = 0; /* visible: bytes of non-special pieces */
	int strip = t->strip_leading && !(flags & TOK_NO_STRIP);
	for (size_t i = 0; i < n; i++) {
		uint32_t id = ids[i];
		if (id >= t->V) {
			seterr(t, "token id %u out of range (vocabulary size %u)", id, t->V);
			return -1;
		}
		if (t->special[id] && (flags & TOK_SKIP_SPECIAL))
			continue;
		const char *p = t->arena + t->dec_off[id];
		size_t l = t->dec_len[id];
		/* sentencepiece's decode: the leading space of the first piece
		 * goes; with remove_extra_whitespaces, of every piece until
		 * something is written; byte pieces (<0x20>) keep theirs */
		int byte = t->kind == K_SPM && l == 1 && t->byte_id[(unsigned char)p[0]] == id;
		if (strip && !t->special[id] && !byte) {
			if (visible)
				strip = 0;
			else if (l && p[0] == ' ')
				p++, l--, strip = t->kind == K_SPM && t->squeeze_ws;
			else
				strip = 0;
		}
		if (!t->special[id])
			visible += l;
		if (len + l + 1 > *cap)
			xgrow((void **)out, cap, len + l + 1, 1);
		memcpy(*out + len, p, l);
		len += l;
	}
	if (len + 1 > *cap)
		xgrow((void **)out, cap, len + 1, 1);
	(*out)[len] = 0;
	return (long)len;
}

/* ---------------- loading: llama2.c ---------------- */

static int cmp_score_desc(const void *a, const void *b, void *ctx)
{
	const float *sc = ctx;
	float x = sc[*(const uint32_t *)a], y = sc[*(const uint32_t *)b];
	return x > y ? -1 : x < y ? 1 : 0;
}

static int load_llama2c(tok *t, const unsigned char *buf, size_t n)
{
	t->kind = K_LLAMA2C;
	if (n < 4)
		return seterr(t, "truncated header (%zu bytes)", n), -1;
	uint32_t maxlen;
	memcpy(&maxlen, buf, 4);
	/* count tokens first */
	size_t off = 4, V = 0;
	while (off < n) {
		if (n - off < 8)
			return seterr(t, "token %zu: truncated at byte %zu", V, off), -1;
		int32_t l;
		memcpy(&l, buf + off + 4, 4);
		if (l < 0 || (uint32_t)l > maxlen || (size_t)l > n - off - 8)
			return seterr(t, "token %zu: bad length %d at byte %zu", V, (int)l, off + 4), -1;
		off += 8 + (size_t)l;
		if (++V > TOK_MAX_VOCAB)
			return seterr(t, "too many tokens"), -1;
	}
	if (V < 3)
		return seterr(t, "only %zu tokens", V), -1;
	vocab_alloc(t, (uint32_t)V);
	float *score = xmalloc(V * sizeof(float));
	off = 4;
	for (size_t i = 0; i < V; i++) {
		int32_t l;
		memcpy(&score[i], buf + off, 4);
		memcpy(&l, buf + off + 4, 4);
		if (score[i] != score[i])
			score[i] = -1e30f; /* NaN: never merge first */
		t->piece_off[i] = arena_add(t, (const char *)buf + off + 8, (size_t)l);
		t->piece_len[i] = (uint32_t)l;
		off += 8 + (size_t)l;
	}
	for (size_t i = 0; i < V; i++) {
		const char *p = t->arena + t->piece_off[i];
		int b = parse_byte_token(p, t->piece_len[i]);
		char c = (char)b;
		if (b >= 0)
			t->dec_off[i] = arena_add(t, &c, 1), t->dec_len[i] = 1;
		else
			t->dec_off[i] = t->piece_off[i], t->dec_len[i] = t->piece_len[i];
	}
	/* llama2.c: <unk>=0, BOS=1, EOS=2, byte fallback = byte + 3 */
	t->special[0] = t->special[1] = t->special[2] = 1;
	for (int b = 0; b < 256; b++)
		t->byte_id[b] = (size_t)b + 3 < V ? (uint32_t)b + 3 : NONE;
	uint32_t *ord = xmalloc(V * sizeof(uint32_t));
	for (size_t i = 0; i < V; i++)
		ord[i] = (uint32_t)i;
	qsort_r(ord, V, sizeof(uint32_t), cmp_score_desc, score);
	t->score_rank = xmalloc(V * sizeof(uint32_t));
	uint32_t r = 0;
	for (size_t i = 0; i < V; i++) {
		if (i && score[ord[i]] != score[ord[i - 1]])
			r++;
		t->score_rank[ord[i]] = r;
	}
	free(ord);
	free(score);
	vmap_build(t);
	t->byte_fallback = 1;
	t->unk = 0;
	t->bos = 1, t->eos = 2, t->add_bos = 1;
	t->dummy_prefix = 1;
	t->strip_leading = 1;
	return 0;
}

/* ---------------- loading: SentencePiece tokenizer.model ---------------- */

/* Protocol buffers, the little needed: varints and length-delimited fields. */
typedef struct {
	const unsigned char *p, *end;
} pb;

static int pb_varint(pb *b, uint64_t *v)
{
	*v = 0;
	for (int sh = 0; sh < 64; sh += 7) {
		if (b->p >= b->end)
			return -1;
		unsigned char c = *b->p++;
		*v |= (uint64_t)(c & 0x7F) << sh;
		if (!(c & 0x80))
			return 0;
	}
	return -1;
}

/* Next field: number, wire type, and for wire type 2 the bytes, for 0 the
 * value, for 5 the 4 bytes. Returns 0, 1 at the end, -1 if malformed. */
static int pb_next(pb *b, uint32_t *field, int *wt, uint64_t *v, pb *sub)
{
	if (b->p >= b->end)
		return 1;
	uint64_t key;
	if (pb_varint(b, &key))
		return -1;
	*field = (uint32_t)(key >> 3), *wt = (int)(key & 7);
	switch (*wt) {
	case 0: return pb_varint(b, v);
	case 1:
		if (b->end - b->p < 8)
			return -1;
		memcpy(v, b->p, 8), b->p += 8;
		return 0;
	case 2:
		if (pb_varint(b, v) || *v > (uint64_t)(b->end - b->p))
			return -1;
		sub->p = b->p, sub->end = b->p + *v;
		b->p += *v;
		return 0;
	case 5:
		if (b->end - b->p < 4)
			return -1;
		*v = 0;
		memcpy(v, b->p, 4), b->p += 4;
		return 0;
	}
	return -1;
}

enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER = 4, SP_UNUSED = 5, SP_BYTE = 6 };

static void apply_tokenizer_config(tok *t, const char *dir);

/* ModelProto: 1 pieces {1 piece, 2 score, 3 type}, 2 trainer_spec
 * {3 model_type, 35 byte_fallback, 46 bos_piece, 47 eos_piece},
 * 3 normalizer_spec {1 name, 3 add_dummy_prefix, 4 remove_extra_whitespaces,
 * 5 escape_whitespaces}. Only BPE models with the identity normalizer. */
static int load_spm(tok *t, const unsigned char *buf, size_t n, const char *dir)
{
	t->kind = K_SPM;
	pb b = {buf, buf + n}, sub;
	uint32_t f;
	int wt, rc;
	uint64_t v;
	size_t V = 0;
	int model_type = 1, byte_fallback = 0, dummy = 1, squeeze = 1, escape = 1;
	char norm[64] = "", bos_piece[64] = "<s>", eos_piece[64] = "</s>";
	while ((rc = pb_next(&b, &f, &wt, &v, &sub)) == 0) {
		if (f == 1 && wt == 2) {
			if (++V > TOK_MAX_VOCAB)
				return seterr(t, "too many pieces"), -1;
		} else if (f == 2 && wt == 2) {
			pb s2 = sub, x;
			while ((rc = pb_next(&s2, &f, &wt, &v, &x)) == 0) {
				if (wt == 2 && (f == 46 || f == 47))
					snprintf(f == 46 ? bos_piece : eos_piece, sizeof bos_piece, "%.*s", (int)v,
						 (const char *)x.p);
				if (wt != 0)
					continue;
				if (f == 3)
					model_type = (int)v;
				else if (f == 35)
					byte_fallback = v != 0;
			}
			if (rc < 0)
				return seterr(t, "malformed trainer_spec"), -1;
		} else if (f == 3 && wt == 2) {
			pb s2 = sub, x;
			while ((rc = pb_next(&s2, &f, &wt, &v, &x)) == 0) {
				if (f == 1 && wt == 2)
					snprintf(norm, sizeof norm, "%.*s", (int)v, (const char *)x.p);
				else if (f == 3 && wt == 0)
					dummy = v != 0;
				else if (f == 4 && wt == 0)
					squeeze = v != 0;
				else if (f == 5 && wt == 0)
					escape = v != 0;
			}
			if (rc < 0)
				return seterr(t, "malformed normalizer_spec"), -1;
		}
	}
	if (rc < 0)
		return seterr(t, "not a SentencePiece model: malformed protobuf"), -1;
	if (!V)
		return seterr(t, "not a SentencePiece model: no pieces"), -1;
	if (model_type != 2)
		return seterr(t, "SentencePiece model type %d is unsupported (only BPE, 2)", model_type), -1;
	if (*norm && strcmp(norm, "identity"))
		return seterr(t, "SentencePiece normalizer \"%s\" is unsupported (only identity)", norm), -1;
	if (!escape)
		return seterr(t, "SentencePiece models without escape_whitespaces are unsupported"), -1;
	vocab_alloc(t, (uint32_t)V);
	float *score = xmalloc(V * sizeof(float));
	uint8_t *normal = xcalloc(V, 1), *ptype = xcalloc(V, 1);
	t->added = xcalloc(V + 1, sizeof(added_tok));
	for (int c = 0; c < 256; c++)
		t->byte_id[c] = NONE;
	b = (pb){buf, buf + n};
	size_t id = 0;
	static const char META[] = "\xE2\x96\x81";
	while (pb_next(&b, &f, &wt, &v, &sub) == 0) {
		if (f != 1 || wt != 2)
			continue;
		pb s2 = sub, x;
		const char *pc = NULL;
		size_t pl = 0;
		int type = SP_NORMAL;
		score[id] = 0;
		while ((rc = pb_next(&s2, &f, &wt, &v, &x)) == 0) {
			if (f == 1 && wt == 2)
				pc = (const char *)x.p, pl = (size_t)v;
			else if (f == 2 && wt == 5) {
				uint32_t u = (uint32_t)v;
				memcpy(&score[id], &u, 4);
			} else if (f == 3 && wt == 0)
				type = (int)v;
		}
		if (rc < 0 || !pc || utf8_invalid_at(pc, pl) != pl) {
			free(score), free(normal), free(ptype);
			return seterr(t, "piece %zu: malformed", id), -1;
		}
		if (score[id] != score[id])
			score[id] = -1e30f;
		/* engine form: U+2581 -> ' ' */
		char *d = xmalloc(pl + 1);
		size_t o = 0;
		for (size_t i = 0; i < pl;)
			if (i + 3 <= pl && !memcmp(pc + i, META, 3))
				d[o++] = ' ', i += 3;
			else
				d[o++] = pc[i++];
		int bt = type == SP_BYTE ? parse_byte_token(pc, pl) : -1;
		/* merges may produce normal, user-defined and unused pieces only
		 * (score_rank marks the others) */
		t->piece_off[id] = arena_add(t, d, o), t->piece_len[id] = (uint32_t)o;
		normal[id] = type == SP_NORMAL || type == SP_USER || type == SP_UNUSED;
		ptype[id] = (uint8_t)type;
		if (bt >= 0) {
			char c = (char)bt;
			t->dec_off[id] = arena_add(t, &c, 1), t->dec_len[id] = 1;
			if (t->byte_id[bt] == NONE)
				t->byte_id[bt] = (uint32_t)id;
		} else {
			t->dec_off[id] = arena_add(t, d, o), t->dec_len[id] = (uint32_t)o;
		}
		/* control and user-defined pieces are matched in the text whole
		 * (control ones are special: skipped by TOK_NO_SPECIAL and decoding) */
		if ((type == SP_CONTROL || type == SP_USER) && pl) {
			t->special[id] = type == SP_CONTROL;
			char *c = xmalloc(o + 1); /* a piece may hold a NUL byte */
			memcpy(c, d, o);
			c[o] = 0;
			t->added[t->nadded++] = (added_tok){c, (uint32_t)o, (uint32_t)id};
			t->added_first[(unsigned char)d[0]] = 1;
		}
		if (type == SP_UNKNOWN)
			t->special[id] = 1;
		free(d);
		id++;
	}
	/* merge priority: dense rank of the piece's score, highest first */
	uint32_t *ord = xmalloc(V * sizeof(uint32_t));
	for (size_t i = 0; i < V; i++)
		ord[i] = (uint32_t)i;
	qsort_r(ord, V, sizeof(uint32_t), cmp_score_desc, score);
	t->score_rank = xmalloc(V * sizeof(uint32_t));
	uint32_t r = 0;
	for (size_t i = 0; i < V; i++) {
		if (i && score[ord[i]] != score[ord[i - 1]])
			r++;
		t->score_rank[ord[i]] = normal[ord[i]] ? r : UINT32_MAX;
	}
	free(ord), free(score), free(normal);
	vmap_build(t);
	t->byte_fallback = byte_fallback;
	/* as sentencepiece: BOS and EOS are the control pieces named by
	 * bos_piece and eos_piece (the ids in the trainer spec are the
	 * trainer's input, possibly out of range), unk the unknown piece */
	int64_t ib = vmap_find(t, bos_piece, strlen(bos_piece)), ie = vmap_find(t, eos_piece, strlen(eos_piece));
	t->bos = ib >= 0 && ptype[ib] == SP_CONTROL ? ib : -1;
	t->eos = ie >= 0 && ptype[ie] == SP_CONTROL ? ie : -1;
	t->unk = -1;
	for (size_t i = 0; i < V && t->unk < 0; i++)
		if (ptype[i] == SP_UNKNOWN)
			t->unk = (int64_t)i;
	free(ptype);
	t->add_bos = t->bos >= 0; /* as Hugging Face's Llama/Mistral tokenizers */
	t->dummy_prefix = dummy;
	t->squeeze_ws = squeeze;
	t->strip_leading = dummy || squeeze;
	apply_tokenizer_config(t, dir);
	return 0;
}

/* ---------------- loading: tokenizer.json ---------------- */

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int add_split_step(tok *t, const char *pattern, int literal, int removed)
{
	if (t->nsteps == (int)(sizeof t->steps / sizeof t->steps[0]))
		return seterr(t, "too many pre-tokenizer steps"), -1;
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
				       PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0), &ec, &eo, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		return seterr(t, "pre_tokenizer regex: %s at offset %zu", (char *)msg, (size_t)eo), -1;
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
	split_step *s = &t->steps[t->nsteps++];
	s->re = re;
	s->md = pcre2_match_data_create_from_pattern(re, NULL);
	s->removed = removed;
	return 0;
}

static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int load_pretok(tok *t, json_t *p, int depth, int *bytelevel)
{
	if (!p || json_is_null(p))
		return 0;
	const char *type = jstr(p, "type");
	if (!type)
		return seterr(t, "pre_tokenizer: missing \"type\""), -1;
	if (!strcmp(type, "Sequence")) {
		json_t *a = json_object_get(p, "pretokenizers");
		if (!json_is_array(a) || depth > 4)
			return seterr(t, "pre_tokenizer: bad Sequence"), -1;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (load_pretok(t, json_array_get(a, i), depth + 1, bytelevel))
				return -1;
		return 0;
	}
	if (!strcmp(type, "ByteLevel")) {
		*bytelevel = 1;
		if (json_is_true(json_object_get(p, "add_prefix_space"))) {
			if (t->nsteps)
				return seterr(t,
					      "pre_tokenizer: ByteLevel add_prefix_space after a split is unsupported"),
				       -1;
			t->bl_prefix_space = 1;
		}
		json_t *ur = json_object_get(p, "use_regex");
		if (!ur || json_is_true(ur))
			return add_split_step(t, GPT2_PATTERN, 0, 0);
		return 0;
	}
	if (!strcmp(type, "Split")) {
		json_t *pat = json_object_get(p, "pattern");
		const char *behavior = jstr(p, "behavior");
		if (json_is_true(json_object_get(p, "invert")))
			return seterr(t, "pre_tokenizer: Split with invert is unsupported"), -1;
		int removed = 0;
		if (!behavior || !strcmp(behavior, "Isolated"))
			removed = 0;
		else if (!strcmp(behavior, "Removed"))
			removed = 1;
		else
			return seterr(t, "pre_tokenizer: Split behavior \"%s\" is unsupported", behavior), -1;
		const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
		if (re)
			return add_split_step(t, re, 0, removed);
		if (lit)
			return add_split_step(t, lit, 1, removed);
		return seterr(t, "pre_tokenizer: Split without a pattern"), -1;
	}
	if (!strcmp(type, "Digits")) {
		int ind = json_is_true(json_object_get(p, "individual_digits"));
		return add_split_step(t, ind ? "\\p{N}" : "\\p{N}+", 0, 0);
	}
	if (!strcmp(type, "Metaspace")) {
		if (t->nsteps)
			return seterr(t, "pre_tokenizer: Metaspace after a split is unsupported"), -1;
		const char *rep = jstr(p, "replacement");
		if (!rep)
			rep = "\xE2\x96\x81";
		if (strlen(rep) >= sizeof t->ms_repl || !*rep)
			return seterr(t, "pre_tokenizer: bad Metaspace replacement"), -1;
		strcpy(t->ms_repl, rep);
		t->metaspace = 1;
		const char *ps = jstr(p, "prepend_scheme");
		if (ps)
			t->ms_prepend = !strcmp(ps, "always") ? 1 : !strcmp(ps, "first") ? 2 : 0;
		else
			t->ms_prepend = json_is_false(json_object_get(p, "add_prefix_space")) ? 0 : 1;
		json_t *sp = json_object_get(p, "split");
		t->ms_split = !sp || json_is_true(sp);
		return 0;
	}
	return seterr(t, "pre_tokenizer type \"%s\" is unsupported", type), -1;
}

static int load_normalizer(tok *t, json_t *p, int depth)
{
	if (!p || json_is_null(p))
		return 0;
	const char *type = jstr(p, "type");
	if (!type)
		return seterr(t, "normalizer: missing \"type\""), -1;
	if (!strcmp(type, "Sequence")) {
		json_t *a = json_object_get(p, "normalizers");
		if (!json_is_array(a) || depth > 4)
			return seterr(t, "normalizer: bad Sequence"), -1;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (load_normalizer(t, json_array_get(a, i), depth + 1))
				return -1;
		return 0;
	}
	if (!strcmp(type, "Prepend")) {
		const char *s = jstr(p, "prepend");
		if (!s || t->prepend || t->nrepl)
			return seterr(t, "normalizer: unsupported Prepend"), -1;
		t->prepend = xstrdup(s);
		return 0;
	}
	if (!strcmp(type, "Replace")) {
		const char *from = jstr(json_object_get(p, "pattern"), "String"), *to = jstr(p, "content");
		if (!from || !to || !*from)
			return seterr(t, "normalizer: Replace needs a String pattern and content"), -1;
		if (t->nrepl == 8)
			return seterr(t, "normalizer: too many Replace"), -1;
		t->repl[t->nrepl].from = xstrdup(from);
		t->repl[t->nrepl].to = xstrdup(to);
		t->nrepl++;
		return 0;
	}
	if (!strcmp(type, "NFC")) {
		if (t->prepend || t->nrepl)
			return seterr(t, "normalizer: NFC after Prepend/Replace is unsupported"), -1;
		t->nfc = 1;
		return 0;
	}
	return seterr(t, "normalizer type \"%s\" is unsupported", type), -1;
}

/* "bos_token": "x" or {"content": "x"} */
static const char *cfg_token(json_t *cfg, const char *k)
{
	json_t *v = json_object_get(cfg, k);
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_object(v))
		return jstr(v, "content");
	return NULL;
}

/* tokenizer_config.json beside the file, if any: bos_token, eos_token,
 * add_bos_token. */
static void apply_tokenizer_config(tok *t, const char *dir)
{
	if (!dir)
		return;
	size_t dl = strlen(dir);
	char *cfgp = xmalloc(dl + 32);
	snprintf(cfgp, dl + 32, "%s/tokenizer_config.json", dir);
	json_error_t je;
	json_t *cfg = json_load_file(cfgp, 0, &je);
	free(cfgp);
	if (!cfg)
		return;
	const char *bs = cfg_token(cfg, "bos_token"), *es = cfg_token(cfg, "eos_token");
	if (bs && tok_lookup(t, bs, strlen(bs)) >= 0)
		t->bos = tok_lookup(t, bs, strlen(bs));
	if (es && tok_lookup(t, es, strlen(es)) >= 0)
		t->eos = tok_lookup(t, es, strlen(es));
	json_t *ab = json_object_get(cfg, "add_bos_token");
	if (json_is_boolean(ab))
		t->add_bos = json_is_true(ab) && t->bos >= 0;
	json_decref(cfg);
}

static int load_hf(tok *t, const char *buf, size_t n, const char *dir)
{
	json_error_t je;
	json_t *root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return seterr(t, "line %d column %d: %s", je.line, je.column, je.text), -1;
	int rc = -1;
	json_t *model = json_object_get(root, "model");
	if (!json_is_object(model)) {
		seterr(t, "not a tokenizer.json: no \"model\" object");
		goto out;
	}
	const char *mtype = jstr(model, "type");
	json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
	if (mtype && strcmp(mtype, "BPE")) {
		seterr(t, "model type \"%s\" is unsupported (only BPE)", mtype);
		goto out;
	}
	if (!json_is_object(vocab) || !json_is_array(merges)) {
		seterr(t, "model: \"vocab\" must be an object and \"merges\" an array");
		goto out;
	}
	const char *cp = jstr(model, "continuing_subword_prefix"), *ew = jstr(model, "end_of_word_suffix");
	if ((cp && *cp) || (ew && *ew)) {
		seterr(t, "model: continuing_subword_prefix / end_of_word_suffix are unsupported");
		goto out;
	}
	t->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
	t->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
	t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));

	int bytelevel = 0;
	if (load_normalizer(t, json_object_get(root, "normalizer"), 0))
		goto out;
	if (load_pretok(t, json_object_get(root, "pre_tokenizer"), 0, &bytelevel))
		goto out;
	json_t *dec = json_object_get(root, "decoder");
	if (!bytelevel && json_is_object(dec) && jstr(dec, "type") && !strcmp(jstr(dec, "type"), "ByteLevel"))
		bytelevel = 1;
	t->kind = bytelevel ? K_BYTELEVEL : K_SENTENCEPIECE;
	if (bytelevel && (t->metaspace || t->prepend || t->nrepl)) {
		seterr(t, "byte-level BPE with Metaspace/Prepend/Replace is unsupported");
		goto out;
	}

	/* vocabulary size: max id over vocab and added tokens */
	json_t *added = json_object_get(root, "added_tokens");
	if (added && !json_is_array(added) && !json_is_null(added)) {
		seterr(t, "\"added_tokens\" must be an array");
		goto out;
	}
	uint64_t V = 0;
	const char *key;
	json_t *val;
	json_object_foreach(vocab, key, val)
	{
		if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= TOK_MAX_VOCAB) {
			seterr(t, "model.vocab[\"%.40s\"]: id must be an integer in [0, %u)", key, TOK_MAX_VOCAB);
			goto out;
		}
		if ((uint64_t)json_integer_value(val) + 1 > V)
			V = (uint64_t)json_integer_value(val) + 1;
	}
	for (size_t i = 0; i < json_array_size(added); i++) {
		json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
		if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= TOK_MAX_VOCAB ||
		    !jstr(a, "content") || !*jstr(a, "content")) {
			seterr(t, "added_tokens[%zu]: needs an integer \"id\" in range and a non-empty \"content\"", i);
			goto out;
		}
		if ((uint64_t)json_integer_value(id) + 1 > V)
			V = (uint64_t)json_integer_value(id) + 1;
	}
	if (!V) {
		seterr(t, "empty vocabulary");
		goto out;
	}
	/* holes are allowed, a vocabulary that is mostly holes is not (it would
	 * only make a hostile file cost memory) */
	if (V > 2 * ((uint64_t)json_object_size(vocab) + json_array_size(added)) + 1024) {
		seterr(t, "token ids are too sparse (largest id %llu for %zu tokens)", (unsigned long long)V - 1,
		       json_object_size(vocab) + json_array_size(added));
		goto out;
	}
	vocab_alloc(t, (uint32_t)V);
	uint8_t *have = xcalloc(V, 1);
	int16_t inv[324];
	bytelevel_inverse(inv);
	char *tmp = NULL;
	size_t tmpcap = 0;
	json_object_foreach(vocab, key, val)
	{
		uint32_t id = (uint32_t)json_integer_value(val);
		size_t kl = strlen(key);
		if (have[id]) {
			seterr(t, "model.vocab: id %u used twice", id);
			free(have), free(tmp);
			goto out;
		}
		have[id] = 1;
		const char *piece = key;
		size_t pl = kl;
		if (bytelevel) { /* back to raw bytes where every char is in the alphabet */
			xgrow((void **)&tmp, &tmpcap, kl + 1, 1);
			size_t o = 0, i = 0;
			int ok = 1;
			while (i < kl) {
				size_t k;
				uint32_t c = utf8_cp((const unsigned char *)key + i, kl - i, &k);
				if (c >= 324 || inv[c] < 0) {
					ok = 0;
					break;
				}
				tmp[o++] = (char)inv[c];
				i += k;
			}
			if (ok)
				piece = tmp, pl = o;
		}
		t->piece_off[id] = arena_add(t, piece, pl);
		t->piece_len[id] = (uint32_t)pl;
	}
	/* added tokens: their content is their piece */
	t->added = xcalloc(json_array_size(added) + 1, sizeof(added_tok));
	for (size_t i = 0; i < json_array_size(added); i++) {
		json_t *a = json_array_get(added, i);
		uint32_t id = (uint32_t)json_integer_value(json_object_get(a, "id"));
		const char *c = jstr(a, "content");
		size_t cl = strlen(c);
		if (!have[id]) {
			t->piece_off[id] = arena_add(t, c, cl);
			t->piece_len[id] = (uint32_t)cl;
			have[id] = 1;
		}
		t->special[id] = json_is_true(json_object_get(a, "special"));
		t->added[t->nadded++] = (added_tok){xstrdup(c), (uint32_t)cl, id};
		t->added_first[(unsigned char)c[0]] = 1;
	}
	for (uint32_t id = 0; id < V; id++)
		if (!have[id])
			t->piece_off[id] = arena_add(t, "", 0), t->piece_len[id] = 0; /* hole */
	free(have);
	free(tmp);
	vmap_build(t);

	/* decoded forms */
	static const char META[] = "\xE2\x96\x81";
	for (uint32_t id = 0; id < V; id++) {
		const char *p = t->arena + t->piece_off[id];
		size_t l = t->piece_len[id];
		int b = t->kind == K_SENTENCEPIECE && t->byte_fallback ? parse_byte_token(p, l) : -1;
		if (b >= 0) {
			char c = (char)b;
			t->dec_off[id] = arena_add(t, &c, 1), t->dec_len[id] = 1;
		} else if (t->kind == K_SENTENCEPIECE && memmem(p, l, META, 3)) {
			char *d = xmalloc(l + 1);
			size_t o = 0;
			for (size_t i = 0; i < l;)
				if (i + 3 <= l && !memcmp(p + i, META, 3))
					d[o++] = ' ', i += 3;
				else
					d[o++] = p[i++];
			t->dec_off[id] = arena_add(t, d, o), t->dec_len[id] = (uint32_t)o;
			free(d);
		} else {
			t->dec_off[id] = t->piece_off[id], t->dec_len[id] = (uint32_t)l;
		}
	}
	t->strip_leading = t->kind == K_SENTENCEPIECE && (t->prepend || (t->metaspace && t->ms_prepend));

	/* byte units */
	for (int b = 0; b < 256; b++) {
		t->byte_id[b] = NONE;
		if (t->kind == K_BYTELEVEL) {
			char c = (char)b;
			int64_t id = vmap_find(t, &c, 1);
			if (id >= 0)
				t->byte_id[b] = (uint32_t)id;
		} else if (t->byte_fallback) {
			char s[8];
			snprintf(s, sizeof s, "<0x%02X>", b);
			int64_t id = vmap_find(t, s, 6);
			if (id >= 0)
				t->byte_id[b] = (uint32_t)id;
		}
	}
	const char *unk = jstr(model, "unk_token");
	t->unk = -1;
	if (unk) {
		t->unk = tok_lookup(t, unk, strlen(unk));
		if (t->unk < 0) {
			seterr(t, "model.unk_token \"%.40s\" is not in the vocabulary", unk);
			goto out;
		}
	}

	/* merges: "a b" strings or ["a", "b"] pairs */
	size_t nm = json_array_size(merges);
	merges_alloc(t, nm);
	char *ma = NULL;
	size_t macap = 0;
	for (size_t i = 0; i < nm; i++) {
		json_t *m = json_array_get(merges, i);
		const char *a, *b;
		size_t la, lb;
		if (json_is_string(m)) {
			const char *s = json_string_value(m);
			const char *sp = strchr(s, ' ');
			if (!sp || strchr(sp + 1, ' ')) {
				seterr(t, "model.merges[%zu]: expected \"a b\"", i);
				free(ma);
				goto out;
			}
			a = s, la = (size_t)(sp - s), b = sp + 1, lb = strlen(sp + 1);
		} else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
			   json_is_string(json_array_get(m, 1))) {
			a = json_string_value(json_array_get(m, 0)), la = strlen(a);
			b = json_string_value(json_array_get(m, 1)), lb = strlen(b);
		} else {
			seterr(t, "model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", i);
			free(ma);
			goto out;
		}
		/* pieces of a, b, a+b in the engine's form */
		xgrow((void **)&ma, &macap, 2 * (la + lb) + 2, 1);
		size_t l1 = la, l2 = lb;
		memcpy(ma, a, la);
		memcpy(ma + la, b, lb);
		if (bytelevel) { /* convert both halves to raw bytes */
			size_t o = 0;
			for (int h = 0; h < 2; h++) {
				const char *s = h ? b : a;
				size_t l = h ? lb : la, st = o;
				for (size_t j = 0; j < l;) {
					size_t k;
					uint32_t c = utf8_cp((const unsigned char *)s + j, l - j, &k);
					if (c >= 324 || inv[c] < 0) {
						seterr(t,
						       "model.merges[%zu]: character outside the byte-level alphabet",
						       i);
						free(ma);
						goto out;
					}
					ma[o++] = (char)inv[c];
					j += k;
				}
				if (h)
					l2 = o - st;
				else
					l1 = o;
			}
		}
		int64_t ia = vmap_find(t, ma, l1), ib = vmap_find(t, ma + l1, l2), ir = vmap_find(t, ma, l1 + l2);
		if (ia < 0 || ib < 0 || ir < 0) {
			seterr(t, "model.merges[%zu]: a part or the merged token is not in the vocabulary", i);
			free(ma);
			goto out;
		}
		merges_put(t, (uint32_t)ia, (uint32_t)ib, (uint32_t)i, (uint32_t)ir);
	}
	free(ma);

	/* BOS from the post-processor template "single": special tokens before $A */
	t->bos = t->eos = -1;
	json_t *pp = json_object_get(root, "post_processor");
	json_t *pps[8];
	int npp = 0;
	if (json_is_object(pp)) {
		const char *ty = jstr(pp, "type");
		if (ty && !strcmp(ty, "Sequence")) {
			json_t *a = json_object_get(pp, "processors");
			for (size_t i = 0; i < json_array_size(a) && npp < 8; i++)
				pps[npp++] = json_array_get(a, i);
		} else
			pps[npp++] = pp;
	}
	for (int k = 0; k < npp; k++) {
		const char *ty = jstr(pps[k], "type");
		if (!ty || strcmp(ty, "TemplateProcessing"))
			continue;
		json_t *single = json_object_get(pps[k], "single");
		for (size_t i = 0; i < json_array_size(single); i++) {
			json_t *e = json_array_get(single, i);
			if (json_object_get(e, "Sequence"))
				break;
			const char *sid = jstr(json_object_get(e, "SpecialToken"), "id");
			if (sid) {
				int64_t id = tok_lookup(t, sid, strlen(sid));
				if (id >= 0)
					t->bos = id, t->add_bos = 1;
				break;
			}
		}
	}
	apply_tokenizer_config(t, dir);
	if (t->eos < 0) {
		static const char *cand[] = {"</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"};
		for (size_t i = 0; i < sizeof cand / sizeof cand[0] && t->eos < 0; i++)
			t->eos = tok_lookup(t, cand[i], strlen(cand[i]));
	}
	if (t->bos < 0 && t->kind == K_SENTENCEPIECE)
		t->bos = tok_lookup(t, "<s>", 3);
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* ---------------- public loading ---------------- */

tok *tok_load_mem(const char *name, const void *buf, size_t n, const char *dir, char *err, size_t errlen)
{
	tok *t = xcalloc(1, sizeof *t);
	t->path = xstrdup(name ? name : "<memory>");
	t->unk = -1;
	t->bos = t->eos = -1;
	sha256_hex(buf, n, t->sha);
	const unsigned char *b = buf;
	size_t i = 0;
	while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
		i++;
	int rc;
	if (i < n && b[i] == '{')
		rc = load_hf(t, buf, n, dir);
	else if (n && b[0] == 0x0A) { /* protobuf field 1 (pieces): a SentencePiece model */
		rc = load_spm(t, b, n, dir);
		/* a llama2.c file whose max_token_length byte happens to be 10 */
		if (rc && !(strlen(t->path) > 6 && !strcmp(t->path + strlen(t->path) - 6, ".model")) &&
		    !strstr(t->path, ".model.")) {
			char spm_err[512];
			snprintf(spm_err, sizeof spm_err, "%s", t->err);
			tok_free(t);
			t = xcalloc(1, sizeof *t);
			t->path = xstrdup(name ? name : "<memory>");
			t->unk = -1;
			t->bos = t->eos = -1;
			sha256_hex(buf, n, t->sha);
			rc = load_llama2c(t, buf, n);
			if (rc)
				seterr(t, "neither a SentencePiece model (%s) nor a llama2.c tokenizer.bin", spm_err);
		}
	} else
		rc = load_llama2c(t, buf, n);
	if (rc) {
		if (err && errlen)
			snprintf(err, errlen, "%s", t->err);
		tok_free(t);
		return NULL;
	}
	return t;
}

char *tok_file_in(const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return NULL;
	static const char *names[] = {"tokenizer.json", "tokenizer.model"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char *p = path_join(dir, names[i]);
		if (!stat(p, &sb) && S_ISREG(sb.st_mode))
			return p;
		free(p);
	}
	return NULL;
}

/* A model directory stands for its tokenizer (tok_file_in). Returns a
 * malloc'd file path. */
static char *tok_file_of(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return xstrdup(path);
	char *p = tok_file_in(path);
	if (!p)
		die("%s: a directory with neither tokenizer.json nor tokenizer.model", path);
	return p;
}

char *tok_dir(const tok *t)
{
	char *dir = xstrdup(t->path), *sl = strrchr(dir, '/');
	if (sl)
		*sl = 0;
	else
		strcpy(dir, ".");
	return dir;
}

tok *tok_load(const char *given)
{
	char *path = tok_file_of(given);
	FILE *f = fopen(path, "rb");
	if (!f)
		die("%s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (n == cap) {
			if (cap >= TOK_MAX_FILE)
				die("%s: larger than 1 GiB", path);
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f))
		die("%s: read error: %s", path, strerror(errno));
	fclose(f);
	char *dir = xstrdup(path), *sl = strrchr(dir, '/');
	if (sl)
		*sl = 0;
	else
		strcpy(dir, ".");
	char err[600];
	tok *t = tok_load_mem(path, buf, n, dir, err, sizeof err);
	free(dir);
	free(buf);
	if (!t)
		die("%s: %s", path, err);
	free(path);
#ifdef __GLIBC__
	/* the parsed tokenizer.json (~100 MB for Llama 3's) is freed in small
	 * pieces that glibc keeps: give them back, or they stay resident
	 * under the large buffers of a long line */
	malloc_trim(0);
#endif
	return t;
}

void tok_free(tok *t)
{
	if (!t)
		return;
	free(t->path);
	free(t->arena);
	free(t->piece_off), free(t->piece_len), free(t->dec_off), free(t->dec_len), free(t->special);
	free(t->vmap);
	free(t->mkey), free(t->mrank), free(t->mres);
	free(t->score_rank);
	free(t->prepend);
	for (int i = 0; i < t->nrepl; i++)
		free(t->repl[i].from), free(t->repl[i].to);
	for (int i = 0; i < t->nsteps; i++) {
		pcre2_match_data_free(t->steps[i].md);
		pcre2_code_free(t->steps[i].re);
	}
	for (int i = 0; i < t->nadded; i++)
		free(t->added[i].s);
	free(t->added);
	free(t->nbuf), free(t->spans), free(t->spans2);
	free(t->sym_id), free(t->sym_next);
	free(t->heap), free(t->cat);
	free(t->cache), free(t->ckeys), free(t->cvals);
	free(t);
}
