/* mpjson.h — lossless msgpack <-> JSON text, for lbdpo-show.
 *
 * JSON has fewer types than msgpack, so some values are written as
 * single-key objects whose key starts with '$' (man/lbdpo-records.5):
 *   float64        a JSON number that always has '.' or 'e' (1.0, not 1)
 *   float32        {"$f32": 1.5}
 *   non-finite     {"$f64": "nan"|"inf"|"-inf"}, {"$f32": ...} likewise
 *   uint64 > 2^63  {"$u64": "18446744073709551615"}
 *   bin            {"$bin": "<base64>"}, or with MPJ_F32 {"$f32le": [...]}
 *   ext            {"$ext": [type, "<base64>"]}
 *   str, not UTF-8 {"$strb": "<base64>"}
 *   map whose keys are not all strings   {"$map": [[k, v], ...]}
 * Parsing the JSON back gives the same msgpack bytes (msgpack-c packs every
 * value in its shortest form, which is what every lbdpo program writes).
 */
#ifndef LBDPO_MPJSON_H
#define LBDPO_MPJSON_H

#include <msgpack.h>
#include <stdio.h>

#define MPJ_F32 1 /* show bin values as f32 little-endian number lists */

/* Append the JSON text of o to *buf (grown as needed). */
void mpj_to_json(const msgpack_object *o, int flags, char **buf, size_t *len, size_t *cap);

/* Append a JSON string literal of p[0..n) (escaped; invalid UTF-8 bytes
 * become U+FFFD) to *buf. */
void mpj_string(const char *p, size_t n, char **buf, size_t *len, size_t *cap);

/* Parse one JSON text and pack it; returns 0, or -1 with a message in err
 * (e.g. "line 1 column 5: ..."). */
int mpj_from_json(const char *text, size_t n, msgpack_packer *pk, char *err, size_t errlen);

#endif
