"""A real ``portcullis controlplane`` process for integration tests.

``ControlPlane(admin_token=..., port=None, db=None)`` writes a config into a
fresh temp dir, starts the server on a free loopback port and waits for
``/health``. Helpers:

``api(method, path, body=None, token=<admin>, raw=None, headers=None)``
    -> ``(status, parsed JSON or None, raw text)``
``create_connector(name)`` -> token
``watch(token, since=0)`` -> :class:`Watch` (a thread collecting the stream's
    lines with their arrival time, ``time.monotonic()``)
``stop()`` (SIGTERM, returns the exit code), ``kill()``, ``start()`` (same db
and port), ``close()``; ``logs`` are the parsed JSON log lines.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from harness import free_port, portcullis_path, wait_until

ADMIN_TOKEN = "admin-token-for-tests-0123456789"


class Watch:
    def __init__(self, port, token, since=0, timeout=30):
        self.lines = []  # (monotonic time, parsed object)
        self.closed = False
        self.status = None
        self._cond = threading.Condition()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", f"/v1/connector/config?watch=1&since={since}",
                          headers={"Authorization": f"Bearer {token}"})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                obj = json.loads(line)
                with self._cond:
                    self.lines.append((time.monotonic(), obj))
                    self._cond.notify_all()
        except Exception:  # closed under our feet by close(): the stream is over either way
            pass
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(self, pred, timeout):
        """First (time, obj) after the lines already seen... matching pred, or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, o in self.lines:
                    if pred(o):
                        return t, o
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self._cond.wait(left)

    def snapshots(self):
        with self._cond:
            return [o for _, o in self.lines if o.get("type") == "snapshot"]

    def close(self):
        try:
            sock = self.conn.sock or (self.resp.fp and self.resp.fp.raw._sock)
            sock and sock.shutdown(2)
        except (OSError, AttributeError):
            pass
        self.thread.join(10)
        self.conn.close()


class ControlPlane:
    def __init__(self, admin_token=ADMIN_TOKEN, port=None, extra_config="", env=None,
                 wait=True):
        self.base = tempfile.mkdtemp(prefix="pc-cp-")
        self.port = port or free_port()
        self.admin_token = admin_token
        self.db = os.path.join(self.base, "cp.db")
        self.config_path = os.path.join(self.base, "cp.yaml")
        with open(self.config_path, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.port}\n"
                    f"db: {self.db}\n"
                    "admin_token: ${PC_TEST_ADMIN_TOKEN}\n" + extra_config)
        self.env = dict(os.environ, PC_TEST_ADMIN_TOKEN=admin_token, **(env or {}))
        self.logs = []
        self.raw_stderr = []
        self._watches = []
        self.proc = None
        self.start(wait)

    def start(self, wait=True):
        self.proc = subprocess.Popen([portcullis_path(), "controlplane", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env)
        threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True).start()
        if wait:
            wait_until(self._healthy, timeout=15, what="control plane /health")

    def _read_stderr(self, proc):
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.raw_stderr.append(line)
            try:
                self.logs.append(json.loads(line))
            except ValueError:
                pass

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError("control plane exited: " + "\n".join(self.raw_stderr))
        try:
            return self.api("GET", "/health", token=None)[0] == 200
        except OSError:
            return False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def api(self, method, path, body=None, token="admin", raw=None, headers=None, timeout=30):
        if token == "admin":
            token = self.admin_token
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None and "Content-Type" not in h:
            h["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        return resp.status, parsed, text

    def create_connector(self, name):
        status, body, text = self.api("POST", "/v1/connectors", {"name": name})
        assert status == 201, text
        return body["token"]

    def watch(self, token, since=0):
        w = Watch(self.port, token, since)
        self._watches.append(w)
        return w

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def close(self):
        for w in self._watches:
            w.close()
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)
