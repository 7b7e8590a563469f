/* mpjson.c — lossless msgpack <-> JSON (see mpjson.h for the mapping). */
#define _GNU_SOURCE
#include "formats/mpjson.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* ---------------- msgpack -> JSON ---------------- */

typedef struct {
	char **buf;
	size_t *len, *cap;
} sbuf;

static void put(sbuf *s, const char *p, size_t n)
{
	xgrow((void **)s->buf, s->cap, *s->len + n + 1, 1);
	memcpy(*s->buf + *s->len, p, n);
	*s->len += n;
	(*s->buf)[*s->len] = 0;
}

static void putc_(sbuf *s, char c) { put(s, &c, 1); }
static void puts_(sbuf *s, const char *p) { put(s, p, strlen(p)); }

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_b64(sbuf *s, const unsigned char *p, size_t n)
{
	putc_(s, '"');
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		char q[4] = {B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < n ? B64[v >> 6 & 63] : '=',
			     i + 2 < n ? B64[v & 63] : '='};
		put(s, q, 4);
	}
	putc_(s, '"');
}

/* Length of the valid UTF-8 sequence at p, 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t k;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	else if ((c & 0xe0) == 0xc0)
		k = 2, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		k = 3, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		k = 4, cp = c & 0x07;
	else
		return 0;
	if (k > n)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

static int valid_utf8(const char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_len((const unsigned char *)p + i, n - i);
		if (!k)
			return 0;
		i += k;
	}
	return 1;
}

static void put_str(sbuf *s, const char *p, size_t n)
{
	putc_(s, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		switch (c) {
		case '"': puts_(s, "\\\""); break;
		case '\\': puts_(s, "\\\\"); break;
		case '\n': puts_(s, "\\n"); break;
		case '\r': puts_(s, "\\r"); break;
		case '\t': puts_(s, "\\t"); break;
		case '\b': puts_(s, "\\b"); break;
		case '\f': puts_(s, "\\f"); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char e[8];
				snprintf(e, sizeof e, "\\u%04x", c);
				puts_(s, e);
			} else {
				putc_(s, (char)c);
			}
		}
	}
	putc_(s, '"');
}

static void put_float(sbuf *s, double v, int is32)
{
	char b[40];
	if (!isfinite(v)) {
		puts_(s, is32 ? "{\"$f32\":\"" : "{\"$f64\":\"");
		puts_(s, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
		puts_(s, "\"}");
		return;
	}
	/* %.9g and %.17g are the shortest widths that round-trip f32 and f64. */
	snprintf(b, sizeof b, is32 ? "%.9g" : "%.17g", v);
	if (!strpbrk(b, ".eEn"))
		strcat(b, ".0");
	if (is32) {
		puts_(s, "{\"$f32\":");
		puts_(s, b);
		putc_(s, '}');
	} else {
		puts_(s, b);
	}
}

