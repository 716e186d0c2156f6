"""The ``wirewatch`` command as a user runs it: a subprocess, stdout and stderr apart."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from wirewatch.models import Brief


def wirewatch(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wirewatch", *args], input=stdin, capture_output=True, env=env, timeout=60
    )


def test_parse_prints_one_brief_per_line(seed_page, tmp_path):
    page = tmp_path / "page.txt"
    page.write_text(seed_page, encoding="utf-8")
    result = wirewatch("parse", str(page), "--fetched-at", "2026-01-21T14:40:00+01:00", "--source", "nos")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    briefs = [Brief.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [b.city for b in briefs] == ["WASHINGTON", "STRAATSBURG", "DAVOS", "DAVOS", "DAVOS", "BRUSSEL", "TOKIO", "MOSKOU"]
    assert {b.source for b in briefs} == {"nos"}
    assert briefs[1].published_at.isoformat() == "2026-01-21T14:24:00+01:00"


def test_parse_reads_stdin(seed_page):
    result = wirewatch("parse", "-", "--fetched-at", "2026-01-21T14:40:00Z", stdin=seed_page.encode())
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 8


def test_unparsable_page_exits_1_with_one_line_reason():
    result = wirewatch("parse", "-", stdin=b"nothing that looks like a wire page")
    assert result.returncode == 1
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "no_briefs" in lines[0]
    assert "Traceback" not in result.stderr.decode()


def test_missing_file_exits_2(tmp_path):
    result = wirewatch("parse", str(tmp_path / "absent.txt"))
    assert result.returncode == 2
    assert b"cannot read" in result.stderr and b"Traceback" not in result.stderr


def test_non_utf8_page_exits_1():
    result = wirewatch("parse", "-", stdin=b"\xff\xfe\xfd")
    assert result.returncode == 1 and b"not UTF-8" in result.stderr


def test_naive_fetch_time_is_a_usage_error(seed_page):
    result = wirewatch("parse", "-", "--fetched-at", "2026-01-21T14:40:00", stdin=seed_page.encode())
    assert result.returncode == 2 and b"UTC offset" in result.stderr


def test_rejected_items_are_reported_on_stderr():
    page = b"Meer uit Buitenland\nPARIJS (ANP) -\n4 minuten geledenROME (ANP) - Twee.\n5 minuten geleden"
    result = wirewatch("parse", "-", stdin=page)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1
    assert b"empty_text" in result.stderr


def test_schemas_check_passes_on_the_committed_files():
    result = wirewatch("schemas", "--check")
    assert result.returncode == 0, result.stderr


def test_schemas_check_fails_on_a_stale_folder(tmp_path):
    (tmp_path / "wire.briefs.schema.json").write_text("{}")
    result = wirewatch("schemas", "--check", "--out", str(tmp_path))
    assert result.returncode == 1 and b"out of date" in result.stderr


def test_config_reads_the_environment():
    import os

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092", "WIREWATCH_TOPIC_PARTITIONS": "12"}
    result = wirewatch("config", env=env)
    settings = json.loads(result.stdout)
    assert settings["kafka_bootstrap_servers"] == "kafka-1:9092,kafka-2:9092"
    assert settings["topic_partitions"] == 12


def test_produce_without_a_broker_fails_cleanly(tmp_path, seed_page):
    import os

    from kafka_helpers import free_port

    page = tmp_path / "p.txt"
    page.write_text(seed_page)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "WIREWATCH_BROKER_WAIT_TIMEOUT": "2"}
    result = wirewatch("produce", str(page), env=env)
    assert result.returncode == 1
    assert b"no Kafka broker answered" in result.stderr and b"Traceback" not in result.stderr


def test_cluster_replays_briefs_and_prints_assignments_and_alerts(seed_page, tmp_path):
    parsed = wirewatch("parse", "-", "--fetched-at", "2026-01-21T14:40:00+00:00", stdin=seed_page.encode())
    briefs = tmp_path / "briefs.jsonl"
    briefs.write_bytes(parsed.stdout)
    result = wirewatch("cluster", str(briefs))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assignments = [line for line in lines if line["type"] == "assignment"]
    alerts = [line for line in lines if line["type"] == "alert"]
    assert len(assignments) == 8
    assert {a["topic"] for a in alerts} == {"greenland"}
    greenland = {json.loads(line)["id"] for line in parsed.stdout.splitlines() if "Groenland" in json.loads(line)["text"]}
    assert set(alerts[-1]["brief_ids"]) == greenland
    assert len({a["story_id"] for a in assignments if a["brief_id"] in greenland}) == 1
    assert wirewatch("cluster", str(briefs)).stdout == result.stdout, "replays are deterministic"


def test_cluster_accepts_minimal_lines_and_rejects_bad_ones(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "a", "text": "Japan start een kerncentrale.", "published_at": "2026-01-21T10:00:00Z"}\n')
    result = wirewatch("cluster", str(good))
    assert json.loads(result.stdout) == {"type": "assignment", "brief_id": "a", "story_id": "story-a", "story_label": "japan"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x", "published_at": "2026-01-21T10:00:00Z"}\n{"id": "b", "text": "y"}\n')
    result = wirewatch("cluster", str(bad))
    assert result.returncode == 1
    assert b"bad.jsonl:2" in result.stderr and b"published_at" in result.stderr


def test_backtest_prints_alerts_for_a_burst(tmp_path):
    rows = ["timestamp,count"]
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    for step in range(400):
        count = 0 if step % 3 else 1
        if 300 <= step < 303:
            count = 5
        rows.append(f"{(start + timedelta(minutes=5 * step)).isoformat()},{count}")
    counts = tmp_path / "counts.csv"
    counts.write_text("\n".join(rows))
    result = wirewatch("backtest", str(counts), "--topic", "storm")
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    assert alerts and {a["topic"] for a in alerts} == {"storm"}
    burst = start + timedelta(minutes=5 * 300)
    assert datetime.fromisoformat(alerts[0]["window_start"]) <= burst <= datetime.fromisoformat(alerts[0]["window_end"])


def test_backtest_reports_a_bad_file():
    result = wirewatch("backtest", "-", stdin=b"timestamp,count\nyesterday,3\n")
    assert result.returncode == 1 and b"line 2" in result.stderr


def test_simulate_cluster_and_evaluate(tmp_path):
    out = tmp_path / "sim"
    result = wirewatch("simulate", "--out", str(out), "--hours", "8", "--spikes", "3", "--start", "2026-03-02T06:00:00+00:00")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["spikes"] == 3 and summary["snapshots"] == 96
    assert (out / "pages" / "00000.txt").exists()
    truth = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    assert sum(1 for t in truth if t["type"] == "spike") == 3
    clustered = wirewatch("cluster", str(out / "briefs.jsonl"))
    results = tmp_path / "results.jsonl"
    results.write_bytes(clustered.stdout)
    report = json.loads(wirewatch("evaluate", str(out / "truth.jsonl"), str(results)).stdout)
    assert report["alerts"]["spikes"] == 3
    assert 0 <= report["alerts"]["precision"] <= 1 and 0 <= report["alerts"]["recall"] <= 1
    assert report["stories"]["briefs"] == summary["published_briefs"]
    assert 0 < report["stories"]["bcubed_f1"] <= 1 and report["stories"]["predicted_stories"] >= 1


def test_evaluate_scores_real_labelled_briefs_and_follows_merges(tmp_path):
    labelled = Path(__file__).resolve().parents[1] / "data" / "real-headlines.jsonl"
    results = tmp_path / "results.jsonl"
    results.write_bytes(wirewatch("cluster", str(labelled)).stdout)
    report = json.loads(wirewatch("evaluate", str(labelled), str(results)).stdout)
    assert set(report) == {"stories", "stories_at_arrival"}
    assert report["stories"]["briefs"] == 36 and report["stories"]["true_stories"] == 3
    # A merge line folds the absorbed story into the one that took it: one story left, recall 1.
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    first, second = sorted({line["story_id"] for line in lines if line["type"] == "assignment"})[:2]
    merged = tmp_path / "merged.jsonl"
    merged.write_text(results.read_text() + json.dumps({"type": "merge", "story_id": second, "into": first}) + "\n")
    merged_report = json.loads(wirewatch("evaluate", str(labelled), str(merged)).stdout)
    after = merged_report["stories"]
    assert after["predicted_stories"] == report["stories"]["predicted_stories"] - 1
    # At arrival the briefs stay in the stories they were first given: the merge changes nothing there.
    assert merged_report["stories_at_arrival"] == report["stories_at_arrival"]


def test_evaluate_scores_a_count_series_against_labelled_windows(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"s.csv": [["2026-01-01T10:00:00Z", "2026-01-01T12:00:00Z"],
                                            ["2026-01-02T10:00:00Z", "2026-01-02T12:00:00Z"]]}))
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("".join(json.dumps({"detected_at": moment}) + "\n" for moment in [
        "2026-01-01T10:30:00+00:00", "2026-01-01T11:00:00+00:00",  # the first window, 30 min in
        "2026-01-01T20:00:00+00:00", "2026-01-01T20:50:00+00:00",  # one false episode (50 min apart)
        "2026-01-01T22:00:00+00:00",  # a second one
    ]) + json.dumps({"id": "a1", "revision": 1, "detected_at": "2026-01-02T09:00:00+00:00"}) + "\n"
       + json.dumps({"id": "a1", "revision": 2, "detected_at": "2026-01-02T10:30:00+00:00"}) + "\n")
    report = json.loads(wirewatch("evaluate", str(labels), str(alerts)).stdout)
    assert report["series"] == "s.csv" and report["windows"] == 2 and report["windows_detected"] == 1
    # Alert a1 was raised before the second window and only revised in it: one false page, no detection.
    assert report["false_alert_episodes"] == 3 and report["delays_seconds"] == [1800.0, None]
    missing = wirewatch("evaluate", str(labels), str(alerts), "--series", "other.csv")
    assert missing.returncode == 1 and b"--series" in missing.stderr


def test_evaluate_adds_the_nab_standard_score_given_the_series(tmp_path):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    stamp = lambda row: (start + timedelta(minutes=5 * row)).isoformat().replace("+00:00", "Z")  # noqa: E731
    counts = tmp_path / "s.csv"
    counts.write_text("timestamp,count\n" + "".join(f"{stamp(row)},1\n" for row in range(100)))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"s.csv": [[stamp(40), stamp(49)]]}))

    def nab(*rows: int, profile: str = "nab_standard") -> float:
        alerts = tmp_path / "alerts.jsonl"
        alerts.write_text("".join(json.dumps({"id": f"a{row}", "detected_at": stamp(row)}) + "\n" for row in rows))
        return json.loads(wirewatch("evaluate", str(labels), str(alerts), "--counts", str(counts)).stdout)[profile]

    # 100 rows: the first 15 are probation. A detection on the window's first row earns all, none earns nothing,
    # one on its last row the curve's value a tenth of a width before the end; before any window one costs 0.11.
    assert (nab(40), nab(), nab(10)) == (100.0, 0.0, 0.0)
    curve = lambda p: 2 / (1 + math.exp(5 * p)) - 1  # noqa: E731
    assert nab(49) == pytest.approx(100 * (curve(-0.1) / curve(-1) + 1) / 2, abs=0.01)
    assert nab(20) == pytest.approx(-5.5, abs=0.01)
    assert nab(20, 40) == pytest.approx(94.5, abs=0.01)
    # NAB's profile that rewards a low false-positive rate charges a false detection twice as much.
    assert nab(20, 40, profile="nab_low_fp") == pytest.approx(89.0, abs=0.01)


def test_simulate_needs_somewhere_to_put_the_feed():
    result = wirewatch("simulate")
    assert result.returncode == 2 and b"--out" in result.stderr


def test_config_masks_secrets():
    import os

    env = {**os.environ, "WIREWATCH_KAFKA_SASL_PASSWORD": "hunter2-secret", "WIREWATCH_KAFKA_SASL_USERNAME": "desk"}
    result = wirewatch("config", env=env)
    assert result.returncode == 0
    assert b"hunter2-secret" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["kafka_sasl_password"] == "**********"


def test_json_logs_are_one_object_per_line():
    import logging

    from wirewatch.service.logs import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        import sys as system

        record = logging.LogRecord("wirewatch.topology.app", logging.ERROR, __file__, 1, "failed at %s", ("3/41",), system.exc_info())
    document = json.loads(JsonFormatter().format(record))
    assert document["level"] == "error" and document["message"] == "failed at 3/41"
    assert document["logger"] == "wirewatch.topology.app" and "ValueError: boom" in document["exception"]
