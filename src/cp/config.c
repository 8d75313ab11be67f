/*
 * The control plane's own YAML file and the YAML -> JSON conversion that
 * `portcullis ctl apply` and the API's YAML bodies use. Both walk the
 * connector's YAML tree (core/yaml_tree.h) so that errors look the same.
 */
#include "cp/cp.h"
#include "core/yaml_tree.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pc_cp_config_free(pc_cp_config_t *cfg)
{
    if (!cfg) return;
    free(cfg->listen);
    free(cfg->db);
    pc__free_secret(cfg->admin_token);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->console_dir);
    free(cfg->log_level);
    memset(cfg, 0, sizeof *cfg);
}

static bool file_readable(pc__yctx_t *c, const pc__ynode_t *map, const char *key,
                          const char *path)
{
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return true;
    }
    size_t prev = pc__ypath_push_key(&c->path, key);
    pc__yfail(c, pc__ymap_line(map, key), "cannot read %s", path);
    pc__ypath_pop(&c->path, prev);
    return false;
}

static bool load_root(pc__yctx_t *c, const pc__ynode_t *root, pc_cp_config_t *out)
{
    static const char *const keys[] = {"listen", "db", "admin_token", "tls", "console_dir",
                                       "log_level", NULL};
    static const char *const tls_keys[] = {"cert", "key", NULL};
    if (!pc__ymap_check(c, root, keys) || !pc__yget_str(c, root, "listen", &out->listen) ||
        !pc__yget_str(c, root, "db", &out->db) ||
        !pc__yget_str(c, root, "admin_token", &out->admin_token) ||
        !pc__yget_str(c, root, "console_dir", &out->console_dir) ||
        !pc__yget_str(c, root, "log_level", &out->log_level))
        return false;
    const pc__ynode_t *tls = pc__ymap_get(root, "tls");
    if (tls) {
        size_t prev = pc__ypath_push_key(&c->path, "tls");
        if (!pc__ymap_check(c, tls, tls_keys) || !pc__yget_str(c, tls, "cert", &out->tls_cert) ||
            !pc__yget_str(c, tls, "key", &out->tls_key))
            return false;
        if (!out->tls_cert != !out->tls_key)
            return pc__yfail(c, tls->line, "cert and key go together");
        if (out->tls_cert &&
            (!file_readable(c, tls, "cert", out->tls_cert) ||
             !file_readable(c, tls, "key", out->tls_key)))
            return false;
        pc__ypath_pop(&c->path, prev);
    }
    return true;
}

bool pc_cp_config_load_yaml(const char *yaml, size_t len, const char *origin,
                            pc_cp_config_t *out, char *err, size_t errlen)
{
    pc__yctx_t c = {.origin = origin, .err = err, .errlen = errlen, .expand_env = true};
    pc__ydoc_t doc;
    memset(out, 0, sizeof *out);
    if (errlen) err[0] = '\0';
    if (!pc__yaml_parse(yaml, len, origin, &doc, err, errlen)) return false;
    bool ok = true;
    if (doc.n_roots > 1)
        ok = pc__yfail(&c, doc.roots[1]->line, "expected one YAML document, found %zu",
                       doc.n_roots);
    else if (doc.n_roots == 1 && !pc__yaml_is_null(doc.roots[0]))
        ok = load_root(&c, doc.roots[0], out);
    pc__yaml_free(&doc);
    if (ok && (!out->admin_token || !out->admin_token[0]))
        ok = pc__yfail(&c, 1, "admin_token: required (use ${VAR} to take it from the environment)");
    if (ok && strlen(out->admin_token) < 16)
        ok = pc__yfail(&c, 1, "admin_token: too short (at least 16 characters)");
    if (!ok) {
        pc_cp_config_free(out);
        return false;
    }
    if (!out->listen) out->listen = pc_xstrdup("127.0.0.1:8443");
    if (!out->db) out->db = pc_xstrdup("./portcullis.db");
    return true;
}

