"""OTLP/HTTP metrics export (design §9): a receiver in the test checks the payload,
export resumes after the receiver was down, the final flush at shutdown step 3."""

import http.server
import json
import os
import signal
import socket
import threading

import pytest

from harness import REPO, pg_listener, pg_user, wait_until


class OtlpReceiver:
    """A minimal OTLP/HTTP receiver: records every POST /v1/metrics body."""

    def __init__(self, port=0, status=200):
        self.exports = []
        self.paths = []
        self.headers = []
        self.status = status
        self.conns = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.conns.append(self.connection)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with receiver.lock:
                    receiver.paths.append(self.path)
                    receiver.headers.append(dict(self.headers))
                    if receiver.status == 200:
                        receiver.exports.append(json.loads(body))
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.exports)

    def latest(self):
        with self.lock:
            return self.exports[-1]

    def close(self):
        """Stop listening and drop kept-alive connections: the receiver is gone."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            conns, self.conns = self.conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def receiver():
    r = OtlpReceiver()
    yield r
    r.close()


def objects(port):
    # The upstream need not exist: these tests only open and close client connections.
    return {"resources": [{"name": "pg-main", "technology": "postgres", "hostname": "127.0.0.1",
                           "port": 1, "database": "app", "tls": "disable",
                           "credentials": {"username": "app", "password": "upstream-pw"}}],
            "listeners": [pg_listener(port)], "users": [pg_user()]}


def version_text():
    with open(os.path.join(REPO, "VERSION")) as f:
        return f.read().strip()


def attrs(kvs):
    return {kv["key"]: next(iter(kv["value"].values())) for kv in kvs}


def metrics_by_name(export):
    (rm,) = export["resourceMetrics"]
    (sm,) = rm["scopeMetrics"]
    return {m["name"]: m for m in sm["metrics"]}


def points(metric):
    body = metric.get("sum") or metric.get("gauge") or metric.get("histogram")
    return body["dataPoints"]


def point_value(p):
    return float(p["asDouble"]) if "asDouble" in p else int(p["asInt"])


def telemetry(receiver, interval="1s"):
    return {"telemetry": {"otlp_endpoint": f"http://127.0.0.1:{receiver.port}",
                          "interval": interval}}


def touch_listener(port):
    """Open and close one client connection (counted opened/closed on that listener)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


REQUIRED = {
    # name: kind in the OTLP payload
    "portcullis_heartbeats_total": "sum",
    "portcullis_build_info": "gauge",
    "portcullis_process_resident_memory_bytes": "gauge",
    "portcullis_connections_opened_total": "sum",
    "portcullis_connections_closed_total": "sum",
    "portcullis_connections_active": "gauge",
    "portcullis_listener_connections_accepted_total": "sum",
    "portcullis_requests_total": "sum",
    "portcullis_policy_evaluation_duration_seconds": "histogram",
    "portcullis_control_plane_connected": "gauge",
    "portcullis_control_plane_pings_received_total": "sum",
    "portcullis_control_plane_last_contact_age_seconds": "gauge",
    "portcullis_spool_records_pending": "gauge",
    "portcullis_spool_records_dropped": "gauge",
    "portcullis_cluster_members": "gauge",
    "portcullis_telemetry_exports_total": "sum",
}


