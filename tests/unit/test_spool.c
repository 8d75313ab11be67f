/* Unit tests for the audit spool: durability, recovery, bounds, readers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/log.h"
#include "spool/segment.h"
#include "spool/spool.h"

#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

/* ---------- helpers ---------- */

static char *make_dir(void)
{
    char *tmpl = pc_xstrdup("/tmp/pc-spool-test-XXXXXX");
    assert_non_null(mkdtemp(tmpl));
    return tmpl;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_dir(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static pc_spool_t *open_ok(const char *dir, uint64_t max_bytes)
{
    char err[256] = "";
    pc_spool_t *sp = pc_spool_open(dir, max_bytes, err, sizeof err);
    if (!sp) fail_msg("pc_spool_open: %s", err);
    return sp;
}

/* Record n is a small JSON object whose size varies with n. */
static size_t make_rec(char *buf, size_t cap, unsigned n, size_t pad)
{
    int len = snprintf(buf, cap, "{\"n\":%u,\"pad\":\"", n);
    size_t p = (size_t)len;
    size_t extra = pad + n % 37;
    for (size_t i = 0; i < extra && p + 3 < cap; i++)
        buf[p++] = (char)('a' + (n + i) % 26);
    buf[p++] = '"';
    buf[p++] = '}';
    buf[p] = '\0';
    return p;
}

static void append_range(pc_spool_t *sp, unsigned from, unsigned to, size_t pad)
{
    char buf[8192];
    for (unsigned n = from; n < to; n++) {
        size_t len = make_rec(buf, sizeof buf, n, pad);
        assert_true(pc_spool_append(sp, buf, len));
    }
}

/* Parse "n" out of a record and check the record is exactly what was written. */
static unsigned check_rec(const char *rec, size_t len, size_t pad)
{
    unsigned n;
    assert_true(len > 6);
    assert_int_equal(sscanf(rec, "{\"n\":%u,", &n), 1);
    char want[8192];
    size_t wlen = make_rec(want, sizeof want, n, pad);
    assert_int_equal(len, wlen);
    assert_memory_equal(rec, want, len);
    return n;
}

struct readall {
    unsigned *ns;
    size_t count;
    uint64_t skipped;
};

static void read_all(const char *dir, size_t pad, struct readall *out)
{
    char err[256];
    pc_spool_reader_t *r = pc_spool_reader_open(dir, NULL, err, sizeof err);
    assert_non_null(r);
    size_t cap = 1024;
    out->ns = pc_xmalloc(cap * sizeof *out->ns);
    out->count = 0;
    const char *rec;
    size_t len;
    pc_spool_read_t res;
    while ((res = pc_spool_reader_next(r, &rec, &len, NULL)) == PC_SPOOL_READ_OK) {
        if (out->count == cap) out->ns = pc_xrealloc(out->ns, (cap *= 2) * sizeof *out->ns);
        out->ns[out->count++] = check_rec(rec, len, pad);
    }
    assert_int_equal(res, PC_SPOOL_READ_END);
    out->skipped = pc_spool_reader_skipped(r);
    pc_spool_reader_close(r);
}

static char *seg_path(const char *dir, uint64_t segno)
{
    char name[PC__SPOOL_NAME_LEN + 1];
    pc__spool_seg_name(name, sizeof name, segno);
    size_t n = strlen(dir) + sizeof name + 2;
    char *p = pc_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static uint64_t dir_seg_bytes(const char *dir, size_t *nsegs)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    uint64_t *v;
    size_t n;
    assert_true(pc__spool_list(dfd, &v, &n));
    close(dfd);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = seg_path(dir, v[i]);
        total += file_size(p);
        free(p);
    }
    free(v);
    if (nsegs) *nsegs = n;
    return total;
}

/* Segment numbers in dir, ascending. */
static uint64_t newest_segment(const char *dir, uint64_t *oldest)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    uint64_t *v;
    size_t n;
    assert_true(pc__spool_list(dfd, &v, &n));
    close(dfd);
    assert_true(n > 0);
    uint64_t newest = v[n - 1];
    if (oldest) *oldest = v[0];
    free(v);
    return newest;
}

