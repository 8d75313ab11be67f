"""S3 authentication (issue 8 item 2): SigV4 against Portcullis-issued keys.
Forged signatures, unknown keys, skewed clocks, expired presigned URLs and
tampered bodies are refused with S3's own error codes and statuses, and nothing
reaches the upstream; the connector keeps serving afterwards.
"""

import datetime
import json
import os
import time
import uuid

import pytest

from s3harness import (ALICE, BOB, UPSTREAM_KEY, Key, chunk_signed_request, error_code,  # noqa: F401
                       refused, s3env, s3rver, send, sign_request, unsigned_trailer_request)

MiB = 1 << 20


@pytest.fixture
def env(s3env, s3rver):
    e = s3env()
    e.bucket = f"auth-{uuid.uuid4().hex[:12]}"
    s3rver.ensure_bucket(e.bucket)
    s3rver.client().put_object(Bucket=e.bucket, Key="obj.txt", Body=b"original")
    yield e
    # Whatever was refused, the connector still serves a correct request.
    assert e.boto(ALICE).get_object(Bucket=e.bucket, Key="obj.txt")["Body"].read() == b"original"


def upstream_has(s3rver, bucket, key):
    c = s3rver.client()
    try:
        c.head_object(Bucket=bucket, Key=key)
        return True
    except c.exceptions.ClientError as e:
        assert error_code(e)[1] == 404
        return False


def get_and_put_refused(env, s3rver, key, code, new_key):
    c = env.boto(key)
    refused(lambda: c.get_object(Bucket=env.bucket, Key="obj.txt"), code)
    refused(lambda: c.put_object(Bucket=env.bucket, Key=new_key, Body=b"x"), code)
    assert not upstream_has(s3rver, env.bucket, new_key)


def test_correct_signature_accepted(env):
    """The baseline every refusal below is measured against."""
    r = env.raw(ALICE, "GET", f"/{env.bucket}/obj.txt")
    assert (r.status, r.body) == (200, b"original")
    r = env.raw(BOB, "PUT", f"/{env.bucket}/bob.txt", body=b"from bob")
    assert r.status == 200


def test_forged_signature_boto3(env, s3rver):
    forged = Key(ALICE.username, ALICE.id, "not-" + ALICE.secret)
    get_and_put_refused(env, s3rver, forged, "SignatureDoesNotMatch", "forged.txt")
    # Another user's secret with alice's key id is just as wrong.
    c = env.boto(Key(ALICE.username, ALICE.id, BOB.secret))
    refused(lambda: c.head_object(Bucket=env.bucket, Key="obj.txt"), None)


def test_forged_signature_awscli_and_js(env):
    forged = Key(ALICE.username, ALICE.id, "wrong-" + ALICE.secret)
    r = env.aws(forged, "s3api", "get-object", "--bucket", env.bucket, "--key", "obj.txt",
                os.devnull, check=False)
    assert r.returncode != 0 and "SignatureDoesNotMatch" in r.stderr, r.stderr
    res = env.js(forged, [{"op": "GetObject", "Bucket": env.bucket, "Key": "obj.txt"}])[0]
    assert (res["ok"], res["status"], res["code"]) == (False, 403, "SignatureDoesNotMatch"), res


def test_signature_over_other_request_refused(env, s3rver):
    """A valid signature for one key, replayed on another path."""
    headers = sign_request(f"http://127.0.0.1:{env.port}/{env.bucket}/obj.txt", "GET", ALICE)
    r = send(env.port, "GET", f"/{env.bucket}/other.txt", headers)
    assert (r.status, r.code) == (403, "SignatureDoesNotMatch"), r
    url = env.presign(ALICE, env.bucket, "obj.txt")
    r = env.get_url(url.replace("/obj.txt?", "/obj2.txt?"))
    assert (r.status, r.code) == (403, "SignatureDoesNotMatch"), r
    sig = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    bad = "0" * 64 if sig != "0" * 64 else "1" * 64
    r = env.get_url(url.replace(sig, bad))
    assert (r.status, r.code) == (403, "SignatureDoesNotMatch"), r
    assert ALICE.secret.encode() not in r.body


def test_unknown_access_key(env, s3rver):
    unknown = Key("nobody", "AKIAPCUNKNOWN0000009", "whatever-secret")
    get_and_put_refused(env, s3rver, unknown, "InvalidAccessKeyId", "unknown.txt")
    # The upstream's own key is not a Portcullis key.
    c = env.boto(Key("upstream", UPSTREAM_KEY, UPSTREAM_KEY))
    refused(lambda: c.list_objects_v2(Bucket=env.bucket), "InvalidAccessKeyId")
    res = env.js(Key("x", "AKIAPCUNKNOWN0000009", "s"), [{"op": "ListBuckets"}])[0]
    assert (res["ok"], res["status"], res["code"]) == (False, 403, "InvalidAccessKeyId"), res


def test_unsigned_request_refused(env):
    r = send(env.port, "GET", f"/{env.bucket}/obj.txt", {"Host": f"127.0.0.1:{env.port}"})
    assert (r.status, r.code) == (403, "AccessDenied"), r
    r = send(env.port, "GET", f"/{env.bucket}/obj.txt",
             {"Host": f"127.0.0.1:{env.port}", "Authorization": "AWS4-HMAC-SHA256 garbage"})
    assert 400 <= r.status < 500 and r.code, r


