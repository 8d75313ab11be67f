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
