/*
 * Spool writer: a bounded in-memory byte ring that appenders fill with
 * ready-made frames, drained by one writer thread that writes whole batches
 * (one pwritev, one fdatasync: group commit) into the current segment.
 *
 * The ring holds a batch until it is durable, so any failed write or fsync is
 * repaired by truncating the segment back to its last durable size and
 * writing the same bytes again; a segment never holds a half-written frame
 * that later frames follow.
 */
#include "spool/spool.h"
#include "spool/segment.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RING_BYTES (16u << 20) /* ~16k records of 1 KB: seconds of a stalled disk */
#define SEG_LIMIT_MAX (64ull << 20)
#define SEG_LIMIT_MIN (64ull << 10)
#define SCAN_BUF (PC_SPOOL_MAX_RECORD + PC__SPOOL_FRAME_HDR + (1u << 20))
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000
#define CLOSE_RETRIES 5 /* failing attempts allowed once closing */
#define DROP_LOG_INTERVAL_NS 10000000000ull
#define VERIFY_BYTES_PER_SEC (256ull << 20) /* leave the disk to the writer */
/* Group commit: consecutive syncs start at least this far apart, so under
 * load one fdatasync covers every record of the interval (and an appender
 * never has to wake the writer in between); an idle spool syncs a new record
 * at once. A flusher, closing, or a quarter-full queue cuts the wait short. */
#define GROUP_COMMIT_NS 4000000ull

struct seginfo {
    uint64_t segno;
    uint64_t bytes;   /* valid bytes, header included */
    uint64_t records; /* valid records; known once verified */
    bool verified;    /* scanned (sealed segments are scanned in the background) */
};

struct pc_spool {
    char *dir;
    int dirfd;
    int lockfd;
    uint64_t max_bytes;
    uint64_t seg_limit;

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the writer waits for frames or stop */
    pthread_cond_t done_cv; /* flushers wait for settled records */
    uint8_t *ring;
    uint64_t ring_mask;
    uint64_t head, tail;        /* monotonic byte positions; [tail, head) queued */
    uint64_t appended, settled; /* records queued / written-or-abandoned */
    bool stopping;
    bool writer_idle;
    bool writer_grouping; /* waiting out GROUP_COMMIT_NS with records queued */
    unsigned flushers;    /* threads in pc_spool_flush*: sync without waiting */
    pc_spool_stats_t st;  /* under mu */

    _Atomic uint64_t next_seq;
    _Atomic uint64_t drops_unlogged;
    _Atomic uint64_t drop_logged_ns;

    /* The writer thread (and open before it starts) owns these; the array's
     * shape changes under mu, and the verifier touches sealed entries only,
     * under mu. */
    int seg_fd;
    struct seginfo *segs; /* ascending; the last one is being written */
    size_t nsegs, segcap;
    pthread_t writer;
    pthread_t verifier;
    bool verifier_done; /* under mu */
};

/* ---------- fault injection ---------- */

static _Atomic unsigned inject_write_nth, inject_fsync_nth, inject_enospc_count;
static _Atomic bool inject_partial, inject_stall, no_sync;
static _Atomic uint32_t queue_bytes = RING_BYTES;

void pc__spool_set_queue_bytes(uint32_t bytes)
{
    uint32_t pow2 = 1u << 16;
    while (pow2 < bytes && pow2 < (1u << 30))
        pow2 <<= 1;
    atomic_store(&queue_bytes, bytes ? pow2 : RING_BYTES);
}

void pc__spool_inject_stall(bool stall)
{
    atomic_store(&inject_stall, stall);
}

void pc__spool_inject_failure(unsigned nth_write, bool partial, unsigned nth_fsync)
{
    atomic_store(&inject_partial, partial);
    atomic_store(&inject_write_nth, nth_write);
    atomic_store(&inject_fsync_nth, nth_fsync);
}

void pc__spool_inject_enospc(unsigned count)
{
    atomic_store(&inject_enospc_count, count);
}

void pc__spool_set_nosync(bool nosync)
{
    atomic_store(&no_sync, nosync);
}

static bool inject_now(_Atomic unsigned *counter)
{
    unsigned n = atomic_load(counter);
    if (n == UINT_MAX) return true; /* fail every time */
    while (n) {
        if (atomic_compare_exchange_weak(counter, &n, n - 1)) return n == 1;
    }
    return false;
}

/* ---------- small I/O helpers (0 or -errno) ---------- */

static int sync_fd(int fd)
{
    if (inject_now(&inject_fsync_nth)) return -EIO;
    if (atomic_load(&no_sync)) return 0;
    return fdatasync(fd) == 0 ? 0 : -errno;
}

/* Directory entries (create, unlink, rename) become durable with the directory. */
static int sync_dir(int dirfd)
{
    if (atomic_load(&no_sync)) return 0;
    return fsync(dirfd) == 0 ? 0 : -errno;
}

static bool inject_enospc_now(void)
{
    unsigned full = atomic_load(&inject_enospc_count);
    while (full && !atomic_compare_exchange_weak(&inject_enospc_count, &full, full - 1)) {
    }
    return full != 0;
}

