"""Embedded control plane: config_dir edits applied within a second, listeners
opened and closed at runtime, invalid snapshots refused with one log line."""

import json
import socket
import time

from harness import pg_listener, pg_user, wait_until


def resource(pg_port=1):
    return {"name": "pg-main", "technology": "postgres", "hostname": "127.0.0.1",
            "port": pg_port, "database": "app", "tls": "disable",
            "credentials": {"username": "app", "password": "upstream-pw"}}


def objects(*listeners):
    return {"resources": [resource()], "listeners": list(listeners), "users": [pg_user()]}


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def revision(c):
    status, body = c.get("/ready")
    return status, json.loads(body).get("revision")


def test_add_and_remove_listener(connector, free_port):
    p1, p2 = free_port(), free_port()
    c = connector(objects(pg_listener(p1, "one")))
    assert can_connect(p1) and not can_connect(p2)

    t0 = time.monotonic()
    c.set_objects(objects(pg_listener(p1, "one"), pg_listener(p2, "two")))
    wait_until(lambda: revision(c) == (200, 2), 5, what="revision 2 ready")
    assert time.monotonic() - t0 < 1.5, "applied within about a second"
    assert can_connect(p2)
    line = c.wait_log("configuration applied", revision=2)
    assert line["listeners"] == 2

    c.set_objects(objects(pg_listener(p2, "two")))
    wait_until(lambda: revision(c) == (200, 3), 5, what="revision 3 ready")
    wait_until(lambda: not can_connect(p1), 5, what="listener one closed")
    assert can_connect(p2)
    c.wait_log("listener closed", listener="one")


def test_port_change_rebinds(connector, free_port):
    p1, p2 = free_port(), free_port()
    c = connector(objects(pg_listener(p1)))
    c.set_objects(objects(pg_listener(p2)))
    wait_until(lambda: revision(c) == (200, 2), 5, what="revision 2")
    wait_until(lambda: not can_connect(p1), 5, what="old port closed")
    assert can_connect(p2)


def test_invalid_yaml_refused_previous_stays(connector, free_port):
    p1 = free_port()
    c = connector(objects(pg_listener(p1)))
    c.write_file("objects.yaml", "listeners: [ {name: pg, port: \n")
    line = c.wait_log(lambda l: l.get("msg", "").startswith("configuration refused"), timeout=5)
    assert line["level"] == "error"
    assert "objects.yaml" in line["error"]
    assert line["revision_in_force"] == 1
    time.sleep(1.5)  # a burst of events and the safety poll must not repeat it
    refusals = [l for l in c.log_lines() if l.get("msg", "").startswith("configuration refused")]
    assert len(refusals) == 1, refusals
    assert revision(c) == (200, 1)
    assert can_connect(p1)
    _, metrics = c.get("/metrics")
    assert 'portcullis_config_reloads_total{result="failed"} 1' in metrics

    # Fixing the file applies the next revision.
    p2 = free_port()
    c.set_objects(objects(pg_listener(p1), pg_listener(p2, "second")))
    wait_until(lambda: revision(c) == (200, 2), 5, what="revision 2 after fix")
    assert can_connect(p2)


def test_dangling_reference_refused(connector, free_port):
    p1 = free_port()
    c = connector(objects(pg_listener(p1)))
    bad = objects(pg_listener(p1), pg_listener(free_port(), "ghost", resource="no-such"))
    c.set_objects(bad)
    line = c.wait_log(lambda l: l.get("msg", "").startswith("configuration refused"), timeout=5)
    assert "no-such" in line["error"] or "resource" in line["error"]
    assert revision(c) == (200, 1)


def test_unchanged_content_is_not_a_new_revision(connector, free_port):
    p1 = free_port()
    c = connector(objects(pg_listener(p1)))
    c.set_objects(objects(pg_listener(p1)))  # same bytes, new inode
    time.sleep(1.0)
    assert revision(c) == (200, 1)
    assert not c.find_logs("configuration applied")


def test_no_secret_in_logs(connector, free_port):
    c = connector(objects(pg_listener(free_port())))
    c.write_file("objects.yaml", "resources: [{name: x, technology: postgres, credentials: "
                 "{username: app, password: hunter2-secret}, bogus: 1}]\n")
    c.wait_log(lambda l: l.get("msg", "").startswith("configuration refused"), timeout=5)
    assert not any("hunter2-secret" in l for l in c.raw_stderr)
    assert not any("alice-secret-pw" in l for l in c.raw_stderr)


def test_sighup_rechecks_and_does_not_kill(connector, free_port):
    import signal
    c = connector(objects(pg_listener(free_port())))
    c.signal(signal.SIGHUP)
    c.wait_log("reload requested")
    time.sleep(0.3)
    assert c.proc.poll() is None
    assert revision(c) == (200, 1)  # nothing changed: no new revision
    assert c.stop() == 0


def test_config_dir_replaced_is_picked_up(connector, free_port):
    import os
    import shutil
    p1, p2 = free_port(), free_port()
    c = connector(objects(pg_listener(p1)))
    # A tool that swaps the whole directory (the inotify watch dies with it).
    shutil.rmtree(c.config_dir)
    c.wait_log(lambda l: l.get("msg", "").startswith("configuration refused"), timeout=5)
    assert revision(c) == (200, 1) and can_connect(p1)
    os.mkdir(c.config_dir)
    c.set_objects(objects(pg_listener(p2)))
    wait_until(lambda: revision(c) == (200, 2), 6, what="revision 2 from the new directory")
    assert can_connect(p2)
    # The new directory is watched again: the next edit is fast.
    c.wait_log("config_dir replaced; watching the new directory", timeout=5)
    p3 = free_port()
    t0 = time.monotonic()
    c.set_objects(objects(pg_listener(p3)))
    wait_until(lambda: revision(c) == (200, 3), 5, what="revision 3")
    assert time.monotonic() - t0 < 1.5


def test_invalid_policy_object_refused(connector, free_port):
    p1 = free_port()
    c = connector(objects(pg_listener(p1)))
    c.write_file("policies.yaml", "policies:\n  - {name: p1, status: sometimes, module: \"package x\"}\n")
    line = c.wait_log(lambda l: l.get("msg", "").startswith("configuration refused"), timeout=5)
    assert "policies.yaml" in line["error"] and "status" in line["error"]
    assert revision(c) == (200, 1)
    c.remove_file("policies.yaml")
    time.sleep(0.5)
    # Back to the content in force: nothing new to apply, nothing refused again.
    assert revision(c) == (200, 1)
    assert len([l for l in c.log_lines() if l.get("msg", "").startswith("configuration refused")]) == 1
