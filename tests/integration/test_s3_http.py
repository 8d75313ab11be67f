"""The S3 listener as an HTTP/1.1 server (issue 8 item 1): TLS (required and
optional), `Expect: 100-continue`, keep-alive with pipelined requests, an
unreachable upstream, and access keys added by a config_dir edit without a
restart.
"""

import socket
import uuid

import pytest

from harness import free_port, wait_until
from s3harness import (ALICE, BOB, boto_client, parse_response, refused, s3env, s3rver,  # noqa: F401
                       sign_request)
from test_pg_more import certs  # noqa: F401  (module fixture: self-signed cert for 127.0.0.1)


def new_bucket(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Reader:
    """HTTP/1.1 responses read off one socket, in order (pipelining keeps the rest)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed; had {self.buf[:200]!r}")
        self.buf += chunk

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (l.partition(":") for l in lines[1:])}
        n = int(headers.get("content-length", "0")) if status >= 200 else 0
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return parse_response(status, headers, body)


def request_head(method, target, headers, body_len=0):
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body_len or method in ("PUT", "POST"):
        head += f"Content-Length: {body_len}\r\n"
    return head.encode() + b"\r\n"


def test_tls_required_listener(s3env, s3rver, certs, tmp_path):  # noqa: F811
    b = new_bucket("tls")
    s3rver.ensure_bucket(b)
    env = s3env(tls="required", config={"tls": {"cert": f"{certs}/cert.pem",
                                                "key": f"{certs}/key.pem"}})
    https = f"https://127.0.0.1:{env.port}"
    c = env.boto(ALICE, endpoint=https, verify=f"{certs}/cert.pem")
    body = b"over TLS" * 10000
    c.put_object(Bucket=b, Key="t.bin", Body=body)
    assert c.get_object(Bucket=b, Key="t.bin")["Body"].read() == body
    src = tmp_path / "cli.txt"
    src.write_bytes(b"aws cli over TLS")
    env.aws(ALICE, "--ca-bundle", f"{certs}/cert.pem", "s3", "cp", str(src), f"s3://{b}/cli.txt",
            endpoint=https)
    assert s3rver.client().get_object(Bucket=b, Key="cli.txt")["Body"].read() == src.read_bytes()
    # Plain HTTP on a tls: required listener gets no S3 answer.
    headers = sign_request(f"http://127.0.0.1:{env.port}/{b}/t.bin", "GET", ALICE)
    with socket.create_connection(("127.0.0.1", env.port), timeout=10) as s:
        s.sendall(request_head("GET", f"/{b}/t.bin", headers))
        try:
            got = s.recv(65536)
        except ConnectionResetError:
            got = b""
    assert body[:20] not in got and not got.startswith(b"HTTP/1.1 200")


def test_tls_optional_listener_serves_both(s3env, s3rver, certs):  # noqa: F811
    b = new_bucket("opt")
    s3rver.ensure_bucket(b)
    env = s3env(tls="optional", config={"tls": {"cert": f"{certs}/cert.pem",
                                                "key": f"{certs}/key.pem"}})
    env.boto(ALICE).put_object(Bucket=b, Key="plain", Body=b"p")
    c = env.boto(ALICE, endpoint=f"https://127.0.0.1:{env.port}", verify=f"{certs}/cert.pem")
    assert c.get_object(Bucket=b, Key="plain")["Body"].read() == b"p"


def test_expect_100_continue(s3env, s3rver):
    b = new_bucket("expect")
    s3rver.ensure_bucket(b)
    env = s3env()
    body = b"sent only after 100 Continue" * 1000
    url = f"http://127.0.0.1:{env.port}/{b}/e.bin"
    headers = sign_request(url, "PUT", ALICE, body=body, headers={"Expect": "100-continue"})
    with socket.create_connection(("127.0.0.1", env.port), timeout=30) as s:
        s.sendall(request_head("PUT", f"/{b}/e.bin", headers, len(body)))
        rd = Reader(s)
        interim = rd.response()
        assert interim.status == 100 and rd.buf == b"", interim
        s.sendall(body)
        final = rd.response()
        assert final.status == 200, final
    assert s3rver.client().get_object(Bucket=b, Key="e.bin")["Body"].read() == body

    # A refused request is answered before the body is sent, and the body never goes upstream.
    forged = ALICE._replace(secret="x" + ALICE.secret)
    headers = sign_request(url.replace("e.bin", "f.bin"), "PUT", forged, body=body,
                           headers={"Expect": "100-continue"})
    with socket.create_connection(("127.0.0.1", env.port), timeout=30) as s:
        s.sendall(request_head("PUT", f"/{b}/f.bin", headers, len(body)))
        r = Reader(s).response()
        assert (r.status, r.code) == (403, "SignatureDoesNotMatch"), r
    c = s3rver.client()
    refused(lambda: c.head_object(Bucket=b, Key="f.bin"), None, 404)


def test_pipelined_requests_on_one_connection(s3env, s3rver):
    b = new_bucket("pipe")
    s3rver.ensure_bucket(b)
    for i in range(3):
        s3rver.client().put_object(Bucket=b, Key=f"k{i}", Body=f"value {i}".encode())
    env = s3env()
    wire = b"".join(request_head("GET", f"/{b}/k{i}",
                                 sign_request(f"http://127.0.0.1:{env.port}/{b}/k{i}", "GET",
                                              ALICE))
                    for i in range(3))
    with socket.create_connection(("127.0.0.1", env.port), timeout=30) as s:
        s.sendall(wire)
        rd = Reader(s)
        for i in range(3):
            r = rd.response()
            assert (r.status, r.body) == (200, f"value {i}".encode()), (i, r)


def test_upstream_unreachable(connector, s3rver, tmp_path):
    port = free_port()
    dead = free_port()  # nothing listens there
    res = s3rver.resource()
    res["endpoint"] = f"http://127.0.0.1:{dead}"
    c = connector({"resources": [res],
                   "listeners": [{"name": "s3", "port": port, "resource": "s3-main",
                                  "tls": "disabled"}],
                   "users": [{"username": "alice", "email": "a@example.com", "type": "human",
                              "access_keys": [{"id": ALICE.id, "secret": ALICE.secret}]}]})
    cl = boto_client(f"http://127.0.0.1:{port}", ALICE.id, ALICE.secret)
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as e:
        cl.get_object(Bucket="any-bucket", Key="k")
    meta = e.value.response["ResponseMetadata"]
    assert 500 <= meta["HTTPStatusCode"] < 600 and e.value.response["Error"]["Code"], \
        e.value.response
    assert c.get("/health")[0] == 200


def test_access_key_added_by_config_edit(s3env, s3rver):
    from s3harness import s3_objects
    b = new_bucket("reload")
    s3rver.ensure_bucket(b)
    s3rver.client().put_object(Bucket=b, Key="k", Body=b"v")
    env = s3env(users=(ALICE,))
    bob = env.boto(BOB)
    refused(lambda: bob.get_object(Bucket=b, Key="k"), "InvalidAccessKeyId")
    env.connector.set_objects(s3_objects(s3rver, env.port, users=(ALICE, BOB)))

    def bob_served():
        r = env.raw(BOB, "GET", f"/{b}/k")
        assert r.status in (200, 403), r
        return r.status == 200 and r.body == b"v"
    wait_until(bob_served, 15, 0.3, "bob's new key accepted after the edit")
    # And removed again.
    env.connector.set_objects(s3_objects(s3rver, env.port, users=(ALICE,)))
    wait_until(lambda: env.raw(BOB, "GET", f"/{b}/k").code == "InvalidAccessKeyId", 15, 0.3,
               "bob's key refused after removal")
    assert env.raw(ALICE, "GET", f"/{b}/k").status == 200


def test_upstream_connections_reused(s3env, s3rver):
    """Issue item 5: keep-alive connection reuse to the upstream."""
    b = new_bucket("reuse")
    s3rver.ensure_bucket(b)
    s3rver.client().put_object(Bucket=b, Key="k", Body=b"v")
    env = s3env()
    c = env.boto(ALICE)
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"v"
    before = s3rver.connections
    for _ in range(30):
        assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"v"
    opened = s3rver.connections - before
    print(f"30 sequential requests opened {opened} upstream connections")
    assert opened <= 3


@pytest.mark.parametrize("wire", [
    b"GARBAGE\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
], ids=["garbage", "bad-length", "huge-header", "bad-chunk"])
def test_bad_input_answered_not_fatal(s3env, s3rver, wire):
    """Design §10: a protocol-native error to that client only, never a crash or a
    hang of other clients (one of them holds half a request open meanwhile)."""
    b = new_bucket("bad")
    s3rver.ensure_bucket(b)
    s3rver.client().put_object(Bucket=b, Key="k", Body=b"v")
    env = s3env()
    with socket.create_connection(("127.0.0.1", env.port), timeout=30) as idle:
        idle.sendall(b"GET /half HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        with socket.create_connection(("127.0.0.1", env.port), timeout=30) as s:
            try:
                s.sendall(wire)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused mid-way: the answer may already be there
            got = b""
            try:
                while b"\r\n\r\n" not in got:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionResetError:
                pass
        assert got.startswith(b"HTTP/1.1 4"), got[:200]
        r = env.raw(ALICE, "GET", f"/{b}/k")
        assert (r.status, r.body) == (200, b"v")
    assert env.connector.proc.poll() is None
