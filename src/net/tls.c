/* TLS engine over memory BIOs; see tls.h. */
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

struct pc_tls {
    SSL *ssl;
    BIO *rbio; /* network -> SSL */
    BIO *wbio; /* SSL -> network */
    bool done;
    char err[160];
};

static void openssl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[120] = "unknown error";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s: %s", what, buf);
    ERR_clear_error();
}

SSL_CTX *pc_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_err(err, errlen, "tls context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    /* Idle connections give their record buffers back (about 34 KiB each). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        openssl_err(err, errlen, "tls certificate");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        openssl_err(err, errlen, "tls key");
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_err(err, errlen, "tls key does not match certificate");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *pc_tls_client_ctx(bool verify, const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        openssl_err(err, errlen, "tls context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (verify) {
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            openssl_err(err, errlen, "tls CA file");
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

void pc_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

static pc_tls_t *tls_new(SSL_CTX *ctx)
{
    pc_tls_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return NULL;
    }
    /* A drained memory BIO means "come back later", not EOF. */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* SSL owns both BIOs now */
    return t;
}

pc_tls_t *pc_tls_new_server(SSL_CTX *ctx)
{
    pc_tls_t *t = tls_new(ctx);
    if (t) SSL_set_accept_state(t->ssl);
    return t;
}

pc_tls_t *pc_tls_new_client(SSL_CTX *ctx, const char *host)
{
    pc_tls_t *t = tls_new(ctx);
    if (!t) return NULL;
    SSL_set_connect_state(t->ssl);
    if (host && *host) {
        SSL_set_tlsext_host_name(t->ssl, host);
        if (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            /* An address literal must match an IP SAN, a name a DNS SAN. */
            if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
                ERR_clear_error();
                X509_VERIFY_PARAM_set1_host(vp, host, 0);
            }
        }
    }
    return t;
}

void pc_tls_free(pc_tls_t *t)
{
    if (!t) return;
    SSL_free(t->ssl);
    free(t);
}

bool pc_tls_feed(pc_tls_t *t, const void *data, size_t len)
{
    while (len > 0) {
        int chunk = len > (size_t)INT32_MAX ? INT32_MAX : (int)len;
        int n = BIO_write(t->rbio, data, chunk);
        if (n <= 0) return false;
        data = (const uint8_t *)data + n;
        len -= (size_t)n;
    }
    return true;
}

static pc_tls_status_t classify(pc_tls_t *t, int rc, const char *what)
{
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return PC_TLS_WANT;
    if (e == SSL_ERROR_ZERO_RETURN) return PC_TLS_CLOSED;
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK)
        snprintf(t->err, sizeof t->err, "%s: certificate verify failed: %s", what,
                 X509_verify_cert_error_string(vr));
    else
        openssl_err(t->err, sizeof t->err, what);
    ERR_clear_error();
    return PC_TLS_ERROR;
}

pc_tls_status_t pc_tls_handshake(pc_tls_t *t)
{
    if (t->done) return PC_TLS_OK;
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->done = true;
        return PC_TLS_OK;
    }
    pc_tls_status_t st = classify(t, rc, "tls handshake");
    return st == PC_TLS_CLOSED ? PC_TLS_ERROR : st;
}

bool pc_tls_handshake_done(const pc_tls_t *t)
{
    return t->done;
}

pc_tls_status_t pc_tls_read(pc_tls_t *t, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (cap > (size_t)INT32_MAX) cap = INT32_MAX;
    int rc = SSL_read(t->ssl, buf, (int)cap);
    if (rc > 0) {
        *n = (size_t)rc;
        return PC_TLS_OK;
    }
    return classify(t, rc, "tls read");
}

bool pc_tls_write(pc_tls_t *t, const void *data, size_t len)
{
    while (len > 0) {
        int chunk = len > (size_t)INT32_MAX ? INT32_MAX : (int)len;
        int rc = SSL_write(t->ssl, data, chunk);
        if (rc <= 0) {
            classify(t, rc, "tls write");
            return false;
        }
        data = (const uint8_t *)data + rc;
        len -= (size_t)rc;
    }
    return true;
}

void pc_tls_shutdown(pc_tls_t *t)
{
    if (t->done) SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t pc_tls_pending(const pc_tls_t *t)
{
    return BIO_ctrl_pending(t->wbio);
}

size_t pc_tls_take(pc_tls_t *t, void *buf, size_t cap)
{
    if (cap > (size_t)INT32_MAX) cap = INT32_MAX;
    int n = BIO_read(t->wbio, buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

const char *pc_tls_error(const pc_tls_t *t)
{
    return t->err[0] ? t->err : "tls error";
}
