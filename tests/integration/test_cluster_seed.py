"""The seed's promise across a cluster (issue 6, design §8): the rate-limit
policy `input.user.access_count.last_minute > 5` holds across three clustered
connectors in front of one PostgreSQL, whichever instance each statement lands
on, and accesses served by an instance that then died keep counting on the
survivors until they leave the one-minute window.

test_cluster_counts.py covers the counter exchange itself (cluster_probe, no
proxy); this file goes through the real path: psycopg -> connector -> policy
-> access counters -> etcd -> the other connectors' policies.

Before each statement the test waits (generously) until the etcd member of the
instance it goes to holds the earlier accesses served elsewhere, and keeps
statements >= 300 ms apart, as the issue says; nothing asserts on timing.
"""

import os
import re
import signal
import time

import pytest

from clusterharness import PgTrio, Statements, etcd_counts, member_name, wait_visible
from harness import wait_until
from test_cluster_counts import children
from test_cluster_membership import ready_body

RATE = """package formal.v2
import rego.v1
pre_request := {"action": "block", "type": "block_with_formal_message",
                "reason": "rate limit: more than 5 accesses in the last minute"} if {
  input.user.access_count.last_minute > 5
}
"""

USERS = {"u0": "u0-pw-123", "u1": "u1-pw-123", "u2": "u2-pw-123", "bob": "bob-pw-123",
         "carol": "carol-pw-123", "erin": "erin-pw-123"}


@pytest.fixture
def trio(connector, tmp_path, pg_server, free_port):
    return PgTrio(connector, tmp_path, pg_server, free_port, USERS, rego={"rate": RATE},
                  dead_timeout="3s")


def metrics(c):
    status, body = c.get("/metrics")
    assert status == 200
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(portcullis_cluster_\w+) (\S+)$", body, re.M)}


def test_rate_limit_holds_whichever_instance_serves(trio):
    trio.start_all()
    # /ready and metrics agree on one 3-member cluster with one leader.
    wait_until(lambda: all(ready_body(trio.nodes[i])[1].get("cluster_members") == 3
                           for i in range(3)) and trio.roles(range(3)).count("leader") == 1,
               60, 0.2, "3 members and one leader in every /ready body")
    for i in range(3):
        assert ready_body(trio.nodes[i])[1]["cluster"] == "ok"
    wait_until(lambda: all(metrics(trio.nodes[i]).get("portcullis_cluster_members") == 3
                           for i in range(3)), 30, 0.2, "portcullis_cluster_members 3")
    m = [metrics(trio.nodes[i]) for i in range(3)]
    assert sum(x["portcullis_cluster_leader"] for x in m) == 1
    assert all(x["portcullis_cluster_degraded"] == 0 for x in m)
    assert all(x["portcullis_cluster_last_sync_age_ms"] >= 0 for x in m)
    # etcd's own log lines come through the connector's log, marked as etcd's.
    assert all(trio.nodes[i].find_logs(component="etcd") for i in range(3))

    # user k starts on node k, so the 6th statement lands on node (k + 5) % 3:
    # on 2, 0 and 1 in turn, so every instance has to block once.
    for k in range(3):
        s = Statements(trio, f"u{k}")
        outcomes = [(i, s.run(i)) for i in [(k + j) % 3 for j in range(7)]]
        print(f"u{k}: {outcomes}; waits for etcd visibility (s): "
              + " ".join(f"{w:.2f}" for w in s.waits))
        assert [o for _, o in outcomes] == ["ok"] * 5 + ["blocked"] * 2, outcomes
        assert outcomes[5][0] == (k + 5) % 3
    # Another user has a counter of their own, on every instance.
    bob = Statements(trio, "bob")
    assert [bob.run(i) for i in range(3)] == ["ok"] * 3


def test_dead_instance_accesses_count_until_they_leave_the_window(trio):
    trio.start_all()
    victim = 2
    carol = Statements(trio, "carol")
    assert [carol.run(victim) for _ in range(3)] == ["ok"] * 3
    last_victim_access = time.time()
    # The survivors' etcd has them before the crash (published <= 100 ms later).
    wait_visible(trio, 0, "carol", carol.served)
    trio.nodes[victim].kill()  # -9; its etcd follows (parent-death signal)
    wait_until(lambda: trio.members(victim) is None, 30, 0.2, "the victim's etcd gone")
    trio.wait_voters([0, 1], 2, timeout=120)  # removed after dead_member_timeout (3 s)
    assert etcd_counts(trio, 0, "carol").get(member_name(victim)) == 3

    # 3 served by the dead instance + 2 here = 5: the next one is the 6th.
    assert [carol.run(0), carol.run(1)] == ["ok", "ok"]
    assert carol.run(0) == "blocked"
    assert carol.run(1) == "blocked"
    bob = Statements(trio, "bob")
    assert [bob.run(0), bob.run(1)] == ["ok", "ok"]

    # Once the dead instance's accesses leave the window, only the survivors'
    # 4 remain (all within the minute): the next one (5th) is allowed again.
    wait = last_victim_access + 62 - time.time()
    print(f"waiting {wait:.1f} s for the dead instance's accesses to leave the window")
    time.sleep(max(0.0, wait))
    assert etcd_counts(trio, 0, "carol").get(member_name(victim), 0) == 0
    del carol.served[member_name(victim)]  # out of the window: nothing to wait for
    assert carol.run(0) == "ok"
    assert carol.run(1) == "blocked"  # 4 + this one + the one just before = 6


def test_stopped_instance_keeps_others_serving_and_catches_up(connector, tmp_path, pg_server,
                                                              free_port):
    """SIGSTOP one connector and its etcd for 20 s (a partition shorter than
    dead_member_timeout): the others keep serving and counting; after SIGCONT
    it catches up, as the same member, and sees what happened meanwhile."""
    trio = PgTrio(connector, tmp_path, pg_server, free_port, USERS, rego={"rate": RATE})
    trio.start_all()
    ids = sorted(m["ID"] for m in trio.members(0))
    victim = 2
    pids = [trio.nodes[victim].proc.pid] + children(trio.nodes[victim].proc.pid)
    assert len(pids) == 2
    erin = Statements(trio, "erin")
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        outcomes = [erin.run(i) for i in (0, 1, 0, 1, 0)]
        assert outcomes == ["ok"] * 5
        time.sleep(max(0.0, stopped_at + 20 - time.monotonic()))
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    # Caught up: the victim's etcd and then the victim itself know the 5 accesses.
    assert erin.run(victim) == "blocked"
    assert erin.run(0) == "blocked"
    trio.wait_voters([0, 1, 2], 3)
    assert sorted(m["ID"] for m in trio.members(victim)) == ids
