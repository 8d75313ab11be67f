"""Cluster membership with real etcd (design §8): three connectors with static
discovery on 127.0.0.1-3 form one cluster; graceful leave, crash, rejoin;
degraded mode when etcd cannot run.

Every instance uses the same client/peer ports on its own loopback address.
Waits poll generously (2 loaded cores); nothing asserts on timing.
"""

import json
import os
import signal
import socket
import time
import urllib.request

import pytest

from harness import wait_until

ADDRS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def _port_free_everywhere(port):
    socks = []
    try:
        for a in ADDRS:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((a, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def pick_ports():
    """Two port numbers free on all three loopback addresses."""
    found = []
    while len(found) < 2:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in found and _port_free_everywhere(p):
            found.append(p)
    return found


def etcd_call(addr, port, path, body=None, timeout=3.0):
    req = urllib.request.Request(f"http://{addr}:{port}{path}",
                                 data=json.dumps(body or {}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def ready_body(c):
    status, body = c.get("/ready")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}


class Trio:
    def __init__(self, connector, tmp_path, dead_timeout="60s"):
        self.connector = connector
        self.tmp = tmp_path
        self.client_port, self.peer_port = pick_ports()
        self.dead_timeout = dead_timeout
        self.nodes = {}

    def data_dir(self, i):
        return str(self.tmp / f"etcd{i}")

    def start(self, i, data_dir=None, wait_ready=True, **kw):
        """kw goes to the connector factory (objects, files, workers, ...)."""
        cfg = {"cluster": {
            "enabled": True,
            "advertise_address": ADDRS[i],
            "discovery": {"mode": "static", "peers": ADDRS},
            "client_port": self.client_port,
            "peer_port": self.peer_port,
            "data_dir": data_dir or self.data_dir(i),
            "dead_member_timeout": self.dead_timeout,
        }}
        c = self.connector(config=cfg, wait_ready=wait_ready, ready_timeout=30, **kw)
        self.nodes[i] = c
        return c

    def start_all(self):
        """All three at the same moment; returns once they are 3 voting members."""
        for i in range(3):
            self.start(i, wait_ready=False)
        for i in range(3):
            self.nodes[i].wait_ready(30)
        self.wait_voters([0, 1, 2], 3)

    def members(self, i):
        """Member list as etcd at ADDRS[i] sees it, or None."""
        try:
            r = etcd_call(ADDRS[i], self.client_port, "/v3/cluster/member/list")
        except (OSError, ValueError):
            return None
        return r.get("members", [])

    def voters(self, i):
        m = self.members(i)
        if m is None:
            return None
        return sorted(x["peerURLs"][0] for x in m if not x.get("isLearner"))

    def wait_voters(self, alive, n, timeout=90):
        """Every instance in alive sees exactly n started voting members."""
        def ok():
            for i in alive:
                m = self.members(i)
                if m is None or len(m) != n:
                    return False
                if any(x.get("isLearner") or not x.get("name") for x in m):
                    return False
            return True
        try:
            wait_until(ok, timeout, interval=0.2, what=f"{n} voting members on {alive}")
        except TimeoutError:
            self.dump()
            raise

    def dump(self):
        for i, c in self.nodes.items():
            print(f"--- node {i} members={self.members(i)}")
            for l in c.find_logs():
                if l.get("component") == "cluster" or l.get("level") in ("warn", "error"):
                    print(l)


@pytest.fixture
def trio(connector, tmp_path):
    return Trio(connector, tmp_path)


def leader_count(trio, alive):
    roles = [ready_body(trio.nodes[i])[1].get("cluster_role") for i in alive]
    return roles.count("leader")


def test_three_form_one_cluster_leave_and_rejoin(trio):
    t0 = time.monotonic()
    trio.start_all()
    formed = time.monotonic() - t0
    print(f"formation of 3 members took {formed:.2f}s")
    # One cluster: every member sees the same cluster id.
    ids = {etcd_call(a, trio.client_port, "/v3/maintenance/status")["header"]["cluster_id"]
           for a in ADDRS}
    assert len(ids) == 1
    wait_until(lambda: leader_count(trio, [0, 1, 2]) == 1, 30, 0.2, "one leader in /ready")
    for i in range(3):
        status, body = ready_body(trio.nodes[i])
        assert status == 200
        assert body["cluster"] == "ok"
        wait_until(lambda: ready_body(trio.nodes[i])[1].get("cluster_members") == 3, 30, 0.2,
                   "cluster_members 3 in /ready")

    # Graceful stop of the leader: it hands leadership over and removes itself.
    leader = next(i for i in range(3) if ready_body(trio.nodes[i])[1]["cluster_role"] == "leader")
    rest = [i for i in range(3) if i != leader]
    assert trio.nodes[leader].stop(60) == 0
    trio.nodes[leader].wait_log("shutdown", step=2, status="done", timeout=5)
    trio.wait_voters(rest, 2)
    assert not os.path.exists(os.path.join(trio.data_dir(leader), "member"))
    for i in rest:
        assert ready_body(trio.nodes[i])[0] == 200

    # Start it again: it joins as a learner, gets promoted, 3 members.
    trio.start(leader)
    trio.wait_voters([0, 1, 2], 3)
    wait_until(lambda: leader_count(trio, [0, 1, 2]) == 1, 30, 0.2, "one leader")


def test_crashed_member_removed_then_rejoins(connector, tmp_path):
    trio = Trio(connector, tmp_path, dead_timeout="3s")
    trio.start_all()

    victim = 2
    trio.nodes[victim].kill()  # etcd dies with it (parent-death signal)
    wait_until(lambda: trio.members(victim) is None, 30, 0.2, "the victim's etcd gone")
    trio.wait_voters([0, 1], 2, timeout=120)
    removed = [l for i in (0, 1) for l in trio.nodes[i].find_logs("removed a dead cluster member")]
    assert removed
    for i in (0, 1):
        assert ready_body(trio.nodes[i])[0] == 200

    # Restart on the same data dir: etcd says it was removed; the dir is wiped and it joins anew.
    trio.start(victim)
    trio.wait_voters([0, 1, 2], 3, timeout=120)


def test_unwritable_data_dir_is_degraded_but_serving(connector, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    ports = pick_ports()
    c = connector(config={"cluster": {
        "enabled": True, "advertise_address": "127.0.0.1",
        "discovery": {"mode": "static", "peers": ["127.0.0.1"]},
        "client_port": ports[0], "peer_port": ports[1],
        "data_dir": str(blocker / "etcd")}}, ready_timeout=30)
    wait_until(lambda: ready_body(c)[1].get("cluster") == "degraded", 30, 0.2, "degraded")
    status, body = ready_body(c)
    assert status == 200 and body["cluster_role"] == "degraded"
    status, metrics = c.get("/metrics")
    assert status == 200
    assert "portcullis_cluster_degraded 1" in metrics
    errors = [l for l in c.find_logs() if l.get("level") == "error" and
              l.get("component") == "cluster"]
    assert len(errors) == 1 and "data dir" in errors[0]["msg"]
    time.sleep(1)
    assert len([l for l in c.find_logs() if l.get("level") == "error"]) == 1
    assert c.stop(30) == 0


def test_etcd_cannot_start_is_degraded(connector, tmp_path):
    ports = pick_ports()
    c = connector(config={"cluster": {
        "enabled": True, "advertise_address": "127.0.0.1",
        "discovery": {"mode": "static", "peers": ["127.0.0.1"]},
        "client_port": ports[0], "peer_port": ports[1],
        "etcd_binary": "/bin/false",
        "data_dir": str(tmp_path / "etcd")}}, ready_timeout=30)
    wait_until(lambda: ready_body(c)[1].get("cluster") == "degraded", 60, 0.2, "degraded")
    assert ready_body(c)[0] == 200
    errors = [l for l in c.find_logs() if l.get("level") == "error"]
    assert len(errors) == 1 and "etcd cannot start" in errors[0]["msg"]
    assert c.stop(30) == 0


def test_kill9_then_restart_on_same_data_dir_rejoins_as_same_member(trio):
    trio.start_all()
    before = sorted(m["ID"] for m in trio.members(0))
    trio.nodes[1].kill()
    wait_until(lambda: trio.members(1) is None, 30, 0.2, "node 1's etcd gone")
    assert ready_body(trio.nodes[0])[0] == 200 and ready_body(trio.nodes[2])[0] == 200
    trio.start(1)  # same data dir, well within dead_member_timeout
    trio.wait_voters([0, 1, 2], 3)
    assert sorted(m["ID"] for m in trio.members(1)) == before
    assert trio.nodes[1].find_logs("bootstrapping a new cluster") == []
    assert trio.nodes[1].find_logs("joining the cluster") == []


def test_dns_discovery_bootstraps(connector, tmp_path):
    """`dns` mode: the name's A/AAAA records are the peers (here: localhost)."""
    ports = pick_ports()
    c = connector(config={"cluster": {
        "enabled": True, "advertise_address": "127.0.0.1",
        "discovery": {"mode": "dns", "dns_name": "localhost"},
        "client_port": ports[0], "peer_port": ports[1],
        "data_dir": str(tmp_path / "etcd")}}, ready_timeout=30)
    wait_until(lambda: ready_body(c)[1].get("cluster_role") == "leader", 60, 0.2, "leader")
    assert ready_body(c)[1]["cluster_members"] == 1
    assert c.find_logs("bootstrapping a new cluster")
    assert c.stop(30) == 0
    assert not os.path.exists(str(tmp_path / "etcd" / "member"))


def test_rolling_restart_keeps_three_members(trio):
    trio.start_all()
    for i in range(3):
        rest = [k for k in range(3) if k != i]
        assert trio.nodes[i].stop(60) == 0
        trio.wait_voters(rest, 2)
        for k in rest:
            assert ready_body(trio.nodes[k])[0] == 200
        trio.start(i)
        trio.wait_voters([0, 1, 2], 3)
    wait_until(lambda: leader_count(trio, [0, 1, 2]) == 1, 30, 0.2, "one leader")
