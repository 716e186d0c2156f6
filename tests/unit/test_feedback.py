"""Editors' verdicts: how they fade, how they move a topic's bar, and what they say of the alerts."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from wirewatch.core.feedback import MAX_LEVEL, FeedbackLedger, Verdict, editors_precision
from wirewatch.core.spikes import DetectorConfig
from wirewatch.offline.backtest import read_counts

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)


def verdict(topic: str, kind: str, days: float = 0.0, alert: str = "alert-1", desk: str = "all") -> Verdict:
    return Verdict(alert_id=alert, topic=topic, verdict=kind, desk=desk, at=T0 + timedelta(days=days))


def test_noise_verdicts_raise_a_level_that_fades_is_bounded_and_useful_ones_lower():
    ledger = FeedbackLedger()
    now = T0.timestamp()
    assert ledger.level("greenland", now) == 0.0
    for serial in range(3):
        ledger.record(verdict("greenland", "noise", alert=f"alert-{serial}"))
    assert ledger.level("greenland", now) == pytest.approx(3.0)
    assert ledger.level("greenland", now + 7 * 86400) == pytest.approx(1.5)  # a week halves it
    ledger.record(verdict("greenland", "useful", alert="alert-9"))
    assert ledger.level("greenland", now) == pytest.approx(2.0)
    for serial in range(20):
        ledger.record(verdict("denmark", "noise", alert=f"alert-{serial}"))
    assert ledger.level("denmark", now) == MAX_LEVEL
    assert ledger.level("other", now) == 0.0


def test_a_verdict_read_again_counts_once_and_only_the_newest_are_kept():
    ledger = FeedbackLedger(kept=3)
    for _ in range(2):  # the topic followed again after a lost connection
        ledger.record(verdict("greenland", "noise", alert="alert-1"))
    assert ledger.level("greenland", T0.timestamp()) == pytest.approx(1.0)
    for serial in range(2, 6):
        ledger.record(verdict("greenland", "useful", days=serial, alert=f"alert-{serial}"))
    assert sorted(alert for _, alert, _ in ledger.verdicts["greenland"]) == ["alert-3", "alert-4", "alert-5"]


@pytest.mark.parametrize("field, value", [("verdict", "meh"), ("alert_id", "<script>"), ("desk", "a b"), ("topic", "")])
def test_a_verdict_is_checked(field, value):
    document = {"alert_id": "alert-0a1b", "topic": "greenland", "verdict": "noise", "desk": "all", "at": T0.isoformat()}
    with pytest.raises(ValidationError):
        Verdict.model_validate({**document, field: value})


def test_editors_precision_counts_each_editors_last_verdict():
    report = editors_precision([
        verdict("greenland", "noise", 0, "alert-1", "foreign"),
        verdict("greenland", "useful", 0.1, "alert-1", "foreign"),  # changed their mind
        verdict("greenland", "noise", 0, "alert-2", "foreign"),
        verdict("weather", "useful", 0, "alert-3", "all"),
    ])
    assert report["alerts_judged"] == 3
    assert report["by_topic"]["greenland"] == {"useful": 1, "noise": 1, "precision": 0.5}
    assert report["by_desk"]["all"]["precision"] == 1.0


def series(bursts: dict[int, int], days: int = 6) -> str:
    lines = ["timestamp,count"]
    for index in range(days * 288):
        moment = T0 + timedelta(minutes=5 * index)
        lines.append(f"{moment.isoformat()},{10 + bursts.get(index, 0)}")
    return "\n".join(lines)


def test_a_topic_called_noise_needs_a_bigger_burst_and_the_reason_says_so():
    # A burst that lifts a half hour by two thirds and holds for an hour, four days in; and one that quadruples
    # a half hour a day later.
    bursts = {4 * 288 + step: 8 for step in range(1, 12)} | {4 * 288: 40, 5 * 288: 200}
    rows = read_counts(io.StringIO(series(bursts)), default_topic="greenland")
    config = DetectorConfig()

    def raised(level: float) -> list:
        from wirewatch.core.engine import EngineState, SpikeTracker

        tracker = SpikeTracker(config, EngineState.in_memory(config))
        tracker.noise_level = lambda topic, at: level
        alerts = []
        for row in rows:
            alerts += tracker.observe({row.topic: row.count}, row.timestamp, "series", None)
        return [alert for alert in alerts if alert.revision == 1 and alert.escalation == 0]

    plain, noisy = raised(0.0), raised(3.0)
    assert [a.detected_at.day for a in plain] == [6, 7]
    assert [a.detected_at.day for a in noisy] == [7]  # the small one is held back, the big one still heard
    assert "editors called it noise" in noisy[0].reason


def test_evaluate_feedback_reads_verdicts_from_tail_lines(tmp_path):
    path = tmp_path / "feedback.jsonl"
    lines = [{"topic": "wire.feedback", "value": json.loads(verdict("greenland", "noise").model_dump_json())},
             json.loads(verdict("weather", "useful", alert="alert-2").model_dump_json())]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = subprocess.run([sys.executable, "-m", "wirewatch", "evaluate", "--feedback", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["by_topic"]["greenland"]["precision"] == 0.0
    missing = subprocess.run([sys.executable, "-m", "wirewatch", "evaluate"], capture_output=True, text=True)
    assert missing.returncode == 2 and "--feedback" in missing.stderr
