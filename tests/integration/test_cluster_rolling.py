"""Rolling restart of three clustered connectors under client traffic (issue 6
item 8): while a client runs queries round-robin over the three instances,
each on a fresh connection, the connectors are restarted one at a time
(SIGTERM, wait for the exit, start again on the same data dir and config, wait
for /ready). No query may fail except on the instance being restarted, and
there only the proper way (connection refused, or FATAL 57P01 from a draining
instance), which the client retries on the next instance. Afterwards: 3
members, one leader, counters still shared, and every successful query has
exactly one audit record in the spools.
"""

import collections
import threading
import time

import psycopg
import pytest

from clusterharness import PgTrio, Statements, query
from harness import wait_until

LIMIT_DAVE = """package formal.v2
import rego.v1
pre_request := {"action": "block", "type": "block_with_formal_message",
                "reason": "rate limit: more than 5 accesses in the last minute"} if {
  input.user.username == "dave"
  input.user.access_count.last_minute > 5
}
"""

USERS = {"alice": "alice-pw-123", "dave": "dave-pw-123"}


class Load(threading.Thread):
    """alice's queries round-robin over the three instances, each on a fresh
    connection; a failed attempt is retried on the next instance."""

    def __init__(self, trio):
        super().__init__(daemon=True)
        self.trio = trio
        self.halt = threading.Event()
        self.restarting = None  # node being restarted, set by the test
        self.ok = []            # (marker, node, time)
        self.failures = []      # dicts
        self.gave_up = []
        self.error = None

    def attempt(self, node, marker):
        restarting = self.restarting
        try:
            rows = query(self.trio.pg_ports[node], "alice", USERS["alice"],
                         f"select '{marker}'")
        except psycopg.Error as e:
            self.failures.append({"node": node, "marker": marker, "t": time.monotonic(),
                                  "restarting": {restarting, self.restarting},
                                  "sqlstate": getattr(e, "sqlstate", None),
                                  "msg": str(e).strip()})
            return False
        if rows != [(marker,)]:
            raise AssertionError(f"{marker}: wrong rows {rows}")
        self.ok.append((marker, node, time.monotonic()))
        return True

    def run(self):
        node, seq = 0, 0
        try:
            while not self.halt.is_set():
                seq += 1
                for attempt in range(20):
                    done = self.attempt(node, f"rolling-{seq}-{attempt}")
                    node = (node + 1) % 3
                    if done:
                        break
                    time.sleep(0.05)
                else:
                    self.gave_up.append(seq)
                time.sleep(0.02)
        except Exception as e:  # reported by the test
            self.error = e


def proper_refusal(f):
    """What a client may see from an instance that is going away."""
    return f["sqlstate"] == "57P01" or "Connection refused" in f["msg"]


@pytest.fixture
def trio(connector, tmp_path, pg_server, free_port):
    return PgTrio(connector, tmp_path, pg_server, free_port, USERS, rego={"limit": LIMIT_DAVE})


def test_rolling_restart_under_client_traffic(trio):
    trio.start_all()
    connectors = list(trio.nodes.values())
    load = Load(trio)
    load.start()
    try:
        wait_until(lambda: len(load.ok) >= 30, 60, 0.1, "load running")
        phases = []
        for i in range(3):
            rest = [k for k in range(3) if k != i]
            before = len(load.ok)
            load.restarting = i
            t0 = time.monotonic()
            assert trio.nodes[i].stop(60) == 0
            stopped = time.monotonic()
            trio.wait_voters(rest, 2)
            assert trio.nodes[i].find_logs("left the cluster")
            connectors.append(trio.start(i))
            trio.wait_voters([0, 1, 2], 3)
            # Its data dir was wiped on leaving: it joined afresh, as a learner first.
            trio.nodes[i].wait_log("promoted to voting member", 30)
            assert trio.nodes[i].find_logs("joining the cluster")
            load.restarting = None
            served_while_down = sum(1 for _, n, t in load.ok[before:] if t > stopped)
            phases.append((i, round(stopped - t0, 1), round(time.monotonic() - t0, 1),
                           served_while_down))
            assert served_while_down > 0, "the others kept serving"
            mark = len(load.ok)
            wait_until(lambda: any(n == i for _, n, _t in load.ok[mark:]), 60, 0.1,
                       f"node {i} serving again")
        wait_until(lambda: len(load.ok) >= mark + 30, 60, 0.1, "load after the last restart")
    finally:
        load.halt.set()
        load.join(60)
    assert load.error is None, load.error
    print(f"rolling restart: {len(load.ok)} queries ok, {len(load.failures)} failed attempts "
          f"(retried), phases (node, stop s, stop+rejoin s, served while down): {phases}")
    kinds = collections.Counter((f["node"], f["sqlstate"] or f["msg"].splitlines()[0])
                                for f in load.failures)
    print("  failed attempts by (node, error):", dict(kinds))
    assert not load.gave_up
    bad = [f for f in load.failures if f["node"] not in f["restarting"] or not proper_refusal(f)]
    assert not bad, bad

    # The cluster ends whole: 3 members, one leader, counters shared.
    wait_until(lambda: trio.roles(range(3)).count("leader") == 1, 60, 0.2, "one leader")
    dave = Statements(trio, "dave")
    outcomes = [dave.run(i % 3) for i in range(7)]
    assert outcomes == ["ok"] * 5 + ["blocked"] * 2, outcomes

    # No audit record lost: exactly one request record per successful query
    # (a failed attempt may have one too, if the query ran before the drop).
    ok = {m for m, _, _ in load.ok}
    failed = {f["marker"] for f in load.failures}

    found = []

    def all_recorded():
        found[:] = [r["query"].split("'")[1] for c in connectors for r in c.spool_records()
                    if r.get("type") == "request" and "rolling-" in (r.get("query") or "")]
        return ok <= set(found)
    wait_until(all_recorded, 60, 0.5, "every successful query's audit record")
    markers = found
    dup = [m for m, n in collections.Counter(markers).items() if n > 1]
    assert not dup, dup
    assert set(markers) - ok <= failed
    print(f"audit: {len(markers)} request records for {len(ok)} successful queries "
          f"and {len(failed)} failed attempts")
