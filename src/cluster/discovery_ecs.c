/*
 * `ecs` discovery: the peers are the private IPs of the running tasks of
 * this task's ECS service (ListTasks + DescribeTasks, AWS JSON 1.1 protocol,
 * SigV4 with the task role's temporary credentials from the container
 * credentials endpoint).
 *
 * Cluster and service come from the configuration or else from the task
 * metadata endpoint v4 (Cluster, ServiceName; older agents give no
 * ServiceName, so then the own task's DescribeTasks "group" "service:NAME").
 */
#include "cluster/discovery.h"

#include "policy/lib/sigv4.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CREDS_HOST "http://169.254.170.2"
#define REFRESH_BEFORE_S 300 /* SDKs refresh temporary credentials 5-15 min before expiry */
#define DESCRIBE_BATCH 100   /* DescribeTasks takes at most 100 tasks */
#define MAX_PAGES 20         /* ListTasks pages of 100: far above any etcd cluster */
#define TARGET_PREFIX "AmazonEC2ContainerServiceV20141113."

struct pc__ecs {
    const pc_config_t *cfg;
    char *cluster, *service, *task_arn, *region, *endpoint;
    bool metadata_read;
    pc__aws_creds_t creds;
};

/* ---- parsers --------------------------------------------------------------------------- */

static char *dup_str(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && *s ? pc_xstrdup(s) : NULL;
}

bool pc__ecs_parse_list_tasks(const char *body, size_t len, char ***arns, size_t *n,
                              char **next_token)
{
    *arns = NULL;
    *n = 0;
    *next_token = NULL;
    const json_t *list;
    json_t *j = pc__disc_load(body, len, "taskArns", &list);
    bool ok = j != NULL;
    if (ok) {
        *arns = pc_xcalloc(json_array_size(list) + 1, sizeof **arns);
        size_t i;
        const json_t *a;
        json_array_foreach(list, i, a)
        {
            char *s = dup_str(a);
            if (s) (*arns)[(*n)++] = s;
        }
        *next_token = dup_str(json_object_get(j, "nextToken"));
    }
    json_decref(j);
    return ok;
}

static const char *task_ip(const json_t *task)
{
    size_t i, k;
    const json_t *att, *d, *c, *ni;
    json_array_foreach(json_object_get(task, "attachments"), i, att)
    {
        json_array_foreach(json_object_get(att, "details"), k, d)
        {
            const char *name = json_string_value(json_object_get(d, "name"));
            if (name && !strcmp(name, "privateIPv4Address"))
                return json_string_value(json_object_get(d, "value"));
        }
    }
    json_array_foreach(json_object_get(task, "containers"), i, c)
    {
        json_array_foreach(json_object_get(c, "networkInterfaces"), k, ni)
        {
            const char *ip = json_string_value(json_object_get(ni, "privateIpv4Address"));
            if (ip) return ip;
        }
    }
    return NULL;
}

bool pc__ecs_parse_describe_tasks(const char *body, size_t len, pc__peers_t *out,
                                  const char *own_task_arn, char **own_service)
{
    const json_t *tasks;
    json_t *j = pc__disc_load(body, len, "tasks", &tasks);
    size_t i;
    const json_t *t;
    json_array_foreach(tasks, i, t)
    {
        const char *arn = json_string_value(json_object_get(t, "taskArn"));
        const char *group = json_string_value(json_object_get(t, "group"));
        if (own_task_arn && own_service && !*own_service && arn && !strcmp(arn, own_task_arn) &&
            group && !strncmp(group, "service:", 8) && group[8])
            *own_service = pc_xstrdup(group + 8);
        const char *last = json_string_value(json_object_get(t, "lastStatus"));
        if (last && !strcmp(last, "STOPPED")) continue;
        (void)pc__peers_add_ip(out, task_ip(t));
    }
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

void pc__aws_creds_clear(pc__aws_creds_t *c)
{
    if (!c) return;
    if (c->secret_key) memset(c->secret_key, 0, strlen(c->secret_key));
    if (c->token) memset(c->token, 0, strlen(c->token));
    free(c->access_key);
    free(c->secret_key);
    free(c->token);
    memset(c, 0, sizeof *c);
}

/* "2016-02-25T06:03:31Z" (fractional seconds allowed); 0 when unparsable. */
static int64_t parse_iso8601(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest) return 0;
    if (*rest == '.')
        for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
        }
    if (strcmp(rest, "Z") && strcmp(rest, "+00:00")) return 0;
    return (int64_t)timegm(&tm);
}

