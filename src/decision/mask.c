/* Masking functions and combining rules; see decision.h. */
#include "core/crypto.h"
#include "decision/decision.h"

#include <stdio.h>
#include <string.h>

static int strength(pc_mask_type_t t)
{
    switch (t) {
    case PC_MASK_NONE:
        return 0;
    case PC_MASK_HASH_NO_SALT:
        return 1;
    case PC_MASK_REDACT_PARTIAL:
    case PC_MASK_REDACT_FULL:
        /* design: redact.* are one level; full hides more, so it wins a tie */
        return t == PC_MASK_REDACT_FULL ? 3 : 2;
    case PC_MASK_HASH_WITH_SALT:
    case PC_MASK_NULLIFY:
        return 4;
    }
    return 4;
}

int pc_decision_mask_cmp(pc_mask_type_t a, pc_mask_type_t b)
{
    int d = strength(a) - strength(b);
    if (d) return d;
    /* nullify = hash.with_salt: keep nullify, the one that reveals nothing */
    if (a == PC_MASK_NULLIFY && b == PC_MASK_HASH_WITH_SALT) return 1;
    if (b == PC_MASK_NULLIFY && a == PC_MASK_HASH_WITH_SALT) return -1;
    return 0;
}

pc_mask_type_t pc_decision_mask_parse(const char *s, size_t n)
{
    static const struct {
        const char *name;
        pc_mask_type_t t;
    } names[] = {
        {"nullify", PC_MASK_NULLIFY},
        {"redact.full", PC_MASK_REDACT_FULL},
        {"redact.partial", PC_MASK_REDACT_PARTIAL},
        {"hash.with_salt", PC_MASK_HASH_WITH_SALT},
        {"hash.no_salt", PC_MASK_HASH_NO_SALT},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(names); i++)
        if (strlen(names[i].name) == n && memcmp(names[i].name, s, n) == 0) return names[i].t;
    return PC_MASK_NONE;
}

bool pc_decision_pg_text_type(uint32_t oid)
{
    switch (oid) {
    case 18:   /* char */
    case 19:   /* name */
    case 25:   /* text */
    case 705:  /* unknown (untyped literals) */
    case 1042: /* bpchar */
    case 1043: /* varchar */
        return true;
    default:
        return false;
    }
}

static void hex(const uint8_t *d, size_t n, uint8_t *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (uint8_t)digits[d[i] >> 4];
        out[2 * i + 1] = (uint8_t)digits[d[i] & 15];
    }
}

int32_t pc_decision_mask_value(pc_mask_type_t t, uint32_t type_oid, const uint8_t *v, int32_t vlen,
                               const uint8_t salt[32], uint8_t *out, size_t cap)
{
    if (t == PC_MASK_NONE) {
        if (vlen < 0) return -1;
        if ((size_t)vlen > cap) return -1;
        memcpy(out, v, (size_t)vlen);
        return vlen;
    }
    if (vlen < 0 || t == PC_MASK_NULLIFY || !pc_decision_pg_text_type(type_oid)) return -1;
    uint8_t d[PC_SHA256_LEN];
    switch (t) {
    case PC_MASK_REDACT_FULL:
        if (cap < 4) return -1;
        memcpy(out, "****", 4);
        return 4;
    case PC_MASK_REDACT_PARTIAL: {
        size_t chars = 0;
        for (int32_t i = 0; i < vlen; i++)
            if ((v[i] & 0xC0) != 0x80) chars++;
        size_t hide = chars > 4 ? chars - 4 : 0, seen = 0, o = 0;
        for (int32_t i = 0; i < vlen; i++) {
            bool lead = (v[i] & 0xC0) != 0x80;
            if (lead) seen++;
            if (seen <= hide) {
                if (lead) {
                    if (o >= cap) return -1;
                    out[o++] = '*';
                }
            } else {
                if (o >= cap) return -1;
                out[o++] = v[i];
            }
        }
        return (int32_t)o;
    }
    case PC_MASK_HASH_NO_SALT:
        if (cap < 64) return -1;
        pc_sha256(v, (size_t)vlen, d);
        hex(d, sizeof d, out);
        return 64;
    case PC_MASK_HASH_WITH_SALT:
        if (cap < 64) return -1;
        pc_hmac_sha256(salt, 32, v, (size_t)vlen, d);
        hex(d, sizeof d, out);
        return 64;
    default:
        return -1;
    }
}