def test_export_payload(connector, free_port, receiver):
    port = free_port()
    c = connector(objects(port), config=telemetry(receiver))
    touch_listener(port)
    # The pg module counts a session when it starts; wait for an export that has it closed.
    def has_closed():
        if not receiver.count():
            return False
        m = metrics_by_name(receiver.latest()).get("portcullis_connections_closed_total")
        return m and any(point_value(p) >= 1 for p in points(m))
    wait_until(has_closed, 20, what="an export counting the closed connection")

    with receiver.lock:
        assert set(receiver.paths) == {"/v1/metrics"}
        assert receiver.headers[0]["Content-Type"] == "application/json"
    export = receiver.latest()
    (rm,) = export["resourceMetrics"]
    res = attrs(rm["resource"]["attributes"])
    assert res["service.name"] == "portcullis-connector"
    assert res["service.version"] == version_text()
    assert res["service.instance.id"] == "itest"
    (sm,) = rm["scopeMetrics"]
    assert sm["scope"]["name"] == "portcullis"

    metrics = metrics_by_name(export)
    for name, kind in REQUIRED.items():
        assert name in metrics, name
        assert kind in metrics[name], (name, metrics[name])

    for m in metrics.values():
        for p in points(m):
            # 64-bit integers are decimal strings in OTLP JSON; so are the timestamps.
            assert isinstance(p["timeUnixNano"], str) and int(p["timeUnixNano"]) > 0
            if "asInt" in p:
                assert isinstance(p["asInt"], str)
        if "sum" in m:
            assert m["sum"]["isMonotonic"] is True
            assert m["sum"]["aggregationTemporality"] == 2  # CUMULATIVE
            for p in points(m):
                assert int(p["startTimeUnixNano"]) <= int(p["timeUnixNano"])

    # Per-listener attributes on the connection metrics.
    opened = {attrs(p["attributes"])["listener"]: point_value(p)
              for p in points(metrics["portcullis_connections_opened_total"])}
    assert opened["pg"] >= 1
    decisions = {attrs(p["attributes"])["decision"]
                 for p in points(metrics["portcullis_requests_total"])}
    assert {"allow", "block", "mask"} <= decisions

    hist = metrics["portcullis_policy_evaluation_duration_seconds"]["histogram"]
    assert hist["aggregationTemporality"] == 2
    stages = set()
    for p in hist["dataPoints"]:
        stages.add(attrs(p["attributes"])["stage"])
        bounds = p["explicitBounds"]
        assert bounds == sorted(bounds) and len(bounds) >= 5
        assert len(p["bucketCounts"]) == len(bounds) + 1
        assert all(isinstance(b, str) for b in p["bucketCounts"])
        assert sum(int(b) for b in p["bucketCounts"]) == int(p["count"])
    assert {"session", "pre_request", "post_request"} <= stages

    build = points(metrics["portcullis_build_info"])[0]
    assert attrs(build["attributes"])["version"] == version_text()


def test_counters_are_monotonic_across_exports(connector, free_port, receiver):
    port = free_port()
    c = connector(objects(port), config=telemetry(receiver))
    wait_until(lambda: receiver.count() >= 1, 20, what="first export")
    touch_listener(port)
    touch_listener(port)
    wait_until(lambda: receiver.count() >= 4, 30, what="four exports")
    with receiver.lock:
        exports = list(receiver.exports)
    beats = [point_value(points(metrics_by_name(e)["portcullis_heartbeats_total"])[0])
             for e in exports]
    assert beats == sorted(beats) and beats[-1] > beats[0]
    times = [int(points(metrics_by_name(e)["portcullis_heartbeats_total"])[0]["timeUnixNano"])
             for e in exports]
    assert times == sorted(times)
    starts = {points(metrics_by_name(e)["portcullis_heartbeats_total"])[0]["startTimeUnixNano"]
              for e in exports}
    assert len(starts) == 1  # cumulative: one fixed start time


def test_export_resumes_after_receiver_was_down(connector, free_port):
    port = free_port()
    rport = free_port()
    r1 = OtlpReceiver(rport)
    c = connector(objects(port), config={"telemetry": {
        "otlp_endpoint": f"http://127.0.0.1:{rport}", "interval": "1s"}})
    try:
        wait_until(lambda: r1.count() >= 1, 20, what="first export")
    finally:
        r1.close()
    failed = c.wait_log("telemetry export failed", timeout=20)
    assert failed["snapshot"] == "retrying"
    assert failed["endpoint"] == f"http://127.0.0.1:{rport}"
    # Nothing listens now; come back on the same port.
    r2 = OtlpReceiver(rport)
    try:
        wait_until(lambda: r2.count() >= 1, 30, what="export after the receiver came back")
        resumed = c.wait_log("telemetry export resumed", timeout=10)
        assert resumed["failed_attempts"] >= 1
        # The first snapshot through may predate the failures (it is the one that was
        # being retried); a later one counts them.
        def exports_by_result():
            m = metrics_by_name(r2.latest())["portcullis_telemetry_exports_total"]
            by = {attrs(p["attributes"])["result"]: point_value(p) for p in points(m)}
            return by if by["failed"] >= 1 else None
        by_result = wait_until(exports_by_result, 20, what="an export counting the failures")
        assert by_result["ok"] >= 1
        # The connector kept serving while the receiver was gone.
        assert c.ready_status() == 200
    finally:
        r2.close()


