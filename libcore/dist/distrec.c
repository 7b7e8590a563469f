/* distrec.c — ordered output of records computed across ranks (distrec.h).
 *
 * What a rank sends rank 0 at the end of a round, all uint64 in host order
 * (every rank runs the same build):
 *   [records read so far][1 if the input ended][n records][n lengths][bytes]
 * padded with zeros to a multiple of 8 bytes.
 */
#include "libcore/dist/distrec.h"

#include <stdlib.h>
#include <string.h>

#include "libcore/dist/dist.h"
#include "base/util.h"

struct distrec {
	rs_writer *out; /* rank 0: the output; size 1: also where records go */
	rs_writer *mem; /* size > 1: this rank's records of the current round */
	uint64_t *ends; /* end offset in mem of each record of the round */
	size_t n, cap;
	uint64_t nread, round_start;
	int rank, size;
};

distrec *distrec_new(rs_writer *out)
{
	distrec *d = xcalloc(1, sizeof *d);
	d->rank = dist_rank();
	d->size = dist_size();
	d->out = out;
	if (d->size > 1)
		d->mem = rs_create_mem();
	return d;
}

int distrec_mine(const distrec *d, uint64_t k) { return (int)(k % (uint64_t)d->size) == d->rank; }

rs_writer *distrec_writer(distrec *d) { return d->size > 1 ? d->mem : d->out; }

void distrec_mark(distrec *d)
{
	if (d->size == 1)
		return;
	size_t len;
	rs_mem(d->mem, &len);
	xgrow((void **)&d->ends, &d->cap, d->n + 1, sizeof *d->ends);
	d->ends[d->n++] = len;
}

int distrec_after(distrec *d, uint64_t k)
{
	d->nread = k + 1;
	return d->size > 1 && d->nread % ((uint64_t)DISTREC_ROUND * d->size) == 0;
}

/* Records of round [start, end) that rank r handles. */
static uint64_t count_of(uint64_t start, uint64_t end, int r, int size)
{
	uint64_t n = 0;
	for (uint64_t k = start; k < end; k++)
		n += (int)(k % (uint64_t)size) == r;
	return n;
}

void distrec_round(distrec *d, int last)
{
	if (d->size == 1)
		return;
	size_t blen;
	const char *bytes = rs_mem(d->mem, &blen);
	/* Padded to 8 bytes: the next rank's header in rank 0's buffer stays aligned. */
	size_t hn = 3 + d->n, n = hn * 8 + (blen + 7) / 8 * 8;
	uint64_t *msg = xcalloc(1, n);
	msg[0] = d->nread;
	msg[1] = (uint64_t) !!last;
	msg[2] = d->n;
	for (size_t i = 0; i < d->n; i++)
		msg[3 + i] = d->ends[i] - (i ? d->ends[i - 1] : 0);
	if (blen)
		memcpy(msg + hn, bytes, blen);
	size_t *lens = xmalloc(d->size * sizeof *lens);
	char *all = dist_gather_bytes(msg, n, lens);
	free(msg);
	rs_mem_clear(d->mem);
	d->n = 0;
	if (d->rank == 0) {
		/* Per rank: where its next record length and bytes are. */
		const uint64_t **len = xmalloc(d->size * sizeof *len);
		const char **p = xmalloc(d->size * sizeof *p);
		const char *at = all;
		for (int r = 0; r < d->size; r++) {
			const uint64_t *h = (const uint64_t *)at;
			uint64_t want = count_of(d->round_start, d->nread, r, d->size);
			if (lens[r] < 24 || h[0] != d->nread || h[1] != (uint64_t) !!last || h[2] != want ||
			    lens[r] < (3 + h[2]) * 8)
				dist_abort(EXIT_DATA,
					   "rank %d read %llu records%s, rank 0 read %llu%s: every rank "
					   "must read the same input",
					   r, (unsigned long long)(lens[r] >= 24 ? h[0] : 0),
					   lens[r] >= 24 && h[1] ? " (end of input)" : "", (unsigned long long)d->nread,
					   last ? " (end of input)" : "");
			uint64_t sum = 0;
			for (uint64_t i = 0; i < h[2]; i++)
				sum += h[3 + i];
			if ((sum + 7) / 8 * 8 != lens[r] - (3 + h[2]) * 8)
				dist_abort(EXIT_DATA,
					   "internal error: rank %d sent %llu bytes of records, "
					   "its lengths add up to %llu",
					   r, (unsigned long long)(lens[r] - (3 + h[2]) * 8), (unsigned long long)sum);
			len[r] = h + 3;
			p[r] = at + (3 + h[2]) * 8;
			at += lens[r];
		}
		for (uint64_t k = d->round_start; k < d->nread; k++) {
			int r = (int)(k % (uint64_t)d->size);
			rs_write_raw(d->out, p[r], *len[r]);
			p[r] += *len[r]++;
		}
		free(len);
		free(p);
	}
	free(all);
	free(lens);
	d->round_start = d->nread;
}

void distrec_free(distrec *d)
{
	if (!d)
		return;
	if (d->mem)
		rs_finish(d->mem);
	free(d->ends);
	free(d);
}
