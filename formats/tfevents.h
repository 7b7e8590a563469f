/* tfevents.h — TensorBoard event files (lbdpo-step --tensorboard).
 *
 * A file is a sequence of TFRecords: uint64 length (little-endian), uint32
 * masked CRC32C of those 8 bytes, the data, uint32 masked CRC32C of the
 * data (mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8). Each record's data
 * is a tensorflow.Event protobuf; the fields written, hand-encoded:
 *   1 wall_time double, 2 step int64, 3 file_version string ("brain.Event:2",
 *   the first event), 5 summary Summary { 1 value Value { 1 tag string,
 *   2 simple_value float } }.
 * TensorBoard reads every events.out.tfevents.* file of a directory and
 * merges them by step, so a resumed run writes a file of its own.
 */
#ifndef LBDPO_TFEVENTS_H
#define LBDPO_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of p[n]: crc32c of
 * "123456789" is 0xe3069283. */
uint32_t crc32c(const void *p, size_t n);
/* The TFRecord masking of a CRC. */
uint32_t crc32c_mask(uint32_t crc);

typedef struct tfevents tfevents;
/* Create dir if absent (its parent must exist) and in it a new file
 * events.out.tfevents.<unix time>.<host>.<pid>, holding the file_version
 * event. Dies naming the path on failure. */
tfevents *tfevents_open(const char *dir);
/* The file's path. */
const char *tfevents_path(const tfevents *t);
/* One Event with one scalar. 0, or -1 on a write error (errno set). */
int tfevents_scalar(tfevents *t, double wall_time, long step, const char *tag, double v);
/* Flush to the file: 0, or -1 (errno set). */
int tfevents_flush(tfevents *t);
/* Close: 0, or -1 on a write error (errno set); frees t either way. */
int tfevents_close(tfevents *t);

#endif
