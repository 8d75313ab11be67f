"""The shared cache across instances (issue 6 items 5 and 6): entries put on
one instance become readable on the others through the watch, and an instance
cut off (SIGSTOP of it and its etcd, shorter than dead_member_timeout) while
they were put gets them after SIGCONT, without a restart.

Uses build/cluster_probe's cache modes (bench/cluster_probe.c); real etcd on
127.0.0.1-3. Delays are printed, never asserted.
"""

import os
import signal
import time

from harness import wait_until
from test_cluster_counts import children, start_probes

N = 10


def test_cache_entries_reach_the_others_and_a_healed_partition(tmp_path):
    probes = start_probes(tmp_path, N, 200, cache=True)
    try:
        victim = probes[2]
        pids = [victim.proc.pid] + children(victim.proc.pid)
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            open(probes[0].cfg_path + ".go", "w").close()
            # The others have them all (then leave: resume the victim while
            # they still hold the data, as the counts test does).
            wait_until(lambda: len(probes[1].has("seen")) == N, 60, 0.05, "observer 1 has all")
            time.sleep(1)
            assert victim.has("seen") == []
        finally:
            for pid in reversed(pids):
                os.kill(pid, signal.SIGCONT)
        assert victim.proc.wait(120) == 0
        assert probes[0].proc.wait(60) == 0 and probes[1].proc.wait(60) == 0
        sent = {l["sent"]: l["t_ns"] for l in probes[0].has("sent")}
        for p in probes[1:]:
            assert sorted(l["seen"] for l in p.has("seen")) == list(range(1, N + 1))
        d = sorted((l["t_ns"] - sent[l["seen"]]) / 1e6 for l in probes[1].has("seen"))
        print(f"cache propagation over {len(d)} entries: p50 {d[len(d) // 2]:.1f} ms, "
              f"max {d[-1]:.1f} ms")
    finally:
        for p in probes:
            p.close()
