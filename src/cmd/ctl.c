/*
 * `portcullis ctl`: the control plane's command-line client (design §1) over
 * libcurl. Files given to `apply` are the ones a config_dir holds: *.yaml
 * with lists under resources/listeners/users/policies, and *.rego modules
 * (an active policy named after the file); ${VAR} expands from the
 * environment as it does in a config_dir, so secrets need not be in files.
 */
#include "cmd/commands.h"
#include "core/yaml_tree.h"
#include "cp/cp.h"

#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_URL "http://127.0.0.1:8443"

typedef struct ctl {
    const char *url;
    const char *token;
    const char *cacert;
    bool json_out;
} ctl_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: portcullis ctl [--url URL] [--token TOKEN] [--cacert FILE] COMMAND ...\n"
            "\n"
            "Client of the control plane's admin API (docs/controlplane.md).\n"
            "  --url URL        control plane, default $PORTCULLIS_URL or " DEFAULT_URL "\n"
            "  --token TOKEN    admin token, default $PORTCULLIS_TOKEN\n"
            "  --cacert FILE    CA bundle to verify an https control plane\n"
            "\n"
            "commands:\n"
            "  apply -f DIR|FILE              upsert the objects in *.yaml and *.rego files\n"
            "                                 as one new revision\n"
            "  get KIND [NAME] [-o json]      KIND: resources, listeners, users, policies,\n"
            "                                 instances, connectors, revision\n"
            "  delete KIND NAME               delete a resource, listener, user or policy\n"
            "  connectors create NAME         register a connector; prints its token once\n"
            "  connectors delete NAME         revoke a connector's token\n"
            "  logs [--follow] [--user U] [--resource R] [--decision D] [--since RFC3339]\n"
            "       [--limit N] [-o json]     audit records, oldest first\n"
            "\n"
            "Exit codes: 0 ok, 1 request failed, 2 usage error.\n");
}

/* ---------- HTTP ---------- */

typedef struct buf {
    char *data;
    size_t len;
} buf_t;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    buf_t *b = ud;
    size_t add = size * n;
    if (b->len + add > (64u << 20)) return 0; /* no answer of ours is this big */
    b->data = pc_xrealloc(b->data, b->len + add + 1);
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/*
 * One request; returns the parsed JSON answer of a 2xx, else prints the
 * server's error message and returns NULL.
 */
static json_t *call(const ctl_t *c, const char *method, const char *path, const json_t *body)
{
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    char url[4096], auth[1024];
    snprintf(url, sizeof url, "%s%s", c->url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token ? c->token : "");
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    buf_t out = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->cacert) curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    if (text) curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_t *v = NULL;
    if (rc != CURLE_OK) {
        fprintf(stderr, "portcullis ctl: %s: %s\n", c->url, curl_easy_strerror(rc));
    } else {
        v = out.data ? json_loadb(out.data, out.len, 0, NULL) : NULL;
        if (status < 200 || status > 299) {
            const char *msg = json_string_value(json_object_get(json_object_get(v, "error"),
                                                                "message"));
            fprintf(stderr, "portcullis ctl: %s %s: HTTP %ld: %s\n", method, path, status,
                    msg ? msg : "unexpected answer");
            json_decref(v);
            v = NULL;
        } else if (!v) {
            fprintf(stderr, "portcullis ctl: %s %s: the answer is not JSON\n", method, path);
        }
    }
    if (text) explicit_bzero(text, strlen(text)); /* may hold secrets being applied */
    free(text);
    free(out.data);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return v;
}