static int write_all(int fd, struct iovec *iov, int cnt, uint64_t off)
{
    if (inject_now(&inject_write_nth)) {
        if (atomic_load(&inject_partial) && cnt > 0 && iov[0].iov_len > 1) {
            ssize_t w = pwrite(fd, iov[0].iov_base, iov[0].iov_len / 2, (off_t)off);
            (void)w;
        }
        return -EIO;
    }
    while (cnt > 0) {
        ssize_t w = pwritev(fd, iov, cnt, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (w == 0) return -EIO;
        off += (uint64_t)w;
        size_t done = (size_t)w;
        while (cnt > 0 && done >= iov[0].iov_len) {
            done -= iov[0].iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov[0].iov_base = (uint8_t *)iov[0].iov_base + done;
            iov[0].iov_len -= done;
        }
    }
    return 0;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -errno;
        buf[i] = c;
    }
    return 0;
}

/* ---------- ring ---------- */

static void ring_put(pc_spool_t *sp, uint64_t pos, const void *src, size_t n)
{
    size_t idx = (size_t)(pos & sp->ring_mask);
    size_t first = sp->ring_mask + 1 - idx;
    if (first > n) first = n;
    memcpy(sp->ring + idx, src, first);
    memcpy(sp->ring, (const uint8_t *)src + first, n - first);
}

static uint32_t ring_frame_len(const pc_spool_t *sp, uint64_t pos)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = sp->ring[(pos + (uint64_t)i) & sp->ring_mask];
    return PC__SPOOL_FRAME_HDR + pc__get_le32(b);
}

static int ring_iov(const pc_spool_t *sp, uint64_t from, uint64_t to, struct iovec iov[2])
{
    size_t idx = (size_t)(from & sp->ring_mask);
    size_t n = (size_t)(to - from);
    size_t first = sp->ring_mask + 1 - idx;
    if (first >= n) {
        iov[0] = (struct iovec){sp->ring + idx, n};
        return 1;
    }
    iov[0] = (struct iovec){sp->ring + idx, first};
    iov[1] = (struct iovec){sp->ring, n - first};
    return 2;
}

/* CRC-32C of ring bytes [pos, pos + n), continuing from crc. */
static uint32_t ring_crc(const pc_spool_t *sp, uint64_t pos, size_t n, uint32_t crc)
{
    size_t idx = (size_t)(pos & sp->ring_mask);
    size_t first = sp->ring_mask + 1 - idx;
    if (first >= n) return pc__crc32c(crc, sp->ring + idx, n);
    crc = pc__crc32c(crc, sp->ring + idx, first);
    return pc__crc32c(crc, sp->ring, n - first);
}

/*
 * Fill in the CRC of every frame in [from, to). Done here rather than in
 * pc_spool_append so that the request path only copies; the writer mostly
 * waits for fsync and has the time.
 */
static void ring_seal_frames(pc_spool_t *sp, uint64_t from, uint64_t to)
{
    for (uint64_t p = from; p < to;) {
        uint32_t flen = ring_frame_len(sp, p);
        uint32_t crc = ring_crc(sp, p, 4, 0);
        crc = ring_crc(sp, p + 8, flen - 8, crc);
        uint8_t b[4];
        pc__put_le32(b, crc);
        ring_put(sp, p + 4, b, 4);
        p += flen;
    }
}

static uint64_t ring_count_frames(const pc_spool_t *sp, uint64_t from, uint64_t to)
{
    uint64_t n = 0;
    for (uint64_t p = from; p < to; p += ring_frame_len(sp, p))
        n++;
    return n;
}

/* ---------- scanning (open, and counting lost records) ---------- */

struct scan {
    uint64_t valid_end; /* end of the valid prefix */
    uint64_t records;
    uint64_t max_seq;
    bool damaged; /* the valid prefix stops before the end of the file */
};

static int scan_frames(int fd, uint64_t off, uint64_t size, struct scan *out)
{
    *out = (struct scan){.valid_end = off};
    size_t bufsize = size - off < SCAN_BUF ? (size_t)(size - off) + 1 : SCAN_BUF;
    uint8_t *buf = malloc(bufsize);
    if (!buf) return -ENOMEM;
    int rc = 0;
    while (off < size) {
        size_t want = size - off < bufsize ? (size_t)(size - off) : bufsize;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0) break; /* shrank under us */
        size_t p = 0;
        pc__frame_t f;
        pc__frame_result_t r;
        while ((r = pc__spool_frame_decode(buf + p, (size_t)n - p, &f)) == PC__FRAME_OK) {
            out->records++;
            if (f.seq > out->max_seq) out->max_seq = f.seq;
            p += f.frame_len;
        }
        off += p;
        out->valid_end = off;
        /* A frame needing more than is left in the file is torn; one needing
         * more than the buffer held is read again from its start. */
        if (r == PC__FRAME_CORRUPT || off + f.frame_len > size) break;
        if (p == 0) break; /* cannot happen: the buffer fits a maximal frame */
    }
    out->damaged = rc == 0 && out->valid_end < size;
    free(buf);
    return rc;
}

/* ---------- segments ---------- */

