"""The control plane over TLS (tls: {cert, key}) with ctl verifying the certificate."""

import json
import os
import ssl
import subprocess
import http.client

import pytest

from cpharness import ControlPlane
from harness import portcullis_path, wait_until


def make_cert(d):
    cert, key = os.path.join(d, "cp.crt"), os.path.join(d, "cp.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def test_tls(tmp_path):
    cert, key = make_cert(str(tmp_path))
    cp = ControlPlane(extra_config=f"tls: {{cert: {cert}, key: {key}}}\n", wait=False)
    try:
        ctx = ssl.create_default_context(cafile=cert)

        def up():
            try:
                c = http.client.HTTPSConnection("127.0.0.1", cp.port, context=ctx, timeout=5)
                c.request("GET", "/health")
                return c.getresponse().status == 200
            except OSError:
                assert cp.proc.poll() is None, "\n".join(cp.raw_stderr)
                return False

        wait_until(up, timeout=15, what="TLS control plane")
        c = http.client.HTTPSConnection("127.0.0.1", cp.port, context=ctx, timeout=5)
        c.request("GET", "/v1/revision", headers={"Authorization": f"Bearer {cp.admin_token}"})
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"revision": 0}
        url = f"https://127.0.0.1:{cp.port}"
        r = subprocess.run([portcullis_path(), "ctl", "--url", url, "--token", cp.admin_token,
                            "--cacert", cert, "get", "revision"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr
        # Without the CA the certificate is refused.
        r = subprocess.run([portcullis_path(), "ctl", "--url", url, "--token", cp.admin_token,
                            "get", "revision"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
    finally:
        cp.close()


def test_tls_missing_files_exit_2(tmp_path):
    cfg = tmp_path / "cp.yaml"
    cfg.write_text("admin_token: 0123456789abcdef0123\n"
                   f"tls: {{cert: {tmp_path}/none.crt, key: {tmp_path}/none.key}}\n")
    r = subprocess.run([portcullis_path(), "controlplane", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "tls.cert" in r.stderr


def test_connector_trusts_control_plane_through_ca_file(tmp_path, connector, pg_server,
                                                        free_port):
    """control_plane.ca_file: the connector verifies an https control plane against the
    operator's CA; without it the self-signed certificate is refused and it stays unready."""
    from harness import pg_listener, pg_user
    import yaml

    cert, key = make_cert(str(tmp_path))
    cp = ControlPlane(extra_config=f"tls: {{cert: {cert}, key: {key}}}\n", wait=False)
    url = f"https://127.0.0.1:{cp.port}"

    def ctl(*args):
        return subprocess.run([portcullis_path(), "ctl", "--url", url, "--token", cp.admin_token,
                               "--cacert", cert, *args], capture_output=True, text=True,
                              timeout=30)

    try:
        wait_until(lambda: ctl("get", "revision").returncode == 0, timeout=15,
                   what="TLS control plane")
        port = free_port()
        objects = tmp_path / "objects.yaml"
        objects.write_text(yaml.safe_dump({"resources": [pg_server.resource()],
                                           "listeners": [pg_listener(port)],
                                           "users": [pg_user()]}))
        r = ctl("apply", "-f", str(objects))
        assert r.returncode == 0, r.stderr
        tokens = {}
        for name in ("with-ca", "without-ca"):
            r = ctl("connectors", "create", name)
            assert r.returncode == 0, r.stderr
            tokens[name] = r.stdout.strip()

        trusted = connector(None, wait_ready=True, ready_timeout=30, config={
            "instance_name": "with-ca",
            "control_plane": {"config_dir": None, "url": url, "token": tokens["with-ca"],
                              "ca_file": cert}})
        assert trusted.ready_status() == 200

        untrusted = connector(None, wait_ready=False, config={
            "instance_name": "without-ca",
            "control_plane": {"config_dir": None, "url": url, "token": tokens["without-ca"]}})
        wait_until(lambda: any("certificate" in json.dumps(rec).lower()
                               for rec in untrusted.log_lines()),
                   timeout=30, what="certificate refusal logged")
        assert untrusted.ready_status() == 503
        assert not any(tokens["without-ca"] in line for line in map(json.dumps,
                                                                  untrusted.log_lines()))
    finally:
        cp.close()