static int setup(void **state)
{
    pc_log_level = PC_LOG_ERROR + 1; /* recovery warnings are expected here */
    *state = make_dir();
    return 0;
}

static int teardown(void **state)
{
    remove_dir(*state);
    pc__spool_inject_failure(0, false, 0);
    pc__spool_inject_enospc(0);
    pc__spool_inject_stall(false);
    return 0;
}

/* ---------- tests ---------- */

static void test_crc32c_vector(void **state)
{
    (void)state;
    /* RFC 3720 B.4 check value, and the same in pieces. */
    assert_int_equal(pc__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(pc__crc32c(pc__crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(pc__crc32c(0, zeros, 32), 0x8A9136AAu);
}

static void test_frame_decode(void **state)
{
    (void)state;
    uint8_t buf[64];
    const char *p = "{\"a\":1}";
    pc__spool_frame_header(buf, 42, p, 7);
    memcpy(buf + 16, p, 7);
    pc__frame_t f;
    for (size_t n = 0; n < 23; n++)
        assert_int_equal(pc__spool_frame_decode(buf, n, &f), PC__FRAME_NEED_MORE);
    assert_int_equal(pc__spool_frame_decode(buf, 23, &f), PC__FRAME_OK);
    assert_int_equal(f.seq, 42);
    assert_int_equal(f.len, 7);
    assert_int_equal(f.frame_len, 23);
    for (size_t i = 0; i < 23; i++) {
        buf[i] ^= 0x40;
        assert_int_not_equal(pc__spool_frame_decode(buf, 23, &f), PC__FRAME_OK);
        buf[i] ^= 0x40;
    }
    memset(buf, 0, sizeof buf); /* a zero-filled tail is never a record */
    assert_int_equal(pc__spool_frame_decode(buf, sizeof buf, &f), PC__FRAME_CORRUPT);
}

static void test_append_reopen(void **state)
{
    const char *dir = *state;
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    /* a new directory starts at the wall clock in microseconds */
    uint64_t first = pc_spool_next_seq(sp);
    assert_true(first > pc_now_wall_ns() / 1000u - 60000000u);
    append_range(sp, 0, 500, 100);
    pc_spool_flush(sp);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_appended, 500);
    assert_int_equal(st.records_written, 500);
    assert_int_equal(st.records_pending, 0);
    assert_int_equal(st.records_dropped, 0);
    pc_spool_close(sp);

    /* first went to the check above; records 0..499 took first+1..first+500. */
    sp = open_ok(dir, 64 * MIB);
    assert_int_equal(pc_spool_next_seq(sp), first + 501);
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.torn_records_cut, 0);
    append_range(sp, 500, 600, 100);
    pc_spool_close(sp); /* close flushes */

    struct readall ra;
    read_all(dir, 100, &ra);
    assert_int_equal(ra.count, 600);
    for (unsigned i = 0; i < 600; i++)
        assert_int_equal(ra.ns[i], i);
    assert_int_equal(ra.skipped, 0);
    free(ra.ns);
}

/* Sequence numbers stay unique even when every segment holding records is gone. */
static void test_seq_survives_deleted_segments(void **state)
{
    const char *dir = *state;
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    uint64_t base = pc_spool_next_seq(sp);
    append_range(sp, 0, 10, 10); /* base+1..base+10 */
    pc_spool_close(sp);
    uint64_t with_records = newest_segment(dir, NULL);
    sp = open_ok(dir, 64 * MIB); /* creates an empty newer segment */
    pc_spool_close(sp);
    char *p = seg_path(dir, with_records);
    assert_int_equal(unlink(p), 0); /* shipped and removed */
    free(p);
    sp = open_ok(dir, 64 * MIB);
    assert_int_equal(pc_spool_next_seq(sp), base + 11);
    pc_spool_close(sp);
    size_t nsegs;
    dir_seg_bytes(dir, &nsegs);
    assert_int_equal(nsegs, 1); /* empty leftovers are tidied up */
}

enum damage { TRUNCATE_MID_RECORD, APPEND_GARBAGE, FLIP_BYTE, ZERO_TAIL };

static void torn_case(const char *dir, enum damage how)
{
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    append_range(sp, 0, 50, 200);
    pc_spool_close(sp);
    uint64_t segno = newest_segment(dir, NULL);
    char *path = seg_path(dir, segno);
    uint64_t size = file_size(path);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned expect = 49; /* the last record is damaged */
    switch (how) {
    case TRUNCATE_MID_RECORD:
        assert_int_equal(ftruncate(fd, (off_t)(size - 30)), 0);
        break;
    case APPEND_GARBAGE: {
        const char junk[] = "\x10\x00\x00\x00garbage-not-a-record";
        assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t)size), (ssize_t)sizeof junk);
        expect = 50;
        break;
    }
    case FLIP_BYTE: {
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, (off_t)(size - 5)), 1);
        b ^= 0x01;
        assert_int_equal(pwrite(fd, &b, 1, (off_t)(size - 5)), 1);
        break;
    }
    case ZERO_TAIL: {
        uint8_t z[4096] = {0}; /* what a filesystem may show after a crash */
        assert_int_equal(pwrite(fd, z, sizeof z, (off_t)size), (ssize_t)sizeof z);
        expect = 50;
        break;
    }
    }
    close(fd);

    /* A reader on the damaged spool never returns the damaged record. */
    struct readall ra;
    read_all(dir, 200, &ra);
    assert_int_equal(ra.count, expect);
    free(ra.ns);

    sp = open_ok(dir, 64 * MIB);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.torn_records_cut, 1);
    append_range(sp, 1000, 1010, 200);
    pc_spool_close(sp);
    assert_true(file_size(path) < size + (how == APPEND_GARBAGE || how == ZERO_TAIL ? 1 : 0));
    free(path);

    read_all(dir, 200, &ra);
    assert_int_equal(ra.count, expect + 10);
    for (unsigned i = 0; i < expect; i++)
        assert_int_equal(ra.ns[i], i);
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(ra.ns[expect + i], 1000 + i);
    assert_int_equal(ra.skipped, 0);
    free(ra.ns);

    /* Cut once, then clean. */
    sp = open_ok(dir, 64 * MIB);
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.torn_records_cut, 0);
    pc_spool_close(sp);
}

