/* bpetrain.c — byte-level BPE training (Sennrich et al. 2016, the GPT-2
 * byte-level variant) and a Hugging Face tokenizer.json writer.
 *
 * Training: text is split into pre-tokens exactly as the ByteLevel
 * pre-tokenizer's GPT-2 regex would split ASCII text
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * then, repeatedly, the most frequent adjacent symbol pair (ties: the
 * smallest (left id, right id)) is merged into a new symbol. Merges never
 * cross pre-token boundaries, so applying them in order inside each
 * pre-token (which is what the tokenizers library does) reproduces training.
 */
#include "formats/bpetrain.h"
#include "formats/jsonl.h"

#include <jansson.h>
#include <string.h>

#include "base/util.h"

#define BPE_MAX_VOCAB 1024

typedef struct {
	char *text; /* the pre-token's bytes */
	size_t len;
	long count;
	int *sym; /* [nsym] current symbols */
	int nsym;
} bpe_word;

struct bpe_trainer {
	bpe_word *words;
	size_t n_words, cap_words;
	size_t *slots; /* open-addressing hash: index+1 into words, 0 = empty */
	size_t n_slots;
	/* tokens: byte strings by id */
	char *tok[BPE_MAX_VOCAB];
	size_t tok_len[BPE_MAX_VOCAB];
	int n_tok;
	int merges[BPE_MAX_VOCAB][2]; /* left, right token ids */
	int n_merges;
};

uint32_t bpe_byte_to_unicode(uint8_t b)
{
	/* Printable Latin-1 bytes stand for themselves; the other 68 bytes are
	 * numbered 256, 257, ... in byte order. */
	if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
		return b;
	uint32_t n = 0;
	for (int c = 0; c < b; c++)
		if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174))
			n++;
	return 256 + n;
}

static int is_letter(unsigned char c) { return (c | 32) >= 'a' && (c | 32) <= 'z' ? 1 : c >= 0x80; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_other(unsigned char c) { return !is_letter(c) && !is_digit(c) && !is_space(c); }

void bpe_pretokenize(const char *s, size_t n, void (*fn)(const char *, size_t, void *), void *ctx)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		if (u[i] == '\'') {
			static const char *con[] = {"s", "t", "re", "ve", "m", "ll", "d"};
			size_t k;
			for (k = 0; k < 7; k++) {
				size_t l = strlen(con[k]);
				if (i + 1 + l <= n && memcmp(s + i + 1, con[k], l) == 0)
					break;
			}
			if (k < 7) {
				size_t l = 1 + strlen(con[k]);
				fn(s + i, l, ctx);
				i += l;
				continue;
			}
		}
		size_t p = (u[i] == ' ' && i + 1 < n && !is_space(u[i + 1])) ? i + 1 : i;
		if (p < n && is_letter(u[p])) {
			for (j = p; j < n && is_letter(u[j]); j++) {
			}
		} else if (p < n && is_digit(u[p])) {
			for (j = p; j < n && is_digit(u[j]); j++) {
			}
		} else if (p < n && is_other(u[p])) {
			for (j = p; j < n && is_other(u[j]); j++) {
			}
		} else {
			/* whitespace: \s+(?!\S) leaves the last space to the next piece */
			for (j = i; j < n && is_space(u[j]); j++) {
			}
			if (j < n && j - i > 1)
				j--;
		}
		fn(s + i, j - i, ctx);
		i = j;
	}
}

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static void rehash(bpe_trainer *t)
{
	size_t ns = t->n_slots ? t->n_slots * 2 : 1024;
	size_t *sl = xcalloc(ns, sizeof *sl);
	for (size_t w = 0; w < t->n_words; w++) {
		size_t h = hash_bytes(t->words[w].text, t->words[w].len) & (ns - 1);
		while (sl[h])
			h = (h + 1) & (ns - 1);
		sl[h] = w + 1;
	}
	free(t->slots);
	t->slots = sl;
	t->n_slots = ns;
}

static void add_word(const char *s, size_t n, void *ctx)
{
	bpe_trainer *t = ctx;
	if (n == 0)
		return;
	if (2 * (t->n_words + 1) > t->n_slots)
		rehash(t);
	size_t h = hash_bytes(s, n) & (t->n_slots - 1);
	while (t->slots[h]) {
		bpe_word *w = &t->words[t->slots[h] - 1];
		if (w->len == n && memcmp(w->text, s, n) == 0) {
			w->count++;
			return;
		}
		h = (h + 1) & (t->n_slots - 1);
	}
	xgrow((void **)&t->words, &t->cap_words, t->n_words + 1, sizeof *t->words);
	bpe_word *w = &t->words[t->n_words++];
	w->text = xmalloc(n);
	memcpy(w->text, s, n);
	w->len = n;
	w->count = 1;
	w->nsym = (int)n;
	w->sym = xmalloc(n * sizeof *w->sym);
	for (size_t i = 0; i < n; i++)
		w->sym[i] = (unsigned char)s[i];
	t->slots[h] = t->n_words;
}

bpe_trainer *bpe_trainer_new(void)
{
	bpe_trainer *t = xcalloc(1, sizeof *t);
	for (int b = 0; b < 256; b++) {
		t->tok[b] = xmalloc(1);
		t->tok[b][0] = (char)b;
		t->tok_len[b] = 1;
	}
	t->tok[BPE_BOS_ID] = xstrdup("<s>");
	t->tok_len[BPE_BOS_ID] = 3;
	t->tok[BPE_EOS_ID] = xstrdup("</s>");
	t->tok_len[BPE_EOS_ID] = 4;
	t->n_tok = BPE_FIRST_MERGE;
	return t;
}

