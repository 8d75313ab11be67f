"""Dead-member removal in `dns` discovery (issue 6 item 3): a member that
stays unreachable past dead_member_timeout is removed by the survivors only
once it is also absent from the DNS answer, and a replacement can then join.

The DNS answer is controlled per test: each connector runs in its own mount
namespace (unshare -m) with a hosts file of the test bind-mounted over
/etc/hosts, so getaddrinfo("pcpeers") returns the lines the test writes there
(glibc reads the file again on every lookup). Skipped where mount namespaces
are not allowed.
"""

import subprocess
import time

import pytest

from harness import portcullis_path, wait_until
from test_cluster_membership import ADDRS, Trio

NAME = "pcpeers"
DEAD_TIMEOUT_S = 3


def _write_hosts(path, addrs):
    # In place (same inode): the bind mounts see the new content.
    with open(path, "w") as f:
        f.write("".join(f"{a} {NAME}\n" for a in addrs))


@pytest.fixture
def dns_hosts(tmp_path, monkeypatch):
    """(hosts file, wrapper binary): PORTCULLIS_BIN points at the wrapper."""
    hosts = tmp_path / "hosts"
    _write_hosts(hosts, ADDRS)
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            'mount --bind "$0" /etc/hosts && getent ahostsv4 "$1"',
                            str(hosts), NAME], capture_output=True, text=True)
    if probe.returncode != 0 or any(a not in probe.stdout for a in ADDRS):
        pytest.skip(f"cannot give a process its own /etc/hosts here: {probe.stderr.strip()}")
    wrapper = tmp_path / "portcullis-dns"
    wrapper.write_text("#!/bin/sh\n"
                       f"exec unshare -m sh -c 'mount --bind \"$0\" /etc/hosts && exec \"$@\"' "
                       f"'{hosts}' '{portcullis_path()}' \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PORTCULLIS_BIN", str(wrapper))
    return hosts


class DnsTrio(Trio):
    def start(self, i, data_dir=None, wait_ready=True, **kw):
        cfg = {"cluster": {
            "enabled": True, "advertise_address": ADDRS[i],
            "discovery": {"mode": "dns", "dns_name": NAME},
            "client_port": self.client_port, "peer_port": self.peer_port,
            "data_dir": data_dir or self.data_dir(i),
            "dead_member_timeout": f"{DEAD_TIMEOUT_S}s"}}
        c = self.connector(config=cfg, wait_ready=wait_ready, ready_timeout=30, **kw)
        self.nodes[i] = c
        return c


def test_dead_member_removed_only_once_absent_from_dns(connector, tmp_path, dns_hosts):
    trio = DnsTrio(connector, tmp_path)
    trio.start_all()
    victim = 2
    dead_url = f"http://{ADDRS[victim]}:{trio.peer_port}"
    ids = {m["peerURLs"][0]: m["ID"] for m in trio.members(0)}
    assert dead_url in ids

    trio.nodes[victim].kill()  # -9; its etcd follows (parent-death signal)
    wait_until(lambda: trio.members(victim) is None, 30, 0.2, "the victim's etcd gone")
    # Still in the DNS answer: kept well past the timeout (the leader checks every second).
    time.sleep(4 * DEAD_TIMEOUT_S)
    assert sorted(m["peerURLs"][0] for m in trio.members(0)) == sorted(ids)
    assert not any(trio.nodes[i].find_logs("removed a dead cluster member") for i in (0, 1))

    _write_hosts(dns_hosts, ADDRS[:2])
    trio.wait_voters([0, 1], 2, timeout=120)
    removed = [l for i in (0, 1) for l in trio.nodes[i].find_logs("removed a dead cluster member")]
    assert [(l["id"], l["peer_url"], l["status"]) for l in removed] == \
        [(ids[dead_url], dead_url, 200)]

    # Back in DNS with a fresh data dir: a replacement joins the survivors.
    _write_hosts(dns_hosts, ADDRS)
    new = trio.start(victim, data_dir=str(tmp_path / "etcd2-new"))
    trio.wait_voters([0, 1, 2], 3, timeout=120)
    assert new.find_logs("joining the cluster")
    assert not new.find_logs("bootstrapping a new cluster")
