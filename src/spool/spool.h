/*
 * The audit-log spool (design §6): an append-only sequence of records kept in
 * segment files under one directory, each record framed with its length and a
 * CRC-32C so that a torn or corrupt tail is detected on open and cut, never
 * returned.
 *
 * Threads: pc_spool_append may be called from any thread and never touches the
 * disk; a dedicated writer thread drains the queue in batches (group commit,
 * one fsync per batch). Readers (the `logs` command, the future shipper) use
 * pc_spool_reader_* on the same directory, in-process or from another process.
 *
 * Return conventions: functions returning bool report success; pointers are
 * NULL on failure with a message in err.
 */
#ifndef PC_SPOOL_SPOOL_H
#define PC_SPOOL_SPOOL_H

#include "core/common.h"

typedef struct pc_spool pc_spool_t;

typedef struct pc_spool_stats {
    uint64_t records_appended; /* accepted by pc_spool_append */
    uint64_t records_written;  /* durable (fsynced) */
    uint64_t records_pending;  /* queued, not yet durable */
    uint64_t records_dropped;  /* lost to max_bytes or a full queue */
    uint64_t torn_records_cut; /* found corrupt at open and cut */
    uint64_t bytes_on_disk;
    uint64_t segments;
} pc_spool_stats_t;

/**
 * Open (creating if needed) the spool in dir, scan existing segments, cut a
 * torn tail, and start the writer thread. max_bytes bounds the directory:
 * when exceeded the oldest segments are deleted, counted and logged.
 */
pc_spool_t *pc_spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen) PC_WUR;

/**
 * Queue one record (a JSON object without trailing newline); copies it.
 * Never blocks on I/O. Returns false only if the in-memory queue is full, in
 * which case the record is counted as dropped.
 */
bool pc_spool_append(pc_spool_t *sp, const char *rec, size_t len);

/** Next unique sequence number for record ids; continues after a restart. */
uint64_t pc_spool_next_seq(pc_spool_t *sp);

/** Block until everything appended before the call is durable. */
void pc_spool_flush(pc_spool_t *sp);

/** Flush, stop the writer thread, close files, free. Accepts NULL. */
void pc_spool_close(pc_spool_t *sp);

void pc_spool_get_stats(pc_spool_t *sp, pc_spool_stats_t *out);

/* ---------- reading ---------- */

typedef struct pc_spool_reader pc_spool_reader_t;

/** Position of a record: segment number and byte offset within it. */
typedef struct pc_spool_pos {
    uint64_t segment;
    uint64_t offset;
} pc_spool_pos_t;

/** Open a reader positioned at the oldest record (or at *from when non-NULL). */
pc_spool_reader_t *pc_spool_reader_open(const char *dir, const pc_spool_pos_t *from, char *err,
                                        size_t errlen) PC_WUR;

typedef enum { PC_SPOOL_READ_OK, PC_SPOOL_READ_END, PC_SPOOL_READ_ERROR } pc_spool_read_t;

/**
 * Next valid record: *rec points into the reader's buffer, valid until the
 * next call. END means no complete record yet (call again later to follow).
 * *pos_after is where reading resumes after this record (a durable cursor).
 */
pc_spool_read_t pc_spool_reader_next(pc_spool_reader_t *r, const char **rec, size_t *len,
                                     pc_spool_pos_t *pos_after);
void pc_spool_reader_close(pc_spool_reader_t *r);

#endif