void bpe_trainer_add(bpe_trainer *t, const char *text, size_t n) { bpe_pretokenize(text, n, add_word, t); }

static int has_digit(const bpe_trainer *t, int id)
{
	for (size_t i = 0; i < t->tok_len[id]; i++)
		if (is_digit((unsigned char)t->tok[id][i]))
			return 1;
	return 0;
}

int bpe_trainer_learn(bpe_trainer *t, int vocab_size, int no_digit_merges)
{
	if (vocab_size > BPE_MAX_VOCAB)
		die("BPE vocabulary size %d exceeds the trainer's limit %d", vocab_size, BPE_MAX_VOCAB);
	long *cnt = xmalloc((size_t)BPE_MAX_VOCAB * BPE_MAX_VOCAB * sizeof *cnt); /* [V][V] pair counts */
	while (t->n_tok < vocab_size && t->n_merges < BPE_MAX_VOCAB) {
		int V = t->n_tok;
		memset(cnt, 0, (size_t)V * V * sizeof *cnt);
		for (size_t w = 0; w < t->n_words; w++)
			for (int i = 0; i + 1 < t->words[w].nsym; i++)
				cnt[(size_t)t->words[w].sym[i] * V + t->words[w].sym[i + 1]] += t->words[w].count;
		long best = 1;
		int ba = -1, bb = -1;
		for (int a = 0; a < V; a++) {
			if (no_digit_merges && has_digit(t, a))
				continue;
			for (int b = 0; b < V; b++)
				if (cnt[(size_t)a * V + b] > best && !(no_digit_merges && has_digit(t, b))) {
					best = cnt[(size_t)a * V + b];
					ba = a;
					bb = b;
				}
		}
		if (ba < 0)
			break; /* no pair occurs twice */
		/* the merged string may already be a token reached by another path */
		size_t nl = t->tok_len[ba] + t->tok_len[bb];
		char *ns = xmalloc(nl);
		memcpy(ns, t->tok[ba], t->tok_len[ba]);
		memcpy(ns + t->tok_len[ba], t->tok[bb], t->tok_len[bb]);
		int id = -1;
		for (int k = BPE_FIRST_MERGE; k < t->n_tok; k++)
			if (t->tok_len[k] == nl && memcmp(t->tok[k], ns, nl) == 0)
				id = k;
		if (id < 0) {
			id = t->n_tok++;
			t->tok[id] = ns;
			t->tok_len[id] = nl;
		} else {
			free(ns);
		}
		t->merges[t->n_merges][0] = ba;
		t->merges[t->n_merges][1] = bb;
		t->n_merges++;
		for (size_t w = 0; w < t->n_words; w++) {
			bpe_word *wd = &t->words[w];
			int o = 0;
			for (int i = 0; i < wd->nsym; i++) {
				if (i + 1 < wd->nsym && wd->sym[i] == ba && wd->sym[i + 1] == bb) {
					wd->sym[o++] = id;
					i++;
				} else {
					wd->sym[o++] = wd->sym[i];
				}
			}
			wd->nsym = o;
		}
	}
	free(cnt);
	return t->n_tok;
}

/* The token's vocabulary string: each byte as its GPT-2 code point, UTF-8. */
static json_t *tok_string(const bpe_trainer *t, int id, char *buf)
{
	if (id == BPE_BOS_ID || id == BPE_EOS_ID)
		return json_string(t->tok[id]);
	size_t o = 0;
	for (size_t i = 0; i < t->tok_len[id]; i++) {
		uint32_t cp = bpe_byte_to_unicode((uint8_t)t->tok[id][i]);
		if (cp < 0x80) {
			buf[o++] = (char)cp;
		} else {
			buf[o++] = (char)(0xC0 | (cp >> 6));
			buf[o++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	return json_stringn(buf, o);
}

static json_t *byte_level(int prefix)
{
	return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", prefix, "trim_offsets", 1,
			 "use_regex", 1);
}

void bpe_trainer_write_json(const bpe_trainer *t, const char *path)
{
	char *buf = xmalloc(4096 * 2 + 16);
	json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
	for (int id = 0; id < t->n_tok; id++) {
		json_t *s = tok_string(t, id, buf);
		json_object_set_new(vocab, json_string_value(s), json_integer(id));
		json_decref(s);
	}
	for (int k = 0; k < t->n_merges; k++) {
		json_t *a = tok_string(t, t->merges[k][0], buf), *b = tok_string(t, t->merges[k][1], buf);
		json_array_append_new(merges, json_sprintf("%s %s", json_string_value(a), json_string_value(b)));
		json_decref(a);
		json_decref(b);
	}
	for (int id = BPE_BOS_ID; id <= BPE_EOS_ID; id++)
		json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content",
						       t->tok[id], "single_word", 0, "lstrip", 0, "rstrip", 0,
						       "normalized", 0, "special", 1));
	json_t *model = json_pack("{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
				  "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0,
				  "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", merges);
	/* add_prefix_space false: "Q: 1+2=? A:" must tokenize as written, so a
	 * prompt's tokens are a prefix of prompt+completion's. */
	json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:n, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation",
				 "padding", "added_tokens", added, "normalizer", "pre_tokenizer", byte_level(0),
				 "post_processor", byte_level(1), "decoder", byte_level(1), "model", model);
	if (!root)
		die("%s: cannot build the tokenizer JSON", path);
	json_save_file(path, root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	free(buf);
}

void bpe_trainer_free(bpe_trainer *t)
{
	if (!t)
		return;
	for (size_t w = 0; w < t->n_words; w++) {
		free(t->words[w].text);
		free(t->words[w].sym);
	}
	free(t->words);
	free(t->slots);
	for (int i = 0; i < t->n_tok; i++)
		free(t->tok[i]);
	free(t);
}
