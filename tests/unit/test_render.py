"""The readable one-line form of records that ``wirewatch tail`` prints on a terminal."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from wirewatch.cli.render import human_line
from wirewatch.core.engine import create_engine
from wirewatch.core.parser import parse_page
from wirewatch.core.spikes import expected_text
from wirewatch.models import ClusterInput
from wirewatch.settings import Settings

FETCHED = datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc)


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M")


def test_a_brief_shows_its_time_city_and_first_words(seed_page):
    briefs = parse_page(seed_page, fetched_at=FETCHED, source="seed").briefs
    lead = briefs[0]
    line = human_line("brief", lead.model_dump(mode="json"))
    assert line.startswith(f"{_clock(lead.event_time)}  brief ")
    assert "WASHINGTON" in line
    assert lead.headline[:30] in line
    assert "\n" not in line and len(line) < 120


def test_the_seed_story_and_alert_read_as_count_against_expected(seed_page):
    engine = create_engine(Settings())
    updates, alerts = [], []
    for brief in sorted(parse_page(seed_page, fetched_at=FETCHED, source="seed").briefs, key=lambda b: b.event_time):
        result = engine.process(ClusterInput.from_brief(brief))
        updates.append(result.story)
        alerts += result.alerts
    raised = [alert for alert in alerts if alert.topic == "greenland"]
    assert raised, "the seed page raises its Greenland alert"
    alert = raised[-1]
    line = human_line("alert", alert.model_dump(mode="json"))
    assert line.startswith(f"{_clock(alert.detected_at)}  ALERT ")
    minutes = round((alert.window_end - alert.window_start) / timedelta(minutes=1))
    assert f"greenland  {alert.count} in {minutes} min, {expected_text(alert.baseline)} expected  {alert.severity}" in line

    story = next(update for update in updates if update.id in alert.story_ids and update.brief_count == 4)
    line = human_line("story", story.model_dump(mode="json"))
    assert "4 briefs" in line and "+1" in line
    assert story.title[:40] in line and all(tag in line for tag in story.tags[:2])
    assert alert.title[:40] in human_line("alert", alert.model_dump(mode="json"))


def test_a_drop_says_it_fell():
    line = human_line(
        "alert",
        {
            "topic": "aapl",
            "direction": "drop",
            "count": 2,
            "baseline": 41.5,
            "severity": "medium",
            "window_start": "2026-01-21T10:00:00+00:00",
            "window_end": "2026-01-21T10:30:00+00:00",
            "detected_at": "2026-01-21T10:30:00+00:00",
        },
    )
    assert "aapl  fell to 2 in 30 min, 42 expected  medium" in line


def test_a_dead_letter_names_where_it_came_from_and_why():
    line = human_line(
        "dead_letter",
        {
            "reason": "invalid_utf8",
            "message": "byte 0xff at 3",
            "source_topic": "wire.raw",
            "source_partition": 2,
            "source_offset": 17,
            "failed_at": "2026-01-21T10:30:00+00:00",
        },
    )
    assert "dead   wire.raw 2/17  invalid_utf8: byte 0xff at 3" in line


def test_wire_text_cannot_drive_the_terminal():
    hostile = {"city": "X\x1b[2J", "text": "clear\x1b]0;owned\x07 screen\r\nnext", "event_time": FETCHED.isoformat()}
    line = human_line("brief", hostile)
    assert "\x1b" not in line and "\x07" not in line and "\r" not in line and "\n" not in line
    assert "clear" in line and "screen next" in line


def test_colour_only_when_asked():
    brief = {"city": "GOES", "text": "De gemeente Goes", "event_time": FETCHED.isoformat()}
    assert "\x1b[" not in human_line("brief", brief)
    coloured = human_line("brief", brief, colour=True)
    assert "\x1b[" in coloured and "GOES" in coloured


def test_records_of_other_topics_and_odd_values_still_print():
    assert "my.topic" in human_line("other", {"a": 1}, topic="my.topic")
    assert "not json" in human_line("brief", "not json", topic="wire.briefs")
    assert human_line("alert", {"count": "many", "baseline": "x"}).startswith("--:--")


def test_expected_counts_read_at_a_precision_that_shows_them():
    assert [expected_text(v) for v in (41.5, 4.25, 0.257, 0.004)] == ["42", "4.2", "0.26", "< 0.01"]
