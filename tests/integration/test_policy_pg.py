"""Rego policies on the PostgreSQL path (design §4, issue 4): session / pre_request /
post_request stages, block types, dry-run, fail closed, multi-statement, extended
protocol, filter, every mask type in text and binary results, access counts,
refused policies, audit fields."""

import hashlib
import os
import subprocess

import psycopg
import pytest

from harness import USER_PASSWORD, pg_listener, pg_user, wait_until


@pytest.fixture(scope="module")
def people(pg_server):
    pg_server.psql("CREATE TABLE IF NOT EXISTS people(id int primary key, email text, "
                   "code varchar(20), age int);"
                   "DELETE FROM people;"
                   "INSERT INTO people VALUES (1,'ann@example.com','ABCDEFGH',31),"
                   "(2,'bo@x.io','XY',42),(3,NULL,'12345',50)",
                   user="app", dbname="app")
    return pg_server


def objects(pg_server, port, policies=()):
    return {"resources": [pg_server.resource()],
            "listeners": [pg_listener(port)],
            "users": [pg_user(), pg_user("bob", "bob-pw-123", groups=["admins"]),
                      pg_user("eve", "eve-pw-123", groups=["analysts"])],
            "policies": list(policies)}


@pytest.fixture
def start(connector, people, free_port):
    def make(rego=None, policies=(), **kw):
        port = free_port()
        files = {f"{name}.rego": text for name, text in (rego or {}).items()}
        c = connector(objects(people, port, policies), files=files, **kw)
        c.pg_port = port
        return c
    return make


def dsn(port, user="alice", password=USER_PASSWORD, **kw):
    parts = {"host": "127.0.0.1", "port": port, "user": user, "password": password,
             "dbname": "app", "sslmode": "disable", "application_name": "itest"}
    parts.update(kw)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def psql(port, sql, user="alice", password=USER_PASSWORD, **kw):
    env = dict(os.environ, PGPASSWORD=password)
    return subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                           dsn(port, user, password, **kw).replace(f" password={password}", ""),
                           "-c", sql], capture_output=True, text=True, env=env, timeout=60)


BLOCK_DELETE = """package formal.v2
import future.keywords.if
import future.keywords.in
pre_request := {"action": "block", "type": "block_with_formal_message",
                "reason": "DELETE needs admins"} if {
  input.query.statement_type == "DELETE"
  not "admins" in input.user.groups
}
"""


