"""/metrics (design §5, §9): Prometheus text that python3-prometheus-client's parser
accepts, holding the same metric set the OTLP exporter sends."""

import os
import socket

import pytest

from prometheus_client.parser import text_string_to_metric_families

from harness import REPO, http_get, pg_listener, pg_user, wait_until


def objects(port):
    return {"resources": [{"name": "pg-main", "technology": "postgres", "hostname": "127.0.0.1",
                           "port": 1, "database": "app", "tls": "disable",
                           "credentials": {"username": "app", "password": "upstream-pw"}}],
            "listeners": [pg_listener(port)], "users": [pg_user()]}


def scrape(c):
    status, body = c.get("/metrics")
    assert status == 200
    return {f.name: f for f in text_string_to_metric_families(body)}, body


def value(fam, **labels):
    for s in fam.samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError(labels)


# Family names as the parser reports them (it strips _total from counters).
EXPECTED = {
    "portcullis_heartbeats": "counter",
    "portcullis_build_info": "gauge",
    "portcullis_ready": "gauge",
    "portcullis_process_resident_memory_bytes": "gauge",
    "portcullis_connections_opened": "counter",
    "portcullis_connections_closed": "counter",
    "portcullis_connections_active": "gauge",
    "portcullis_listener_connections_accepted": "counter",
    "portcullis_requests": "counter",
    "portcullis_policy_evaluation_duration_seconds": "histogram",
    "portcullis_control_plane_connected": "gauge",
    "portcullis_control_plane_pings_received": "counter",
    "portcullis_control_plane_last_contact_age_seconds": "gauge",
    "portcullis_spool_records_pending": "gauge",
    "portcullis_spool_records_dropped": "gauge",
    "portcullis_cluster_members": "gauge",
}


def test_metrics_parse_with_prometheus_client(connector, free_port):
    port = free_port()
    c = connector(objects(port), config={"telemetry": {"interval": "1s"}})
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

    def closed_counted():
        fams, _ = scrape(c)
        fam = fams.get("portcullis_connections_closed")
        return fam and value(fam, listener="pg") >= 1
    wait_until(closed_counted, 15, what="closed connection counted")
    # The heartbeat ticks every telemetry.interval even without an OTLP endpoint.
    wait_until(lambda: value(scrape(c)[0]["portcullis_heartbeats"]) >= 1, 15,
               what="a heartbeat")

    fams, body = scrape(c)
    for name, kind in EXPECTED.items():
        assert name in fams, name
        assert fams[name].type == kind, (name, fams[name].type)
    # No exporter configured: no export counters.
    assert "portcullis_telemetry_exports" not in fams

    with open(os.path.join(REPO, "VERSION")) as f:
        version = f.read().strip()
    assert value(fams["portcullis_build_info"], version=version) == 1
    assert value(fams["portcullis_ready"]) == 1
    assert value(fams["portcullis_process_resident_memory_bytes"]) > 1 << 20
    assert value(fams["portcullis_connections_opened"], listener="pg") >= 1
    assert value(fams["portcullis_control_plane_connected"]) == 0
    assert value(fams["portcullis_control_plane_last_contact_age_seconds"]) == -1
    assert value(fams["portcullis_cluster_members"]) == 0
    for d in ("allow", "block", "mask"):
        assert value(fams["portcullis_requests"], decision=d) >= 0

    hist = fams["portcullis_policy_evaluation_duration_seconds"]
    for stage in ("session", "pre_request", "post_request"):
        buckets = [s for s in hist.samples
                   if s.name.endswith("_bucket") and s.labels["stage"] == stage]
        les = [float(s.labels["le"]) for s in buckets]
        assert les == sorted(les) and les[-1] == float("inf")
        counts = [s.value for s in buckets]
        assert counts == sorted(counts)  # cumulative
        count = [s.value for s in hist.samples
                 if s.name.endswith("_count") and s.labels["stage"] == stage][0]
        assert counts[-1] == count
        assert any(s.name.endswith("_sum") and s.labels["stage"] == stage for s in hist.samples)

    # One HELP and one TYPE line per family, as the exposition format requires.
    types = [l.split()[2] for l in body.splitlines() if l.startswith("# TYPE ")]
    assert len(types) == len(set(types))


