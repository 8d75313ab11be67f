"""deploy/terraform/ecs (issue 7 item 5). No terraform binary here: the tests read
the configuration for its key settings, check that every variable and local it
uses is declared and that braces balance, and render the connector configuration
template the way templatefile() does, then start the binary on it."""

import os
import re

import pytest

from harness import REPO
from test_deploy_docker import run_config_text

TF_DIR = os.path.join(REPO, "deploy", "terraform", "ecs")


def tf_text():
    out = {}
    for name in sorted(os.listdir(TF_DIR)):
        if name.endswith(".tf"):
            with open(os.path.join(TF_DIR, name)) as f:
                out[name] = f.read()
    return out


def strip_comments(text):
    return re.sub(r"(?m)^\s*#.*$", "", text)


def block(text, header):
    """The body of the first block whose header line matches (brace-balanced)."""
    m = re.search(header, text)
    assert m, header
    i = text.index("{", m.end() - 1)
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    raise AssertionError(f"unbalanced block {header}")


@pytest.fixture(scope="module")
def main_tf():
    return strip_comments(tf_text()["main.tf"])


def test_files_balance_and_references_are_declared():
    files = tf_text()
    assert {"main.tf", "variables.tf", "outputs.tf"} <= set(files)
    for name, text in files.items():
        body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', strip_comments(text))
        for o, c in ("{}", "[]", "()"):
            assert body.count(o) == body.count(c), (name, o)
    declared = set(re.findall(r'(?m)^variable "(\w+)"', files["variables.tf"]))
    used = set()
    for text in files.values():
        used |= set(re.findall(r"\bvar\.(\w+)", text))
    assert used <= declared, used - declared
    assert declared <= used, f"unused variables: {declared - used}"
    locals_body = block(files["main.tf"], r"\nlocals\s*\{")
    defined = set(re.findall(r"(?m)^  (\w+)\s*=", locals_body))
    used_locals = set(re.findall(r"\blocal\.(\w+)", files["main.tf"]))
    assert used_locals <= defined


def test_task_definition_fargate_health_check_stop_timeout(main_tf):
    td = block(main_tf, r'resource "aws_ecs_task_definition" "connector"\s*\{')
    assert 'requires_compatibilities = ["FARGATE"]' in td
    assert 'network_mode             = "awsvpc"' in td
    assert re.search(r'command\s*=\s*\["CMD", "portcullis", "healthcheck", "--url", '
                     r'"http://127.0.0.1:8080/ready"\]', td)
    assert re.search(r"stopTimeout\s*=\s*local\.stop_timeout", td)
    assert re.search(r"stop_timeout\s*=\s*var\.drain_timeout_seconds \+ \d+", main_tf)
    for port in (8080, 2379, 2380):
        assert f"containerPort = {port}" in td
    assert '{ name = "PORTCULLIS_TOKEN", valueFrom = var.token_secret_arn }' in td
    assert 'user      = "10001:10001"' in td
    assert "${var.image}:${var.portcullis_version}" in td


def test_spool_volume(main_tf):
    td = block(main_tf, r'resource "aws_ecs_task_definition" "connector"\s*\{')
    assert re.search(r'volume\s*\{\s*name = "spool"\s*\}', td)
    assert '{ sourceVolume = "spool", containerPath = "/var/lib/portcullis/logs" }' in td
    assert re.search(r"ephemeral_storage\s*\{\s*size_in_gib = var\.ephemeral_storage_gib", td)


def test_nlb_health_check_on_8080_health(main_tf):
    assert 'load_balancer_type = "network"' in main_tf
    tg = block(main_tf, r'resource "aws_lb_target_group" "listener"\s*\{')
    hc = block(tg, r"health_check\s*\{")
    assert 'protocol            = "HTTP"' in hc
    assert 'port                = "8080"' in hc
    assert 'path                = "/health"' in hc
    assert "deregistration_delay = var.drain_timeout_seconds" in tg


def test_security_group_etcd_ports_from_itself(main_tf):
    sg = block(main_tf, r'resource "aws_security_group" "connector"\s*\{')
    rules = [block(sg[m.start():], r"ingress\s*\{") for m in re.finditer(r"\bingress\s*\{", sg)]
    etcd = [r for r in rules if "from_port   = 2379" in r]
    assert len(etcd) == 1
    assert "to_port     = 2380" in etcd[0] and "self        = true" in etcd[0]
    assert "cidr_blocks" not in etcd[0]


def test_iam_policy_for_ecs_discovery(main_tf):
    pol = block(main_tf, r'resource "aws_iam_role_policy" "task_discovery"\s*\{')
    assert 'Action   = ["ecs:ListTasks", "ecs:DescribeTasks"]' in pol
    assert "role = aws_iam_role.task.id" in pol
    td = block(main_tf, r'resource "aws_ecs_task_definition" "connector"\s*\{')
    assert "task_role_arn            = aws_iam_role.task.arn" in td


def test_rolling_deployment_settings(main_tf):
    svc = block(main_tf, r'resource "aws_ecs_service" "connector"\s*\{')
    assert "deployment_minimum_healthy_percent = 100" in svc
    assert "deployment_maximum_percent         = 200" in svc
    cb = block(svc, r"deployment_circuit_breaker\s*\{")
    assert "enable   = true" in cb and "rollback = true" in cb
    assert 'launch_type     = "FARGATE"' in svc


def render_tftpl(values):
    """templatefile() for the constructs the template uses: ${var}, $${ (literal ${),
    and %{ if X != "" ~} ... %{ endif ~}."""
    with open(os.path.join(TF_DIR, "connector.yaml.tftpl")) as f:
        text = f.read()

    def directive(m):
        return m.group(2) if values[m.group(1)] != "" else ""
    text = re.sub(r'%\{ if (\w+) != "" ~\}\n(.*?)%\{ endif ~\}\n', directive, text, flags=re.S)
    assert "%{" not in text
    text = re.sub(r"(?<!\$)\$\{(\w+)\}", lambda m: str(values[m.group(1)]), text)
    return text.replace("$${", "${")


@pytest.mark.parametrize("otlp", ["", "http://127.0.0.1:9"])
def test_rendered_connector_config_is_accepted(otlp):
    text = render_tftpl({"control_plane_url": "http://127.0.0.1:9",
                         "drain_timeout_seconds": 30, "spool_max_bytes": "10GiB",
                         "cluster_enabled": "true", "ecs_cluster": "portcullis",
                         "ecs_service": "portcullis", "otlp_endpoint": otlp})
    assert ("telemetry:" in text) == bool(otlp)
    logs = run_config_text(text, {"HOSTNAME": "ip-10-0-0-1", "PORTCULLIS_TOKEN": "tok-ecs"})
    assert logs[0]["msg"] == "starting" and logs[0]["instance"] == "ip-10-0-0-1"
