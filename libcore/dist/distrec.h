/* distrec.h — records computed by every rank, written once, in input order,
 * by rank 0 (lbdpo-refcache and lbdpo-logprob under mpirun).
 *
 * Every rank reads the whole input stream and handles the records whose
 * 0-based index k has k mod N == rank (the rule of lbdpo-refcache --shard
 * I/N). The input goes by in rounds of DISTREC_ROUND records per rank; at the
 * end of a round every rank sends the records it produced to rank 0, which
 * writes them in input order: record k came from rank k mod N. With one rank
 * (or the plain build) the records go straight to the output writer.
 */
#ifndef LBDPO_DISTREC_H
#define LBDPO_DISTREC_H

#include <stdint.h>

#include "formats/records.h"

#define DISTREC_ROUND 256

typedef struct distrec distrec;

/* out: rank 0's output writer (header already written); NULL on other ranks. */
distrec *distrec_new(rs_writer *out);
/* Record k of the input (0-based) is this rank's to compute and emit. */
int distrec_mine(const distrec *d, uint64_t k);
/* The writer to emit this rank's records to, one rs_rec_end per record;
 * call distrec_mark after each. */
rs_writer *distrec_writer(distrec *d);
void distrec_mark(distrec *d);
/* Input record k has been read: 1 if a round ends after it. Then the caller
 * emits every record of its own read so far and calls distrec_round. */
int distrec_after(distrec *d, uint64_t k);
/* Collective. Rank 0 writes the round's records in input order. last: the
 * input has ended (every rank must agree: rank 0 checks that every rank read
 * the same number of records, i.e. the same input). */
void distrec_round(distrec *d, int last);
/* Frees; rank 0's output writer is the caller's to finish. */
void distrec_free(distrec *d);

#endif
