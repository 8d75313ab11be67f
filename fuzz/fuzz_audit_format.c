/*
 * Arbitrary bytes as the string fields of an audit record. The input is split
 * at NUL bytes into user, query, key, policies, masked_columns, reason, error
 * and the instance name. Checked: the record is always produced, is one valid
 * JSON object (jansson, which also rejects invalid UTF-8), keeps the query
 * (or flags it as truncated) and never holds a raw control character.
 */
#include "audit/audit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void check(bool ok)
{
    if (!ok) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { NFIELDS = 8 };
    char *copy = malloc(size + 1);
    check(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *f[NFIELDS] = {0};
    size_t nf = 0;
    char *p = copy;
    while (nf < NFIELDS && p <= copy + size) {
        f[nf++] = p;
        p += strlen(p) + 1;
    }
    pc_audit_set_identity(f[7] ? f[7] : "fuzz", "0.1.0");
    pc_audit_rec_t r = {.kind = (pc_audit_kind_t)(size % 3),
                        .user = f[0],
                        .query = f[1],
                        .key = f[2],
                        .policies = f[3],
                        .masked_columns = f[4],
                        .reason = f[5],
                        .error = f[6],
                        .session_id = size,
                        .rows = (int64_t)size - 5,
                        .bytes = -1,
                        .status = 200,
                        .duration_us = size * 7};
    static char buf[PC_AUDIT_MAX_RECORD];
    size_t n = pc_audit_format(buf, sizeof buf, size, (uint64_t)size * 1000003u, &r);
    check(n > 0 && n < sizeof buf && buf[n] == '\0');
    for (size_t i = 0; i < n; i++)
        check((unsigned char)buf[i] >= 0x20);
    json_error_t e;
    json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &e);
    check(j != NULL && json_is_object(j));
    json_t *q = json_object_get(j, "query");
    if (f[1]) {
        check(json_is_string(q));
        bool cut = json_is_true(json_object_get(j, "query_truncated"));
        /* an untruncated query of valid, plain text comes back as it went in */
        if (!cut && strspn(f[1], "abcdefghijklmnopqrstuvwxyz0123456789 '\"\\*,()=") == strlen(f[1]))
            check(strcmp(json_string_value(q), f[1]) == 0);
    }
    check(json_is_array(json_object_get(j, "policies")) || r.kind != PC_AUDIT_REQUEST);
    json_decref(j);
    free(copy);
    return 0;
}
