/*
 * The PostgreSQL connector: client-facing listener sessions relayed to the
 * listener's resource. The connector command registers the module once at
 * start-up, before the workers start:
 *
 *     pc_pg_register();    // pc_proto_register(&pc_pg_proto)
 *
 * Behaviour (design §2-§6, issue 2 items 7-10):
 *  - SSLRequest is answered 'S' (TLS) when the connector has tls.cert/key and
 *    the listener's tls is not `disabled`, else 'N'; a listener with
 *    `tls: required` refuses a plaintext StartupMessage with FATAL 28000.
 *    GSSENCRequest is declined. Only protocol 3.x is accepted.
 *  - Users authenticate with SCRAM-SHA-256 against their stored verifier; an
 *    unknown user goes through the same exchange with a mock verifier and gets
 *    the same FATAL 28P01 as a wrong password.
 *  - Upstream: the listener's resource, TLS per its `tls`, authenticated with
 *    the resource credentials (SCRAM-SHA-256, MD5 or cleartext, as asked).
 *    Database: the client's `database` startup parameter when sent, else the
 *    resource's `database`, else the user name as PostgreSQL itself does
 *    (libpq always sends one, defaulting to the user name, so the resource
 *    value is the default for clients that send none). Every other startup parameter the
 *    client sent (application_name, client_encoding, options, ...) is passed
 *    on, except `user` (replaced by the resource's user) and `replication`
 *    (refused: the relay does not speak the replication protocol).
 *  - The client gets the connector's own BackendKeyData; a CancelRequest on
 *    any worker is forwarded to the matching upstream session only.
 */
#ifndef PC_PG_PG_H
#define PC_PG_PG_H

#include "net/worker.h"

extern const pc_proto_t pc_pg_proto;

/** Register the PostgreSQL module with the worker runtime (idempotent). */
void pc_pg_register(void);

#endif
