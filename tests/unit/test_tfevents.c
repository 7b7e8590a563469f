/* test_tfevents.c — TensorBoard event files (formats/tfevents.h): CRC32C,
 * a reader here that parses the TFRecord framing (both CRCs checked) and the
 * Event protobuf back, and lbdpo-step --tensorboard's scalars against the
 * lines of its --metrics JSONL. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tfevents.h"

typedef struct {
	long step;
	double wall;
	char tag[128]; /* "" for the file_version event */
	char version[32];
	float v;
} ev_t;

static uint64_t varint(const unsigned char **p, const unsigned char *e)
{
	uint64_t v = 0;
	for (int sh = 0; *p < e; sh += 7) {
		unsigned char c = *(*p)++;
		v |= (uint64_t)(c & 0x7F) << sh;
		if (!(c & 0x80))
			return v;
	}
	cr_assert_fail("varint runs past the message");
	return 0;
}

static uint32_t le32(const unsigned char *b) { return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }

/* Summary.Value { 1 tag, 2 simple_value } */
static void parse_value(const unsigned char *p, const unsigned char *e, ev_t *o)
{
	while (p < e) {
		uint64_t k = varint(&p, e);
		if (k == (1 << 3 | 2)) {
			uint64_t n = varint(&p, e);
			cr_assert(n < sizeof o->tag && p + n <= e);
			memcpy(o->tag, p, n);
			o->tag[n] = 0;
			p += n;
		} else if (k == (2 << 3 | 5)) {
			uint32_t u = le32(p);
			memcpy(&o->v, &u, 4);
			p += 4;
		} else {
			cr_assert_fail("unexpected field %llu in Summary.Value", (unsigned long long)k);
		}
	}
}

/* Event { 1 wall_time, 2 step, 3 file_version, 5 summary { 1 value } } */
static void parse_event(const unsigned char *p, const unsigned char *e, ev_t *o)
{
	memset(o, 0, sizeof *o);
	while (p < e) {
		uint64_t k = varint(&p, e);
		if (k == (1 << 3 | 1)) {
			uint64_t w = le32(p) | (uint64_t)le32(p + 4) << 32;
			memcpy(&o->wall, &w, 8);
			p += 8;
		} else if (k == (2 << 3 | 0)) {
			o->step = (long)varint(&p, e);
		} else if (k == (3 << 3 | 2)) {
			uint64_t n = varint(&p, e);
			cr_assert(n < sizeof o->version);
			memcpy(o->version, p, n);
			p += n;
		} else if (k == (5 << 3 | 2)) {
			uint64_t n = varint(&p, e);
			const unsigned char *se = p + n;
			uint64_t vk = varint(&p, se);
			cr_assert_eq(vk, 1 << 3 | 2, "one Summary.Value");
			uint64_t vn = varint(&p, se);
			parse_value(p, p + vn, o);
			p = se;
		} else {
			cr_assert_fail("unexpected field %llu in Event", (unsigned long long)k);
		}
	}
}

/* All events of the file; -1 when a CRC does not match or a record is cut. */
static int read_events(const char *path, ev_t **out)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f, "open %s", path);
	int n = 0;
	*out = NULL;
	unsigned char h[12];
	size_t got;
	while ((got = fread(h, 1, 12, f)) == 12) {
		uint64_t len = le32(h) | (uint64_t)le32(h + 4) << 32;
		if (crc32c_mask(crc32c(h, 8)) != le32(h + 8) || len > 1 << 20) {
			fclose(f);
			return -1;
		}
		unsigned char *d = malloc(len + 4);
		if (fread(d, 1, len + 4, f) != len + 4 || crc32c_mask(crc32c(d, len)) != le32(d + len)) {
			free(d);
			fclose(f);
			return -1;
		}
		*out = realloc(*out, sizeof **out * (size_t)(n + 1));
		parse_event(d, d + len, &(*out)[n++]);
		free(d);
	}
	fclose(f);
	return got == 0 ? n : -1;
}

Test(tfevents, crc32c_known_values)
{
	cr_assert_eq(crc32c("123456789", 9), 0xe3069283u);
	cr_assert_eq(crc32c("", 0), 0u);
	/* RFC 3720 B.4: 32 bytes of zeros */
	unsigned char z[32] = {0};
	cr_assert_eq(crc32c(z, 32), 0x8a9136aau);
}

static char *tmpdir(void)
{
	char *d = strdup("/tmp/test_tfevents.XXXXXX");
	cr_assert(mkdtemp(d));
	return d;
}

/* the one events file in dir */
static char *events_file(const char *dir, int want)
{
	DIR *d = opendir(dir);
	cr_assert(d);
	char *p = NULL;
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (!strncmp(e->d_name, "events.out.tfevents.", 20)) {
			n++;
			free(p);
			cr_assert(asprintf(&p, "%s/%s", dir, e->d_name) > 0);
		}
	closedir(d);
	cr_assert_eq(n, want, "%d events files in %s", n, dir);
	return p;
}