static int create_segment(pc_spool_t *sp, uint64_t segno, uint64_t base_seq)
{
    char name[PC__SPOOL_NAME_LEN + 1];
    pc__spool_seg_name(name, sizeof name, segno);
    /* O_TRUNC: a file with this number can only be our own failed attempt. */
    int fd = openat(sp->dirfd, name, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    uint8_t hdr[PC__SPOOL_HDR_LEN];
    pc__spool_header_encode(hdr, segno, base_seq);
    struct iovec iov = {hdr, sizeof hdr};
    int e = write_all(fd, &iov, 1, 0);
    if (!e) e = sync_fd(fd);
    if (!e) e = sync_dir(sp->dirfd);
    if (e) {
        close(fd);
        unlinkat(sp->dirfd, name, 0);
        return e;
    }
    sp->seg_fd = fd;
    return 0;
}

static void push_seg(pc_spool_t *sp, uint64_t segno, uint64_t bytes, uint64_t records,
                     bool verified)
{
    pthread_mutex_lock(&sp->mu);
    if (sp->nsegs == sp->segcap) {
        sp->segcap = sp->segcap ? sp->segcap * 2 : 16;
        sp->segs = pc_xrealloc(sp->segs, sp->segcap * sizeof *sp->segs);
    }
    sp->segs[sp->nsegs++] = (struct seginfo){segno, bytes, records, verified};
    pthread_mutex_unlock(&sp->mu);
}

static void remove_oldest_seg(pc_spool_t *sp)
{
    pthread_mutex_lock(&sp->mu);
    memmove(sp->segs, sp->segs + 1, (sp->nsegs - 1) * sizeof *sp->segs);
    sp->nsegs--;
    pthread_mutex_unlock(&sp->mu);
}

static uint64_t disk_bytes(const pc_spool_t *sp)
{
    uint64_t total = 0;
    for (size_t i = 0; i < sp->nsegs; i++)
        total += sp->segs[i].bytes;
    return total;
}

static void publish_disk_stats(pc_spool_t *sp, uint64_t written, uint64_t dropped)
{
    pthread_mutex_lock(&sp->mu);
    sp->st.bytes_on_disk = disk_bytes(sp);
    sp->st.segments = sp->nsegs;
    sp->st.records_written += written;
    sp->st.records_dropped += dropped;
    pthread_mutex_unlock(&sp->mu);
}

/* Valid records of a segment from offset from (0: the first record). */
static uint64_t count_records(pc_spool_t *sp, uint64_t segno, uint64_t bytes, uint64_t from)
{
    char name[PC__SPOOL_NAME_LEN + 1];
    pc__spool_seg_name(name, sizeof name, segno);
    int fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint8_t hdr[PC__SPOOL_HDR_LEN];
    uint64_t base_seq;
    struct scan sc = {0};
    if (pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr &&
        pc__spool_header_decode(hdr, segno, &base_seq))
        (void)scan_frames(fd, from < PC__SPOOL_HDR_LEN ? PC__SPOOL_HDR_LEN : from, bytes, &sc);
    close(fd);
    return sc.records;
}

/* Records of a segment that the shipper has not acknowledged. */
static uint64_t unshipped_records(pc_spool_t *sp, const struct seginfo *s)
{
    uint64_t cseg, coff;
    bool cursor = pc__spool_cursor_read(sp->dirfd, &cseg, &coff);
    if (cursor && s->segno < cseg) return 0;
    if (cursor && s->segno == cseg)
        return coff >= s->bytes ? 0 : count_records(sp, s->segno, s->bytes, coff);
    return s->verified ? s->records : count_records(sp, s->segno, s->bytes, 0);
}

/* Delete the oldest segment (never the one being written); false if it cannot. */
static bool drop_oldest(pc_spool_t *sp, const char *why)
{
    pthread_mutex_lock(&sp->mu);
    bool can = sp->nsegs >= 2;
    struct seginfo s = sp->segs[0];
    pthread_mutex_unlock(&sp->mu);
    if (!can) return false;
    uint64_t lost = unshipped_records(sp, &s);
    char name[PC__SPOOL_NAME_LEN + 1];
    pc__spool_seg_name(name, sizeof name, s.segno);
    if (unlinkat(sp->dirfd, name, 0) != 0 && errno != ENOENT) {
        pc_log_error("spool: cannot delete segment", PC_LSTR("segment", name),
                     PC_LSTR("error", strerror(errno)));
        return false;
    }
    (void)sync_dir(sp->dirfd);
    remove_oldest_seg(sp);
    if (lost)
        pc_log_warn("spool full: dropped oldest segment", PC_LUINT("records", lost),
                    PC_LSTR("segment", name), PC_LUINT("bytes", s.bytes), PC_LSTR("reason", why));
    else
        pc_log_info("spool: removed shipped segment", PC_LSTR("segment", name),
                    PC_LUINT("bytes", s.bytes), PC_LSTR("reason", why));
    publish_disk_stats(sp, 0, lost);
    return true;
}

/* Make room for extra more bytes under max_bytes by deleting oldest segments. */
static void enforce_limit(pc_spool_t *sp, uint64_t extra)
{
    while (disk_bytes(sp) + extra > sp->max_bytes) {
        if (!drop_oldest(sp, "max_bytes")) break;
    }
}

/* Sleep before retry attempt *attempt; false once closing and out of retries. */
static bool backoff(pc_spool_t *sp, unsigned *attempt)
{
    (*attempt)++;
    uint64_t ms = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < *attempt && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS) ms = BACKOFF_MAX_MS;
    pthread_mutex_lock(&sp->mu);
    bool give_up = sp->stopping && *attempt > CLOSE_RETRIES;
    if (!give_up) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&sp->work_cv, &sp->mu, &ts);
    }
    pthread_mutex_unlock(&sp->mu);
    return !give_up;
}