def cgroup_memory_limit():
    """The same rule the connector applies: the first cgroup limit file that exists decides."""
    v2 = v1 = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctl, path = line.rstrip("\n").split(":", 2)
            if hid == "0" and ctl == "":
                v2 = f"/sys/fs/cgroup{path}/memory.max"
            elif "memory" in ctl.split(","):
                v1 = f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"
    for cand in (v2, "/sys/fs/cgroup/memory.max", v1,
                 "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        if cand and os.path.exists(cand):
            text = open(cand).read().strip()
            if not text.isdigit():
                return None
            n = int(text)
            return n if 0 < n < (1 << 62) else None
    return None


def test_memory_percent_only_under_a_limit(connector, free_port):
    c = connector(objects(free_port()))
    fams, _ = scrape(c)
    limit = cgroup_memory_limit()
    if limit is None:
        assert "portcullis_process_memory_limit_percent" not in fams
        assert "portcullis_process_memory_limit_bytes" not in fams
    else:
        assert value(fams["portcullis_process_memory_limit_bytes"]) == limit
        pct = value(fams["portcullis_process_memory_limit_percent"])
        rss = value(fams["portcullis_process_resident_memory_bytes"])
        assert 0 < pct <= 100
        assert abs(pct - 100.0 * rss / limit) < 5


def test_metrics_head_and_content_type(connector, free_port):
    c = connector(objects(free_port()))
    with socket.create_connection(("127.0.0.1", c.health_port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert "content-type: text/plain; version=0.0.4" in head
    status, _ = http_get(c.health_port, "/metrics", method="HEAD")
    assert status == 200


def make_limited_cgroup(limit):
    """A child memory cgroup (v1 or v2) of this process's own with the given limit, or None
    when this machine does not let us create one."""
    with open("/proc/self/cgroup") as f:
        lines = [l.rstrip("\n").split(":", 2) for l in f]
    candidates = []
    for hid, ctl, path in lines:
        if "memory" in ctl.split(","):
            candidates.append((f"/sys/fs/cgroup/memory{path}", "memory.limit_in_bytes"))
        elif hid == "0" and ctl == "":
            candidates.append((f"/sys/fs/cgroup{path}", "memory.max"))
    for parent, limit_file in candidates:
        d = os.path.join(parent, f"pc-itest-{os.getpid()}")
        try:
            os.mkdir(d)
        except OSError:
            continue
        try:
            with open(os.path.join(d, limit_file), "w") as f:
                f.write(str(limit))
            return d
        except OSError:
            os.rmdir(d)
    return None


def test_memory_percent_under_a_cgroup_limit(connector, free_port, tmp_path, monkeypatch,
                                             portcullis_bin):
    limit = 768 << 20
    cg = make_limited_cgroup(limit)
    if cg is None:
        pytest.skip("cannot create a memory cgroup here")
    try:
        # A wrapper moves itself into the cgroup, then becomes the connector.
        wrapper = tmp_path / "in-cgroup.sh"
        wrapper.write_text(f'#!/bin/sh\necho $$ > {cg}/cgroup.procs || exit 99\n'
                           f'exec {portcullis_bin} "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("PORTCULLIS_BIN", str(wrapper))
        c = connector(objects(free_port()))
        fams, _ = scrape(c)
        assert value(fams["portcullis_process_memory_limit_bytes"]) == limit
        pct = value(fams["portcullis_process_memory_limit_percent"])
        rss = value(fams["portcullis_process_resident_memory_bytes"])
        assert 0 < pct < 100
        assert abs(pct - 100.0 * rss / limit) < 2
        assert c.stop() == 0
    finally:
        wait_until(lambda: _rmdir_quietly(cg), 10, what="cgroup removed")


def _rmdir_quietly(d):
    try:
        os.rmdir(d)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
