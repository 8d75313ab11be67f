"""examples/policies/postgres/*.rego, all loaded together, each doing what its comment says."""

import glob
import os

import psycopg
import pytest

from harness import REPO, USER_PASSWORD, pg_listener, pg_user

EXAMPLES = os.path.join(REPO, "examples", "policies", "postgres")


@pytest.fixture(scope="module")
def conn_port(pg_server, connector_module):
    pg_server.psql("CREATE TABLE IF NOT EXISTS staff(id int, full_name text, email text, "
                   "phone text); DELETE FROM staff;"
                   "INSERT INTO staff VALUES (1, 'Ann Lee', 'ann@example.com', '555-0101')",
                   user="app", dbname="app")
    return connector_module


@pytest.fixture(scope="module")
def connector_module(pg_server, portcullis_bin):
    import harness
    port = harness.free_port()
    files = {os.path.basename(p): open(p).read() for p in glob.glob(f"{EXAMPLES}/*.rego")}
    objs = {"resources": [pg_server.resource()], "listeners": [pg_listener(port)],
            "users": [pg_user(), pg_user("dan", "dan-pw-123", groups=["dba"]),
                      pg_user("svc", "svc-pw-123", groups=[], type="machine"),
                      pg_user("rl", "rl-pw-123", groups=[], type="machine")]}
    c = harness.Connector(objs, files=files)
    c.pg_port = port
    yield c
    c.close()


def connect(c, user="alice", password=USER_PASSWORD, app="itest"):
    return psycopg.connect(host="127.0.0.1", port=c.pg_port, user=user, password=password,
                           dbname="app", sslmode="disable", application_name=app,
                           autocommit=True)


def test_all_examples_loaded(conn_port):
    assert len(glob.glob(f"{EXAMPLES}/*.rego")) >= 6
    with connect(conn_port) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_block_ddl(conn_port):
    with connect(conn_port) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="reserved to the dba"):
            conn.execute("create table ex_t(i int)")
    with connect(conn_port, "dan", "dan-pw-123") as conn:
        conn.execute("create table if not exists ex_t(i int)")
        conn.execute("drop table ex_t")


def test_block_unbounded_writes(conn_port):
    with connect(conn_port) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="without WHERE"):
            conn.execute("delete from staff")
        conn.execute("update staff set phone = phone where id = 1")


def test_mask_pii(conn_port):
    with connect(conn_port) as conn:
        row = conn.execute("select full_name, email, phone, id from staff").fetchone()
        assert row[0] is None and row[1] == "***********.com" and len(row[2]) == 64
        assert row[3] == 1
    with connect(conn_port, "dan", "dan-pw-123") as conn:
        assert conn.execute("select email from staff").fetchone() == ("ann@example.com",)


def test_limit_rows(conn_port):
    with connect(conn_port) as conn:
        cur = conn.execute("select g from generate_series(1, 1500) g")
        assert len(cur.fetchall()) == 1000 and cur.rowcount == 1000
    with connect(conn_port, "svc", "svc-pw-123") as conn:
        assert len(conn.execute("select g from generate_series(1, 1500) g").fetchall()) == 1500


def test_block_application(conn_port):
    with pytest.raises(psycopg.OperationalError, match="application not allowed"):
        connect(conn_port, app="Excel")


def test_rate_limit(conn_port):
    # counts are per user: "rl" is used by this test only
    with connect(conn_port, "rl", "rl-pw-123") as conn:
        for _ in range(100):
            conn.execute("select 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="100 statements a minute"):
            conn.execute("select 1")
