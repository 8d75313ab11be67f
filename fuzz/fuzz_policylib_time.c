/* Fuzz the Go time layout parser/formatter and ParseDuration.
 * Input: layout NUL value (missing NUL: the whole input is both). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/lib/gotime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    const char *layout = s, *value = s;
    size_t ln = size, vn = size;
    if (nul) {
        ln = (size_t)(nul - s);
        value = nul + 1;
        vn = size - ln - 1;
    }
    char err[512];
    int64_t ns = 0, d;
    (void)pc_plib_time_parse_ns(layout, ln, value, vn, &ns, err, sizeof(err));
    (void)pc_plib_duration_parse(value, vn, &d, err, sizeof(err));
    size_t ol;
    static const char *zones[] = {"", "America/New_York", "Asia/Kolkata"};
    const pc_plib_tz_t *tz = pc_plib_tz_load(zones[size % 3], strlen(zones[size % 3]), err, sizeof(err));
    if (tz && ln < 4096) {
        char *f = pc_plib_time_format(ns, tz, layout, ln, &ol);
        free(f);
        int64_t r;
        (void)pc_plib_time_add_date(ns, tz, (int64_t)(size % 7) - 3, (int64_t)(size % 25) - 12,
                                    (int64_t)(size % 63) - 31, &r, err, sizeof(err));
    }
    return 0;
}
