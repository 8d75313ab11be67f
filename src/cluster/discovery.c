/*
 * Orchestrator-API discovery: the rate limit and last-good-answer cache
 * shared by the kubernetes and ecs modes, and their one HTTP client.
 */
#include "cluster/discovery.h"

#include "cluster/etcd.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pc__discovery {
    const pc_config_t *cfg;
    pc__k8s_t *k8s;
    pc__ecs_t *ecs;
    pc__peers_t last; /* last good answer */
    bool have_last;
    bool failing; /* the warning of this failure streak is out */
    int64_t next_call_ms;
};

bool pc__peers_add(pc__peers_t *p, const char *a)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->addr[i], a)) return true;
    if (p->n >= PC__PEERS_MAX || strlen(a) >= sizeof p->addr[0]) return false;
    snprintf(p->addr[p->n++], sizeof p->addr[0], "%s", a);
    return true;
}

json_t *pc__disc_load(const char *body, size_t len, const char *array_key, const json_t **arr)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    *arr = json_object_get(j, array_key);
    if (json_is_object(j) && (!*arr || json_is_array(*arr))) return j;
    json_decref(j);
    *arr = NULL;
    return NULL;
}

bool pc__peers_add_ip(pc__peers_t *p, const char *a)
{
    unsigned char bin[16];
    if (!a || (inet_pton(AF_INET, a, bin) != 1 && inet_pton(AF_INET6, a, bin) != 1)) return false;
    return pc__peers_add(p, a);
}

static const char *mode_name(const pc_config_t *cfg)
{
    return cfg->cluster.discovery_mode == PC_DISCOVERY_ECS ? "ecs" : "kubernetes";
}

pc__discovery_t *pc__discovery_new(const pc_config_t *cfg)
{
    pc_discovery_mode_t m = cfg->cluster.discovery_mode;
    if (m != PC_DISCOVERY_KUBERNETES && m != PC_DISCOVERY_ECS) return NULL;
    pc__discovery_t *d = pc_xcalloc(1, sizeof *d);
    d->cfg = cfg;
    if (m == PC_DISCOVERY_KUBERNETES)
        d->k8s = pc__k8s_new(cfg);
    else
        d->ecs = pc__ecs_new(cfg);
    return d;
}

void pc__discovery_free(pc__discovery_t *d)
{
    if (!d) return;
    pc__k8s_free(d->k8s);
    pc__ecs_free(d->ecs);
    free(d);
}

int64_t pc__discovery_settle_ms(const pc__discovery_t *d)
{
    return d ? 2 * (int64_t)d->cfg->cluster.discovery_interval_ms : 0;
}

bool pc__discovery_run(pc__discovery_t *d, pc__peers_t *out)
{
    int64_t now = (int64_t)(pc_now_mono_ns() / 1000000u);
    /* Failures are rate-limited too: an API in trouble gets one call per interval. */
    if (now >= d->next_call_ms) {
        pc__peers_t fresh = {.n = 0};
        char err[512] = "";
        bool ok = d->k8s ? pc__k8s_discover(d->k8s, &fresh, err, sizeof err)
                         : pc__ecs_discover(d->ecs, &fresh, err, sizeof err);
        d->next_call_ms = now + (int64_t)d->cfg->cluster.discovery_interval_ms;
        if (ok) {
            if (d->failing)
                pc_log_info("cluster discovery works again", PC_LSTR("component", "cluster"),
                            PC_LSTR("mode", mode_name(d->cfg)), PC_LUINT("peers", fresh.n));
            d->failing = false;
            d->last = fresh;
            d->have_last = true;
        } else if (!d->failing) {
            /* One line per failure streak: an API that stays down must not flood the log. */
            pc_log_warn(d->have_last ? "cluster discovery failed; keeping the previous peer list"
                                     : "cluster discovery failed; no peer list yet",
                        PC_LSTR("component", "cluster"), PC_LSTR("mode", mode_name(d->cfg)),
                        PC_LSTR("error", err), PC_LUINT("previous_peers", d->last.n));
            d->failing = true;
        }
    }
    if (!d->have_last) return false;
    for (size_t i = 0; i < d->last.n; i++)
        (void)pc__peers_add(out, d->last.addr[i]);
    return true;
}

/* ---- HTTP ------------------------------------------------------------------------------ */

bool pc__disc_http(pc__disc_http_t *h, char *err, size_t errlen)
{
    h->status = 0;
    h->resp = NULL;
    h->resp_len = 0;
    pc__etcd_membuf_t m = {0};
    struct curl_slist *hdrs = NULL;
    for (size_t i = 0; h->headers && h->headers[i]; i++)
        hdrs = curl_slist_append(hdrs, h->headers[i]);
    /* libcurl adds "Expect: 100-continue" to larger POSTs; the APIs do not need it. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    CURL *c = curl_easy_init();
    bool ok = false;
    if (!c || !hdrs) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, h->method);
    if (h->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, h->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, PC__DISCOVERY_CALL_MS);
    /*
     * The credentials and metadata endpoints are link-local and the API
     * servers are reached from inside the cluster or VPC: a proxy from the
     * environment would see the bearer token or the temporary credentials.
     */
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (h->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pc__etcd_body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
    h->resp = m.buf ? m.buf : pc_xstrdup("");
    h->resp_len = m.len;
    m.buf = NULL;
    ok = true;
out:
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    free(m.buf);
    return ok;
}