/* ---------- apply ---------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcmp(s + n - m, suffix);
}

static bool add_file(json_t *doc, const char *path)
{
    char err[1024];
    size_t len;
    char *text = pc__read_file(path, 16u << 20, &len, err, sizeof err);
    if (!text) {
        fprintf(stderr, "portcullis ctl: %s\n", err);
        return false;
    }
    bool ok = false;
    if (ends_with(path, ".rego")) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        json_t *mod = json_stringn(text, len);
        if (!mod) {
            fprintf(stderr, "portcullis ctl: %s: not valid UTF-8\n", path);
        } else {
            json_t *p = json_pack("{s:s%,s:s,s:o}", "name", base, strlen(base) - 5, "status",
                                  "active", "module", mod);
            json_array_append_new(json_object_get(doc, "policies"), p);
            ok = true;
        }
    } else {
        json_t *v = pc_cp_yaml_to_json(text, len, path, true, err, sizeof err);
        if (!v) {
            fprintf(stderr, "portcullis ctl: %s\n", err);
        } else if (json_is_null(v)) {
            ok = true;
        } else if (!json_is_object(v)) {
            fprintf(stderr, "portcullis ctl: %s: expected a mapping of resources, listeners, "
                            "users, policies\n", path);
        } else {
            const char *key;
            json_t *list;
            ok = true;
            json_object_foreach(v, key, list) {
                json_t *into = json_object_get(doc, key);
                if (!into) {
                    fprintf(stderr, "portcullis ctl: %s: %s: unknown key (expected one of: "
                                    "resources, listeners, users, policies)\n", path, key);
                    ok = false;
                    break;
                }
                if (json_is_null(list)) continue;
                if (!json_is_array(list)) {
                    fprintf(stderr, "portcullis ctl: %s: %s: must be a list\n", path, key);
                    ok = false;
                    break;
                }
                json_array_extend(into, list);
            }
        }
        json_decref(v);
    }
    explicit_bzero(text, len);
    free(text);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_apply(const ctl_t *c, int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "portcullis ctl apply: unexpected argument '%s'\n", argv[i]);
            return PC_EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "portcullis ctl apply: -f DIR|FILE is required\n");
        return PC_EXIT_USAGE;
    }
    json_t *doc = json_pack("{s[]s[]s[]s[]}", "resources", "listeners", "users", "policies");
    bool ok = true;
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "portcullis ctl apply: %s: no such file or directory\n", path);
        ok = false;
    } else if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        char **names = NULL;
        size_t n = 0;
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.' || !(ends_with(e->d_name, ".yaml") ||
                                         ends_with(e->d_name, ".yml") ||
                                         ends_with(e->d_name, ".rego")))
                continue;
            names = pc_xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = pc_xstrdup(e->d_name);
        }
        if (d) closedir(d);
        if (n) qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            char file[4096];
            snprintf(file, sizeof file, "%s/%s", path, names[i]);
            if (ok) ok = add_file(doc, file);
            free(names[i]);
        }
        free(names);
    } else {
        ok = add_file(doc, path);
    }
    int rc = PC_EXIT_FAILURE;
    if (ok) {
        json_t *r = call(c, "POST", "/v1/apply", doc);
        if (r) {
            printf("applied: revision %lld\n",
                   (long long)json_integer_value(json_object_get(r, "revision")));
            rc = PC_EXIT_OK;
        }
        json_decref(r);
    }
    json_decref(doc);
    return rc;
}

/* ---------- get / delete / connectors ---------- */

static void print_value(const json_t *v)
{
    if (json_is_string(v)) {
        printf("%s", json_string_value(v));
    } else if (json_is_null(v) || !v) {
        printf("-");
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (i) printf(",");
            print_value(x);
        }
        if (!json_array_size(v)) printf("-");
    } else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%s", t ? t : "?");
        free(t);
    }
}

static void print_table(const json_t *items, const char *const *cols)
{
    for (size_t k = 0; cols[k]; k++) printf("%s%s", k ? "\t" : "", cols[k]);
    printf("\n");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        for (size_t k = 0; cols[k]; k++) {
            if (k) printf("\t");
            print_value(json_object_get(it, cols[k]));
        }
        printf("\n");
    }
}

