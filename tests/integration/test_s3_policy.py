"""S3 policies and audit (issue 8 items 4 and 6, design §4 and §6): the seed
policy verbatim, block types, fail closed, the S3 input document, audit records.
"""

import http.client
import json
import urllib.request
import uuid

import pytest

from s3harness import ALICE, BOB, refused, s3env, s3rver, send, sign_request  # noqa: F401

# design §4, verbatim
SEED_POLICY = """package formal.v2
import future.keywords.if
pre_request := { "action": "block", "type": "block_with_formal_message" } if {
  input.bucket.name == "sensitive-bucket"
  input.bucket.access_count.last_minute > 5
}
"""
SENSITIVE = "sensitive-bucket"


def new_bucket(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def seed_buckets(s3rver, *names):
    for b in names:
        s3rver.ensure_bucket(b)
        s3rver.client().put_object(Bucket=b, Key="data.csv", Body=b"id,value\n1,42\n")


def five_mixed_accesses(env, key, bucket):
    """Five requests of five different operations to one bucket, all allowed."""
    c = env.boto(key)
    assert c.head_object(Bucket=bucket, Key="data.csv")["ContentLength"] == 14
    assert c.get_object(Bucket=bucket, Key="data.csv")["Body"].read() == b"id,value\n1,42\n"
    assert [o["Key"] for o in c.list_objects_v2(Bucket=bucket)["Contents"]][0] == "data.csv"
    c.put_object(Bucket=bucket, Key=f"from-{key.username}.txt", Body=b"x")
    with urllib.request.urlopen(env.presign(key, bucket, "data.csv"), timeout=30) as r:
        assert r.status == 200


def test_seed_policy_sixth_access_refused(s3env, s3rver):
    other = new_bucket("other")
    seed_buckets(s3rver, SENSITIVE, other)
    env = s3env(policies={"seed": SEED_POLICY})
    a, b = env.boto(ALICE), env.boto(BOB)

    # Other buckets are not limited, and do not count towards the sensitive one.
    for _ in range(7):
        a.get_object(Bucket=other, Key="data.csv")["Body"].read()
    five_mixed_accesses(env, ALICE, SENSITIVE)
    refused(lambda: a.get_object(Bucket=SENSITIVE, Key="data.csv"))
    refused(lambda: a.put_object(Bucket=SENSITIVE, Key="late.txt", Body=b"x"))
    r = env.get_url(env.presign(ALICE, SENSITIVE, "data.csv"))
    assert (r.status, r.code) == (403, "AccessDenied"), r
    c = s3rver.client()
    with pytest.raises(c.exceptions.ClientError):
        c.head_object(Bucket=SENSITIVE, Key="late.txt")  # the block kept it from upstream

    # Alice elsewhere, and Bob on the same bucket, are not refused.
    assert a.get_object(Bucket=other, Key="data.csv")["Body"].read() == b"id,value\n1,42\n"
    five_mixed_accesses(env, BOB, SENSITIVE)
    refused(lambda: b.get_object(Bucket=SENSITIVE, Key="data.csv"))

    recs = env.s3_records(lambda rs: sum(x.get("decision") == "block" for x in rs) >= 4)
    blocked = [x for x in recs if x.get("decision") == "block"]
    assert {x["bucket"] for x in blocked} == {SENSITIVE}
    assert all(x["status"] == 403 and x["policies"] == ["seed"] for x in blocked), blocked
    assert {x["user"] for x in blocked} == {"alice", "bob"}
    allowed = [x for x in recs if x.get("bucket") == SENSITIVE and x.get("decision") == "allow"]
    assert sorted(x["user"] for x in allowed) == ["alice"] * 5 + ["bob"] * 5


def test_seed_policy_with_awscli_and_js(s3env, s3rver):
    """The count does not care which client sends the requests."""
    seed_buckets(s3rver, SENSITIVE)
    env = s3env(policies={"seed": SEED_POLICY})
    for _ in range(3):
        env.aws(ALICE, "s3api", "head-object", "--bucket", SENSITIVE, "--key", "data.csv")
    res = env.js(ALICE, [{"op": "GetObject", "Bucket": SENSITIVE, "Key": "data.csv"},
                         {"op": "ListObjectsV2", "Bucket": SENSITIVE},
                         {"op": "GetObject", "Bucket": SENSITIVE, "Key": "data.csv"}])
    assert [x["ok"] for x in res] == [True, True, False], res
    assert (res[2]["status"], res[2]["code"]) == (403, "AccessDenied"), res
    r = env.aws(ALICE, "s3", "ls", f"s3://{SENSITIVE}/", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr


def test_block_reason_and_s3_input(s3env, s3rver):
    b = new_bucket("input")
    seed_buckets(s3rver, b)
    env = s3env(policies={"guard": """package formal.v2
import rego.v1
pre_request := {"action": "block", "reason": "deletes are reviewed"} if {
  input.request.operation == "DeleteObject"
}
pre_request := {"action": "block", "reason": "no secrets for analysts"} if {
  startswith(input.object.key, "secret/")
  input.request.method == "GET"
  "analysts" in input.user.groups
  input.resource.technology == "s3"
}
pre_request := {"action": "block", "reason": "read-only path"} if {
  input.request.operation == "PutObject"
  startswith(input.request.path, sprintf("/%s/ro/", [input.bucket.name]))
}
"""})
    c = env.boto(ALICE)
    msg = refused(lambda: c.delete_object(Bucket=b, Key="data.csv"))
    assert "deletes are reviewed" in msg
    assert s3rver.client().get_object(Bucket=b, Key="data.csv")["Body"].read()
    s3rver.client().put_object(Bucket=b, Key="secret/plan.txt", Body=b"s")
    assert "no secrets for analysts" in refused(
        lambda: c.get_object(Bucket=b, Key="secret/plan.txt"))
    c.put_object(Bucket=b, Key="secret/new.txt", Body=b"PUT is not GET")
    assert "read-only path" in refused(lambda: c.put_object(Bucket=b, Key="ro/x", Body=b"x"))
    c.put_object(Bucket=b, Key="rw/x", Body=b"x")

    recs = env.s3_records(lambda rs: sum(x.get("decision") == "block" for x in rs) >= 3)
    reasons = {x.get("reason") for x in recs if x.get("decision") == "block"}
    assert {"deletes are reviewed", "no secrets for analysts", "read-only path"} <= reasons


def test_block_silently_closes_connection(s3env, s3rver):
    b = new_bucket("silent")
    seed_buckets(s3rver, b)
    env = s3env(policies={"silent": """package formal.v2
import rego.v1
pre_request := {"action": "block", "type": "block_silently"} if input.object.key == "hush.txt"
"""})
    s3rver.client().put_object(Bucket=b, Key="hush.txt", Body=b"quiet")
    headers = sign_request(f"http://127.0.0.1:{env.port}/{b}/hush.txt", "GET", ALICE)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError,
                        http.client.IncompleteRead)):
        send(env.port, "GET", f"/{b}/hush.txt", headers)
    # Only that request: the next one, on a new connection, is served.
    r = env.raw(ALICE, "GET", f"/{b}/data.csv")
    assert r.status == 200
    recs = env.s3_records(lambda rs: any(x.get("key") == "hush.txt" for x in rs))
    rec = [x for x in recs if x.get("key") == "hush.txt"][0]
    assert rec["decision"] == "block" and rec["policies"] == ["silent"]


