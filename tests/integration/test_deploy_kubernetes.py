"""deploy/helm/portcullis and deploy/kubernetes (issue 7 item 4): the manifests
rendered from the chart's values are current, parse, and hold the probes, ports,
spool volume, rolling-update strategy, discovery Service, RBAC, PDB and the token
Secret reference; the rendered connector configuration is accepted by the binary."""

import importlib.util
import os
import subprocess
import sys

import pytest
import yaml

from harness import REPO
from test_deploy_docker import run_config_text

RENDER = os.path.join(REPO, "deploy", "kubernetes", "render.py")
RENDERED = os.path.join(REPO, "deploy", "kubernetes", "portcullis.yaml")
CHART = os.path.join(REPO, "deploy", "helm", "portcullis")


def render(*args):
    return subprocess.run(["/usr/bin/python3", RENDER, *args], capture_output=True, text=True,
                          timeout=60)


def load(text):
    docs = [d for d in yaml.safe_load_all(text) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}, docs


def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, (kind, len(found))
    return found[0]


def connector_config(docs):
    cm = one(docs, "ConfigMap")
    return yaml.safe_load(cm["data"]["connector.yaml"]), cm["data"]["connector.yaml"]


@pytest.fixture(scope="module")
def manifests():
    with open(RENDERED) as f:
        return load(f.read())[1]


def duration_s(text):
    assert text.endswith("s") and text[:-1].isdigit(), text
    return int(text[:-1])


def test_checked_in_manifests_are_current():
    r = render("--check")
    assert r.returncode == 0, r.stderr


def test_chart_version_follows_version_file(manifests):
    with open(os.path.join(REPO, "VERSION")) as f:
        version = f.read().strip()
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    assert chart["appVersion"] == version and chart["version"] == version
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"portcullis:{version}"


