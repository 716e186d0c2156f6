"""Deployment files: Prometheus rules (promtool), Grafana dashboards, and the metrics they query."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wirewatch.service.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool comes with Debian's prometheus package, which bin/setup installs as root"
)


def exported_names() -> set[str]:
    """Every sample name a worker can export, by metric type."""
    names = {"up"}
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def queried_names(expression: str) -> set[str]:
    return set(re.findall(r"\b(wirewatch_[a-z0-9_]+|up)\b", expression))


def rule_expressions() -> list[str]:
    expressions = []
    for path in (DEPLOY / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            expressions.extend(rule["expr"] for rule in group["rules"])
    return expressions


def dashboards() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))]


def dashboard_expressions() -> list[str]:
    return [target["expr"] for board in dashboards() for panel in board["panels"] for target in panel["targets"]]


@needs_promtool
def test_rules_are_valid():
    result = subprocess.run([PROMTOOL, "check", "rules", *map(str, (DEPLOY / "prometheus" / "rules").glob("*.yml"))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_pass():
    tests = DEPLOY / "prometheus" / "tests"
    result = subprocess.run([PROMTOOL, "test", "rules", *map(str, tests.glob("*.yml"))], capture_output=True,
                            text=True, cwd=tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_unit_test():
    rules = {rule["alert"] for path in (DEPLOY / "prometheus" / "rules").glob("*.yml")
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]}
    tested = {case["alertname"] for path in (DEPLOY / "prometheus" / "tests").glob("*.yml")
              for test in yaml.safe_load(path.read_text())["tests"] for case in test.get("alert_rule_test", [])}
    assert rules <= tested


@pytest.mark.parametrize("expression", rule_expressions() + dashboard_expressions())
def test_queried_metrics_are_exported(expression):
    names = queried_names(expression)
    assert names, f"no metric in {expression!r}"
    assert names <= exported_names(), names - exported_names()


def test_dashboards_are_provisionable():
    uids = set()
    for board in dashboards():
        assert board["uid"] and board["uid"] not in uids
        uids.add(board["uid"])
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "wirewatch.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


REPO = DEPLOY.parent
VENV_BIN = Path(sys.executable).parent


def test_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mirrors_the_local_scripts():
    from wirewatch.service.kafka import external_topics
    from wirewatch.settings import Settings

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    kafka_version = re.search(r"<kafka.version>(.+)</kafka.version>", (DEPLOY / "kafka" / "pom.xml").read_text())[1]
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version}"
    assert services["topics"]["image"] == f"apache/kafka:{kafka_version}"
    local = (DEPLOY / "kafka" / "local-kafka.sh").read_text()
    for setting in ("log.retention.ms=-1", "group.initial.rebalance.delay.ms=0", "process.roles=broker,controller",
                    "message.max.bytes=16777216"):
        key, value = setting.split("=")
        assert setting in local
        assert services["kafka"]["environment"]["KAFKA_" + key.upper().replace(".", "_")] == value
    created = re.search(r"for topic in ([^;]+);", services["topics"]["command"][0])[1].split()
    assert created == external_topics(Settings(_env_file=None))
    assert services["producer"]["entrypoint"] == ["/app/bin/produce-samples"]
    assert "bin/produce-samples" in (REPO / "bin" / "demo").read_text()
    assert services["worker"]["ports"] == ["6066:6066"]
    # Alertmanager: the routing the local script uses, and the worker delivering to it.
    assert "./deploy/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in services["alertmanager"]["volumes"]
    assert "--cluster.listen-address=" in services["alertmanager"]["command"]
    assert "--cluster.listen-address=" in (DEPLOY / "alertmanager" / "local-alertmanager.sh").read_text()
    assert services["worker"]["environment"]["WIREWATCH_ALERTMANAGER_URL"] == "http://alertmanager:9093"
    assert "local-alertmanager.sh" in (REPO / "bin" / "demo").read_text()


def test_dockerfile_is_pinned_and_unprivileged():
    dockerfile = (REPO / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert bases and all(re.search(r":\d+\.\d+\.\d+", base) for base in bases)
    assert re.search(r"^USER 10001$", dockerfile, re.M)


def test_kubernetes_manifests_are_valid():
    manifests = sorted(map(str, (DEPLOY / "k8s").glob("*.yaml")))
    result = subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", *manifests], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_statefulset_wiring():
    statefulset = yaml.safe_load((DEPLOY / "k8s" / "statefulset.yaml").read_text())
    config = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())["data"]
    pod = statefulset["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    env = {item["name"]: item for item in container["env"]}
    assert env["WIREWATCH_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert config["WIREWATCH_STORE"] == "rocksdb://" and mounts["data"] == config["WIREWATCH_DATA_DIR"]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == config["WIREWATCH_WEB_PORT"]