def test_evaluation_error_fails_closed(s3env, s3rver):
    b = new_bucket("broken")
    seed_buckets(s3rver, b)
    env = s3env(policies={"broken": """package formal.v2
import rego.v1
# two values for one complete rule: a conflict error at evaluation time
pre_request := {"action": "allow"} if input.bucket.name == "%s"
pre_request := {"action": "allow", "n": 2} if input.bucket.name == "%s"
""" % (b, b)})
    c = env.boto(ALICE)
    msg = refused(lambda: c.get_object(Bucket=b, Key="data.csv"))
    assert "policy evaluation failed" in msg
    env.connector.wait_log("policy evaluation failed", policy="broken")
    # Requests the broken rule does not reach are not affected.
    other = new_bucket("fine")
    seed_buckets(s3rver, other)
    assert c.get_object(Bucket=other, Key="data.csv")["Body"].read()


def test_dry_run_not_enforced(s3env, s3rver):
    b = new_bucket("dry")
    seed_buckets(s3rver, b)
    env = s3env(policy_objects=[{"name": "dry", "status": "dry-run", "module": """package dry
import rego.v1
pre_request := {"action": "block", "reason": "would block"} if input.request.operation == "GetObject"
"""}])
    assert env.boto(ALICE).get_object(Bucket=b, Key="data.csv")["Body"].read()
    env.connector.wait_log("policy dry-run decision", policy="dry")
    recs = env.s3_records(lambda rs: any(x.get("policies") == ["dry"] for x in rs))
    rec = [x for x in recs if x.get("policies") == ["dry"]][0]
    assert (rec["decision"], rec["status"], rec["operation"]) == ("allow", 200, "GetObject")


