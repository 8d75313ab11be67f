/*
 * Spool reader: walks the segments of a directory that a writer (possibly in
 * another process) may be appending to, and returns only frames whose CRC
 * matches.
 *
 * A bad or incomplete frame means different things depending on where it is:
 * in the newest segment it may be a batch still being written, so the reader
 * reports END and tries again on the next call; once a newer segment exists
 * the old one is final, so the reader reads it one last time and then moves
 * on, counting anything it could not parse as skipped.
 */
#include "spool/spool.h"
#include "spool/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define READ_BUF (256u << 10)

struct pc_spool_reader {
    int dirfd;
    uint64_t seg; /* segment being read */
    int fd;       /* -1 until seg is opened */
    uint64_t off; /* next frame */
    uint8_t *buf; /* file bytes [buf_off, buf_off + buf_len) */
    size_t cap;
    uint64_t buf_off;
    size_t buf_len;
    uint64_t skipped;
};

pc_spool_reader_t *pc_spool_reader_open(const char *dir, const pc_spool_pos_t *from, char *err,
                                        size_t errlen)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        if (err && errlen) snprintf(err, errlen, "spool %s: %s", dir, strerror(errno));
        return NULL;
    }
    pc_spool_reader_t *r = pc_xcalloc(1, sizeof *r);
    r->dirfd = dirfd;
    r->fd = -1;
    r->seg = from ? from->segment : 0;
    r->off = from ? from->offset : 0;
    r->cap = READ_BUF;
    r->buf = pc_xmalloc(r->cap);
    return r;
}

void pc_spool_reader_close(pc_spool_reader_t *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    close(r->dirfd);
    free(r->buf);
    free(r);
}

uint64_t pc_spool_reader_skipped(const pc_spool_reader_t *r)
{
    return r->skipped;
}

/* The first segment numbered at least min; false if there is none. */
static bool first_segment_from(pc_spool_reader_t *r, uint64_t min, uint64_t *out, bool *err)
{
    uint64_t *v;
    size_t n;
    *err = false;
    if (!pc__spool_list(r->dirfd, &v, &n)) {
        *err = true;
        return false;
    }
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (v[i] >= min) {
            *out = v[i];
            found = true;
        }
    }
    free(v);
    return found;
}

static void leave_segment(pc_spool_reader_t *r, uint64_t next)
{
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    r->seg = next;
    r->off = 0;
    r->buf_len = 0;
}

/* Bytes available at off (at least want if the file has them), or -errno. */
static ssize_t fill(pc_spool_reader_t *r, uint64_t off, size_t want, bool refresh)
{
    if (!refresh && off >= r->buf_off && off + want <= r->buf_off + r->buf_len)
        return (ssize_t)(r->buf_off + r->buf_len - off);
    if (want > r->cap) {
        r->cap = want;
        r->buf = pc_xrealloc(r->buf, r->cap);
    }
    size_t got = 0;
    while (got < r->cap) {
        ssize_t n = pread(r->fd, r->buf + got, r->cap - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) break;
        got += (size_t)n;
    }
    r->buf_off = off;
    r->buf_len = got;
    return (ssize_t)got;
}

typedef enum { SEG_OPEN, SEG_WAIT, SEG_NEXT, SEG_ERROR } seg_state_t;

/* Open r->seg (or the first segment after it); validate its header. */
static seg_state_t open_segment(pc_spool_reader_t *r)
{
    bool err;
    uint64_t seg;
    if (!first_segment_from(r, r->seg, &seg, &err)) return err ? SEG_ERROR : SEG_WAIT;
    if (seg != r->seg) leave_segment(r, seg); /* ours was deleted (or never existed) */
    char name[PC__SPOOL_NAME_LEN + 1];
    pc__spool_seg_name(name, sizeof name, seg);
    int fd = openat(r->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? SEG_NEXT : SEG_ERROR;
    uint8_t hdr[PC__SPOOL_HDR_LEN];
    uint64_t base_seq;
    ssize_t n = pread(fd, hdr, sizeof hdr, 0);
    if (n == (ssize_t)sizeof hdr && pc__spool_header_decode(hdr, seg, &base_seq)) {
        r->fd = fd;
        if (r->off < PC__SPOOL_HDR_LEN) r->off = PC__SPOOL_HDR_LEN;
        r->buf_len = 0;
        return SEG_OPEN;
    }
    close(fd);
    /* A header still being written only exists in the newest segment. */
    uint64_t newer;
    if (!first_segment_from(r, seg + 1, &newer, &err)) return err ? SEG_ERROR : SEG_WAIT;
    r->skipped++;
    leave_segment(r, newer);
    return SEG_NEXT;
}

pc_spool_read_t pc_spool_reader_next(pc_spool_reader_t *r, const char **rec, size_t *len,
                                     pc_spool_pos_t *pos_after)
{
    for (;;) {
        if (r->fd < 0) {
            seg_state_t s = open_segment(r);
            if (s == SEG_ERROR) return PC_SPOOL_READ_ERROR;
            if (s == SEG_WAIT) return PC_SPOOL_READ_END;
            if (s == SEG_NEXT) continue;
        }
        pc__frame_t f = {0};
        pc__frame_result_t res = PC__FRAME_NEED_MORE;
        bool sealed = false;
        ssize_t avail = 0;
        for (int pass = 0; pass < 2; pass++) {
            /* The second pass runs only once a newer segment proves this one
             * final: read the file again, since the buffer may predate it. */
            avail = fill(r, r->off, PC__SPOOL_FRAME_HDR, pass > 0);
            if (avail < 0) return PC_SPOOL_READ_ERROR;
            res = pc__spool_frame_decode(r->buf + (r->off - r->buf_off), (size_t)avail, &f);
            if (res == PC__FRAME_NEED_MORE && f.frame_len > (size_t)avail &&
                f.frame_len > PC__SPOOL_FRAME_HDR) {
                avail = fill(r, r->off, f.frame_len, pass > 0);
                if (avail < 0) return PC_SPOOL_READ_ERROR;
                res = pc__spool_frame_decode(r->buf + (r->off - r->buf_off), (size_t)avail, &f);
            }
            if (res == PC__FRAME_OK || pass > 0) break;
            bool err;
            uint64_t newer;
            sealed = first_segment_from(r, r->seg + 1, &newer, &err);
            if (err) return PC_SPOOL_READ_ERROR;
            if (!sealed) return PC_SPOOL_READ_END;
        }
        if (res == PC__FRAME_OK) {
            *rec = (const char *)f.payload;
            *len = f.len;
            r->off += f.frame_len;
            if (pos_after) *pos_after = (pc_spool_pos_t){r->seg, r->off};
            return PC_SPOOL_READ_OK;
        }
        /* Sealed and nothing valid at r->off: the segment ends here. */
        if (avail > 0) r->skipped++;
        leave_segment(r, r->seg + 1);
    }
}