static void test_torn_truncated(void **state)
{
    torn_case(*state, TRUNCATE_MID_RECORD);
}

static void test_torn_garbage(void **state)
{
    torn_case(*state, APPEND_GARBAGE);
}

static void test_torn_flipped(void **state)
{
    torn_case(*state, FLIP_BYTE);
}

static void test_torn_zeros(void **state)
{
    torn_case(*state, ZERO_TAIL);
}

/* Corruption inside an older segment: that segment stops there, later ones read on. */
static void test_corrupt_sealed_segment(void **state)
{
    const char *dir = *state;
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    append_range(sp, 0, 20, 50);
    pc_spool_close(sp);
    uint64_t first = newest_segment(dir, NULL);
    sp = open_ok(dir, 64 * MIB);
    append_range(sp, 20, 40, 50);
    pc_spool_close(sp);

    /* Flip a payload byte of record 10 in the first segment. */
    char *path = seg_path(dir, first);
    int fd = open(path, O_RDWR);
    uint64_t off = PC__SPOOL_HDR_LEN;
    char rec[8192];
    for (unsigned n = 0; n < 10; n++)
        off += PC__SPOOL_FRAME_HDR + make_rec(rec, sizeof rec, n, 50);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)(off + 20)), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)(off + 20)), 1);
    close(fd);
    free(path);

    struct readall ra;
    read_all(dir, 50, &ra);
    assert_int_equal(ra.count, 30);
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(ra.ns[i], i);
    for (unsigned i = 0; i < 20; i++)
        assert_int_equal(ra.ns[10 + i], 20 + i);
    assert_int_equal(ra.skipped, 1);
    free(ra.ns);

    /* found by the background check of sealed segments */
    sp = open_ok(dir, 64 * MIB);
    pc__spool_wait_verified(sp);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.torn_records_cut, 1);
    pc_spool_close(sp);
}