bool pc__ecs_parse_credentials(const char *body, size_t len, pc__aws_creds_t *out)
{
    memset(out, 0, sizeof *out);
    json_t *j = json_loadb(body, len, 0, NULL);
    out->access_key = dup_str(json_object_get(j, "AccessKeyId"));
    out->secret_key = dup_str(json_object_get(j, "SecretAccessKey"));
    out->token = dup_str(json_object_get(j, "Token"));
    const char *exp = json_string_value(json_object_get(j, "Expiration"));
    out->expires_unix = exp ? parse_iso8601(exp) : 0;
    bool ok = out->access_key && out->secret_key && (!exp || out->expires_unix > 0);
    /* Keys and token go into header lines: one line each, printable. */
    const char *parts[] = {out->access_key, out->secret_key, out->token};
    for (size_t i = 0; ok && i < 3; i++)
        for (const char *p = parts[i]; p && *p; p++)
            if ((unsigned char)*p < 0x21 || *p == 0x7f) ok = false;
    json_decref(j);
    if (!ok) pc__aws_creds_clear(out);
    return ok;
}

bool pc__ecs_parse_task_metadata(const char *body, size_t len, char **cluster, char **task_arn,
                                 char **service)
{
    *cluster = *task_arn = *service = NULL;
    json_t *j = json_loadb(body, len, 0, NULL);
    bool ok = json_is_object(j);
    if (ok) {
        *cluster = dup_str(json_object_get(j, "Cluster"));
        *task_arn = dup_str(json_object_get(j, "TaskARN"));
        *service = dup_str(json_object_get(j, "ServiceName"));
        ok = *cluster != NULL;
    }
    json_decref(j);
    if (!ok) {
        free(*cluster);
        free(*task_arn);
        free(*service);
        *cluster = *task_arn = *service = NULL;
    }
    return ok;
}

/* ---- state -------------------------------------------------------------------------------- */

pc__ecs_t *pc__ecs_new(const pc_config_t *cfg)
{
    pc__ecs_t *e = pc_xcalloc(1, sizeof *e);
    e->cfg = cfg;
    if (cfg->cluster.ecs_cluster) e->cluster = pc_xstrdup(cfg->cluster.ecs_cluster);
    if (cfg->cluster.ecs_service) e->service = pc_xstrdup(cfg->cluster.ecs_service);
    const char *r = cfg->cluster.ecs_region;
    if (!r || !*r) r = getenv("AWS_REGION");
    if (!r || !*r) r = getenv("AWS_DEFAULT_REGION");
    if (r && *r) e->region = pc_xstrdup(r);
    if (cfg->cluster.ecs_endpoint) e->endpoint = pc_xstrdup(cfg->cluster.ecs_endpoint);
    return e;
}

void pc__ecs_free(pc__ecs_t *e)
{
    if (!e) return;
    free(e->cluster);
    free(e->service);
    free(e->task_arn);
    free(e->region);
    free(e->endpoint);
    pc__aws_creds_clear(&e->creds);
    free(e);
}

/* The region field of "arn:aws:ecs:REGION:ACCOUNT:...", malloc'd, or NULL. */
static char *region_of_arn(const char *arn)
{
    if (!arn || strncmp(arn, "arn:", 4)) return NULL;
    const char *p = arn;
    for (int i = 0; i < 3 && p; i++) {
        p = strchr(p, ':');
        if (p) p++;
    }
    const char *end = p ? strchr(p, ':') : NULL;
    return end && end > p ? pc_xstrndup(p, (size_t)(end - p)) : NULL;
}

