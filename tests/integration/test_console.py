"""The web console at / in Debian's headless chromium (playwright-core from npm):
it signs in with the admin token, shows instances with versions, resources,
policies and recent audit records, and refreshes live."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from cpharness import ControlPlane
from harness import REPO

CHROMIUM = "/usr/bin/chromium"
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "console_driver.js")
PLAYWRIGHT = os.path.join(REPO, "node_modules", "playwright-core")


@pytest.fixture
def cp():
    c = ControlPlane()
    try:
        yield c
    finally:
        c.close()


def test_console_static_files(cp):
    status, _, text = cp.api("GET", "/", token=None)
    assert status == 200 and "<title>Portcullis control plane</title>" in text
    assert cp.api("GET", "/app.js", token=None)[0] == 200
    assert cp.api("GET", "/style.css", token=None)[0] == 200
    for bad in ("/../cp.yaml", "/.hidden", "/nope.html", "/a/b.js"):
        assert cp.api("GET", bad, token=None)[0] == 404
    assert cp.api("POST", "/", token=None, raw="x")[0] == 405


@pytest.mark.skipif(not os.path.exists(PLAYWRIGHT) or not shutil.which("node")
                    or not os.path.exists(CHROMIUM),
                    reason="needs chromium (scripts/deps.sh) and playwright-core (npm install)")
def test_console_in_chromium(cp):
    OBJECTS = {
        "resources": [{"name": "pg-main", "technology": "postgres", "hostname": "127.0.0.1",
                       "port": 5432, "credentials": {"username": "app", "password": "pw-x"}}],
        "policies": [{"name": "seed", "status": "active",
                      "module": "package formal.v2\ndefault allow := true\n"}],
    }
    assert cp.api("POST", "/v1/apply", OBJECTS)[0] == 200
    tok = cp.create_connector("edge")
    assert cp.api("POST", "/v1/connector/heartbeat", {"instance": "edge-a", "version": "0.1.0",
                  "address": "127.0.0.1:8080", "cluster_role": "none"}, token=tok)[0] == 200
    cp.api("POST", "/v1/connector/logs", {"records": [
        {"id": "edge-a-1", "ts": "2026-01-01T00:00:00Z", "instance": "edge-a", "user": "alice",
         "resource": "pg-main", "decision": "block", "query": "SELECT <b>secret</b>"}]},
        token=tok)
    profile = tempfile.mkdtemp(prefix="pc-chromium-")
    os.makedirs(os.path.join(REPO, "build"), exist_ok=True)
    shot = os.path.join(REPO, "build", "console.png")
    # Chromium is chatty on stderr: a file, so that a full pipe can never stall it.
    err = open(os.path.join(profile, "driver.stderr"), "w+")
    p = subprocess.Popen(["node", DRIVER, cp.url + "/", cp.admin_token, profile + "/profile",
                          shot], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                         text=True, cwd=REPO, start_new_session=True)
    try:
        line = p.stdout.readline()
        print("driver:", line[:300], flush=True)
        first = json.loads(line or "{\"phase\": \"none\"}")
        assert first["phase"] == "first", first
        assert first["title"] == "Portcullis control plane"
        assert "refused" in first["refused"]
        assert "edge-a" in first["instances"] and "0.1.0" in first["instances"] \
            and "connected" in first["instances"]
        assert "pg-main" in first["resources"] and "pw-x" not in first["resources"]
        assert "seed" in first["policies"] and "formal.v2" in first["policies"]
        # Record text is shown as text, never as markup.
        assert "SELECT <b>secret</b>" in first["logs"] and "alice" in first["logs"]
        assert first["revision"] == "revision 1"
        # Live: new data appears without a reload.
        cp.api("POST", "/v1/connector/heartbeat", {"instance": "edge-late", "version": "0.2.0"},
               token=tok)
        cp.api("POST", "/v1/connector/logs", {"records": [
            {"id": "edge-a-2", "ts": "2026-01-01T00:01:00Z", "user": "bob", "decision": "allow",
             "query": "SELECT 'late-query'"}]}, token=tok)
        cp.api("PUT", "/v1/policies/late-policy", {"module": "package late\n"})
        p.stdin.write("go\n")
        p.stdin.flush()
        live = json.loads(p.stdout.readline() or '{"phase":"none"}')
        assert live["phase"] == "live", live
        assert "edge-late" in live["instances"] and "0.2.0" in live["instances"]
        assert live["revision"] == "revision 2"
        assert live["errors"] == []
        assert p.wait(60) == 0
        assert os.path.getsize(shot) > 10000
    finally:
        if p.poll() is None:
            os.killpg(p.pid, 9)  # node and the browser it started
            p.wait(10)
        err.close()
        shutil.rmtree(profile, ignore_errors=True)
