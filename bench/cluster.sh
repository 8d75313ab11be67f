#!/bin/sh
# Cluster benchmarks (issue 6 item 9); details in bench/cluster_bench.py and docs/benchmarks.md.
#
#   bench/cluster.sh                 # both parts
#   bench/cluster.sh propagation     # p50/p99/max delay of an access to the two other instances
#   bench/cluster.sh pgbench         # TPS and CPU/tx with cluster.enabled vs not, with and
#                                    # without the rate-limit policy, in one run
#   N=500 INTERVAL_MS=50 DURATION=15 CLIENTS=16 ROUNDS=3 bench/cluster.sh
#
# Uses build-release/ (make release) if built, else build/; real etcd and PostgreSQL on
# 127.0.0.1-3 free ports; everything is torn down at exit.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 "$REPO/bench/cluster_bench.py" "${1:-all}"
