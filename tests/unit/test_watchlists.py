"""Desks and what each follows: which alerts and stories a watchlist gives a desk, and a file that changes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wirewatch.core.watchlists import DEFAULT_DESK, WatchlistFile, Watchlists, load_watchlists
from wirewatch.errors import ConfigError
from wirewatch.service.desk import DeskView

DESKS = """
desks:
  foreign:
    topics: [Greenland, denmark]
    places: [NUUK]
    min_severity: medium
  economy:
    topics: [shilling]
    sections: [Economie]
    languages: [en]
  night:
    min_severity: critical
"""

GREENLAND = {"id": "a1", "topic": "greenland", "related_topics": ["united states"], "label": "donald trump · davos",
             "severity": "high", "cities": ["DAVOS"], "sections": ["Buitenland"], "languages": ["nl"], "count": 4}


@pytest.fixture
def watchlists(tmp_path) -> Watchlists:
    path = tmp_path / "desks.yaml"
    path.write_text(DESKS)
    return load_watchlists(str(path))


def test_an_alert_goes_to_the_desks_that_follow_what_it_is_about(watchlists):
    assert watchlists.desks_for_alert(GREENLAND) == ["foreign"]
    # Named by a city of one of its briefs, by its section in the desk's language, or critical for the night desk.
    assert watchlists.desks_for_alert(GREENLAND | {"topic": "ice", "related_topics": [], "cities": ["NUUK"]}) == ["foreign"]
    economy = {"topic": "rates", "severity": "medium", "sections": ["economie"], "languages": ["en"]}
    assert watchlists.desks_for_alert(economy) == ["economy"]
    assert watchlists.desks_for_alert(economy | {"languages": ["nl"]}) == [DEFAULT_DESK]
    assert watchlists.desks_for_alert(GREENLAND | {"severity": "critical"}) == ["foreign", "night"]
    assert watchlists.desks_for_alert({"topic": "weather", "severity": "medium"}) == [DEFAULT_DESK]


def test_a_story_goes_to_the_desks_that_follow_its_topics(watchlists):
    assert watchlists.desks_for_story({"label": "greenland · nuuk", "topics": {"greenland": 2.0}}) == ["foreign", "night"]
    assert watchlists.desks_for_story({"label": "tulips", "topics": {"tulips": 1.0}}) == ["night"]


@pytest.mark.parametrize("text, problem", [
    ("desks: [", "not YAML"),
    ("desks:\n  foreign:\n    topicz: [x]\n", "desks.foreign.topicz"),
    ("desks:\n  foreign:\n    min_severity: urgent\n", "min_severity must be one of"),
    ("desks:\n  all:\n    topics: [x]\n", "not 'all'"),
    ("desks:\n  'two words':\n    topics: [x]\n", "letters, digits"),
])
def test_a_broken_file_is_a_clear_error(tmp_path, text, problem):
    path = tmp_path / "desks.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as broken:
        load_watchlists(str(path))
    assert problem in str(broken.value) and str(path) in str(broken.value)


def test_a_changed_file_takes_effect_and_a_broken_change_keeps_the_last_good_one(tmp_path):
    path = tmp_path / "desks.yaml"
    path.write_text("desks:\n  foreign:\n    topics: [greenland]\n")
    desks = WatchlistFile(str(path), every=0.0)
    assert desks.get(1.0).desks_for_alert(GREENLAND) == ["foreign"]
    path.write_text("desks:\n  arctic:\n    topics: [greenland, nuuk]\n")
    os.utime(path, (2_000_000_000, 2_000_000_000))
    assert desks.get(2.0).desks_for_alert(GREENLAND) == ["arctic"]
    path.write_text("desks: [")
    os.utime(path, (2_000_000_100, 2_000_000_100))
    assert desks.get(3.0).desks_for_alert(GREENLAND) == ["arctic"] and "not YAML" in desks.error


def test_the_desk_page_shows_one_desk_when_asked(watchlists):
    desk = DeskView()
    desk.on_alert(GREENLAND, received=1000)
    desk.on_alert({"id": "a2", "topic": "weather", "severity": "medium", "count": 3}, received=1001)
    desk.on_story({"id": "s1", "label": "greenland", "topics": {"greenland": 1.0}, "brief_count": 4, "brief_ids": []},
                  received=1000)
    everything = desk.snapshot(now=1010, watchlists=watchlists, muted=frozenset({"weather"}))
    assert [(a["id"], a["desks"], a["muted"]) for a in everything["alerts"]] == [
        ("a2", [DEFAULT_DESK], True), ("a1", ["foreign"], False)]
    foreign = desk.snapshot(now=1010, desk="foreign", watchlists=watchlists)
    assert [a["id"] for a in foreign["alerts"]] == ["a1"] and [s["id"] for s in foreign["stories"]] == ["s1"]
    assert desk.snapshot(now=1010, desk="economy", watchlists=watchlists)["alerts"] == []
    assert everything["desks"] == ["economy", "foreign", "night"]


def test_a_worker_with_a_broken_watchlists_file_stops_with_its_reason(tmp_path):
    path = tmp_path / "desks.yaml"
    path.write_text("desks:\n  foreign:\n    min_severity: urgent\n")
    env = {**os.environ, "WIREWATCH_WATCHLISTS_FILE": str(path), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = subprocess.run([sys.executable, "-m", "wirewatch", "worker"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "min_severity must be one of" in result.stderr and "Traceback" not in result.stderr
