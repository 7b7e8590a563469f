/* pairs.c — see pairs.h. */
#include "formats/pairs.h"
#include "formats/schema.h"

#include <stdlib.h>
#include <string.h>

static void get_ids(held_pair *h, rs_reader *r, const msgpack_object *rec, const char *key, uint32_t vocab, size_t *at,
		    int *n)
{
	uint32_t *tmp = NULL;
	size_t cnt = 0, cap = 0;
	rs_req(r, rs_get_ids(r, rec, key, vocab, &tmp, &cnt, &cap), key);
	if (cnt > (size_t)1 << 30)
		rs_die(r, "%s: %zu ids is absurd", key, cnt);
	xgrow((void **)&h->ids, &h->ids_cap, *at + cnt, sizeof *h->ids);
	if (cnt)
		memcpy(h->ids + *at, tmp, cnt * sizeof *tmp);
	free(tmp);
	*n = (int)cnt;
	*at += cnt;
}

void pair_hold(held_pair *h, rs_reader *r, const msgpack_object *rec, uint32_t vocab, int max_pos)
{
	size_t len;
	const char *raw = rs_raw(r, &len);
	xgrow((void **)&h->raw, &h->raw_cap, len, 1);
	memcpy(h->raw, raw, len);
	h->raw_n = len;
	h->index = rs_index(r);
	size_t at = 0;
	int np, nc, nr;
	get_ids(h, r, rec, KEY_PROMPT_IDS, vocab, &at, &np);
	get_ids(h, r, rec, KEY_CHOSEN_IDS, vocab, &at, &nc);
	get_ids(h, r, rec, KEY_REJECTED_IDS, vocab, &at, &nr);
	if (np < 1)
		rs_die(r, "empty prompt_ids: a completion needs at least one token of context");
	/* the same rule as lbdpo-step's: an empty completion has no log-prob */
	if (nc < 1 || nr < 1)
		rs_die(r, "empty %s: a completion needs at least one token",
		       nc < 1 ? KEY_CHOSEN_IDS : KEY_REJECTED_IDS);
	int longest = np + (nc > nr ? nc : nr);
	if (max_pos > 0 && longest > max_pos)
		rs_die(r, "prompt + completion is %d tokens, more than the model's %d positions", longest, max_pos);
	h->pair = (score_pair){.prompt = h->ids,
			       .chosen = h->ids + np,
			       .rejected = h->ids + np + nc,
			       .n_prompt = np,
			       .n_chosen = nc,
			       .n_rejected = nr};
}

const msgpack_object *pair_obj(held_pair *h)
{
	if (h->u_init)
		msgpack_unpacked_destroy(&h->u);
	msgpack_unpacked_init(&h->u);
	h->u_init = 1;
	size_t off = 0;
	/* These bytes were parsed and validated by the reader already. */
	if (msgpack_unpack_next(&h->u, h->raw, h->raw_n, &off) != MSGPACK_UNPACK_SUCCESS)
		BUG("a held record does not unpack again");
	return &h->u.data;
}

void pair_free(held_pair *h)
{
	if (h->u_init)
		msgpack_unpacked_destroy(&h->u);
	free(h->raw);
	free(h->ids);
	memset(h, 0, sizeof *h);
}

void pairs_check_header(rs_reader *r, int model_vocab, const char *want_sha)
{
	const msgpack_object *hd = rs_header(r);
	const msgpack_object *tok = rs_get(hd, HDR_TOKENIZER);
	if (tok && tok->type != MSGPACK_OBJECT_MAP)
		rs_die(r, "header: \"tokenizer\" is not a map");
	if (tok) {
		int64_t v;
		if (rs_get_i64(r, tok, HDR_VOCAB_SIZE, &v) && (v < 1 || v > model_vocab))
			rs_die(r,
			       "header: the tokenizer's vocab_size %lld does not fit the model's "
			       "vocabulary of %d",
			       (long long)v, model_vocab);
	}
	if (want_sha) {
		const char *s = NULL;
		size_t n = 0;
		if (!tok || !rs_get_str(r, tok, HDR_SHA256, &s, &n))
			rs_die(r, "header names no tokenizer sha256; --tokenizer-sha %.16s... wants one", want_sha);
		if (n != strlen(want_sha) || strncmp(s, want_sha, n))
			rs_die(r, "header: tokenizer sha256 %.*s is not --tokenizer-sha %s", (int)n, s, want_sha);
	}
}

void pairs_put_model(rs_writer *w, const char *key, const char *path, const char *fp)
{
	msgpack_packer *pk = rs_put_key(w, key);
	msgpack_pack_map(pk, 2);
	msgpack_pack_str_with_body(pk, "path", 4);
	msgpack_pack_str_with_body(pk, path, strlen(path));
	msgpack_pack_str_with_body(pk, HDR_FINGERPRINT, 11);
	msgpack_pack_str_with_body(pk, fp, strlen(fp));
}
