#!/usr/bin/env bash
# `make demo`: a throwaway PostgreSQL under ./.demo, a connector in front of it
# on 127.0.0.1:5433 with examples/quickstart/ as its config_dir, and the psql
# line to try. Ctrl-C stops everything.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$ROOT/.demo"
BIN="${PORTCULLIS_BIN:-$ROOT/build/portcullis}"
PG_BIN=/usr/lib/postgresql/15/bin
export DEMO_PG_PORT="${DEMO_PG_PORT:-55432}"
export DEMO_APP_PASSWORD="${DEMO_APP_PASSWORD:-app-demo-pw}"
export DEMO_ALICE_PASSWORD="${DEMO_ALICE_PASSWORD:-alice-demo-pw}"
HEALTH="${DEMO_HEALTH_LISTEN:-127.0.0.1:8080}"

[ -x "$BIN" ] || { echo "demo: $BIN not built (run make)" >&2; exit 1; }

# initdb and postgres refuse to run as root: use the postgres OS user then.
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then AS_PG=(runuser -u postgres --); fi

connector_pid=""
cleanup() {
    trap - INT TERM EXIT
    echo
    if [ -n "$connector_pid" ] && kill -0 "$connector_pid" 2>/dev/null; then
        echo "demo: stopping the connector (graceful shutdown, see .demo/connector.log)"
        kill -TERM "$connector_pid" 2>/dev/null || true
        wait "$connector_pid" 2>/dev/null || true
    fi
    if [ -f "$DEMO/pgdata/postmaster.pid" ]; then
        echo "demo: stopping PostgreSQL"
        "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$DEMO/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
trap cleanup INT TERM EXIT

# A previous run that was killed hard may have left its server running.
if [ -f "$DEMO/pgdata/postmaster.pid" ]; then
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$DEMO/pgdata" -m immediate -w stop >/dev/null 2>&1 || true
fi
rm -rf "$DEMO"
mkdir -p "$DEMO"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DEMO"; fi
chmod 755 "$DEMO"
# The postgres user must be able to reach .demo through the checkout.
d="$DEMO"
while [ "$d" != "/" ]; do d="$(dirname "$d")"; [ -x "$d" ] || chmod o+x "$d"; done

echo "demo: creating a PostgreSQL cluster in .demo/pgdata (port $DEMO_PG_PORT)"
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$DEMO/pgdata" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 >"$DEMO/initdb.log" 2>&1 \
    || { cat "$DEMO/initdb.log" >&2; exit 1; }
cat >>"$DEMO/pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $DEMO_PG_PORT
unix_socket_directories = '$DEMO'
password_encryption = 'scram-sha-256'
CONF
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$DEMO/pgdata" -l "$DEMO/postgres.log" -w start >/dev/null \
    || { tail -20 "$DEMO/postgres.log" >&2; exit 1; }

psql_local() { "${AS_PG[@]}" psql -X -q -v ON_ERROR_STOP=1 -h "$DEMO" -p "$DEMO_PG_PORT" "$@"; }
psql_local -U postgres -d postgres \
    -c "CREATE ROLE app LOGIN PASSWORD '$DEMO_APP_PASSWORD'" \
    -c "CREATE DATABASE app OWNER app"
psql_local -U app -d app <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, country text);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace',    'ada@example.com',    'UK'),
  (2, 'Grace Hopper',    'grace@example.com',  'US'),
  (3, 'Alan Turing',     'alan@example.com',   'UK'),
  (4, 'Edsger Dijkstra', 'edsger@example.com', 'NL');
SQL

cat >"$DEMO/connector.yaml" <<YAML
# Written by scripts/demo.sh
instance_name: demo
listen_address: 127.0.0.1
control_plane:
  config_dir: $ROOT/examples/quickstart
health:
  listen: $HEALTH
shutdown:
  drain_timeout: 5s
log_spool:
  dir: $DEMO/spool
  max_bytes: 256MiB
YAML

echo "demo: starting the connector (logs: .demo/connector.log)"
# Its own session: Ctrl-C reaches only this script, which then sends exactly one
# SIGTERM (a second signal would make the connector skip its graceful shutdown).
setsid "$BIN" connector -c "$DEMO/connector.yaml" 2>"$DEMO/connector.log" &
connector_pid=$!

for _ in $(seq 1 100); do
    if "$BIN" healthcheck --url "http://$HEALTH/ready" --timeout 1 >/dev/null 2>&1; then break; fi
    if ! kill -0 "$connector_pid" 2>/dev/null; then
        echo "demo: the connector exited:" >&2
        tail -20 "$DEMO/connector.log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! "$BIN" healthcheck --url "http://$HEALTH/ready" --timeout 1 >/dev/null 2>&1; then
    echo "demo: the connector did not become ready:" >&2
    tail -20 "$DEMO/connector.log" >&2
    exit 1
fi

cat <<MSG

Portcullis is running.
  PostgreSQL (upstream):  127.0.0.1:$DEMO_PG_PORT  (user app; clients never see it)
  Connector:              127.0.0.1:5433
  Health:                 http://$HEALTH/ready  and  /metrics

Try (in another terminal):
  PGPASSWORD=$DEMO_ALICE_PASSWORD psql "host=127.0.0.1 port=5433 user=alice dbname=app" -c 'SELECT * FROM customers'

Audit log:   $BIN logs --spool .demo/spool --follow
Reload:      edit examples/quickstart/*.yaml; the connector applies it within a second.

Press Ctrl-C to stop.
MSG

wait "$connector_pid" || true
connector_pid=""