def test_retryable_status_is_retried(connector, free_port):
    port = free_port()
    r = OtlpReceiver(status=503)
    try:
        c = connector(objects(port), config={"telemetry": {
            "otlp_endpoint": f"http://127.0.0.1:{r.port}/", "interval": "1s"}})
        failed = c.wait_log("telemetry export failed", timeout=20)
        assert failed["error"] == "HTTP 503" and failed["snapshot"] == "retrying"
        with r.lock:
            r.status = 200
        wait_until(lambda: r.count() >= 1, 30, what="export once the receiver accepts")
        with r.lock:
            assert set(r.paths) == {"/v1/metrics"}  # trailing slash of the endpoint dropped
    finally:
        r.close()


def test_final_flush_at_shutdown_step_3(connector, free_port, receiver):
    port = free_port()
    # An interval far longer than the test: the only export is the final flush.
    c = connector(objects(port), config=telemetry(receiver, interval="1h"))
    touch_listener(port)
    # Counted by the worker once it accepted the connection: wait for that first.
    wait_until(lambda: "portcullis_connections_opened_total{listener=\"pg\"} 1" in
               c.get("/metrics")[1], 15, what="connection counted")
    assert receiver.count() == 0
    c.signal(signal.SIGTERM)
    assert c.wait_exit(30) == 0
    assert receiver.count() == 1
    metrics = metrics_by_name(receiver.latest())
    # Collected during shutdown: not ready any more, the connection counted.
    assert point_value(points(metrics["portcullis_ready"])[0]) == 0
    opened = points(metrics["portcullis_connections_opened_total"])
    assert sum(point_value(p) for p in opened) >= 1
    step3 = [l for l in c.log_lines() if l.get("msg") == "shutdown" and l.get("step") == 3][0]
    assert step3["status"] == "done" and step3["final_flush"] is True
    assert step3["exports_ok"] == 1
    steps = [l["step"] for l in c.log_lines() if l.get("msg") == "shutdown"]
    assert steps == sorted(steps)


def test_final_flush_with_receiver_down_does_not_hang(connector, free_port):
    port = free_port()
    dead = free_port()  # nothing listens: connection refused
    c = connector(objects(port), config={"telemetry": {
        "otlp_endpoint": f"http://127.0.0.1:{dead}", "interval": "1h"}})
    c.signal(signal.SIGTERM)
    assert c.wait_exit(30) == 0
    step3 = [l for l in c.log_lines() if l.get("msg") == "shutdown" and l.get("step") == 3][0]
    assert step3["status"] == "done" and step3["final_flush"] is False
    assert c.find_logs("telemetry final flush failed")


def test_no_endpoint_no_export_step_3_skipped(connector, free_port):
    c = connector(objects(free_port()))
    assert not c.find_logs("telemetry exporter started")
    c.signal(signal.SIGTERM)
    assert c.wait_exit(30) == 0
    step3 = [l for l in c.log_lines() if l.get("msg") == "shutdown" and l.get("step") == 3][0]
    assert step3["status"] == "skipped"
    assert step3["reason"] == "telemetry.otlp_endpoint is not set"


def test_endpoint_credentials_never_logged(connector, free_port, receiver):
    c = connector(objects(free_port()), config={"telemetry": {
        "otlp_endpoint": f"http://user:s3cr3t-pw@127.0.0.1:{receiver.port}", "interval": "1s"}})
    started = c.wait_log("telemetry exporter started")
    assert started["endpoint"] == f"http://127.0.0.1:{receiver.port}"
    wait_until(lambda: receiver.count() >= 1, 20, what="an export")
    assert c.stop() == 0
    with c._lock:
        text = "\n".join(c.raw_stderr)
    assert "s3cr3t-pw" not in text and "user:" not in text


def test_hanging_receiver_blocks_neither_serving_nor_shutdown(connector, free_port):
    """A receiver that accepts connections and never answers: exports time out in the
    exporter thread while the connector keeps serving, and shutdown still completes."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # never accepted: the kernel completes handshakes, nobody replies
    try:
        port = free_port()
        c = connector(objects(port), config={"telemetry": {
            "otlp_endpoint": f"http://127.0.0.1:{hole.getsockname()[1]}", "interval": "1s"}})
        failed = c.wait_log("telemetry export failed", timeout=30)
        assert failed["snapshot"] == "retrying"
        # Serving meanwhile: health, readiness and the listener.
        for _ in range(5):
            assert c.ready_status() == 200
            touch_listener(port)
        c.signal(signal.SIGTERM)
        assert c.wait_exit(60) == 0
        step3 = [l for l in c.log_lines() if l.get("msg") == "shutdown" and l.get("step") == 3][0]
        assert step3["status"] == "done" and step3["final_flush"] is False
    finally:
        hole.close()
