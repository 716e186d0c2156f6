"""Stories and alerts through the real broker and a real worker."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from kafka_helpers import free_port, metric_total, read_topic, run, scrape_metrics, wait_until_drained
from wirewatch.core.parser import parse_page
from wirewatch.models import Alert, Story
from wirewatch.settings import Settings
from wirewatch.topology.app import changelog_topics, create_app

pytestmark = pytest.mark.kafka


def _produce(path, fetched_at: datetime) -> None:
    subprocess.run(
        [sys.executable, "-m", "wirewatch", "produce", str(path), "--fetched-at", fetched_at.isoformat(), "--source", "seed"],
        check=True,
        capture_output=True,
    )


def _stage_topics(settings) -> list[str]:
    return settings.stage_topics()


def test_the_seed_page_raises_one_greenland_alert_and_a_later_snapshot_none(
    wirewatch_settings, wirewatch_env, start_worker, seed_page, tmp_path
):
    start_worker(wirewatch_env)
    page = tmp_path / "seed.txt"
    page.write_text(seed_page, encoding="utf-8")
    # Fetched now, as a live feed is; the offline tests cover replays of old pages.
    fetched = datetime.now(timezone.utc).replace(microsecond=0)
    _produce(page, fetched)
    run(read_topic(wirewatch_settings, wirewatch_settings.topic_alerts, at_least=1))
    run(wait_until_drained(wirewatch_settings, _stage_topics(wirewatch_settings)))
    first_alerts = [Alert.model_validate_json(r.value) for r in run(read_topic(wirewatch_settings, wirewatch_settings.topic_alerts))]

    briefs = parse_page(seed_page, fetched_at=fetched, source="seed").briefs
    greenland = {b.id for b in briefs if "Groenland" in b.text}
    assert len(greenland) == 4
    assert {a.id for a in first_alerts} == {first_alerts[0].id}, "one spike, one alert (revised as it grows)"
    latest = max(first_alerts, key=lambda a: a.revision)
    assert latest.topic == "greenland"
    assert set(latest.brief_ids) == greenland
    assert latest.count == 4
    assert len(latest.story_ids) == 1

    stories = [Story.model_validate_json(r.value) for r in run(read_topic(wirewatch_settings, wirewatch_settings.topic_stories))]
    assert len(stories) == 8, "one story update per brief"
    assert latest.story_ids[0] in {s.id for s in stories if set(s.brief_ids) >= greenland}

    _produce(page, fetched + timedelta(minutes=5))
    run(wait_until_drained(wirewatch_settings, _stage_topics(wirewatch_settings)))
    assert len(run(read_topic(wirewatch_settings, wirewatch_settings.topic_alerts))) == len(first_alerts)
    assert len(run(read_topic(wirewatch_settings, wirewatch_settings.topic_stories))) == 8


def test_the_stages_can_run_in_separate_workers(wirewatch_settings, wirewatch_env, start_worker, seed_page, tmp_path):
    briefs_only = {**wirewatch_env, "WIREWATCH_STAGES": "briefs", "WIREWATCH_DATA_DIR": str(tmp_path / "briefs")}
    stories_only = {
        **wirewatch_env,
        "WIREWATCH_STAGES": "stories",
        "WIREWATCH_DATA_DIR": str(tmp_path / "stories"),
        "WIREWATCH_WEB_PORT": str(free_port()),
    }
    start_worker(briefs_only)
    story_worker = start_worker(stories_only)
    page = tmp_path / "seed.txt"
    page.write_text(seed_page, encoding="utf-8")
    _produce(page, datetime.now(timezone.utc).replace(microsecond=0))

    alerts = [Alert.model_validate_json(r.value) for r in run(read_topic(wirewatch_settings, wirewatch_settings.topic_alerts, at_least=1))]
    assert {alert.topic for alert in alerts} == {"greenland"}
    assert len(run(read_topic(wirewatch_settings, wirewatch_settings.topic_briefs, at_least=8))) == 8
    # The story stage is a consumer group of its own, and only it holds the story tables.
    stories_settings = Settings(stages="stories")
    run(wait_until_drained(stories_settings, [wirewatch_settings.topic_story_input]))
    story_metrics = scrape_metrics(int(stories_only["WIREWATCH_WEB_PORT"]))
    assert metric_total(story_metrics, "wirewatch_table_entries", table="stories") >= 1
    assert metric_total(story_metrics, "wirewatch_table_entries", table="brief-first-seen") == 0
    assert story_worker.process.poll() is None


def test_a_worker_started_on_a_waiting_feed_sends_every_story_update_once(
    wirewatch_settings, wirewatch_env, start_worker, seed_page, tmp_path
):
    page = tmp_path / "seed.txt"
    page.write_text(seed_page, encoding="utf-8")
    _produce(page, datetime.now(timezone.utc).replace(microsecond=0))
    worker = start_worker(wirewatch_env)

    run(read_topic(wirewatch_settings, wirewatch_settings.topic_alerts, at_least=1))
    run(wait_until_drained(wirewatch_settings, _stage_topics(wirewatch_settings)))
    stories = [Story.model_validate_json(r.value) for r in run(read_topic(wirewatch_settings, wirewatch_settings.topic_stories))]
    assert len(stories) == 8, "one story update per brief: a crashed first batch would be sent again"
    assert "PartitionsMismatch" not in worker.log()
    # Made before Faust started, so that its first group join already assigned their partitions.
    created = next(line for line in worker.log().splitlines() if "wirewatch.service.kafka: created topics " in line)
    changelogs = {spec.name for spec in changelog_topics(create_app(wirewatch_settings).app)}
    assert changelogs <= set(created.split("created topics ", 1)[1].split(", "))
