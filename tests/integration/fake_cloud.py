"""Small local stand-ins for the orchestrator APIs that cluster discovery reads.

FakeKubernetes: the API server over HTTPS (a self-signed certificate that is
also the service account's ca.crt), checking the Bearer token, answering
GET /api/v1/namespaces/{ns}/endpoints/{name} with an Endpoints object and
GET /api/v1/namespaces/{ns}/pods?labelSelector=... with a PodList, shaped as
the Kubernetes API reference documents them.

FakeEcs: one plain-HTTP server playing three AWS parts:
  * the container credentials endpoint (GET /creds, optionally requiring an
    Authorization token) issuing temporary credentials with a session token
    and an Expiration;
  * the task metadata endpoint v4 (GET /v4/<i>/task: Cluster, TaskARN, no
    ServiceName, as older agents answer);
  * the ECS API (POST /, AWS JSON 1.1): ListTasks (paginated with nextToken)
    and DescribeTasks, after verifying X-Amz-Target, the content type, the
    session token and the SigV4 signature itself with the issued secret.

Both record every request and can be told to fail (status and body).
"""

import datetime
import hashlib
import hmac
import json
import os
import secrets
import ssl
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server:
    """A threaded HTTP(S) server on 127.0.0.1 whose handler calls self.handle()."""

    def __init__(self, tls_ctx=None):
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, obj = outer.handle(self, body)
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", outer.content_type_for(self.path))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _do
            do_POST = _do

        self.content_type = "application/json"
        self.lock = threading.Lock()
        self.requests = []
        self.fail = None  # (status, body) to answer every API call with
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        if tls_ctx:
            self.httpd.socket = tls_ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def content_type_for(self, path):
        return self.content_type

    def record(self, what, ok):
        with self.lock:
            self.requests.append((what, ok))

    def count(self, what=None, ok=None):
        with self.lock:
            return sum(1 for w, o in self.requests
                       if (what is None or w == what) and (ok is None or o == ok))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- Kubernetes ---------------------------------------------------------------------------

def _status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeKubernetes(_Server):
    def __init__(self, tmp_path, ips, namespace="data", service="portcullis",
                 selector="app=portcullis"):
        self.dir = os.path.join(str(tmp_path), "k8s")
        self.sa_dir = os.path.join(self.dir, "serviceaccount")
        os.makedirs(self.sa_dir)
        cert, key = os.path.join(self.dir, "server.crt"), os.path.join(self.dir, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=kubernetes", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        self.token = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(48)
        with open(os.path.join(self.sa_dir, "token"), "w") as f:
            f.write(self.token)
        with open(os.path.join(self.sa_dir, "namespace"), "w") as f:
            f.write(namespace)
        with open(cert) as src, open(os.path.join(self.sa_dir, "ca.crt"), "w") as dst:
            dst.write(src.read())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.namespace, self.service, self.selector = namespace, service, selector
        self.ips = list(ips)
        self.not_ready = set()  # ips listed under notReadyAddresses
        super().__init__(ctx)
        self.url = f"https://127.0.0.1:{self.port}"

    def set_token_file(self, text):
        with open(os.path.join(self.sa_dir, "token"), "w") as f:
            f.write(text)

    def _endpoints(self):
        def addr(i, ip):
            return {"ip": ip, "nodeName": f"node-{i}",
                    "targetRef": {"kind": "Pod", "namespace": self.namespace,
                                  "name": f"portcullis-{i}", "uid": f"uid-{i}"}}
        ready = [addr(i, ip) for i, ip in enumerate(self.ips) if ip not in self.not_ready]
        unready = [addr(i, ip) for i, ip in enumerate(self.ips) if ip in self.not_ready]
        subset = {"ports": [{"name": "etcd-peer", "port": 2380, "protocol": "TCP"}]}
        if ready:
            subset["addresses"] = ready
        if unready:
            subset["notReadyAddresses"] = unready
        obj = {"kind": "Endpoints", "apiVersion": "v1",
               "metadata": {"name": self.service, "namespace": self.namespace,
                            "resourceVersion": "4711"}}
        if ready or unready:
            obj["subsets"] = [subset]
        return obj

    def _pods(self):
        def pod(i, ip, phase="Running", deleting=False):
            meta = {"name": f"portcullis-{i}", "namespace": self.namespace,
                    "labels": {"app": "portcullis"}, "uid": f"uid-{i}"}
            if deleting:
                meta["deletionTimestamp"] = "2026-11-22T03:00:00Z"
            return {"metadata": meta, "spec": {"nodeName": f"node-{i}"},
                    "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
                               "hostIP": "10.0.0.1"}}
        items = [pod(i, ip) for i, ip in enumerate(self.ips)]
        # Pods that must not count: finished, being deleted, not yet scheduled.
        items.append(pod(7, "127.0.0.7", phase="Succeeded"))
        items.append(pod(8, "127.0.0.8", deleting=True))
        items.append({"metadata": {"name": "portcullis-9", "namespace": self.namespace},
                      "status": {"phase": "Pending"}})
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"},
                "items": items}

    def handle(self, req, body):
        u = urllib.parse.urlsplit(req.path)
        what = "endpoints" if "/endpoints/" in u.path else "pods"
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            self.record(what, False)
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if self.fail:
            self.record(what, False)
            return self.fail
        ns = f"/api/v1/namespaces/{self.namespace}/"
        if u.path == ns + f"endpoints/{self.service}":
            self.record(what, True)
            return 200, self._endpoints()
        if u.path == ns + "pods":
            q = urllib.parse.parse_qs(u.query)
            if q.get("labelSelector") != [self.selector]:
                self.record(what, False)
                return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}
            self.record(what, True)
            return 200, self._pods()
        self.record(what, False)
        return 404, _status(404, "NotFound", f"{u.path} not found")


