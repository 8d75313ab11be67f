#!/usr/bin/env bash
# pgbench -S (simple and -M prepared) at -c 1/16/64 against PostgreSQL directly,
# through PgBouncer (session mode) and through Portcullis (release build, audit
# on), in one run; prints TPS and the ratios.
#
#   bench/pgbench.sh                 # 15 s per run (the documented figures)
#   DURATION=5 bench/pgbench.sh      # quicker
#   CLIENTS="1 16" MODES=simple bench/pgbench.sh
#   POLICIES=1 bench/pgbench.sh      # then Portcullis again with five active policies
#                                    # (one masks the selected column) and the cost
#   COUNTS=1 TXNS=2000 bench/pgbench.sh
#                                    # load-independent figures: a fixed number of
#                                    # transactions per client (-t) and, for each proxy
#                                    # process, CPU time, syscalls, instructions (user/
#                                    # kernel, where the CPU exposes counters) and context
#                                    # switches per transaction (perf stat -p)
#
# Everything runs on 127.0.0.1 free ports under a temp dir that is removed at exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PORTCULLIS_BIN:-$ROOT/build-release/portcullis}"
DURATION="${DURATION:-15}"
CLIENTS="${CLIENTS:-1 16 64}"
MODES="${MODES:-simple prepared}"
SCALE="${SCALE:-10}"
WORKERS="${WORKERS:-0}"
COUNTS="${COUNTS:-0}"
TXNS="${TXNS:-}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"

[ -x "$BIN" ] || { echo "build the release binary first: make release" >&2; exit 2; }
command -v pgbouncer >/dev/null || PGBOUNCER=/usr/sbin/pgbouncer
PGBOUNCER="${PGBOUNCER:-$(command -v pgbouncer)}"

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

WORK="$(mktemp -d /tmp/pc-bench-XXXXXX)"
chmod 755 "$WORK"
AS=()
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$WORK"
    AS=(runuser -u postgres --)
fi
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    "${AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT="$(free_port)"
UPSTREAM_PW="bench-upstream-pw"
USER_PW="bench-user-pw"

