/* prefs.c — preference pairs from TRL-style JSON objects; chat templates. */
#include "formats/prefs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "formats/jinja.h"
#include "formats/tokenizer.h"

void sb_add(strbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap)
		xgrow((void **)&b->s, &b->cap, b->n + n + 1, 1);
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
	sb_free(&p->gen);
	sb_free(&p->full_c);
	sb_free(&p->full_r);
}

int pref_template(const char *name)
{
	if (!strcmp(name, "chatml"))
		return TPL_CHATML;
	if (!strcmp(name, "llama3"))
		return TPL_LLAMA3;
	if (!strcmp(name, "hh"))
		return TPL_HH;
	return -1;
}

/* Start of the UTF-8 character holding byte p of s (TRL indexes characters). */
static size_t char_start(const char *s, size_t p)
{
	while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80)
		p--;
	return p;
}

size_t pref_implicit_prompt_len(const char *c, size_t nc, const char *r, size_t nr)
{
	size_t p = 0, m = nc < nr ? nc : nr;
	while (p < m && c[p] == r[p])
		p++;
	if (p == m) /* no difference: TRL's loop ends on the shorter text's last character */
		return m ? char_start(c, m - 1) : 0;
	p = char_start(c, p); /* the first differing character */
	if (p > 0 && c[p - 1] == ' ')
		p--; /* "remove space before the prompt" */
	return p;
}

/* ---- chat templates ---- */

struct pref_tpl {
	int kind; /* TPL_CHATML ... TPL_JINJA; TPL_NONE: none (why says why) */
	char *name;
	jinja *j;
	json_t *vars; /* special-token variables */
	char *why;
};

static pref_tpl builtins[] = {
	{TPL_NONE, NULL, NULL, NULL, NULL},
	{TPL_CHATML, "chatml", NULL, NULL, NULL},
	{TPL_LLAMA3, "llama3", NULL, NULL, NULL},
	{TPL_HH, "hh", NULL, NULL, NULL},
};

pref_tpl *pref_tpl_builtin(int tpl) { return tpl > TPL_NONE && tpl <= TPL_HH ? &builtins[tpl] : NULL; }
const char *pref_tpl_name(const pref_tpl *t) { return t && t->kind != TPL_NONE ? t->name : NULL; }
int pref_tpl_eot(const pref_tpl *t) { return t && t->kind != TPL_HH; }
int pref_tpl_is_jinja(const pref_tpl *t) { return t && t->kind == TPL_JINJA; }

/* "bos_token": "x" or {"content": "x"} */
static json_t *cfg_tok(json_t *cfg, const char *k)
{
	json_t *v = json_object_get(cfg, k);
	if (json_is_object(v))
		v = json_object_get(v, "content");
	return json_is_string(v) ? v : NULL;
}

static char *read_text(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	strbuf b = {0};
	char tmp[65536];
	size_t r;
	sb_add(&b, "", 0);
	/* a template past the engine's limit is refused: read no more of it */
	while (b.n <= JINJA_MAX_SOURCE && (r = fread(tmp, 1, sizeof tmp, f)) > 0)
		sb_add(&b, tmp, r);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		sb_free(&b);
		return NULL;
	}
	*n = b.n;
	return b.s;
}