def test_deployment_strategy_probes_ports(manifests):
    dep = one(manifests, "Deployment")
    spec = dep["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["strategy"]["rollingUpdate"]["maxSurge"] >= 1
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["health"] == 8080 and ports["etcd-client"] == 2379 and ports["etcd-peer"] == 2380
    assert ports["pg"] == 5433

    def probe_target(p):
        port = p["httpGet"]["port"]
        return p["httpGet"]["path"], ports[port] if isinstance(port, str) else port
    assert probe_target(c["startupProbe"]) == ("/health", 8080)
    assert probe_target(c["livenessProbe"]) == ("/health", 8080)
    assert probe_target(c["readinessProbe"]) == ("/ready", 8080)
    # The startup probe gives the connector time to load its configuration.
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 30

    cfg, _ = connector_config(manifests)
    assert cfg["health"]["listen"].endswith(":8080")
    assert cfg["cluster"]["client_port"] == 2379 and cfg["cluster"]["peer_port"] == 2380


def test_grace_period_exceeds_drain_timeout(manifests):
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    cfg, _ = connector_config(manifests)
    (c,) = pod["containers"]
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # SIGKILL must never cut the drain short: the grace period covers the preStop
    # sleep, the drain and a margin for the remaining shutdown steps.
    assert pod["terminationGracePeriodSeconds"] >= \
        int(pre_stop[1]) + duration_s(cfg["shutdown"]["drain_timeout"]) + 10


def test_spool_volume_and_non_root(manifests):
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    cfg, _ = connector_config(manifests)
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    spool_vol = mounts[cfg["log_spool"]["dir"]]
    vol = [v for v in pod["volumes"] if v["name"] == spool_vol][0]
    assert vol["emptyDir"]["sizeLimit"] == "10Gi"
    assert cfg["log_spool"]["max_bytes"] == "10GiB"
    assert mounts[cfg["cluster"]["data_dir"]]  # etcd data on a writable volume
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_token_from_secret_never_inline(manifests):
    (c,) = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    ref = env["PORTCULLIS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] and ref["key"]
    cfg, _ = connector_config(manifests)
    assert cfg["control_plane"]["token"] == "${PORTCULLIS_TOKEN}"
    assert not [d for d in manifests if d["kind"] == "Secret"]


def test_services_discovery_rbac_pdb(manifests):
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    services = [d for d in manifests if d["kind"] == "Service"]
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1
    h = headless[0]
    assert h["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in h["spec"]["ports"]} == {2379, 2380}
    cfg, _ = connector_config(manifests)
    ns = h["metadata"]["namespace"]
    assert cfg["cluster"]["discovery"]["mode"] == "dns"
    assert cfg["cluster"]["discovery"]["dns_name"] == \
        f"{h['metadata']['name']}.{ns}.svc.cluster.local"
    for s in services:
        assert all(pod_labels.get(k) == v for k, v in s["spec"]["selector"].items())

    role = one(manifests, "Role")
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert {"get", "list", "watch"} <= rules[("", "endpoints")]
    binding = one(manifests, "RoleBinding")
    sa = one(manifests, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"]
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]

    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert all(pod_labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())


def test_values_override_pvc_and_kubernetes_discovery(tmp_path):
    over = tmp_path / "v.yaml"
    over.write_text(yaml.safe_dump({
        "spool": {"existingClaim": "spool-claim"},
        "cluster": {"discovery": "kubernetes"},
        "telemetry": {"otlpEndpoint": "http://otel:4318", "interval": "15s"},
    }))
    r = render("-f", str(over), "--namespace", "prod", "--release", "edge", "-o", "-")
    assert r.returncode == 0, r.stderr
    _, docs = load(r.stdout)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    spool = [v for v in pod["volumes"] if v["name"] == "spool"][0]
    assert spool == {"name": "spool", "persistentVolumeClaim": {"claimName": "spool-claim"}}
    cfg, _ = connector_config(docs)
    assert cfg["cluster"]["discovery"] == {"mode": "kubernetes", "namespace": "prod",
                                           "service": "edge-portcullis-peers"}
    assert cfg["telemetry"] == {"otlp_endpoint": "http://otel:4318", "interval": "15s"}
    assert one(docs, "Deployment")["metadata"]["name"] == "edge-portcullis"


def test_grace_not_above_drain_refuses_to_render(tmp_path):
    over = tmp_path / "v.yaml"
    over.write_text(yaml.safe_dump({"terminationGracePeriodSeconds": 30,
                                    "shutdown": {"drainTimeoutSeconds": 30}}))
    r = render("-f", str(over), "-o", "-")
    assert r.returncode == 2
    assert "terminationGracePeriodSeconds must exceed" in r.stderr
    over.write_text(yaml.safe_dump({"terminationGracePeriodSeconds": 34,
                                    "shutdown": {"drainTimeoutSeconds": 30}}))
    assert render("-f", str(over), "-o", "-").returncode == 2  # 5 s preStop + 30 s drain


def test_renderer_refuses_unsupported_template_functions():
    spec = importlib.util.spec_from_file_location("pc_render", RENDER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.Renderer({"Values": {"a": {"b": "x"}, "l": [1, 2]}})
    out = r.render_nodes(r.load("k:\n  {{- .Values.a.b | quote | nindent 2 }}\n"
                                "{{- range .Values.l }}\n- {{ . }}{{ end }}\n"), r.root)
    assert out == 'k:\n  "x"\n- 1\n- 2\n'
    with pytest.raises(mod.TemplateError):
        r.render_nodes(r.load("{{ sha256sum .Values.a }}"), r.root)
    with pytest.raises(mod.TemplateError, match="has no"):
        r.load("{{ if .Values.a }}unterminated")
    with pytest.raises(mod.TemplateError, match="unexpected"):
        r.load("{{ end }}")


def test_rendered_connector_config_is_accepted(manifests):
    _, text = connector_config(manifests)
    logs = run_config_text(text, {"POD_NAME": "portcullis-abc", "POD_IP": "127.0.0.1",
                                  "PORTCULLIS_TOKEN": "pc-k8s-token"})
    assert logs[0]["msg"] == "starting" and logs[0]["instance"] == "portcullis-abc"
