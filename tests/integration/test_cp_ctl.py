"""`portcullis ctl` end to end against a real control plane."""

import json
import os
import re
import subprocess

import pytest

from cpharness import ControlPlane
from harness import portcullis_path


@pytest.fixture
def cp():
    c = ControlPlane()
    try:
        yield c
    finally:
        c.close()


def ctl(cp, *args, token="admin", env=None, timeout=30):
    e = dict(os.environ)
    e.pop("PORTCULLIS_URL", None)
    e.pop("PORTCULLIS_TOKEN", None)
    e.update(env or {})
    argv = [portcullis_path(), "ctl"]
    if env is None:
        argv += ["--url", cp.url, "--token", cp.admin_token if token == "admin" else token]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout,
                          env=e)


def test_ctl_apply_get_connectors_logs(cp, tmp_path):
    d = tmp_path / "config"
    d.mkdir()
    (d / "objects.yaml").write_text(
        "resources:\n"
        "  - {name: pg-main, technology: postgres, hostname: 127.0.0.1, port: 5432,\n"
        "     database: app, credentials: {username: app, password: '${PC_TEST_PG_PW}'}}\n"
        "listeners:\n"
        "  - {name: pg, port: 15433, resource: pg-main, tls: disabled}\n"
        "users:\n"
        "  - {username: alice, type: human, groups: [analysts], password: pw-alice-1}\n")
    (d / "rate-limit.rego").write_text(
        "package formal.v2\nimport future.keywords.if\n"
        "pre_request := {\"action\": \"block\"} if { input.bucket.name == \"x\" }\n")
    r = ctl(cp, "apply", "-f", str(d), env={"PC_TEST_PG_PW": "env-secret-pg",
                                             "PORTCULLIS_URL": cp.url,
                                             "PORTCULLIS_TOKEN": cp.admin_token})
    assert r.returncode == 0, r.stderr
    assert "revision 1" in r.stdout
    # The ${VAR} was expanded client-side and reached the connector's snapshot.
    token = ctl(cp, "connectors", "create", "edge-1")
    assert token.returncode == 0, token.stderr
    tok = token.stdout.strip()
    assert re.match(r"^pct_[0-9a-f]{64}$", tok)
    snap = cp.api("GET", "/v1/connector/config", token=tok)[1]
    assert snap["resources"][0]["credentials"]["password"] == "env-secret-pg"
    assert snap["policies"][0]["name"] == "rate-limit"
    assert snap["policies"][0]["status"] == "active"

    r = ctl(cp, "get", "resources")
    assert r.returncode == 0 and "pg-main" in r.stdout and "postgres" in r.stdout
    assert "env-secret-pg" not in r.stdout
    r = ctl(cp, "get", "listeners", "-o", "json")
    assert json.loads(r.stdout)["items"][0]["port"] == 15433
    r = ctl(cp, "get", "policies")
    assert "rate-limit" in r.stdout and "active" in r.stdout
    r = ctl(cp, "get", "users", "alice")
    assert json.loads(r.stdout)["password"] == "***"
    r = ctl(cp, "get", "connectors")
    assert "edge-1" in r.stdout and tok not in r.stdout

    # A single file works too; an invalid policy is refused with file:row:col.
    bad = tmp_path / "broken.rego"
    bad.write_text("package broken\n\nallow if {\n  input.x ==\n}\n")
    r = ctl(cp, "apply", "-f", str(bad))
    assert r.returncode == 1
    assert re.search(r"broken\.rego:\d+:\d+: ", r.stderr), r.stderr
    assert ctl(cp, "get", "revision").stdout.strip() == "1"

    # Instances and logs as the connector reports them.
    assert cp.api("POST", "/v1/connector/heartbeat", {"instance": "edge-1-a", "version": "0.1.0",
                  "address": "127.0.0.1:8080"}, token=tok)[0] == 200
    r = ctl(cp, "get", "instances")
    assert r.returncode == 0 and "edge-1-a" in r.stdout and "0.1.0" in r.stdout \
        and "connected" in r.stdout
    recs = [{"id": f"a-{i}", "ts": f"2026-01-01T00:00:0{i}Z", "user": u, "resource": "pg-main",
             "decision": "allow", "query": f"SELECT {i}"}
            for i, u in enumerate(["alice", "bob", "alice"])]
    assert cp.api("POST", "/v1/connector/logs", {"records": recs}, token=tok)[1]["accepted"] == 3
    r = ctl(cp, "logs", "-o", "json", "--user", "alice")
    assert r.returncode == 0, r.stderr
    got = [json.loads(l) for l in r.stdout.splitlines()]
    assert [g["id"] for g in got] == ["a-0", "a-2"]
    r = ctl(cp, "logs", "--limit", "1")  # pages through everything
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3 and "SELECT 1" in r.stdout

    # Follow: new records appear without restarting the command.
    p = subprocess.Popen([portcullis_path(), "ctl", "--url", cp.url, "--token", cp.admin_token,
                          "logs", "--follow", "-o", "json"], stdout=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        assert len(lines) == 3
        cp.api("POST", "/v1/connector/logs", {"records": [
            {"id": "late-1", "ts": "2026-01-01T00:01:00Z", "user": "carol", "decision": "block"}]},
            token=tok)
        assert json.loads(p.stdout.readline())["id"] == "late-1"
    finally:
        p.kill()
        p.wait(10)

    r = ctl(cp, "delete", "listeners", "pg")
    assert r.returncode == 0 and "revision 2" in r.stdout
    r = ctl(cp, "connectors", "delete", "edge-1")
    assert r.returncode == 0
    assert cp.api("GET", "/v1/connector/config", token=tok)[0] == 401


def test_ctl_errors(cp):
    r = ctl(cp, "get", "resources", token="bad-token")
    assert r.returncode == 1 and "401" in r.stderr
    r = ctl(cp, "get", "widgets")
    assert r.returncode == 2
    r = ctl(cp, "apply", "-f", "/nonexistent/dir")
    assert r.returncode == 1 and "/nonexistent/dir" in r.stderr
    r = subprocess.run([portcullis_path(), "ctl", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "apply -f" in r.stdout
    r = subprocess.run([portcullis_path(), "ctl", "--url", "http://127.0.0.1:1", "--token", "x",
                        "get", "resources"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
