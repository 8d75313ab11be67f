#!/usr/bin/env bash
# wrk with one presigned S3 GET of a small object through Portcullis (release
# build, SigV4 verified, policy call, re-signed upstream, audit on) and through
# HAProxy plain-proxying the same upstream, in one run; prints requests/s for
# each and the ratio Portcullis/HAProxy (target >= 0.9).
#
# The upstream is nginx serving the object under /bucket/key (path style); it
# ignores the query string and the signature, which is all a throughput
# benchmark needs, and is far from being the bottleneck.
#
#   bench/s3.sh                         # 15 s per run, 2 threads, 64 connections
#   DURATION=5 bench/s3.sh              # quicker
#   THREADS=2 CONNECTIONS="16 64" ROUNDS=2 OBJECT_BYTES=1024 bench/s3.sh
#   COUNTS=callgrind bench/s3.sh        # load-independent counts for Portcullis (1 worker,
#   COUNTS=strace bench/s3.sh           # REQUESTS keep-alive GETs): instructions or syscalls
#                                       # per request
#
# Everything runs on 127.0.0.1 free ports under a temp dir that is removed at exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PORTCULLIS_BIN:-$ROOT/build-release/portcullis}"
DURATION="${DURATION:-15}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-1}"
OBJECT_BYTES="${OBJECT_BYTES:-1024}"
WORKERS="${WORKERS:-0}"
COUNTS="${COUNTS:-0}"
REQUESTS="${REQUESTS:-2000}"
NGINX="${NGINX:-/usr/sbin/nginx}"
HAPROXY="${HAPROXY:-/usr/sbin/haproxy}"
PY=/usr/bin/python3

[ -x "$BIN" ] || { echo "build the release binary first: make release" >&2; exit 2; }
for tool in "$NGINX" "$HAPROXY" wrk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/deps.sh" >&2; exit 2; }
done

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

WORK="$(mktemp -d /tmp/pc-s3bench-XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

BUCKET=bench-bucket
KEY=obj.bin
NGINX_PORT="$(free_port)"
HAPROXY_PORT="$(free_port)"
PC_PORT="$(free_port)"
HEALTH_PORT="$(free_port)"
ACCESS_KEY=AKIAPCBENCH000000001
SECRET_KEY=bench-secret-0123456789abcdefghijklmnopq

echo "== nginx serving a $OBJECT_BYTES-byte object at /$BUCKET/$KEY on 127.0.0.1:$NGINX_PORT"
mkdir -p "$WORK/www/$BUCKET" "$WORK/nginx"
head -c "$OBJECT_BYTES" /dev/urandom > "$WORK/www/$BUCKET/$KEY"
chmod -R a+rX "$WORK/www"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
    }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/stderr.log" &
PIDS+=($!)

echo "== HAProxy (http mode, keep-alive both sides) on 127.0.0.1:$HAPROXY_PORT"
cat > "$WORK/haproxy.cfg" <<CONF
global
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend nginx
backend nginx
    http-reuse always
    server nginx 127.0.0.1:$NGINX_PORT
CONF
"$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)

echo "== Portcullis (release, audit spool on) on 127.0.0.1:$PC_PORT"
mkdir -p "$WORK/pc/config.d" "$WORK/pc/spool"
cat > "$WORK/pc/config.d/objects.yaml" <<Y
resources:
  - {name: s3-bench, technology: s3, endpoint: "http://127.0.0.1:$NGINX_PORT", region: us-east-1,
     credentials: {access_key_id: UPSTREAMKEY, secret_access_key: upstream-secret}}
listeners:
  - {name: s3, port: $PC_PORT, resource: s3-bench, tls: disabled}
users:
  - {username: bench, email: bench@example.com, type: machine,
     access_keys: [{id: $ACCESS_KEY, secret: $SECRET_KEY}]}
Y
cat > "$WORK/pc/connector.yaml" <<Y
instance_name: bench
listen_address: 127.0.0.1
control_plane: {config_dir: $WORK/pc/config.d}
health: {listen: 127.0.0.1:$HEALTH_PORT}
log_spool: {dir: $WORK/pc/spool, max_bytes: 4GiB}
log_level: warn
workers: $WORKERS
Y
[ "$COUNTS" = 0 ] || sed -i "s/^workers: .*/workers: 1/" "$WORK/pc/connector.yaml"
if [ "$COUNTS" = callgrind ]; then
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
        "$BIN" connector -c "$WORK/pc/connector.yaml" 2>"$WORK/pc/stderr.log" &
else
    "$BIN" connector -c "$WORK/pc/connector.yaml" 2>"$WORK/pc/stderr.log" &
fi
PC_PID=$!
PIDS+=($PC_PID)

ready=0
for _ in $(seq 600); do
    if curl -fs -o /dev/null "http://127.0.0.1:$HEALTH_PORT/ready" &&
       curl -fs -o /dev/null "http://127.0.0.1:$HAPROXY_PORT/$BUCKET/$KEY"; then
        ready=1
        break
    fi
    sleep 0.1
done
[ $ready = 1 ] || { echo "not ready:"; tail -20 "$WORK/pc/stderr.log" "$WORK/haproxy.log" \
    "$WORK/nginx/stderr.log" 2>/dev/null; exit 1; }

# One presigned URL (SigV4 query auth, valid for an hour) for Portcullis's key;
# HAProxy gets the same path and query.
QUERY=$($PY - "$PC_PORT" "$ACCESS_KEY" "$SECRET_KEY" "$BUCKET" "$KEY" <<'EOF'
import sys, boto3
from botocore.config import Config
port, key, secret, bucket, obj = sys.argv[1:]
c = boto3.session.Session().client(
    "s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=key,
    aws_secret_access_key=secret,
    config=Config(region_name="us-east-1", signature_version="s3v4",
                  s3={"addressing_style": "path"}))
url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": obj},
                               ExpiresIn=3600)
