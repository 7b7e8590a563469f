/* tfevents.c — TensorBoard event files; format in tfevents.h. */
#define _GNU_SOURCE
#include "formats/tfevents.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

/* No Debian package ships a C CRC32C library (only python3-crc32c): a
 * byte table, built on first use. */
uint32_t crc32c(const void *p, size_t n)
{
	static uint32_t tab[256];
	static int ready;
	if (!ready) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			tab[i] = c;
		}
		ready = 1;
	}
	const unsigned char *b = p;
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++)
		c = tab[(c ^ b[i]) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

uint32_t crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

struct tfevents {
	FILE *f;
	char *path;
};

/* protobuf: a growing byte buffer */
typedef struct {
	unsigned char b[512];
	size_t n;
} pbuf;

static void pb_bytes(pbuf *p, const void *x, size_t n)
{
	if (p->n + n > sizeof p->b)
		BUG("tfevents record too long");
	memcpy(p->b + p->n, x, n);
	p->n += n;
}

static void pb_varint(pbuf *p, uint64_t v)
{
	unsigned char c;
	do {
		c = (unsigned char)(v & 0x7F);
		v >>= 7;
		if (v)
			c |= 0x80;
		pb_bytes(p, &c, 1);
	} while (v);
}

static void pb_le(pbuf *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)(v >> (8 * i));
		pb_bytes(p, &c, 1);
	}
}

/* field with wire type 2 (length-delimited) */
static void pb_lenfield(pbuf *p, int field, const void *x, size_t n)
{
	pb_varint(p, (uint64_t)(field << 3 | 2));
	pb_varint(p, n);
	pb_bytes(p, x, n);
}

/* Event { wall_time, step } and its tail (file_version or summary) */
static void pb_event_head(pbuf *p, double wall_time, long step)
{
	uint64_t w;
	memcpy(&w, &wall_time, 8);
	pb_varint(p, 1 << 3 | 1);
	pb_le(p, w, 8);
	pb_varint(p, 2 << 3 | 0);
	pb_varint(p, (uint64_t)(int64_t)step);
}

static int write_record(tfevents *t, const pbuf *p)
{
	unsigned char h[12];
	uint64_t len = p->n;
	for (int i = 0; i < 8; i++)
		h[i] = (unsigned char)(len >> (8 * i));
	uint32_t c = crc32c_mask(crc32c(h, 8));
	for (int i = 0; i < 4; i++)
		h[8 + i] = (unsigned char)(c >> (8 * i));
	unsigned char d[4];
	c = crc32c_mask(crc32c(p->b, p->n));
	for (int i = 0; i < 4; i++)
		d[i] = (unsigned char)(c >> (8 * i));
	if (fwrite(h, 1, 12, t->f) != 12 || fwrite(p->b, 1, p->n, t->f) != p->n || fwrite(d, 1, 4, t->f) != 4)
		return -1;
	return 0;
}

tfevents *tfevents_open(const char *dir)
{
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		die("%s: cannot create the --tensorboard directory: %s", dir, strerror(errno));
	char host[256] = "localhost";
	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = 0;
	for (char *c = host; *c; c++)
		if (*c == '/')
			*c = '_';
	tfevents *t = xcalloc(1, sizeof *t);
	if (asprintf(&t->path, "%s/events.out.tfevents.%lld.%s.%ld", dir, (long long)time(NULL), host, (long)getpid()) <
	    0)
		die("out of memory");
	/* "x": never onto an earlier file */
	if (!(t->f = fopen(t->path, "wbx")))
		die("%s: cannot create: %s", t->path, strerror(errno));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	pbuf p = {.n = 0};
	pb_event_head(&p, (double)ts.tv_sec + ts.tv_nsec * 1e-9, 0);
	pb_lenfield(&p, 3, "brain.Event:2", 13);
	if (write_record(t, &p) != 0 || tfevents_flush(t) != 0)
		die("%s: write error: %s", t->path, strerror(errno));
	return t;
}

const char *tfevents_path(const tfevents *t) { return t->path; }

int tfevents_scalar(tfevents *t, double wall_time, long step, const char *tag, double v)
{
	pbuf val = {.n = 0}, sum = {.n = 0}, ev = {.n = 0};
	size_t tl = strlen(tag);
	if (tl > 256)
		tl = 256;
	pb_lenfield(&val, 1, tag, tl);
	float f = (float)v;
	uint32_t u;
	memcpy(&u, &f, 4);
	pb_varint(&val, 2 << 3 | 5);
	pb_le(&val, u, 4);
	pb_lenfield(&sum, 1, val.b, val.n);
	pb_event_head(&ev, wall_time, step);
	pb_lenfield(&ev, 5, sum.b, sum.n);
	return write_record(t, &ev);
}

int tfevents_flush(tfevents *t) { return fflush(t->f) != 0 || ferror(t->f) ? -1 : 0; }

int tfevents_close(tfevents *t)
{
	int rc = tfevents_flush(t);
	if (fclose(t->f) != 0)
		rc = -1;
	free(t->path);
	free(t);
	return rc;
}
