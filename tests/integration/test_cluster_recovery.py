"""Recovery (issue 6 items 3 and 8): a crashed instance replaced by a new one
on another address ("kill -9 one: the others keep serving, it is removed after
the timeout, a replacement joins"), and an etcd child that dies under a
running connector: restarted on the same data dir as the same member, while
the connector keeps serving, and the accesses it served around the crash
(the supervisor restarts etcd within about a second, so some may come after
it) reach the others.
"""

import os
import signal
import socket

from clusterharness import PgTrio, Statements, member_name, wait_visible
from harness import wait_until
from test_cluster_counts import children
from test_cluster_membership import ADDRS, Trio, ready_body
from test_cluster_seed import RATE

ADDR4 = "127.0.0.4"


def _bindable(addr, port):
    with socket.socket() as s:
        try:
            s.bind((addr, port))
            return True
        except OSError:
            return False


def test_dead_member_replaced_by_a_new_address(connector, tmp_path):
    trio = Trio(connector, tmp_path, dead_timeout="3s")
    assert _bindable(ADDR4, trio.client_port) and _bindable(ADDR4, trio.peer_port)
    peers = ADDRS + [ADDR4]
    trio.start_all()

    trio.nodes[2].kill()
    wait_until(lambda: trio.members(2) is None, 30, 0.2, "the victim's etcd gone")
    trio.wait_voters([0, 1], 2, timeout=120)

    cfg = {"cluster": {"enabled": True, "advertise_address": ADDR4,
                       "discovery": {"mode": "static", "peers": peers},
                       "client_port": trio.client_port, "peer_port": trio.peer_port,
                       "data_dir": str(tmp_path / "etcd4"), "dead_member_timeout": "3s"}}
    new = connector(config=cfg, ready_timeout=30)
    new.wait_log("promoted to voting member", 120)
    trio.wait_voters([0, 1], 3, timeout=120)
    urls = sorted(m["peerURLs"][0] for m in trio.members(0))
    assert urls == [f"http://{a}:{trio.peer_port}" for a in ("127.0.0.1", "127.0.0.2", ADDR4)]
    assert new.find_logs("joining the cluster")
    assert not new.find_logs("bootstrapping a new cluster")
    assert new.stop(60) == 0
    trio.wait_voters([0, 1], 2, timeout=120)


def test_etcd_child_killed_is_restarted_and_counts_catch_up(connector, tmp_path, pg_server,
                                                            free_port):
    trio = PgTrio(connector, tmp_path, pg_server, free_port, {"gina": "gina-pw-123"},
                  rego={"rate": RATE})
    trio.start_all()
    ids = sorted(m["ID"] for m in trio.members(0))
    node = trio.nodes[2]
    etcd = children(node.proc.pid)
    assert len(etcd) == 1
    os.kill(etcd[0], signal.SIGKILL)
    wait_until(lambda: trio.members(2) is None, 30, 0.2, "node 2's etcd gone")
    # Served (with local state while etcd is down); counted everywhere once it is back.
    gina = Statements(trio, "gina")
    assert [gina.run(2) for _ in range(3)] == ["ok"] * 3
    node.wait_log("etcd exited", 30)
    wait_until(lambda: children(node.proc.pid) and children(node.proc.pid) != etcd, 60, 0.2,
               "etcd restarted by the supervisor")
    trio.wait_voters([0, 1, 2], 3)
    assert sorted(m["ID"] for m in trio.members(2)) == ids  # same member, same data dir
    wait_visible(trio, 0, "gina", gina.served)
    assert [gina.run(0), gina.run(1), gina.run(0)] == ["ok", "ok", "blocked"]
    assert ready_body(node)[1]["cluster"] == "ok"
    assert node.find_logs("bootstrapping a new cluster") == []
    assert member_name(2) in gina.served
