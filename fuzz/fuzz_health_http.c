/*
 * The health server's request reader and router on arbitrary bytes, fed in
 * arbitrary splits (the first byte picks the chunk size), so that pipelining
 * and resumption paths are exercised as well as the parser glue.
 */
#include "health/http.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    pc__health_reader_t r;
    pc__health_reader_init(&r);
    pc_health_view_t view = {.ready = size % 2 == 0, .reason = "listeners not bound",
                             .revision = size, .instance = "fuzz"};
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t used = 0;
        pc__health_req_t req;
        pc__health_read_t rc = pc__health_read(&r, (const char *)data + off, n, &used, &req);
        if (used > n) __builtin_trap();
        off += used;
        if (rc == PC__HEALTH_REQUEST) {
            if (strnlen(req.path, sizeof req.path) >= sizeof req.path) __builtin_trap();
            /* /metrics renders the registry: keep it but it is cheap when empty. */
            size_t len = 0;
            char *resp = pc__health_respond(&req, &view, !req.keep_alive, &len);
            if (!resp || len < 12 || memcmp(resp, "HTTP/1.1 ", 9) != 0) __builtin_trap();
            free(resp);
            if (!req.keep_alive) break;
            continue;
        }
        if (rc != PC__HEALTH_NEED_MORE) {
            size_t len = 0;
            free(pc__health_error_response(rc == PC__HEALTH_TOO_LARGE ? 431 : 400, &len));
            break;
        }
        if (used == 0) break;
    }
    return 0;
}