static int cmd_get(const ctl_t *c, int argc, char **argv)
{
    static const char *const res_cols[] = {"name", "technology", "hostname", "port", "database",
                                           "endpoint", NULL};
    static const char *const lis_cols[] = {"name", "port", "resource", "tls", NULL};
    static const char *const usr_cols[] = {"username", "email", "type", "groups", NULL};
    static const char *const pol_cols[] = {"name", "status", NULL};
    static const char *const ins_cols[] = {"instance", "connector", "version", "address",
                                           "cluster_role", "status", "last_seen", NULL};
    static const char *const con_cols[] = {"name", "created", "last_seen", NULL};
    const char *kind = NULL, *name = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            if (strcmp(argv[++i], "json")) {
                fprintf(stderr, "portcullis ctl get: -o: only json is supported\n");
                return PC_EXIT_USAGE;
            }
        } else if (!kind) {
            kind = argv[i];
        } else if (!name) {
            name = argv[i];
        } else {
            fprintf(stderr, "portcullis ctl get: unexpected argument '%s'\n", argv[i]);
            return PC_EXIT_USAGE;
        }
    }
    const char *const *cols = !kind                           ? NULL
                              : !strcmp(kind, "resources")    ? res_cols
                              : !strcmp(kind, "listeners")    ? lis_cols
                              : !strcmp(kind, "users")        ? usr_cols
                              : !strcmp(kind, "policies")     ? pol_cols
                              : !strcmp(kind, "instances")    ? ins_cols
                              : !strcmp(kind, "connectors")   ? con_cols
                              : !strcmp(kind, "revision")     ? pol_cols
                                                              : NULL;
    if (!cols || (name && (cols == ins_cols || cols == con_cols || !strcmp(kind, "revision")))) {
        fprintf(stderr, "portcullis ctl get: KIND is one of resources, listeners, users, "
                        "policies, instances, connectors, revision\n");
        return PC_EXIT_USAGE;
    }
    char path[1024];
    snprintf(path, sizeof path, "/v1/%s%s%s", kind, name ? "/" : "", name ? name : "");
    json_t *r = call(c, "GET", path, NULL);
    if (!r) return PC_EXIT_FAILURE;
    if (c->json_out || name) {
        char *t = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", t);
        free(t);
    } else if (!strcmp(kind, "revision")) {
        printf("%lld\n", (long long)json_integer_value(json_object_get(r, "revision")));
    } else {
        print_table(json_object_get(r, "items"), cols);
    }
    json_decref(r);
    return PC_EXIT_OK;
}

static int cmd_delete(const ctl_t *c, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "portcullis ctl delete: KIND NAME expected\n");
        return PC_EXIT_USAGE;
    }
    char path[1024];
    snprintf(path, sizeof path, "/v1/%s/%s", argv[0], argv[1]);
    json_t *r = call(c, "DELETE", path, NULL);
    if (!r) return PC_EXIT_FAILURE;
    printf("deleted: revision %lld\n", (long long)json_integer_value(json_object_get(r, "revision")));
    json_decref(r);
    return PC_EXIT_OK;
}

static int cmd_connectors(const ctl_t *c, int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[0], "create")) {
        json_t *body = json_pack("{ss}", "name", argv[1]);
        json_t *r = call(c, "POST", "/v1/connectors", body);
        json_decref(body);
        if (!r) return PC_EXIT_FAILURE;
        if (c->json_out) {
            char *t = json_dumps(r, JSON_COMPACT);
            printf("%s\n", t);
            free(t);
        } else {
            /* The token alone on stdout so scripts can capture it; it is shown only now. */
            printf("%s\n", json_string_value(json_object_get(r, "token")));
            fprintf(stderr, "connector %s created; store its token now, it is not shown again\n",
                    argv[1]);
        }
        json_decref(r);
        return PC_EXIT_OK;
    }
    if (argc == 2 && !strcmp(argv[0], "delete")) {
        char path[1024];
        snprintf(path, sizeof path, "/v1/connectors/%s", argv[1]);
        json_t *r = call(c, "DELETE", path, NULL);
        json_decref(r);
        return r ? PC_EXIT_OK : PC_EXIT_FAILURE;
    }
    if (argc == 0 || (argc == 1 && !strcmp(argv[0], "list"))) {
        char *args[] = {"connectors"};
        return cmd_get(c, 1, args);
    }
    fprintf(stderr, "portcullis ctl connectors: create NAME | delete NAME | list\n");
    return PC_EXIT_USAGE;
}

/* ---------- logs ---------- */

static void append_param(char *q, size_t cap, const char *key, const char *value)
{
    CURL *h = curl_easy_init();
    char *enc = h ? curl_easy_escape(h, value, 0) : NULL;
    size_t n = strlen(q);
    snprintf(q + n, cap - n, "%s%s=%s", n ? "&" : "", key, enc ? enc : "");
    curl_free(enc);
    curl_easy_cleanup(h);
}

static void print_record(const ctl_t *c, const json_t *r)
{
    if (c->json_out) {
        char *t = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", t);
        free(t);
        return;
    }
    static const char *const cols[] = {"ts", "instance", "user", "resource", "decision", NULL};
    for (size_t k = 0; cols[k]; k++) {
        print_value(json_object_get(r, cols[k]));
        printf(" ");
    }
    const json_t *what = json_object_get(r, "query");
    if (!what) what = json_object_get(r, "operation");
    print_value(what);
    printf("\n");
}

