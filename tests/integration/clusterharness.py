"""Three clustered connectors in front of one PostgreSQL (design §8 with the
policy path), for test_cluster_seed.py and test_cluster_rolling.py.

``PgTrio(connector, tmp_path, pg, free_port, users, rego=None, dead_timeout="60s")``
extends ``test_cluster_membership.Trio``: node i advertises ADDRS[i] (static
discovery over 127.0.0.1-3) and serves PostgreSQL on its own port
``pg_ports[i]``, kept across restarts of that node, with the given users
(name -> password) and Rego files (name -> text). ``start_all()`` starts the
three at the same moment and waits for 3 voting members (Trio's).

``query(port, user, password, sql)`` runs one statement on a fresh connection.
``etcd_counts(trio, via, user)`` -> {member name: accesses in the last minute}
as the etcd member at ADDRS[via] holds them (serializable read, so it shows
what that member has replicated). ``wait_visible(trio, via, user, served)``
waits until it holds ``served`` (member -> count) for every other member.
``Statements(trio, user).run(i)`` -> "ok" | "blocked" (by a policy whose reason
says "rate limit"): one statement on node i once the user's earlier accesses
served elsewhere are visible in its etcd member, >= 200 ms after that and
>= 300 ms after the previous statement.
"""

import base64
import time

import psycopg

from harness import pg_listener, pg_user, wait_until
from test_cluster_membership import ADDRS, Trio, etcd_call, ready_body

RESOURCE = "pg-main"
COUNTS_PREFIX = "/portcullis/c/"


def member_name(i):
    return f"pc-{ADDRS[i]}"


class PgTrio(Trio):
    def __init__(self, connector, tmp_path, pg, free_port, users, rego=None,
                 dead_timeout="60s"):
        super().__init__(connector, tmp_path, dead_timeout)
        self.pg = pg
        self.pg_ports = [free_port() for _ in ADDRS]
        self.users = dict(users)
        self.rego = dict(rego or {})

    def start(self, i, data_dir=None, wait_ready=True, **kw):
        objects = {"resources": [self.pg.resource(RESOURCE)],
                   "listeners": [pg_listener(self.pg_ports[i], resource=RESOURCE)],
                   "users": [pg_user(u, pw) for u, pw in self.users.items()]}
        files = {f"{name}.rego": text for name, text in self.rego.items()}
        kw.setdefault("workers", 1)
        return super().start(i, data_dir, wait_ready, objects=objects, files=files, **kw)

    def query(self, i, user, sql):
        return query(self.pg_ports[i], user, self.users[user], sql)

    def roles(self, alive):
        return [ready_body(self.nodes[i])[1].get("cluster_role") for i in alive]


def dsn(port, user, password, **kw):
    parts = {"host": "127.0.0.1", "port": port, "user": user, "password": password,
             "dbname": "app", "sslmode": "disable", "connect_timeout": 10}
    parts.update(kw)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def query(port, user, password, sql):
    """One statement on a fresh connection; psycopg errors propagate."""
    with psycopg.connect(dsn(port, user, password), autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def _b64(s):
    return base64.b64encode(s.encode()).decode()


def _last_minute(value, now):
    secs = value.split(";", 1)[0]
    if not secs.startswith("S"):
        return 0
    total = 0
    for item in secs[1:].split():
        t, _, n = item.partition(":")
        if int(t) > now - 60:
            total += int(n)
    return total


def etcd_counts(trio, via, user, resource=RESOURCE):
    """Accesses by user to resource in the last minute, per member, at ADDRS[via]'s etcd."""
    body = {"key": _b64(COUNTS_PREFIX), "range_end": _b64(COUNTS_PREFIX[:-1] + "0"),
            "serializable": True}
    try:
        r = etcd_call(ADDRS[via], trio.client_port, "/v3/kv/range", body)
    except (OSError, ValueError):
        return None
    now = int(time.time())
    out = {}
    want = f"{user}\x1f{resource}"
    for kv in r.get("kvs", []):
        key = base64.b64decode(kv["key"]).decode("utf-8", "replace")[len(COUNTS_PREFIX):]
        member, _, ckey = key.partition("/")
        if ckey == want:
            out[member] = _last_minute(base64.b64decode(kv.get("value", "")).decode(), now)
    return out


def wait_visible(trio, via, user, served, timeout=60):
    """Wait until ADDRS[via]'s etcd holds served[member] accesses of every member but via's."""
    others = {m: n for m, n in served.items() if m != member_name(via) and n}

    def ok():
        got = etcd_counts(trio, via, user)
        return got is not None and all(got.get(m, 0) >= n for m, n in others.items())
    t0 = time.monotonic()
    wait_until(ok, timeout, 0.02, f"{user}'s accesses {others} visible at {ADDRS[via]}")
    return time.monotonic() - t0


class Statements:
    """One user's statements with what each instance served, for wait_visible."""

    def __init__(self, trio, user):
        self.trio, self.user = trio, user
        self.served = {}
        self.last = 0.0
        self.waits = []

    def run(self, i, spacing=0.3):
        """'ok' or 'blocked' for one statement on node i."""
        self.waits.append(wait_visible(self.trio, i, self.user, self.served))
        # From node i's etcd to node i's replica is one more, local, watch hop.
        time.sleep(max(0.2, self.last + spacing - time.monotonic()))
        try:
            self.trio.query(i, self.user, "select name from items where id = 1")
            out = "ok"
        except psycopg.errors.InsufficientPrivilege as e:
            assert "rate limit" in str(e)
            out = "blocked"
        self.last = time.monotonic()
        # A blocked statement counts too: the access was attempted.
        self.served[member_name(i)] = self.served.get(member_name(i), 0) + 1
        return out