/* A restart with a smaller bound drops the oldest, still unverified, segments exactly. */
static void test_max_bytes_shrunk_at_restart(void **state)
{
    const char *dir = *state;
    for (unsigned i = 0; i < 6; i++) {
        pc_spool_t *sp = open_ok(dir, 64 * MIB);
        append_range(sp, i * 300, i * 300 + 300, 1000);
        pc_spool_close(sp);
    }
    pc_spool_t *sp = open_ok(dir, PC_SPOOL_MIN_MAX_BYTES);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_true(st.records_dropped >= 300);
    assert_true(st.bytes_on_disk <= PC_SPOOL_MIN_MAX_BYTES);
    pc_spool_close(sp);
    struct readall ra;
    read_all(dir, 1000, &ra);
    assert_int_equal(ra.count + st.records_dropped, 1800);
    for (size_t i = 0; i < ra.count; i++)
        assert_int_equal(ra.ns[i], 1800 - ra.count + i);
    free(ra.ns);
}

static void test_max_bytes(void **state)
{
    const char *dir = *state;
    const uint64_t max = 2 * MIB;
    pc_spool_t *sp = open_ok(dir, max);
    unsigned total = 0;
    /* ~1 KB records, flushed in rounds so that batches rotate segments. */
    for (int round = 0; round < 12; round++) {
        append_range(sp, total, total + 500, 1000);
        total += 500;
        pc_spool_flush(sp);
        size_t nsegs;
        assert_true(dir_seg_bytes(dir, &nsegs) <= max);
    }
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_written, total);
    assert_true(st.records_dropped > 0);
    assert_true(st.bytes_on_disk <= max);
    assert_int_equal(st.bytes_on_disk, dir_seg_bytes(dir, NULL));
    pc_spool_close(sp);

    /* What is left is the newest records, contiguous, and the count adds up. */
    struct readall ra;
    read_all(dir, 1000, &ra);
    assert_int_equal(ra.count + st.records_dropped, total);
    for (size_t i = 0; i < ra.count; i++)
        assert_int_equal(ra.ns[i], total - ra.count + i);
    free(ra.ns);
}

/* Segments the shipper acknowledged are deleted first and are not losses. */
static void test_max_bytes_shipped(void **state)
{
    const char *dir = *state;
    const uint64_t max = 2 * MIB;
    pc_spool_t *sp = open_ok(dir, max);
    append_range(sp, 0, 1500, 1000);
    pc_spool_flush(sp);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_dropped, 0);

    /* Ship everything written so far. */
    char err[256];
    pc_spool_reader_t *r = pc_spool_reader_open(dir, NULL, err, sizeof err);
    const char *rec;
    size_t len;
    pc_spool_pos_t pos = {0, 0};
    unsigned shipped = 0;
    while (pc_spool_reader_next(r, &rec, &len, &pos) == PC_SPOOL_READ_OK)
        shipped++;
    pc_spool_reader_close(r);
    assert_int_equal(shipped, 1500);
    assert_true(pc_spool_cursor_store(dir, &pos, err, sizeof err));
    pc_spool_pos_t loaded;
    assert_true(pc_spool_cursor_load(dir, &loaded));
    assert_int_equal(loaded.segment, pos.segment);
    assert_int_equal(loaded.offset, pos.offset);

    /* Enough new records to force deleting old segments. */
    append_range(sp, 1500, 2500, 1000);
    pc_spool_flush(sp);
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_written, 2500);
    assert_true(st.bytes_on_disk <= max);
    assert_int_equal(st.records_dropped, 0);
    pc_spool_close(sp);

    /* Resuming from the cursor yields exactly the unshipped records. */
    r = pc_spool_reader_open(dir, &loaded, err, sizeof err);
    unsigned next = 1500;
    while (pc_spool_reader_next(r, &rec, &len, NULL) == PC_SPOOL_READ_OK)
        assert_int_equal(check_rec(rec, len, 1000), next++);
    assert_int_equal(next, 2500);
    pc_spool_reader_close(r);
}

