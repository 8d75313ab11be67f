/* Rego values: arenas, constructors, term order, JSON text. */
#include "policy/value.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* ---- arena ------------------------------------------------------------ */

typedef struct arena_block {
    struct arena_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} arena_block;

struct pc_arena {
    arena_block *head;  /* current block */
    arena_block *first; /* kept across resets */
    size_t limit, total;
};

#define ARENA_FIRST_BLOCK (16u * 1024u)

static arena_block *block_new(size_t size)
{
    arena_block *b = pc_xmalloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

pc_arena *pc_arena_new(size_t limit_bytes)
{
    pc_arena *a = pc_xcalloc(1, sizeof(*a));
    a->first = a->head = block_new(ARENA_FIRST_BLOCK);
    a->limit = limit_bytes;
    return a;
}

static void free_chain(arena_block *b, arena_block *stop)
{
    while (b && b != stop) {
        arena_block *n = b->next;
        free(b);
        b = n;
    }
}

void pc_arena_free(pc_arena *a)
{
    if (!a) return;
    free_chain(a->head, NULL);
    free(a);
}

void pc_arena_reset(pc_arena *a)
{
    /* Blocks are chained newest first; the first block is at the tail. */
    free_chain(a->head, a->first);
    a->head = a->first;
    a->first->used = 0;
    a->first->next = NULL;
    a->total = 0;
}

void *pc_arena_alloc(pc_arena *a, size_t n)
{
    n = (n + 7u) & ~(size_t)7u;
    if (a->limit && a->total + n > a->limit) return NULL;
    arena_block *b = a->head;
    if (PC_UNLIKELY(b->used + n > b->size)) {
        size_t sz = b->size * 2;
        if (sz < n) sz = n;
        if (sz > 8u * 1024u * 1024u && n < 8u * 1024u * 1024u) sz = 8u * 1024u * 1024u;
        arena_block *nb = block_new(sz);
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    return p;
}

size_t pc_arena_used(const pc_arena *a) { return a->total; }

char *pc_arena_strndup(pc_arena *a, const char *s, size_t n)
{
    char *p = pc_arena_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---- constants -------------------------------------------------------- */

static const pc_value k_null = {.kind = PC_NULL};
static const pc_value k_true = {.kind = PC_BOOL, .u.b = true};
static const pc_value k_false = {.kind = PC_BOOL, .u.b = false};
static const pc_value k_estr = {.kind = PC_STRING, .u.s = ""};
static const pc_value k_earr = {.kind = PC_ARRAY};
static const pc_value k_eobj = {.kind = PC_OBJECT};
static const pc_value k_eset = {.kind = PC_SET};

const pc_value *pc_value_null(void) { return &k_null; }
const pc_value *pc_value_bool(bool b) { return b ? &k_true : &k_false; }
const pc_value *pc_value_empty_string(void) { return &k_estr; }
const pc_value *pc_value_empty_array(void) { return &k_earr; }
const pc_value *pc_value_empty_object(void) { return &k_eobj; }
const pc_value *pc_value_empty_set(void) { return &k_eset; }

static pc_value *vnew(pc_arena *a, pc_kind k)
{
    pc_value *v = pc_arena_alloc(a, sizeof(*v));
    if (!v) return NULL;
    memset(v, 0, sizeof(*v));
    v->kind = (uint8_t)k;
    return v;
}

const pc_value *pc_value_int(pc_arena *a, int64_t i)
{
    pc_value *v = vnew(a, PC_NUMBER);
    if (!v) return NULL;
    v->num = PC_NUM_INT;
    v->u.i = i;
    return v;
}

const pc_value *pc_value_float(pc_arena *a, double d)
{
    /* Integral doubles that fit int64 become ints so that 2.0 * 3 prints 6. */
    if (isfinite(d) && d == floor(d) && fabs(d) < 9.0e15) return pc_value_int(a, (int64_t)d);
    pc_value *v = vnew(a, PC_NUMBER);
    if (!v) return NULL;
    v->num = PC_NUM_FLOAT;
    v->u.f.d = d;
    return v;
}

static bool is_number_text(const char *s, size_t n, bool *integral)
{
    size_t i = 0;
    *integral = true;
    if (i < n && s[i] == '-') i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return false;
    if (s[i] == '0' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') return false;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i < n && s[i] == '.') {
        *integral = false;
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return false;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *integral = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return false;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    return i == n;
}

const pc_value *pc_value_number_text(pc_arena *a, const char *s, size_t n)
{
    bool integral;
    if (!is_number_text(s, n, &integral)) return NULL;
    char buf[64];
    char *tmp = n < sizeof(buf) ? buf : pc_arena_strndup(a, s, n);
    if (!tmp) return NULL;
    if (tmp == buf) {
        memcpy(buf, s, n);
        buf[n] = 0;
    }
    if (integral) {
        errno = 0;
        long long ll = strtoll(tmp, NULL, 10);
        if (errno == 0) return pc_value_int(a, ll);
    }
    double d = strtod(tmp, NULL);
    if (!integral && isfinite(d) && d == floor(d) && fabs(d) < 9.0e15) {
        /* 1.0, 1e3: integral values behave like ints but keep their text. */
    }
    pc_value *v = vnew(a, PC_NUMBER);
    if (!v) return NULL;
    v->num = PC_NUM_FLOAT;
    v->u.f.d = d;
    v->u.f.text = pc_arena_strndup(a, s, n);
    if (!v->u.f.text) return NULL;
    return v;
}

const pc_value *pc_value_string(pc_arena *a, const char *s, size_t n)
{
    if (n == 0) return &k_estr;
    pc_value *v = vnew(a, PC_STRING);
    if (!v) return NULL;
    char *p = pc_arena_strndup(a, s, n);
    if (!p) return NULL;
    v->u.s = p;
    v->len = (uint32_t)n;
    return v;
}

const pc_value *pc_value_cstring(pc_arena *a, const char *s) { return pc_value_string(a, s, strlen(s)); }

const pc_value *pc_value_cstring_borrow(pc_arena *a, const char *s)
{
    size_t n = strlen(s);
    if (n == 0) return &k_estr;
    pc_value *v = vnew(a, PC_STRING);
    if (!v) return NULL;
    v->u.s = s;
    v->len = (uint32_t)n;
    return v;
}

const pc_value *pc_value_array(pc_arena *a, const pc_value *const *items, size_t n)
{
    if (n == 0) return &k_earr;
    pc_value *v = vnew(a, PC_ARRAY);
    if (!v) return NULL;
    const pc_value **p = pc_arena_alloc(a, n * sizeof(*p));
    if (!p) return NULL;
    memcpy(p, items, n * sizeof(*p));
    v->u.items = p;
    v->len = (uint32_t)n;
    return v;
}

static int cmp_vp(const void *x, const void *y)
{
    return pc_value_compare(*(const pc_value *const *)x, *(const pc_value *const *)y);
}

static bool sorted_unique(const pc_value *const *items, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (pc_value_compare(items[i - 1], items[i]) >= 0) return false;
    return true;
}

const pc_value *pc_value_set(pc_arena *a, const pc_value *const *items, size_t n)
{
    if (n == 0) return &k_eset;
    pc_value *v = vnew(a, PC_SET);
    if (!v) return NULL;
    const pc_value **p = pc_arena_alloc(a, n * sizeof(*p));
    if (!p) return NULL;
    memcpy(p, items, n * sizeof(*p));
    size_t m = n;
    if (!sorted_unique(p, n)) {
        if (n <= 16) {
            for (size_t i = 1; i < n; i++) {
                const pc_value *x = p[i];
                size_t j = i;
                while (j > 0 && pc_value_compare(p[j - 1], x) > 0) {
                    p[j] = p[j - 1];
                    j--;
                }
                p[j] = x;
            }
        } else {
            qsort(p, n, sizeof(*p), cmp_vp);
        }
        m = 1;
        for (size_t i = 1; i < n; i++)
            if (pc_value_compare(p[m - 1], p[i]) != 0) p[m++] = p[i];
    }
    v->u.items = p;
    v->len = (uint32_t)m;
    return v;
}

typedef struct {
    pc_kv kv;
    size_t idx;
} kv_sort;

static int cmp_kvs(const void *x, const void *y)
{
    const kv_sort *a = x, *b = y;
    int c = pc_value_compare(a->kv.key, b->kv.key);
    if (c) return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

const pc_value *pc_value_object(pc_arena *a, const pc_kv *kvs, size_t n)
{
    if (n == 0) return &k_eobj;
    pc_value *v = vnew(a, PC_OBJECT);
    if (!v) return NULL;
    pc_kv *p = pc_arena_alloc(a, n * sizeof(*p));
    if (!p) return NULL;
    bool sorted = true;
    for (size_t i = 1; i < n && sorted; i++)
        if (pc_value_compare(kvs[i - 1].key, kvs[i].key) >= 0) sorted = false;
    size_t m = n;
    if (sorted) {
        memcpy(p, kvs, n * sizeof(*p));
    } else {
        kv_sort *tmp = pc_arena_alloc(a, n * sizeof(*tmp));
        if (!tmp) return NULL;
        for (size_t i = 0; i < n; i++) {
            tmp[i].kv = kvs[i];
            tmp[i].idx = i;
        }
        if (n <= 16) {
            /* small objects (most inputs): insertion sort, stable */
            for (size_t i = 1; i < n; i++) {
                kv_sort x = tmp[i];
                size_t j = i;
                while (j > 0 && pc_value_compare(tmp[j - 1].kv.key, x.kv.key) > 0) {
                    tmp[j] = tmp[j - 1];
                    j--;
                }
                tmp[j] = x;
            }
        } else {
            qsort(tmp, n, sizeof(*tmp), cmp_kvs);
        }
        m = 0;
        for (size_t i = 0; i < n; i++) {
            if (m && pc_value_compare(p[m - 1].key, tmp[i].kv.key) == 0)
                p[m - 1] = tmp[i].kv; /* last wins */
            else
                p[m++] = tmp[i].kv;
        }
    }
    v->u.kvs = p;
    v->len = (uint32_t)m;
    return v;
}

/* ---- builders --------------------------------------------------------- */

void pc_vbuf_init(pc_vbuf *b, pc_arena *a)
{
    b->arena = a;
    b->items = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

void pc_vbuf_push(pc_vbuf *b, const pc_value *v)
{
    if (!v) {
        b->oom = true;
        return;
    }
    if (b->len == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 8;
        const pc_value **p = pc_arena_alloc(b->arena, nc * sizeof(*p));
        if (!p) {
            b->oom = true;
            return;
        }
        if (b->len) memcpy(p, b->items, b->len * sizeof(*p));
        b->items = p;
        b->cap = nc;
    }
    b->items[b->len++] = v;
}

const pc_value *pc_vbuf_array(pc_vbuf *b)
{
    if (b->oom) return NULL;
    return pc_value_array(b->arena, b->items, b->len);
}

const pc_value *pc_vbuf_set(pc_vbuf *b)
{
    if (b->oom) return NULL;
    return pc_value_set(b->arena, b->items, b->len);
}

void pc_obuf_init(pc_obuf *b, pc_arena *a)
{
    b->arena = a;
    b->kvs = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

void pc_obuf_init_cap(pc_obuf *b, pc_arena *a, size_t n)
{
    pc_obuf_init(b, a);
    if (n == 0) return;
    b->kvs = pc_arena_alloc(a, n * sizeof(*b->kvs));
    if (b->kvs)
        b->cap = n;
    else
        b->oom = true;
}

void pc_obuf_put(pc_obuf *b, const pc_value *key, const pc_value *val)
{
    if (!key || !val) {
        b->oom = true;
        return;
    }
    if (b->len == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 8;
        pc_kv *p = pc_arena_alloc(b->arena, nc * sizeof(*p));
        if (!p) {
            b->oom = true;
            return;
        }
        if (b->len) memcpy(p, b->kvs, b->len * sizeof(*p));
        b->kvs = p;
        b->cap = nc;
    }
    b->kvs[b->len].key = key;
    b->kvs[b->len].val = val;
    b->len++;
}

void pc_obuf_put_str(pc_obuf *b, const char *key, const pc_value *val)
{
    pc_obuf_put(b, pc_value_cstring(b->arena, key), val);
}

const pc_value *pc_obuf_object(pc_obuf *b)
{
    if (b->oom) return NULL;
    return pc_value_object(b->arena, b->kvs, b->len);
}

const pc_value *pc_obuf_object_sorted(pc_obuf *b)
{
    if (b->oom) return NULL;
    if (b->len == 0) return &k_eobj;
#ifndef NDEBUG
    for (size_t i = 1; i < b->len; i++)
        if (pc_value_compare(b->kvs[i - 1].key, b->kvs[i].key) >= 0) return NULL;
#endif
    pc_value *v = vnew(b->arena, PC_OBJECT);
    if (!v) return NULL;
    v->u.kvs = b->kvs;
    v->len = (uint32_t)b->len;
    return v;
}

const pc_value *pc_value_merge(pc_arena *a, const pc_value *x, const pc_value *y)
{
    if (!x || !y) return y;
    if (x->kind != PC_OBJECT || y->kind != PC_OBJECT) return y;
    pc_obuf b;
    pc_obuf_init(&b, a);
    for (uint32_t i = 0; i < x->len; i++) {
        const pc_value *yv = pc_value_object_get(y, x->u.kvs[i].key);
        pc_obuf_put(&b, x->u.kvs[i].key, yv ? pc_value_merge(a, x->u.kvs[i].val, yv) : x->u.kvs[i].val);
    }
    for (uint32_t i = 0; i < y->len; i++)
        if (!pc_value_object_get(x, y->u.kvs[i].key)) pc_obuf_put(&b, y->u.kvs[i].key, y->u.kvs[i].val);
    return pc_obuf_object(&b);
}

/* ---- access ----------------------------------------------------------- */

const char *pc_value_type_name(const pc_value *v)
{
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object", "set"};
    return names[v->kind];
}

bool pc_value_get_int(const pc_value *v, int64_t *out)
{
    if (v->kind != PC_NUMBER) return false;
    if (v->num == PC_NUM_INT) {
        *out = v->u.i;
        return true;
    }
    double d = v->u.f.d;
    if (isfinite(d) && d == floor(d) && fabs(d) < 9.2e18) {
        *out = (int64_t)d;
        return true;
    }
    return false;
}

double pc_value_get_double(const pc_value *v)
{
    if (v->kind != PC_NUMBER) return NAN;
    return v->num == PC_NUM_INT ? (double)v->u.i : v->u.f.d;
}

bool pc_value_is_integral(const pc_value *v)
{
    if (v->kind != PC_NUMBER) return false;
    if (v->num == PC_NUM_INT) return true;
    return isfinite(v->u.f.d) && v->u.f.d == floor(v->u.f.d);
}

/* Exact order of two integers written in decimal (beyond int64). */
static bool bigint_cmp(const char *x, const char *y, int *out)
{
    if (strpbrk(x, ".eE") || strpbrk(y, ".eE")) return false;
    bool nx = *x == '-', ny = *y == '-';
    if (nx) x++;
    if (ny) y++;
    while (*x == '0' && x[1]) x++;
    while (*y == '0' && y[1]) y++;
    if (nx != ny) {
        *out = nx ? -1 : 1;
        return true;
    }
    size_t lx = strlen(x), ly = strlen(y);
    int c = lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
    c = c < 0 ? -1 : c > 0;
    *out = nx ? -c : c;
    return true;
}

static int num_cmp(const pc_value *a, const pc_value *b)
{
    if (a->num == PC_NUM_INT && b->num == PC_NUM_INT) return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    if (a->num == PC_NUM_FLOAT && b->num == PC_NUM_FLOAT && a->u.f.text && b->u.f.text) {
        if (strcmp(a->u.f.text, b->u.f.text) == 0) return 0;
        int c;
        if (bigint_cmp(a->u.f.text, b->u.f.text, &c)) return c;
    }
    if (a->num == PC_NUM_INT && b->num == PC_NUM_FLOAT) {
        double d = b->u.f.d;
        if (d >= 9.2e18) return -1;
        if (d <= -9.2e18) return 1;
        double ad = (double)a->u.i;
        if (ad != d) return ad < d ? -1 : 1;
        int64_t bi = (int64_t)d;
        if (a->u.i != bi) return a->u.i < bi ? -1 : 1;
        double frac = d - (double)bi;
        return frac > 0 ? -1 : frac < 0 ? 1 : 0;
    }
    if (a->num == PC_NUM_FLOAT && b->num == PC_NUM_INT) return -num_cmp(b, a);
    double x = a->u.f.d, y = b->u.f.d;
    return (x > y) - (x < y);
}

static int str_cmp(const pc_value *a, const pc_value *b)
{
    if (a->u.s == b->u.s && a->len == b->len) return 0;
    /* most keys differ in their first byte: skip the libc call */
    if (a->len && b->len && a->u.s[0] != b->u.s[0])
        return (unsigned char)a->u.s[0] < (unsigned char)b->u.s[0] ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->u.s, b->u.s, n);
    if (c) return c < 0 ? -1 : 1;
    return (a->len > b->len) - (a->len < b->len);
}

int pc_value_compare(const pc_value *a, const pc_value *b)
{
    if (a == b) return 0;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    switch (a->kind) {
    case PC_NULL: return 0;
    case PC_BOOL: return (int)a->u.b - (int)b->u.b;
    case PC_NUMBER: return num_cmp(a, b);
    case PC_STRING: return str_cmp(a, b);
    case PC_ARRAY:
    case PC_SET: {
        size_t n = a->len < b->len ? a->len : b->len;
        for (size_t i = 0; i < n; i++) {
            int c = pc_value_compare(a->u.items[i], b->u.items[i]);
            if (c) return c;
        }
        return (a->len > b->len) - (a->len < b->len);
    }
    case PC_OBJECT: {
        size_t n = a->len < b->len ? a->len : b->len;
        for (size_t i = 0; i < n; i++) {
            int c = pc_value_compare(a->u.kvs[i].key, b->u.kvs[i].key);
            if (c) return c;
            c = pc_value_compare(a->u.kvs[i].val, b->u.kvs[i].val);
            if (c) return c;
        }
        return (a->len > b->len) - (a->len < b->len);
    }
    }
    return 0;
}

bool pc_value_equal(const pc_value *a, const pc_value *b)
{
    if (a == b) return true;
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case PC_STRING:
        return a->len == b->len && (a->u.s == b->u.s || a->len == 0 ||
                                    (a->u.s[0] == b->u.s[0] && memcmp(a->u.s, b->u.s, a->len) == 0));
    case PC_BOOL: return a->u.b == b->u.b;
    case PC_NUMBER:
        if (a->num == PC_NUM_INT && b->num == PC_NUM_INT) return a->u.i == b->u.i;
        return num_cmp(a, b) == 0;
    case PC_ARRAY:
    case PC_SET:
        if (a->len != b->len) return false;
        for (size_t i = 0; i < a->len; i++)
            if (!pc_value_equal(a->u.items[i], b->u.items[i])) return false;
        return true;
    case PC_OBJECT:
        if (a->len != b->len) return false;
        for (size_t i = 0; i < a->len; i++)
            if (!pc_value_equal(a->u.kvs[i].key, b->u.kvs[i].key) ||
                !pc_value_equal(a->u.kvs[i].val, b->u.kvs[i].val))
                return false;
        return true;
    default: return true;
    }
}

uint64_t pc_value_hash(const pc_value *v)
{
    uint64_t h = 1469598103934665603ull ^ v->kind;
    switch (v->kind) {
    case PC_BOOL: h ^= v->u.b; break;
    case PC_NUMBER: {
        double d = pc_value_get_double(v);
        if (d == 0) d = 0;
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        h ^= bits;
        break;
    }
    case PC_STRING:
        for (size_t i = 0; i < v->len; i++) h = (h ^ (unsigned char)v->u.s[i]) * 1099511628211ull;
        break;
    case PC_ARRAY:
    case PC_SET:
        for (size_t i = 0; i < v->len; i++) h = (h ^ pc_value_hash(v->u.items[i])) * 1099511628211ull;
        break;
    case PC_OBJECT:
        for (size_t i = 0; i < v->len; i++) {
            h = (h ^ pc_value_hash(v->u.kvs[i].key)) * 1099511628211ull;
            h = (h ^ pc_value_hash(v->u.kvs[i].val)) * 1099511628211ull;
        }
        break;
    default: break;
    }
    return h * 1099511628211ull;
}

static inline int str_cmp_raw(const char *a, size_t al, const char *b, size_t bl)
{
    if (al && bl && a[0] != b[0]) return (unsigned char)a[0] < (unsigned char)b[0] ? -1 : 1;
    size_t n = al < bl ? al : bl;
    int c = memcmp(a, b, n);
    if (c) return c;
    return (al > bl) - (al < bl);
}

const pc_value *pc_value_object_get(const pc_value *obj, const pc_value *key)
{
    if (obj->kind != PC_OBJECT) return NULL;
    if (key->kind == PC_STRING) {
        /* string keys sort after null/bool/number keys: plain string compare */
        const pc_kv *kv = obj->u.kvs;
        size_t lo = 0, hi = obj->len;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            const pc_value *k = kv[mid].key;
            int c;
            if (k->kind != PC_STRING)
                c = k->kind < PC_STRING ? -1 : 1;
            else if (k->u.s == key->u.s && k->len == key->len)
                return kv[mid].val;
            else
                c = str_cmp_raw(k->u.s, k->len, key->u.s, key->len);
            if (c == 0) return kv[mid].val;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return NULL;
    }
    size_t lo = 0, hi = obj->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = pc_value_compare(obj->u.kvs[mid].key, key);
        if (c == 0) return obj->u.kvs[mid].val;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const pc_value *pc_value_object_get_str(const pc_value *obj, const char *key, size_t n)
{
    pc_value k = {.kind = PC_STRING, .len = (uint32_t)n, .u.s = key};
    return pc_value_object_get(obj, &k);
}

bool pc_value_set_contains(const pc_value *set, const pc_value *v)
{
    if (set->kind != PC_SET) return false;
    size_t lo = 0, hi = set->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = pc_value_compare(set->u.items[mid], v);
        if (c == 0) return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* ---- text ------------------------------------------------------------- */

void pc_str_append(pc_str *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        while (nc < s->len + n + 1) nc *= 2;
        s->p = pc_xrealloc(s->p, nc);
        s->cap = nc;
    }
    if (n) memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = 0;
}

void pc_str_appendf(pc_str *s, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(buf)) {
        pc_str_append(s, buf, (size_t)n);
        return;
    }
    char *big = pc_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    pc_str_append(s, big, (size_t)n);
    free(big);
}

void pc_str_free(pc_str *s)
{
    free(s->p);
    s->p = NULL;
    s->len = s->cap = 0;
}

void pc_value_number_to_str(pc_str *out, const pc_value *v)
{
    if (v->num == PC_NUM_INT) {
        pc_str_appendf(out, "%lld", (long long)v->u.i);
        return;
    }
    if (v->u.f.text) {
        pc_str_append(out, v->u.f.text, strlen(v->u.f.text));
        return;
    }
    double d = v->u.f.d;
    if (!isfinite(d)) {
        pc_str_append(out, "null", 4);
        return;
    }
    if (d == floor(d) && fabs(d) < 1e21) {
        pc_str_appendf(out, "%.0f", d);
        return;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    pc_str_append(out, buf, strlen(buf));
}

static void json_string(pc_str *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    pc_str_append(out, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char ubuf[7];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            ubuf[0] = '\\';
            ubuf[1] = 'u';
            ubuf[2] = '0';
            ubuf[3] = '0';
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
            ubuf[6] = 0;
            esc = ubuf;
        }
        if (esc) {
            pc_str_append(out, s + start, i - start);
            pc_str_append(out, esc, strlen(esc));
            start = i + 1;
        }
    }
    pc_str_append(out, s + start, n - start);
    pc_str_append(out, "\"", 1);
}

void pc_value_to_json(pc_str *out, const pc_value *v)
{
    switch (v->kind) {
    case PC_NULL: pc_str_append(out, "null", 4); break;
    case PC_BOOL: v->u.b ? pc_str_append(out, "true", 4) : pc_str_append(out, "false", 5); break;
    case PC_NUMBER: pc_value_number_to_str(out, v); break;
    case PC_STRING: json_string(out, v->u.s, v->len); break;
    case PC_ARRAY:
    case PC_SET:
        pc_str_append(out, "[", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) pc_str_append(out, ",", 1);
            pc_value_to_json(out, v->u.items[i]);
        }
        pc_str_append(out, "]", 1);
        break;
    case PC_OBJECT:
        pc_str_append(out, "{", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) pc_str_append(out, ",", 1);
            const pc_value *k = v->u.kvs[i].key;
            if (k->kind == PC_STRING) {
                json_string(out, k->u.s, k->len);
            } else {
                pc_str tmp = {0};
                pc_value_to_json(&tmp, k);
                json_string(out, tmp.p, tmp.len);
                pc_str_free(&tmp);
            }
            pc_str_append(out, ":", 1);
            pc_value_to_json(out, v->u.kvs[i].val);
        }
        pc_str_append(out, "}", 1);
        break;
    }
}

void pc_value_to_rego(pc_str *out, const pc_value *v)
{
    switch (v->kind) {
    case PC_ARRAY:
        pc_str_append(out, "[", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) pc_str_append(out, ", ", 2);
            pc_value_to_rego(out, v->u.items[i]);
        }
        pc_str_append(out, "]", 1);
        break;
    case PC_SET:
        if (v->len == 0) {
            pc_str_append(out, "set()", 5);
            break;
        }
        pc_str_append(out, "{", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) pc_str_append(out, ", ", 2);
            pc_value_to_rego(out, v->u.items[i]);
        }
        pc_str_append(out, "}", 1);
        break;
    case PC_OBJECT:
        pc_str_append(out, "{", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) pc_str_append(out, ", ", 2);
            pc_value_to_rego(out, v->u.kvs[i].key);
            pc_str_append(out, ": ", 2);
            pc_value_to_rego(out, v->u.kvs[i].val);
        }
        pc_str_append(out, "}", 1);
        break;
    default: pc_value_to_json(out, v); break;
    }
}