static bool worth_logging(unsigned attempt)
{
    return (attempt & (attempt - 1)) == 0 || attempt % 60 == 0;
}

static bool rotate(pc_spool_t *sp)
{
    uint64_t segno = sp->segs[sp->nsegs - 1].segno + 1;
    enforce_limit(sp, PC__SPOOL_HDR_LEN);
    unsigned attempt = 0;
    for (;;) {
        int old = sp->seg_fd;
        int e = create_segment(sp, segno, atomic_load(&sp->next_seq));
        if (!e) {
            close(old);
            push_seg(sp, segno, PC__SPOOL_HDR_LEN, 0, true);
            publish_disk_stats(sp, 0, 0);
            if (attempt)
                pc_log_info("spool: segment created after retries",
                            PC_LUINT("attempts", attempt + 1));
            return true;
        }
        if (worth_logging(attempt + 1))
            pc_log_error("spool: cannot create segment", PC_LUINT("segment", segno),
                         PC_LSTR("error", strerror(-e)), PC_LUINT("attempt", attempt + 1));
        if (e == -ENOSPC && drop_oldest(sp, "disk full")) continue;
        if (!backoff(sp, &attempt)) return false;
    }
}

typedef enum { WRITE_DONE, WRITE_GAVE_UP, WRITE_ROTATE } write_result_t;

/* Write ring bytes [from, to) at the end of the current segment and fsync. */
static write_result_t write_durably(pc_spool_t *sp, uint64_t from, uint64_t to)
{
    unsigned attempt = 0;
    for (;;) {
        struct seginfo *cur = &sp->segs[sp->nsegs - 1];
        struct iovec iov[2];
        int cnt = ring_iov(sp, from, to, iov);
        int e = inject_enospc_now() ? -ENOSPC : write_all(sp->seg_fd, iov, cnt, cur->bytes);
        const char *what = "write";
        if (!e) {
            what = "fdatasync";
            e = sync_fd(sp->seg_fd);
        }
        if (!e) {
            if (attempt) pc_log_info("spool: write recovered", PC_LUINT("attempts", attempt + 1));
            pthread_mutex_lock(&sp->mu);
            sp->st.batches++;
            pthread_mutex_unlock(&sp->mu);
            return WRITE_DONE;
        }
        /* Whatever reached the file past the durable size is suspect (after a
         * failed fsync the kernel may have dropped the pages): cut it and
         * write the same bytes again from the ring. */
        int te = ftruncate(sp->seg_fd, (off_t)cur->bytes) == 0 ? 0 : errno;
        if (worth_logging(attempt + 1))
            pc_log_error("spool: write failed, retrying", PC_LSTR("op", what),
                         PC_LSTR("error", strerror(-e)), PC_LUINT("segment", cur->segno),
                         PC_LUINT("offset", cur->bytes), PC_LUINT("attempt", attempt + 1),
                         PC_LSTR("truncate_error", te ? strerror(te) : NULL));
        if (e == -ENOSPC) {
            /* Disk full: make room as max_bytes would, oldest first. When the
             * segment being written is all there is, seal it so that the next
             * attempt may drop it: newest records are kept, as under the bound. */
            if (drop_oldest(sp, "disk full")) continue;
            if (cur->records > 0) return WRITE_ROTATE;
        }
        if (!backoff(sp, &attempt)) return WRITE_GAVE_UP;
    }
}

/* Write the queued frames [from, to); counts what became durable or was lost. */
static void write_batch(pc_spool_t *sp, uint64_t from, uint64_t to, uint64_t *written,
                        uint64_t *dropped)
{
    uint64_t pos = from;
    while (pos < to) {
        const struct seginfo *cur = &sp->segs[sp->nsegs - 1];
        uint64_t end = pos, cnt = 0;
        while (end < to) {
            uint64_t flen = ring_frame_len(sp, end);
            bool empty = cur->records == 0 && cnt == 0; /* an oversized frame goes alone */
            if (!empty && cur->bytes + (end - pos) + flen > sp->seg_limit) break;
            end += flen;
            cnt++;
        }
        if (cnt == 0) {
            if (rotate(sp)) continue;
            break;
        }
        enforce_limit(sp, end - pos);
        ring_seal_frames(sp, pos, end);
        write_result_t w = write_durably(sp, pos, end);
        if (w == WRITE_ROTATE) {
            if (rotate(sp)) continue;
            break;
        }
        if (w == WRITE_GAVE_UP) break;
        struct seginfo *last = &sp->segs[sp->nsegs - 1];
        last->bytes += end - pos;
        last->records += cnt;
        *written += cnt;
        pos = end;
    }
    if (pos < to) {
        uint64_t lost = ring_count_frames(sp, pos, to);
        *dropped += lost;
        pc_log_error("spool: records lost, writes kept failing while closing",
                     PC_LUINT("records", lost));
    }
}

