/* google/uuid's Parse and the fields OPA derives from versions 1 and 2. */
#include "policy/lib/uuid.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool parse_bytes(const char *s, size_t n, unsigned char u[16])
{
    if (n == 36 + 9) {
        if (strncasecmp(s, "urn:uuid:", 9) != 0) return false;
        s += 9;
        n -= 9;
    } else if (n == 36 + 2) {
        s++; /* google/uuid drops the outer pair whatever it is */
        n -= 2;
    } else if (n == 32) {
        for (int i = 0; i < 16; i++) {
            int hi = hexv(s[2 * i]), lo = hexv(s[2 * i + 1]);
            if (hi < 0 || lo < 0) return false;
            u[i] = (unsigned char)(hi << 4 | lo);
        }
        return true;
    }
    if (n != 36) return false;
    if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return false;
    static const int pos[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    for (int i = 0; i < 16; i++) {
        int hi = hexv(s[pos[i]]), lo = hexv(s[pos[i] + 1]);
        if (hi < 0 || lo < 0) return false;
        u[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

bool pc_plib_uuid_parse(const char *s, size_t n, pc_plib_uuid_info_t *out)
{
    unsigned char u[16];
    memset(out, 0, sizeof(*out));
    if (!parse_bytes(s, n, u)) return false;
    out->version = u[6] >> 4;
    if ((u[8] & 0xc0) == 0x80)
        out->variant = "RFC4122";
    else if ((u[8] & 0xe0) == 0xc0)
        out->variant = "Microsoft";
    else if ((u[8] & 0xe0) == 0xe0)
        out->variant = "Future";
    else
        out->variant = "Reserved";
    if (out->version == 1 || out->version == 2) {
        int64_t t = (int64_t)((uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3]);
        t |= (int64_t)((uint32_t)u[4] << 8 | u[5]) << 32;
        t |= (int64_t)(((uint32_t)u[6] << 8 | u[7]) & 0xfff) << 48;
        int64_t since = t - 122192928000000000LL; /* 100 ns ticks since 1970 */
        /* Go's int64 arithmetic wraps for far-future timestamps; do the same */
        uint64_t ns = (uint64_t)(since / 10000000) * 1000000000ULL + (uint64_t)((since % 10000000) * 100);
        out->time_ns = (int64_t)ns;
        out->has_time = true;
        snprintf(out->nodeid, sizeof(out->nodeid), "%02x-%02x-%02x-%02x-%02x-%02x", u[10], u[11],
                 u[12], u[13], u[14], u[15]);
        unsigned char b = u[10];
        out->macvariables = (b & 3) == 3 ? "local:multicast"
                            : (b & 1) ? "global:multicast"
                            : (b & 2) ? "local:unicast"
                                      : "global:unicast";
        out->clock_sequence = ((u[8] << 8) | u[9]) & 0x3fff;
        if (out->version == 2) {
            out->has_domain = true;
            out->id = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
            static const char *names[] = {"Person", "Group", "Org"};
            if (u[9] < 3)
                snprintf(out->domain, sizeof(out->domain), "%s", names[u[9]]);
            else
                snprintf(out->domain, sizeof(out->domain), "Domain%d", u[9]);
        }
    }
    return true;
}

void pc_plib_uuid_v4_format(const unsigned char bytes[16], char buf[37])
{
    unsigned char b[16];
    memcpy(b, bytes, 16);
    b[8] = (unsigned char)((b[8] & ~0xc0) | 0x80);
    b[6] = (unsigned char)((b[6] & ~0xf0) | 0x40);
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}
