"""The control plane's HTTP API against a real server process (no connector):
auth, CRUD and revisions, secrets, policy compilation, watch streams, audit
logs, Connected Instances, bad input."""

import re
import sqlite3
import subprocess
import time

import pytest

from cpharness import ControlPlane
from harness import portcullis_path

PG_PASSWORD = "upstream-pg-secret-7f3a"
USER_PASSWORD = "alice-plain-password-9c1d"
AK_SECRET = "access-key-secret-55aa"

OBJECTS = {
    "resources": [{"name": "pg-main", "technology": "postgres", "hostname": "127.0.0.1",
                   "port": 5432, "database": "app",
                   "credentials": {"username": "app", "password": PG_PASSWORD}}],
    "listeners": [{"name": "pg", "port": 15433, "resource": "pg-main"}],
    "users": [{"username": "alice", "email": "alice@example.com", "groups": ["analysts"],
               "password": USER_PASSWORD,
               "access_keys": [{"id": "AKIATEST1", "secret": AK_SECRET}]}],
    "policies": [{"name": "seed", "status": "active", "module":
                  "package formal.v2\nimport future.keywords.if\n"
                  "pre_request := {\"action\": \"block\", \"type\": \"block_with_formal_message\"} if {\n"
                  "  input.bucket.name == \"sensitive-bucket\"\n"
                  "  input.bucket.access_count.last_minute > 5\n}\n"}],
}


@pytest.fixture
def cp():
    c = ControlPlane()
    try:
        yield c
    finally:
        c.close()


def error_of(body):
    assert isinstance(body, dict) and "error" in body, body
    return body["error"]


def test_auth_is_required_and_errors_are_json(cp):
    token = cp.create_connector("c1")
    for tok in (None, "wrong-token", token):
        status, body, _ = cp.api("GET", "/v1/resources", token=tok)
        assert status == 401
        assert error_of(body)["code"] == "unauthorized"
    # The admin token is not a connector token.
    status, body, _ = cp.api("POST", "/v1/connector/heartbeat", {"instance": "i"})
    assert status == 401
    status, body, _ = cp.api("GET", "/v1/connector/config", token="pct_" + "0" * 64)
    assert status == 401
    status, body, _ = cp.api("GET", "/v1/nothing-here")
    assert status == 404 and error_of(body)["code"] == "not_found"


def test_malformed_and_oversized_bodies(cp):
    status, body, _ = cp.api("POST", "/v1/apply", raw="{not json")
    assert status == 400 and error_of(body)["code"] == "malformed_json"
    status, body, _ = cp.api("PUT", "/v1/resources/x", raw="[1,2")
    assert status == 400 and error_of(body)["code"] == "malformed_json"
    status, body, _ = cp.api("POST", "/v1/apply", raw='{"widgets": []}')
    assert status == 400 and "widgets" in error_of(body)["message"]
    big = '{"resources": [], "pad": "' + "x" * (4 * 1024 * 1024 + 10) + '"}'
    status, body, _ = cp.api("POST", "/v1/apply", raw=big)
    assert status == 413 and error_of(body)["code"] == "body_too_large"
    token = cp.create_connector("c1")
    status, body, _ = cp.api("POST", "/v1/connector/logs", token=token, raw=big)
    assert status == 413
    status, body, _ = cp.api("POST", "/v1/connector/logs", token=token, raw="{\"records\": [")
    assert status == 400 and error_of(body)["code"] == "malformed_json"
    # Still serving afterwards.
    assert cp.api("GET", "/v1/revision")[0] == 200


