"""S3 connector with real clients (issue 8 item 7): Debian's awscli and boto3 and
the AWS SDK for JavaScript, through a connector listener, against s3rver.

Every round checks the data also on the upstream itself (s3rver, reached with
the resource's real key): what the client put is what the bucket holds.
"""

import hashlib
import os
import urllib.request
import uuid

from s3harness import ALICE, refused, s3env, s3rver, sha256_file  # noqa: F401

MiB = 1 << 20


def new_bucket(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def upstream_get(s3rver, bucket, key):
    return s3rver.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def test_boto3_full_round(s3env, s3rver):
    env = s3env()
    c = env.boto(ALICE)
    b = new_bucket("boto")
    key = "dir/a b+c%d/é~x.txt"  # canonical-URI encoding on both legs
    body = b"hello from boto3\n" * 100

    assert c.create_bucket(Bucket=b)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert b in [x["Name"] for x in c.list_buckets()["Buckets"]]
    c.put_object(Bucket=b, Key=key, Body=body)
    assert upstream_get(s3rver, b, key) == body
    assert c.head_object(Bucket=b, Key=key)["ContentLength"] == len(body)
    assert c.get_object(Bucket=b, Key=key)["Body"].read() == body
    # A query string that must survive verification and re-signing.
    listed = c.list_objects_v2(Bucket=b, Prefix="dir/a b+", MaxKeys=10)
    assert [o["Key"] for o in listed["Contents"]] == [key]
    # (s3rver decodes "+" in x-amz-copy-source as a space: copy from a key without one)
    src = "dir/a b~c%d/é.txt"
    c.put_object(Bucket=b, Key=src, Body=body[::-1])
    c.copy_object(Bucket=b, Key="copy.txt", CopySource={"Bucket": b, "Key": src})
    assert c.get_object(Bucket=b, Key="copy.txt")["Body"].read() == body[::-1]
    assert upstream_get(s3rver, b, "copy.txt") == body[::-1]
    ranged = c.get_object(Bucket=b, Key=key, Range="bytes=6-9")
    assert ranged["Body"].read() == body[6:10]

    deleted = c.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "copy.txt"}, {"Key": src}]})
    assert sorted(d["Key"] for d in deleted.get("Deleted", [])) == ["copy.txt", src]
    c.delete_object(Bucket=b, Key=key)
    refused(lambda: c.head_object(Bucket=b, Key=key), None, 404)
    refused(lambda: c.get_object(Bucket=b, Key="never-there"), "NoSuchKey", 404)
    c.delete_bucket(Bucket=b)
    assert b not in [x["Name"] for x in s3rver.client().list_buckets()["Buckets"]]


def test_boto3_many_requests_on_one_connection(s3env, s3rver):
    """Keep-alive: boto3 reuses one connection for consecutive calls."""
    env = s3env()
    c = env.boto(ALICE)
    b = new_bucket("keep")
    s3rver.ensure_bucket(b)
    for i in range(20):
        c.put_object(Bucket=b, Key=f"k{i}", Body=f"v{i}".encode())
    for i in range(20):
        assert c.get_object(Bucket=b, Key=f"k{i}")["Body"].read() == f"v{i}".encode()
    assert len(c.list_objects_v2(Bucket=b)["Contents"]) == 20


def test_awscli_full_round(s3env, s3rver, tmp_path):
    env = s3env()
    b = new_bucket("cli")
    src = tmp_path / "small.txt"
    src.write_bytes(b"hello from the aws cli\n")
    env.aws(ALICE, "s3", "mb", f"s3://{b}")
    env.aws(ALICE, "s3", "cp", str(src), f"s3://{b}/docs/small.txt")
    assert upstream_get(s3rver, b, "docs/small.txt") == src.read_bytes()
    ls = env.aws(ALICE, "s3", "ls", f"s3://{b}/docs/").stdout
    assert "small.txt" in ls
    head = env.aws(ALICE, "s3api", "head-object", "--bucket", b, "--key", "docs/small.txt").stdout
    assert '"ContentLength": %d' % len(src.read_bytes()) in head
    env.aws(ALICE, "s3", "cp", f"s3://{b}/docs/small.txt", f"s3://{b}/docs/copy.txt")
    out = tmp_path / "back.txt"
    env.aws(ALICE, "s3", "cp", f"s3://{b}/docs/copy.txt", str(out))
    assert out.read_bytes() == src.read_bytes()
    # One at a time: s3rver fails concurrent deletes of keys under one prefix.
    env.aws(ALICE, "s3", "rm", f"s3://{b}/docs/small.txt")
    env.aws(ALICE, "s3", "rm", f"s3://{b}/docs/copy.txt")
    assert env.aws(ALICE, "s3", "ls", f"s3://{b}/").stdout.strip() == ""
    env.aws(ALICE, "s3", "rb", f"s3://{b}")
    buckets = [x["Name"] for x in s3rver.client().list_buckets()["Buckets"]]
    assert b not in buckets


