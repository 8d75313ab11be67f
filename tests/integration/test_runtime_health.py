"""Connector start-up, health server, readiness, metrics, CLI basics."""

import json
import os
import socket
import subprocess

import pytest

from harness import (REPO, http_get, pg_listener, pg_user, run_portcullis, wait_until)


def objects_with_listener(port, pg_port=1):
    # The upstream need not exist for these tests: nothing connects through it.
    return {
        "resources": [{"name": "pg-main", "technology": "postgres", "hostname": "127.0.0.1",
                       "port": pg_port, "database": "app", "tls": "disable",
                       "credentials": {"username": "app", "password": "upstream-pw"}}],
        "listeners": [pg_listener(port)],
        "users": [pg_user()],
    }


def version_text():
    with open(os.path.join(REPO, "VERSION")) as f:
        return f.read().strip()


def test_version_command_and_flag():
    v = version_text()
    for args in (["version"], ["--version"], ["connector", "--version"]):
        r = run_portcullis(*args)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"portcullis {v}\n"


def test_help_for_connector_and_healthcheck():
    for cmd in ("connector", "healthcheck"):
        r = run_portcullis(cmd, "--help")
        assert r.returncode == 0
        assert f"usage: portcullis {cmd}" in r.stdout


def test_usage_errors_exit_2():
    assert run_portcullis("connector").returncode == 2
    assert run_portcullis("connector", "-c").returncode == 2
    assert run_portcullis("connector", "--bogus").returncode == 2
    assert run_portcullis("healthcheck", "--url", "ftp://x").returncode == 2


def test_config_errors_exit_2_naming_the_key(tmp_path):
    cdir = tmp_path / "cfg"
    cdir.mkdir()
    cases = {
        "unknown key": ("bogus_key: 1\ncontrol_plane: {config_dir: cfg}\n", "bogus_key"),
        "bad duration": ("control_plane: {config_dir: cfg}\nshutdown: {drain_timeout: 3x}\n",
                         "drain_timeout"),
        "bad size": ("control_plane: {config_dir: cfg}\nlog_spool: {max_bytes: lots}\n",
                     "max_bytes"),
        "missing dir": ("control_plane: {config_dir: nowhere}\n", "config_dir"),
    }
    for name, (text, key) in cases.items():
        path = tmp_path / "c.yaml"
        path.write_text(text)
        r = run_portcullis("connector", "-c", str(path))
        assert r.returncode == 2, f"{name}: rc={r.returncode} {r.stderr}"
        assert key in r.stderr, f"{name}: {r.stderr}"
    r = run_portcullis("connector", "-c", str(tmp_path / "absent.yaml"))
    assert r.returncode == 2
    assert "absent.yaml" in r.stderr