static bool read_metadata(pc__ecs_t *e, char *err, size_t errlen)
{
    const char *base = getenv("ECS_CONTAINER_METADATA_URI_V4");
    if (!base || !*base) {
        snprintf(err, errlen,
                 "ECS_CONTAINER_METADATA_URI_V4 is not set; set "
                 "cluster.discovery.ecs_cluster and ecs_service");
        return false;
    }
    char url[1024], terr[256];
    snprintf(url, sizeof url, "%s/task", base);
    pc__disc_http_t h = {.method = "GET", .url = url};
    if (!pc__disc_http(&h, terr, sizeof terr)) {
        snprintf(err, errlen, "task metadata endpoint: %s", terr);
        return false;
    }
    char *cluster = NULL, *arn = NULL, *service = NULL;
    bool ok = h.status == 200 &&
              pc__ecs_parse_task_metadata(h.resp, h.resp_len, &cluster, &arn, &service);
    if (!ok)
        snprintf(err, errlen, "task metadata endpoint answered %ld without a Cluster", h.status);
    free(h.resp);
    if (!ok) return false;
    if (!e->cluster) e->cluster = cluster, cluster = NULL;
    if (!e->service) e->service = service, service = NULL;
    free(e->task_arn);
    e->task_arn = arn;
    free(cluster);
    free(service);
    e->metadata_read = true;
    return true;
}

