#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need.
# Idempotent and non-interactive; must run as root (CI and dev machines are).
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # libraries we link
  libuv1-dev libssl-dev libyaml-dev libjansson-dev libpcre2-dev
  libpg-query-dev libhttp-parser-dev libcurl4-openssl-dev libsqlite3-dev libcmocka-dev
  libmicrohttpd-dev
  # real components and clients for integration tests, the demo and benchmarks
  postgresql postgresql-client pgbouncer etcd-server etcd-client
  python3-prometheus-client
  python3 python3-pytest python3-yaml python3-psycopg python3-psycopg2
  openssl curl procps iproute2 chromium
  # S3 connector: real clients (tests) and the benchmark's upstream, peer proxy and load generator
  awscli python3-boto3 nginx-light haproxy wrk
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Services shipped by these packages must not start on install: tests run their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps.sh: installed ${missing[*]}"