static void deadline_after(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ns += (uint64_t)ts->tv_nsec;
    ts->tv_sec += (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Under mu: true while the writer should let more records gather first. */
static bool group_wait(const pc_spool_t *sp, uint64_t last_sync_ns, uint64_t now)
{
    return !sp->stopping && sp->flushers == 0 && now - last_sync_ns < GROUP_COMMIT_NS &&
           sp->head - sp->tail < (sp->ring_mask + 1) / 4;
}

static void *writer_main(void *arg)
{
    pc_spool_t *sp = arg;
    uint64_t last_sync_ns = 0;
    (void)pthread_setname_np(pthread_self(), "pc-spool");
    pthread_mutex_lock(&sp->mu);
    for (;;) {
        while (sp->head == sp->tail && !sp->stopping) {
            sp->writer_idle = true;
            pthread_cond_wait(&sp->work_cv, &sp->mu);
            sp->writer_idle = false;
        }
        if (sp->head == sp->tail) break;
        if (atomic_load(&inject_stall) && !sp->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&sp->work_cv, &sp->mu, &ts);
            continue;
        }
        uint64_t now = pc_now_mono_ns();
        if (group_wait(sp, last_sync_ns, now)) {
            struct timespec ts;
            deadline_after(&ts, last_sync_ns + GROUP_COMMIT_NS - now);
            sp->writer_grouping = true;
            pthread_cond_timedwait(&sp->work_cv, &sp->mu, &ts);
            sp->writer_grouping = false;
            continue;
        }
        last_sync_ns = now;
        uint64_t from = sp->tail, to = sp->head;
        pthread_mutex_unlock(&sp->mu);

        uint64_t written = 0, dropped = 0;
        write_batch(sp, from, to, &written, &dropped);
        publish_disk_stats(sp, written, dropped);

        pthread_mutex_lock(&sp->mu);
        sp->tail = to;
        sp->settled += written + dropped;
        pthread_cond_broadcast(&sp->done_cv);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

/* ---------- open ---------- */

static void errf(char *err, size_t errlen, const char *what, const char *dir, int e)
{
    if (err && errlen) snprintf(err, errlen, "spool %s: %s: %s", dir, what, strerror(e));
}

struct segscan {
    bool hdr_ok;
    uint64_t size; /* after any cut */
    uint64_t base_seq;
    struct scan sc;
};

/* Validate one segment; with cut, a damaged tail is truncated away. */
static int check_segment(pc_spool_t *sp, uint64_t segno, bool cut, struct segscan *out)
{
    char name[PC__SPOOL_NAME_LEN + 1];
    pc__spool_seg_name(name, sizeof name, segno);
    *out = (struct segscan){0};
    int fd = openat(sp->dirfd, name, (cut ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = 0;
    struct stat stt;
    if (fstat(fd, &stt) != 0) {
        rc = -errno;
        goto out;
    }
    out->size = (uint64_t)stt.st_size;
    uint8_t hdr[PC__SPOOL_HDR_LEN];
    out->hdr_ok = out->size >= sizeof hdr && pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr &&
                  pc__spool_header_decode(hdr, segno, &out->base_seq);
    if (!out->hdr_ok) goto out;
    rc = scan_frames(fd, PC__SPOOL_HDR_LEN, out->size, &out->sc);
    if (rc || !out->sc.damaged || !cut) goto out;
    if (ftruncate(fd, (off_t)out->sc.valid_end) != 0 || sync_fd(fd) != 0) {
        rc = -errno;
        goto out;
    }
out:
    close(fd);
    return rc;
}

static void count_torn(pc_spool_t *sp)
{
    pthread_mutex_lock(&sp->mu);
    sp->st.torn_records_cut++;
    pthread_mutex_unlock(&sp->mu);
}

static void log_damage(uint64_t segno, bool newest, const struct segscan *ss)
{
    char name[PC__SPOOL_NAME_LEN + 1];
    pc__spool_seg_name(name, sizeof name, segno);
    if (!ss->hdr_ok)
        pc_log_warn(newest ? "spool: removed segment with torn header"
                           : "spool: corrupt segment header, segment skipped",
                    PC_LSTR("segment", name), PC_LUINT("bytes", ss->size));
    else if (newest)
        pc_log_warn("spool: cut torn tail", PC_LSTR("segment", name),
                    PC_LUINT("offset", ss->sc.valid_end),
                    PC_LUINT("bytes", ss->size - ss->sc.valid_end),
                    PC_LUINT("records_kept", ss->sc.records));
    else
        pc_log_warn("spool: corrupt record in sealed segment, rest of segment skipped",
                    PC_LSTR("segment", name), PC_LUINT("offset", ss->sc.valid_end),
                    PC_LUINT("bytes", ss->size - ss->sc.valid_end),
                    PC_LUINT("records_kept", ss->sc.records));
}

/*
 * Sealed segments are verified here, off the start-up path: a full spool is
 * gigabytes, and nothing in them is needed to start writing. Readers check
 * every CRC themselves, so nothing unverified is ever returned.
 */
/* Sleep ns, in slices, unless the spool starts closing. */
static void verifier_pause(pc_spool_t *sp, uint64_t ns)
{
    while (ns > 0) {
        pthread_mutex_lock(&sp->mu);
        bool stopping = sp->stopping;
        pthread_mutex_unlock(&sp->mu);
        if (stopping) return;
        uint64_t slice = ns < 50000000u ? ns : 50000000u;
        struct timespec ts = {0, (long)slice};
        nanosleep(&ts, NULL);
        ns -= slice;
    }
}

static void *verifier_main(void *arg)
{
    pc_spool_t *sp = arg;
    (void)pthread_setname_np(pthread_self(), "pc-spool-check");
    uint64_t checked = 0, damaged = 0;
    for (;;) {
        pthread_mutex_lock(&sp->mu);
        bool found = false;
        uint64_t segno = 0;
        for (size_t i = 0; !sp->stopping && i + 1 < sp->nsegs && !found; i++) {
            if (!sp->segs[i].verified) {
                segno = sp->segs[i].segno;
                found = true;
            }
        }
        pthread_mutex_unlock(&sp->mu);
        if (!found) break;

        struct segscan ss;
        uint64_t started = pc_now_mono_ns();
        int rc = check_segment(sp, segno, false, &ss);
        bool bad = rc == 0 && (!ss.hdr_ok || ss.sc.damaged);
        /* Throttled: a restart must not starve the writer's fsyncs. */
        uint64_t budget_ns = (uint64_t)((double)ss.size * 1e9 / (double)VERIFY_BYTES_PER_SEC);
        uint64_t took = pc_now_mono_ns() - started;
        if (budget_ns > took) verifier_pause(sp, budget_ns - took);
        pthread_mutex_lock(&sp->mu);
        bool still_there = false;
        for (size_t i = 0; i + 1 < sp->nsegs && !still_there; i++) {
            if (sp->segs[i].segno != segno) continue;
            still_there = true;
            sp->segs[i].verified = true;
            sp->segs[i].records = rc == 0 && ss.hdr_ok ? ss.sc.records : 0;
            if (bad) sp->st.torn_records_cut++;
        }
        pthread_mutex_unlock(&sp->mu);
        if (!still_there) continue; /* dropped for space meanwhile */
        checked++;
        if (bad) {
            damaged++;
            log_damage(segno, false, &ss);
        } else if (rc) {
            pc_log_error("spool: cannot verify segment", PC_LUINT("segment", segno),
                         PC_LSTR("error", strerror(-rc)));
        }
    }
    if (checked)
        pc_log_info("spool: sealed segments verified", PC_LUINT("segments", checked),
                    PC_LUINT("damaged", damaged));
    pthread_mutex_lock(&sp->mu);
    sp->verifier_done = true;
    pthread_cond_broadcast(&sp->done_cv);
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

void pc__spool_wait_verified(pc_spool_t *sp)
{
    pthread_mutex_lock(&sp->mu);
    while (!sp->verifier_done)
        pthread_cond_wait(&sp->done_cv, &sp->mu);
    pthread_mutex_unlock(&sp->mu);
}

/*
 * Recover the newest segment(s) synchronously: cut a torn tail and learn the
 * next sequence number. A newest segment whose header never made it to disk
 * is removed and the one before it becomes the newest.
 */
static int recover(pc_spool_t *sp, const uint64_t *found, size_t nfound, uint64_t *doomed,
                   size_t *ndoomed)
{
    size_t sealed = nfound; /* found[0..sealed) are verified in the background */
    bool have_base = false;
    struct seginfo top = {0};
    bool have_top = false;
    while (sealed > 0) {
        uint64_t segno = found[sealed - 1];
        struct segscan ss;
        int rc = check_segment(sp, segno, true, &ss);
        if (rc) return rc;
        if (!ss.hdr_ok) {
            if (ss.size > 0) {
                count_torn(sp);
                log_damage(segno, true, &ss);
            }
            doomed[(*ndoomed)++] = segno;
            sealed--;
            continue;
        }
        sealed--;
        have_base = true;
        uint64_t next = ss.base_seq;
        if (ss.sc.records && ss.sc.max_seq >= next) next = ss.sc.max_seq + 1;
        atomic_store(&sp->next_seq, next);
        if (ss.sc.damaged) {
            count_torn(sp);
            log_damage(segno, true, &ss);
        }
        /* Empty segments are left over from restarts without traffic. */
        if (ss.sc.records == 0)
            doomed[(*ndoomed)++] = segno;
        else
            top = (struct seginfo){segno, ss.sc.valid_end, ss.sc.records, true}, have_top = true;
        break;
    }
    for (size_t i = 0; i < sealed; i++) {
        char name[PC__SPOOL_NAME_LEN + 1];
        pc__spool_seg_name(name, sizeof name, found[i]);
        struct stat stt;
        if (fstatat(sp->dirfd, name, &stt, 0) != 0) {
            if (errno == ENOENT) continue; /* removed by hand meanwhile */
            return -errno;
        }
        push_seg(sp, found[i], (uint64_t)stt.st_size, 0, false);
    }
    if (have_top) push_seg(sp, top.segno, top.bytes, top.records, true);
    /* Without any header to go by (a new or wiped directory), start the
     * sequence at the wall clock in microseconds: ids stay unique even
     * against records shipped from an earlier life of this directory. */
    if (!have_base) atomic_store(&sp->next_seq, pc_now_wall_ns() / 1000u);
    return 0;
}

pc_spool_t *pc_spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
    if (max_bytes < PC_SPOOL_MIN_MAX_BYTES) {
        if (err && errlen)
            snprintf(err, errlen, "spool %s: max_bytes %" PRIu64 " is below the minimum %u", dir,
                     max_bytes, PC_SPOOL_MIN_MAX_BYTES);
        return NULL;
    }
    pc_spool_t *sp = pc_xcalloc(1, sizeof *sp);
    sp->dir = pc_xstrdup(dir);
    sp->dirfd = sp->lockfd = sp->seg_fd = -1;
    sp->max_bytes = max_bytes;
    sp->seg_limit = max_bytes / 8;
    if (sp->seg_limit > SEG_LIMIT_MAX) sp->seg_limit = SEG_LIMIT_MAX;
    if (sp->seg_limit < SEG_LIMIT_MIN) sp->seg_limit = SEG_LIMIT_MIN;
    atomic_init(&sp->next_seq, 1);
    pthread_mutex_init(&sp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sp->work_cv, &ca);
    pthread_cond_init(&sp->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    uint64_t *found = NULL, *doomed = NULL;
    size_t nfound = 0, ndoomed = 0;
    bool writer_started = false;

    int e = mkdir_p(dir);
    if (e) {
        errf(err, errlen, "cannot create directory", dir, -e);
        goto fail;
    }
    sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        errf(err, errlen, "cannot open directory", dir, errno);
        goto fail;
    }
    sp->lockfd = openat(sp->dirfd, PC__SPOOL_LOCK_FILE, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (sp->lockfd < 0) {
        errf(err, errlen, "cannot create lock file", dir, errno);
        goto fail;
    }
    if (flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
        errf(err, errlen, "directory is in use by another spool writer", dir, errno);
        goto fail;
    }
    if (!pc__spool_list(sp->dirfd, &found, &nfound)) {
        errf(err, errlen, "cannot list directory", dir, errno);
        goto fail;
    }
    doomed = pc_xcalloc(nfound + 1, sizeof *doomed);
    e = recover(sp, found, nfound, doomed, &ndoomed);
    if (e) {
        errf(err, errlen, "cannot recover segments", dir, -e);
        goto fail;
    }
    /* A fresh segment per start: what an earlier process wrote stays sealed.
     * Numbers also stay above the shipper's cursor, so that a directory whose
     * segments were deleted by hand is not taken as already shipped. */
    uint64_t segno = nfound ? found[nfound - 1] + 1 : 1;
    uint64_t cseg, coff;
    if (pc__spool_cursor_read(sp->dirfd, &cseg, &coff) && cseg >= segno) segno = cseg + 1;
    e = create_segment(sp, segno, atomic_load(&sp->next_seq));
    if (e) {
        errf(err, errlen, "cannot create segment", dir, -e);
        goto fail;
    }
    push_seg(sp, segno, PC__SPOOL_HDR_LEN, 0, true);
    for (size_t i = 0; i < ndoomed; i++) {
        char name[PC__SPOOL_NAME_LEN + 1];
        pc__spool_seg_name(name, sizeof name, doomed[i]);
        unlinkat(sp->dirfd, name, 0);
    }
    if (ndoomed) (void)sync_dir(sp->dirfd);
    enforce_limit(sp, 0);
    publish_disk_stats(sp, 0, 0);

    uint32_t ring_bytes = atomic_load(&queue_bytes);
    sp->ring = pc_xmalloc(ring_bytes);
    sp->ring_mask = ring_bytes - 1;
    e = pthread_create(&sp->writer, NULL, writer_main, sp);
    if (e) {
        errf(err, errlen, "cannot start writer thread", dir, e);
        goto fail;
    }
    writer_started = true;
    e = pthread_create(&sp->verifier, NULL, verifier_main, sp);
    if (e) {
        errf(err, errlen, "cannot start verifier thread", dir, e);
        goto fail;
    }
    pc_log_info(
        "spool opened", PC_LSTR("dir", dir), PC_LUINT("segments", sp->nsegs),
        PC_LUINT("bytes", sp->st.bytes_on_disk), PC_LUINT("next_seq", atomic_load(&sp->next_seq)),
        PC_LUINT("torn_records_cut", sp->st.torn_records_cut), PC_LUINT("max_bytes", max_bytes));
    free(found);
    free(doomed);
    return sp;

fail:
    if (writer_started) {
        pthread_mutex_lock(&sp->mu);
        sp->stopping = true;
        pthread_cond_broadcast(&sp->work_cv);
        pthread_mutex_unlock(&sp->mu);
        pthread_join(sp->writer, NULL);
    }
    free(found);
    free(doomed);
    if (sp->seg_fd >= 0) close(sp->seg_fd);
    if (sp->lockfd >= 0) close(sp->lockfd);
    if (sp->dirfd >= 0) close(sp->dirfd);
    pthread_cond_destroy(&sp->work_cv);
    pthread_cond_destroy(&sp->done_cv);
    pthread_mutex_destroy(&sp->mu);
    free(sp->ring);
    free(sp->segs);
    free(sp->dir);
    free(sp);
    return NULL;
}

/* ---------- appending ---------- */

static void note_drop(pc_spool_t *sp, const char *reason)
{
    atomic_fetch_add_explicit(&sp->drops_unlogged, 1, memory_order_relaxed);
    uint64_t now = pc_now_mono_ns();
    uint64_t last = atomic_load_explicit(&sp->drop_logged_ns, memory_order_relaxed);
    if (last && now - last < DROP_LOG_INTERVAL_NS) return;
    if (!atomic_compare_exchange_strong(&sp->drop_logged_ns, &last, now)) return;
    uint64_t n = atomic_exchange(&sp->drops_unlogged, 0);
    pc_log_warn("spool: records dropped", PC_LUINT("records", n), PC_LSTR("reason", reason));
}

bool pc_spool_append_seq(pc_spool_t *sp, uint64_t seq, const char *rec, size_t len)
{
    if (len == 0 || len > PC_SPOOL_MAX_RECORD) {
        pthread_mutex_lock(&sp->mu);
        sp->st.records_dropped++;
        pthread_mutex_unlock(&sp->mu);
        note_drop(sp, len ? "record too large" : "empty record");
        return false;
    }
    uint8_t hdr[PC__SPOOL_FRAME_HDR]; /* the writer fills in the CRC */
    pc__put_le32(hdr, (uint32_t)len);
    pc__put_le32(hdr + 4, 0);
    pc__put_le64(hdr + 8, seq);
    uint64_t flen = PC__SPOOL_FRAME_HDR + len;

    pthread_mutex_lock(&sp->mu);
    if (sp->stopping || sp->ring_mask + 1 - (sp->head - sp->tail) < flen) {
        sp->st.records_dropped++;
        bool closing = sp->stopping;
        pthread_mutex_unlock(&sp->mu);
        note_drop(sp, closing ? "spool closing" : "queue full");
        return false;
    }
    ring_put(sp, sp->head, hdr, sizeof hdr);
    ring_put(sp, sp->head + sizeof hdr, rec, len);
    sp->head += flen;
    sp->appended++;
    sp->st.records_appended++;
    bool wake =
        sp->writer_idle || (sp->writer_grouping && sp->head - sp->tail >= (sp->ring_mask + 1) / 4);
    if (wake) sp->writer_idle = sp->writer_grouping = false;
    pthread_mutex_unlock(&sp->mu);
    if (wake) pthread_cond_signal(&sp->work_cv);
    return true;
}

bool pc_spool_append(pc_spool_t *sp, const char *rec, size_t len)
{
    return pc_spool_append_seq(sp, pc_spool_next_seq(sp), rec, len);
}

uint64_t pc_spool_next_seq(pc_spool_t *sp)
{
    return atomic_fetch_add_explicit(&sp->next_seq, 1, memory_order_relaxed);
}

static bool flush_until(pc_spool_t *sp, const struct timespec *deadline)
{
    pthread_mutex_lock(&sp->mu);
    uint64_t target = sp->appended;
    sp->flushers++;
    if (sp->writer_grouping) pthread_cond_signal(&sp->work_cv);
    while (sp->settled < target) {
        if (!deadline) {
            pthread_cond_wait(&sp->done_cv, &sp->mu);
        } else if (pthread_cond_timedwait(&sp->done_cv, &sp->mu, deadline) == ETIMEDOUT) {
            break;
        }
    }
    bool done = sp->settled >= target;
    sp->flushers--;
    pthread_mutex_unlock(&sp->mu);
    return done;
}

void pc_spool_flush(pc_spool_t *sp)
{
    (void)flush_until(sp, NULL);
}

bool pc_spool_flush_timeout(pc_spool_t *sp, uint64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (timeout_ms % 1000u) * 1000000u;
    ts.tv_sec += (time_t)(timeout_ms / 1000u + ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return flush_until(sp, &ts);
}

void pc_spool_close(pc_spool_t *sp)
{
    if (!sp) return;
    pthread_mutex_lock(&sp->mu);
    sp->stopping = true;
    pthread_cond_broadcast(&sp->work_cv);
    pthread_mutex_unlock(&sp->mu);
    pthread_join(sp->writer, NULL);
    pthread_join(sp->verifier, NULL);
    pc_log_info("spool closed", PC_LSTR("dir", sp->dir),
                PC_LUINT("records_written", sp->st.records_written),
                PC_LUINT("records_dropped", sp->st.records_dropped));
    if (sp->seg_fd >= 0) close(sp->seg_fd);
    close(sp->lockfd);
    close(sp->dirfd);
    pthread_cond_destroy(&sp->work_cv);
    pthread_cond_destroy(&sp->done_cv);
    pthread_mutex_destroy(&sp->mu);
    free(sp->ring);
    free(sp->segs);
    free(sp->dir);
    free(sp);
}

void pc_spool_get_stats(pc_spool_t *sp, pc_spool_stats_t *out)
{
    pthread_mutex_lock(&sp->mu);
    *out = sp->st;
    out->records_pending = sp->appended - sp->settled;
    pthread_mutex_unlock(&sp->mu);
}

/* ---------- cursor ---------- */

bool pc_spool_cursor_store(const char *dir, const pc_spool_pos_t *pos, char *err, size_t errlen)
{
    static const char tmp[] = PC__SPOOL_CURSOR_FILE ".tmp";
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        errf(err, errlen, "cannot open directory", dir, errno);
        return false;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 "\n", pos->segment, pos->offset);
    int e = 0;
    int fd = openat(dirfd, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = errno;
    } else {
        if (write(fd, line, (size_t)n) != n)
            e = errno ? errno : EIO;
        else if (fsync(fd) != 0)
            e = errno;
        close(fd);
    }
    if (!e && renameat(dirfd, tmp, dirfd, PC__SPOOL_CURSOR_FILE) != 0) e = errno;
    if (!e && fsync(dirfd) != 0) e = errno;
    close(dirfd);
    if (e) errf(err, errlen, "cannot store cursor", dir, e);
    return e == 0;
}

bool pc_spool_cursor_load(const char *dir, pc_spool_pos_t *out)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return false;
    bool ok = pc__spool_cursor_read(dirfd, &out->segment, &out->offset);
    close(dirfd);
    return ok;
}