/* Segments deleted by hand under a shipper's cursor: new records are not "shipped". */
static void test_wiped_segments_under_cursor(void **state)
{
    const char *dir = *state;
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    append_range(sp, 0, 10, 100);
    pc_spool_close(sp);
    char err[256];
    pc_spool_reader_t *r = pc_spool_reader_open(dir, NULL, err, sizeof err);
    const char *rec;
    size_t len;
    pc_spool_pos_t pos;
    while (pc_spool_reader_next(r, &rec, &len, &pos) == PC_SPOOL_READ_OK) {
    }
    pc_spool_reader_close(r);
    assert_true(pc_spool_cursor_store(dir, &pos, err, sizeof err));
    /* the operator empties the spool */
    uint64_t oldest, newest = newest_segment(dir, &oldest);
    for (uint64_t s = oldest; s <= newest; s++) {
        char *p = seg_path(dir, s);
        unlink(p);
        free(p);
    }
    sp = open_ok(dir, 64 * MIB);
    append_range(sp, 100, 110, 100);
    pc_spool_close(sp);
    /* the shipper resumes from its cursor and gets exactly the new records */
    r = pc_spool_reader_open(dir, &pos, err, sizeof err);
    unsigned next = 100;
    while (pc_spool_reader_next(r, &rec, &len, NULL) == PC_SPOOL_READ_OK)
        assert_int_equal(check_rec(rec, len, 100), next++);
    assert_int_equal(next, 110);
    pc_spool_reader_close(r);
}

struct live_writer {
    const char *dir;
    unsigned count;
};

static void *live_writer_main(void *arg)
{
    struct live_writer *lw = arg;
    pc_spool_t *sp = open_ok(lw->dir, 2 * MIB); /* small: rotates while read */
    for (unsigned n = 0; n < lw->count; n += 50) {
        append_range(sp, n, n + 50, 300);
        if (n % 200 == 0) pc_spool_flush(sp);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    pc_spool_close(sp);
    return NULL;
}

static void test_reader_follows_writer(void **state)
{
    const char *dir = *state;
    struct live_writer lw = {dir, 3000};
    /* Create the directory's first segment before the reader starts. */
    pc_spool_close(open_ok(dir, 2 * MIB));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, live_writer_main, &lw), 0);
    char err[256];
    pc_spool_reader_t *r = pc_spool_reader_open(dir, NULL, err, sizeof err);
    assert_non_null(r);
    unsigned next = 0;
    pc_spool_pos_t pos = {0, 0}, mid = {0, 0};
    unsigned mid_n = 0;
    while (next < lw.count) {
        const char *rec;
        size_t len;
        pc_spool_read_t res = pc_spool_reader_next(r, &rec, &len, &pos);
        assert_int_not_equal(res, PC_SPOOL_READ_ERROR);
        if (res == PC_SPOOL_READ_END) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
            continue;
        }
        assert_int_equal(check_rec(rec, len, 300), next);
        next++;
        if (next == 1234) {
            mid = pos;
            mid_n = next;
        }
    }
    pc_spool_reader_close(r);
    pthread_join(th, NULL);

    /* A cursor taken mid-way resumes right after its record. */
    r = pc_spool_reader_open(dir, &mid, err, sizeof err);
    const char *rec;
    size_t len;
    /* ~1 MB written under a 2 MiB bound: nothing was deleted, so it is the very next one. */
    assert_int_equal(pc_spool_reader_next(r, &rec, &len, NULL), PC_SPOOL_READ_OK);
    assert_int_equal(check_rec(rec, len, 300), mid_n);
    pc_spool_reader_close(r);
}

struct churn_writer {
    const char *dir;
    unsigned count;
};

static void *churn_writer_main(void *arg)
{
    struct churn_writer *cw = arg;
    pc_spool_t *sp = open_ok(cw->dir, PC_SPOOL_MIN_MAX_BYTES); /* deletes as it goes */
    for (unsigned n = 0; n < cw->count; n += 100) {
        append_range(sp, n, n + 100, 900);
        pc_spool_flush(sp);
    }
    pc_spool_close(sp);
    return NULL;
}

/* A reader following a writer that deletes segments under it: records come in
 * order, intact, possibly with gaps where segments went; never garbage. */
