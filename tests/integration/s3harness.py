"""S3 section of the integration harness (issue 8): a real S3-compatible upstream
(s3rver, npm) and real clients (Debian's awscli and python3-boto3, the AWS SDK
for JavaScript through s3_js_client.js) pointed at a connector's S3 listener.

Fixtures (import them into a test module: ``from s3harness import s3rver, s3env``):

``s3rver`` (module)
    An :class:`S3rver` on 127.0.0.1 with a temp data dir, behind a gate (a small
    threaded HTTP relay at ``s3rver.endpoint``) that checks every request's SigV4
    signature against the resource's real credentials ``S3RVER``/``S3RVER`` the way
    S3 does, body hash included, because s3rver 3.x checks only the key id. So a
    connector that passes the client's signature through, or re-signs wrongly, is
    refused upstream; refusals are kept in ``s3rver.sig_errors`` and ``s3env``
    fails the test on any; ``s3rver.connections`` counts the TCP connections the
    gate accepted (upstream keep-alive). ``s3rver.client()`` is a boto3 client straight to
    s3rver (seeding, checking what the bucket holds).
``s3env`` (function)
    A factory: ``s3env(*, policies=None, files=None, hostname=None, users=None,
    config=None, listen_address="127.0.0.1", ready_timeout=15)`` starts a connector
    (harness.Connector, so logs/spool helpers are there) with resource ``s3-main``
    pointing at ``s3rver``, listener ``s3`` on a free port (with ``hostname`` for
    virtual-hosted-style addressing) and users ``alice`` and ``bob`` holding the
    access keys in :data:`ALICE` / :data:`BOB`. ``policies`` maps file names to
    Rego text (written as ``<name>.rego`` into config_dir); ``policy_objects``
    are policy objects (name, status, module) for objects.yaml; ``direct=True``
    points the resource at s3rver itself rather than the gate; ``tls`` is the
    listener's tls mode (give the certificate in ``config={"tls": ...}``). Returns an
    :class:`S3Env`.

An :class:`S3Env` has ``connector``, ``port``, ``endpoint`` and the client helpers
``boto(user)``, ``aws(user, *args)``, ``js(user, ops)``, ``presign(user, ...)``,
``raw(user, method, path, ...)`` (hand-signed request, e.g. with a skewed
clock or a tampered body), ``get_url(url)``. Users are :class:`Key` values.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import types
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from collections import namedtuple
from unittest import mock

import boto3
import botocore.auth
import botocore.exceptions
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

import harness
from harness import REPO, free_port, wait_until

NODE = shutil.which("node", path="/usr/bin:/bin") or "node"
S3RVER_JS = os.path.join(REPO, "node_modules", "s3rver", "bin", "s3rver.js")
JS_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "s3_js_client.js")
AWS_CLI = "/usr/bin/aws"  # Debian's awscli, not whatever else is on PATH
REGION = "us-east-1"
UPSTREAM_KEY = "S3RVER"  # s3rver's built-in account: the resource's real credentials
UPSTREAM_SECRET = "S3RVER"

Key = namedtuple("Key", "username id secret")
ALICE = Key("alice", "AKIAPCALICE000000001", "alice+S3+secret/0123456789abcdefghijklm")
BOB = Key("bob", "AKIAPCBOB00000000002", "bob+S3+secret/0123456789abcdefghijklmnop")


# ---------------------------------------------------------------- upstream

SIGV4_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request,"
                        r" ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "expect", "upgrade",
              "proxy-connection", "content-length"}


def _uri_encode(text, safe):
    return urllib.parse.quote(text, safe=safe)


def sigv4_problem(method, target, headers, body, key_id, secret):
    """Why this request is not correctly SigV4-signed with (key_id, secret), or None.
    Canonical form as S3 computes it (AWS SigV4 documentation): the path and
    query decoded and re-encoded, so any correct encoding the signer sent passes."""
    m = SIGV4_AUTH.match(headers.get("authorization", ""))
    if not m:
        return f"no SigV4 Authorization header: {headers.get('authorization', '')[:60]!r}"
    key, date, region, signed, signature = m.groups()
    if key != key_id:
        return f"signed with key {key!r}, not the resource's"
    if region != REGION:
        return f"signed for region {region!r}"
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(date):
        return f"x-amz-date {amz_date!r} does not match the credential date {date}"
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        return "no x-amz-content-sha256"
    if re.fullmatch(r"[0-9a-f]{64}", payload) and hashlib.sha256(body).hexdigest() != payload:
        return "x-amz-content-sha256 is not the hash of the body forwarded"
    names = signed.split(";")
    if "host" not in names:
        return "host not signed"
    path, _, query = target.partition("?")
    pairs = []
    for part in filter(None, query.split("&")):
        k, _, v = part.partition("=")
        pairs.append((_uri_encode(urllib.parse.unquote(k), "-_.~"),
                      _uri_encode(urllib.parse.unquote(v), "-_.~")))
    creq = "\n".join([
        method, _uri_encode(urllib.parse.unquote(path), "/-_.~"),
        "&".join(f"{k}={v}" for k, v in sorted(pairs)),
        "".join(f"{n}:{' '.join(headers.get(n, '').split())}\n" for n in names),
        signed, payload])
    scope = f"{date}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), "s3"),
              "aws4_request")
    if hmac.new(k, sts.encode(), hashlib.sha256).hexdigest() != signature:
        return f"signature does not match; canonical request was:\n{creq}"
    return None


class _Gate(http.server.BaseHTTPRequestHandler):
    """Checks every request's SigV4 signature against the upstream credentials,
    then relays it to s3rver (which itself checks only the key id)."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.server.owner.connections += 1  # one handler per TCP connection

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError("request body cut short")
        return data

    def _handle(self):
        owner = self.server.owner
        try:
            body = self._body()
        except (ConnectionError, ValueError, OSError):
            self.close_connection = True  # an aborted upload: never forwarded
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        problem = sigv4_problem(self.command, self.path, headers, body, UPSTREAM_KEY,
                                UPSTREAM_SECRET)
        if problem:
            owner.sig_errors.append(f"{self.command} {self.path}: {problem}")
            xml = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch"
                   b"</Code><Message>test upstream gate: bad signature</Message></Error>")
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            self.wfile.write(xml)
            return
        owner.signed_ok += 1
        fwd = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        c = http.client.HTTPConnection("127.0.0.1", owner.port, timeout=120)
        try:
            c.request(self.command, self.path, body=body if body or self.command in
                      ("PUT", "POST") else None, headers=fwd)
            r = c.getresponse()
            data = r.read()
            self.send_response(r.status, r.reason)
            for k, v in r.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            clen = r.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
            self.send_header("Content-Length", clen or "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            c.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class S3rver:
    """s3rver on a free loopback port, data in a temp dir, behind a gate that
    checks SigV4 as S3 does (s3rver 3.x checks only the key id); always torn down.
    ``endpoint`` is the gate (what a resource points at); ``direct_endpoint`` is
    s3rver itself; ``sig_errors`` lists requests the gate refused."""

    def __init__(self):
        if not os.path.exists(S3RVER_JS):
            raise RuntimeError(f"{S3RVER_JS} missing: run `npm install` in the repo")
        self.port = free_port()
        self.base = tempfile.mkdtemp(prefix="pc-s3rver-")
        self.log = open(os.path.join(self.base, "s3rver.log"), "w+")
        self.sig_errors = []
        self.signed_ok = 0
        self.connections = 0  # TCP connections the gate accepted (upstream reuse)
        self.gate = None
        os.mkdir(os.path.join(self.base, "data"))
        self.proc = subprocess.Popen(
            [NODE, S3RVER_JS, "-d", os.path.join(self.base, "data"), "-a", "127.0.0.1",
             "-p", str(self.port), "--no-vhost-buckets"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._up, 30, 0.1, "s3rver listening")
            self.gate = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gate)
            self.gate.daemon_threads = True
            self.gate.owner = self
            threading.Thread(target=self.gate.serve_forever, daemon=True).start()
        except Exception:
            self.close()
            raise
        self.direct_endpoint = f"http://127.0.0.1:{self.port}"
        self.endpoint = f"http://127.0.0.1:{self.gate.server_address[1]}"

    def _up(self):
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise RuntimeError(f"s3rver exited {self.proc.returncode}: {self.log.read()[-2000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            c.request("GET", "/")
            c.getresponse().read()
            c.close()
            return True
        except OSError:
            return False

    def client(self):
        """boto3 straight to s3rver with the real credentials (seeding, checking)."""
        return boto_client(self.direct_endpoint, UPSTREAM_KEY, UPSTREAM_SECRET)

    def ensure_bucket(self, name):
        c = self.client()
        try:
            c.head_bucket(Bucket=name)
        except c.exceptions.ClientError:
            c.create_bucket(Bucket=name)

    def resource(self, name="s3-main", direct=False):
        """direct: s3rver itself, not the gate (which buffers whole bodies)."""
        return {"name": name, "technology": "s3",
                "endpoint": self.direct_endpoint if direct else self.endpoint, "region": REGION,
                "credentials": {"access_key_id": UPSTREAM_KEY,
                                "secret_access_key": UPSTREAM_SECRET}}

    def close(self):
        if self.gate is not None:
            self.gate.shutdown()
            self.gate.server_close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------- connector objects

def s3_listener(port, name="s3", resource="s3-main", hostname=None, tls="disabled"):
    l = {"name": name, "port": port, "resource": resource, "tls": tls}
    if hostname:
        l["hostname"] = hostname
    return l


def s3_user(key, **extra):
    u = {"username": key.username, "email": f"{key.username}@example.com", "type": "human",
         "groups": ["analysts"], "access_keys": [{"id": key.id, "secret": key.secret}]}
    u.update(extra)
    return u


def s3_objects(upstream, port, hostname=None, users=(ALICE, BOB), policies=(), direct=False,
               tls="disabled"):
    objs = {"resources": [upstream.resource(direct=direct)],
            "listeners": [s3_listener(port, hostname=hostname, tls=tls)],
            "users": [s3_user(k) for k in users]}
    if policies:
        objs["policies"] = list(policies)
    return objs


# ---------------------------------------------------------------- clients

def boto_client(endpoint, key_id, secret, addressing="path", verify=None):
    """A boto3 S3 client that never retries (so every call is one counted request);
    verify: CA bundle for an https endpoint."""
    cfg = Config(region_name=REGION, signature_version="s3v4",
                 s3={"addressing_style": addressing},
                 retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=120)
    return boto3.session.Session().client("s3", endpoint_url=endpoint, aws_access_key_id=key_id,
                                          aws_secret_access_key=secret, config=cfg,
                                          verify=verify)


def error_code(exc):
    """(code, http status, message) of a botocore ClientError."""
    r = exc.response
    return (r.get("Error", {}).get("Code"), r.get("ResponseMetadata", {}).get("HTTPStatusCode"),
            r.get("Error", {}).get("Message"))


def refused(fn, code="AccessDenied", status=403):
    """Call fn (a boto3 call) expecting an S3 error; returns the error's message.
    code None: a HEAD answer has no body, so there is no S3 error code to check."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn()
    got = error_code(e.value)
    assert got[1] == status and (code is None or got[0] == code), got
    return got[2]


Response = namedtuple("Response", "status headers body code message")


def parse_response(status, headers, body):
    """Response with the S3 XML error's Code and Message (None when the body has none)."""
    code = message = None
    if body.lstrip().startswith(b"<"):
        try:
            root = ET.fromstring(body)
            for el in root.iter():
                tag = el.tag.rsplit("}", 1)[-1]
                if tag == "Code" and code is None:
                    code = el.text
                elif tag == "Message" and message is None:
                    message = el.text
        except ET.ParseError:
            pass
    return Response(status, headers, body, code, message)


def send(port, method, target, headers, body=b"", timeout=30):
    """One request on a fresh connection to 127.0.0.1:port, Host as given in headers."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, target, body=body or None, headers=headers)
        r = c.getresponse()
        data = r.read()
        return parse_response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        c.close()


def _fixed_clock(when):
    class Clock(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when
    return types.SimpleNamespace(datetime=Clock)


def sign_request(url, method, key, *, body=b"", headers=None, when=None, sign_body=None):
    """Headers (Host included) of a SigV4-signed S3 request; url names the host the
    signature covers. when: a naive UTC datetime to sign at (default now).
    sign_body: sign this body's SHA-256 instead of body's (a tampered upload)."""
    req = AWSRequest(method=method, url=url, data=body if sign_body is None else sign_body,
                     headers=dict(headers or {}))
    auth = botocore.auth.S3SigV4Auth(Credentials(key.id, key.secret), "s3", REGION)
    if when is None:
        auth.add_auth(req)
    else:
        with mock.patch.object(botocore.auth, "datetime", _fixed_clock(when)):
            auth.add_auth(req)
    out = dict(req.headers.items())
    out["Host"] = urllib.parse.urlsplit(url).netloc
    return out


STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(k, msg):
    return hmac.new(k, msg.encode(), hashlib.sha256).digest()


def chunk_signed_body(key, when, seed_signature, data, chunk_size, tamper_chunk=None):
    """aws-chunked body with per-chunk signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD,
    as the S3 docs specify it); tamper_chunk: index of a chunk whose bytes are changed
    after signing."""
    date, ts = when.strftime("%Y%m%d"), when.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{date}/{REGION}/s3/aws4_request"
    k = _hmac(_hmac(_hmac(_hmac(("AWS4" + key.secret).encode(), date), REGION), "s3"),
              "aws4_request")
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    prev, out = seed_signature, []
    for i, c in enumerate(chunks):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", ts, scope, prev, EMPTY_SHA256,
                         hashlib.sha256(c).hexdigest()])
        prev = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if i == tamper_chunk:
            c = bytes([c[0] ^ 1]) + c[1:]
        out.append(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), prev.encode(), c))
    return b"".join(out)


def _sign_headers(url, method, key, headers, when):
    """Headers (Host included) signed with the payload hash already in headers
    (X-Amz-Content-SHA256), as the streaming variants need."""
    req = AWSRequest(method=method, url=url, headers=headers)
    auth = botocore.auth.SigV4Auth(Credentials(key.id, key.secret), "s3", REGION)
    with mock.patch.object(botocore.auth, "datetime", _fixed_clock(when)):
        auth.add_auth(req)
    out = dict(req.headers.items())
    out["Host"] = urllib.parse.urlsplit(url).netloc
    return out


def chunk_signed_request(url, key, data, chunk_size=64 * 1024, tamper_chunk=None):
    """(headers, body) of a PUT with chunk signatures, as older SDKs and tools send."""
    when = datetime.datetime.utcnow().replace(microsecond=0)
    encoded_len = len(chunk_signed_body(key, when, "0" * 64, data, chunk_size))
    out = _sign_headers(url, "PUT", key, {
        "X-Amz-Content-SHA256": STREAMING, "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)), "Content-Length": str(encoded_len)},
        when)
    seed = out["Authorization"].rsplit("Signature=", 1)[1]
    return out, chunk_signed_body(key, when, seed, data, chunk_size, tamper_chunk)


def unsigned_trailer_request(url, key, data, chunk_size=64 * 1024, crc32=None):
    """(headers, body) of a PUT as current AWS SDKs stream one:
    STREAMING-UNSIGNED-PAYLOAD-TRAILER, aws-chunked, CRC32 in the trailer
    (crc32: the trailer's value, default the right one)."""
    if crc32 is None:
        crc32 = zlib.crc32(data)
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    body += b"0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % base64.b64encode(
        crc32.to_bytes(4, "big"))
    when = datetime.datetime.utcnow().replace(microsecond=0)
    return _sign_headers(url, "PUT", key, {
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32",
        "X-Amz-Decoded-Content-Length": str(len(data)), "Content-Length": str(len(body))},
        when), body


def aws_config_file(directory, addressing="path"):
    path = os.path.join(directory, f"aws-config-{addressing}")
    with open(path, "w") as f:
        f.write(f"[default]\nregion = {REGION}\nmax_attempts = 1\nretry_mode = standard\n"
                f"s3 =\n    addressing_style = {addressing}\n")
    return path


class S3Env:
    """A connector with an S3 listener in front of s3rver, and clients for it."""

    def __init__(self, connector, upstream, port, hostname, tmpdir):
        self.connector = connector
        self.upstream = upstream
        self.port = port
        self.hostname = hostname
        self.tmpdir = tmpdir
        self.endpoint = f"http://127.0.0.1:{port}"

    # -- clients
    def boto(self, key=ALICE, addressing="path", endpoint=None, verify=None):
        return boto_client(endpoint or self.endpoint, key.id, key.secret, addressing, verify)

    def aws(self, key, *args, check=True, timeout=300, endpoint=None):
        """Run Debian's aws CLI against the listener; returns CompletedProcess."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": key.id, "AWS_SECRET_ACCESS_KEY": key.secret,
                    "AWS_CONFIG_FILE": aws_config_file(self.tmpdir),
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_DEFAULT_REGION": REGION,
                    "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "", "HOME": self.tmpdir})
        r = subprocess.run([AWS_CLI, "--endpoint-url", endpoint or self.endpoint, "--no-cli-pager",
                            *args],
                           capture_output=True, text=True, env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r

    def js(self, key, ops, endpoint=None, timeout=300):
        """Run ops with @aws-sdk/client-s3; returns the list of per-op results."""
        cmd = {"endpoint": endpoint or self.endpoint, "region": REGION, "accessKeyId": key.id,
               "secretAccessKey": key.secret, "forcePathStyle": True, "ops": ops}
        r = subprocess.run([NODE, JS_CLIENT, json.dumps(cmd)], capture_output=True, text=True,
                           timeout=timeout, cwd=REPO)
        if r.returncode != 0:
            raise AssertionError(f"s3_js_client.js failed ({r.returncode}):\n{r.stderr}")
        return json.loads(r.stdout.strip().splitlines()[-1])["results"]

    def presign(self, key, bucket, obj, expires=300, method="get_object", addressing="path",
                endpoint=None):
        return self.boto(key, addressing, endpoint).generate_presigned_url(
            method, Params={"Bucket": bucket, "Key": obj}, ExpiresIn=expires)

    def get_url(self, url, host=None):
        """GET a (presigned) URL at the listener, Host header from the URL unless given."""
        u = urllib.parse.urlsplit(url)
        target = u.path + ("?" + u.query if u.query else "")
        return send(self.port, "GET", target, {"Host": host or u.netloc})

    def raw(self, key, method, path, *, body=b"", headers=None, when=None, sign_body=None,
            host=None, query=""):
        """A hand-signed request to the listener. path is /bucket/key (path style) or /key
        with host set to '<bucket>.<hostname>' (virtual-hosted style)."""
        netloc = host or f"127.0.0.1:{self.port}"
        url = f"http://{netloc}{path}" + (f"?{query}" if query else "")
        h = sign_request(url, method, key, body=body, headers=headers, when=when,
                         sign_body=sign_body)
        return send(self.port, method, path + (f"?{query}" if query else ""), h, body)

    # -- audit
    def s3_records(self, pred=None, timeout=15):
        """Request records of technology s3 once pred(records) holds (default: any)."""
        pred = pred or bool
        recs = []

        def ok():
            recs[:] = [r for r in self.connector.spool_records()
                       if r.get("technology") == "s3" and r.get("type") == "request"]
            return pred(recs)
        wait_until(ok, timeout, 0.2, "s3 audit records")
        return list(recs)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def s3rver():
    s = S3rver()
    try:
        yield s
    finally:
        s.close()


def start_s3env(connector, upstream, tmpdir, *, policies=None, files=None, hostname=None,
                users=(ALICE, BOB), policy_objects=(), config=None, listen_address="127.0.0.1",
                port=None, ready_timeout=15, direct=False, tls="disabled", **kw):
    """Start a connector (through the conftest ``connector`` factory) with an S3
    listener in front of upstream; returns an S3Env."""
    port = port or free_port()
    all_files = dict(files or {})
    for name, text in (policies or {}).items():
        all_files[f"{name}.rego"] = text
    cfg = {"listen_address": listen_address}
    harness._deep_merge(cfg, config or {})
    c = connector(s3_objects(upstream, port, hostname, users, policy_objects, direct, tls),
                  files=all_files,
                  config=cfg,
                  ready_timeout=ready_timeout, **kw)
    return S3Env(c, upstream, port, hostname, str(tmpdir))


@pytest.fixture
def s3env(connector, s3rver, tmp_path):
    envs = []

    def factory(**kw):
        envs.append(start_s3env(connector, s3rver, tmp_path, **kw))
        return envs[-1]
    s3rver.sig_errors.clear()
    yield factory
    for e in envs:  # design §6/§10: never a secret in a log line
        logs = "\n".join(e.connector.raw_stderr)
        assert ALICE.secret not in logs and BOB.secret not in logs
    errors, s3rver.sig_errors[:] = list(s3rver.sig_errors), []
    assert not errors, "upstream requests not signed with the resource's credentials:\n" + \
        "\n".join(errors[:5])
