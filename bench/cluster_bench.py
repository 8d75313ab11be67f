"""Cluster benchmarks (issue 6 item 9), driven by bench/cluster.sh.

propagation: build/cluster_probe on 127.0.0.1-3 (one etcd member each, a real
    3-member cluster): instance 0 notes N accesses INTERVAL_MS apart, 1 and 2
    report when each becomes visible through pc_cluster_remote_count. Prints
    p50/p99/max of the delay (target p99 <= 250 ms).

pgbench: a throwaway PostgreSQL (pgbench scale 1) and, on loopback, one
    standalone connector plus three clustered connectors (static discovery,
    127.0.0.1-3, all running during the whole benchmark, so the idle cluster's
    background load is the same for every run). `pgbench -n -S` against the
    standalone one (cluster off) and against clustered instance 0 (cluster on),
    each without policies and with the rate-limit policy
    `input.user.access_count.last_minute > 1000000000` (judged on every
    statement, never blocks), alternating, ROUNDS times. Besides TPS it reports
    the CPU time per transaction of the connector process and of its etcd
    child (from /proc), which is far less noisy than TPS on a shared machine.

Usage: /usr/bin/python3 bench/cluster_bench.py [propagation|pgbench|all]
Env: N (200), INTERVAL_MS (100), DURATION (10 s per pgbench run), CLIENTS (8),
ROUNDS (2), PORTCULLIS_BIN (default build-release/portcullis if built, else
build/portcullis; cluster_probe is taken from the same directory).
"""

import json
import statistics
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
if not os.environ.get("PORTCULLIS_BIN"):
    rel = os.path.join(REPO, "build-release", "portcullis")
    os.environ["PORTCULLIS_BIN"] = rel if os.access(rel, os.X_OK) else os.path.join(
        REPO, "build", "portcullis")

import harness  # noqa: E402
import test_cluster_counts as counts  # noqa: E402
from test_cluster_membership import ADDRS, pick_ports  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def pct(sorted_vals, p):
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


def propagation():
    n, iv = int(os.environ.get("N", "200")), os.environ.get("INTERVAL_MS", "100")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pc-cluster-bench-"))
    probes = counts.start_probes(tmp, n, iv)
    try:
        open(probes[0].cfg_path + ".go", "w").close()
        for p in probes:
            p.proc.wait(600)
        sent = {l["sent"]: l["t_ns"] for l in probes[0].has("sent")}
        d = sorted((l["t_ns"] - sent[l["seen"]]) / 1e6 for p in probes[1:] for l in p.has("seen"))
        if len(d) != 2 * n:
            raise SystemExit(f"only {len(d)} of {2 * n} observations")
        print(f"cluster propagation: {len(d)} observations ({n} accesses {iv} ms apart, "
              f"2 observers), p50 {pct(d, 0.5):.1f} ms, p99 {pct(d, 0.99):.1f} ms, "
              f"max {d[-1]:.1f} ms (publish batch 100 ms, target p99 <= 250 ms)")
    finally:
        for p in probes:
            p.close()
        shutil.rmtree(tmp, ignore_errors=True)


RATE = """package formal.v2
import rego.v1
pre_request := {"action": "block", "reason": "rate limit"} if {
  input.user.access_count.last_minute > 1000000000
}
"""
USER, PASSWORD = "bench", "bench-user-pw"


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def revision(c):
    return json.loads(c.get("/ready")[1] or "{}").get("revision", 0)


def set_policy(c, on):
    """Add or remove rate.rego and wait until the connector runs the new revision."""
    path = os.path.join(c.config_dir, "rate.rego")
    if on == os.path.exists(path):
        return
    before = revision(c)
    if on:
        c.write_file("rate.rego", RATE)
    else:
        c.remove_file("rate.rego")
    harness.wait_until(lambda: revision(c) > before, 30, 0.2, "config reloaded")


def pgbench(port, duration, clients):
    env = dict(os.environ, PGPASSWORD=PASSWORD)
    r = subprocess.run(["pgbench", "-n", "-S", "-c", str(clients), "-j", "2", "-T",
                        str(duration), "-h", "127.0.0.1", "-p", str(port), "-U", USER, "app"],
                       capture_output=True, text=True, env=env, timeout=duration + 120)
    m = re.search(r"^tps = ([\d.]+)", r.stdout, re.M)
    x = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    if r.returncode != 0 or not m or not x:
        raise SystemExit(f"pgbench failed: {r.stdout}\n{r.stderr}")
    return float(m.group(1)), int(x.group(1))