def test_crud_and_revisions(cp):
    assert cp.api("GET", "/v1/revision")[1] == {"revision": 0}
    status, body, text = cp.api("POST", "/v1/apply", OBJECTS)
    assert status == 200, text
    assert body == {"revision": 1}
    status, body, _ = cp.api("GET", "/v1/listeners")
    assert body["revision"] == 1 and [l["name"] for l in body["items"]] == ["pg"]
    status, body, _ = cp.api("GET", "/v1/policies/seed")
    assert status == 200 and body["module"].startswith("package formal.v2")
    # PUT: name must match; every write is a new revision.
    status, body, _ = cp.api("PUT", "/v1/listeners/pg2", {"name": "other", "port": 1})
    assert status == 400
    status, body, text = cp.api("PUT", "/v1/listeners/pg2",
                                {"port": 15434, "resource": "pg-main", "tls": "disabled"})
    assert status == 200, text
    assert body == {"revision": 2}
    assert cp.api("GET", "/v1/listeners/pg2")[1]["name"] == "pg2"
    status, body, _ = cp.api("DELETE", "/v1/listeners/pg2")
    assert (status, body) == (200, {"revision": 3})
    assert cp.api("GET", "/v1/listeners/pg2")[0] == 404
    assert cp.api("DELETE", "/v1/listeners/pg2")[0] == 404
    # A snapshot that would be invalid as a whole changes nothing.
    status, body, _ = cp.api("PUT", "/v1/listeners/bad", {"port": 15435, "resource": "nope"})
    assert status == 400 and error_of(body)["code"] == "invalid_snapshot"
    assert "nope" in error_of(body)["message"]
    status, body, _ = cp.api("PUT", "/v1/listeners/dup", {"port": 15433, "resource": "pg-main"})
    assert status == 400
    status, body, _ = cp.api("DELETE", "/v1/resources/pg-main")  # still referenced by pg
    assert status == 400
    assert cp.api("GET", "/v1/revision")[1] == {"revision": 3}
    # The history says what each revision changed (and never holds a secret).
    status, body, text = cp.api("GET", "/v1/revisions")
    assert status == 200
    assert [r["revision"] for r in body["items"]] == [3, 2, 1]
    assert body["items"][0]["changes"] == [{"op": "delete", "kind": "listeners", "name": "pg2"}]
    assert {"op": "put", "kind": "users", "name": "alice"} in body["items"][2]["changes"]
    assert PG_PASSWORD not in text and USER_PASSWORD not in text
    # Revisions survive a restart.
    assert cp.stop() == 0
    cp.start()
    assert cp.api("GET", "/v1/revision")[1] == {"revision": 3}
    assert [l["name"] for l in cp.api("GET", "/v1/listeners")[1]["items"]] == ["pg"]


def test_secrets_are_write_only(cp):
    assert cp.api("POST", "/v1/apply", OBJECTS)[0] == 200
    texts = []
    for kind in ("resources", "listeners", "users", "policies"):
        texts.append(cp.api("GET", f"/v1/{kind}")[2])
    texts.append(cp.api("GET", "/v1/users/alice")[2])
    texts.append(cp.api("GET", "/v1/resources/pg-main")[2])
    for t in texts:
        for secret in (PG_PASSWORD, USER_PASSWORD, AK_SECRET, "SCRAM-SHA-256$"):
            assert secret not in t
    user = cp.api("GET", "/v1/users/alice")[1]
    assert user["access_keys"][0] == {"id": "AKIATEST1", "secret": "***"}
    # "***" keeps the stored secret on a GET-edit-PUT round trip.
    user["email"] = "alice@new.example"
    status, body, text = cp.api("PUT", "/v1/users/alice", user)
    assert status == 200, text
    # The connector's snapshot carries what it needs, never the user's plaintext password.
    token = cp.create_connector("c1")
    status, snap, text = cp.api("GET", "/v1/connector/config", token=token)
    assert status == 200
    assert snap["revision"] == 2
    assert snap["resources"][0]["credentials"]["password"] == PG_PASSWORD
    u = snap["users"][0]
    assert u["email"] == "alice@new.example"
    assert u["access_keys"][0]["secret"] == AK_SECRET
    assert re.match(r"^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$",
                    u["scram_verifier"])
    assert USER_PASSWORD not in text and "password" not in u
    # Neither the database nor the log holds the user's plaintext password.
    cp.stop()
    with open(cp.db, "rb") as f:
        data = f.read()
    for name in ("cp.db-wal",):
        try:
            with open(cp.db[:-len("cp.db")] + name, "rb") as f:
                data += f.read()
        except FileNotFoundError:
            pass
    assert USER_PASSWORD.encode() not in data
    log = "\n".join(cp.raw_stderr)
    for secret in (PG_PASSWORD, USER_PASSWORD, AK_SECRET, token, cp.admin_token):
        assert secret not in log