void pc_decision_resource_salt(const pc_resource_t *r, uint8_t out[32])
{
    uint8_t key[PC_SHA256_LEN];
    /* The key is a digest of the resource's secrets, never the secrets themselves. */
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s\x1f%s\x1f%s\x1f%s",
                     r && r->credentials.password ? r->credentials.password : "",
                     r && r->credentials.secret_access_key ? r->credentials.secret_access_key : "",
                     r && r->credentials.token ? r->credentials.token : "",
                     r && r->credentials.username ? r->credentials.username : "");
    pc_sha256(buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, key);
    memset(buf, 0, sizeof buf);
    const char *name = r && r->name ? r->name : "";
    char label[300];
    int m = snprintf(label, sizeof label, "portcullis mask salt\x1f%s", name);
    pc_hmac_sha256(key, sizeof key, label,
                   m < 0                      ? 0
                   : (size_t)m < sizeof label ? (size_t)m
                                              : sizeof label - 1,
                   out);
}

static void json_list_add(char *list, size_t cap, const char *name)
{
    /* list is "" or a JSON array text; names are config names (no quotes
     * or backslashes are expected, but escape them anyway). */
    size_t len = strlen(list);
    char item[200];
    size_t o = 0;
    item[o++] = '"';
    for (const char *p = name; *p && o < sizeof item - 3; p++) {
        if (*p == '"' || *p == '\\') item[o++] = '\\';
        if ((unsigned char)*p < 0x20) continue;
        item[o++] = *p;
    }
    item[o++] = '"';
    item[o] = '\0';
    if (len && strstr(list, item)) return;
    /* "[" item "]" or list-without-"]" "," item "]", plus the NUL */
    size_t need = len ? len + o + 2 : o + 3;
    if (need > cap) return; /* full: the list is truncated, stays valid JSON */
    if (!len) {
        list[0] = '[';
        memcpy(list + 1, item, o);
        list[o + 1] = ']';
        list[o + 2] = '\0';
        return;
    }
    list[len - 1] = ',';
    memcpy(list + len, item, o);
    list[len + o] = ']';
    list[len + o + 1] = '\0';
}

void pc__decision_list_add(char *list, size_t cap, const char *name);
void pc__decision_list_add(char *list, size_t cap, const char *name)
{
    json_list_add(list, cap, name);
}

static void merge_lists(char *dst, size_t cap, const char *src)
{
    /* src is a list built by json_list_add: walk its quoted names */
    const char *p = src;
    if (!*p) return;
    /* Into an empty list: src already is one (valid, no duplicates), as is. */
    if (!*dst) {
        size_t n = strlen(src);
        if (n < cap) {
            memcpy(dst, src, n + 1);
            return;
        }
    }
    while ((p = strchr(p, '"'))) {
        const char *q = p + 1;
        char name[200];
        size_t o = 0;
        while (*q && *q != '"') {
            if (*q == '\\' && q[1]) q++;
            if (o < sizeof name - 1) name[o++] = *q;
            q++;
        }
        name[o] = '\0';
        json_list_add(dst, cap, name);
        if (!*q) break;
        p = q + 1;
    }
}

void pc_decision_combine(pc_decision_t *acc, const pc_decision_t *one)
{
    merge_lists(acc->policies, sizeof acc->policies, one->policies);
    if (acc->action == PC_DECISION_BLOCK) return;
    if (one->action == PC_DECISION_BLOCK) {
        acc->action = PC_DECISION_BLOCK;
        acc->block_type = one->block_type;
        memcpy(acc->reason, one->reason, sizeof acc->reason);
        memcpy(acc->message, one->message, sizeof acc->message);
        return;
    }
    for (size_t i = 0; i < one->n_masked; i++) {
        size_t j = 0;
        while (j < acc->n_masked && acc->masked[j].column != one->masked[i].column)
            j++;
        if (j == acc->n_masked) {
            if (acc->n_masked == PC_DECISION_MAX_MASKED) {
                /* more masked columns than a decision holds: withhold the
                 * result rather than let a column through unmasked */
                acc->action = PC_DECISION_BLOCK;
                acc->block_type = PC_BLOCK_FORMAL_MESSAGE;
                snprintf(acc->reason, sizeof acc->reason, "too many masked columns");
                return;
            }
            acc->masked[j] = one->masked[i];
            acc->n_masked++;
        } else if (pc_decision_mask_cmp(one->masked[i].type, acc->masked[j].type) > 0) {
            acc->masked[j].type = one->masked[i].type;
        }
    }
    merge_lists(acc->masked_columns, sizeof acc->masked_columns, one->masked_columns);
    if (one->limit >= 0 && (acc->limit < 0 || one->limit < acc->limit)) acc->limit = one->limit;
    if (acc->n_masked)
        acc->action = PC_DECISION_MASK;
    else if (acc->limit >= 0)
        acc->action = PC_DECISION_FILTER;
}
