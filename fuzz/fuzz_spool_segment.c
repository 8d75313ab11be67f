/*
 * Arbitrary bytes as a spool segment file, read by the reader and recovered
 * by pc_spool_open. The first input byte chooses the scenario:
 *   bit 0  prefix a valid header (the rest of the input is the frame area)
 *   bit 1  fix every frame's CRC, so that mutations explore the framing
 *   bit 2  a newer segment exists (the fuzzed one is sealed)
 *   bit 3  run pc_spool_open's recovery (and then read again)
 * Checked: the reader returns exactly the valid prefix that the pure decoder
 * finds (in a sealed segment, or in the newest), recovery keeps exactly that
 * prefix, and nothing crashes, leaks or reads out of bounds.
 */
#include "core/log.h"
#include "spool/segment.h"
#include "spool/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void check(bool ok)
{
    if (!ok) __builtin_trap();
}

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static void write_file(uint64_t segno, const uint8_t *data, size_t len)
{
    char name[PC__SPOOL_NAME_LEN + 1], path[256];
    pc__spool_seg_name(name, sizeof name, segno);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    check(fd >= 0);
    check(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

/* Valid frames at the start of the frame area, as the pure decoder sees them. */
static size_t valid_prefix(const uint8_t *p, size_t n)
{
    size_t count = 0, off = 0;
    pc__frame_t f;
    while (pc__spool_frame_decode(p + off, n - off, &f) == PC__FRAME_OK) {
        check(f.len >= 1 && f.len <= PC_SPOOL_MAX_RECORD && f.frame_len == 16u + f.len);
        check(off + f.frame_len <= n);
        off += f.frame_len;
        count++;
    }
    return count;
}

static size_t read_segment_records(uint64_t only_segment)
{
    char err[256];
    pc_spool_reader_t *r = pc_spool_reader_open(dir, NULL, err, sizeof err);
    check(r != NULL);
    size_t count = 0;
    const char *rec;
    size_t len;
    pc_spool_pos_t pos;
    while (pc_spool_reader_next(r, &rec, &len, &pos) == PC_SPOOL_READ_OK) {
        check(len >= 1 && len <= PC_SPOOL_MAX_RECORD);
        volatile char sink = rec[0] ^ rec[len - 1]; /* ASan: the bytes are readable */
        (void)sink;
        if (pos.segment == only_segment) count++;
    }
    pc_spool_reader_close(r);
    return count;
}

/* Rewrite CRCs so that structurally plausible frames become valid. */
static void fix_crcs(uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= PC__SPOOL_FRAME_HDR) {
        uint32_t len = pc__get_le32(p + off);
        if (len == 0 || len > PC_SPOOL_MAX_RECORD || n - off - PC__SPOOL_FRAME_HDR < len) break;
        uint64_t seq = pc__get_le64(p + off + 8);
        pc__spool_frame_header(p + off, seq, p + off + PC__SPOOL_FRAME_HDR, len);
        off += PC__SPOOL_FRAME_HDR + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/pc-fuzz-spool-XXXXXX");
        check(mkdtemp(dir) != NULL);
        pc__spool_set_nosync(true);
        pc__spool_set_queue_bytes(64u << 10);
        pc_log_level = PC_LOG_FATAL;
    }
    if (size < 1) return 0;
    unsigned mode = data[0];
    data++;
    size--;
    clear_dir();

    size_t hdr = (mode & 1) ? PC__SPOOL_HDR_LEN : 0;
    uint8_t *file = malloc(hdr + size + 1);
    check(file != NULL);
    if (hdr) pc__spool_header_encode(file, 1, 1);
    memcpy(file + hdr, data, size);
    if (mode & 2) fix_crcs(file + hdr, size);
    write_file(1, file, hdr + size);

    uint64_t hseq;
    bool header_ok = hdr + size >= PC__SPOOL_HDR_LEN && pc__spool_header_decode(file, 1, &hseq);
    size_t expect =
        header_ok ? valid_prefix(file + PC__SPOOL_HDR_LEN, hdr + size - PC__SPOOL_HDR_LEN) : 0;
    if (mode & 4) {
        uint8_t h2[PC__SPOOL_HDR_LEN];
        pc__spool_header_encode(h2, 2, 1);
        write_file(2, h2, sizeof h2);
    }
    check(read_segment_records(1) == expect);

    if (mode & 8) {
        char err[256];
        pc_spool_t *sp = pc_spool_open(dir, PC_SPOOL_MIN_MAX_BYTES, err, sizeof err);
        check(sp != NULL);
        pc_spool_stats_t st;
        pc_spool_get_stats(sp, &st);
        check(st.torn_records_cut <= 2);
        pc_spool_close(sp);
        /* Recovery cut (newest) or left (sealed) the damage; the records stay. */
        check(read_segment_records(1) == expect);
    }
    free(file);
    return 0;
}
