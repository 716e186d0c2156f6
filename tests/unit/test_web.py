"""Readiness rules and the desk view, without a broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from wirewatch.service.desk import DeskView
from wirewatch.service.web import readiness


def fake_app(*, generation=3, rebalancing=False, in_recovery=False, recovered=True):
    completed = asyncio.Event()
    if recovered:
        completed.set()
    return SimpleNamespace(
        consumer_generation_id=generation,
        rebalancing=rebalancing,
        in_recovery=in_recovery,
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
    )


def test_ready_when_joined_and_recovered():
    assert readiness(fake_app()) == []


def test_not_ready_while_joining_rebalancing_or_recovering():
    assert readiness(fake_app(generation=0)) == ["not yet a member of its consumer group"]
    assert readiness(fake_app(rebalancing=True)) == ["rebalancing"]
    assert readiness(fake_app(in_recovery=True)) == ["recovering tables"]
    assert readiness(fake_app(recovered=False)) == ["recovering tables"]


def alert(alert_id, revision, topic="greenland"):
    return {"id": alert_id, "revision": revision, "topic": topic, "count": revision + 2}


def test_desk_keeps_the_latest_revision_and_bounds_everything():
    desk = DeskView(max_alerts=2, max_briefs=3, max_stories=2, spike_seconds=100)
    desk.on_alert(alert("a", 2), received=1000)
    desk.on_alert(alert("a", 1), received=1001)  # an older revision arriving late changes nothing
    desk.on_alert(alert("b", 1, "denmark"), received=1002)
    desk.on_alert(alert("c", 1, "japan"), received=1003)
    snapshot = desk.snapshot(now=1050)
    assert [a["id"] for a in snapshot["alerts"]] == ["c", "b"]
    assert desk.snapshot(now=1200)["spikes"] == []
    for index in range(5):
        desk.on_brief({"id": f"b{index}", "city": "X", "text": f"t{index}"})
    desk.on_story({"id": "s1", "brief_count": 2, "brief_ids": ["b3", "b4"]}, received=1000)
    story = desk.snapshot(now=1010)["stories"][0]
    assert [b["id"] for b in story["briefs"]] == ["b4", "b3"]
    assert len(desk._briefs) == 3


def test_alerts_open_to_their_briefs_and_stories_carry_a_timeline():
    desk = DeskView()
    times = ["2026-01-21T14:01:00+00:00", "2026-01-21T14:09:00+00:00", "2026-01-21T14:20:00+00:00"]
    for index, moment in enumerate(times):
        desk.on_brief({"id": f"b{index}", "city": "NUUK", "text": f"Groenland {index}", "event_time": moment})
    desk.on_alert({**alert("a", 1), "brief_ids": ["b0", "b2", "unknown"]}, received=1000)
    desk.on_story({"id": "s1", "brief_count": 4, "brief_ids": ["b2", "gone", "b0", "b1"]}, received=1000)
    snapshot = desk.snapshot(now=1010)
    assert [b["id"] for b in snapshot["alerts"][0]["briefs"]] == ["b0", "b2"]
    assert snapshot["spikes"][0]["briefs"] == snapshot["alerts"][0]["briefs"]
    story = snapshot["stories"][0]
    assert story["timeline"] == times
    assert [b["id"] for b in story["briefs"]] == ["b1", "b0", "b2"]