def test_invalid_policy_is_refused_with_location(cp):
    assert cp.api("POST", "/v1/apply", OBJECTS)[0] == 200
    bad = {"policies": [{"name": "broken", "module": "package x\n\nallow if {\n  input.x ==\n}\n"}],
           "listeners": [{"name": "pg9", "port": 15439, "resource": "pg-main"}]}
    status, body, _ = cp.api("POST", "/v1/apply", bad)
    assert status == 400
    err = error_of(body)
    assert err["code"] == "invalid_policy"
    assert re.match(r"^broken\.rego:\d+:\d+: ", err["message"]), err["message"]
    # Nothing of that apply landed.
    assert cp.api("GET", "/v1/revision")[1] == {"revision": 1}
    assert cp.api("GET", "/v1/listeners/pg9")[0] == 404
    status, body, _ = cp.api("PUT", "/v1/policies/broken2", {"module": "package"})
    assert status == 400 and re.match(r"^broken2\.rego:\d+:\d+: ", error_of(body)["message"])


def test_watch_stream_snapshots_and_heartbeats(cp):
    token = cp.create_connector("c1")
    w0 = cp.watch(token, since=0)
    assert w0.status == 200
    assert w0.headers.get("Content-Type") == "application/x-ndjson"
    # Nothing configured yet: a heartbeat, no snapshot.
    assert w0.wait_for(lambda o: o["type"] == "heartbeat", 7)
    assert not w0.snapshots()
    sent = time.monotonic()
    status, body, _ = cp.api("POST", "/v1/apply", OBJECTS)
    assert status == 200
    got = w0.wait_for(lambda o: o.get("type") == "snapshot" and o["revision"] == 1, 5)
    assert got, "no snapshot after the write"
    # From sending the write (so the write's own work counts) to the line's arrival.
    latency = got[0] - sent
    print(f"write -> watch delivery: {latency * 1000:.1f} ms")
    assert latency < 1.0
    snap = got[1]["snapshot"]
    assert snap["revision"] == 1 and snap["listeners"][0]["name"] == "pg"
    # A late watcher starting from 0 gets the current snapshot at once; one that is
    # up to date gets heartbeats only.
    w1 = cp.watch(token, since=0)
    assert w1.wait_for(lambda o: o.get("type") == "snapshot" and o["revision"] == 1, 5)
    w2 = cp.watch(token, since=1)
    hb = w2.wait_for(lambda o: o["type"] == "heartbeat", 7)
    assert hb and hb[1]["revision"] == 1 and re.match(r"^\d{4}-\d\d-\d\dT", hb[1]["ts"])
    assert not w2.snapshots()
    # Every open watch gets the next revision.
    assert cp.api("DELETE", "/v1/policies/seed")[0] == 200
    for w in (w0, w1, w2):
        assert w.wait_for(lambda o: o.get("type") == "snapshot" and o["revision"] == 2, 5)
    # Heartbeats keep coming (every 5 s).
    n = len([1 for _, o in w2.lines if o["type"] == "heartbeat"])
    assert w2.wait_for(lambda o: False, 0) is None
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline and \
            len([1 for _, o in w2.lines if o["type"] == "heartbeat"]) <= n:
        time.sleep(0.1)
    assert len([1 for _, o in w2.lines if o["type"] == "heartbeat"]) > n
    # Deleting the connector ends its streams.
    assert cp.api("DELETE", "/v1/connectors/c1")[0] == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not w0.closed:
        time.sleep(0.05)
    assert w0.closed
    assert cp.api("GET", "/v1/connector/config", token=token)[0] == 401