echo "== setting up PostgreSQL (scale $SCALE) on 127.0.0.1:$PG_PORT"
echo "postgres" > "$WORK/pw"
[ ${#AS[@]} -gt 0 ] && chown postgres: "$WORK/pw"
"${AS[@]}" "$PG_BIN/initdb" -D "$WORK/data" -U postgres --pwfile "$WORK/pw" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
max_connections = 300
shared_buffers = 256MB
fsync = off
synchronous_commit = off
CONF
"${AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
psql -X -q -h "$WORK" -p "$PG_PORT" -U postgres -c "CREATE ROLE app LOGIN PASSWORD '$UPSTREAM_PW'" \
    -c "CREATE DATABASE app OWNER app" postgres
PGPASSWORD="$UPSTREAM_PW" pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1

echo "== starting PgBouncer (session mode)"
BOUNCER_PORT="$(free_port)"
cat > "$WORK/userlist.txt" <<U
"app" "$UPSTREAM_PW"
U
cat > "$WORK/pgbouncer.ini" <<INI
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 500
default_pool_size = 100
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
[ ${#AS[@]} -gt 0 ] && chown postgres: "$WORK/userlist.txt" "$WORK/pgbouncer.ini"
"${AS[@]}" "$PGBOUNCER" "$WORK/pgbouncer.ini" >/dev/null 2>&1 &
PIDS+=($!)

echo "== starting Portcullis (release, audit spool on)"
PC_PORT="$(free_port)"
HEALTH_PORT="$(free_port)"
mkdir -p "$WORK/pc/config.d" "$WORK/pc/spool"
cat > "$WORK/pc/config.d/objects.yaml" <<Y
resources:
  - {name: pg-bench, technology: postgres, hostname: 127.0.0.1, port: $PG_PORT, database: app,
     credentials: {username: app, password: $UPSTREAM_PW}, tls: disable}
listeners:
  - {name: pg, port: $PC_PORT, resource: pg-bench, tls: disabled}
users:
  - {username: app, email: bench@example.com, type: machine, password: $USER_PW}
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
"$BIN" connector -c "$WORK/pc/connector.yaml" 2>"$WORK/pc/stderr.log" &
PC_PID=$!
PIDS+=($PC_PID)
for _ in $(seq 100); do
    "$BIN" healthcheck --url "http://127.0.0.1:$HEALTH_PORT" >/dev/null 2>&1 && break
    sleep 0.1
done
for _ in $(seq 50); do
    PGPASSWORD="$UPSTREAM_PW" psql -X -q -h 127.0.0.1 -p "$BOUNCER_PORT" -U app -c "select 1" app \
        >/dev/null 2>&1 && break
    sleep 0.1
done

# Syscalls counted per proxy process in COUNTS mode (raw_syscalls: all of them).
COUNT_EVENTS="task-clock,instructions:u,instructions:k,context-switches,raw_syscalls:sys_enter"
for sc in read readv recvfrom write writev sendto sendmsg epoll_wait epoll_pwait futex \
    pwritev fdatasync; do
    COUNT_EVENTS="$COUNT_EVENTS,syscalls:sys_enter_$sc"
done
COUNT_LOG="$WORK/counts.txt"

thread_cpu() { # pid -> "tid comm cpu_ns" per thread
    local t
    for t in /proc/"$1"/task/*; do
        printf "%s %s %s\n" "${t##*/}" "$(tr ' ' '_' <"$t/comm")" "$(cut -d' ' -f1 "$t/schedstat")"
    done 2>/dev/null
}

run() { # target port password mode clients -> tps
    local target="$1" port="$2" pw="$3" mode="$4" c="$5" j pid="" perf_pid="" len out
    j=$(( c < 2 ? 1 : 2 ))
    len=(-T "$DURATION")
    [ -n "$TXNS" ] && len=(-t "$TXNS")
    if [ "$COUNTS" = 1 ]; then
        case $target in
        pgbouncer) pid=$(cat "$WORK/pgbouncer.pid") ;;
        portcullis*) pid=$PC_PID ;;
        esac
    fi
    if [ -n "$pid" ]; then
        thread_cpu "$pid" >"$WORK/threads.before"
        perf stat -x, -o "$WORK/perf.out" -e "$COUNT_EVENTS" -p "$pid" 2>/dev/null &
        perf_pid=$!
        sleep 0.3
    fi
    out=$(PGPASSWORD="$pw" pgbench -n -S -M "$mode" -c "$c" -j "$j" "${len[@]}" \
        -h 127.0.0.1 -p "$port" -U app app 2>"$WORK/pgbench.err")
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        thread_cpu "$pid" >"$WORK/threads.after"
        local txns
        txns=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}' <<<"$out")
        awk -F, -v t="$target" -v m="$mode" -v c="$c" -v n="$txns" '
            /^[0-9]/ { v[$3] = $1 }
            END {
                if (n == 0) exit
                printf "%-22s %-8s c=%-3s txns=%-7d", t, m, c, n
                printf " cpu_us/txn=%.1f", v["task-clock"] * 1000 / n
                if ("instructions:u" in v)
                    printf " instr/txn u=%.0f k=%.0f", v["instructions:u"] / n, v["instructions:k"] / n
                else
                    printf " instr/txn n/a"
                printf " ctxsw/txn=%.2f syscalls/txn=%.2f", v["context-switches"] / n, v["raw_syscalls:sys_enter"] / n
                split("read readv recvfrom write writev sendto sendmsg epoll_wait epoll_pwait futex pwritev fdatasync", s, " ")
                for (i = 1; i in s; i++) {
                    k = "syscalls:sys_enter_" s[i]
                    if (v[k] > 0) printf " %s=%.2f", s[i], v[k] / n
                }
                printf "\n"
            }' "$WORK/perf.out" >>"$COUNT_LOG"
        # CPU time per transaction by thread name (workers summed; schedstat ns)
        awk -v n="$txns" '
            FNR == NR { before[$1] = $3; next }
            { name = $2; sub(/-[0-9]+$/, "", name); cpu[name] += $3 - before[$1] }
            END {
                if (n == 0) exit
                printf "%22s threads cpu_us/txn:", ""
                for (k in cpu) printf " %s=%.1f", k, cpu[k] / 1000 / n
                printf "\n"
            }' "$WORK/threads.before" "$WORK/threads.after" >>"$COUNT_LOG"
    fi
    awk '/^tps = / {printf "%.0f", $3}' <<<"$out"
}

