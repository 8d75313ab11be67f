"""Integration-test harness: real PostgreSQL servers and real connector processes
on free loopback ports, always torn down.

Run with Debian's interpreter: ``/usr/bin/python3 -m pytest tests/integration``.
The binary under test comes from ``$PORTCULLIS_BIN`` (default ``<repo>/build/portcullis``).

Fixtures (defined in conftest.py; import nothing, pytest finds them):

``portcullis_bin`` (session)
    Path of the binary under test.
``free_port`` (function)
    ``free_port()`` returns a currently unused TCP port on 127.0.0.1.
``pg_server`` (module)
    A :class:`Postgres`: a throwaway cluster (initdb into a temp dir, run as the
    ``postgres`` OS user when the tests run as root), SCRAM-SHA-256 for every
    TCP login, listening on 127.0.0.1:``pg_server.port``. It has a superuser
    ``postgres`` (password ``pg_server.superuser_password``), an ordinary user
    ``app`` (password ``pg_server.app_password``) owning database ``app`` that
    holds table ``items(id int primary key, name text)`` with 3 rows.
    Helpers: ``pg_server.psql(sql, user=, password=, dbname=)`` -> stdout text,
    ``pg_server.dsn(**overrides)`` -> libpq keyword string,
    ``pg_server.resource(name="pg-main", **overrides)`` -> a resource dict for
    a connector's config_dir (credentials of ``app``), ``pg_server.stop()`` /
    ``pg_server.start()`` (e.g. to test "upstream down").
``connector`` (function)
    A factory: ``connector(objects=None, *, files=None, config=None, wait_ready=True,
    drain_timeout="5s", workers=2, env=None, extra_args=())`` writes a connector
    YAML plus a ``config_dir`` into a fresh temp dir, starts ``portcullis connector -c``,
    and (by default) waits for ``/ready`` to answer 200. ``objects`` is a dict with
    lists under ``resources``/``listeners``/``users``/``policies`` written to
    ``config_dir/objects.yaml``; ``files`` maps extra file names to text (``*.rego``,
    more ``*.yaml``); ``config`` is a dict deep-merged over the generated connector
    YAML (or a string used verbatim). Returns a :class:`Connector`; every connector
    is stopped (SIGKILL if needed) when the test ends.
``user_password`` (session)
    The password the helpers give connector users (``alice``): see :func:`pg_user`.

Useful helpers importable from ``harness``: :func:`pg_listener`, :func:`pg_user`,
:func:`wait_until`, :func:`http_get`, :func:`run_portcullis`, :class:`Connector`,
:class:`Postgres`.

A :class:`Connector` has ``health_port``, ``spool_dir``, ``config_dir``, ``config_path``,
``proc``; ``get(path)`` -> ``(status, body_text)``; ``ready_status()``;
``logs`` (list of parsed JSON log lines, live), ``raw_stderr``;
``wait_log(pred_or_msg, timeout=10, **fields)`` -> the first matching line;
``write_file(name, text)`` / ``remove_file(name)`` (atomic edits of config_dir);
``set_objects(objects)`` (rewrite ``objects.yaml``); ``signal(sig)``;
``stop(timeout=30)`` -> exit code (SIGTERM then wait); ``wait_exit(timeout)``;
``spool_records()`` -> list of audit records via ``portcullis logs --spool``;
``wait_spool(pred, timeout=10)`` -> records once ``pred(records)`` holds (records
become readable when the writer's batch is durable, not at append).
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = "/usr/lib/postgresql/15/bin"
USER_PASSWORD = "alice-secret-pw"


def portcullis_path():
    return os.environ.get("PORTCULLIS_BIN") or os.path.join(REPO, "build", "portcullis")


def run_portcullis(*args, timeout=30, **kw):
    """Run the binary to completion; returns CompletedProcess (text mode)."""
    return subprocess.run([portcullis_path(), *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(port, path, timeout=5.0, method="GET", host="127.0.0.1"):
    """One request on a fresh connection; returns (status, body) or (None, error text)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return None, str(e)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, data.decode("latin-1")
    return status, body.decode("utf-8", "replace")