def test_watch_survives_many_writes_in_order(cp):
    token = cp.create_connector("c1")
    assert cp.api("POST", "/v1/apply", OBJECTS)[0] == 200
    w = cp.watch(token, since=0)
    for i in range(10):
        status, _, text = cp.api("PUT", f"/v1/listeners/l{i}",
                                 {"port": 16000 + i, "resource": "pg-main"})
        assert status == 200, text
    assert w.wait_for(lambda o: o.get("revision") == 11 and o["type"] == "snapshot", 5)
    revs = [s["revision"] for s in w.snapshots()]
    assert revs == sorted(revs) and len(set(revs)) == len(revs) and revs[-1] == 11
    assert len(w.snapshots()[-1]["snapshot"]["listeners"]) == 11


def record(i, user="alice", resource="pg-main", decision="allow", ts=None):
    return {"id": f"i1-{i}", "ts": ts or f"2026-01-01T00:00:{i:02d}.000000Z", "instance": "i1",
            "version": "0.1.0", "user": user, "resource": resource, "technology": "postgres",
            "session_id": "s1", "query": f"SELECT {i}", "decision": decision}


def test_logs_ingest_is_idempotent_and_queries_filter_and_page(cp):
    token = cp.create_connector("c1")
    recs = [record(i, user="alice" if i % 2 else "bob",
                   decision="block" if i % 3 == 0 else "allow") for i in range(1, 11)]
    status, body, _ = cp.api("POST", "/v1/connector/logs", {"records": recs[:6]}, token=token)
    assert (status, body["accepted"], body["duplicates"]) == (200, 6, 0)
    status, body, _ = cp.api("POST", "/v1/connector/logs", {"records": recs}, token=token)
    assert (status, body["accepted"], body["duplicates"]) == (200, 4, 6)
    status, body, _ = cp.api("POST", "/v1/connector/logs", {"records": recs}, token=token)
    assert (body["accepted"], body["duplicates"]) == (0, 10)
    # A record without an id is skipped, not a reason to refuse the batch forever.
    status, body, _ = cp.api("POST", "/v1/connector/logs",
                             {"records": [{"ts": "x"}, record(11)]}, token=token)
    assert (status, body["accepted"], body["rejected"]) == (200, 1, 1)

    def q(params):
        status, body, text = cp.api("GET", "/v1/logs?" + params)
        assert status == 200, text
        return body

    allrecs = q("limit=1000")["items"]
    assert [r["id"] for r in allrecs] == [f"i1-{i}" for i in range(1, 12)]
    assert all(r["user"] == "alice" for r in q("user=alice")["items"])
    assert len(q("user=alice")["items"]) == 6
    assert [r["id"] for r in q("decision=block")["items"]] == ["i1-3", "i1-6", "i1-9"]
    assert len(q("resource=pg-main")["items"]) == 11 and q("resource=other")["items"] == []
    assert [r["id"] for r in q("since=2026-01-01T00:00:05Z&until=2026-01-01T00:00:08Z")["items"]] \
        == ["i1-5", "i1-6", "i1-7"]
    # Paging visits every record once, in (ts, id) order.
    seen, after = [], ""
    while True:
        page = q("limit=3" + (f"&after={after}" if after else ""))
        seen += [r["id"] for r in page["items"]]
        if not page["next"]:
            break
        after = page["next"]
    assert seen == [r["id"] for r in allrecs]
    newest = q("order=desc&limit=2")["items"]
    assert [r["id"] for r in newest] == ["i1-11", "i1-10"]
    assert cp.api("GET", "/v1/logs?limit=0")[0] == 400
    assert cp.api("GET", "/v1/logs?since=yesterday")[0] == 400
    assert cp.api("GET", "/v1/logs?after=garbage")[0] == 400


