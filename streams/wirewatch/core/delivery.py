"""An alert of ``wire.alerts`` as Prometheus Alertmanager takes it (``POST /api/v2/alerts``).

Alertmanager knows an alert by its label set: every line posted with the same
labels updates one alert. An alert goes once per desk it is for (the ``desk``
label); the severity label of an alert id is fixed when it is first
delivered, and its revisions reuse it; an escalation has an id of its own, and so is an alert of
its own. ``startsAt`` is the detection, ``endsAt`` the end of the cooldown:
past it, with no revision to extend it, Alertmanager resolves the spike by
itself and sends no reminder of a finished spike. Annotations carry what a
person reads: a one-line title, the reason, the first briefs and a link to
the alert on the desk page. Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from .watchlists import DEFAULT_DESK

__all__ = ["ALERT_NAME", "alertmanager_alert", "alert_labels", "news_silences"]

ALERT_NAME = "NewsSpike"
_FIRST_BRIEFS = 3
_ANNOTATION_CHARS = 1000


def alert_labels(alert: dict[str, Any], desk: str = DEFAULT_DESK) -> dict[str, str]:
    """The label set an alert is known by in Alertmanager, as of the line that first delivers it."""
    return {
        "alertname": ALERT_NAME,
        "alert_id": alert["id"],
        "topic": alert["topic"],
        "severity": alert["severity"],
        "direction": alert.get("direction", "rise"),
        "desk": desk,
    }


def alertmanager_alert(
    alert: dict[str, Any],
    *,
    labels: dict[str, str],
    starts_at: str,
    cooldown: float,
    desk_url: str,
    briefs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One postable alert for a line of ``wire.alerts``.

    A revision keeps the labels and ``starts_at`` (ISO 8601) its alert id was
    first delivered with; its cooldown runs from its own detection.

    ``briefs`` maps brief ids to their texts where known; the first few of the
    alert's briefs go into the ``briefs`` annotation.
    """
    detected = datetime.fromisoformat(alert["detected_at"])
    raised = datetime.fromisoformat(starts_at)
    direction = alert.get("direction", "rise")
    title = (
        f"{alert['topic']}: {alert['count']} briefs in the window, {_expected(alert['baseline'])} expected"
        if direction == "rise"
        else f"{alert['topic']} gone quiet: {alert['count']} briefs, {_expected(alert['baseline'])} expected"
    )
    story_title = alert.get("title") or alert.get("label")
    if story_title and story_title != alert["topic"]:
        title += f": {story_title}"
    texts = [(briefs or {}).get(brief_id) for brief_id in alert.get("brief_ids", [])]
    first = [text for text in texts if text][:_FIRST_BRIEFS] or alert.get("samples", [])[:_FIRST_BRIEFS]
    annotations = {
        "summary": _cut(title),
        "description": _cut(alert.get("reason", "")),
        "briefs": _cut("\n".join(f"- {text}" for text in first)),
        "revision": str(alert["revision"]),
        "count": str(alert["count"]),
        "related_topics": ", ".join(alert.get("related_topics", [])),
        "desk_url": f"{desk_url.rstrip('/')}/{_desk_query(labels.get('desk'))}#alert-{alert['id']}",
    }
    return {
        "labels": labels,
        "annotations": {name: value for name, value in annotations.items() if value},
        "startsAt": _rfc3339(raised),
        "endsAt": _rfc3339(max(raised, detected) + timedelta(seconds=cooldown)),
        "generatorURL": annotations["desk_url"],
    }


def news_silences(silences: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The active silences of Alertmanager's ``GET /api/v2/silences`` that hold back news alerts.

    A silence holds them back when its ``alertname`` matcher, if it has one,
    is ``NewsSpike``. Only equality matchers are read (a regular expression
    names no topic). Each comes as ``id``, ``topic`` and ``desk`` (None when
    not matched on), ``ends_at`` and ``comment``.
    """
    found = []
    for silence in silences:
        if silence.get("status", {}).get("state") != "active":
            continue
        matchers = {m["name"]: m["value"] for m in silence.get("matchers", [])
                    if m.get("isEqual", True) and not m.get("isRegex", False)}
        if matchers.get("alertname", ALERT_NAME) != ALERT_NAME:
            continue
        found.append({"id": silence["id"], "topic": matchers.get("topic"), "desk": matchers.get("desk"),
                      "ends_at": silence["endsAt"], "comment": silence.get("comment", "")})
    return found


def _desk_query(desk: str | None) -> str:
    return "" if desk in (None, DEFAULT_DESK) else f"?desk={desk}"


def _expected(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 0.1 else "under 0.1"


def _cut(text: str) -> str:
    return text if len(text) <= _ANNOTATION_CHARS else text[: _ANNOTATION_CHARS - 1] + "…"


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