/* Allowed hosts for an http:// AWS_CONTAINER_CREDENTIALS_FULL_URI, as the AWS SDKs allow. */
static bool creds_host_allowed(const char *url)
{
    if (!strncmp(url, "https://", 8)) return true;
    CURLU *u = curl_url();
    char *host = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK;
    if (ok) {
        const char *h = host;
        size_t n = strlen(h);
        char bare[64] = "";
        if (n > 2 && h[0] == '[' && h[n - 1] == ']' && n - 2 < sizeof bare)
            memcpy(bare, h + 1, n - 2);
        else
            snprintf(bare, sizeof bare, "%s", h);
        unsigned char a[16];
        ok = !strcmp(bare, "localhost") || !strcmp(bare, "169.254.170.2") ||
             !strcmp(bare, "169.254.170.23") || (inet_pton(AF_INET, bare, a) == 1 && a[0] == 127) ||
             (inet_pton(AF_INET6, bare, a) == 1 &&
              (!strcmp(bare, "::1") || !strcmp(bare, "fd00:ec2::23")));
    }
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* The authorization token for the full URI: the file wins over the variable. */
static char *creds_auth_token(void)
{
    const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (file && *file) {
        FILE *f = fopen(file, "re");
        if (!f) return NULL;
        char buf[8192];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        buf[n] = '\0';
        char *t = pc_xstrdup(buf);
        memset(buf, 0, sizeof buf);
        return t;
    }
    const char *t = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    return t && *t ? pc_xstrdup(t) : NULL;
}

static bool fetch_creds(pc__ecs_t *e, char *err, size_t errlen)
{
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[1024];
    char *auth = NULL;
    if (rel && *rel) {
        snprintf(url, sizeof url, "%s%s", CREDS_HOST, rel);
    } else if (full && *full) {
        if (!creds_host_allowed(full)) {
            snprintf(err, errlen,
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or a "
                     "loopback / container credentials address");
            return false;
        }
        snprintf(url, sizeof url, "%s", full);
        auth = creds_auth_token();
    } else {
        /* Outside ECS (e.g. tests, EC2 with exported keys): the environment's keys. */
        const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
        if (!ak || !*ak || !sk || !*sk) {
            snprintf(err, errlen,
                     "no AWS credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI "
                     "(task role) is not set");
            return false;
        }
        pc__aws_creds_clear(&e->creds);
        e->creds.access_key = pc_xstrdup(ak);
        e->creds.secret_key = pc_xstrdup(sk);
        const char *st = getenv("AWS_SESSION_TOKEN");
        e->creds.token = st && *st ? pc_xstrdup(st) : NULL;
        return true;
    }
    char hdr[8300];
    snprintf(hdr, sizeof hdr, "Authorization: %s", auth ? auth : "");
    const char *hdrs[] = {"Accept: application/json", auth ? hdr : NULL, NULL};
    pc__disc_http_t h = {.method = "GET", .url = url, .headers = hdrs};
    char terr[256];
    bool ok = pc__disc_http(&h, terr, sizeof terr);
    memset(hdr, 0, sizeof hdr);
    if (auth) memset(auth, 0, strlen(auth));
    free(auth);
    if (!ok) {
        snprintf(err, errlen, "container credentials endpoint: %s", terr);
        return false;
    }
    pc__aws_creds_t fresh;
    ok = h.status == 200 && pc__ecs_parse_credentials(h.resp, h.resp_len, &fresh);
    if (h.resp) memset(h.resp, 0, h.resp_len);
    free(h.resp);
    if (!ok) {
        snprintf(err, errlen, "container credentials endpoint answered %ld without credentials",
                 h.status);
        return false;
    }
    pc__aws_creds_clear(&e->creds);
    e->creds = fresh;
    return true;
}

static bool ensure_creds(pc__ecs_t *e, char *err, size_t errlen)
{
    int64_t now = (int64_t)time(NULL);
    bool have = e->creds.access_key != NULL;
    if (have && (!e->creds.expires_unix || now < e->creds.expires_unix - REFRESH_BEFORE_S))
        return true;
    if (fetch_creds(e, err, errlen)) return true;
    /* Refresh failed: credentials that have not expired yet still work. */
    return have && e->creds.access_key && e->creds.expires_unix > now + 10;
}

/* host[:port] of the endpoint URL as signed and sent in Host. */
static bool endpoint_host(const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK;
    if (ok) {
        (void)curl_url_get(u, CURLUPART_PORT, &port, 0); /* only when written in the URL */
        int n = port ? snprintf(out, cap, "%s:%s", host, port) : snprintf(out, cap, "%s", host);
        ok = n > 0 && (size_t)n < cap;
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

/* One signed JSON 1.1 call; *resp gets the 200 answer's body. */
static bool ecs_call(pc__ecs_t *e, const char *action, json_t *req, char **resp, size_t *resp_len,
                     char *err, size_t errlen)
{
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char host[300], target[128], url[1100];
    snprintf(target, sizeof target, TARGET_PREFIX "%s", action);
    snprintf(url, sizeof url, "%s/", e->endpoint);
    if (!body || !endpoint_host(e->endpoint, host, sizeof host)) {
        snprintf(err, errlen, "invalid ECS endpoint %s", e->endpoint);
        free(body);
        return false;
    }
    const char *sn[] = {"content-type", "x-amz-target"};
    const char *sv[] = {"application/x-amz-json-1.1", target};
    pc_plib_sigv4_in_t in = {.hdr_names = sn,
                             .hdr_values = sv,
                             .nhdrs = 2,
                             .method = "POST",
                             .host = host,
                             .escaped_path = "/",
                             .raw_query = "",
                             .body = body,
                             .body_len = strlen(body),
                             .service = "ecs",
                             .access_key = e->creds.access_key,
                             .secret_key = e->creds.secret_key,
                             .region = e->region,
                             .session_token = e->creds.token,
                             .time_ns = (int64_t)pc_now_wall_ns()};
    pc_plib_sigv4_out_t sig;
    if (!pc_plib_sigv4_sign(&in, &sig)) {
        snprintf(err, errlen, "cannot sign the ECS request");
        free(body);
        return false;
    }
    char h_host[320], h_date[64], h_target[160], h_auth[1024], h_tok[8192];
    snprintf(h_host, sizeof h_host, "Host: %s", sig.host);
    snprintf(h_date, sizeof h_date, "X-Amz-Date: %s", sig.amz_date);
    snprintf(h_target, sizeof h_target, "X-Amz-Target: %s", target);
    snprintf(h_auth, sizeof h_auth, "Authorization: %s", sig.authorization);
    snprintf(h_tok, sizeof h_tok, "X-Amz-Security-Token: %s",
             sig.security_token ? sig.security_token : "");
    const char *hdrs[] = {"Content-Type: application/x-amz-json-1.1",
                          "Accept: application/json",
                          h_host,
                          h_date,
                          h_target,
                          h_auth,
                          sig.security_token ? h_tok : NULL,
                          NULL};
    pc__disc_http_t h = {
        .method = "POST", .url = url, .headers = hdrs, .body = body, .body_len = strlen(body)};
    char terr[256];
    bool ok = pc__disc_http(&h, terr, sizeof terr);
    memset(h_tok, 0, sizeof h_tok);
    pc_plib_sigv4_free(&sig);
    free(body);
    if (!ok) {
        snprintf(err, errlen, "%s: %s", e->endpoint, terr);
        return false;
    }
    if (h.status != 200) {
        /* JSON 1.1 errors: {"__type": "...#AccessDeniedException", "message": "..."} */
        json_t *j = json_loadb(h.resp, h.resp_len, 0, NULL);
        const char *type = json_string_value(json_object_get(j, "__type"));
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (!msg) msg = json_string_value(json_object_get(j, "Message"));
        if (type && strchr(type, '#')) type = strchr(type, '#') + 1;
        snprintf(err, errlen, "ECS %s answered %ld: %.80s %.200s", action, h.status,
                 type ? type : "", msg ? msg : "");
        bool creds_bad = h.status == 403 || (type && (strstr(type, "ExpiredToken") ||
                                                      strstr(type, "UnrecognizedClient") ||
                                                      strstr(type, "InvalidSignature")));
        if (creds_bad) pc__aws_creds_clear(&e->creds); /* fetch fresh ones next time */
        json_decref(j);
        free(h.resp);
        return false;
    }
    *resp = h.resp;
    *resp_len = h.resp_len;
    return true;
}

static bool describe(pc__ecs_t *e, char **arns, size_t n, pc__peers_t *out, char *err,
                     size_t errlen)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(arns[i]));
    json_t *req = json_pack("{s:s,s:o}", "cluster", e->cluster, "tasks", list);
    char *resp = NULL;
    size_t len = 0;
    if (!ecs_call(e, "DescribeTasks", req, &resp, &len, err, errlen)) return false;
    bool ok =
        pc__ecs_parse_describe_tasks(resp, len, out, e->task_arn, e->service ? NULL : &e->service);
    if (!ok) snprintf(err, errlen, "ECS DescribeTasks answer is not the expected JSON");
    free(resp);
    return ok;
}

static void free_arns(char **arns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(arns[i]);
    free(arns);
}

bool pc__ecs_discover(pc__ecs_t *e, pc__peers_t *out, char *err, size_t errlen)
{
    if ((!e->cluster || !e->service || !e->region) && !e->metadata_read &&
        getenv("ECS_CONTAINER_METADATA_URI_V4") && !read_metadata(e, err, errlen))
        return false;
    if (!e->cluster) {
        snprintf(err, errlen, "ECS cluster unknown: set cluster.discovery.ecs_cluster");
        return false;
    }
    if (!e->region) e->region = region_of_arn(e->cluster);
    if (!e->region) e->region = region_of_arn(e->task_arn);
    if (!e->region) {
        snprintf(err, errlen, "AWS region unknown: set AWS_REGION or cluster.discovery.ecs_region");
        return false;
    }
    if (!e->endpoint) {
        char url[300];
        snprintf(url, sizeof url, "https://ecs.%s.amazonaws.com%s", e->region,
                 strncmp(e->region, "cn-", 3) ? "" : ".cn");
        e->endpoint = pc_xstrdup(url);
    }
    if (!ensure_creds(e, err, errlen)) return false;
    if (!e->service && e->task_arn) {
        pc__peers_t ignored = {.n = 0};
        char *one[] = {e->task_arn};
        if (!describe(e, one, 1, &ignored, err, errlen)) return false;
    }
    if (!e->service) {
        snprintf(err, errlen,
                 "this task belongs to no ECS service: set "
                 "cluster.discovery.ecs_service");
        return false;
    }
    char *token = NULL;
    for (int page = 0; page < MAX_PAGES; page++) {
        json_t *req = json_pack("{s:s,s:s,s:s,s:i}", "cluster", e->cluster, "serviceName",
                                e->service, "desiredStatus", "RUNNING", "maxResults", 100);
        if (token) json_object_set_new(req, "nextToken", json_string(token));
        free(token);
        token = NULL;
        char *resp = NULL, **arns = NULL;
        size_t len = 0, n = 0;
        if (!ecs_call(e, "ListTasks", req, &resp, &len, err, errlen)) return false;
        bool ok = pc__ecs_parse_list_tasks(resp, len, &arns, &n, &token);
        free(resp);
        if (!ok) {
            snprintf(err, errlen, "ECS ListTasks answer is not the expected JSON");
            return false;
        }
        for (size_t i = 0; ok && i < n; i += DESCRIBE_BATCH)
            ok = describe(e, arns + i, n - i < DESCRIBE_BATCH ? n - i : DESCRIBE_BATCH, out, err,
                          errlen);
        free_arns(arns, n);
        if (!ok) {
            free(token);
            return false;
        }
        if (!token) return true;
    }
    free(token);
    return true;
}