# ---- ECS ------------------------------------------------------------------------------------

REGION = "us-west-2"
ACCOUNT = "111122223333"
CLUSTER_NAME = "pc"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER_NAME}"
SERVICE = "portcullis"
TARGET = "AmazonEC2ContainerServiceV20141113."


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class FakeEcs(_Server):
    def __init__(self, ips, creds_ttl_s=3600, auth_token=None, page_size=2):
        self.ips = list(ips)
        self.tasks = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER_NAME}/{secrets.token_hex(16)}"
                      for _ in self.ips]
        self.creds_ttl_s = creds_ttl_s
        self.auth_token = auth_token
        self.page_size = page_size
        self.issued = {}  # access key -> (secret, session token)
        self.sig_errors = []
        super().__init__()
        self.base = f"http://127.0.0.1:{self.port}"

    def content_type_for(self, path):
        return "application/x-amz-json-1.1" if path == "/" else "application/json"

    def env(self, i):
        """The environment ECS gives task i (credentials and metadata endpoints here)."""
        e = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{self.base}/creds",
             "ECS_CONTAINER_METADATA_URI_V4": f"{self.base}/v4/{i}",
             "AWS_REGION": REGION}
        if self.auth_token:
            e["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = self.auth_token
        return e

    def secrets_issued(self):
        with self.lock:
            return [s for pair in self.issued.values() for s in pair]

    # credentials endpoint
    def _creds(self, req):
        if self.auth_token and req.headers.get("Authorization") != self.auth_token:
            self.record("creds", False)
            return 401, {"code": "Unauthorized", "message": "bad authorization token"}
        ak = "ASIA" + secrets.token_hex(8).upper()
        sk = secrets.token_urlsafe(30)
        tok = "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(60)
        with self.lock:
            self.issued[ak] = (sk, tok)
        self.record("creds", True)
        exp = datetime.datetime.now(datetime.timezone.utc) + \
            datetime.timedelta(seconds=self.creds_ttl_s)
        return 200, {"AccessKeyId": ak, "SecretAccessKey": sk, "Token": tok,
                     "Expiration": _iso(exp), "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/pc-task"}

    def _metadata(self, i):
        self.record("metadata", True)
        return 200, {"Cluster": CLUSTER_ARN, "TaskARN": self.tasks[i], "Family": "portcullis",
                     "Revision": "3", "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
                     "Containers": [{"Name": "portcullis", "DockerId": "x" * 32,
                                     "Networks": [{"NetworkMode": "awsvpc",
                                                   "IPv4Addresses": [self.ips[i]]}]}],
                     "LaunchType": "FARGATE", "AvailabilityZone": f"{REGION}a"}

    def _verify_sigv4(self, req, body):
        """None when the request is signed right with issued credentials, else why not."""
        auth = req.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "no SigV4 Authorization header"
        parts = {}
        for p in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = p.strip().partition("=")
            parts[k] = v
        try:
            ak, date, region, service, term = parts["Credential"].split("/")
            signed = parts["SignedHeaders"].split(";")
            sig = parts["Signature"]
        except (KeyError, ValueError):
            return "malformed Authorization"
        if (region, service, term) != (REGION, "ecs", "aws4_request"):
            return f"bad credential scope {region}/{service}/{term}"
        with self.lock:
            pair = self.issued.get(ak)
        if not pair:
            return "unknown access key"
        secret, token = pair
        if req.headers.get("X-Amz-Security-Token") != token:
            return "missing or wrong X-Amz-Security-Token"
        amz_date = req.headers.get("X-Amz-Date", "")
        if not amz_date.startswith(date):
            return "X-Amz-Date does not match the credential scope"
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > 300:
            return "request time too skewed"
        for must in ("host", "x-amz-date", "x-amz-target", "x-amz-security-token"):
            if must not in signed:
                return f"{must} not signed"
        canon_headers = "".join(f"{h}:{' '.join((req.headers.get(h) or '').split())}\n"
                                for h in signed)
        canon = "\n".join(["POST", "/", "", canon_headers, ";".join(signed),
                           hashlib.sha256(body).hexdigest()])
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{date}/{region}/{service}/aws4_request",
                         hashlib.sha256(canon.encode()).hexdigest()])
        k = _hmac(("AWS4" + secret).encode(), date)
        k = _hmac(_hmac(_hmac(k, region), service), "aws4_request")
        want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            return "signature does not match"
        return None

    def _task(self, i):
        arn = self.tasks[i]
        ip = self.ips[i]
        eni = {"attachmentId": f"att-{i}", "privateIpv4Address": ip}
        container = {"containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{CLUSTER_NAME}/{i}",
                     "taskArn": arn, "name": "portcullis", "lastStatus": "RUNNING",
                     "networkInterfaces": [eni]}
        task = {"taskArn": arn, "clusterArn": CLUSTER_ARN, "group": f"service:{SERVICE}",
                "lastStatus": "RUNNING", "desiredStatus": "RUNNING", "launchType": "FARGATE",
                "containers": [container], "attachments": []}
        # The last task has no ENI attachment (bridge/host network): the container's
        # networkInterfaces must be used.
        if i != len(self.ips) - 1:
            task["attachments"] = [{
                "id": f"att-{i}", "type": "ElasticNetworkInterface", "status": "ATTACHED",
                "details": [{"name": "subnetId", "value": "subnet-0abc"},
                            {"name": "networkInterfaceId", "value": f"eni-{i}"},
                            {"name": "macAddress", "value": "0a:00:00:00:00:01"},
                            {"name": "privateDnsName", "value": f"ip-{i}.internal"},
                            {"name": "privateIPv4Address", "value": ip}]}]
        return task

    def _api(self, req, body):
        target = req.headers.get("X-Amz-Target", "")
        action = target[len(TARGET):] if target.startswith(TARGET) else target
        if req.headers.get("Content-Type") != "application/x-amz-json-1.1":
            self.record(action, False)
            return 400, {"__type": "SerializationException", "message": "bad content type"}
        why = self._verify_sigv4(req, body)
        if why:
            self.sig_errors.append(why)
            self.record(action, False)
            return 400, {"__type": "InvalidSignatureException", "message": why}
        if self.fail:
            self.record(action, False)
            return self.fail
        try:
            q = json.loads(body)
        except ValueError:
            self.record(action, False)
            return 400, {"__type": "SerializationException", "message": "bad JSON"}
        if q.get("cluster") not in (CLUSTER_NAME, CLUSTER_ARN):
            self.record(action, False)
            return 400, {"__type": "ClusterNotFoundException", "message": "Cluster not found."}
        if action == "ListTasks":
            if q.get("serviceName") != SERVICE or q.get("desiredStatus") != "RUNNING":
                self.record(action, False)
                return 400, {"__type": "ServiceNotFoundException",
                             "message": "Service not found."}
            start = int(q.get("nextToken") or 0)
            n = min(self.page_size, int(q.get("maxResults") or 100))
            page = self.tasks[start:start + n]
            out = {"taskArns": page}
            if start + n < len(self.tasks):
                out["nextToken"] = str(start + n)
            self.record(action, True)
            return 200, out
        if action == "DescribeTasks":
            arns = q.get("tasks") or []
            if not arns or len(arns) > 100:
                self.record(action, False)
                return 400, {"__type": "InvalidParameterException",
                             "message": "Tasks cannot be empty."}
            tasks, failures = [], []
            for a in arns:
                if a in self.tasks:
                    tasks.append(self._task(self.tasks.index(a)))
                else:
                    failures.append({"arn": a, "reason": "MISSING"})
            self.record(action, True)
            return 200, {"tasks": tasks, "failures": failures}
        self.record(action, False)
        return 400, {"__type": "UnknownOperationException", "message": target}

    def handle(self, req, body):
        path = urllib.parse.urlsplit(req.path).path
        if req.command == "GET" and path == "/creds":
            return self._creds(req)
        if req.command == "GET" and path.startswith("/v4/") and path.endswith("/task"):
            return self._metadata(int(path.split("/")[2]))
        if req.command == "POST" and path == "/":
            return self._api(req, body)
        return 404, {"message": "not found"}