static void test_reader_while_segments_deleted(void **state)
{
    const char *dir = *state;
    struct churn_writer cw = {dir, 6000}; /* ~6 MB through a 1 MiB spool */
    pc_spool_close(open_ok(dir, PC_SPOOL_MIN_MAX_BYTES));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_writer_main, &cw), 0);
    char err[256];
    pc_spool_reader_t *r = pc_spool_reader_open(dir, NULL, err, sizeof err);
    assert_non_null(r);
    long last = -1;
    unsigned got = 0;
    for (;;) {
        const char *rec;
        size_t len;
        pc_spool_read_t res = pc_spool_reader_next(r, &rec, &len, NULL);
        assert_int_not_equal(res, PC_SPOOL_READ_ERROR);
        if (res == PC_SPOOL_READ_OK) {
            long n = (long)check_rec(rec, len, 900);
            assert_true(n > last);
            last = n;
            got++;
            if (n == (long)cw.count - 1) break;
            continue;
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    pc_spool_reader_close(r);
    pthread_join(th, NULL);
    assert_true(got > 0);
}

static void failure_case(const char *dir, unsigned nth_write, bool partial, unsigned nth_fsync)
{
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    append_range(sp, 0, 100, 100);
    pc_spool_flush(sp);
    pc__spool_inject_failure(nth_write, partial, nth_fsync);
    append_range(sp, 100, 300, 100);
    pc_spool_flush(sp);
    append_range(sp, 300, 400, 100);
    pc_spool_flush(sp);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_written, 400);
    assert_int_equal(st.records_dropped, 0);
    pc_spool_close(sp);
    pc__spool_inject_failure(0, false, 0);

    /* Nothing torn left behind, every record exactly once. */
    sp = open_ok(dir, 64 * MIB);
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.torn_records_cut, 0);
    pc_spool_close(sp);
    struct readall ra;
    read_all(dir, 100, &ra);
    assert_int_equal(ra.count, 400);
    for (unsigned i = 0; i < 400; i++)
        assert_int_equal(ra.ns[i], i);
    free(ra.ns);
}

static void test_write_failure_partial(void **state)
{
    failure_case(*state, 1, true, 0);
}

static void test_write_failures_repeated(void **state)
{
    failure_case(*state, 1, false, 0);
    /* and again on a fresh spool, the second write */
    char sub[512];
    snprintf(sub, sizeof sub, "%s/again", (const char *)*state);
    failure_case(sub, 2, true, 0);
}

static void test_fsync_failure(void **state)
{
    failure_case(*state, 0, false, 1);
}

/* A disk that never recovers: flush can time out, close still returns and counts the loss. */
static void test_close_on_dead_disk(void **state)
{
    const char *dir = *state;
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    append_range(sp, 0, 5, 100);
    pc_spool_flush(sp);
    pc__spool_inject_failure(UINT_MAX, true, 0);
    append_range(sp, 5, 15, 100);
    assert_false(pc_spool_flush_timeout(sp, 50));
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_written, 5);
    assert_int_equal(st.records_pending, 10);
    pc_spool_close(sp);
    pc__spool_inject_failure(0, false, 0);

    /* the half-written attempts were cut each time: nothing torn, nothing extra */
    sp = open_ok(dir, 64 * MIB);
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.torn_records_cut, 0);
    assert_true(pc_spool_flush_timeout(sp, 60000));
    pc_spool_close(sp);
    struct readall ra;
    read_all(dir, 100, &ra);
    assert_int_equal(ra.count, 5);
    free(ra.ns);
}

/* Disk full with one segment: it is sealed, then dropped; the newest records stay. */
static void test_disk_full(void **state)
{
    const char *dir = *state;
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    append_range(sp, 0, 100, 100);
    pc_spool_flush(sp);
    /* first attempt: nothing older to drop, so seal and rotate; second: drop it */
    pc__spool_inject_enospc(2);
    append_range(sp, 100, 150, 100);
    pc_spool_flush(sp);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_written, 150);
    assert_int_equal(st.records_dropped, 100);
    pc_spool_close(sp);
    struct readall ra;
    read_all(dir, 100, &ra);
    assert_int_equal(ra.count, 50);
    for (unsigned i = 0; i < 50; i++)
        assert_int_equal(ra.ns[i], 100 + i);
    free(ra.ns);
}

struct appender {
    pc_spool_t *sp;
    unsigned base, count;
};

