"""The audit spool behind a real connector and PostgreSQL: the max_bytes bound,
record ids unique across restarts, one record per query, no secret on disk."""

import glob
import os
import re
import subprocess

import psycopg

import harness
from harness import USER_PASSWORD, pg_listener, pg_user, wait_until


def objects(pg, port):
    return {"resources": [pg.resource()], "listeners": [pg_listener(port)],
            "users": [pg_user()]}


def dsn(port):
    return (f"host=127.0.0.1 port={port} user=alice password={USER_PASSWORD} dbname=app "
            "sslmode=disable")


def seg_files(spool_dir):
    return sorted(glob.glob(os.path.join(spool_dir, "*.seg")))


def spool_bytes(spool_dir):
    """Bytes held by the segments; a segment the spool deletes meanwhile counts 0."""
    total = 0
    for f in seg_files(spool_dir):
        try:
            total += os.path.getsize(f)
        except FileNotFoundError:
            pass
    return total


def metric(c, name):
    status, body = harness.http_get(c.health_port, "/metrics")
    assert status == 200
    m = re.search(r"^" + name + r"(?:\{[^}]*\})? (\d+)", body, re.M)
    assert m, f"metric {name} missing"
    return int(m.group(1))


def test_max_bytes_bounds_the_spool(connector, free_port, pg_server):
    port = free_port()
    limit = 1024 * 1024
    c = connector(objects(pg_server, port), config={"log_spool": {"max_bytes": "1MiB"}})
    pad = "x" * 8000  # ~8 KB records: 400 of them are three times the bound
    with psycopg.connect(dsn(port), autocommit=True) as conn:
        for i in range(400):
            conn.execute(f"select 'fill-{i:04d}-{pad}'")
            if i % 50 == 0:
                total = spool_bytes(c.spool_dir)
                assert total <= limit
    wait_until(lambda: c.find_logs("spool full: dropped oldest segment"), 10,
               what="dropped-segment log line")
    line = c.find_logs("spool full: dropped oldest segment")[0]
    assert line["records"] > 0 and line["level"] == "warn"
    wait_until(lambda: metric(c, "portcullis_spool_records_pending") == 0, 10,
               what="spool drained")
    assert metric(c, "portcullis_spool_records_dropped") > 0
    total = spool_bytes(c.spool_dir)
    assert total <= limit
    # what is left is the newest records, readable and intact
    recs = c.spool_records()
    fills = [r["query"] for r in recs if "fill-" in (r.get("query") or "")]
    assert fills and "fill-0399-" in fills[-1]
    assert not any("fill-0000-" in q for q in fills)


def test_ids_unique_across_restarts_and_no_secrets(connector, free_port, pg_server):
    port = free_port()
    c = connector(objects(pg_server, port))
    with psycopg.connect(dsn(port), autocommit=True) as conn:
        for i in range(10):
            conn.execute(f"select 'first-life-{i}'")
    assert c.stop() == 0
    first = c.spool_records()

    # same config, same spool directory, new process
    p = subprocess.Popen([harness.portcullis_path(), "connector", "-c", c.config_path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: harness.http_get(c.health_port, "/ready")[0] == 200, 15,
                   what="restarted connector ready")
        with psycopg.connect(dsn(port), autocommit=True) as conn:
            for i in range(10):
                conn.execute(f"select 'second-life-{i}'")
        p.send_signal(15)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    recs = c.spool_records()
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)), "duplicate record ids"
    assert all(i.startswith("itest-") for i in ids)
    assert [r["id"] for r in recs[:len(first)]] == [r["id"] for r in first]
    seqs = [int(i.rsplit("-", 1)[1]) for i in ids]
    assert min(seqs[len(first):]) > max(seqs[:len(first)])
    # exactly one request record per simple query, in order
    queries = [r["query"] for r in recs if r["type"] == "request"
               and re.search(r"(first|second)-life-\d", r.get("query") or "")]
    assert queries == [f"select 'first-life-{i}'" for i in range(10)] + \
        [f"select 'second-life-{i}'" for i in range(10)]
    # both lives opened and closed a session
    assert sum(r["type"] == "session_start" for r in recs) >= 2
    assert sum(r["type"] == "session_end" for r in recs) >= 2
    # no password, ours or upstream, anywhere in the spool's bytes
    for f in seg_files(c.spool_dir):
        data = open(f, "rb").read()
        for secret in (USER_PASSWORD, pg_server.app_password, pg_server.superuser_password):
            assert secret.encode() not in data
