/*
 * The S3 connector: an HTTP/1.1 listener for `technology: s3` resources on the
 * shared worker loops (docs/s3.md). The connector command registers it once
 * at start-up, before the workers start:
 *
 *     pc_s3_register();    // pc_proto_register(&pc_s3_proto)
 *
 * Behaviour (design §3-§6, issue 8 items 1-6):
 *  - HTTP/1.1 with keep-alive (requests are answered in order, one at a time),
 *    chunked request and response bodies, `Expect: 100-continue` answered
 *    only once authentication and the pre_request policy allowed the request.
 *    TLS per the listener's `tls` when the connector has tls.cert/key:
 *    `optional` tells TLS from plaintext by the first byte, `required`
 *    refuses plaintext, `disabled` never offers it.
 *  - Every request carries AWS SigV4 (header or presigned query) made with a
 *    key from users[].access_keys; the connection's user is judged by the
 *    session stage at its first request, every request by the pre_request
 *    stage with input.bucket / object / request; then re-signed with the
 *    resource's credentials and region and sent path-style to its endpoint
 *    (http or https, verified against the system CAs) over a per-worker
 *    keep-alive pool. Signed body hashes and aws-chunked signatures are
 *    verified while the body streams; a mismatch aborts the upstream request
 *    before its body completes.
 *  - Bodies stream both ways with backpressure: a side is not read while the
 *    other side's write queue is above 256 KiB.
 *  - One audit record per request; session_start (first authenticated
 *    request) and session_end per client connection.
 */
#ifndef PC_S3_S3_H
#define PC_S3_S3_H

#include "net/worker.h"

extern const pc_proto_t pc_s3_proto;

/** Register the S3 module with the worker runtime (idempotent). */
void pc_s3_register(void);

#endif