def test_awscli_multipart_64mb(s3env, s3rver, tmp_path):
    """aws s3 cp splits a 64 MiB file into 8 MiB parts (signed payload per part
    over plain HTTP); the download comes back byte-identical."""
    env = s3env()
    b = new_bucket("multi")
    s3rver.ensure_bucket(b)
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(MiB))
    env.aws(ALICE, "s3", "cp", str(src), f"s3://{b}/big.bin")
    head = s3rver.client().head_object(Bucket=b, Key="big.bin")
    assert head["ContentLength"] == 64 * MiB
    out = tmp_path / "big.out"
    env.aws(ALICE, "s3", "cp", f"s3://{b}/big.bin", str(out))
    assert sha256_file(out) == sha256_file(src)
    recs = env.s3_records(lambda rs: any(r.get("operation") == "CompleteMultipartUpload"
                                         for r in rs))
    ops = [r.get("operation") for r in recs if r.get("bucket") == b]
    assert "CreateMultipartUpload" in ops and ops.count("UploadPart") == 8
    parts = [r for r in recs if r.get("operation") == "UploadPart"]
    assert all(r.get("status") == 200 and r.get("key") == "big.bin" for r in parts)
    assert sum(r.get("bytes", 0) for r in parts) >= 64 * MiB


def test_boto3_multipart_upload_file(s3env, s3rver, tmp_path):
    """boto3's transfer manager, its own part size, concurrent parts."""
    from boto3.s3.transfer import TransferConfig
    env = s3env()
    c = env.boto(ALICE)
    b = new_bucket("tm")
    s3rver.ensure_bucket(b)
    src = tmp_path / "tm.bin"
    src.write_bytes(os.urandom(20 * MiB))
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB,
                         max_concurrency=4)
    c.upload_file(str(src), b, "tm.bin", Config=cfg)
    out = tmp_path / "tm.out"
    c.download_file(b, "tm.bin", str(out), Config=cfg)
    assert sha256_file(out) == sha256_file(src)
    assert s3rver.client().head_object(Bucket=b, Key="tm.bin")["ContentLength"] == 20 * MiB


def test_js_sdk_full_round(s3env, s3rver, tmp_path):
    env = s3env()
    b = new_bucket("js")
    big = tmp_path / "stream.bin"
    big.write_bytes(os.urandom(3 * MiB + 17))
    r = env.js(ALICE, [
        {"op": "CreateBucket", "Bucket": b},
        {"op": "PutObject", "Bucket": b, "Key": "a/hello.txt", "Body": "hello from the JS SDK"},
        # A stream body: the SDK sends aws-chunked with a trailing checksum.
        {"op": "PutObject", "Bucket": b, "Key": "a/stream.bin", "BodyFile": str(big)},
        {"op": "HeadObject", "Bucket": b, "Key": "a/hello.txt"},
        {"op": "GetObject", "Bucket": b, "Key": "a/hello.txt"},
        {"op": "ListObjectsV2", "Bucket": b, "Prefix": "a/"},
        {"op": "CopyObject", "Bucket": b, "Key": "b/copy.txt", "CopySource": f"{b}/a/hello.txt"},
        {"op": "GetObject", "Bucket": b, "Key": "b/copy.txt"},
        {"op": "ListBuckets"},
    ])
    assert [x["ok"] for x in r] == [True] * len(r), r
    assert r[3]["ContentLength"] == len("hello from the JS SDK")
    assert r[4]["BodyBase64"] == "aGVsbG8gZnJvbSB0aGUgSlMgU0RL"
    assert r[5]["Keys"] == ["a/hello.txt", "a/stream.bin"]
    assert r[7]["BodyBase64"] == r[4]["BodyBase64"]
    assert b in r[8]["Buckets"]
    # The upstream holds the decoded object, not the aws-chunked framing.
    stored = upstream_get(s3rver, b, "a/stream.bin")
    assert len(stored) == big.stat().st_size
    assert hashlib.sha256(stored).hexdigest() == sha256_file(big)

    # (s3rver fails deleting two keys of one "directory" at once: ENOENT in its
    # empty-directory cleanup; so the keys of one DeleteObjects differ in prefix)
    r = env.js(ALICE, [
        {"op": "DeleteObjects", "Bucket": b,
         "Delete": {"Objects": [{"Key": "a/hello.txt"}, {"Key": "b/copy.txt"}]}},
        {"op": "DeleteObject", "Bucket": b, "Key": "a/stream.bin"},
        {"op": "HeadObject", "Bucket": b, "Key": "b/copy.txt"},
        {"op": "DeleteBucket", "Bucket": b},
    ])
    assert r[0]["ok"] and sorted(r[0]["Deleted"]) == ["a/hello.txt", "b/copy.txt"], r
    assert r[1]["ok"], r
    assert not r[2]["ok"] and r[2]["status"] == 404, r
    assert r[3]["ok"], r


