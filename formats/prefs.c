/* prefs.c — preference pairs from TRL-style JSON objects; chat templates. */
#include "prefs.h"

#include <stdio.h>
#include <string.h>

#include "../libcore/util.h"

void sb_add(strbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) xgrow((void **)&b->s, &b->cap, b->n + n + 1, 1);
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}
static void sb_cstr(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
void sb_free(strbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->n = b->cap = 0;
}

void pref_text_free(pref_text *p)
{
	sb_free(&p->prompt);
	sb_free(&p->chosen);
	sb_free(&p->rejected);
}

int pref_template(const char *name)
{
	if (!strcmp(name, "chatml")) return TPL_CHATML;
	if (!strcmp(name, "llama3")) return TPL_LLAMA3;
	if (!strcmp(name, "hh")) return TPL_HH;
	return -1;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

size_t pref_implicit_prompt_len(const char *c, size_t nc, const char *r, size_t nr)
{
	size_t p = 0, m = nc < nr ? nc : nr;
	while (p < m && c[p] == r[p]) p++;
	/* boundary: both continue with whitespace, the prompt does not end in
	 * it; both completions keep at least that whitespace (one text being a
	 * prefix of the other must not leave an empty completion) */
	for (; p > 0; p--) {
		if (p < nc && p < nr && is_ws(c[p]) && is_ws(r[p]) && !is_ws(c[p - 1])) break;
	}
	return p;
}

/* ---- chat templates ---- */

/* Render one message; `cont` = the assistant header was already written by
 * the generation prompt (first completion message). */
static int render_msg(int tpl, strbuf *b, const char *role, const char *content, size_t n, int cont,
		      char *err, size_t errlen)
{
	switch (tpl) {
	case TPL_CHATML:
		if (!cont) {
			sb_cstr(b, "<|im_start|>");
			sb_cstr(b, role);
			sb_cstr(b, "\n");
		}
		sb_add(b, content, n);
		sb_cstr(b, "<|im_end|>\n");
		return 0;
	case TPL_LLAMA3:
		if (!cont) {
			sb_cstr(b, "<|start_header_id|>");
			sb_cstr(b, role);
			sb_cstr(b, "<|end_header_id|>\n\n");
		}
		sb_add(b, content, n);
		sb_cstr(b, "<|eot_id|>");
		return 0;
	case TPL_HH:
		if (cont) sb_cstr(b, " ");
		else if (!strcmp(role, "user")) sb_cstr(b, "\n\nHuman: ");
		else if (!strcmp(role, "assistant")) sb_cstr(b, "\n\nAssistant: ");
		else if (strcmp(role, "system")) {
			snprintf(err, errlen, "role \"%.40s\" has no place in the hh template", role);
			return -1;
		}
		sb_add(b, content, n);
		return 0;
	}
	snprintf(err, errlen, "no chat template");
	return -1;
}

static void render_gen(int tpl, strbuf *b)
{
	if (tpl == TPL_CHATML) sb_cstr(b, "<|im_start|>assistant\n");
	else if (tpl == TPL_LLAMA3) sb_cstr(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	else if (tpl == TPL_HH) sb_cstr(b, "\n\nAssistant:");
}

static int check_msgs(json_t *a, const char *key, char *err, size_t errlen)
{
	if (!json_is_array(a)) {
		snprintf(err, errlen, "\"%s\" must be a list of messages like the others", key);
		return -1;
	}
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *m = json_array_get(a, i);
		if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")) ||
		    !json_is_string(json_object_get(m, "content"))) {
			snprintf(err, errlen, "\"%s\"[%zu]: a message needs string \"role\" and \"content\"", key, i);
			return -1;
		}
	}
	return 0;
}

static int msg_eq(json_t *a, json_t *b)
{
	return json_equal(json_object_get(a, "role"), json_object_get(b, "role")) &&
	       json_equal(json_object_get(a, "content"), json_object_get(b, "content"));
}

static int render_list(int tpl, strbuf *b, json_t *a, size_t from, int cont, char *err, size_t errlen)
{
	for (size_t i = from; i < json_array_size(a); i++) {
		json_t *m = json_array_get(a, i);
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content");
		int first_cont = cont && i == from && !strcmp(role, "assistant");
		if (render_msg(tpl, b, role, json_string_value(c), json_string_length(c), first_cont, err, errlen))
			return -1;
	}
	return 0;
}

static int conversational(json_t *o, int tpl, pref_text *p, char *err, size_t errlen)
{
	json_t *pr = json_object_get(o, "prompt"), *ch = json_object_get(o, "chosen"),
	       *rj = json_object_get(o, "rejected");
	if (!tpl) {
		snprintf(err, errlen, "conversational record (message lists) needs --template");
		return -1;
	}
	if (check_msgs(ch, "chosen", err, errlen) || check_msgs(rj, "rejected", err, errlen)) return -1;
	size_t skip = 0;
	if (pr) {
		if (check_msgs(pr, "prompt", err, errlen)) return -1;
		p->format = PREF_CONVERSATIONAL;
	} else { /* implicit: the common leading messages */
		size_t m = json_array_size(ch) < json_array_size(rj) ? json_array_size(ch) : json_array_size(rj);
		while (skip < m && msg_eq(json_array_get(ch, skip), json_array_get(rj, skip))) skip++;
		p->format = PREF_IMPLICIT;
	}
	if (pr) {
		if (render_list(tpl, &p->prompt, pr, 0, 0, err, errlen)) return -1;
	} else {
		for (size_t i = 0; i < skip; i++) {
			json_t *one = json_array();
			json_array_append(one, json_array_get(ch, i));
			int rc = render_list(tpl, &p->prompt, one, 0, 0, err, errlen);
			json_decref(one);
			if (rc) return -1;
		}
	}
	render_gen(tpl, &p->prompt);
	if (json_array_size(ch) <= skip || json_array_size(rj) <= skip) {
		snprintf(err, errlen, "empty completion: \"%s\" has no messages after the prompt",
			 json_array_size(ch) <= skip ? "chosen" : "rejected");
		return -1;
	}
	if (render_list(tpl, &p->chosen, ch, skip, 1, err, errlen) ||
	    render_list(tpl, &p->rejected, rj, skip, 1, err, errlen))
		return -1;
	return 0;
}

int pref_extract(json_t *o, int tpl, pref_text *p, char *err, size_t errlen)
{
	p->prompt.n = p->chosen.n = p->rejected.n = 0;
	sb_add(&p->prompt, "", 0), sb_add(&p->chosen, "", 0), sb_add(&p->rejected, "", 0);
	json_t *pr = json_object_get(o, "prompt"), *ch = json_object_get(o, "chosen"),
	       *rj = json_object_get(o, "rejected");
	if (!ch || !rj) {
		snprintf(err, errlen, "missing key \"%s\"", !ch ? "chosen" : "rejected");
		return -1;
	}
	if (json_is_array(ch) || json_is_array(rj) || json_is_array(pr)) {
		if (conversational(o, tpl, p, err, errlen)) return -1;
	} else {
		if (!json_is_string(ch) || !json_is_string(rj) || (pr && !json_is_string(pr))) {
			const char *k = !json_is_string(ch) ? "chosen" : !json_is_string(rj) ? "rejected" : "prompt";
			snprintf(err, errlen, "\"%s\" must be a string or a list of messages", k);
			return -1;
		}
		const char *c = json_string_value(ch), *r = json_string_value(rj);
		size_t nc = json_string_length(ch), nr = json_string_length(rj);
		if (pr) {
			p->format = PREF_STANDARD;
			if (json_equal(pr, ch) && json_equal(pr, rj)) {
				snprintf(err, errlen, "the prompt is equal to both completions");
				return -1;
			}
			sb_add(&p->prompt, json_string_value(pr), json_string_length(pr));
			sb_add(&p->chosen, c, nc);
			sb_add(&p->rejected, r, nr);
		} else {
			p->format = PREF_IMPLICIT;
			if (nc == nr && !memcmp(c, r, nc)) {
				snprintf(err, errlen, "\"chosen\" and \"rejected\" are identical (a tie)");
				return PREF_TIE;
			}
			size_t k = pref_implicit_prompt_len(c, nc, r, nr);
			sb_add(&p->prompt, c, k);
			sb_add(&p->chosen, c + k, nc - k);
			sb_add(&p->rejected, r + k, nr - k);
		}
	}
	if (!p->chosen.n || !p->rejected.n) {
		snprintf(err, errlen, "empty completion \"%s\"", !p->chosen.n ? "chosen" : "rejected");
		return -1;
	}
	if (p->chosen.n == p->rejected.n && !memcmp(p->chosen.s, p->rejected.s, p->chosen.n)) {
		snprintf(err, errlen, "\"chosen\" and \"rejected\" completions are identical (a tie)");
		return PREF_TIE;
	}
	return 0;
}

int pref_truncate(const pref_trunc *o, uint32_t *prompt, size_t *np, size_t *nc, size_t *nr,
		  const uint32_t *c, const uint32_t *r, int *truncated)
{
	*truncated = 0;
	if (o->max_prompt > 0 && *np > (size_t)o->max_prompt) {
		size_t keep = (size_t)o->max_prompt;
		if (o->keep_end) {
			size_t head = (o->bos >= 0 && prompt[0] == (uint32_t)o->bos && keep > 1) ? 1 : 0;
			memmove(prompt + head, prompt + *np - (keep - head), (keep - head) * sizeof *prompt);
		}
		*np = keep;
		*truncated = 1;
	}
	if (o->max_length > 0) {
		if (*np + 1 > (size_t)o->max_length) return 0;
		size_t room = (size_t)o->max_length - *np;
		if (*nc > room) *nc = room, *truncated = 1;
		if (*nr > room) *nr = room, *truncated = 1;
	}
	if (*nc == *nr && !memcmp(c, r, *nc * sizeof *c)) return 0;
	return 1;
}

void pref_pack_json(msgpack_packer *pk, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		msgpack_pack_map(pk, json_object_size(v));
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) {
			msgpack_pack_str(pk, strlen(k));
			msgpack_pack_str_body(pk, k, strlen(k));
			pref_pack_json(pk, x);
		}
		break;
	}
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(v));
		for (size_t i = 0; i < json_array_size(v); i++) pref_pack_json(pk, json_array_get(v, i));
		break;
	case JSON_STRING:
		msgpack_pack_str(pk, json_string_length(v));
		msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(v)); break;
	case JSON_REAL: msgpack_pack_double(pk, json_real_value(v)); break;
	case JSON_TRUE: msgpack_pack_true(pk); break;
	case JSON_FALSE: msgpack_pack_false(pk); break;
	case JSON_NULL: msgpack_pack_nil(pk); break;
	}
}