bool pc_cp_config_load(const char *path, pc_cp_config_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t n;
    char *buf = pc__read_file(path, 1u << 20, &n, err, errlen);
    if (!buf) return false;
    bool ok = pc_cp_config_load_yaml(buf, n, path, out, err, errlen);
    explicit_bzero(buf, n);
    free(buf);
    return ok;
}

/* ---------- YAML -> JSON ---------- */

static json_t *plain_scalar(const char *s)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return json_false();
    const char *d = s + (*s == '-' || *s == '+');
    if (*d >= '0' && *d <= '9' && strspn(d, "0123456789") == strlen(d)) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!*end && errno == 0) return json_integer(v);
    }
    if (*s && strpbrk(s, ".eE") && strspn(s, "+-0123456789.eE") == strlen(s)) {
        char *end;
        double dv = strtod(s, &end);
        if (!*end && isfinite(dv)) return json_real(dv);
    }
    return NULL;
}

static json_t *convert(pc__yctx_t *c, const pc__ynode_t *n, unsigned depth)
{
    if (depth > PC__YAML_MAX_DEPTH) {
        pc__yfail(c, n->line, "nested too deeply");
        return NULL;
    }
    switch (n->kind) {
    case PC__Y_SCALAR: {
        if (pc__yaml_is_null(n)) return json_null();
        char *s = pc__yscalar(c, n);
        if (!s) return NULL;
        json_t *v = n->plain ? plain_scalar(s) : NULL;
        if (!v) v = json_stringn(s, strlen(s));
        if (!v) pc__yfail(c, n->line, "value is not valid UTF-8");
        pc__free_secret(s);
        return v;
    }
    case PC__Y_SEQ: {
        json_t *a = json_array();
        for (size_t i = 0; i < n->n_items; i++) {
            json_t *v = convert(c, n->items[i], depth + 1);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    case PC__Y_MAP: {
        json_t *o = json_object();
        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
            const pc__ynode_t *k = n->items[i];
            if (k->kind != PC__Y_SCALAR || !k->str) {
                pc__yfail(c, k->line, "mapping keys must be strings");
                json_decref(o);
                return NULL;
            }
            json_t *v = convert(c, n->items[i + 1], depth + 1);
            if (!v || json_object_set_new(o, k->str, v) != 0) {
                if (v) pc__yfail(c, k->line, "invalid key");
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    }
    return NULL;
}

json_t *pc_cp_yaml_to_json(const char *text, size_t len, const char *origin, bool expand_env,
                           char *err, size_t errlen)
{
    pc__yctx_t c = {.origin = origin, .err = err, .errlen = errlen, .expand_env = expand_env};
    pc__ydoc_t doc;
    if (errlen) err[0] = '\0';
    if (!pc__yaml_parse(text, len, origin, &doc, err, errlen)) return NULL;
    json_t *out = NULL;
    if (doc.n_roots > 1)
        pc__yfail(&c, doc.roots[1]->line, "expected one YAML document, found %zu", doc.n_roots);
    else if (doc.n_roots == 0)
        out = json_null();
    else
        out = convert(&c, doc.roots[0], 0);
    pc__yaml_free(&doc);
    return out;
}

/* ---------- time ---------- */

bool pc_cp_parse_rfc3339(const char *s, int64_t *out_us)
{
    int Y, M, D, h, m, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 ||
        n != 19)
        return false;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return false;
    const char *p = s + n;
    int64_t frac_us = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 6) frac_us = frac_us * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (!digits) return false;
        for (; digits < 6; digits++) frac_us *= 10;
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5) return false;
        offset_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p) return false;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h,
                    .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    *out_us = ((int64_t)t - offset_s) * 1000000 + frac_us;
    return true;
}

void pc_cp_format_rfc3339(int64_t us, char *out, size_t cap)
{
    time_t t = (time_t)(us / 1000000);
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        t--;
    }
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%06lldZ", base, (long long)frac);
}
