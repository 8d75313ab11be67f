#!/usr/bin/python3
"""Memory an idle PostgreSQL client session costs in the connector.

Starts a throwaway PostgreSQL (max_connections raised) and a connector (the
release build by default), opens N authenticated sessions through it that stay
idle, and prints the connector's RSS growth per session.

    /usr/bin/python3 bench/pg_idle_sessions.py [N] [--tls]   # default 1000, plaintext
    PORTCULLIS_BIN=build/portcullis /usr/bin/python3 bench/pg_idle_sessions.py 200
"""
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("PORTCULLIS_BIN", os.path.join(ROOT, "build-release", "portcullis"))

import psycopg  # noqa: E402

import harness  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    args = [a for a in sys.argv[1:] if a != "--tls"]
    tls = "--tls" in sys.argv[1:]
    n = int(args[0]) if args else 1000
    pg = harness.Postgres()
    conns = []
    c = None
    try:
        with open(os.path.join(pg.datadir, "postgresql.conf"), "a") as f:
            f.write(f"\nmax_connections = {n + 20}\n")
        pg.stop()
        pg.start()
        port = harness.free_port()
        config = {"log_level": "warn"}
        if tls:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=127.0.0.1", "-keyout", f"{pg.base}/k.pem",
                            "-out", f"{pg.base}/c.pem"], check=True, capture_output=True)
            config["tls"] = {"cert": f"{pg.base}/c.pem", "key": f"{pg.base}/k.pem"}
        c = harness.Connector({"resources": [pg.resource()],
                               "listeners": [harness.pg_listener(port, tls="optional")],
                               "users": [harness.pg_user()]},
                              config=config)
        dsn = (f"host=127.0.0.1 port={port} user=alice password={harness.USER_PASSWORD} "
               f"dbname=app sslmode={'require' if tls else 'disable'}")
        # warm up pools and lazily built state, then measure
        for _ in range(20):
            with psycopg.connect(dsn) as w:
                w.execute("select 1")
        time.sleep(0.5)
        base = rss_kb(c.proc.pid)
        for _ in range(n):
            conn = psycopg.connect(dsn, autocommit=True)
            conn.execute("select 1")
            conns.append(conn)
        time.sleep(1.0)
        after = rss_kb(c.proc.pid)
        per = (after - base) * 1024 / n
        print(f"{n} idle {'TLS' if tls else 'plaintext'} sessions: connector RSS {base} kB -> {after} kB, "
              f"{per / 1024:.1f} KiB per session")
    finally:
        for conn in conns:
            conn.close()
        if c:
            c.close()
        pg.close()


if __name__ == "__main__":
    main()
