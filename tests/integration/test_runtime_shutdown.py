"""Graceful shutdown (design §5): five steps in order, /ready 503 from the first
moment, drain until shutdown.drain_timeout, a second signal exits at once."""

import json
import signal
import socket
import time

import pytest

from harness import pg_listener, pg_user, wait_until

STEPS = [(1, "stop accepting"), (2, "leave cluster"), (3, "stop telemetry"),
         (4, "close cache and spool"), (5, "stop health server")]


def objects(port, pg_port=1):
    return {"resources": [{"name": "pg-main", "technology": "postgres", "hostname": "127.0.0.1",
                           "port": pg_port, "database": "app", "tls": "disable",
                           "credentials": {"username": "app", "password": "upstream-pw"}}],
            "listeners": [pg_listener(port)], "users": [pg_user()]}


def shutdown_steps(c):
    return [(l["step"], l["name"]) for l in c.log_lines() if l.get("msg") == "shutdown"]


def assert_steps_in_order(c):
    assert shutdown_steps(c) == STEPS
    msgs = [l.get("msg") for l in c.log_lines()]
    assert msgs.index("shutdown requested") < msgs.index("shutdown")
    assert msgs[-1] == "stopped"
    steps = {l["step"]: l for l in c.log_lines() if l.get("msg") == "shutdown"}
    assert steps[2]["status"] == "skipped" and steps[3]["status"] == "skipped"
    assert steps[4]["status"] == "done"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_idle_shutdown_steps_in_order(connector, free_port, sig):
    c = connector(objects(free_port()))
    c.signal(sig)
    assert c.wait_exit(15) == 0
    assert_steps_in_order(c)
    drained = c.find_logs("drain finished")[0]
    assert drained["sessions_left"] == 0


def open_idle_session(port):
    """A client that connected and sent nothing: a session the module must drain."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def module_keeps_sessions(c, port):
    """True when a protocol module serves this listener (the pg branch is in the build)."""
    s = open_idle_session(port)
    s.settimeout(0.5)
    try:
        data = s.recv(1)
        alive = False if data == b"" else True
    except socket.timeout:
        alive = True
    except OSError:
        alive = False
    s.close()
    return alive and not c.find_logs(
        "no protocol module for this technology in this build; connection closed")


def test_drain_then_terminate(connector, free_port):
    port = free_port()
    c = connector(objects(port), drain_timeout="2s")
    if not module_keeps_sessions(c, port):
        pytest.skip("no PostgreSQL protocol module in this build: nothing to drain")
    held = open_idle_session(port)
    time.sleep(0.3)
    t0 = time.monotonic()
    c.signal(signal.SIGTERM)
    # 503 from the first moment of shutdown, while the session drains.
    wait_until(lambda: c.get("/ready")[0] == 503, 2, what="/ready 503")
    assert json.loads(c.get("/ready")[1])["reason"] == "shutting down"
    assert c.get("/health")[0] == 200
    c.wait_log("shutdown", step=1)
    wait_until(lambda: not can_connect(port), 2, what="listener closed")
    assert c.proc.poll() is None, "must wait for the drain timeout"
    assert c.wait_exit(20) == 0
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.9, elapsed
    assert c.find_logs("drain timeout; terminating sessions")[0]["sessions"] >= 1
    assert_steps_in_order(c)
    held.close()


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_second_signal_exits_at_once(connector, free_port):
    port = free_port()
    c = connector(objects(port), drain_timeout="60s")
    if not module_keeps_sessions(c, port):
        pytest.skip("no PostgreSQL protocol module in this build: nothing holds the drain open")
    held = open_idle_session(port)
    time.sleep(0.3)
    c.signal(signal.SIGTERM)
    c.wait_log("shutdown", step=1)
    t0 = time.monotonic()
    c.signal(signal.SIGTERM)
    assert c.wait_exit(5) == 1
    assert time.monotonic() - t0 < 2
    assert c.find_logs("second signal: exiting at once")
    held.close()


def test_spool_is_flushed_and_closed_at_step_4(connector, free_port):
    c = connector(objects(free_port()))
    assert c.stop() == 0
    step4 = [l for l in c.log_lines() if l.get("msg") == "shutdown" and l["step"] == 4][0]
    assert "records_written" in step4
    # The spool is a valid, readable spool after shutdown.
    c.spool_records()


def test_drain_ends_when_sessions_end(connector, free_port):
    port = free_port()
    c = connector(objects(port), drain_timeout="30s")
    if not module_keeps_sessions(c, port):
        pytest.skip("no PostgreSQL protocol module in this build: nothing to drain")
    held = open_idle_session(port)
    time.sleep(0.3)
    c.signal(signal.SIGTERM)
    c.wait_log("shutdown", step=1)
    time.sleep(0.5)
    assert c.proc.poll() is None, "an open session holds the drain"
    t0 = time.monotonic()
    held.close()  # the client leaves on its own
    assert c.wait_exit(10) == 0
    assert time.monotonic() - t0 < 5, "drain must end soon after the last session, not at the timeout"
    done = c.find_logs("drain finished")[0]
    assert done["terminated"] == 0 and done["sessions_left"] == 0
    assert not c.find_logs("drain timeout; terminating sessions")
    assert_steps_in_order(c)


def test_shutdown_while_not_ready(connector):
    c = connector(None, files={"objects.yaml": "listeners: [ {name: pg, port: \n"},
                  wait_ready=False)
    wait_until(lambda: c.get("/health")[0] == 200, 10, what="health up")
    c.signal(signal.SIGTERM)
    assert c.wait_exit(10) == 0
    assert_steps_in_order(c)