static void to_json(sbuf *s, const msgpack_object *o, int flags)
{
	char b[40];
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: puts_(s, "null"); break;
	case MSGPACK_OBJECT_BOOLEAN: puts_(s, o->via.boolean ? "true" : "false"); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX) {
			snprintf(b, sizeof b, "{\"$u64\":\"%llu\"}", (unsigned long long)o->via.u64);
		} else {
			snprintf(b, sizeof b, "%llu", (unsigned long long)o->via.u64);
		}
		puts_(s, b);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(b, sizeof b, "%lld", (long long)o->via.i64);
		puts_(s, b);
		break;
	case MSGPACK_OBJECT_FLOAT32: put_float(s, o->via.f64, 1); break;
	case MSGPACK_OBJECT_FLOAT64: put_float(s, o->via.f64, 0); break;
	case MSGPACK_OBJECT_STR:
		if (valid_utf8(o->via.str.ptr, o->via.str.size)) {
			put_str(s, o->via.str.ptr, o->via.str.size);
		} else {
			puts_(s, "{\"$strb\":");
			put_b64(s, (const unsigned char *)o->via.str.ptr, o->via.str.size);
			putc_(s, '}');
		}
		break;
	case MSGPACK_OBJECT_BIN:
		if ((flags & MPJ_F32) && o->via.bin.size % 4 == 0) {
			puts_(s, "{\"$f32le\":[");
			const unsigned char *p = (const unsigned char *)o->via.bin.ptr;
			for (uint32_t i = 0; i < o->via.bin.size / 4; i++) {
				uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
					     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
				float f;
				memcpy(&f, &u, 4);
				if (i)
					putc_(s, ',');
				if (!isfinite(f)) {
					puts_(s, isnan(f) ? "\"nan\"" : f > 0 ? "\"inf\"" : "\"-inf\"");
				} else {
					snprintf(b, sizeof b, "%.9g", (double)f);
					puts_(s, b);
				}
			}
			puts_(s, "]}");
		} else {
			puts_(s, "{\"$bin\":");
			put_b64(s, (const unsigned char *)o->via.bin.ptr, o->via.bin.size);
			putc_(s, '}');
		}
		break;
	case MSGPACK_OBJECT_EXT:
		snprintf(b, sizeof b, "{\"$ext\":[%d,", (int)o->via.ext.type);
		puts_(s, b);
		put_b64(s, (const unsigned char *)o->via.ext.ptr, o->via.ext.size);
		puts_(s, "]}");
		break;
	case MSGPACK_OBJECT_ARRAY:
		putc_(s, '[');
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (i)
				putc_(s, ',');
			to_json(s, &o->via.array.ptr[i], flags);
		}
		putc_(s, ']');
		break;
	case MSGPACK_OBJECT_MAP: {
		int strkeys = 1;
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;
			/* a lone "$..." key would read back as a typed value */
			if (k->type != MSGPACK_OBJECT_STR || !valid_utf8(k->via.str.ptr, k->via.str.size) ||
			    (o->via.map.size == 1 && k->via.str.size && k->via.str.ptr[0] == '$'))
				strkeys = 0;
		}
		if (!strkeys) {
			puts_(s, "{\"$map\":[");
			for (uint32_t i = 0; i < o->via.map.size; i++) {
				if (i)
					putc_(s, ',');
				putc_(s, '[');
				to_json(s, &o->via.map.ptr[i].key, flags);
				putc_(s, ',');
				to_json(s, &o->via.map.ptr[i].val, flags);
				putc_(s, ']');
			}
			puts_(s, "]}");
			break;
		}
		putc_(s, '{');
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			if (i)
				putc_(s, ',');
			const msgpack_object *k = &o->via.map.ptr[i].key;
			put_str(s, k->via.str.ptr, k->via.str.size);
			putc_(s, ':');
			to_json(s, &o->via.map.ptr[i].val, flags);
		}
		putc_(s, '}');
		break;
	}
	}
}

void mpj_string(const char *p, size_t n, char **buf, size_t *len, size_t *cap)
{
	sbuf s = {buf, len, cap};
	if (valid_utf8(p, n)) {
		put_str(&s, p, n);
		return;
	}
	/* decoded text may cut a multi-byte character: show U+FFFD for it */
	char *t = xmalloc(3 * n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_len((const unsigned char *)p + i, n - i);
		if (l) {
			memcpy(t + k, p + i, l);
			k += l;
			i += l;
		} else {
			memcpy(t + k, "\xef\xbf\xbd", 3);
			k += 3;
			i++;
		}
	}
	put_str(&s, t, k);
	free(t);
}

void mpj_to_json(const msgpack_object *o, int flags, char **buf, size_t *len, size_t *cap)
{
	sbuf s = {buf, len, cap};
	to_json(&s, o, flags);
}

/* ---------------- JSON -> msgpack ---------------- */

static int b64val(int c)
{
	const char *p = c ? strchr(B64, c) : NULL;
	return p ? (int)(p - B64) : -1;
}

/* Decode base64 into a new buffer; -1 if malformed. */
static int unb64(const char *in, size_t n, unsigned char **out, size_t *outn)
{
	if (n % 4)
		return -1;
	unsigned char *o = xmalloc(n / 4 * 3 + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		for (int j = 0; j < 4; j++) {
			v[j] = in[i + j] == '=' && i + 4 == n && j >= 2 ? 0 : b64val(in[i + j]);
			if (v[j] < 0) {
				free(o);
				return -1;
			}
		}
		uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		o[k++] = x >> 16;
		if (!(i + 4 == n && in[i + 2] == '='))
			o[k++] = x >> 8 & 0xff;
		if (!(i + 4 == n && in[i + 3] == '='))
			o[k++] = x & 0xff;
	}
	*out = o;
	*outn = k;
	return 0;
}

static int nonfinite(const json_t *v, double *d)
{
	const char *s = json_string_value(v);
	if (!s)
		return -1;
	if (!strcmp(s, "nan"))
		*d = NAN;
	else if (!strcmp(s, "inf"))
		*d = INFINITY;
	else if (!strcmp(s, "-inf"))
		*d = -INFINITY;
	else
		return -1;
	return 0;
}

static int pack(const json_t *j, msgpack_packer *pk, char *err, size_t errlen, int depth);

