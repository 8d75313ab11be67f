/*
 * The control plane's watch stream as the connector reads it from the
 * network: bytes split at arbitrary points (the first byte picks the chunk
 * size) go through the NDJSON splitter, every line through the message
 * decoder, and every snapshot through the re-encoding and the same YAML
 * loader the connector applies it with.
 */
#include "core/config.h"
#include "cpclient/cpclient_int.h"

#include <string.h>

#define FUZZ_MAX_LINE 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t chunk = (size_t)data[0] % 97 + 1;
    data++;
    size--;
    pc__ndjson_t p;
    pc__ndjson_init(&p, FUZZ_MAX_LINE);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t done = 0;
        bool failed = false;
        while (done < n) {
            size_t used = 0, ll = 0;
            const char *line = NULL;
            pc__ndjson_res_t r =
                pc__ndjson_feed(&p, (const char *)data + off + done, n - done, &used, &line, &ll);
            if (used > n - done) __builtin_trap();
            done += used;
            if (r == PC__NDJSON_ERROR) {
                failed = true;
                break;
            }
            if (r == PC__NDJSON_NEED_MORE) {
                if (done != n) __builtin_trap();
                break;
            }
            if (ll == 0 || ll > FUZZ_MAX_LINE || memchr(line, '\n', ll)) __builtin_trap();
            pc__cpmsg_t m;
            char err[160];
            if (!pc__cpmsg_decode(line, ll, &m, err, sizeof err)) {
                if (!err[0] || m.snapshot_text) __builtin_trap();
                continue;
            }
            if (m.type == PC__CPMSG_SNAPSHOT) {
                if (!m.snapshot_text || strlen(m.snapshot_text) != m.snapshot_len) __builtin_trap();
                char lerr[1024];
                pc_snapshot_t *s = pc_snapshot_load_yaml(m.snapshot_text, m.snapshot_len, "fuzz",
                                                         m.revision, lerr, sizeof lerr);
                if (s && s->revision != m.revision) __builtin_trap();
                pc_snapshot_unref(s);
            }
            pc__cpmsg_free(&m);
        }
        if (failed) break;
        off += n;
    }
    pc__ndjson_free(&p);
    return 0;
}