print(url.split(f"127.0.0.1:{port}", 1)[1])
EOF
)
PC_URL="http://127.0.0.1:$PC_PORT$QUERY"
HA_URL="http://127.0.0.1:$HAPROXY_PORT$QUERY"
for u in "$PC_URL" "$HA_URL"; do
    if ! curl -fs -o "$WORK/check.bin" "$u" || ! cmp -s "$WORK/check.bin" "$WORK/www/$BUCKET/$KEY"; then
        echo "presigned GET did not return the object: $u"
        curl -s -i "$u" | head -20
        tail -5 "$WORK/pc/stderr.log"
        exit 1
    fi
done

if [ "$COUNTS" != 0 ]; then
    # A fixed number of keep-alive GETs on one connection; counts do not depend
    # on the machine's load, unlike requests/s.
    drive() {
        $PY - "$PC_PORT" "$QUERY" "$1" <<'EOF'
import http.client, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
EOF
    }
    drive 200 # warm: upstream connection, caches
    echo
    if [ "$COUNTS" = callgrind ]; then
        command -v callgrind_control >/dev/null || { echo "needs valgrind" >&2; exit 2; }
        callgrind_control -z "$PC_PID" >/dev/null 2>&1
        drive "$REQUESTS"
        callgrind_control -d "$PC_PID" >/dev/null 2>&1
        sleep 1
        total=$(cat "$WORK"/callgrind.out* | awk '/^summary:/ {s += $2} END {print s}')
        printf "callgrind: %s instructions over %s requests = %.0f instructions/request\n" \
            "$total" "$REQUESTS" "$(echo "$total / $REQUESTS" | bc -l)"
        [ -z "${KEEP_CALLGRIND:-}" ] || cp "$WORK"/callgrind.out* "$KEEP_CALLGRIND"/
    else
        command -v strace >/dev/null || { echo "needs strace" >&2; exit 2; }
        strace -c -f -o "$WORK/strace.txt" -p "$PC_PID" 2>/dev/null &
        ST=$!
        sleep 1
        drive "$REQUESTS"
        kill -INT "$ST"
        wait "$ST" 2>/dev/null || true
        echo "strace -c -f over $REQUESTS requests (calls per request):"
        awk -v n="$REQUESTS" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
            printf "  %-16s %6.2f\n", $NF, $4 / n }' "$WORK/strace.txt"
    fi
    exit 0
fi

cpu_ticks() { # utime + stime of a process, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

run() { # url connections pid -> "requests/s cpu-us-per-request" (fails on errors, non-2xx)
    local url="$1" c="$2" pid="$3" out t0 t1 n
    t0=$(cpu_ticks "$pid")
    out=$(wrk -t "$THREADS" -c "$c" -d "${DURATION}s" "$url" 2>&1)
    t1=$(cpu_ticks "$pid")
    if grep -q "Non-2xx or 3xx responses\|Socket errors" <<<"$out"; then
        echo "wrk saw errors against $url:" >&2
        echo "$out" >&2
        return 1
    fi
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    printf "%s %.1f\n" "$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")" \
        "$(echo "($t1 - $t0) * $TICK_US / $n" | bc -l)"
}

# Warm both paths (connections to nginx, caches) before measuring.
wrk -t 1 -c 4 -d 2s "$PC_URL" >/dev/null 2>&1 || true
wrk -t 1 -c 4 -d 2s "$HA_URL" >/dev/null 2>&1 || true

# requests/s is what the target is about; CPU time per request (the proxy
# process's user+system time over the requests it served) is the figure that
# stays meaningful when something else loads the machine.
printf "\n%-6s %-5s %10s %10s %10s %12s %12s\n" round conns "haproxy" "portcullis" "pc/haproxy" \
    "ha cpu us/r" "pc cpu us/r"
for c in $CONNECTIONS; do
    sum_h=0
    sum_p=0
    for r in $(seq "$ROUNDS"); do
        read -r h hcpu < <(run "$HA_URL" "$c" "$HAPROXY_PID")
        read -r p pcpu < <(run "$PC_URL" "$c" "$PC_PID")
        [ -n "$h" ] && [ -n "$p" ] || { echo "wrk failed"; exit 1; }
        printf "%-6s %-5s %10s %10s %10.2f %12s %12s\n" "$r" "$c" "$h" "$p" \
            "$(echo "$p / $h" | bc -l)" "$hcpu" "$pcpu"
        sum_h=$((sum_h + h))
        sum_p=$((sum_p + p))
    done
    if [ "$ROUNDS" -gt 1 ]; then
        printf "%-6s %-5s %10s %10s %10.2f\n" mean "$c" "$((sum_h / ROUNDS))" \
            "$((sum_p / ROUNDS))" "$(echo "$sum_p / $sum_h" | bc -l)"
    fi
done

kill -0 "$PC_PID" 2>/dev/null || { echo "Portcullis died during the run"; tail -20 "$WORK/pc/stderr.log"; exit 1; }
sleep 1 # last spool batch
RECORDS=$("$BIN" logs --spool "$WORK/pc/spool" | grep -c '"technology":"s3"' || true)
echo
echo "audit records spooled by Portcullis during the run: $RECORDS"
echo "machine: $(nproc) CPUs; wrk -t $THREADS, $DURATION s per run, $OBJECT_BYTES-byte object," \
     "Portcullis workers=$WORKERS (0 = one per CPU), HAProxy $("$HAPROXY" -v | awk 'NR==1{print $3}')" \
     "nbthread default, nginx 1 worker"
