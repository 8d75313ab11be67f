"""Rejoin on a compacted revision (issue 6 item 6): an instance whose watch
starts from a revision etcd has compacted away gets the watch cancelled with
compact_revision, reads the state again and then sees what the other
instances wrote meanwhile.

Every re-watch normally starts right after a fresh read, so a compaction never
lands in between on its own. The debug-build hook PORTCULLIS_TEST_SYNC_HOLD
(src/cluster/sync.c, compiled out with NDEBUG) holds node 2's sync thread
between its read and its watch while a file exists. The test kills node 2's
etcd child (the supervisor restarts it, the watch breaks and the state is read
again, then held), has the other instances serve accesses, compacts etcd past
the held revision, lets the watch start and checks the log lines and that the
rate-limit policy on node 2 counts the accesses served elsewhere. The second
test does the same for cache entries with bench/cluster_probe instances.
"""

import os
import signal
import urllib.error

from clusterharness import COUNTS_PREFIX, PgTrio, Statements, _b64, wait_visible
from harness import wait_until
from test_cluster_counts import children, start_probes
from test_cluster_membership import ADDRS, etcd_call
from test_cluster_seed import RATE

USERS = {"hank": "hank-pw-123"}
CACHE_PREFIX = "/portcullis/k/"


def _revision(trio, via):
    r = etcd_call(ADDRS[via], trio.client_port, "/v3/kv/range",
                  {"key": _b64(COUNTS_PREFIX), "range_end": _b64(COUNTS_PREFIX[:-1] + "0"),
                   "count_only": True})
    return int(r["header"]["revision"])


def _compacted_at(trio, via, rev):
    return _compacted_at_port(trio.client_port, via, rev)


def _compacted_at_port(client_port, via, rev):
    """True once ADDRS[via]'s etcd refuses a read at rev as compacted."""
    try:
        etcd_call(ADDRS[via], client_port, "/v3/kv/range",
                  {"key": _b64(COUNTS_PREFIX), "revision": str(rev), "serializable": True})
    except urllib.error.HTTPError as e:
        return "compacted" in e.read().decode("utf-8", "replace")
    except OSError:
        return False
    return False


def test_watch_on_compacted_revision_reads_again(connector, tmp_path, pg_server, free_port):
    hold = tmp_path / "hold-sync"
    trio = PgTrio(connector, tmp_path, pg_server, free_port, USERS, rego={"rate": RATE})
    for i in range(3):
        env = {"PORTCULLIS_TEST_SYNC_HOLD": str(hold)} if i == 2 else None
        trio.start(i, wait_ready=False, env=env)
    for i in range(3):
        trio.nodes[i].wait_ready(30)
    trio.wait_voters([0, 1, 2], 3)
    node = trio.nodes[2]
    assert not node.find_logs("test hook: holding the watch")

    hold.touch()
    try:
        etcd = children(node.proc.pid)
        assert len(etcd) == 1
        os.kill(etcd[0], signal.SIGKILL)
        node.wait_log("etcd exited", 30)
        held = node.wait_log("test hook: holding the watch", 120)
        held_rev = held["revision"]
        trio.wait_voters([0, 1, 2], 3)

        # Accesses served elsewhere while node 2's watch is not running; node
        # 2's etcd member replicates them, its replica does not have them yet.
        hank = Statements(trio, "hank")
        assert [hank.run(i) for i in (0, 1, 0, 1, 0)] == ["ok"] * 5
        wait_visible(trio, 2, "hank", hank.served)

        rev = _revision(trio, 0)
        assert rev > held_rev + 1
        etcd_call(ADDRS[0], trio.client_port, "/v3/kv/compaction",
                  {"revision": str(rev), "physical": True}, timeout=30)
        wait_until(lambda: _compacted_at(trio, 2, held_rev + 1), 60, 0.2,
                   "node 2's etcd compacted past the held revision")
        assert not node.find_logs("cluster watch cancelled; reading the state again")
    finally:
        hold.unlink(missing_ok=True)

    cancelled = node.wait_log("cluster watch cancelled; reading the state again", 60)
    assert int(cancelled["compact_revision"]) >= rev
    reread = node.wait_log("cluster state read again after compaction", 60)
    assert reread["revision"] >= rev
    print(f"held at revision {held_rev}, compacted at {rev}, watch cancelled with "
          f"compact_revision {cancelled['compact_revision']}")

    # Node 2's replica now holds the 5 accesses served by nodes 0 and 1: the 6th is blocked.
    assert hank.run(2) == "blocked"
    assert hank.run(2) == "blocked"


def test_cache_entries_put_while_watch_held_arrive_after_compaction(tmp_path):
    n = 5
    hold = tmp_path / "hold-sync"
    probes = start_probes(tmp_path, n, cache=True,
                          envs={2: {"PORTCULLIS_TEST_SYNC_HOLD": str(hold)}})
    victim = probes[2]
    held_log = "test hook: holding the watch"
    cancel_log = "cluster watch cancelled; reading the state again"
    try:
        client_port = probes[0].ports[0]
        hold.touch()
        try:
            etcd = children(victim.proc.pid)
            assert len(etcd) == 1
            os.kill(etcd[0], signal.SIGKILL)
            held = wait_until(lambda: victim.logs(held_log), 120, 0.1, "victim holds")[0]
            held_rev = held["revision"]
            # Node 0 puts the n entries; node 1 (watching all along) gets them all.
            open(probes[0].cfg_path + ".go", "w").close()
            wait_until(lambda: len(probes[1].has("seen")) == n, 120, 0.1, "node 1 sees all")
            assert not victim.has("seen")

            def victim_etcd_has_all():
                try:
                    r = etcd_call(ADDRS[2], client_port, "/v3/kv/range",
                                  {"key": _b64(CACHE_PREFIX),
                                   "range_end": _b64(CACHE_PREFIX[:-1] + "l"),
                                   "serializable": True, "count_only": True})
                except (OSError, ValueError):
                    return False
                return int(r.get("count", 0)) >= n
            wait_until(victim_etcd_has_all, 120, 0.2, "the victim's etcd has the entries")
            r = etcd_call(ADDRS[2], client_port, "/v3/kv/range",
                          {"key": _b64(CACHE_PREFIX), "count_only": True,
                           "serializable": True})
            rev = int(r["header"]["revision"])
            assert rev > held_rev + 1
            etcd_call(ADDRS[2], client_port, "/v3/kv/compaction",
                      {"revision": str(rev), "physical": True}, timeout=30)
            wait_until(lambda: _compacted_at_port(client_port, 2, held_rev + 1), 60, 0.2,
                       "the victim's etcd compacted past the held revision")
            assert not victim.logs(cancel_log)
            assert not victim.has("seen")
        finally:
            hold.unlink(missing_ok=True)
        assert victim.proc.wait(180) == 0
        assert probes[0].proc.wait(120) == 0 and probes[1].proc.wait(120) == 0
        assert [l["seen"] for l in victim.has("seen")] == list(range(1, n + 1))
        cancelled = victim.logs(cancel_log)
        assert cancelled and int(cancelled[0]["compact_revision"]) >= rev
        reread = victim.logs("cluster state read again after compaction")
        assert len(reread) == 1 and reread[0]["revision"] >= rev
    finally:
        for p in probes:
            p.close()