static int pack_typed(const char *key, const json_t *v, msgpack_packer *pk, char *err, size_t errlen, int depth)
{
	double d;
	unsigned char *bytes;
	size_t n;
	if (!strcmp(key, "$f32")) {
		if (json_is_number(v))
			d = json_number_value(v);
		else if (nonfinite(v, &d))
			goto bad;
		msgpack_pack_float(pk, (float)d);
	} else if (!strcmp(key, "$f64")) {
		if (nonfinite(v, &d))
			goto bad;
		msgpack_pack_double(pk, d);
	} else if (!strcmp(key, "$u64")) {
		const char *s = json_string_value(v);
		char *end;
		if (!s || !*s)
			goto bad;
		unsigned long long u = strtoull(s, &end, 10);
		if (*end)
			goto bad;
		msgpack_pack_uint64(pk, u);
	} else if (!strcmp(key, "$bin") || !strcmp(key, "$strb")) {
		const char *s = json_string_value(v);
		if (!s || unb64(s, json_string_length(v), &bytes, &n))
			goto bad;
		if (key[1] == 'b') {
			msgpack_pack_bin(pk, n);
			msgpack_pack_bin_body(pk, bytes, n);
		} else {
			msgpack_pack_str(pk, n);
			msgpack_pack_str_body(pk, bytes, n);
		}
		free(bytes);
	} else if (!strcmp(key, "$f32le")) {
		if (!json_is_array(v))
			goto bad;
		size_t m = json_array_size(v);
		unsigned char *b = xmalloc(4 * m + 1);
		for (size_t i = 0; i < m; i++) {
			json_t *e = json_array_get(v, i);
			if (json_is_number(e))
				d = json_number_value(e);
			else if (nonfinite(e, &d)) {
				free(b);
				goto bad;
			}
			float f = (float)d;
			uint32_t u;
			memcpy(&u, &f, 4);
			b[4 * i] = u & 0xff, b[4 * i + 1] = u >> 8 & 0xff, b[4 * i + 2] = u >> 16 & 0xff,
			      b[4 * i + 3] = u >> 24;
		}
		msgpack_pack_bin(pk, 4 * m);
		msgpack_pack_bin_body(pk, b, 4 * m);
		free(b);
	} else if (!strcmp(key, "$ext")) {
		json_t *t = json_array_get(v, 0), *p = json_array_get(v, 1);
		const char *s = json_string_value(p);
		if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(t) ||
		    json_integer_value(t) < -128 || json_integer_value(t) > 127 || !s ||
		    unb64(s, json_string_length(p), &bytes, &n))
			goto bad;
		msgpack_pack_ext(pk, n, (int8_t)json_integer_value(t));
		msgpack_pack_ext_body(pk, bytes, n);
		free(bytes);
	} else if (!strcmp(key, "$map")) {
		if (!json_is_array(v))
			goto bad;
		size_t m = json_array_size(v);
		msgpack_pack_map(pk, m);
		for (size_t i = 0; i < m; i++) {
			json_t *kv = json_array_get(v, i);
			if (!json_is_array(kv) || json_array_size(kv) != 2)
				goto bad;
			if (pack(json_array_get(kv, 0), pk, err, errlen, depth + 1) ||
			    pack(json_array_get(kv, 1), pk, err, errlen, depth + 1))
				return -1;
		}
	} else {
		return 1; /* not a typed value: an ordinary one-key object */
	}
	return 0;
bad:
	snprintf(err, errlen, "malformed typed value {\"%s\": ...}", key);
	return -1;
}

static int pack(const json_t *j, msgpack_packer *pk, char *err, size_t errlen, int depth)
{
	if (depth > 64) {
		snprintf(err, errlen, "nesting deeper than 64 levels");
		return -1;
	}
	switch (json_typeof(j)) {
	case JSON_NULL: msgpack_pack_nil(pk); break;
	case JSON_TRUE: msgpack_pack_true(pk); break;
	case JSON_FALSE: msgpack_pack_false(pk); break;
	case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
	case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
	case JSON_STRING:
		msgpack_pack_str(pk, json_string_length(j));
		msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
		break;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(j));
		for (size_t i = 0; i < json_array_size(j); i++)
			if (pack(json_array_get(j, i), pk, err, errlen, depth + 1))
				return -1;
		break;
	case JSON_OBJECT: {
		const char *key;
		json_t *v;
		if (json_object_size(j) == 1) {
			void *it = json_object_iter((json_t *)j);
			key = json_object_iter_key(it);
			if (key[0] == '$') {
				int r = pack_typed(key, json_object_iter_value(it), pk, err, errlen, depth);
				if (r <= 0)
					return r;
			}
		}
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, key, v)
		{
			size_t n = strlen(key);
			msgpack_pack_str(pk, n);
			msgpack_pack_str_body(pk, key, n);
			if (pack(v, pk, err, errlen, depth + 1))
				return -1;
		}
		break;
	}
	}
	return 0;
}

int mpj_from_json(const char *text, size_t n, msgpack_packer *pk, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(text, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!j) {
		snprintf(err, errlen, "column %d: invalid JSON: %s", je.column, je.text);
		return -1;
	}
	int r = pack(j, pk, err, errlen, 0);
	json_decref(j);
	return r;
}
