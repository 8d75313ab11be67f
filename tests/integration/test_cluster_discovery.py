"""Cluster discovery through orchestrator APIs (issue 6 item 2), real etcd:
three connectors on 127.0.0.1-3 with `kubernetes` discovery (Endpoints of a
Service, or pods of a label selector) and with `ecs` discovery (ListTasks +
DescribeTasks, SigV4, container credentials) form one 3-member cluster,
against the local fakes in fake_cloud.py. A failing API is logged once and
the previous peer list is kept (a crashed member that the stale list still
names is not removed until the API answers again without it).

Waits poll generously (2 loaded cores); nothing asserts on timing.
"""

import json
import time

import pytest

from fake_cloud import FakeEcs, FakeKubernetes
from harness import wait_until
from test_cluster_membership import ADDRS, Trio, etcd_call, ready_body


class DiscoveryTrio(Trio):
    """Trio whose connectors find each other through `discovery` (plus per-node env)."""

    def __init__(self, connector, tmp_path, discovery, env=None, dead_timeout="60s"):
        super().__init__(connector, tmp_path, dead_timeout)
        self.discovery = discovery
        self.env = env or (lambda i: {})

    def start(self, i, data_dir=None, wait_ready=True):
        cfg = {"cluster": {
            "enabled": True,
            "advertise_address": ADDRS[i],
            "discovery": self.discovery,
            "client_port": self.client_port,
            "peer_port": self.peer_port,
            "data_dir": data_dir or self.data_dir(i),
            "dead_member_timeout": self.dead_timeout,
        }}
        c = self.connector(config=cfg, wait_ready=wait_ready, ready_timeout=30, env=self.env(i))
        self.nodes[i] = c
        return c

    def form(self):
        t0 = time.monotonic()
        for i in range(3):
            self.start(i, wait_ready=False)
        for i in range(3):
            self.nodes[i].wait_ready(30)
        self.wait_voters([0, 1, 2], 3, timeout=120)
        took = time.monotonic() - t0
        ids = {etcd_call(a, self.client_port, "/v3/maintenance/status")["header"]["cluster_id"]
               for a in ADDRS}
        assert len(ids) == 1, "two clusters formed"
        assert self.voters(0) == sorted(f"http://{a}:{self.peer_port}" for a in ADDRS)
        return took

    def leader(self):
        found = wait_until(lambda: [i for i in self.nodes
                                    if ready_body(self.nodes[i])[1].get("cluster_role")
                                    == "leader"], 30, 0.2, "a leader")
        return found[0]

    def raw_logs(self):
        return "\n".join(json.dumps(l) for c in self.nodes.values() for l in c.log_lines())


def discovery_warnings(c):
    return [l for l in c.log_lines() if str(l.get("msg", "")).startswith("cluster discovery failed")]


@pytest.fixture
def k8s(tmp_path):
    f = FakeKubernetes(tmp_path, ADDRS)
    yield f
    f.close()


def k8s_discovery(k8s, **kind):
    return {"mode": "kubernetes", "api_url": k8s.url, "service_account_dir": k8s.sa_dir,
            "interval": "1s", **kind}


def test_kubernetes_endpoints_form_one_cluster(connector, tmp_path, k8s):
    # Pods turn ready only once they serve: the joiners are listed as not ready.
    k8s.not_ready = {ADDRS[1], ADDRS[2]}
    trio = DiscoveryTrio(connector, tmp_path, k8s_discovery(k8s, service="portcullis"))
    took = trio.form()
    print(f"kubernetes (Endpoints): 3 members formed in {took:.2f}s, "
          f"{k8s.count('endpoints', True)} API calls")
    assert k8s.count("endpoints", True) >= 3
    assert k8s.count(ok=False) == 0  # every call carried the token and the right path
    assert k8s.token not in trio.raw_logs()


def test_kubernetes_label_selector_form_one_cluster(connector, tmp_path, k8s):
    trio = DiscoveryTrio(connector, tmp_path,
                         k8s_discovery(k8s, label_selector="app=portcullis", namespace="data"))
    took = trio.form()
    print(f"kubernetes (pods): 3 members formed in {took:.2f}s, {k8s.count('pods', True)} calls")
    assert k8s.count("pods", True) >= 3
    assert k8s.count(ok=False) == 0
    # Finished, terminating and IP-less pods (127.0.0.7, .8) were not taken for peers.
    for c in trio.nodes.values():
        for l in c.find_logs("bootstrapping a new cluster"):
            assert l["discovered"] == 3