pref_tpl *pref_tpl_load(const char *spec, const char *tokdir, const char *bos, const char *eos)
{
	if (spec && pref_template(spec) > 0)
		return pref_tpl_builtin(pref_template(spec));
	pref_tpl *t = xcalloc(1, sizeof *t);
	t->vars = json_object();
	json_t *cfg = NULL;
	char path[4096];
	if (tokdir) {
		snprintf(path, sizeof path, "%s/tokenizer_config.json", tokdir);
		json_error_t je;
		cfg = json_load_file(path, 0, &je);
	}
	static const char *toks[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
	for (int i = 0; i < 4; i++) {
		json_t *v = cfg_tok(cfg, toks[i]);
		if (v)
			json_object_set(t->vars, toks[i], v);
	}
	if (!json_object_get(t->vars, "bos_token") && bos)
		json_object_set_new(t->vars, "bos_token", json_string(bos));
	if (!json_object_get(t->vars, "eos_token") && eos)
		json_object_set_new(t->vars, "eos_token", json_string(eos));

	char *src = NULL;
	size_t n = 0;
	if (spec) {
		src = read_text(spec, &n);
		if (!src)
			die("--template %s: not a built-in name (chatml, llama3, hh) and cannot be read: %s", spec,
			    strerror(errno));
		t->name = xstrdup(spec);
	} else if (tokdir) {
		/* chat_template.jinja takes priority over tokenizer_config.json */
		snprintf(path, sizeof path, "%s/chat_template.jinja", tokdir);
		src = read_text(path, &n);
		if (src)
			t->name = xstrdup(path);
		else if (cfg) {
			json_t *ct = json_object_get(cfg, "chat_template");
			if (json_is_array(ct)) { /* [{name, template}]: the "default" one */
				json_t *d = NULL;
				for (size_t i = 0; i < json_array_size(ct); i++) {
					json_t *e = json_array_get(ct, i);
					if (json_is_string(json_object_get(e, "name")) &&
					    !strcmp(json_string_value(json_object_get(e, "name")), "default"))
						d = json_object_get(e, "template");
				}
				if (!d)
					t->why = xstrdup(
						"tokenizer_config.json has several chat templates and none named \"default\"");
				ct = d;
			}
			if (json_is_string(ct)) {
				n = json_string_length(ct);
				src = xmalloc(n + 1);
				memcpy(src, json_string_value(ct), n + 1);
				snprintf(path, sizeof path, "%s/tokenizer_config.json", tokdir);
				t->name = xstrdup(path);
			}
		}
	}
	json_decref(cfg);
	if (!src) {
		if (!t->why)
			t->why = xstrdup(
				"conversational record (message lists) needs a chat template: the tokenizer has none "
				"(no chat_template.jinja or tokenizer_config.json \"chat_template\" beside it); use --template");
		return t;
	}
	char err[512];
	t->j = jinja_compile(src, n, err, sizeof err);
	free(src);
	if (!t->j) {
		if (spec)
			die("%s: %s", spec, err);
		char why[700];
		snprintf(why, sizeof why, "chat template %s: %s", t->name, err);
		t->why = xstrdup(why);
		return t;
	}
	t->kind = TPL_JINJA;
	return t;
}

void pref_tpl_free(pref_tpl *t)
{
	if (!t || (t >= builtins && t < builtins + sizeof builtins / sizeof builtins[0]))
		return;
	jinja_free(t->j);
	json_decref(t->vars);
	free(t->name), free(t->why);
	free(t);
}

/* Built-in templates: one message. */
static int render_msg(int tpl, strbuf *b, const char *role, const char *content, size_t n, char *err, size_t errlen)
{
	switch (tpl) {
	case TPL_CHATML:
		sb_cstr(b, "<|im_start|>");
		sb_cstr(b, role);
		sb_cstr(b, "\n");
		sb_add(b, content, n);
		sb_cstr(b, "<|im_end|>\n");
		return 0;
	case TPL_LLAMA3:
		sb_cstr(b, "<|start_header_id|>");
		sb_cstr(b, role);
		sb_cstr(b, "<|end_header_id|>\n\n");
		sb_add(b, content, n);
		sb_cstr(b, "<|eot_id|>");
		return 0;
	case TPL_HH:
		if (!strcmp(role, "user"))
			sb_cstr(b, "\n\nHuman: ");
		else if (!strcmp(role, "assistant"))
			sb_cstr(b, "\n\nAssistant: ");
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

/* transformers' apply_chat_template drops the keys of a message whose value
 * is None (_normalize_chat_messages): datasets' to_json writes every key of
 * every message ("tool_calls": null), and templates that test 'tool_calls'
 * in message would otherwise fail on them */
static json_t *drop_null_keys(json_t *msgs)
{
	json_t *l = json_array();
	for (size_t i = 0; i < json_array_size(msgs); i++) {
		json_t *m = json_array_get(msgs, i), *c = m;
		const char *k;
		json_t *v;
		if (json_is_object(m)) {
			c = json_object();
			json_object_foreach(m, k, v)
			{
				if (!json_is_null(v))
					json_object_set(c, k, v);
			}
		} else
			json_incref(c);
		json_array_append_new(l, c);
	}
	return l;
}

int pref_tpl_render(const pref_tpl *t, json_t *msgs, int add_gen, json_t *rec, strbuf *b, char *err, size_t errlen)
{
	if (!t || t->kind == TPL_NONE) {
		snprintf(err, errlen, "%s",
			 t && t->why ? t->why : "conversational record (message lists) needs --template");
		return -1;
	}
	sb_add(b, "", 0);
	json_t *tools = rec ? json_object_get(rec, "tools") : NULL,
	       *kw = rec ? json_object_get(rec, "chat_template_kwargs") : NULL;
	if (tools && json_is_null(tools))
		tools = NULL;
	if (kw && !json_is_object(kw)) {
		snprintf(err, errlen, "\"chat_template_kwargs\" must be an object");
		return -1;
	}
	if ((tools || (kw && json_object_size(kw))) && t->kind != TPL_JINJA) {
		snprintf(err, errlen,
			 "\"tools\" and \"chat_template_kwargs\" need a Jinja chat template, not the built-in %s",
			 t->name);
		return -1;
	}
	if (t->kind == TPL_JINJA) {
		json_t *vars = json_copy(t->vars);
		json_t *tl = NULL;
		if (tools && json_is_string(tools)) { /* TRL: json.loads of a string */
			tl = json_loadb(json_string_value(tools), json_string_length(tools), 0, NULL);
			if (!tl) {
				json_decref(vars);
				snprintf(err, errlen, "\"tools\": a string that is not JSON");
				return -1;
			}
		} else if (tools)
			tl = json_incref(tools);
		if (tl && !json_is_array(tl)) {
			json_decref(tl), json_decref(vars);
			snprintf(err, errlen, "\"tools\" must be a list");
			return -1;
		}
		/* transformers always passes tools and documents (None when not
		 * given); TRL passes `tools or None`: an empty list is no tools */
		json_object_set_new(vars, "tools", json_null());
		json_object_set_new(vars, "documents", json_null());
		if (tl && json_array_size(tl))
			json_object_set(vars, "tools", tl);
		json_decref(tl);
		if (kw)
			json_object_update(vars, kw);
		json_object_set_new(vars, "messages", drop_null_keys(msgs));
		json_object_set_new(vars, "add_generation_prompt", json_boolean(add_gen));
		char *out;
		size_t n;
		char jerr[512];
		int rc = jinja_render(t->j, vars, &out, &n, jerr, sizeof jerr);
		json_decref(vars);
		if (rc == JINJA_RAISED) {
			snprintf(err, errlen, "chat template: %s", jerr);
			return -1;
		}
		if (rc) {
			snprintf(err, errlen, "chat template %s: %s", t->name, jerr);
			return -1;
		}
		sb_add(b, out, n);
		free(out);
		return 0;
	}
	for (size_t i = 0; i < json_array_size(msgs); i++) {
		json_t *m = json_array_get(msgs, i);
		json_t *c = json_object_get(m, "content");
		if (!json_is_string(c) || !json_is_string(json_object_get(m, "role"))) {
			snprintf(err, errlen, "message %zu: the %s template needs string \"role\" and \"content\"", i,
				 t->name);
			return -1;
		}
		if (render_msg(t->kind, b, json_string_value(json_object_get(m, "role")), json_string_value(c),
			       json_string_length(c), err, errlen))
			return -1;
	}
	if (add_gen) {
		if (t->kind == TPL_CHATML)
			sb_cstr(b, "<|im_start|>assistant\n");
		else if (t->kind == TPL_LLAMA3)
			sb_cstr(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
		else if (t->kind == TPL_HH)
			sb_cstr(b, "\n\nAssistant:");
	}
	return 0;
}

static int check_msgs(json_t *a, const char *key, char *err, size_t errlen)
{
	if (!json_is_array(a)) {
		snprintf(err, errlen, "\"%s\" must be a list of messages like the others", key);
		return -1;
	}
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *m = json_array_get(a, i);
		if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
			snprintf(err, errlen, "\"%s\"[%zu]: a message needs a string \"role\"", key, i);
			return -1;
		}
	}
	return 0;
}

static json_t *cat_msgs(json_t *a, json_t *b)
{
	json_t *l = json_copy(a);
	json_array_extend(l, b);
	return l;
}

static size_t lcp(const strbuf *a, const strbuf *b)
{
	size_t k = 0, m = a->n < b->n ? a->n : b->n;
	while (k < m && a->s[k] == b->s[k])
		k++;
	return k;
}

/* TRL's apply_chat_template for conversational preference data:
 *   prompt = render(prompt, add_generation_prompt=True), cut back to its
 *            longest common prefix with render(prompt + chosen) and
 *            render(prompt + rejected) (some generation prompts end in text
 *            the full rendering lacks, e.g. DeepSeek-R1's "<think>\n");
 *   chosen/rejected = those full renderings without the prompt.
 * Without a "prompt", the prompt is the messages both lists begin with
 * (TRL's extract_prompt). */
static int conversational(json_t *o, const pref_tpl *tpl, pref_text *p, char *err, size_t errlen)
{
	json_t *pr = json_object_get(o, "prompt"), *ch = json_object_get(o, "chosen"),
	       *rj = json_object_get(o, "rejected");
	if (!tpl || tpl->kind == TPL_NONE) {
		snprintf(err, errlen, "%s",
			 tpl && tpl->why ? tpl->why : "conversational record (message lists) needs --template");
		return -1;
	}
	if (check_msgs(ch, "chosen", err, errlen) || check_msgs(rj, "rejected", err, errlen))
		return -1;
	json_t *prompt, *c, *r;
	if (pr) {
		if (check_msgs(pr, "prompt", err, errlen))
			return -1;
		p->format = PREF_CONVERSATIONAL;
		prompt = json_incref(pr), c = json_incref(ch), r = json_incref(rj);
	} else {
		size_t m = json_array_size(ch) < json_array_size(rj) ? json_array_size(ch) : json_array_size(rj), k = 0;
		while (k < m && json_equal(json_array_get(ch, k), json_array_get(rj, k)))
			k++;
		if (k == m) {
			snprintf(err, errlen, "empty completion: \"%s\" has no messages after the ones both share",
				 json_array_size(ch) == m ? "chosen" : "rejected");
			return -1;
		}
		p->format = PREF_IMPLICIT;
		prompt = json_array(), c = json_array(), r = json_array();
		for (size_t i = 0; i < k; i++)
			json_array_append(prompt, json_array_get(ch, i));
		for (size_t i = k; i < json_array_size(ch); i++)
			json_array_append(c, json_array_get(ch, i));
		for (size_t i = k; i < json_array_size(rj); i++)
			json_array_append(r, json_array_get(rj, i));
	}
	int rc = -1;
	size_t np = json_array_size(prompt);
	const char *last = np ? json_string_value(json_object_get(json_array_get(prompt, np - 1), "role")) : NULL;
	if (!np)
		snprintf(err, errlen, "empty prompt: no messages before the completions");
	else if (!json_array_size(c) || !json_array_size(r))
		snprintf(err, errlen, "empty completion \"%s\"", !json_array_size(c) ? "chosen" : "rejected");
	else if (!strcmp(last, "assistant"))
		snprintf(err, errlen,
			 "the prompt ends with an assistant message (TRL's continue_final_message): not supported");
	else if (strcmp(last, "user") && strcmp(last, "tool"))
		snprintf(err, errlen, "invalid role in the last prompt message: \"%.40s\" (user or tool expected)",
			 last);
	else {
		json_t *fc = cat_msgs(prompt, c), *fr = cat_msgs(prompt, r);
		p->rendered = 1;
		p->gen.n = p->full_c.n = p->full_r.n = 0;
		if (!pref_tpl_render(tpl, prompt, 1, o, &p->gen, err, errlen) &&
		    !pref_tpl_render(tpl, fc, 0, o, &p->full_c, err, errlen) &&
		    !pref_tpl_render(tpl, fr, 0, o, &p->full_r, err, errlen)) {
			size_t k = lcp(&p->gen, &p->full_c), k2 = lcp(&p->gen, &p->full_r);
			if (k2 < k)
				k = k2;
			/* Python compares code points: never cut inside a UTF-8 sequence */
			while (k > 0 && ((k < p->gen.n && ((unsigned char)p->gen.s[k] & 0xC0) == 0x80) ||
					 (k < p->full_c.n && ((unsigned char)p->full_c.s[k] & 0xC0) == 0x80) ||
					 (k < p->full_r.n && ((unsigned char)p->full_r.s[k] & 0xC0) == 0x80)))
				k--;
			sb_add(&p->prompt, p->gen.s, k);
			sb_add(&p->chosen, p->full_c.s + k, p->full_c.n - k);
			sb_add(&p->rejected, p->full_r.s + k, p->full_r.n - k);
			rc = 0;
		}
		json_decref(fc), json_decref(fr);
	}
	json_decref(prompt), json_decref(c), json_decref(r);
	return rc;
}

int pref_extract(json_t *o, int tpl, pref_text *p, char *err, size_t errlen)
{
	return pref_extract_tpl(o, pref_tpl_builtin(tpl), p, err, errlen);
}

int pref_extract_tpl(json_t *o, const pref_tpl *tpl, pref_text *p, char *err, size_t errlen)
{
	p->rendered = 0;
	p->prompt.n = p->chosen.n = p->rejected.n = 0;
	sb_add(&p->prompt, "", 0), sb_add(&p->chosen, "", 0), sb_add(&p->rejected, "", 0);
	json_t *pr = json_object_get(o, "prompt"), *ch = json_object_get(o, "chosen"),
	       *rj = json_object_get(o, "rejected");
	if (!ch || !rj) {
		snprintf(err, errlen, "missing key \"%s\"", !ch ? "chosen" : "rejected");
		return -1;
	}
	if (json_is_array(ch) || json_is_array(rj) || json_is_array(pr)) {
		if (conversational(o, tpl, p, err, errlen))
			return -1;
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

/* The prompt keeps keep tokens: its last ones (a leading BOS stays
 * first) with keep_end, else its first. */
static void prompt_cut(uint32_t *prompt, size_t *np, size_t keep, int keep_end, int64_t bos)
{
	if (keep_end) {
		size_t head = (bos >= 0 && prompt[0] == (uint32_t)bos && keep > 1) ? 1 : 0;
		memmove(prompt + head, prompt + *np - (keep - head), (keep - head) * sizeof *prompt);
	}
	*np = keep;
}

int pref_truncate(const pref_trunc *o, uint32_t *prompt, size_t *np, size_t *nc, size_t *nr, const uint32_t *c,
		  const uint32_t *r, int *truncated)
{
	*truncated = 0;
	if (o->max_prompt > 0 && *np > (size_t)o->max_prompt) {
		prompt_cut(prompt, np, (size_t)o->max_prompt, o->keep_end, o->bos);
		*truncated = 1;
	}
	if (o->max_length > 0 && o->seq_keep_end) {
		size_t longer = *nc > *nr ? *nc : *nr;
		if (longer + 1 > (size_t)o->max_length)
			return 0;
		if (*np + longer > (size_t)o->max_length) {
			prompt_cut(prompt, np, (size_t)o->max_length - longer, 1, o->bos);
			*truncated = 1;
		}
	} else if (o->max_length > 0) {
		if (*np + 1 > (size_t)o->max_length)
			return 0;
		size_t room = (size_t)o->max_length - *np;
		if (*nc > room)
			*nc = room, *truncated = 1;
		if (*nr > room)
			*nr = room, *truncated = 1;
	}
	if (*nc == *nr && !memcmp(c, r, *nc * sizeof *c))
		return 0;
	return 1;
}

void pref_pack_json(msgpack_packer *pk, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		msgpack_pack_map(pk, json_object_size(v));
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			msgpack_pack_str(pk, strlen(k));
			msgpack_pack_str_body(pk, k, strlen(k));
			pref_pack_json(pk, x);
		}
		break;
	}
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(v));
		for (size_t i = 0; i < json_array_size(v); i++)
			pref_pack_json(pk, json_array_get(v, i));
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

int pref_prompt_ids(tok *tk, const pref_tpl *tpl, json_t *rec, int add_bos, strbuf *scratch, uint32_t **ids, size_t *n,
		    size_t *cap, char *err, size_t errlen)
{
	json_t *p = json_object_get(rec, "prompt");
	const char *text;
	size_t tlen;
	add_bos = add_bos && tok_add_bos(tk) && tok_bos(tk) >= 0;
	if (json_is_array(p)) {
		scratch->n = 0;
		if (pref_tpl_render(tpl, p, 1, rec, scratch, err, errlen))
			return -1;
		text = scratch->s, tlen = scratch->n;
		if (pref_tpl_is_jinja(tpl))
			add_bos = 0;
	} else if (json_is_string(p)) {
		text = json_string_value(p), tlen = json_string_length(p);
	} else {
		snprintf(err, errlen, "no \"prompt\" string or message list");
		return -1;
	}
	size_t nbos = 0;
	const char *bos_text = tok_bos(tk) >= 0 ? tok_piece(tk, (uint32_t)tok_bos(tk), &nbos) : NULL;
	if (bos_text && tlen >= nbos && !memcmp(text, bos_text, nbos))
		add_bos = 0;
	*n = 0;
	if (add_bos) {
		xgrow((void **)ids, cap, 1, sizeof **ids);
		(*ids)[(*n)++] = (uint32_t)tok_bos(tk);
	}
	if (tok_encode(tk, text ? text : "", tlen, 0, ids, n, cap) != 0) {
		snprintf(err, errlen, "prompt: %s", tok_error(tk));
		return -1;
	}
	return 0;
}