Test(tfevents, roundtrip_and_crc_checked)
{
	char *dir = tmpdir();
	tfevents *t = tfevents_open(dir);
	cr_assert_eq(tfevents_scalar(t, 1.5, 1, "train/loss", 0.693), 0);
	cr_assert_eq(tfevents_scalar(t, 2.5, 2, "eval/rewards/accuracies", 0.75), 0);
	cr_assert_eq(tfevents_scalar(t, 3.5, 1000000000000L, "x", -1e30), 0);
	cr_assert_eq(tfevents_close(t), 0);
	char *p = events_file(dir, 1);
	ev_t *e;
	cr_assert_eq(read_events(p, &e), 4);
	cr_assert_str_eq(e[0].version, "brain.Event:2");
	cr_assert_str_eq(e[0].tag, "");
	cr_assert_str_eq(e[1].tag, "train/loss");
	cr_assert_eq(e[1].step, 1);
	cr_assert_eq(e[1].wall, 1.5);
	cr_assert_eq(e[1].v, 0.693f);
	cr_assert_str_eq(e[2].tag, "eval/rewards/accuracies");
	cr_assert_eq(e[2].v, 0.75f);
	cr_assert_eq(e[3].step, 1000000000000L);
	cr_assert_eq(e[3].v, -1e30f);
	free(e);
	/* the reader checks the data CRC: one flipped byte of a tag fails it */
	FILE *f = fopen(p, "r+b");
	fseek(f, -10, SEEK_END);
	int c = fgetc(f);
	fseek(f, -10, SEEK_END);
	fputc(c ^ 1, f);
	fclose(f);
	cr_assert_eq(read_events(p, &e), -1);
	free(e);
	char *cmd;
	cr_assert(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
	free(p);
	free(dir);
}

/* lbdpo-step --tensorboard writes the scalars of its --metrics lines: a
 * training line's keys as train/KEY, an eval line's eval/ keys as they are,
 * in the same order and at the same steps. */
Test(tfevents, step_scalars_match_metrics_jsonl)
{
	const char *bin = getenv("LBDPO_BIN"), *root = getenv("LBDPO_ROOT");
	if (!bin || !root)
		cr_skip_test("LBDPO_BIN and LBDPO_ROOT unset (run through tests/run.sh)");
	char *dir = tmpdir(), *cmd;
	cr_assert(
		asprintf(
			&cmd,
			"cd '%s' && export PATH='%s':$PATH && "
			"awk -v seed=1 -v n=24 -f '%s/tests/sh/gen_pairs.awk' | lbdpo-show --from-json -o train.ref && "
			"awk -v seed=2 -v n=8 -f '%s/tests/sh/gen_pairs.awk' | lbdpo-show --from-json -o test.ref && "
			"lbdpo-init -q -o m0 --dim 16 --layers 1 --heads 2 --vocab 32 --max-seq 32 --seed 3 && "
			"lbdpo-step -q -m m0 -o c -i train.ref --steps 6 --threads 1 --batch-size 4 --ppl-from policy "
			"--ignore-provenance --eval-input test.ref --eval-steps 3 --metrics m.jsonl --tensorboard tb "
			"2>/dev/null",
			dir, bin, root, root) > 0);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	free(cmd);
	cr_assert(asprintf(&cmd, "%s/tb", dir) > 0);
	char *p = events_file(cmd, 1);
	free(cmd);
	ev_t *e;
	int n = read_events(p, &e);
	cr_assert_gt(n, 1, "events parsed with their CRCs");
	cr_assert_str_eq(e[0].version, "brain.Event:2");
	cr_assert(asprintf(&cmd, "%s/m.jsonl", dir) > 0);
	FILE *f = fopen(cmd, "r");
	cr_assert(f);
	char *line = NULL;
	size_t cap = 0;
	int k = 1, lines = 0, evals = 0;
	while (getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, 0, NULL);
		cr_assert(j);
		lines++;
		const int is_eval = json_object_get(j, "eval/loss") != NULL;
		evals += is_eval;
		long step = (long)json_integer_value(json_object_get(j, "step"));
		const char *key;
		json_t *v;
		json_object_foreach(j, key, v)
		{
			if (!json_is_number(v) || !strcmp(key, "step") || (is_eval && strncmp(key, "eval/", 5)))
				continue;
			char tag[128];
			snprintf(tag, sizeof tag, "%s%s", is_eval ? "" : "train/", key);
			cr_assert_lt(k, n, "events end before %s at step %ld", tag, step);
			cr_assert_str_eq(e[k].tag, tag);
			cr_assert_eq(e[k].step, step, "%s", tag);
			double x = json_number_value(v);
			cr_assert_leq(fabs(e[k].v - x), 1e-5 * fmax(1, fabs(x)), "%s at step %ld: %g vs %g", tag, step,
				      (double)e[k].v, x);
			k++;
		}
		json_decref(j);
	}
	fclose(f);
	free(line);
	cr_assert_eq(k, n, "every event is a line's scalar");
	cr_assert_eq(lines, 8, "6 training lines and 2 eval lines");
	cr_assert_eq(evals, 2);
	free(e);
	free(p);
	free(cmd);
	cr_assert(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
	free(dir);
}