def test_audit_records(s3env, s3rver):
    b = new_bucket("audit")
    s3rver.ensure_bucket(b)
    env = s3env(policies={"nodel": """package formal.v2
import rego.v1
pre_request := {"action": "block", "reason": "keep it"} if input.request.operation == "DeleteObject"
"""})
    c = env.boto(ALICE)
    body = b"0123456789" * 1000
    c.put_object(Bucket=b, Key="a/x.bin", Body=body)
    c.get_object(Bucket=b, Key="a/x.bin")["Body"].read()
    c.head_object(Bucket=b, Key="a/x.bin")
    c.list_objects_v2(Bucket=b)
    refused(lambda: c.delete_object(Bucket=b, Key="a/x.bin"))
    refused(lambda: c.get_object(Bucket=b, Key="missing"), "NoSuchKey", 404)
    recs = env.s3_records(lambda rs: sum(x.get("bucket") == b for x in rs) >= 6)
    mine = [x for x in recs if x.get("bucket") == b]
    by_op = {}
    for x in mine:
        by_op.setdefault(x["operation"], []).append(x)
    put, get = by_op["PutObject"][0], by_op["GetObject"][0]
    for x in mine:
        assert x["user"] == "alice" and x["resource"] == "s3-main" and x["technology"] == "s3"
        assert x["type"] == "request" and x["id"].startswith("itest-")
        assert "decision" in x and "status" in x and "duration_us" in x
    assert (put["key"], put["status"], put["decision"]) == ("a/x.bin", 200, "allow")
    assert put["bytes"] >= len(body)
    assert (get["key"], get["status"], get["decision"]) == ("a/x.bin", 200, "allow")
    assert get["bytes"] >= len(body)
    assert by_op["HeadObject"][0]["status"] == 200
    assert by_op["ListObjectsV2"][0].get("key") in (None, "")
    dele = by_op["DeleteObject"][0]
    assert (dele["status"], dele["decision"], dele["policies"], dele["reason"]) == \
        (403, "block", ["nodel"], "keep it")
    missing = [x for x in by_op["GetObject"] if x["key"] == "missing"][0]
    assert (missing["status"], missing["decision"]) == (404, "allow")
    text = json.dumps(recs)
    assert ALICE.secret not in text and "S3RVER" not in text


def test_session_stage_block(s3env, s3rver):
    """Design §4: the session stage runs after the user authenticated, before the
    upstream is contacted, for every connector; a block there is AccessDenied."""
    b = new_bucket("sess")
    seed_buckets(s3rver, b)
    env = s3env(policies={"suspend": """package formal.v2
import rego.v1
session := {"action": "block", "reason": "bob is suspended"} if input.user.username == "bob"
"""})
    msg = refused(lambda: env.boto(BOB).get_object(Bucket=b, Key="data.csv"))
    assert "bob is suspended" in msg
    assert env.boto(ALICE).get_object(Bucket=b, Key="data.csv")["Body"].read()
