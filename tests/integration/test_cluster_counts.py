"""Cluster-wide counters across instances (design §8): accesses noted on one
instance become visible through pc_cluster_remote_count on the others.

Uses build/cluster_probe (bench/cluster_probe.c): one cluster instance each,
real etcd, three 127.0.0.x addresses. Delays are printed, never asserted.
"""

import json
import os
import subprocess
import threading

import yaml

from harness import REPO, wait_until
from test_cluster_membership import ADDRS, pick_ports

N = 15


def probe_bin():
    return os.path.join(os.path.dirname(os.environ.get("PORTCULLIS_BIN") or
                                        os.path.join(REPO, "build", "portcullis")),
                        "cluster_probe")


class Probe:
    def __init__(self, tmp, i, ports, args, env=None):
        d = tmp / f"p{i}"
        (d / "conf").mkdir(parents=True)
        self.cfg_path = str(d / "c.yaml")
        self.ports = ports
        with open(self.cfg_path, "w") as f:
            yaml.safe_dump({
                "control_plane": {"config_dir": str(d / "conf")},
                "cluster": {"enabled": True, "advertise_address": ADDRS[i],
                            "discovery": {"mode": "static", "peers": ADDRS},
                            "client_port": ports[0], "peer_port": ports[1],
                            "data_dir": str(d / "etcd")}}, f)
        self.lines = []
        self.log_path = str(d / "log.jsonl")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([probe_bin(), self.cfg_path, *args],
                                         stdout=subprocess.PIPE, stderr=log, text=True,
                                         env={**os.environ, **(env or {})})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def has(self, key):
        return [l for l in self.lines if key in l]

    def logs(self, msg):
        """The instance's own (stderr) log lines with this msg."""
        out = []
        with open(self.log_path) as f:
            for line in f:
                try:
                    l = json.loads(line)
                except ValueError:
                    continue
                if l.get("msg") == msg:
                    out.append(l)
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_probes(tmp, n, interval_ms=300, cache=False, envs=None):
    """A 3-member cluster of probes on fresh ports: node 0 publishes (or puts
    cache entries) n times once told to go, nodes 1 and 2 observe; all up and
    voting members when this returns. envs: node -> extra environment."""
    ports = pick_ports()
    put, get = ("cache-put", "cache-get") if cache else ("publish", "observe")
    envs = envs or {}
    probes = [Probe(tmp, 0, ports, [put, str(n), str(interval_ms)], envs.get(0)),
              Probe(tmp, 1, ports, [get, str(n)], envs.get(1)),
              Probe(tmp, 2, ports, [get, str(n)], envs.get(2))]
    try:
        wait_until(lambda: all(p.has("event") for p in probes), 120, 0.2, "all probes up")
        assert all(p.has("event")[0]["role"] in ("leader", "follower") for p in probes)
    except BaseException:
        for p in probes:
            p.close()
        raise
    return probes


def test_counts_propagate_to_other_instances(tmp_path):
    probes = start_probes(tmp_path, N)
    try:
        open(probes[0].cfg_path + ".go", "w").close()
        for p in probes:
            assert p.proc.wait(120) == 0
        sent = {l["sent"]: l["t_ns"] for l in probes[0].has("sent")}
        assert len(sent) == N
        delays = []
        for p in probes[1:]:
            seen = {l["seen"]: l["t_ns"] for l in p.has("seen")}
            assert sorted(seen) == list(range(1, N + 1))
            delays += [(seen[i] - sent[i]) / 1e6 for i in range(1, N + 1)]
        delays.sort()
        p50 = delays[len(delays) // 2]
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        print(f"propagation delay over {len(delays)} observations: p50 {p50:.1f} ms, "
              f"p99 {p99:.1f} ms, max {delays[-1]:.1f} ms")
    finally:
        for p in probes:
            p.close()


def children(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def test_stopped_instance_catches_up_after_partition(tmp_path):
    """SIGSTOP an observer and its etcd while accesses happen elsewhere; after
    SIGCONT it sees them all without a restart."""
    import signal
    import time
    n = 30
    probes = start_probes(tmp_path, n)
    try:
        victim = probes[2]
        etcd_pids = children(victim.proc.pid)
        assert etcd_pids
        open(probes[0].cfg_path + ".go", "w").close()
        wait_until(lambda: len(victim.has("seen")) >= 3, 60, 0.05, "victim sees 3")
        for pid in [victim.proc.pid] + etcd_pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            stopped_at = len(victim.has("seen"))
            # The rest of the cluster keeps counting meanwhile.
            wait_until(lambda: len(probes[1].has("seen")) == n, 60, 0.1, "observer 1 sees all")
            time.sleep(2)
            assert len(victim.has("seen")) == stopped_at
        finally:
            for pid in etcd_pids + [victim.proc.pid]:
                os.kill(pid, signal.SIGCONT)
        assert victim.proc.wait(120) == 0
        assert sorted(l["seen"] for l in victim.has("seen")) == list(range(1, n + 1))
        assert probes[0].proc.wait(60) == 0
    finally:
        for p in probes:
            p.close()
