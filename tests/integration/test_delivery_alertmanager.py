"""Alerts reach a real Prometheus Alertmanager, and none is lost while it is down."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kafka_helpers import free_port, metric_total, scrape_metrics

pytestmark = pytest.mark.kafka

LOCAL_ALERTMANAGER = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "local-alertmanager.sh"


class LocalAlertmanager:
    def __init__(self, data_dir: Path, config: Path | None = None) -> None:
        self.port = free_port()
        self.env = {**os.environ, "ALERTMANAGER_PORT": str(self.port), "ALERTMANAGER_DATA_DIR": str(data_dir)}
        if config is not None:
            self.env["ALERTMANAGER_CONFIG"] = str(config)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        subprocess.run([str(LOCAL_ALERTMANAGER), "start"], env=self.env, check=True)

    def stop(self) -> None:
        subprocess.run([str(LOCAL_ALERTMANAGER), "stop"], env=self.env, check=False)

    def news_alerts(self) -> list[dict]:
        query = urllib.parse.quote('alertname="NewsSpike"')
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?filter={query}", timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def alertmanager(tmp_path):
    manager = LocalAlertmanager(tmp_path / "alertmanager")
    yield manager
    manager.stop()


def pages(printer: subprocess.Popen, count: int, timeout: float) -> list[dict]:
    """The next ``count`` lines ``wirewatch notifications`` prints, failing after ``timeout`` seconds."""
    found, deadline = [], time.monotonic() + timeout
    while len(found) < count:
        ready, _, _ = select.select([printer.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise AssertionError(f"timed out waiting for page {len(found) + 1} of {count}")
        found.append(json.loads(printer.stdout.readline()))
    return found


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_spike_raised_while_alertmanager_is_down_reaches_its_desk_once_alertmanager_is_up(
    wirewatch_env, start_worker, seed_page, tmp_path, alertmanager
):
    desks = tmp_path / "desks.yaml"
    desks.write_text("desks:\n  foreign:\n    topics: [greenland, denmark]\n  domestic:\n    topics: [utrecht]\n")
    env = {**wirewatch_env, "WIREWATCH_ALERTMANAGER_URL": alertmanager.url,
           "WIREWATCH_DESK_URL": "https://desk.example.org/", "WIREWATCH_WATCHLISTS_FILE": str(desks)}
    start_worker(env)
    port = int(env["WIREWATCH_WEB_PORT"])
    page = tmp_path / "seed.txt"
    page.write_text(seed_page, encoding="utf-8")
    fetched = datetime.now(timezone.utc).replace(microsecond=0)
    subprocess.run([sys.executable, "-m", "wirewatch", "produce", str(page), "--fetched-at", fetched.isoformat(),
                    "--source", "seed"], env={**os.environ, **env}, check=True, capture_output=True)

    # Alertmanager is not running yet: the alert waits, its attempts counted.
    wait_for(lambda: metric_total(scrape_metrics(port), "wirewatch_alert_deliveries_total", outcome="failed") >= 2,
             60, "failed deliveries")
    assert metric_total(scrape_metrics(port), "wirewatch_alert_deliveries_pending") == 1

    alertmanager.start()
    alerts = wait_for(alertmanager.news_alerts, 90, "the alert in Alertmanager")
    assert len(alerts) == 1
    alert = alerts[0]
    labels, annotations = alert["labels"], alert["annotations"]
    assert labels["alertname"] == "NewsSpike" and labels["topic"] == "greenland" and labels["direction"] == "rise"
    assert labels["severity"] in ("medium", "high", "critical") and labels["desk"] == "foreign"
    assert annotations["summary"].startswith("greenland: ")
    assert annotations["desk_url"] == f"https://desk.example.org/?desk=foreign#alert-{labels['alert_id']}"
    assert "expected" in annotations["description"]
    assert alert["status"]["state"] == "active"
    starts = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
    assert (ends - starts).total_seconds() >= 7200 - 60  # it resolves by itself once its cooldown is over

    # Every revision of the spike went to the same Alertmanager alert, and nothing is left waiting.
    metrics = wait_for(lambda: (m := scrape_metrics(port)) and
                       metric_total(m, "wirewatch_alert_deliveries_pending") == 0 and m, 30, "an empty queue")
    assert metric_total(metrics, "wirewatch_alert_deliveries_total", outcome="delivered") >= 1
    assert metric_total(metrics, "wirewatch_alert_deliveries_total", outcome="rejected") == 0
    assert len(alertmanager.news_alerts()) == 1

    # The desk page of the foreign desk shows it; the domestic desk's does not.
    def desk_page(name: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/desk?desk={name}", timeout=10) as response:
            return json.loads(response.read())

    assert [a["topic"] for a in desk_page("foreign")["alerts"]] == ["greenland"]
    assert desk_page("domestic")["alerts"] == []


def test_the_routing_configuration_passes_amtool():
    config = LOCAL_ALERTMANAGER.parent / "alertmanager.yml"
    checked = subprocess.run(["amtool", "check-config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    routed = subprocess.run(["amtool", "config", "routes", "test", "--config.file", str(config),
                             "alertname=NewsSpike", "topic=greenland", "severity=critical", "desk=all"],
                            capture_output=True, text=True)
    assert routed.returncode == 0 and routed.stdout.strip() == "desk", routed.stdout + routed.stderr


def test_mute_mutes_and_unmute_keep_silences_in_alertmanager(alertmanager):
    alertmanager.start()
    env = {**os.environ, "WIREWATCH_ALERTMANAGER_URL": alertmanager.url}

    def wirewatch(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "wirewatch", *args], env=env, capture_output=True, text=True)

    muted = wirewatch("mute", "Greenland", "--for", "1h30m", "--desk", "foreign", "--reason", "known story")
    assert muted.returncode == 0, muted.stderr
    silence = json.loads(muted.stdout)
    assert silence["topic"] == "greenland" and silence["desk"] == "foreign"
    listed = [json.loads(line) for line in wirewatch("mutes").stdout.splitlines()]
    assert [(m["id"], m["topic"], m["desk"], m["comment"]) for m in listed] == [
        (silence["id"], "greenland", "foreign", "known story")]
    assert wirewatch("unmute", silence["id"]).returncode == 0
    assert wirewatch("mutes").stdout == ""
    refused = wirewatch("mute", "greenland", "--for", "soon")
    assert refused.returncode == 2 and "2h" in refused.stderr


@pytest.mark.parametrize("muted", [False, True], ids=["paged", "muted"])
def test_the_seed_alert_pages_a_webhook_through_alertmanager_once_unless_muted(
    wirewatch_env, start_worker, seed_page, tmp_path, muted
):
    webhook_port = free_port()
    config = tmp_path / "alertmanager.yml"
    demo = (LOCAL_ALERTMANAGER.parent / "demo.yml").read_text()
    config.write_text(demo.replace("http://127.0.0.1:9096/", f"http://127.0.0.1:{webhook_port}/"))
    manager = LocalAlertmanager(tmp_path / "alertmanager", config)
    printer = subprocess.Popen([sys.executable, "-m", "wirewatch", "notifications", "--listen",
                                f"127.0.0.1:{webhook_port}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    try:
        manager.start()
        env = {**wirewatch_env, "WIREWATCH_ALERTMANAGER_URL": manager.url}
        if muted:
            silenced = subprocess.run([sys.executable, "-m", "wirewatch", "mute", "greenland", "--for", "1h"],
                                      env={**os.environ, **env}, capture_output=True, text=True)
            assert silenced.returncode == 0, silenced.stderr
        start_worker(env)
        page = tmp_path / "seed.txt"
        page.write_text(seed_page, encoding="utf-8")
        fetched = datetime.now(timezone.utc).replace(microsecond=0)
        subprocess.run([sys.executable, "-m", "wirewatch", "produce", str(page), "--fetched-at", fetched.isoformat(),
                        "--source", "seed"], env={**os.environ, **env}, check=True, capture_output=True)
        if muted:
            # Alertmanager has the alert, silenced: nobody is paged.
            alert = wait_for(manager.news_alerts, 60, "the alert in Alertmanager")[0]
            assert alert["status"]["state"] == "suppressed" and alert["status"]["silencedBy"]
            time.sleep(15)
        else:
            line = pages(printer, 1, 90)[0]
            assert (line["status"], line["topic"], line["desk"]) == ("firing", "greenland", "all")
            assert line["summary"].startswith("greenland: ") and "#alert-" in line["desk_url"]
            time.sleep(15)  # the spike's revisions update the one alert: no second page within the group interval
    finally:
        printer.terminate()
        rest = printer.communicate(timeout=10)[0].decode().splitlines()
        manager.stop()
    assert rest == []


RECENT_GREENLAND = """Meer uit Buitenland
DEN HAAG (ANP) - Het kabinet presenteert zijn plannen voor de woningbouw in het najaar.
3 uur geleden
NUUK (ANP) - De regering van Groenland roept het parlement bijeen over de Amerikaanse koopwens.
3 minuten geleden
KOPENHAGEN (ANP) - Denemarken zegt dat Groenland niet te koop is, na nieuwe uitspraken uit Washington.
2 minuten geleden
WASHINGTON (ANP/RTR) - Het Witte Huis herhaalt dat het Groenland wil kopen en sluit niets uit.
1 minuut geleden
BRUSSEL (ANP) - De Europese Commissie steunt Denemarken in de kwestie-Groenland.
zojuist
"""


def test_a_spike_resolves_by_itself_once_its_cooldown_is_over(wirewatch_env, start_worker, tmp_path):
    webhook_port = free_port()
    config = tmp_path / "alertmanager.yml"
    demo = (LOCAL_ALERTMANAGER.parent / "demo.yml").read_text()
    config.write_text(demo.replace("http://127.0.0.1:9096/", f"http://127.0.0.1:{webhook_port}/")
                      .replace("group_interval: 1m", "group_interval: 10s"))
    manager = LocalAlertmanager(tmp_path / "alertmanager", config)
    printer = subprocess.Popen([sys.executable, "-m", "wirewatch", "notifications", "--listen",
                                f"127.0.0.1:{webhook_port}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    try:
        manager.start()
        # Briefs of the last three minutes and an alert cooldown of 150 s: the spike ends a minute or two from now.
        env = {**wirewatch_env, "WIREWATCH_ALERTMANAGER_URL": manager.url, "WIREWATCH_ALERT_COOLDOWN_SECONDS": "150"}
        start_worker(env)
        page = tmp_path / "recent.txt"
        page.write_text(RECENT_GREENLAND, encoding="utf-8")
        fetched = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        subprocess.run([sys.executable, "-m", "wirewatch", "produce", str(page), "--fetched-at", fetched.isoformat(),
                        "--source", "recent"], env={**os.environ, **env}, check=True, capture_output=True)
        paged = pages(printer, 2, 300)
    finally:
        printer.terminate()
        printer.communicate(timeout=10)
        manager.stop()
    assert [(p["status"], p["topic"]) for p in paged] == [("firing", "greenland"), ("resolved", "greenland")]
