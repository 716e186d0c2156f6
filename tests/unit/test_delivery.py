"""An alert line as Alertmanager gets it: labels fixed by its first delivery, a cooldown to resolve by."""

from __future__ import annotations

from datetime import datetime, timedelta

from wirewatch.core.delivery import ALERT_NAME, alert_labels, alertmanager_alert


def line(revision: int, count: int, severity: str, detected: str) -> dict:
    return {"id": "alert-1", "revision": revision, "topic": "greenland", "label": "donald trump · greenland",
            "direction": "rise", "reason": f"{count} in 30 min against 0.02 expected", "related_topics": ["denmark"],
            "count": count, "baseline": 0.02, "severity": severity, "brief_ids": ["b1", "b2", "b3", "b4"],
            "samples": ["sample"], "detected_at": detected}


def test_a_revision_updates_the_alert_it_was_first_delivered_as():
    first = line(1, 3, "high", "2026-01-21T14:01:00+00:00")
    labels = alert_labels(first)
    assert labels == {"alertname": ALERT_NAME, "alert_id": "alert-1", "topic": "greenland", "severity": "high",
                      "direction": "rise", "desk": "all"}
    revised = line(2, 4, "critical", "2026-01-21T14:20:00+00:00")
    titled = alertmanager_alert(revised | {"title": "Trump wil Groenland kopen"}, labels=labels, starts_at="2026-01-21T14:01:00+00:00",
                                cooldown=60, desk_url="http://desk/")
    assert titled["annotations"]["summary"].endswith("expected: Trump wil Groenland kopen")
    posted = alertmanager_alert(revised, labels=labels, starts_at=first["detected_at"], cooldown=7200,
                                desk_url="http://desk.example/", briefs={"b1": "NUUK (AFP) - Eerste.", "b3": "Derde."})
    assert posted["labels"] == labels  # the same Alertmanager alert, though the severity rose
    assert posted["startsAt"] == "2026-01-21T14:01:00Z"
    # It resolves by itself a cooldown after its latest revision, unless another extends it.
    assert datetime.fromisoformat(posted["endsAt"].replace("Z", "+00:00")) - datetime.fromisoformat(
        revised["detected_at"]) == timedelta(seconds=7200)
    notes = posted["annotations"]
    assert notes["summary"] == "greenland: 4 briefs in the window, under 0.1 expected: donald trump · greenland"
    assert notes["briefs"] == "- NUUK (AFP) - Eerste.\n- Derde."
    assert notes["desk_url"] == posted["generatorURL"] == "http://desk.example/#alert-alert-1"
    assert notes["revision"] == "2" and notes["related_topics"] == "denmark"


def test_without_brief_texts_the_story_samples_stand_in_and_long_texts_are_cut():
    alert = line(1, 3, "medium", "2026-01-21T14:01:00+00:00") | {"reason": "x" * 5000}
    posted = alertmanager_alert(alert, labels=alert_labels(alert), starts_at=alert["detected_at"], cooldown=60,
                                desk_url="http://desk/")
    assert posted["annotations"]["briefs"] == "- sample"
    assert len(posted["annotations"]["description"]) == 1000


def test_the_silences_that_hold_back_news_are_read_alike_by_the_desk_page_and_mutes():
    from wirewatch.core.delivery import news_silences
    from wirewatch.topology.delivery_stage import MutedTopics

    def silence(ident, state="active", **matchers):
        return {"id": ident, "status": {"state": state}, "endsAt": "2026-01-21T16:00:00Z", "comment": ident,
                "matchers": [{"name": n, "value": v, "isRegex": n == "regex", "isEqual": True} for n, v in matchers.items()]}

    silences = [silence("mine", alertname="NewsSpike", topic="greenland", desk="foreign"),
                silence("bare", topic="denmark"), silence("other", alertname="DiskFull", topic="x"),
                silence("old", state="expired", alertname="NewsSpike", topic="iceland"),
                silence("desk-wide", alertname="NewsSpike", desk="night")]
    found = news_silences(silences)
    assert [(s["id"], s["topic"], s["desk"]) for s in found] == [
        ("mine", "greenland", "foreign"), ("bare", "denmark", None), ("desk-wide", None, "night")]
    muted = MutedTopics()
    muted.update(silences)
    assert muted.topics == {"greenland", "denmark"}