def test_presigned_get_and_put(s3env, s3rver):
    env = s3env()
    b = new_bucket("pre")
    s3rver.ensure_bucket(b)
    body = b"presigned body"
    env.boto(ALICE).put_object(Bucket=b, Key="p.txt", Body=body)
    url = env.presign(ALICE, b, "p.txt")
    assert "X-Amz-Signature=" in url and ALICE.id in url
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200 and resp.read() == body

    put_url = env.presign(ALICE, b, "up.txt", method="put_object")
    req = urllib.request.Request(put_url, data=b"uploaded via presigned PUT", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    assert upstream_get(s3rver, b, "up.txt") == b"uploaded via presigned PUT"


def test_virtual_hosted_style(s3env, s3rver):
    """With the listener's hostname H, Host: <bucket>.H addresses the bucket."""
    host = "s3.portcullis.test"
    env = s3env(hostname=host)
    b = new_bucket("vh")
    s3rver.ensure_bucket(b)
    vhost = f"{b}.{host}:{env.port}"

    r = env.raw(ALICE, "PUT", "/dir/v.txt", body=b"virtual", host=vhost)
    assert r.status == 200, r
    assert upstream_get(s3rver, b, "dir/v.txt") == b"virtual"
    r = env.raw(ALICE, "GET", "/dir/v.txt", host=vhost)
    assert (r.status, r.body) == (200, b"virtual")
    r = env.raw(ALICE, "GET", "/", host=vhost, query="list-type=2")
    assert r.status == 200 and b"<Key>dir/v.txt</Key>" in r.body
    # A presigned virtual-hosted URL, as boto3 builds it for that endpoint.
    url = env.presign(ALICE, b, "dir/v.txt", addressing="virtual",
                      endpoint=f"http://{host}:{env.port}")
    assert url.startswith(f"http://{vhost}/dir/v.txt?")
    r = env.get_url(url)
    assert (r.status, r.body) == (200, b"virtual")
    # Path style keeps working on the same listener.
    r = env.raw(ALICE, "GET", f"/{b}/dir/v.txt")
    assert (r.status, r.body) == (200, b"virtual")

    recs = env.s3_records(lambda rs: sum(x.get("bucket") == b for x in rs) >= 5)
    gets = [x for x in recs if x.get("bucket") == b and x.get("operation") == "GetObject"]
    assert len(gets) == 3 and all(x.get("key") == "dir/v.txt" for x in gets)
    assert any(x.get("operation") == "ListObjectsV2" for x in recs if x.get("bucket") == b)


def peak_rss(pid):
    """VmHWM of a process in bytes: its peak resident memory so far."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_large_transfers_stream_in_bounded_memory(s3env, s3rver, tmp_path):
    """256 MiB up and down: the connector's peak RSS grows by far less than the
    object (issue: a 1 GB transfer must not grow memory by more than a few MB)."""
    env = s3env(direct=True)  # the checking gate buffers bodies; s3rver streams
    b = new_bucket("stream")
    s3rver.ensure_bucket(b)
    c = env.boto(ALICE)
    # Warm up: buffers and pooled upstream connections exist before the baseline.
    c.put_object(Bucket=b, Key="warm", Body=os.urandom(4 * MiB))
    assert len(c.get_object(Bucket=b, Key="warm")["Body"].read()) == 4 * MiB
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(256):
            f.write(os.urandom(MiB))
    pid = env.connector.proc.pid
    base = peak_rss(pid)
    with open(src, "rb") as f:
        c.put_object(Bucket=b, Key="big.bin", Body=f)
    up = peak_rss(pid)
    out = tmp_path / "big.out"
    with open(out, "wb") as f:
        for chunk in c.get_object(Bucket=b, Key="big.bin")["Body"].iter_chunks(MiB):
            f.write(chunk)
    down = peak_rss(pid)
    assert sha256_file(out) == sha256_file(src)
    print(f"connector peak RSS: {base >> 20} MiB before, {up >> 20} after the upload, "
          f"{down >> 20} after the download")
    assert up - base < 16 * MiB and down - base < 16 * MiB