/* ---- JSON reader ------------------------------------------------------ */

typedef struct {
    pc_arena *a;
    const char *s;
    size_t n, i;
    int depth;
    const char *err;
} jrd;

static void jws(jrd *r)
{
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' ||
                           r->s[r->i] == '\r'))
        r->i++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t pc__utf8_encode(char *out, uint32_t cp);
size_t pc__utf8_encode(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes a JSON/Rego double-quoted string body starting after the quote.
 * Shared with the Rego lexer. Returns the arena copy, or NULL (with *err). */
char *pc__unquote(pc_arena *a, const char *s, size_t n, size_t *pos, size_t *outlen,
                  const char **err);
char *pc__unquote(pc_arena *a, const char *s, size_t n, size_t *pos, size_t *outlen,
                  const char **err)
{
    size_t i = *pos, start = i;
    bool plain = true;
    while (i < n && s[i] != '"') {
        if (s[i] == '\\') {
            plain = false;
            i++;
        } else if ((unsigned char)s[i] < 0x20) {
            *err = "invalid control character in string";
            return NULL;
        }
        i++;
    }
    if (i >= n) {
        *err = "unterminated string";
        return NULL;
    }
    if (plain) {
        *pos = i + 1;
        *outlen = i - start;
        char *p = pc_arena_strndup(a, s + start, i - start);
        if (!p) *err = "out of memory";
        return p;
    }
    char *out = pc_arena_alloc(a, i - start + 1);
    if (!out) {
        *err = "out of memory";
        return NULL;
    }
    size_t o = 0;
    for (size_t j = start; j < i; j++) {
        if (s[j] != '\\') {
            out[o++] = s[j];
            continue;
        }
        j++;
        switch (s[j]) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            uint32_t cp = 0;
            if (j + 4 >= i + 1 || j + 4 > n) goto bad;
            for (int k = 1; k <= 4; k++) {
                int h = hexval(s[j + k]);
                if (h < 0) goto bad;
                cp = cp * 16 + (uint32_t)h;
            }
            j += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && j + 6 < i && s[j + 1] == '\\' && s[j + 2] == 'u') {
                uint32_t lo = 0;
                bool ok = true;
                for (int k = 3; k <= 6; k++) {
                    int h = hexval(s[j + k]);
                    if (h < 0) ok = false;
                    lo = lo * 16 + (uint32_t)(h < 0 ? 0 : h);
                }
                if (ok && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    j += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
            o += pc__utf8_encode(out + o, cp);
            break;
        }
        default: goto bad;
        }
    }
    out[o] = 0;
    *pos = i + 1;
    *outlen = o;
    return out;
bad:
    *err = "invalid escape in string";
    return NULL;
}

