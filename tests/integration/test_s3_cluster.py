"""The seed policy across a cluster (issue 8 item 7, design §4 and §8): three
connectors with static discovery (real etcd on 127.0.0.1-3, as in
test_cluster_membership.py), each with its own S3 listener in front of the same
s3rver; one user's requests to `sensitive-bucket` go round-robin across them and
the 6th is refused wherever it lands.

Counts travel between instances in the background (design target 250 ms), so
requests are paced by PACE seconds; nothing asserts on timing.
"""

import time

import pytest

from harness import wait_until
from s3harness import ALICE, BOB, refused, s3rver, start_s3env  # noqa: F401
from test_cluster_membership import ADDRS, pick_ports, ready_body
from test_s3_policy import SEED_POLICY, SENSITIVE, new_bucket, seed_buckets

PACE = 2.0


@pytest.fixture
def trio(connector, s3rver, tmp_path):
    client_port, peer_port = pick_ports()
    envs = []
    for i in range(3):
        cfg = {"cluster": {"enabled": True, "advertise_address": ADDRS[i],
                           "discovery": {"mode": "static", "peers": ADDRS},
                           "client_port": client_port, "peer_port": peer_port,
                           "data_dir": str(tmp_path / f"etcd{i}")},
               "instance_name": f"s3node{i}"}
        envs.append(start_s3env(connector, s3rver, tmp_path, policies={"seed": SEED_POLICY},
                                config=cfg, wait_ready=False))
    for e in envs:
        e.connector.wait_ready(60)
    for e in envs:
        wait_until(lambda: ready_body(e.connector)[1].get("cluster_members") == 3, 90, 0.2,
                   "3 cluster members in /ready")
        assert ready_body(e.connector)[1].get("cluster") == "ok"
    return envs


def test_seed_policy_round_robin_across_three(trio, s3rver):
    other = new_bucket("other")
    seed_buckets(s3rver, SENSITIVE, other)
    clients = [e.boto(ALICE) for e in trio]

    # 1..5 on instances 0,1,2,0,1: allowed.
    for n in range(5):
        body = clients[n % 3].get_object(Bucket=SENSITIVE, Key="data.csv")["Body"].read()
        assert body == b"id,value\n1,42\n", n
        time.sleep(PACE)
    # The 6th lands on instance 2, which served only one of the five itself.
    refused(lambda: clients[2].get_object(Bucket=SENSITIVE, Key="data.csv"))
    time.sleep(PACE)
    # ... and every instance refuses from now on.
    refused(lambda: clients[0].head_object(Bucket=SENSITIVE, Key="data.csv"), None, 403)
    refused(lambda: clients[1].list_objects_v2(Bucket=SENSITIVE))

    # Other buckets for alice, and bob on the sensitive bucket, on every instance.
    for i, e in enumerate(trio):
        assert clients[i].get_object(Bucket=other, Key="data.csv")["Body"].read()
        assert e.boto(BOB).get_object(Bucket=SENSITIVE, Key="data.csv")["Body"].read()

    # Each instance audited what it served; together: 5 allowed, 3 blocked for alice.
    recs = [r for e in trio for r in e.s3_records(
        lambda rs: any(x.get("user") == "bob" for x in rs))]
    alice = [r for r in recs if r.get("user") == "alice" and r.get("bucket") == SENSITIVE]
    assert sorted(r["decision"] for r in alice) == ["allow"] * 5 + ["block"] * 3
    assert {r["instance"] for r in alice if r["decision"] == "block"} == \
        {"s3node0", "s3node1", "s3node2"}
