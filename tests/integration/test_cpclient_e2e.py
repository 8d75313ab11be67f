"""Connectors driven by a real ``portcullis controlplane`` (issue 5, connector side).

Real processes only: the control plane (cpharness.ControlPlane), PostgreSQL
(pg_server) and connectors configured with ``control_plane.url``. Both
connectors of a test share one listener port (the listeners use
SO_REUSEPORT), so a fresh client connection lands on either of them; the
tests tell them apart by their own health ports and audit spools.
"""

import json
import os
import re
import subprocess
import threading
import time
import urllib.parse

import psycopg
import pytest

from cpharness import ControlPlane
from harness import USER_PASSWORD, pg_listener, pg_user, wait_until

BOB_PASSWORD = "bob-pw-from-the-control-plane"


@pytest.fixture
def cp():
    c = ControlPlane()
    try:
        yield c
    finally:
        c.close()


def base_objects(pg, port):
    return {"resources": [pg.resource()], "listeners": [pg_listener(port)],
            "users": [pg_user()]}


def apply(cp, objects):
    status, body, text = cp.api("POST", "/v1/apply", objects)
    assert status == 200, text
    return body["revision"]


def start(connector, cp, name, token=None, wait_ready=True, ready_timeout=30, **kw):
    token = token or cp.create_connector(name)
    c = connector(None, wait_ready=wait_ready, ready_timeout=ready_timeout,
                  config={"instance_name": name,
                          "control_plane": {"config_dir": None, "url": cp.url, "token": token},
                          **kw.pop("config", {})}, **kw)
    c.token = token
    return c


def ready_body(c):
    status, text = c.get("/ready")
    return status, (json.loads(text) if status else {})


