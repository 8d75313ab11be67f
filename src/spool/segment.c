#include "spool/segment.h"
#include "spool/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---------- CRC-32C (Castagnoli, reflected 0x82F63B78) ---------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = c ^ pc__get_le32(p);
        uint32_t hi = pc__get_le32(p + 4);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
            crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
            crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_x86(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t pc__crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (crc_hw) return ~crc_x86(c, buf, len);
#endif
    return ~crc_sw(c, buf, len);
}

/* ---------- header and frames ---------- */

void pc__spool_header_encode(uint8_t out[PC__SPOOL_HDR_LEN], uint64_t segno, uint64_t base_seq)
{
    memcpy(out, PC__SPOOL_MAGIC, 8);
    pc__put_le64(out + 8, segno);
    pc__put_le64(out + 16, base_seq);
    pc__put_le32(out + 24, 0);
    pc__put_le32(out + 28, pc__crc32c(0, out, 28));
}

bool pc__spool_header_decode(const uint8_t hdr[PC__SPOOL_HDR_LEN], uint64_t segno,
                             uint64_t *base_seq)
{
    if (memcmp(hdr, PC__SPOOL_MAGIC, 8) != 0) return false;
    if (pc__get_le32(hdr + 28) != pc__crc32c(0, hdr, 28)) return false;
    if (pc__get_le64(hdr + 8) != segno) return false;
    *base_seq = pc__get_le64(hdr + 16);
    return true;
}

static uint32_t frame_crc(const uint8_t *hdr, const void *payload, size_t len)
{
    uint32_t c = pc__crc32c(0, hdr, 4);
    c = pc__crc32c(c, hdr + 8, 8);
    return pc__crc32c(c, payload, len);
}

void pc__spool_frame_header(uint8_t out[PC__SPOOL_FRAME_HDR], uint64_t seq, const void *p,
                            size_t len)
{
    pc__put_le32(out, (uint32_t)len);
    pc__put_le64(out + 8, seq);
    pc__put_le32(out + 4, frame_crc(out, p, len));
}

pc__frame_result_t pc__spool_frame_decode(const uint8_t *buf, size_t avail, pc__frame_t *out)
{
    if (avail < PC__SPOOL_FRAME_HDR) {
        out->frame_len = PC__SPOOL_FRAME_HDR;
        return PC__FRAME_NEED_MORE;
    }
    uint32_t len = pc__get_le32(buf);
    if (len == 0 || len > PC_SPOOL_MAX_RECORD) return PC__FRAME_CORRUPT;
    size_t flen = PC__SPOOL_FRAME_HDR + (size_t)len;
    out->frame_len = flen;
    if (avail < flen) return PC__FRAME_NEED_MORE;
    if (pc__get_le32(buf + 4) != frame_crc(buf, buf + PC__SPOOL_FRAME_HDR, len))
        return PC__FRAME_CORRUPT;
    out->payload = buf + PC__SPOOL_FRAME_HDR;
    out->len = len;
    out->seq = pc__get_le64(buf + 8);
    return PC__FRAME_OK;
}

/* ---------- directory ---------- */

void pc__spool_seg_name(char *out, size_t cap, uint64_t segno)
{
    snprintf(out, cap, "%020" PRIu64 ".seg", segno);
}

bool pc__spool_parse_name(const char *name, uint64_t *segno)
{
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (strcmp(name + 20, ".seg") != 0) return false;
    *segno = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

bool pc__spool_list(int dirfd, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return false;
    }
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t segno;
        if (!pc__spool_parse_name(de->d_name, &segno)) continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            v = pc_xrealloc(v, cap * sizeof *v);
        }
        v[len++] = segno;
    }
    bool ok = errno == 0;
    closedir(d);
    if (!ok) {
        free(v);
        return false;
    }
    if (len) qsort(v, len, sizeof *v, cmp_u64);
    *out = v;
    *n = len;
    return true;
}

bool pc__spool_cursor_read(int dirfd, uint64_t *segment, uint64_t *offset)
{
    int fd = openat(dirfd, PC__SPOOL_CURSOR_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    /* "<segment> <offset>\n", written whole by rename, so never torn. */
    unsigned long long s, o;
    char nl;
    if (sscanf(buf, "%llu %llu%c", &s, &o, &nl) != 3 || nl != '\n') return false;
    *segment = s;
    *offset = o;
    return true;
}