declare -A TPS
printf "\n%-9s %-8s %12s %12s %12s %10s %10s\n" mode clients direct pgbouncer portcullis "pc/bouncer" "pc/direct"
for mode in $MODES; do
    for c in $CLIENTS; do
        d=$(run direct "$PG_PORT" "$UPSTREAM_PW" "$mode" "$c")
        b=$(run pgbouncer "$BOUNCER_PORT" "$UPSTREAM_PW" "$mode" "$c")
        p=$(run portcullis "$PC_PORT" "$USER_PW" "$mode" "$c")
        [ -n "$d" ] && [ -n "$b" ] && [ -n "$p" ] || { echo "pgbench failed:"; cat "$WORK/pgbench.err"; exit 1; }
        printf "%-9s %-8s %12s %12s %12s %10.2f %10.2f\n" "$mode" "$c" "$d" "$b" "$p" \
            "$(echo "$p / $b" | bc -l)" "$(echo "$p / $d" | bc -l)"
        TPS[$mode.$c]=$p
    done
done
if [ "${POLICIES:-0}" = 1 ]; then
    # Five active policies judged on every query: four pre_request rules that do
    # not fire (DDL, DELETE without admins, client IP, rate limit) and one
    # post_request mask applied to every result (pgbench -S selects abalance).
    for n in ddl delete ip rate; do
        case $n in
        ddl) rule='input.query.command_type == "ddl"' ;;
        delete) rule='input.query.statement_type == "DELETE"
  not "admins" in input.user.groups' ;;
        ip) rule='input.client_ip_address == "10.9.9.9"' ;;
        rate) rule='input.user.access_count.last_minute > 100000000' ;;
        esac
        printf 'package formal.v2\nimport rego.v1\npre_request := {"action": "block", "reason": "%s"} if {\n  %s\n}\n' \
            "$n" "$rule" > "$WORK/pc/config.d/$n.rego"
    done
    printf 'package formal.v2\nimport rego.v1\npost_request := {"action": "mask", "type": "nullify", "columns": ["abalance"]} if {\n  input.user.type == "machine"\n}\n' \
        > "$WORK/pc/config.d/mask.rego"
    sleep 3 # config-dir reload
    printf "\n%-9s %-8s %14s %14s %8s %16s\n" mode clients "no policies" "5 policies" cost "added us/query"
    for mode in $MODES; do
        for c in $CLIENTS; do
            q=$(run portcullis+policies "$PC_PORT" "$USER_PW" "$mode" "$c")
            p=${TPS[$mode.$c]}
            [ -n "$q" ] || { echo "pgbench failed:"; cat "$WORK/pgbench.err"; exit 1; }
            printf "%-9s %-8s %14s %14s %7.1f%% %16.1f\n" "$mode" "$c" "$p" "$q" \
                "$(echo "(1 - $q / $p) * 100" | bc -l)" "$(echo "$c * 1000000 / $q - $c * 1000000 / $p" | bc -l)"
        done
    done
    PGPASSWORD="$USER_PW" psql -X -A -t -h 127.0.0.1 -p "$PC_PORT" -U app -c "select abalance from pgbench_accounts limit 1" app |
        grep -qx '' && echo "(mask verified: abalance comes back NULL)"
fi
if [ "$COUNTS" = 1 ] && [ -s "$COUNT_LOG" ]; then
    echo
    echo "per transaction, whole proxy process (perf stat -p; instructions split user/kernel):"
    cat "$COUNT_LOG"
fi
RECORDS=$("$BIN" logs --spool "$WORK/pc/spool" | wc -l)
echo
echo "audit records spooled by Portcullis during the run: $RECORDS"
echo "machine: $(nproc) CPUs; pgbench -S, $DURATION s per run, scale $SCALE"
