/*
 * Spool on-disk format, shared by the writer (spool.c), the reader (reader.c)
 * and the fuzz target. Internal to src/spool/: not API (hence pc__).
 *
 * A spool directory holds segment files named by a 20-digit zero-padded
 * segment number, "00000000000000000001.seg", numbered upwards without reuse.
 * All integers are little-endian.
 *
 * Segment header (32 bytes):
 *    0  8  magic "PCSPOOL1"
 *    8  8  segment number (equals the file name)
 *   16  8  base_seq: the spool's next sequence number when the segment was
 *          created; every sequence number handed out before is smaller, so
 *          the newest header alone keeps ids unique after older segments
 *          are deleted
 *   24  4  flags (0)
 *   28  4  CRC-32C of bytes 0..27
 *
 * Record frame (16 + len bytes), frames follow each other without padding:
 *    0  4  len: payload bytes, 1..PC_SPOOL_MAX_RECORD
 *    4  4  CRC-32C over bytes 0..3 (len), then 8..16+len (seq and payload)
 *    8  8  seq: the record's sequence number (the <seq> in its id)
 *   16 len payload: one JSON object, no trailing newline
 *
 * A frame is valid only if len is in range, the file holds all of it and the
 * CRC matches. Anything else ends the segment's valid prefix.
 */
#ifndef PC_SPOOL_SEGMENT_H
#define PC_SPOOL_SEGMENT_H

#include "core/common.h"

#define PC__SPOOL_MAGIC "PCSPOOL1"
#define PC__SPOOL_HDR_LEN 32u
#define PC__SPOOL_FRAME_HDR 16u
#define PC__SPOOL_NAME_LEN 24u /* 20 digits + ".seg" */
#define PC__SPOOL_CURSOR_FILE "shipped.cursor"
#define PC__SPOOL_LOCK_FILE "LOCK"

uint32_t pc__crc32c(uint32_t crc, const void *buf, size_t len);

static inline void pc__put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void pc__put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t pc__get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t pc__get_le64(const uint8_t *p)
{
    return (uint64_t)pc__get_le32(p) | (uint64_t)pc__get_le32(p + 4) << 32;
}

void pc__spool_header_encode(uint8_t out[PC__SPOOL_HDR_LEN], uint64_t segno, uint64_t base_seq);
/** False if the header is not a valid spool header for segment segno. */
bool pc__spool_header_decode(const uint8_t hdr[PC__SPOOL_HDR_LEN], uint64_t segno,
                             uint64_t *base_seq);

/** Fill the 16-byte frame header for payload p[0..len). */
void pc__spool_frame_header(uint8_t out[PC__SPOOL_FRAME_HDR], uint64_t seq, const void *p,
                            size_t len);

typedef enum { PC__FRAME_OK, PC__FRAME_NEED_MORE, PC__FRAME_CORRUPT } pc__frame_result_t;

typedef struct pc__frame {
    const uint8_t *payload;
    uint32_t len;
    uint64_t seq;
    size_t frame_len; /* OK: bytes consumed; NEED_MORE: bytes needed in all */
} pc__frame_t;

/** Decode the frame at buf[0..avail). Pure: no I/O, no allocation. */
pc__frame_result_t pc__spool_frame_decode(const uint8_t *buf, size_t avail, pc__frame_t *out);

/** "%020llu.seg" into out (at least PC__SPOOL_NAME_LEN + 1 bytes). */
void pc__spool_seg_name(char *out, size_t cap, uint64_t segno);
/** Parse a directory entry name; false if it is not a segment file. */
bool pc__spool_parse_name(const char *name, uint64_t *segno);

/**
 * Segment numbers found in the directory open as dirfd, ascending, in a
 * malloc'd array (NULL when none). Returns false on a readdir error.
 */
bool pc__spool_list(int dirfd, uint64_t **out, size_t *n);

/** Read the shipper's cursor file via dirfd; false if absent or invalid. */
bool pc__spool_cursor_read(int dirfd, uint64_t *segment, uint64_t *offset);

#endif
