#!/bin/sh
# Propagation delay of an access noted on one instance to two others, over a real
# 3-member etcd cluster on 127.0.0.1-3 (build/cluster_probe, see bench/cluster_probe.c).
# Usage: bench/cluster.sh [N accesses, default 100] [interval ms, default 100]
# Prints p50/p99/max in ms. (The TPS cost of clustering on pgbench needs the policy path
# wired to the counters; not measured here yet.)
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-100}
export CLUSTER_BENCH_N="$N" CLUSTER_BENCH_INTERVAL="${2:-100}"
exec /usr/bin/python3 - "$REPO" <<'PY'
import os, sys, tempfile, pathlib
repo = sys.argv[1]
sys.path.insert(0, os.path.join(repo, "tests", "integration"))
import test_cluster_counts as t
n, iv = int(os.environ["CLUSTER_BENCH_N"]), os.environ["CLUSTER_BENCH_INTERVAL"]
tmp = pathlib.Path(tempfile.mkdtemp(prefix="pc-cluster-bench-"))
ports = t.pick_ports()
probes = [t.Probe(tmp, 0, ports, ["publish", str(n), iv]),
          t.Probe(tmp, 1, ports, ["observe", str(n)]),
          t.Probe(tmp, 2, ports, ["observe", str(n)])]
try:
    t.wait_until(lambda: all(p.has("event") for p in probes), 120, 0.2, "probes up")
    open(probes[0].cfg_path + ".go", "w").close()
    for p in probes:
        p.proc.wait(600)
    sent = {l["sent"]: l["t_ns"] for l in probes[0].has("sent")}
    d = sorted((l["t_ns"] - sent[l["seen"]]) / 1e6 for p in probes[1:] for l in p.has("seen"))
    print(f"cluster propagation: {len(d)} observations, p50 {d[len(d)//2]:.1f} ms, "
          f"p99 {d[min(len(d)-1, int(len(d)*0.99))]:.1f} ms, max {d[-1]:.1f} ms "
          f"(publish batch 100 ms, target p99 <= 250 ms)")
finally:
    for p in probes:
        p.close()
    import shutil; shutil.rmtree(tmp, ignore_errors=True)
PY