def pgbench_cost():
    duration = int(os.environ.get("DURATION", "10"))
    clients = int(os.environ.get("CLIENTS", "8"))
    rounds = int(os.environ.get("ROUNDS", "2"))
    pg = harness.Postgres()
    nodes = []
    tmp = tempfile.mkdtemp(prefix="pc-cluster-bench-")
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(pg.port),
                        "-U", "app", "app"], check=True, capture_output=True,
                       env=dict(os.environ, PGPASSWORD=pg.app_password))
        cport, pport = pick_ports()

        def start(cluster_addr):
            port = harness.free_port()
            objects = {"resources": [pg.resource()], "listeners": [harness.pg_listener(port)],
                       "users": [harness.pg_user(USER, PASSWORD, type="machine")]}
            cfg = {"log_level": "warn", "workers": 0}
            if cluster_addr is not None:
                cfg["cluster"] = {"enabled": True, "advertise_address": cluster_addr,
                                  "discovery": {"mode": "static", "peers": ADDRS},
                                  "client_port": cport, "peer_port": pport,
                                  "data_dir": os.path.join(tmp, f"etcd-{cluster_addr}")}
            c = harness.Connector(objects, config=cfg, wait_ready=False)
            nodes.append(c)
            c.pg_port = port
            return c
        alone = start(None)
        clustered = [start(a) for a in ADDRS]
        for c in nodes:
            c.wait_ready(60)

        def formed():
            body = clustered[0].get("/ready")[1]
            return '"cluster_members":3' in body and '"cluster":"ok"' in body
        harness.wait_until(formed, 120, 0.5, "3-member cluster")
        etcd0 = counts.children(clustered[0].proc.pid)
        print(f"pgbench -n -S -c {clients} -j 2, {duration} s per run, {rounds} rounds; "
              f"binary {os.environ['PORTCULLIS_BIN']}; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f} at start")
        results = {}
        for rnd in range(rounds):
            for policy in (False, True):
                for c in (alone, clustered[0]):
                    set_policy(c, policy)
                for name, c in (("off", alone), ("on", clustered[0])):
                    pids = [c.proc.pid] + (etcd0 if c is clustered[0] else [])
                    before = [cpu_ticks(p) for p in pids]
                    tps, tx = pgbench(c.pg_port, duration, clients)
                    used = [(cpu_ticks(p) - b) / TICK for p, b in zip(pids, before)]
                    key = (name, policy)
                    results.setdefault(key, []).append(
                        (tps, used[0] * 1e6 / tx, (used[1] * 1e6 / tx) if len(used) > 1 else 0))
                    print(f"  round {rnd + 1} cluster {name:3} policy {'rate' if policy else 'none':4}"
                          f": {tps:8.0f} tps, connector {used[0] * 1e6 / tx:6.1f} us CPU/tx"
                          + (f", its etcd {used[1] * 1e6 / tx:5.1f} us CPU/tx" if len(used) > 1
                             else ""), flush=True)
        print("\nmedian over rounds:")
        print(f"{'policy':8} {'cluster off tps':>16} {'cluster on tps':>15} {'tps cost':>9} "
              f"{'off us/tx':>10} {'on us/tx':>9} {'etcd us/tx':>11}")
        for policy in (False, True):
            off, on = results[("off", policy)], results[("on", policy)]

            def med(rows, k):
                return statistics.median(r[k] for r in rows)
            print(f"{'rate' if policy else 'none':8} {med(off, 0):16.0f} {med(on, 0):15.0f} "
                  f"{(1 - med(on, 0) / med(off, 0)) * 100:8.1f}% {med(off, 1):10.1f} "
                  f"{med(on, 1):9.1f} {med(on, 2):11.1f}")
    finally:
        for c in nodes:
            c.stop(60)
            c.close()
        pg.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("propagation", "all"):
        propagation()
    if what in ("pgbench", "all"):
        pgbench_cost()
