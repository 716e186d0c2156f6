"""The worker's web endpoints against a real broker: /metrics after a replay, /health, /ready."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from kafka_helpers import metric_total, produce, read_topic, run, scrape_metrics, wait_until_drained

pytestmark = pytest.mark.kafka


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_metrics_count_what_a_replay_processed(wirewatch_settings, wirewatch_env, start_worker, seed_page):
    start_worker(wirewatch_env)
    port = int(wirewatch_env["WIREWATCH_WEB_PORT"])
    fetched = datetime.now(timezone.utc).replace(microsecond=0)
    for snapshot in (fetched, fetched + timedelta(minutes=5)):
        envelope = {"source": "seed", "url": "https://example.org/b", "fetched_at": snapshot.isoformat(), "body": seed_page}
        run(produce(wirewatch_settings, wirewatch_settings.topic_raw, orjson.dumps(envelope), key=b"https://example.org/b"))
    run(produce(wirewatch_settings, wirewatch_settings.topic_raw, b"\xff\xfe broken", key=b"scraper-9"))
    stages = wirewatch_settings.stage_topics()
    run(read_topic(wirewatch_settings, wirewatch_settings.topic_alerts, at_least=1))
    run(wait_until_drained(wirewatch_settings, stages))

    found = scrape_metrics(port)
    assert metric_total(found, "wirewatch_raw_messages_total", source="seed") == 2
    assert metric_total(found, "wirewatch_raw_messages_total") == 3
    assert metric_total(found, "wirewatch_raw_bytes_total", source="seed") == 2 * len(
        orjson.dumps({"source": "seed", "url": "https://example.org/b", "fetched_at": fetched.isoformat(), "body": seed_page})
    )
    assert metric_total(found, "wirewatch_briefs_emitted_total") == 8
    assert metric_total(found, "wirewatch_briefs_emitted_total", kind="lead", section="Buitenland") == 1
    assert metric_total(found, "wirewatch_duplicate_briefs_total") == 8
    assert metric_total(found, "wirewatch_dead_letters_total", reason="invalid_utf8") == 1
    assert metric_total(found, "wirewatch_parse_duration_seconds_count") == 3
    assert metric_total(found, "wirewatch_processing_lag_seconds_count") == 8
    assert metric_total(found, "wirewatch_event_lag_seconds_count") == 7, "the lead has no published_at"
    # The seed's 8 briefs make 4 stories: Davos (the 4 Greenland briefs and von der Leyen), the North Korea
    # lead, the Japanese reactor and Witkoff's trip. Von der Leyen's brief, two hours before the Greenland
    # ones, joins their story when it reaches the story stage after two of them, and otherwise opens a fifth
    # that the Greenland story absorbs: which depends on how the candidate partitions interleave.
    assert metric_total(found, "wirewatch_stories_opened_total") in (4, 5)
    assert metric_total(found, "wirewatch_stories_active") == 4
    assert metric_total(found, "wirewatch_alerts_raised_total") == 1
    assert metric_total(found, "wirewatch_table_entries", table="brief-first-seen") == 8
    assert metric_total(found, "wirewatch_build_info") == 1
    for (name, labels), _ in found.items():
        assert not any(key in ("id", "brief_id", "story_id", "alert_id") for key, _ in labels), name
    # The lag reading covers every partition of the source topics, and everything is committed.
    deadline = time.monotonic() + 30
    while True:
        lags = {labels: value for (name, labels), value in scrape_metrics(port).items()
                if name == "wirewatch_consumer_lag_records"}
        if len(lags) == 3 * 3 and not any(lags.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(lags) == 3 * 3 and sum(lags.values()) == 0, lags

    # The desk page and its data answer on the same port.
    status, page = get(port, "/")
    assert status == 200 and b"wirewatch desk" in page
    deadline = time.monotonic() + 30
    while True:
        desk = json.loads(get(port, "/api/desk")[1])
        if desk["spikes"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [spike["topic"] for spike in desk["spikes"]] == ["greenland"]


def test_health_and_ready(wirewatch_env, start_worker):
    worker = start_worker(wirewatch_env)
    port = int(wirewatch_env["WIREWATCH_WEB_PORT"])
    assert get(port, "/health") == (200, b'{"status":"ok"}')
    deadline = time.monotonic() + 30
    while (status := get(port, "/ready"))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert status[0] == 200, status
    assert json.loads(status[1])["status"] == "ready"
    # Read-only: nothing on the web port accepts writes.
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/desk", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    assert worker.process.poll() is None