def metric(c, name):
    status, text = c.get("/metrics")
    assert status == 200
    m = re.search(rf"^{re.escape(name)} (-?\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def dsn(port, user="alice", password=USER_PASSWORD):
    return (f"host=127.0.0.1 port={port} user={user} password={password} dbname=app "
            "sslmode=disable connect_timeout=10")


def cp_log_ids(cp):
    ids, after = [], None
    while True:
        q = "/v1/logs?limit=1000" + (f"&after={urllib.parse.quote(after)}" if after else "")
        status, body, text = cp.api("GET", q)
        assert status == 200, text
        ids += [r["id"] for r in body["items"]]
        if not body.get("next"):
            return ids
        after = body["next"]


class Load:
    """A client querying through the connector: one long session plus a fresh one now and then."""

    def __init__(self, port):
        self.port = port
        self.ok = 0
        self.errors = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn = None
        i = 0
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(dsn(self.port), autocommit=True)
                assert conn.execute("select count(*) from items").fetchone() == (3,)
                self.ok += 1
                i += 1
                if i % 50 == 0:  # sessions start and end too
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.errors.append(repr(e))
                conn = None
                time.sleep(0.1)
            time.sleep(0.005)
        if conn is not None:
            conn.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(30)


# ------------------------------------------------------------------ readiness


def test_new_connector_waits_for_the_control_plane(connector, cp, pg_server, free_port):
    port = free_port()
    rev = apply(cp, base_objects(pg_server, port))
    token = cp.create_connector("c1")
    cp.stop()

    c = start(connector, cp, "c1", token=token, wait_ready=False)
    c.wait_log("control plane unreachable; retrying with backoff", timeout=15)
    for _ in range(3):  # it cannot get ready without a snapshot, however long it waits
        status, body = ready_body(c)
        assert status == 503, body
        assert body["reason"] == "control plane unreachable"
        assert body["control_plane"] == "unreachable"
        assert body["control_plane_last_contact_ms"] == -1
        time.sleep(0.5)

    cp.start()
    c.wait_ready(60)  # within one backoff ceiling (30 s) of its return
    status, body = ready_body(c)
    assert status == 200 and body["revision"] == rev and body["control_plane"] == "connected"
    with psycopg.connect(dsn(port)) as conn:
        assert conn.execute("select name from items where id = 1").fetchone() == ("one",)
    assert len(c.find_logs("control plane unreachable; retrying with backoff")) == 1
    assert len(c.find_logs("control plane connected")) == 1
    assert metric(c, "portcullis_control_plane_connected") == 1
    # The control plane lists it with its version and health address.
    wait_until(lambda: any(i["instance"] == "c1" and i["status"] == "connected"
                           for i in cp.api("GET", "/v1/instances")[1]["items"]),
               timeout=30, what="instance listed")
    inst = next(i for i in cp.api("GET", "/v1/instances")[1]["items"] if i["instance"] == "c1")
    assert inst["version"] and inst["address"].endswith(f":{c.health_port}")
    assert inst["cluster_role"] == "none"


# ------------------------------------------------------------------ pushes


def test_push_reaches_both_connectors_without_restart(connector, cp, pg_server, free_port):
    port = free_port()
    rev1 = apply(cp, base_objects(pg_server, port))
    c1 = start(connector, cp, "c1")
    c2 = start(connector, cp, "c2")
    pids = (c1.proc.pid, c2.proc.pid)

    # A session open across the push.
    session = psycopg.connect(dsn(port), autocommit=True)
    assert session.execute("select 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(port, "bob", BOB_PASSWORD)).close()

    t0 = time.monotonic()
    rev2 = apply(cp, {"users": [pg_user(), pg_user("bob", BOB_PASSWORD)],
                      "policies": [{"name": "cpclient-test", "status": "dry-run",
                                    "module": "package formal.v2\n\nimport rego.v1\n\n"
                                              "pre_request := {\"action\": \"allow\"}\n"}]})
    assert rev2 > rev1
    latency = {}
    for c in (c1, c2):
        wait_until(lambda: ready_body(c)[1].get("revision") == rev2, timeout=10,
                   what=f"{c.find_logs('starting')[0]['instance']} at revision {rev2}")
        latency[c] = time.monotonic() - t0
    print(f"push->apply latency: c1 {latency[c1] * 1000:.0f} ms, c2 {latency[c2] * 1000:.0f} ms")
    for c in (c1, c2):
        applied = c.wait_log("configuration applied", revision=rev2)
        assert applied["users"] == 2 and applied["policies"] == 1
        assert c.proc.poll() is None
    assert (c1.proc.pid, c2.proc.pid) == pids  # no restart

    # The old session goes on; new sessions see the new user, on both connectors.
    assert session.execute("select 2").fetchone() == (2,)
    served = set()
    for _ in range(200):
        with psycopg.connect(dsn(port, "bob", BOB_PASSWORD)) as conn:
            assert conn.execute("select 3").fetchone() == (3,)
        served = {c for c in (c1, c2)
                  if any(r.get("user") == "bob" for r in c.spool_records())}
        if len(served) == 2:
            break
    assert served == {c1, c2}, "bob's sessions never reached one of the connectors"
    assert session.execute("select 4").fetchone() == (4,)
    session.close()


# ------------------------------------------------------------------ outages


def test_control_plane_outage_loses_nothing(connector, cp, pg_server, free_port):
    port = free_port()
    apply(cp, base_objects(pg_server, port))
    c = start(connector, cp, "c1")
    load = Load(port)
    wait_until(lambda: len(cp_log_ids(cp)) > 20, timeout=30, what="records shipped")

    cp.kill()
    down_at = time.monotonic()
    c.wait_log("control plane connection lost; serving with the last snapshot", timeout=30)
    spooled_at_loss = len(c.spool_records())
    time.sleep(12)  # the outage: clients keep querying
    status, body = ready_body(c)
    assert status == 200 and body["control_plane"] == "disconnected", body
    assert body["control_plane_last_contact_ms"] >= 1000
    assert metric(c, "portcullis_control_plane_connected") == 0
    assert len(c.spool_records()) > spooled_at_loss  # records keep being spooled
    assert load.errors == []

    cp.start()
    back_at = time.monotonic()
    c.wait_log("control plane connection restored", timeout=45)
    print(f"outage {back_at - down_at:.1f} s; stream back "
          f"{time.monotonic() - back_at:.1f} s after the control plane")
    time.sleep(1)
    load.stop()
    assert load.errors == [], load.errors[:3]
    assert load.ok > 100

    # Everything spooled arrives, exactly once.
    spool_ids = []

    def caught_up():
        spool_ids[:] = [r["id"] for r in c.spool_records()]
        return set(cp_log_ids(cp)) == set(spool_ids)
    wait_until(caught_up, timeout=60, interval=0.5, what="control plane caught up")
    ids = cp_log_ids(cp)
    assert len(ids) == len(set(ids)) == len(spool_ids)
    print(f"records shipped: {len(ids)}")
    assert len(c.find_logs("control plane connection lost; serving with the last snapshot")) == 1
    assert len(c.find_logs("control plane connection restored")) == 1
    assert c.ready_status() == 200


def test_kill_9_connector_resumes_shipping_from_its_cursor(connector, cp, pg_server, free_port):
    port = free_port()
    apply(cp, base_objects(pg_server, port))
    c = start(connector, cp, "c1")
    load = Load(port)
    wait_until(lambda: len(cp_log_ids(cp)) > 50, timeout=30, what="records shipped")
    cursor = os.path.join(c.spool_dir, "shipped.cursor")
    wait_until(lambda: os.path.exists(cursor), timeout=10, what="shipped cursor")
    # Hold shipping back so that the kill leaves records spooled but not shipped.
    shipped_before = set(cp_log_ids(cp))
    cp.kill()
    wait_until(lambda: len(c.spool_records()) > len(shipped_before) + 100, timeout=30,
               what="records spooled while the control plane is down")
    c.kill()  # SIGKILL mid-load
    load.stop()
    written = [r["id"] for r in c.spool_records()]
    unshipped = set(written) - shipped_before
    assert len(unshipped) >= 100

    cp.start()
    c2 = start(connector, cp, "c1", token=c.token,
               config={"log_spool": {"dir": c.spool_dir, "max_bytes": "256MiB"}})

    def caught_up():
        return set(written) <= set(cp_log_ids(cp))
    wait_until(caught_up, timeout=60, interval=0.5, what="records from before the kill")
    ids = cp_log_ids(cp)
    assert len(ids) == len(set(ids))
    # Resumed from the durable cursor: what was acknowledged before the kill is not sent again.
    resent = metric(c2, "portcullis_log_shipped_records_total")
    assert resent is not None and 0 < resent < len(written)
    print(f"records before kill: {len(written)} ({len(unshipped)} unshipped), "
          f"shipped after restart: {resent}")


def test_frozen_control_plane_is_detected_by_silence(connector, cp, pg_server, free_port):
    """A control plane that stops answering without closing anything (SIGSTOP)."""
    import signal
    port = free_port()
    apply(cp, base_objects(pg_server, port))
    c = start(connector, cp, "c1")
    c.wait_log("control plane connected")
    cp.proc.send_signal(signal.SIGSTOP)
    try:
        lost = c.wait_log("control plane connection lost; serving with the last snapshot",
                          timeout=40)
        assert "15 s" in lost["error"], lost
        status, body = ready_body(c)
        assert status == 200 and body["control_plane"] == "disconnected"
        with psycopg.connect(dsn(port)) as conn:  # still serving with the last snapshot
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        cp.proc.send_signal(signal.SIGCONT)
    c.wait_log("control plane connection restored", timeout=60)
    assert ready_body(c)[1]["control_plane"] == "connected"


def test_graceful_shutdown_ships_what_is_spooled(connector, cp, pg_server, free_port):
    port = free_port()
    apply(cp, base_objects(pg_server, port))
    c = start(connector, cp, "c1")
    load = Load(port)
    wait_until(lambda: load.ok > 200, timeout=30, what="load running")
    assert c.stop() == 0  # while the client is still querying
    load.stop()
    step = c.find_logs("shutdown", name="flush log shipping")
    assert len(step) == 1 and step[0]["status"] == "done"
    ids = cp_log_ids(cp)
    spooled = [r["id"] for r in c.spool_records()]
    # Everything the spool held at exit reached the control plane, without a restart.
    assert set(spooled) == set(ids) and len(ids) == len(set(ids))
    print(f"records at shutdown: {len(spooled)}, flushed in step 4: "
          f"{step[0]['records_shipped']}")


def test_refused_token_keeps_the_connector_not_ready(connector, cp, pg_server, free_port):
    apply(cp, base_objects(pg_server, free_port()))
    c = start(connector, cp, "c1", token="pct_not-a-token-we-issued-0000", wait_ready=False)
    c.wait_log("control plane unreachable; retrying with backoff", timeout=15)
    status, body = ready_body(c)
    assert status == 503 and body["reason"] == "control plane unreachable"
    assert body["control_plane_error"].startswith("HTTP 401"), body
    assert not any("pct_not-a-token" in l for l in c.raw_stderr)
    assert c.stop() == 0


def test_instances_show_readiness_from_heartbeats(connector, cp, pg_server, free_port):
    apply(cp, base_objects(pg_server, free_port()))
    c = start(connector, cp, "c1")

    def instance():
        items = cp.api("GET", "/v1/instances")[1]["items"]
        return next((i for i in items if i["instance"] == "c1"), None)
    # A readiness change is reported at once, not at the next 10 s heartbeat.
    wait_until(lambda: (instance() or {}).get("health", {}).get("ready") is True, timeout=30,
               what="instance reported ready")
    i = instance()
    assert i["status"] == "connected" and i["health"]["control_plane"] == "connected"
    assert i["connector"] == "c1" and i["version"] == c.find_logs("starting")[0]["version"]


# ------------------------------------------------------------------ policies

BLOCK_SECRETS = """package formal.v2

import rego.v1

pre_request := {"action": "block", "type": "block_with_custom_message",
                "reason": "secrets are off limits"} if {
    "public.secrets" in input.query.tables
}
"""


def test_policy_applied_with_ctl_blocks_on_both_connectors(connector, cp, pg_server, free_port,
                                                             tmp_path):
    """Issue 5 item 9: a policy applied with `ctl` takes effect on both
    connectors without a restart and without dropping an open session."""
    pg_server.psql("create table if not exists secrets (v text); "
                   "insert into secrets values ('s1')", user="app", dbname="app")
    port = free_port()
    apply(cp, base_objects(pg_server, port))
    c1 = start(connector, cp, "p1")
    c2 = start(connector, cp, "p2")
    pids = (c1.proc.pid, c2.proc.pid)
    session = psycopg.connect(dsn(port), autocommit=True)
    assert session.execute("select v from secrets").fetchone() == ("s1",)

    d = tmp_path / "policies"
    d.mkdir()
    (d / "block-secrets.rego").write_text(BLOCK_SECRETS)
    r = subprocess.run([os.environ.get("PORTCULLIS_BIN", "build/portcullis"), "ctl",
                        "--url", cp.url, "--token", cp.admin_token, "apply", "-f", str(d)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    rev = cp.api("GET", "/v1/revision")[1]["revision"]
    for c in (c1, c2):
        wait_until(lambda: ready_body(c)[1].get("revision") == rev, timeout=10,
                   what=f"connector at revision {rev}")

    # The open session is still there and now judged by the new policy.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="secrets are off limits"):
        session.execute("select v from secrets")
    assert session.execute("select 1").fetchone() == (1,)
    session.close()

    # New sessions on both connectors are blocked too (the kernel spreads
    # connections over both; retry until each connector has judged one).
    blocked_on = set()
    for _ in range(200):
        with psycopg.connect(dsn(port), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select v from secrets")
        blocked_on = {c for c in (c1, c2)
                      if any(r.get("decision") == "block" and "secrets" in (r.get("query") or "")
                             for r in c.spool_records())}
        if len(blocked_on) == 2:
            break
    assert blocked_on == {c1, c2}
    assert (c1.proc.pid, c2.proc.pid) == pids  # no restart