def _deep_merge(base, over):
    for k, v in over.items():
        if v is None:  # None deletes a generated key
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def pg_listener(port, name="pg", resource="pg-main", tls="disabled"):
    return {"name": name, "port": port, "resource": resource, "tls": tls}


def pg_user(username="alice", password=USER_PASSWORD, **extra):
    u = {"username": username, "email": f"{username}@example.com", "type": "human",
         "groups": ["analysts"], "password": password}
    u.update(extra)
    return u


# ---------------------------------------------------------------- PostgreSQL

class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with SCRAM auth."""

    superuser_password = "pg-super-pw"
    app_password = "app-upstream-pw"

    def __init__(self, port=None):
        self.port = port or free_port()
        self.base = tempfile.mkdtemp(prefix="pc-pg-")
        self.datadir = os.path.join(self.base, "data")
        self.logfile = os.path.join(self.base, "postgres.log")
        self._as_user = []
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the server as the postgres OS user.
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.base, 0o755)
        self._init()
        self.start()
        self._seed()

    def _run(self, argv, **kw):
        return subprocess.run(self._as_user + argv, check=True, capture_output=True, text=True,
                              **kw)

    def _init(self):
        pwfile = os.path.join(self.base, "pw")
        with open(pwfile, "w") as f:
            f.write(self.superuser_password + "\n")
        if self._as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run([f"{PG_BIN}/initdb", "-D", self.datadir, "-U", "postgres", "--pwfile", pwfile,
                   "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                   "--locale=C.UTF-8" if os.path.exists("/usr/lib/locale/C.utf8") else "--locale=C"])
        os.unlink(pwfile)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.base}'\n"
                    "password_encryption = 'scram-sha-256'\nfsync = off\n"
                    "max_connections = 200\n")

    def start(self):
        self._run([f"{PG_BIN}/pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                   "start"])

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            subprocess.run(self._as_user + [f"{PG_BIN}/pg_ctl", "-D", self.datadir, "-m", mode,
                                            "-w", "stop"], capture_output=True, text=True)

    def psql(self, sql, user="postgres", password=None, dbname="postgres", host="127.0.0.1",
             port=None, check=True):
        env = dict(os.environ)
        env["PGPASSWORD"] = password if password is not None else (
            self.superuser_password if user == "postgres" else self.app_password)
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            f"host={host} port={port or self.port} user={user} dbname={dbname}",
                            "-c", sql], capture_output=True, text=True, env=env, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout if check else r

    def _seed(self):
        self.psql(f"CREATE ROLE app LOGIN PASSWORD '{self.app_password}'")
        self.psql("CREATE DATABASE app OWNER app")
        self.psql("CREATE TABLE items(id int primary key, name text);"
                  "INSERT INTO items VALUES (1,'one'),(2,'two'),(3,'three')",
                  user="app", dbname="app")

    def dsn(self, **over):
        kv = {"host": "127.0.0.1", "port": self.port, "user": "app", "dbname": "app",
              "password": self.app_password}
        kv.update(over)
        return " ".join(f"{k}={v}" for k, v in kv.items())

    def resource(self, name="pg-main", **over):
        r = {"name": name, "technology": "postgres", "hostname": "127.0.0.1", "port": self.port,
             "database": "app", "tls": "disable",
             "credentials": {"username": "app", "password": self.app_password}}
        r.update(over)
        return r

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------- connector

class Connector:
    """A running ``portcullis connector`` with its own temp dir, config and spool."""

    def __init__(self, objects=None, *, files=None, config=None, wait_ready=True,
                 drain_timeout="5s", workers=2, env=None, extra_args=(), ready_timeout=15):
        self.base = tempfile.mkdtemp(prefix="pc-conn-")
        self.config_dir = os.path.join(self.base, "config.d")
        self.spool_dir = os.path.join(self.base, "spool")
        os.mkdir(self.config_dir)
        self.health_port = free_port()
        self.logs = []
        self.raw_stderr = []
        self._lock = threading.Lock()
        if objects is not None:
            self.set_objects(objects)
        for name, text in (files or {}).items():
            self.write_file(name, text)
        self.config_path = os.path.join(self.base, "connector.yaml")
        if isinstance(config, str):
            text = config
        else:
            cfg = {
                "instance_name": "itest",
                "listen_address": "127.0.0.1",
                "control_plane": {"config_dir": self.config_dir},
                "health": {"listen": f"127.0.0.1:{self.health_port}"},
                "shutdown": {"drain_timeout": drain_timeout},
                "log_spool": {"dir": self.spool_dir, "max_bytes": "256MiB"},
                "workers": workers,
            }
            _deep_merge(cfg, config or {})
            text = yaml.safe_dump(cfg, sort_keys=False)
        with open(self.config_path, "w") as f:
            f.write(text)
        penv = dict(os.environ)
        penv.update(env or {})
        self.proc = subprocess.Popen([portcullis_path(), "connector", "-c", self.config_path,
                                      *extra_args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=penv)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if wait_ready:
            self.wait_ready(ready_timeout)

    # -- logs
    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.raw_stderr.append(line)
                try:
                    obj = json.loads(line)
                    if isinstance(obj, dict):
                        self.logs.append(obj)
                except ValueError:
                    pass

    def log_lines(self):
        with self._lock:
            return list(self.logs)

    def find_logs(self, msg=None, **fields):
        out = []
        for l in self.log_lines():
            if msg is not None and l.get("msg") != msg:
                continue
            if all(l.get(k) == v for k, v in fields.items()):
                out.append(l)
        return out

    def wait_log(self, msg=None, timeout=10.0, **fields):
        """First log line with this msg (or matching a predicate) and field values."""
        if callable(msg):
            pred = msg
            return wait_until(lambda: next((l for l in self.log_lines() if pred(l)), None),
                              timeout, what="log line")
        return wait_until(lambda: next(iter(self.find_logs(msg, **fields)), None), timeout,
                          what=f"log line msg={msg!r} {fields}")

    # -- health
    def get(self, path, **kw):
        return http_get(self.health_port, path, **kw)

    def ready_status(self):
        return self.get("/ready")[0]

    def wait_ready(self, timeout=15.0):
        def ok():
            if self.proc.poll() is not None:
                raise RuntimeError(f"connector exited with {self.proc.returncode}:\n"
                                   + "\n".join(self.raw_stderr[-30:]))
            return self.ready_status() == 200
        try:
            wait_until(ok, timeout, what="/ready 200")
        except TimeoutError:
            raise TimeoutError("connector not ready; last /ready: %r\nstderr:\n%s"
                               % (self.get("/ready"), "\n".join(self.raw_stderr[-30:])))
        return self

    # -- config_dir edits (atomic, as an operator's tooling would do)
    def write_file(self, name, text):
        tmp = os.path.join(self.config_dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.config_dir, name))

    def remove_file(self, name):
        os.unlink(os.path.join(self.config_dir, name))

    def set_objects(self, objects, name="objects.yaml"):
        self.write_file(name, yaml.safe_dump(objects, sort_keys=False))

    # -- process
    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=30.0):
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.wait_exit(10)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        return self.wait_exit(10)

    def spool_records(self):
        r = run_portcullis("logs", "--spool", self.spool_dir)
        if r.returncode != 0:
            raise RuntimeError(f"portcullis logs failed ({r.returncode}): {r.stderr}")
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def wait_spool(self, pred, timeout=10.0):
        """Poll the spool until pred(records) is truthy; returns the records.

        The spool's writer makes records durable in batches, so a record appended
        a moment ago may not be readable yet: wait for exactly what the test needs."""
        found = []

        def ok():
            found[:] = self.spool_records()
            return pred(found)
        wait_until(ok, timeout, what="spool records")
        return list(found)

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            self.wait_exit(10)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
