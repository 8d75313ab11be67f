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
 * pc_spool_flush blocks (never call it on an event loop); every append must
 * have returned before pc_spool_close. A reader is one thread's object.
 *
 * Durability: a record is durable once pc_spool_flush returns after it (or
 * records_written counts it). Readers may see records a little before that.
 * A disk that keeps failing makes the writer retry with backoff (records
 * wait in the queue; pc_spool_flush keeps waiting, pc_spool_flush_timeout
 * does not); pc_spool_close gives up after a few more attempts and counts
 * what it could not write as dropped.
 *
 * Return conventions: functions returning bool report success; pointers are
 * NULL on failure with a message in err.
 *
 * On-disk format: see src/spool/segment.h (segment header, then frames of
 * [u32 len][u32 CRC-32C][u64 seq][payload], little-endian).
 */
#ifndef PC_SPOOL_SPOOL_H
#define PC_SPOOL_SPOOL_H

#include "core/common.h"

typedef struct pc_spool pc_spool_t;

/** Largest payload a record may have; larger appends are refused and counted. */
#define PC_SPOOL_MAX_RECORD (256u * 1024u)
/** Smallest accepted max_bytes: room for several segments of maximal records. */
#define PC_SPOOL_MIN_MAX_BYTES (1024u * 1024u)

typedef struct pc_spool_stats {
    uint64_t records_appended; /* accepted by pc_spool_append */
    uint64_t records_written;  /* durable (fsynced) */
    uint64_t records_pending;  /* queued, not yet durable */
    uint64_t records_dropped;  /* lost to max_bytes or a full queue */
    uint64_t torn_records_cut; /* found corrupt at open and cut */
    uint64_t bytes_on_disk;
    uint64_t segments;
    uint64_t batches; /* write+fdatasync rounds; records_written / batches = group size */
} pc_spool_stats_t;

/**
 * Open (creating if needed) the spool in dir, scan existing segments, cut a
 * torn tail, and start the writer thread. max_bytes bounds the directory
 * (at least PC_SPOOL_MIN_MAX_BYTES): before it would be exceeded the oldest
 * segments are deleted, counted and logged. Segments wholly before the
 * shipper's cursor (pc_spool_cursor_store) are not counted as lost.
 * The directory is locked (flock on dir/LOCK): one writer per directory.
 * Every open starts a new segment; earlier ones are never appended to again.
 * Only the newest segment is scanned before this returns; older (sealed)
 * ones are verified by a background thread, which adds what it finds to
 * torn_records_cut. A directory without segments starts the sequence at the
 * wall clock in microseconds, so ids stay unique even after a wipe.
 */
pc_spool_t *pc_spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen) PC_WUR;

/**
 * Queue one record (a JSON object without trailing newline); copies it and
 * gives it the sequence number pc_spool_next_seq would return.
 * Never blocks on I/O: a memcpy under a short mutex (the writer thread
 * computes the CRC). Returns false if the record is empty, over PC_SPOOL_MAX_RECORD,
 * the spool is closing, or the in-memory queue is full; the record is then
 * counted as dropped.
 */
bool pc_spool_append(pc_spool_t *sp, const char *rec, size_t len);

/** As pc_spool_append, with a sequence number taken from pc_spool_next_seq. */
bool pc_spool_append_seq(pc_spool_t *sp, uint64_t seq, const char *rec, size_t len);

/** Next unique sequence number for record ids; continues after a restart. */
uint64_t pc_spool_next_seq(pc_spool_t *sp);

/** Block until everything appended before the call is durable. */
void pc_spool_flush(pc_spool_t *sp);

/**
 * As pc_spool_flush, giving up after timeout_ms (e.g. when the disk keeps
 * failing). Returns true if everything appended before the call is settled.
 */
bool pc_spool_flush_timeout(pc_spool_t *sp, uint64_t timeout_ms);

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
 * Delivery is at-least-once: a reader following a live spool may see a
 * record that the writer has to write again elsewhere (a full disk while the
 * batch was being written); the record's id tells the copies apart.
 */
pc_spool_read_t pc_spool_reader_next(pc_spool_reader_t *r, const char **rec, size_t *len,
                                     pc_spool_pos_t *pos_after);
void pc_spool_reader_close(pc_spool_reader_t *r);

/** Corrupt records or segments the reader stepped over (never returned). */
uint64_t pc_spool_reader_skipped(const pc_spool_reader_t *r);

/* ---------- shipping cursor ---------- */

/*
 * The shipper (another thread or process) records in dir/shipped.cursor the
 * position up to which records are acknowledged. The writer then deletes
 * fully shipped segments before unshipped ones and counts only the latter as
 * lost. Resume shipping with pc_spool_reader_open(dir, &cursor).
 */

/** Atomically and durably replace the cursor (write, fsync, rename, fsync dir). */
bool pc_spool_cursor_store(const char *dir, const pc_spool_pos_t *pos, char *err,
                           size_t errlen) PC_WUR;
/** Read the cursor; false if there is none (ship from the oldest record). */
bool pc_spool_cursor_load(const char *dir, pc_spool_pos_t *out);

/* ---------- fault injection (tests only) ---------- */

/*
 * Make the writer's nth write (1 = the next one) fail with EIO; when partial,
 * half of its bytes reach the file first. nth_fsync likewise for fdatasync.
 * 0 disables; UINT_MAX fails every one. Process-wide; for tests and fuzzing only.
 */
void pc__spool_inject_failure(unsigned nth_write, bool partial, unsigned nth_fsync);
/** The next count batch writes fail with ENOSPC (disk full). */
void pc__spool_inject_enospc(unsigned count);
/** While stalled, writer threads take no new batch (to fill the queue in tests). */
void pc__spool_inject_stall(bool stall);
/**
 * In-memory queue size of spools opened from now on, rounded up to a power of
 * two of at least 64 KiB; 0 restores the default (16 MiB).
 */
void pc__spool_set_queue_bytes(uint32_t bytes);
/** Wait until the background check of sealed segments (after open) is done. */
void pc__spool_wait_verified(pc_spool_t *sp);
/** Skip every fsync (fuzzing only: durability is not under test there). */
void pc__spool_set_nosync(bool nosync);

#endif
