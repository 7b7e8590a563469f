/* data.c — preference records in memory and stream provenance (data.h). */
#define _GNU_SOURCE
#include "libcore/train/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <ctype.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "formats/jsonl.h"
#include "formats/records.h"
#include "formats/safetensors.h"
#include "formats/schema.h"

static int group_index(pref_set *s, const char *g, size_t n)
{
	for (int i = 0; i < s->n_groups; i++)
		if (strlen(s->groups[i]) == n && !memcmp(s->groups[i], g, n))
			return i;
	s->groups = xrealloc(s->groups, sizeof(char *) * (size_t)(s->n_groups + 1));
	char *c = xmalloc(n + 1);
	memcpy(c, g, n);
	c[n] = 0;
	s->groups[s->n_groups] = c;
	return s->n_groups++;
}

/* "key": {..., sub: <64 hex>} -> out ("" when the key is absent) */
int is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static void header_hash(rs_reader *r, const char *key, const char *sub, char out[65])
{
	const msgpack_object *o = rs_get(rs_header(r), key);
	out[0] = 0;
	if (!o)
		return;
	if (o->type != MSGPACK_OBJECT_MAP)
		rs_die(r, "header: \"%s\" is not a map", key);
	const char *v;
	size_t n;
	if (!rs_get_str(r, o, sub, &v, &n))
		rs_die(r, "header: \"%s\" has no %s", key, sub);
	if (!is_hex64(v, n))
		rs_die(r, "header: %s %s '%.*s' is not 64 lowercase hex digits", key, sub, (int)(n > 80 ? 80 : n), v);
	memcpy(out, v, 64);
	out[64] = 0;
}

void prov_read(rs_reader *r, int model_vocab, provenance *p)
{
	memset(p, 0, sizeof *p);
	const char *k;
	size_t kn;
	rs_req(r, rs_get_str(r, rs_header(r), HDR_KIND, &k, &kn), HDR_KIND);
	snprintf(p->kind, sizeof p->kind, "%.*s", (int)kn, k);
	header_hash(r, HDR_TOKENIZER, HDR_SHA256, p->tok_sha);
	header_hash(r, HDR_REFERENCE, HDR_FINGERPRINT, p->ref_fp);
	const msgpack_object *tok = rs_get(rs_header(r), HDR_TOKENIZER);
	int64_t v;
	if (tok && rs_get_i64(r, tok, HDR_VOCAB_SIZE, &v)) {
		if (v < 1 || (model_vocab > 0 && v > model_vocab))
			rs_die(r, "header: the tokenizer's vocab_size %lld does not fit the model's vocabulary of %d",
			       (long long)v, model_vocab);
		p->tok_vocab = v;
	}
}

pref_set *pref_load(const char *path, int need_ref, uint32_t vocab)
{
	rs_reader *r = rs_open(path, need_ref ? "ref" : "tokens,ref");
	pref_set *s = xcalloc(1, sizeof *s);
	s->name = xstrdup(rs_name(r));
	prov_read(r, (int)vocab, &s->prov);
	if (s->prov.tok_vocab > 0 && (vocab == 0 || s->prov.tok_vocab < vocab))
		vocab = (uint32_t)s->prov.tok_vocab; /* ids beyond the tokenizer's vocabulary are corrupt */
	if (need_ref && !s->prov.ref_fp[0])
		rs_die(r, "header: a stream of kind 'ref' names no reference model (\"reference\" with a fingerprint)");
	size_t cap = 0;
	const msgpack_object *rec;
	while (rs_next(r, &rec)) {
		xgrow((void **)&s->r, &cap, (size_t)s->n + 1, sizeof(pref_rec));
		pref_rec *p = &s->r[s->n];
		memset(p, 0, sizeof *p);
		p->index = rs_index(r);
		p->offset = rs_offset(r);
		size_t n, c0 = 0, c1 = 0, c2 = 0;
		rs_req(r, rs_get_ids(r, rec, KEY_PROMPT_IDS, vocab, &p->prompt, &n, &c0), KEY_PROMPT_IDS);
		p->np = (int)n;
		rs_req(r, rs_get_ids(r, rec, KEY_CHOSEN_IDS, vocab, &p->chosen, &n, &c1), KEY_CHOSEN_IDS);
		p->nc = (int)n;
		rs_req(r, rs_get_ids(r, rec, KEY_REJECTED_IDS, vocab, &p->rejected, &n, &c2), KEY_REJECTED_IDS);
		p->nr = (int)n;
		if (p->np < 1 || p->nc < 1 || p->nr < 1)
			rs_die(r, "empty prompt_ids, chosen_ids or rejected_ids");
		if (p->np > 1000000 || p->nc > 1000000 || p->nr > 1000000)
			rs_die(r, "sequence longer than 1000000 tokens");
		const char *str;
		size_t sl;
		p->group = -1;
		if (rs_get_str(r, rec, KEY_GROUP, &str, &sl))
			p->group = group_index(s, str, sl);
		if (rs_get_str(r, rec, KEY_ID, &str, &sl)) {
			p->id = xmalloc(sl + 1);
			memcpy(p->id, str, sl);
			p->id[sl] = 0;
		}
		int a = rs_get_f64(r, rec, KEY_REF_CHOSEN_LOGP, &p->ref_c);
		int b = rs_get_f64(r, rec, KEY_REF_REJECTED_LOGP, &p->ref_r);
		p->has_ref = a && b;
		if (need_ref) {
			rs_req(r, a, KEY_REF_CHOSEN_LOGP);
			rs_req(r, b, KEY_REF_REJECTED_LOGP);
		}
		int64_t cn;
		if (rs_get_i64(r, rec, KEY_REF_CHOSEN_N, &cn) && cn != p->nc)
			rs_die(r, "ref_chosen_n %lld differs from the %d chosen_ids: cache made from other tokens",
			       (long long)cn, p->nc);
		if (rs_get_i64(r, rec, KEY_REF_REJECTED_N, &cn) && cn != p->nr)
			rs_die(r, "ref_rejected_n %lld differs from the %d rejected_ids: cache made from other tokens",
			       (long long)cn, p->nr);
		if (rs_get_f64(r, rec, KEY_MARGIN, &p->margin) && !isfinite(p->margin))
			rs_die(r, "non-finite margin");
		p->has_plogp = rs_get_f64(r, rec, KEY_REF_PROMPT_LOGP, &p->ref_plogp);
		p->has_entropy = rs_get_f64(r, rec, KEY_REF_PROMPT_ENTROPY, &p->ref_entropy);
		if (!isfinite(p->ref_c) || !isfinite(p->ref_r) || !isfinite(p->ref_plogp) || !isfinite(p->ref_entropy))
			rs_die(r, "non-finite reference score");
		s->n++;
	}
	rs_close(r);
	return s;
}

void pref_check_context(const pref_set *s, int max_pos)
{
	for (int i = 0; max_pos > 0 && i < s->n; i++) {
		const pref_rec *p = &s->r[i];
		int longest = p->np + (p->nc > p->nr ? p->nc : p->nr);
		if (longest > max_pos)
			die("%s: record %llu (byte offset %llu): prompt + completion is %d tokens, more than the "
			    "model's context of %d positions",
			    s->name, (unsigned long long)p->index, (unsigned long long)p->offset, longest, max_pos);
	}
}

void pref_free(pref_set *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		free(s->r[i].prompt);
		free(s->r[i].chosen);
		free(s->r[i].rejected);
		free(s->r[i].id);
	}
	for (int i = 0; i < s->n_groups; i++)
		free(s->groups[i]);
	free(s->groups);
	free(s->r);
	free(s->name);
	free(s);
}