static int cmd_logs(const ctl_t *c, int argc, char **argv)
{
    bool follow = false;
    char filters[2048] = "";
    const char *limit = "100";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--follow") || !strcmp(a, "-f")) {
            follow = true;
        } else if ((!strcmp(a, "--user") || !strcmp(a, "--resource") ||
                    !strcmp(a, "--decision") || !strcmp(a, "--since") || !strcmp(a, "--until")) &&
                   i + 1 < argc) {
            append_param(filters, sizeof filters, a + 2, argv[++i]);
        } else if (!strcmp(a, "--limit") && i + 1 < argc) {
            limit = argv[++i];
        } else if (!strcmp(a, "-o") && i + 1 < argc && !strcmp(argv[i + 1], "json")) {
            i++;
        } else {
            fprintf(stderr, "portcullis ctl logs: unexpected argument '%s'\n", a);
            return PC_EXIT_USAGE;
        }
    }
    char cursor[2048] = "";
    for (;;) {
        char path[4600];
        snprintf(path, sizeof path, "/v1/logs?limit=%s%s%s%s%s", limit, filters[0] ? "&" : "",
                 filters, cursor[0] ? "&after=" : "", cursor);
        json_t *r = call(c, "GET", path, NULL);
        if (!r) return PC_EXIT_FAILURE;
        size_t i;
        json_t *rec;
        json_array_foreach(json_object_get(r, "items"), i, rec) print_record(c, rec);
        fflush(stdout);
        const char *next = json_string_value(json_object_get(r, "next"));
        const char *last = json_string_value(json_object_get(r, "last"));
        if (last) snprintf(cursor, sizeof cursor, "%s", last);
        json_decref(r);
        if (next) continue; /* more pages right away */
        if (!follow) return PC_EXIT_OK;
        sleep(1);
    }
}

int pc_cmd_ctl(int argc, char **argv)
{
    if (pc_cmd_wants_help(argc, argv)) {
        usage(stdout);
        return PC_EXIT_OK;
    }
    ctl_t c = {.url = getenv("PORTCULLIS_URL"), .token = getenv("PORTCULLIS_TOKEN")};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--url") && i + 1 < argc) c.url = argv[++i];
        else if (!strcmp(a, "--token") && i + 1 < argc) c.token = argv[++i];
        else if (!strcmp(a, "--cacert") && i + 1 < argc) c.cacert = argv[++i];
        else if (!strncmp(a, "--url=", 6)) c.url = a + 6;
        else if (!strncmp(a, "--token=", 8)) c.token = a + 8;
        else break;
    }
    if (!c.url || !*c.url) c.url = DEFAULT_URL;
    for (int k = i; k + 1 < argc; k++)
        if (!strcmp(argv[k], "-o") && !strcmp(argv[k + 1], "json")) c.json_out = true;
    if (i >= argc) {
        usage(stderr);
        return PC_EXIT_USAGE;
    }
    if (!c.token || !*c.token) {
        fprintf(stderr, "portcullis ctl: no token (--token or PORTCULLIS_TOKEN)\n");
        return PC_EXIT_USAGE;
    }
    char url[2048];
    snprintf(url, sizeof url, "%s", c.url);
    while (*url && url[strlen(url) - 1] == '/') url[strlen(url) - 1] = '\0';
    c.url = url;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *verb = argv[i];
    int sub_argc = argc - i - 1;
    char **sub = argv + i + 1;
    int rc;
    if (!strcmp(verb, "apply")) rc = cmd_apply(&c, sub_argc, sub);
    else if (!strcmp(verb, "get")) rc = cmd_get(&c, sub_argc, sub);
    else if (!strcmp(verb, "delete")) rc = cmd_delete(&c, sub_argc, sub);
    else if (!strcmp(verb, "connectors")) rc = cmd_connectors(&c, sub_argc, sub);
    else if (!strcmp(verb, "logs")) rc = cmd_logs(&c, sub_argc, sub);
    else {
        fprintf(stderr, "portcullis ctl: unknown command '%s'\n\n", verb);
        usage(stderr);
        rc = PC_EXIT_USAGE;
    }
    curl_global_cleanup();
    return rc;
}
