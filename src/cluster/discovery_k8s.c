/*
 * `kubernetes` discovery: the peers are the addresses of a Service's
 * Endpoints, or the pods of a label selector, read from the API server with
 * the pod's service-account token.
 *
 * Pods that are not ready count as peers: a connector's pod turns ready only
 * once it serves, and it must be discoverable before that to form or join
 * the etcd cluster. A pod being deleted does not count.
 */
#include "cluster/discovery.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define TOKEN_MAX (64u * 1024u)

struct pc__k8s {
    const pc_config_t *cfg;
    char *api_url;   /* without a trailing '/'; NULL when unknown */
    char *namespace; /* from the config or the service account, once read */
    char sa_dir[512];
};

/* ---- parsers ------------------------------------------------------------------------- */

static void add_ips(const json_t *addrs, pc__peers_t *out)
{
    size_t i;
    const json_t *a;
    json_array_foreach(addrs, i, a)
    {
        (void)pc__peers_add_ip(out, json_string_value(json_object_get(a, "ip")));
    }
}

bool pc__k8s_parse_endpoints(const char *body, size_t len, bool include_not_ready, pc__peers_t *out)
{
    const json_t *subsets; /* absent for a Service without endpoints */
    json_t *j = pc__disc_load(body, len, "subsets", &subsets);
    size_t i;
    const json_t *s;
    json_array_foreach(subsets, i, s)
    {
        add_ips(json_object_get(s, "addresses"), out);
        if (include_not_ready) add_ips(json_object_get(s, "notReadyAddresses"), out);
    }
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

bool pc__k8s_parse_pods(const char *body, size_t len, pc__peers_t *out)
{
    const json_t *items;
    json_t *j = pc__disc_load(body, len, "items", &items);
    size_t i;
    const json_t *p;
    json_array_foreach(items, i, p)
    {
        const json_t *meta = json_object_get(p, "metadata"), *st = json_object_get(p, "status");
        const json_t *deleting = json_object_get(meta, "deletionTimestamp");
        const char *phase = json_string_value(json_object_get(st, "phase"));
        if ((deleting && !json_is_null(deleting)) || !phase ||
            (strcmp(phase, "Running") && strcmp(phase, "Pending")))
            continue;
        (void)pc__peers_add_ip(out, json_string_value(json_object_get(st, "podIP")));
    }
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

/* ---- the API call ------------------------------------------------------------------------ */

pc__k8s_t *pc__k8s_new(const pc_config_t *cfg)
{
    pc__k8s_t *k = pc_xcalloc(1, sizeof *k);
    k->cfg = cfg;
    snprintf(k->sa_dir, sizeof k->sa_dir, "%s",
             cfg->cluster.k8s_sa_dir ? cfg->cluster.k8s_sa_dir : DEFAULT_SA_DIR);
    if (cfg->cluster.k8s_namespace) k->namespace = pc_xstrdup(cfg->cluster.k8s_namespace);
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    char url[512];
    if (cfg->cluster.k8s_api_url) {
        snprintf(url, sizeof url, "%s", cfg->cluster.k8s_api_url);
        k->api_url = pc_xstrdup(url);
    } else if (host && *host) {
        snprintf(url, sizeof url, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
                 port && *port ? port : "443");
        k->api_url = pc_xstrdup(url);
    }
    size_t n = k->api_url ? strlen(k->api_url) : 0;
    while (n && k->api_url[n - 1] == '/')
        k->api_url[--n] = '\0';
    return k;
}

void pc__k8s_free(pc__k8s_t *k)
{
    if (!k) return;
    free(k->api_url);
    free(k->namespace);
    free(k);
}

/* A small file of the service account, trailing whitespace cut; NULL if unreadable. */
static char *read_sa_file(const pc__k8s_t *k, const char *name)
{
    char path[640];
    snprintf(path, sizeof path, "%s/%s", k->sa_dir, name);
    FILE *f = fopen(path, "re");
    if (!f) return NULL;
    char *buf = pc_xmalloc(TOKEN_MAX + 1);
    size_t n = fread(buf, 1, TOKEN_MAX, f);
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (!n || memchr(buf, '\n', n)) { /* a header value must be one line */
        free(buf);
        return NULL;
    }
    return buf;
}

/* Names go into the URL path: DNS-label characters only. */
static bool k8s_name_ok(const char *s)
{
    if (!*s || strlen(s) > 253) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
            return false;
    return true;
}

/* The "message" of a Kubernetes Status object, cut short, for the warning. */
static void status_message(const char *body, size_t len, char *out, size_t cap)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(out, cap, "%.200s", m ? m : "");
    json_decref(j);
}

bool pc__k8s_discover(pc__k8s_t *k, pc__peers_t *out, char *err, size_t errlen)
{
    const pc_config_t *cfg = k->cfg;
    char *token = NULL, *selector = NULL, url[1400], auth_hdr[TOKEN_MAX + 32];
    pc__disc_http_t h = {.method = "GET", .url = url};
    bool ok = false;
    if (!k->api_url) {
        snprintf(err, errlen,
                 "no API server: set cluster.discovery.api_url or "
                 "KUBERNETES_SERVICE_HOST");
        return false;
    }
    if (!k->namespace && !(k->namespace = read_sa_file(k, "namespace"))) {
        snprintf(err, errlen, "cannot read %s/namespace; set cluster.discovery.namespace",
                 k->sa_dir);
        return false;
    }
    if (!k8s_name_ok(k->namespace) ||
        (cfg->cluster.k8s_service && !k8s_name_ok(cfg->cluster.k8s_service))) {
        snprintf(err, errlen, "invalid namespace or service name");
        return false;
    }
    /* Re-read on every call: the kubelet rotates projected tokens. */
    token = read_sa_file(k, "token");
    if (!token) {
        snprintf(err, errlen, "cannot read the service account token in %s", k->sa_dir);
        return false;
    }
    if (cfg->cluster.k8s_service) {
        snprintf(url, sizeof url, "%s/api/v1/namespaces/%s/endpoints/%s", k->api_url, k->namespace,
                 cfg->cluster.k8s_service);
    } else {
        selector = curl_easy_escape(NULL, cfg->cluster.k8s_label_selector, 0);
        if (!selector) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        snprintf(url, sizeof url, "%s/api/v1/namespaces/%s/pods?labelSelector=%s", k->api_url,
                 k->namespace, selector);
    }
    /* Never send the token in clear text (an http:// api_url is a local proxy). */
    bool tls = !strncmp(k->api_url, "https://", 8);
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", token);
    const char *hdrs[] = {"Accept: application/json", tls ? auth_hdr : NULL, NULL};
    h.headers = hdrs;
    char ca[640];
    struct stat st;
    snprintf(ca, sizeof ca, "%s/ca.crt", k->sa_dir);
    if (tls && stat(ca, &st) == 0) h.ca_file = ca;
    char terr[256];
    if (!pc__disc_http(&h, terr, sizeof terr)) {
        snprintf(err, errlen, "%s: %s", k->api_url, terr);
        goto out;
    }
    if (h.status != 200) {
        char msg[256];
        status_message(h.resp, h.resp_len, msg, sizeof msg);
        snprintf(err, errlen, "kubernetes API answered %ld for %s %s: %s", h.status,
                 cfg->cluster.k8s_service ? "endpoints" : "pods",
                 cfg->cluster.k8s_service ? cfg->cluster.k8s_service : "by label selector", msg);
        goto out;
    }
    ok = cfg->cluster.k8s_service ? pc__k8s_parse_endpoints(h.resp, h.resp_len, true, out)
                                  : pc__k8s_parse_pods(h.resp, h.resp_len, out);
    if (!ok) snprintf(err, errlen, "kubernetes API answer is not the expected JSON");
out:
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    memset(auth_hdr, 0, sizeof auth_hdr);
    curl_free(selector);
    free(h.resp);
    return ok;
}