def test_kubernetes_api_failure_keeps_previous_peers(connector, tmp_path, k8s):
    trio = DiscoveryTrio(connector, tmp_path, k8s_discovery(k8s, service="portcullis"),
                         dead_timeout="3s")
    trio.form()
    leader = trio.leader()
    victim = next(i for i in range(3) if i != leader)
    rest = [i for i in range(3) if i != victim]

    # The API breaks, then a member crashes: the stale list still names it, so it stays.
    k8s.fail = (500, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "etcdserver: request timed out", "reason": "InternalError",
                      "code": 500})
    trio.nodes[leader].wait_log("cluster discovery failed; keeping the previous peer list",
                                timeout=20)
    trio.nodes[victim].kill()
    wait_until(lambda: trio.members(victim) is None, 30, 0.2, "the victim's etcd gone")
    time.sleep(8)  # well past dead_member_timeout (3 s)
    for i in rest:
        assert len(trio.members(i)) == 3
        assert ready_body(trio.nodes[i])[0] == 200
    warned = discovery_warnings(trio.nodes[leader])
    assert len(warned) == 1, warned  # one line per failure streak, not one per call
    assert "500" in warned[0]["error"] and "request timed out" in warned[0]["error"]

    # The API answers again, without the crashed pod: now it is removed.
    k8s.ips = [a for a in ADDRS if a != ADDRS[victim]]
    k8s.fail = None
    trio.wait_voters(rest, 2, timeout=60)
    assert trio.nodes[leader].find_logs("cluster discovery works again")
    assert trio.nodes[leader].find_logs("removed a dead cluster member")

    # A token the API server rejects: one warning naming the 401, never the token.
    k8s.set_token_file("not-the-token-" + "x" * 20)
    wait_until(lambda: len(discovery_warnings(trio.nodes[leader])) == 2, 20, 0.2,
               "a warning for the rejected token")
    err = discovery_warnings(trio.nodes[leader])[1]["error"]
    assert "401" in err and "Unauthorized" in err
    raw = trio.raw_logs()
    assert k8s.token not in raw and "not-the-token" not in raw
    for i in rest:
        assert len(trio.members(i)) == 2


def test_ecs_form_one_cluster_and_survive_api_errors(connector, tmp_path):
    # Credentials valid for 310 s: refreshed 5 min before expiry, i.e. after ~10 s.
    ecs = FakeEcs(ADDRS, creds_ttl_s=310, auth_token="Basic c2VjcmV0LWF1dGg=")
    try:
        trio = DiscoveryTrio(connector, tmp_path,
                             {"mode": "ecs", "ecs_endpoint": ecs.base, "interval": "1s"},
                             env=ecs.env)
        took = trio.form()
        print(f"ecs: 3 members formed in {took:.2f}s; ListTasks {ecs.count('ListTasks', True)}, "
              f"DescribeTasks {ecs.count('DescribeTasks', True)}, creds {ecs.count('creds')}")
        assert ecs.sig_errors == []
        assert ecs.count(ok=False) == 0
        assert ecs.count("metadata") >= 3  # cluster from the task metadata
        # Service from DescribeTasks of the own task (metadata without ServiceName) and
        # two ListTasks pages of 2 tasks each.
        assert ecs.count("DescribeTasks", True) >= 6 and ecs.count("ListTasks", True) >= 6
        # The leader keeps discovering (dead-member check): its credentials are refreshed
        # 5 min before they expire (every ~10 s here), and the calls signed with them pass.
        creds, calls = ecs.count("creds", True), ecs.count("ListTasks", True)
        wait_until(lambda: ecs.count("creds", True) > creds, 40, 0.5, "credentials refreshed")
        wait_until(lambda: ecs.count("ListTasks", True) > calls + 2, 20, 0.2, "calls go on")
        assert ecs.sig_errors == [] and ecs.count(ok=False) == 0

        # The API refuses (IAM): one warning naming the error, the cluster stays as it is.
        leader = trio.leader()
        ecs.fail = (400, {"__type": "com.amazonaws.ecs#AccessDeniedException",
                          "message": "User is not authorized to perform: ecs:ListTasks"})
        trio.nodes[leader].wait_log("cluster discovery failed; keeping the previous peer list",
                                    timeout=20)
        time.sleep(3)
        warned = discovery_warnings(trio.nodes[leader])
        assert len(warned) == 1
        assert "AccessDeniedException" in warned[0]["error"]
        for i in range(3):
            assert len(trio.members(i)) == 3
        raw = trio.raw_logs()
        for s in ecs.secrets_issued() + [ecs.auth_token]:
            assert s not in raw
        assert ecs.sig_errors == []
    finally:
        ecs.close()


def test_kubernetes_listing_lag_does_not_split_formation(connector, tmp_path, k8s):
    """Two instances start together while the API lists only one of them: the
    lowest (which sees the other, not yet answering) and the listed one (which
    sees only itself) would both bootstrap at once; waiting two API reads lets
    their views converge into one cluster."""
    k8s.ips = [ADDRS[2]]
    trio = DiscoveryTrio(connector, tmp_path, k8s_discovery(k8s, service="portcullis"))
    trio.start(0, wait_ready=False)
    trio.start(2, wait_ready=False)
    time.sleep(0.5)
    k8s.ips = list(ADDRS)  # the Endpoints controller catches up
    trio.start(1, wait_ready=False)
    trio.wait_voters([0, 1, 2], 3, timeout=120)
    ids = {etcd_call(a, trio.client_port, "/v3/maintenance/status")["header"]["cluster_id"]
           for a in ADDRS}
    assert len(ids) == 1, "two clusters formed"
    booted = [i for i in trio.nodes if trio.nodes[i].find_logs("bootstrapping a new cluster")]
    assert booted == [0]