static void *appender_main(void *arg)
{
    struct appender *a = arg;
    char buf[512];
    for (unsigned i = 0; i < a->count; i++) {
        size_t len = make_rec(buf, sizeof buf, a->base + i, 40);
        while (!pc_spool_append(a->sp, buf, len)) {
            /* queue full would count drops; the test sizes stay well below */
            fail_msg("append refused");
        }
        if (i % 1000 == 999) pc_spool_flush(a->sp);
    }
    return NULL;
}

static void test_concurrent_appends(void **state)
{
    const char *dir = *state;
    enum { THREADS = 8, PER = 5000 };
    pc_spool_t *sp = open_ok(dir, 256 * MIB);
    pthread_t th[THREADS];
    struct appender a[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        a[t] = (struct appender){sp, t * PER, PER};
        assert_int_equal(pthread_create(&th[t], NULL, appender_main, &a[t]), 0);
    }
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    pc_spool_flush(sp);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_written, THREADS * PER);
    pc_spool_close(sp);

    struct readall ra;
    read_all(dir, 40, &ra);
    assert_int_equal(ra.count, THREADS * PER);
    uint8_t *seen = pc_xcalloc(THREADS * PER, 1);
    unsigned last[THREADS];
    memset(last, 0xff, sizeof last);
    for (size_t i = 0; i < ra.count; i++) {
        unsigned n = ra.ns[i];
        assert_true(n < THREADS * PER);
        assert_int_equal(seen[n], 0);
        seen[n] = 1;
        /* each thread's records keep its order */
        unsigned t = n / PER;
        if (last[t] != 0xffffffffu) assert_true(n > last[t]);
        last[t] = n;
    }
    free(seen);
    free(ra.ns);
}

/* Sequence numbers in frames are unique and the spool's own. */
static void test_frame_seqs_unique(void **state)
{
    const char *dir = *state;
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    uint64_t s1 = pc_spool_next_seq(sp);
    assert_true(pc_spool_append_seq(sp, s1, "{\"x\":1}", 7));
    assert_true(pc_spool_append(sp, "{\"x\":2}", 7));
    pc_spool_close(sp);
    char *path = seg_path(dir, newest_segment(dir, NULL));
    int fd = open(path, O_RDONLY);
    uint8_t buf[256];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    close(fd);
    free(path);
    assert_int_equal(n, PC__SPOOL_HDR_LEN + 2 * (PC__SPOOL_FRAME_HDR + 7));
    pc__frame_t f1, f2;
    assert_int_equal(pc__spool_frame_decode(buf + 32, 23, &f1), PC__FRAME_OK);
    assert_int_equal(pc__spool_frame_decode(buf + 55, 23, &f2), PC__FRAME_OK);
    assert_int_equal(f1.seq, s1);
    assert_int_equal(f2.seq, s1 + 1);
}

static void test_refusals(void **state)
{
    const char *dir = *state;
    char err[256];
    assert_null(pc_spool_open(dir, 1000, err, sizeof err));
    assert_non_null(strstr(err, "max_bytes"));

    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    /* one writer per directory */
    assert_null(pc_spool_open(dir, 64 * MIB, err, sizeof err));
    assert_non_null(strstr(err, "in use"));

    char *big = pc_xcalloc(PC_SPOOL_MAX_RECORD + 2, 1);
    memset(big, 'x', PC_SPOOL_MAX_RECORD + 1);
    assert_false(pc_spool_append(sp, big, PC_SPOOL_MAX_RECORD + 1));
    assert_false(pc_spool_append(sp, "", 0));
    assert_true(pc_spool_append(sp, big, PC_SPOOL_MAX_RECORD)); /* the largest allowed */
    free(big);
    pc_spool_flush(sp);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_dropped, 2);
    assert_int_equal(st.records_written, 1);
    pc_spool_close(sp);

    /* a missing directory is an error for readers, not an empty spool */
    assert_null(pc_spool_reader_open("/nonexistent/pc-spool", NULL, err, sizeof err));
    pc_spool_close(NULL);
}