static const pc_value *jvalue(jrd *r);

static const pc_value *jstring(jrd *r)
{
    r->i++; /* opening quote */
    size_t len;
    char *p = pc__unquote(r->a, r->s, r->n, &r->i, &len, &r->err);
    if (!p) return NULL;
    if (len == 0) return &k_estr;
    pc_value *v = vnew(r->a, PC_STRING);
    if (!v) return NULL;
    v->u.s = p;
    v->len = (uint32_t)len;
    return v;
}

static const pc_value *jvalue(jrd *r)
{
    jws(r);
    if (r->i >= r->n) {
        r->err = "unexpected end of JSON input";
        return NULL;
    }
    if (++r->depth > 2000) {
        r->err = "JSON nested too deeply";
        return NULL;
    }
    const pc_value *res = NULL;
    char c = r->s[r->i];
    if (c == '{') {
        r->i++;
        pc_obuf ob;
        pc_obuf_init(&ob, r->a);
        jws(r);
        if (r->i < r->n && r->s[r->i] == '}') {
            r->i++;
            res = &k_eobj;
            goto out;
        }
        for (;;) {
            jws(r);
            if (r->i >= r->n || r->s[r->i] != '"') {
                r->err = "expected string key";
                return NULL;
            }
            const pc_value *k = jstring(r);
            if (!k) return NULL;
            jws(r);
            if (r->i >= r->n || r->s[r->i] != ':') {
                r->err = "expected ':'";
                return NULL;
            }
            r->i++;
            const pc_value *v = jvalue(r);
            if (!v) return NULL;
            pc_obuf_put(&ob, k, v);
            jws(r);
            if (r->i < r->n && r->s[r->i] == ',') {
                r->i++;
                continue;
            }
            if (r->i < r->n && r->s[r->i] == '}') {
                r->i++;
                break;
            }
            r->err = "expected ',' or '}'";
            return NULL;
        }
        res = pc_obuf_object(&ob);
    } else if (c == '[') {
        r->i++;
        pc_vbuf vb;
        pc_vbuf_init(&vb, r->a);
        jws(r);
        if (r->i < r->n && r->s[r->i] == ']') {
            r->i++;
            res = &k_earr;
            goto out;
        }
        for (;;) {
            const pc_value *v = jvalue(r);
            if (!v) return NULL;
            pc_vbuf_push(&vb, v);
            jws(r);
            if (r->i < r->n && r->s[r->i] == ',') {
                r->i++;
                continue;
            }
            if (r->i < r->n && r->s[r->i] == ']') {
                r->i++;
                break;
            }
            r->err = "expected ',' or ']'";
            return NULL;
        }
        res = pc_vbuf_array(&vb);
    } else if (c == '"') {
        res = jstring(r);
    } else if (c == 't' && r->n - r->i >= 4 && memcmp(r->s + r->i, "true", 4) == 0) {
        r->i += 4;
        res = &k_true;
    } else if (c == 'f' && r->n - r->i >= 5 && memcmp(r->s + r->i, "false", 5) == 0) {
        r->i += 5;
        res = &k_false;
    } else if (c == 'n' && r->n - r->i >= 4 && memcmp(r->s + r->i, "null", 4) == 0) {
        r->i += 4;
        res = &k_null;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        size_t st = r->i;
        while (r->i < r->n && (strchr("0123456789+-.eE", r->s[r->i]) && r->s[r->i])) r->i++;
        res = pc_value_number_text(r->a, r->s + st, r->i - st);
        if (!res) r->err = "invalid number";
    } else {
        r->err = "invalid character";
    }
out:
    r->depth--;
    if (!res && !r->err) r->err = "out of memory";
    return res;
}

const pc_value *pc_json_parse(pc_arena *a, const char *s, size_t n, char *errbuf, size_t errlen)
{
    jrd r = {.a = a, .s = s, .n = n};
    const pc_value *v = jvalue(&r);
    if (v) {
        jws(&r);
        if (r.i != r.n) {
            v = NULL;
            r.err = "trailing data after JSON value";
        }
    }
    if (!v && errbuf && errlen) snprintf(errbuf, errlen, "%s at offset %zu", r.err, r.i);
    return v;
}
