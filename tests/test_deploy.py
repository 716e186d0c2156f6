"""Deployment files: Prometheus rules (promtool), Grafana dashboards, and the metrics they query."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from wirewatch.metrics import Metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
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
