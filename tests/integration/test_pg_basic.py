"""PostgreSQL through the connector: logins, simple/extended/prepared queries, COPY,
a large result, cancel, errors, audit records."""

import os
import subprocess
import threading
import time

import psycopg
import pytest

from harness import USER_PASSWORD, pg_listener, pg_user, wait_until


@pytest.fixture(scope="module")
def objs(pg_server):
    def make(port, **lst):
        return {"resources": [pg_server.resource()],
                "listeners": [pg_listener(port, **lst)],
                "users": [pg_user(), pg_user("bob", "bob-pw-123")]}
    return make


@pytest.fixture
def conn_port(connector, objs, free_port):
    port = free_port()
    c = connector(objs(port))
    c.pg_port = port
    return c


def dsn(port, user="alice", password=USER_PASSWORD, dbname="app", **kw):
    parts = {"host": "127.0.0.1", "port": port, "user": user, "password": password,
             "dbname": dbname, "sslmode": "disable", "application_name": "itest"}
    parts.update(kw)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def psql(port, sql, user="alice", password=USER_PASSWORD, extra=(), check=True, **kw):
    env = dict(os.environ, PGPASSWORD=password)
    r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *extra,
                        dsn(port, user, password, **kw).replace(f" password={password}", ""),
                        "-c", sql], capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_psql_simple(conn_port):
    r = psql(conn_port.pg_port, "select name from items order by id")
    assert r.stdout.split() == ["one", "two", "three"]


def test_psycopg_extended_and_prepared(conn_port):
    with psycopg.connect(dsn(conn_port.pg_port)) as conn:
        with conn.cursor() as cur:
            cur.execute("select name from items where id = %s", (2,))
            assert cur.fetchone() == ("two",)
            for i in (1, 2, 3):
                cur.execute("select id from items where id = %s", (i,), prepare=True)
                assert cur.fetchone() == (i,)
            cur.execute("select %s::int + %s::int", (40, 2), binary=True)
            assert cur.fetchone() == (42,)
            # pipelining: many statements before reading
            with conn.pipeline():
                curs = []
                for i in range(20):
                    c2 = conn.cursor()
                    c2.execute("select %s::int * 2", (i,))
                    curs.append(c2)
            assert [c2.fetchone()[0] for c2 in curs] == [i * 2 for i in range(20)]
            with pytest.raises(psycopg.errors.UndefinedTable):
                cur.execute("select * from no_such_table")
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("select 1")
            assert cur.fetchone() == (1,)