def test_first_line_is_version_and_health_endpoints(connector, free_port):
    port = free_port()
    c = connector(objects_with_listener(port))
    first = c.log_lines()[0]
    assert first["msg"] == "starting"
    assert first["version"] == version_text()
    assert first["instance"] == "itest"

    status, body = c.get("/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, body = c.get("/ready")
    assert status == 200
    doc = json.loads(body)
    assert doc["ready"] is True and doc["revision"] == 1 and doc["listeners"] == 1

    assert c.get("/nope")[0] == 404
    assert c.get("/ready", method="POST")[0] == 405
    assert c.get("/health", method="HEAD")[0] == 200

    # The listener is open on every worker: connections are accepted.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    c.wait_log("ready", revision=1)


def test_metrics_exposition(connector, free_port):
    port = free_port()
    c = connector(objects_with_listener(port))
    status, text = c.get("/metrics")
    assert status == 200
    for name in ("portcullis_build_info", "portcullis_config_revision",
                 "portcullis_config_reloads_total", "portcullis_process_resident_memory_bytes",
                 "portcullis_spool_records_written", "portcullis_ready"):
        assert f"# TYPE {name} " in text, name
    assert "portcullis_config_revision 1\n" in text
    assert "portcullis_ready 1\n" in text
    rss = [l for l in text.splitlines() if l.startswith("portcullis_process_resident_memory_bytes ")]
    assert int(rss[0].split()[1]) > 1_000_000
    # Connections to the listener are counted per listener.
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    def accepted():
        t = c.get("/metrics")[1]
        return [l for l in t.splitlines()
                if l.startswith('portcullis_listener_connections_accepted_total{listener="pg"}')]
    wait_until(lambda: accepted() and int(accepted()[0].split()[1]) >= 3, 5, what="accepted 3")
    # Every sample line parses as NAME[{labels}] INTEGER.
    for line in text.splitlines():
        if line and not line.startswith("#"):
            int(line.rsplit(" ", 1)[1])


def test_keepalive_and_garbage_do_not_hurt(connector, free_port):
    c = connector(objects_with_listener(free_port()))
    with socket.create_connection(("127.0.0.1", c.health_port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\n\r\nGET /ready HTTP/1.1\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 ") < 2:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.count(b"HTTP/1.1 200") == 2
    for junk in (b"\x16\x03\x01\x00\xff" + b"\x00" * 300, b"GET " + b"A" * 20000 + b"\r\n\r\n",
                 b"\r\n\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", c.health_port), timeout=5) as s:
            try:
                s.sendall(junk)
                s.recv(4096)
            except OSError:
                pass
    assert c.get("/health")[0] == 200
    assert c.proc.poll() is None


def test_not_ready_until_listener_port_is_free(connector, free_port):
    port = free_port()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    try:
        c = connector(objects_with_listener(port), wait_ready=False)
        wait_until(lambda: c.get("/ready")[0] == 503 and "listeners not bound" in c.get("/ready")[1],
                   10, what="503 listeners not bound")
        assert json.loads(c.get("/ready")[1])["unbound"] == 2  # both workers
        line = c.wait_log(lambda l: "bind failed" in l.get("msg", ""))
        assert line["port"] == port and line["level"] == "error"
        assert c.get("/health")[0] == 200
    finally:
        blocker.close()
    # Retried every second: ready once the port is free.
    c.wait_ready(10)
    assert len([l for l in c.log_lines() if "bind failed" in l.get("msg", "")]) == 1


def test_ready_reason_before_config_and_remote_control_plane_is_honest(connector, free_port):
    # cpclient: a control plane that does not answer keeps the connector not ready, and says so.
    c = connector(None, config={"control_plane": {"config_dir": None,
                                                  "url": f"https://127.0.0.1:{free_port()}",
                                                  "token": "t0ken-value"}},
                  wait_ready=False)
    wait_until(lambda: c.get("/health")[0] == 200, 10, what="health up")
    c.wait_log("control plane unreachable; retrying with backoff")
    status, body = c.get("/ready")
    assert status == 503
    assert json.loads(body)["reason"] == "control plane unreachable"
    assert not any("t0ken-value" in l for l in c.raw_stderr)
    assert c.stop() == 0


def test_invalid_config_dir_at_start_stays_not_ready_then_recovers(connector, free_port):
    port = free_port()
    c = connector(None, files={"objects.yaml": "listeners: [ {name: pg, port: \n"},
                  wait_ready=False)
    wait_until(lambda: c.get("/health")[0] == 200, 10, what="health up")
    status, body = c.get("/ready")
    assert status == 503 and json.loads(body)["reason"] == "configuration not loaded"
    c.wait_log(lambda l: l.get("msg", "").startswith("configuration refused"))
    c.set_objects(objects_with_listener(port))
    c.wait_ready(5)
    assert json.loads(c.get("/ready")[1])["revision"] == 1


def test_healthcheck_command(connector, free_port):
    c = connector(objects_with_listener(free_port()))
    url = f"http://127.0.0.1:{c.health_port}/ready"
    r = run_portcullis("healthcheck", "--url", url)
    assert r.returncode == 0, r.stderr
    r = run_portcullis("healthcheck", "--url", f"http://127.0.0.1:{c.health_port}/nope")
    assert r.returncode == 1 and "404" in r.stderr
    dead = free_port()
    r = run_portcullis("healthcheck", "--url", f"http://127.0.0.1:{dead}/ready", "--timeout", "2")
    assert r.returncode == 1
    # Not ready -> 1.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        c2 = connector(objects_with_listener(blocker.getsockname()[1]), wait_ready=False)
        wait_until(lambda: c2.get("/health")[0] == 200, 10, what="health up")
        r = run_portcullis("healthcheck", "--url", f"http://127.0.0.1:{c2.health_port}/ready")
        assert r.returncode == 1 and "503" in r.stderr
    finally:
        blocker.close()


def test_spool_open_failure_exits_1(connector, tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    c = connector(None, config={"log_spool": {"dir": str(blocked / "spool")}},
                  files={"objects.yaml": "users: []\n"}, wait_ready=False)
    assert c.wait_exit(15) == 1
    assert any("spool" in l.get("msg", "") for l in c.log_lines())


def test_health_port_in_use_exits_1(connector, free_port):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        port = blocker.getsockname()[1]
        c = connector(objects_with_listener(free_port()),
                      config={"health": {"listen": f"127.0.0.1:{port}"}}, wait_ready=False)
        assert c.wait_exit(15) == 1
        line = c.wait_log("cannot start the health server")
        assert str(port) in line["error"]
    finally:
        blocker.close()


def test_starting_line_first_even_when_log_level_is_error(connector, free_port):
    c = connector(objects_with_listener(free_port()), config={"log_level": "error"})
    first = c.log_lines()[0]
    assert first["msg"] == "starting" and first["version"] == version_text()
    # info lines are filtered from then on.
    assert not c.find_logs("ready")
