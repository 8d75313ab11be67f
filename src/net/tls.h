/*
 * TLS over memory BIOs: the engine never touches a socket, so the same code
 * runs client-facing (PostgreSQL listener, later S3 and the control plane) and
 * upstream, over any libuv stream.
 *
 *   network bytes in  -> pc_tls_feed()      -> pc_tls_read()  -> plaintext
 *   plaintext out     -> pc_tls_write()     -> pc_tls_take()  -> network bytes
 *
 * After every feed or write, the caller sends whatever pc_tls_take() yields
 * (handshake records, alerts, application data).
 *
 * Contexts are process-wide and shared by threads (OpenSSL SSL_CTX is
 * thread-safe for this use); a pc_tls_t belongs to one connection / thread.
 * Return conventions: pointers NULL on failure with a message in err; bool
 * for actions; pc_tls_status_t for the incremental calls.
 */
#ifndef PC_NET_TLS_H
#define PC_NET_TLS_H

#include "core/common.h"

#include <openssl/ssl.h>

typedef struct pc_tls pc_tls_t;

typedef enum { PC_TLS_OK, PC_TLS_WANT, PC_TLS_CLOSED, PC_TLS_ERROR } pc_tls_status_t;

/** Server context from PEM cert chain + key files. */
SSL_CTX *pc_tls_server_ctx(const char *cert_file, const char *key_file, char *err,
                           size_t errlen) PC_WUR;
/**
 * Client context. verify: check the peer's chain against ca_file (PEM; NULL =
 * system default paths) and the host name given to pc_tls_new_client.
 */
SSL_CTX *pc_tls_client_ctx(bool verify, const char *ca_file, char *err, size_t errlen) PC_WUR;
void pc_tls_ctx_free(SSL_CTX *ctx);

pc_tls_t *pc_tls_new_server(SSL_CTX *ctx);
/** host: SNI and, when the context verifies, the name the certificate must match. */
pc_tls_t *pc_tls_new_client(SSL_CTX *ctx, const char *host);
void pc_tls_free(pc_tls_t *t);

/** Bytes received from the network. */
bool pc_tls_feed(pc_tls_t *t, const void *data, size_t len) PC_WUR;
/** Advance the handshake: OK when done, WANT when it needs more bytes, else ERROR. */
pc_tls_status_t pc_tls_handshake(pc_tls_t *t);
bool pc_tls_handshake_done(const pc_tls_t *t);
/**
 * Decrypted bytes into buf. Returns OK with *n > 0, WANT when nothing is
 * available yet, CLOSED on close_notify, ERROR on a protocol error.
 */
pc_tls_status_t pc_tls_read(pc_tls_t *t, void *buf, size_t cap, size_t *n);
/** Encrypt plaintext (after the handshake). */
bool pc_tls_write(pc_tls_t *t, const void *data, size_t len) PC_WUR;
/** Queue a close_notify alert. */
void pc_tls_shutdown(pc_tls_t *t);
/** Bytes waiting to be sent to the network. */
size_t pc_tls_pending(const pc_tls_t *t);
/** Move up to cap pending network bytes into buf; returns how many. */
size_t pc_tls_take(pc_tls_t *t, void *buf, size_t cap);
/** Last error as text (OpenSSL reason / verification result), for logs and client errors. */
const char *pc_tls_error(const pc_tls_t *t);

#endif