def test_copy_both_ways(conn_port):
    with psycopg.connect(dsn(conn_port.pg_port), autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("create temp table t(a int, b text)")
            with cur.copy("copy t from stdin") as cp:
                for i in range(10000):
                    cp.write_row((i, f"row {i}"))
            cur.execute("select count(*), sum(a) from t")
            assert cur.fetchone() == (10000, sum(range(10000)))
            out = []
            with cur.copy("copy t to stdout") as cp:
                for row in cp.rows():
                    out.append(row)
            assert len(out) == 10000
            # COPY FROM with an error in the data
            with pytest.raises(psycopg.errors.InvalidTextRepresentation):
                with cur.copy("copy t from stdin") as cp:
                    cp.write(b"notanint\tx\n")
            cur.execute("select 1")
            assert cur.fetchone() == (1,)


def test_notifications_and_parameter_status(conn_port):
    with psycopg.connect(dsn(conn_port.pg_port), autocommit=True) as conn:
        assert conn.info.parameter_status("server_version")
        assert conn.info.parameter_status("application_name") == "itest"
        conn.execute("set application_name = 'changed'")
        assert conn.info.parameter_status("application_name") == "changed"
        got = []
        conn.add_notify_handler(got.append)
        conn.execute("listen chan")
        with psycopg.connect(dsn(conn_port.pg_port), autocommit=True) as other:
            other.execute("notify chan, 'hello'")
        wait_until(lambda: conn.execute("select 1") and got, 5, what="notification")
        assert got[0].channel == "chan" and got[0].payload == "hello"


def test_wrong_password_and_unknown_user(conn_port):
    r = psql(conn_port.pg_port, "select 1", password="wrong", check=False)
    assert r.returncode != 0
    assert 'password authentication failed for user "alice"' in r.stderr
    r2 = psql(conn_port.pg_port, "select 1", user="mallory", password="wrong", check=False)
    assert r2.returncode != 0
    assert 'password authentication failed for user "mallory"' in r2.stderr
    # no upstream secret or role name in what the client sees
    for out in (r.stderr, r2.stderr):
        assert "app-upstream-pw" not in out


def test_upstream_down(connector, objs, free_port):
    port = free_port()
    dead = free_port()
    o = objs(port)
    o["resources"][0]["port"] = dead
    connector(o)
    r = psql(port, "select 1", check=False)
    assert r.returncode != 0
    assert "upstream unavailable" in r.stderr
    assert "connection refused" in r.stderr.lower()


def test_cancel(conn_port):
    with psycopg.connect(dsn(conn_port.pg_port)) as conn:
        def cancel_later():
            time.sleep(0.5)
            conn.cancel()
        t = threading.Thread(target=cancel_later)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(20)")
        t.join()
        assert time.monotonic() - t0 < 10
        conn.rollback()
        assert conn.execute("select 7").fetchone() == (7,)


def test_cancel_wrong_key_does_nothing(conn_port):
    import socket, struct
    with psycopg.connect(dsn(conn_port.pg_port)) as conn:
        pid = conn.info.backend_pid
        with socket.create_connection(("127.0.0.1", conn_port.pg_port)) as s:
            s.sendall(struct.pack(">IIII", 16, 80877102, pid, 12345))
            s.settimeout(5)
            assert s.recv(10) == b""
        assert conn.execute("select pg_sleep(0.3), 1").fetchone()[1] == 1


def test_audit_records(conn_port):
    port = conn_port.pg_port
    psql(port, "select 'audit-marker-1' as x")
    with psycopg.connect(dsn(port)) as conn:
        conn.execute("select %s::text as y", ("v",), prepare=True)
        conn.execute("select id from items where id = %s", (1,))

    def records():
        return [r for r in conn_port.spool_records()]
    recs = wait_until(lambda: (lambda rs: rs if any("audit-marker-1" in (r.get("query") or "")
                                                   for r in rs) and len(rs) >= 6 else None)(records()),
                      10, what="audit records")
    q = [r for r in recs if "audit-marker-1" in (r.get("query") or "")]
    assert q and q[0]["user"] == "alice" and q[0]["technology"] == "postgres"
    assert q[0]["resource"] == "pg-main" and q[0]["decision"] == "allow"
    assert q[0]["rows"] == 1 and q[0]["client_ip"] == "127.0.0.1"
    ex = [r for r in recs if r.get("query") == "select id from items where id = $1"]
    stages = sorted(r.get("stage") for r in ex)
    assert "parse" in stages and "execute" in stages
    text = repr(recs)
    assert USER_PASSWORD not in text and "app-upstream-pw" not in text


def test_gssenc_declined_and_unknown_user_runs_full_exchange(conn_port):
    import struct
    from pgwire import Wire, error_fields
    w = Wire(conn_port.pg_port)
    w.send(struct.pack(">II", 8, 80877104))  # GSSENCRequest
    assert w.s.recv(1) == b"N"
    w.close()
    # an unknown user gets a server-first message like anyone else, then 28P01
    for user, pw in (("mallory", "x"), ("alice", "wrong")):
        w = Wire(conn_port.pg_port)
        out = w.login(user, pw)
        t, body = out[-1] if isinstance(out, list) else out
        f = error_fields(body)
        assert t == b"E" and f["C"] == "28P01", (user, f)
        assert f["M"] == f'password authentication failed for user "{user}"'
        w.close()


def test_metrics_per_listener(conn_port):
    psql(conn_port.pg_port, "select 1")
    status, body = conn_port.get("/metrics")
    assert status == 200
    lines = [l for l in body.splitlines() if 'listener="pg"' in l]
    def val(name):
        return next(float(l.split()[-1]) for l in lines if l.startswith(name + "{"))
    assert val("portcullis_connections_opened_total") >= 1
    assert val("portcullis_queries_total") >= 1
    wait_until(lambda: "portcullis_connections_active" in body, 1)


def test_listener_tls_disabled_declines_ssl(connector, objs, free_port, tmp_path):
    import subprocess as sp
    sp.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-keyout", f"{tmp_path}/k.pem", "-out", f"{tmp_path}/c.pem"],
           check=True, capture_output=True)
    p1, p2 = free_port(), free_port()
    o = objs(p1, tls="disabled")
    o["listeners"].append(pg_listener(p2, name="pg-opt", tls="optional"))
    connector(o, config={"tls": {"cert": f"{tmp_path}/c.pem", "key": f"{tmp_path}/k.pem"}})
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn(p1, sslmode="require"))
    with psycopg.connect(dsn(p1, sslmode="prefer")) as c:
        assert not c.pgconn.ssl_in_use
    with psycopg.connect(dsn(p2, sslmode="require")) as c:
        assert c.pgconn.ssl_in_use
    with psycopg.connect(dsn(p2, sslmode="disable")) as c:
        assert not c.pgconn.ssl_in_use


def test_psql_cancel_only_hits_its_own_session(conn_port):
    import signal as sg
    env = dict(os.environ, PGPASSWORD=USER_PASSWORD)
    with psycopg.connect(dsn(conn_port.pg_port)) as other:
        p = subprocess.Popen(["psql", "-X", "-A", "-t", dsn(conn_port.pg_port).replace(
            f" password={USER_PASSWORD}", ""), "-c", "select pg_sleep(30)"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(1.0)
        t0 = time.monotonic()
        p.send_signal(sg.SIGINT)  # psql sends a CancelRequest
        out, err = p.communicate(timeout=15)
        assert time.monotonic() - t0 < 10
        assert "canceling statement due to user request" in err
        # the other session keeps working, its transaction untouched
        assert other.execute("select pg_sleep(0.2), 9").fetchone()[1] == 9