def test_block_delete_for_non_admins(start):
    c = start({"nodelete": BLOCK_DELETE})
    r = psql(c.pg_port, "delete from items where id = 99")
    assert r.returncode != 0 and "DELETE needs admins" in r.stderr
    r = psql(c.pg_port, "delete from items where id = 99", user="bob", password="bob-pw-123")
    assert r.returncode == 0, r.stderr
    # the session survives a block: next statement runs
    with psycopg.connect(dsn(c.pg_port)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from items where id = 99")
        conn.rollback()
        assert conn.execute("select 1").fetchone() == (1,)


def test_block_by_table_and_multi_statement(start):
    c = start({"tables": """package formal.v2
import rego.v1
pre_request := {"action": "block", "reason": "people is off limits"} if {
  "public.people" in input.query.tables
}
"""})
    r = psql(c.pg_port, "select 1; select count(*) from people; select 2")
    assert r.returncode != 0 and "people is off limits" in r.stderr
    assert "1\n" not in r.stdout  # nothing of the message ran
    r = psql(c.pg_port, "select 1; select name from items where id = 1")
    assert r.returncode == 0 and r.stdout.split() == ["1", "one"]


def test_seed_style_rate_limit(start):
    c = start({"rate": """package formal.v2
import future.keywords.if
pre_request := { "action": "block", "type": "block_with_formal_message" } if {
  input.user.access_count.last_minute > 5
}
"""})
    with psycopg.connect(dsn(c.pg_port), autocommit=True) as conn:
        for i in range(5):
            conn.execute("select 1", prepare=False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select 1")
    # another user has its own counter
    r = psql(c.pg_port, "select 1", user="bob", password="bob-pw-123")
    assert r.returncode == 0, r.stderr


def test_session_stage_block_before_upstream(start, people):
    c = start({"sess": """package formal.v2
import rego.v1
session := {"action": "block", "reason": "no sessions for eve"} if input.user.username == "eve"
"""})
    r = psql(c.pg_port, "select 1", user="eve", password="eve-pw-123",
             application_name="eve-marker-app")
    assert r.returncode != 0 and "no sessions for eve" in r.stderr
    # the upstream never saw a connection from eve's session
    acts = people.psql("select count(*) from pg_stat_activity where application_name = "
                       "'eve-marker-app'")
    assert acts.strip() == "0"
    assert psql(c.pg_port, "select 1").returncode == 0


def test_block_silently_closes(start):
    c = start({"silent": """package formal.v2
import rego.v1
pre_request := {"action": "block", "type": "block_silently"} if contains(input.query.query, "secret_marker")
"""})
    with psycopg.connect(dsn(c.pg_port)) as conn:
        with pytest.raises(psycopg.OperationalError):
            conn.execute("select 'secret_marker'")


def test_dry_run_logged_not_enforced(start):
    pol = {"name": "dry", "status": "dry-run", "module": """package dry
import rego.v1
pre_request := {"action": "block", "reason": "would block"} if contains(input.query.query, "dry_marker")
"""}
    c = start(policies=[pol])
    r = psql(c.pg_port, "select 'dry_marker'")
    assert r.returncode == 0 and "dry_marker" in r.stdout
    c.wait_log("policy dry-run decision", policy="dry")
    recs = c.wait_spool(lambda rs: any("dry_marker" in (x.get("query") or "") for x in rs))
    rec = [x for x in recs if "dry_marker" in (x.get("query") or "")][0]
    assert rec["decision"] == "allow" and rec["policies"] == ["dry"]


def test_evaluation_error_blocks_with_policy_name(start):
    c = start({"broken": """package formal.v2
import rego.v1
# two values for one complete rule: a conflict error at evaluation time
pre_request := {"action": "allow"} if input.user.username == "alice"
pre_request := {"action": "allow", "n": 2} if input.user.username == "alice"
"""})
    r = psql(c.pg_port, "select 1")
    assert r.returncode != 0 and "policy evaluation failed: broken" in r.stderr
    c.wait_log("policy evaluation failed", policy="broken")


POST_BROKEN = """package formal.v2
import rego.v1
# a conflict error at evaluation time, only for results of queries naming post_marker
post_request := {"action": "allow"} if contains(input.query.query, "post_marker")
post_request := {"action": "allow", "n": 2} if contains(input.query.query, "post_marker")
"""


def test_post_request_evaluation_error_reaches_client(start):
    c = start({"postbroken": POST_BROKEN})
    with psycopg.connect(dsn(c.pg_port), autocommit=True) as conn:
        # simple protocol: an error in place of the rows, then the session goes on
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            conn.execute("select 'post_marker' as m, id from people", prepare=False)
        assert "policy evaluation failed" in str(e.value)
        assert conn.execute("select count(*) from people").fetchone() == (3,)
        # extended protocol (prepared, binary), twice: Describe then cached shape
        for _ in range(2):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
                conn.cursor(binary=True).execute(
                    "select 'post_marker' as m, id from people where id > %s", (0,), prepare=True)
            assert "policy evaluation failed" in str(e.value)
            assert conn.execute("select id from people where id = %s", (2,)).fetchone() == (2,)
        # a multi-statement query: the error ends it; nothing after it reaches the client
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select 1; select 'post_marker' as m; select 3", prepare=False)
        assert conn.execute("select 4").fetchone() == (4,)
        # a COPY FROM STDIN after the blocked statement: ended for the client
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select 'post_marker' as m; copy people(id) from stdin", prepare=False)
        assert conn.execute("select count(*) from people").fetchone() == (3,)
    r = psql(c.pg_port, "select 'post_marker' as m")
    assert r.returncode != 0 and "policy evaluation failed" in r.stderr
    assert "post_marker" not in r.stdout
    c.wait_log("pg result blocked", stage="post_request")
    recs = c.wait_spool(lambda rs: sum("post_marker" in (x.get("query") or "") for x in rs) >= 5)
    blocked = [x for x in recs if x.get("type") == "request" and "post_marker" in (x.get("query") or "")
               and x.get("decision") == "block"]
    assert len(blocked) >= 4 and all(x["policies"] == ["postbroken"] for x in blocked)


def test_columns_table_from_single_table_query(start):
    # input.columns[].table: "public.people" for table columns of a query that
    # reads only people; null for expressions and for queries over several tables
    c = start({"bytable": """package formal.v2
import rego.v1
post_request := {"action": "mask", "type": "nullify", "columns": cols} if {
  cols := [col.name | some col in input.columns; col.table == "public.people"; col.name == "email"]
  count(cols) > 0
}
"""})
    with psycopg.connect(dsn(c.pg_port), autocommit=True) as conn:
        assert conn.execute("select id, email from people where id = 1").fetchone() == (1, None)
        assert conn.execute("select id, email from people where id = %s", (1,),
                            prepare=True).fetchone() == (1, None)
        assert conn.execute("select 'x' as email").fetchone() == ("x",)
        # a self-join still reads one table
        assert conn.execute("select p.email from people p join people q on q.id = p.id "
                            "where p.id = 1").fetchone() == (None,)
        assert conn.execute("select p.email from people p, items i "
                            "where p.id = 1 limit 1").fetchone() == ("ann@example.com",)


def test_extended_protocol_judged_at_parse(start):
    c = start({"ext": """package formal.v2
import rego.v1
pre_request := {"action": "block", "reason": "no updates"} if input.query.statement_type == "UPDATE"
"""})
    with psycopg.connect(dsn(c.pg_port)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            conn.execute("update items set name = %s where id = %s", ("x", 1), prepare=True)
        assert "no updates" in str(e.value)
        conn.rollback()
        assert conn.execute("select name from items where id = %s", (1,)).fetchone() == ("one",)
    acts = c.find_logs("pg request blocked", stage="parse")
    assert acts


MASKS = ["nullify", "redact.full", "redact.partial", "hash.with_salt", "hash.no_salt"]


def mask_policy(kind):
    return f"""package formal.v2
import rego.v1
post_request := {{"action": "mask", "type": "{kind}", "columns": ["email", "age"]}} if {{
  "analysts" in input.user.groups
}}
"""


@pytest.mark.parametrize("kind", MASKS)
def test_masks_text_and_binary(start, kind):
    c = start({"mask": mask_policy(kind)})
    q = "select id, email, code, age from people order by id"
    with psycopg.connect(dsn(c.pg_port)) as conn:
        text_rows = conn.execute(q).fetchall()
        bin_rows = conn.cursor(binary=True).execute(q).fetchall()
        simple = psql(c.pg_port, q).stdout.splitlines()
    assert text_rows == bin_rows
    emails = [r[1] for r in text_rows]
    assert [r[2] for r in text_rows] == ["ABCDEFGH", "XY", "12345"]  # untouched
    assert [r[3] for r in text_rows] == [None, None, None]  # int4: NULL under every mask
    raw = ["ann@example.com", "bo@x.io", None]
    if kind == "nullify":
        assert emails == [None, None, None]
    elif kind == "redact.full":
        assert emails == ["****", "****", None]
    elif kind == "redact.partial":
        assert emails == ["*" * 11 + ".com", "***x.io", None]
    elif kind == "hash.no_salt":
        assert emails == [hashlib.sha256(e.encode()).hexdigest() for e in raw[:2]] + [None]
    else:
        assert all(len(e) == 64 for e in emails[:2]) and emails[2] is None
        assert emails[0] != hashlib.sha256(raw[0].encode()).hexdigest()
    assert len(simple) == 3
    # admins are not analysts: clear values
    with psycopg.connect(dsn(c.pg_port, user="bob", password="bob-pw-123")) as conn:
        assert conn.execute(q).fetchone()[1] == "ann@example.com"
    recs = c.wait_spool(lambda rs: any(x.get("decision") == "mask" for x in rs))
    m = [x for x in recs if x.get("decision") == "mask"][0]
    assert m["policies"] == ["mask"] and set(m["masked_columns"]) == {"email", "age"}
    assert m["rows"] == 3


def test_strongest_mask_and_smallest_limit(start):
    c = start({"m1": mask_policy("hash.no_salt"), "m2": mask_policy("redact.full"),
               "lim5": """package formal.v2
import rego.v1
post_request := {"action": "filter", "limit": 5}
""", "lim2": """package other
import rego.v1
response := {"action": "filter", "limit": 2}
"""})
    with psycopg.connect(dsn(c.pg_port)) as conn:
        cur = conn.execute("select email from people order by id")
        assert cur.fetchall() == [("****",), ("****",)]
        assert cur.rowcount == 2  # CommandComplete fixed to what the client saw
    r = psql(c.pg_port, "select id from items")
    assert r.stdout.split() == ["1", "2"]


def test_invalid_rego_refused_previous_stays(start):
    c = start({"nodelete": BLOCK_DELETE})
    c.write_file("bad.rego", "package formal.v2\n\npre_request := {\n")
    line = c.wait_log("configuration refused; previous revision stays in force")
    assert "bad.rego:" in line["error"]
    r = psql(c.pg_port, "delete from items where id = 99")
    assert r.returncode != 0 and "DELETE needs admins" in r.stderr


def test_policy_changed_mid_session(start):
    c = start()
    with psycopg.connect(dsn(c.pg_port), autocommit=True) as conn:
        conn.execute("delete from items where id = 99")
        c.write_file("nodelete.rego", BLOCK_DELETE)

        def blocked():
            try:
                conn.execute("delete from items where id = 99")
                return False
            except psycopg.errors.InsufficientPrivilege:
                return True
        wait_until(blocked, 15, what="policy applied to open session")


def test_input_document_fields(start):
    # Every documented field is present with the right shape, or the query is blocked.
    c = start({"shape": """package formal.v2
import rego.v1
ok if {
  input.user.username == "alice"
  input.user.email == "alice@example.com"
  input.user.groups == ["analysts"]
  input.user.type == "human"
  input.user.access_count.last_minute >= 1
  input.user.access_count.last_hour >= input.user.access_count.last_minute
  input.resource.name == "pg-main"
  input.resource.technology == "postgres"
  input.resource.hostname == "127.0.0.1"
  is_number(input.resource.port)
  input.connector.instance == "itest"
  input.connector.name == "pg"
  is_string(input.connector.version)
  input.client_ip_address == "127.0.0.1"
  input.db_name == "app"
  input.application == "itest"
  input.tls == false
  is_number(input.time.unix_ns)
  is_string(input.time.rfc3339)
  input.query.statement_type == "SELECT"
  input.query.command_type == "query"
  input.query.tables == ["public.items"]
  input.sql_query == input.query
  input.table_paths == ["public.items"]
}
pre_request := {"action": "block", "reason": "input shape"} if not ok
post_request := {"action": "mask", "type": "redact.full", "columns": ["name"]} if {
  input.columns == [{"name": "name", "data_type": "text", "table": "public.items"}]
}
"""})
    r = psql(c.pg_port, "select name from items where id = 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["****"]


def test_block_audit_record(start):
    c = start({"nodelete": BLOCK_DELETE})
    psql(c.pg_port, "delete from items where id = 4242")
    recs = c.wait_spool(lambda rs: any("4242" in (x.get("query") or "") for x in rs))
    rec = [x for x in recs if "4242" in (x.get("query") or "")][0]
    assert rec["decision"] == "block" and rec["policies"] == ["nodelete"]
    assert rec["reason"] == "DELETE needs admins"


def test_mask_beyond_64_columns(start):
    c = start({"mask": mask_policy("redact.full")})
    cols = ", ".join(f"{i} as c{i}" for i in range(80))
    q = f"select {cols}, 'ann@example.com'::text as email, 7 as age"
    with psycopg.connect(dsn(c.pg_port)) as conn:
        for binary in (False, True):
            row = conn.cursor(binary=binary).execute(q).fetchone()
            assert row[:80] == tuple(range(80))
            assert row[80:] == ("****", None)


def test_session_blocked_by_client_ip(start):
    c = start({"ip": """package formal.v2
import rego.v1
session := {"action": "block", "type": "block_with_custom_message",
            "message": "not from this address"} if {
  net.cidr_contains("127.0.0.0/8", input.client_ip_address)
  input.user.username == "bob"
}
"""})
    r = psql(c.pg_port, "select 1", user="bob", password="bob-pw-123")
    assert r.returncode != 0
    assert "FATAL" in r.stderr and "not from this address" in r.stderr
    assert psql(c.pg_port, "select 1").returncode == 0
    c.wait_spool(lambda rs: any(x.get("user") == "bob" and x.get("decision") == "block"
                                for x in rs))