@pytest.mark.parametrize("minutes", [-20, 20])
def test_skewed_clock(env, s3rver, minutes):
    when = datetime.datetime.utcnow() + datetime.timedelta(minutes=minutes)
    r = env.raw(ALICE, "GET", f"/{env.bucket}/obj.txt", when=when)
    assert (r.status, r.code) == (403, "RequestTimeTooSkewed"), r
    r = env.raw(ALICE, "PUT", f"/{env.bucket}/skewed.txt", body=b"late", when=when)
    assert (r.status, r.code) == (403, "RequestTimeTooSkewed"), r
    assert not upstream_has(s3rver, env.bucket, "skewed.txt")
    # Within the 15 minutes: accepted.
    ok = datetime.datetime.utcnow() + datetime.timedelta(minutes=minutes // 5)
    r = env.raw(ALICE, "GET", f"/{env.bucket}/obj.txt", when=ok)
    assert (r.status, r.body) == (200, b"original"), r


def test_expired_presigned_url(env):
    url = env.presign(ALICE, env.bucket, "obj.txt", expires=1)
    time.sleep(2.5)
    r = env.get_url(url)
    assert (r.status, r.code) == (403, "AccessDenied"), r
    assert b"expired" in r.body.lower(), r.body
    # A fresh one still works.
    r = env.get_url(env.presign(ALICE, env.bucket, "obj.txt"))
    assert (r.status, r.body) == (200, b"original")


def test_tampered_body_refused(env, s3rver):
    signed = b"the body that was signed"
    sent = b"the body that was SENT!!"
    assert len(signed) == len(sent)
    r = env.raw(ALICE, "PUT", f"/{env.bucket}/tampered.txt", body=sent, sign_body=signed)
    assert (r.status, r.code) == (400, "XAmzContentSHA256Mismatch"), r
    assert not upstream_has(s3rver, env.bucket, "tampered.txt")
    # Over an existing object: the old content stays.
    r = env.raw(ALICE, "PUT", f"/{env.bucket}/obj.txt", body=b"replaced", sign_body=b"REPLACED")
    assert (r.status, r.code) == (400, "XAmzContentSHA256Mismatch"), r
    assert s3rver.client().get_object(Bucket=env.bucket, Key="obj.txt")["Body"].read() == \
        b"original"


def test_tampered_large_body_aborts_upstream(env, s3rver):
    """The mismatch is known only after the last byte, when most of the body has
    been streamed upstream already: the upstream request must be aborted."""
    data = os.urandom(4 * MiB)
    tampered = data[:-1] + bytes([data[-1] ^ 0xFF])
    r = env.raw(ALICE, "PUT", f"/{env.bucket}/big-tampered.bin", body=tampered, sign_body=data)
    assert (r.status, r.code) == (400, "XAmzContentSHA256Mismatch"), r
    assert not upstream_has(s3rver, env.bucket, "big-tampered.bin")


def streamed_put(env, s3rver, build, good, bad_kwargs, bad_status, bad_code):
    """A streamed upload (build(url, key, data, **kw) -> headers, body) is stored
    decoded; the same upload spoilt by bad_kwargs is refused and never stored."""
    data = os.urandom(300 * 1024 + 5)
    for name, kw in ((good, {}), ("bad-" + good, bad_kwargs)):
        headers, body = build(f"http://127.0.0.1:{env.port}/{env.bucket}/{name}", ALICE, data,
                              **kw)
        r = send(env.port, "PUT", f"/{env.bucket}/{name}", headers, body)
        if not kw:
            assert r.status == 200, r
            assert s3rver.client().get_object(Bucket=env.bucket, Key=name)["Body"].read() == data
        else:
            assert (r.status, r.code) == (bad_status, bad_code), r
            assert not upstream_has(s3rver, env.bucket, name)


def test_chunk_signed_upload(env, s3rver):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: each chunk signed; decoded upstream; a
    chunk changed after signing is SignatureDoesNotMatch."""
    streamed_put(env, s3rver, chunk_signed_request, "chunked.bin", {"tamper_chunk": 2}, 403,
                 "SignatureDoesNotMatch")


def test_unsigned_trailer_checksum(env, s3rver):
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer, as current AWS SDKs
    stream: decoded upstream; a wrong checksum is BadDigest."""
    streamed_put(env, s3rver, unsigned_trailer_request, "trailer.bin", {"crc32": 12345}, 400,
                 "BadDigest")


def test_refusals_audited_without_secrets(env):
    forged = Key(ALICE.username, ALICE.id, "not-" + ALICE.secret)
    c = env.boto(forged)
    refused(lambda: c.get_object(Bucket=env.bucket, Key="obj.txt"), "SignatureDoesNotMatch")
    url = env.presign(ALICE, env.bucket, "obj.txt")
    assert env.get_url(url).status == 200
    env.s3_records(lambda rs: any(x.get("status") == 200 for x in rs))
    # Whether a refused signature is audited is the connector's choice; what is
    # in the spool must not carry a secret or a signature either way.
    text = json.dumps(env.connector.spool_records())
    assert ALICE.secret not in text
    assert url.rsplit("X-Amz-Signature=", 1)[1][:64] not in text
