/*
 * libcurl plumbing shared by the watch and shipper threads. Each thread owns
 * its easy/multi handles; nothing here keeps state.
 */
#include "cpclient/cpclient_int.h"

#include "core/crypto.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

struct curl_slist *pc__cp_headers(const char *token, bool json)
{
    char auth[1024];
    struct curl_slist *h = NULL, *t;
    int n = snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    if (n < 0 || (size_t)n >= sizeof auth) return NULL;
    if (!(t = curl_slist_append(h, auth))) goto fail;
    h = t;
    if (json) {
        if (!(t = curl_slist_append(h, "Content-Type: application/json"))) goto fail;
        h = t;
    }
    /* No "Expect: 100-continue" round trip before each log batch. */
    if (!(t = curl_slist_append(h, "Expect:"))) goto fail;
    h = t;
    memset(auth, 0, sizeof auth);
    return h;
fail:
    memset(auth, 0, sizeof auth);
    curl_slist_free_all(h);
    return NULL;
}

void pc__cp_easy_defaults(void *easy, char *errbuf, const char *ca_file)
{
    CURL *e = easy;
    errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    /* Only the URL's own scheme family; never follow a redirect with our token. */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    /* A private CA replaces the system store rather than adding to it: only the
     * operator's CA can vouch for the control plane then. */
    if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "portcullis-connector/" PC_VERSION);
}

uint64_t pc__cp_now_ms(void)
{
    return pc_now_mono_ns() / 1000000u;
}

uint64_t pc__cp_random(void)
{
    uint64_t r;
    if (pc_random_bytes(&r, sizeof r)) return r;
    return pc_now_mono_ns() * 0x9E3779B97F4A7C15ull;
}

size_t pc__cp_discard(char *data, size_t size, size_t nmemb, void *arg)
{
    (void)data;
    (void)arg;
    return size * nmemb;
}
