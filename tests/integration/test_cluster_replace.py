"""A crashed instance replaced by a new one on another address (issue 6 item 8:
"kill -9 one: the others keep serving, it is removed after the timeout, a
replacement joins"). Static discovery lists 127.0.0.1-4; three start on
.1-.3, .3 is killed, the survivors remove it after dead_member_timeout, and a
fresh instance on .4 joins: 3 voting members again, none of them .3.
"""

import socket

from harness import wait_until
from test_cluster_membership import ADDRS, Trio

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