def test_instances_statuses(cp):
    token = cp.create_connector("c1")
    for name, addr in (("i1", "10.0.0.5:8080"), ("i2", "10.0.0.6:8080")):
        status, body, _ = cp.api("POST", "/v1/connector/heartbeat", {
            "instance": name, "version": "0.1.0", "address": addr,
            "health": {"ready": True, "control_plane": "connected", "cluster": "disabled"},
            "cluster_role": "none"}, token=token)
        assert status == 200 and body["ok"] is True and body["revision"] == 0
    items = cp.api("GET", "/v1/instances")[1]["items"]
    assert [(i["instance"], i["connector"], i["version"], i["address"], i["status"])
            for i in items] == [("i1", "c1", "0.1.0", "10.0.0.5:8080", "connected"),
                                ("i2", "c1", "0.1.0", "10.0.0.6:8080", "connected")]
    assert items[0]["health"]["ready"] is True
    # Age the heartbeats behind the server's back (WAL allows a second writer).
    db = sqlite3.connect(cp.db, timeout=10)
    now_us = int(time.time() * 1e6)
    db.execute("UPDATE instances SET last_seen_us = ? WHERE instance = 'i1'", (now_us - 60_000_000,))
    db.execute("UPDATE instances SET last_seen_us = ? WHERE instance = 'i2'", (now_us - 600_000_000,))
    db.commit()
    db.close()
    items = {i["instance"]: i["status"] for i in cp.api("GET", "/v1/instances")[1]["items"]}
    assert items == {"i1": "stale", "i2": "gone"}
    assert cp.api("POST", "/v1/connector/heartbeat", {"version": "x"}, token=token)[0] == 400
    conns = cp.api("GET", "/v1/connectors")[1]["items"]
    assert conns[0]["name"] == "c1" and conns[0]["last_seen"] and "token" not in conns[0]
    assert cp.api("POST", "/v1/connectors", {"name": "c1"})[0] == 409


def test_config_errors_exit_2(tmp_path):
    cfg = tmp_path / "cp.yaml"
    cfg.write_text("listen: 127.0.0.1:1\nadmin_token: 0123456789abcdef0123\nbogus: 1\n")
    r = subprocess.run([portcullis_path(), "controlplane", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "bogus" in r.stderr
    cfg.write_text("listen: 127.0.0.1:1\n")
    r = subprocess.run([portcullis_path(), "controlplane", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "admin_token" in r.stderr
    r = subprocess.run([portcullis_path(), "controlplane", "--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and "admin_token" in r.stdout


def test_closed_watchers_are_released(cp):
    token = cp.create_connector("c1")
    watches = [cp.watch(token, since=0) for _ in range(5)]
    for w in watches:
        assert w.wait_for(lambda o: o["type"] == "heartbeat", 7)
        w.close()

    def closed():
        return len([l for l in cp.logs if l.get("msg") == "watch closed"]) >= 5
    # The next heartbeat write (within 5 s) fails and ends each stream.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not closed():
        time.sleep(0.1)
    assert closed()
    assert cp.api("GET", "/v1/revision")[0] == 200


def test_stalled_watcher_blocks_nobody(cp):
    import socket
    token = cp.create_connector("c1")
    # A watcher that never reads: its socket buffers fill with big snapshots.
    stalled = socket.create_connection(("127.0.0.1", cp.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /v1/connector/config?watch=1&since=0 HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n".encode())
    healthy = cp.watch(token, since=0)
    padding = "# " + "x" * 200_000 + "\n"
    for i in range(1, 21):
        status, _, text = cp.api("PUT", "/v1/policies/big",
                                 {"module": f"package big\n{padding}default n := {i}\n"})
        assert status == 200, text
    got = healthy.wait_for(lambda o: o.get("type") == "snapshot" and o["revision"] == 20, 10)
    assert got, "the healthy watcher fell behind"
    assert cp.api("GET", "/v1/revision")[1] == {"revision": 20}
    stalled.close()