/* Enough backlog to fill the queue: appends are refused and counted, never block. */
static void test_queue_full(void **state)
{
    const char *dir = *state;
    pc_spool_t *sp = open_ok(dir, 1024 * MIB);
    char *rec = pc_xmalloc(PC_SPOOL_MAX_RECORD);
    memset(rec, 'q', PC_SPOOL_MAX_RECORD);
    /* a writer that takes no batch, as behind a stuck disk */
    pc__spool_inject_stall(true);
    unsigned ok = 0, refused = 0;
    for (unsigned i = 0; i < 200; i++) {
        if (pc_spool_append(sp, rec, PC_SPOOL_MAX_RECORD))
            ok++;
        else
            refused++;
    }
    pc__spool_inject_stall(false);
    free(rec);
    assert_true(refused > 0);
    assert_true(ok > 0);
    pc_spool_flush(sp);
    pc_spool_stats_t st;
    pc_spool_get_stats(sp, &st);
    assert_int_equal(st.records_written, ok);
    assert_int_equal(st.records_dropped, refused);
    pc_spool_close(sp);
}

/* kill -9 of a writing process: every record reported durable is there after restart. */
static void test_kill9_keeps_durable_records(void **state)
{
    const char *dir = *state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        char err[256], buf[512];
        pc_spool_t *sp = pc_spool_open(dir, 64 * MIB, err, sizeof err);
        if (!sp) _exit(3);
        for (unsigned n = 0;; n++) {
            size_t len = make_rec(buf, sizeof buf, n, 100);
            if (!pc_spool_append(sp, buf, len)) _exit(4);
            if (n % 10 == 9) {
                pc_spool_flush(sp);
                unsigned durable = n + 1;
                if (write(pfd[1], &durable, sizeof durable) != sizeof durable) _exit(5);
            }
        }
    }
    close(pfd[1]);
    unsigned durable = 0, v;
    while (durable < 3000 && read(pfd[0], &v, sizeof v) == sizeof v)
        durable = v;
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    while (read(pfd[0], &v, sizeof v) == sizeof v)
        durable = v;
    close(pfd[0]);
    assert_true(durable >= 3000);

    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    uint64_t next = pc_spool_next_seq(sp);
    pc_spool_close(sp);
    struct readall ra;
    read_all(dir, 100, &ra);
    /* a gapless prefix, at least as long as what was reported durable */
    assert_true(ra.count >= durable);
    for (size_t i = 0; i < ra.count; i++)
        assert_int_equal(ra.ns[i], i);
    assert_true(next > ra.count);
    free(ra.ns);
}

/* Records that arrive faster than syncs share them: consecutive syncs start at
 * least 4 ms apart, with no flush to push the writer. (Syncs are skipped here
 * so that, without grouping, the writer would loop once per handful of
 * records.) A record that finds the writer idle is written at once. */
static void wait_written(pc_spool_t *sp, uint64_t want, pc_spool_stats_t *st)
{
    for (int i = 0; i < 20000; i++) {
        pc_spool_get_stats(sp, st);
        if (st->records_written >= want) return;
        usleep(500);
    }
    fail_msg("records not written: %" PRIu64 " of %" PRIu64, st->records_written, want);
}

static void test_group_commit(void **state)
{
    const char *dir = *state;
    pc__spool_set_nosync(true);
    pc_spool_t *sp = open_ok(dir, 64 * MIB);
    pc_spool_stats_t st;
    append_range(sp, 0, 1, 100);
    wait_written(sp, 1, &st);
    uint64_t b0 = st.batches;
    uint64_t t0 = pc_now_mono_ns();
    append_range(sp, 1, 3001, 100);
    wait_written(sp, 3001, &st);
    uint64_t elapsed_ms = (pc_now_mono_ns() - t0) / 1000000u;
    uint64_t batches = st.batches - b0;
    assert_true(batches >= 1);
    assert_true(batches <= 2 + elapsed_ms / 4);
    pc_spool_close(sp);
    pc__spool_set_nosync(false);
    struct readall ra;
    read_all(dir, 100, &ra);
    assert_int_equal(ra.count, 3001);
    free(ra.ns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vector),
        cmocka_unit_test(test_frame_decode),
        cmocka_unit_test_setup_teardown(test_append_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_survives_deleted_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_flipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_zeros, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_sealed_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes_shrunk_at_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes_shipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wiped_segments_under_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_while_segments_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_follows_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failures_repeated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_on_dead_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_seqs_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_keeps_durable_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
