"""What the live desk page shows: current spikes, the biggest active stories, recent alerts.

:class:`DeskView` keeps a bounded picture built from the records of the
stories, alerts and briefs topics (every partition, whichever worker owns
them), so every worker's page shows the whole desk. A spike carries its
topic's counts per step (the alert's ``series``) for its chart; a story, the
event times of its briefs for its timeline; an alert, the briefs it lists.
Pure Python.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from ..core.watchlists import Watchlists

__all__ = ["DeskView"]


class DeskView:
    def __init__(
        self,
        *,
        max_alerts: int = 50,
        max_stories: int = 500,
        max_briefs: int = 2000,
        spike_seconds: float = 2 * 3600,
        story_seconds: float = 6 * 3600,
    ) -> None:
        self.max_alerts, self.max_stories, self.max_briefs = max_alerts, max_stories, max_briefs
        self.spike_seconds, self.story_seconds = spike_seconds, story_seconds
        self._alerts: OrderedDict[str, dict] = OrderedDict()  # alert id → latest revision, newest last
        self._stories: OrderedDict[str, dict] = OrderedDict()  # story id → latest state, newest last
        self._briefs: OrderedDict[str, dict] = OrderedDict()  # brief id → brief, newest last
        self._received: dict[str, float] = {}

    def on_alert(self, alert: dict, received: float | None = None) -> None:
        known = self._alerts.get(alert["id"])
        if known is not None and known["revision"] > alert["revision"]:
            return
        self._keep(self._alerts, alert, received, self.max_alerts)

    def on_story(self, story: dict, received: float | None = None) -> None:
        self._keep(self._stories, story, received, self.max_stories)

    def _keep(self, store: OrderedDict[str, dict], record: dict, received: float | None, limit: int) -> None:
        """Store ``record`` as the newest of ``store``, forgetting the oldest beyond ``limit``."""
        store[record["id"]] = record
        store.move_to_end(record["id"])
        self._received[record["id"]] = received if received is not None else time.time()
        while len(store) > limit:
            old, _ = store.popitem(last=False)
            self._received.pop(old, None)

    def on_brief(self, brief: dict) -> None:
        self._briefs[brief["id"]] = {
            key: brief.get(key)
            for key in ("id", "city", "agencies", "headline", "text", "published_at", "event_time", "source")
        }
        self._briefs.move_to_end(brief["id"])
        while len(self._briefs) > self.max_briefs:
            self._briefs.popitem(last=False)

    def snapshot(
        self,
        now: float | None = None,
        *,
        stories: int = 10,
        briefs_per_story: int = 5,
        alerts: int = 20,
        desk: str | None = None,
        watchlists: Watchlists | None = None,
        muted: frozenset[str] = frozenset(),
    ) -> dict:
        """The page's data, newest first; with ``desk``, only what ``watchlists`` give that desk.

        A story's ``briefs`` are its newest known briefs, ``timeline`` the
        event times of all its known briefs (oldest first); an alert's
        ``briefs`` are the known ones of its ``brief_ids``, its ``desks`` the
        desks it is for, and ``muted`` whether its topic is in ``muted``.
        """
        now = time.time() if now is None else now
        watchlists = watchlists or Watchlists()
        recent = []
        for alert in reversed(self._alerts.values()):
            desks = watchlists.desks_for_alert(alert)
            if desk is None or desk in desks:
                recent.append({**self._with_briefs(alert), "desks": desks, "muted": alert.get("topic") in muted})
        spikes = [a for a in recent if now - self._received[a["id"]] <= self.spike_seconds]
        active = [s for s in self._stories.values() if now - self._received[s["id"]] <= self.story_seconds
                  and (desk is None or desk in watchlists.desks_for_story(s))]
        active.sort(key=lambda s: (-s["brief_count"], s["id"]))
        shown = []
        for story in active[:stories]:
            known = [self._briefs[i] for i in story["brief_ids"] if i in self._briefs]
            timeline = sorted(b["event_time"] for b in known if b.get("event_time"))
            shown.append({**story, "briefs": known[::-1][:briefs_per_story], "timeline": timeline})
        return {"spikes": spikes, "stories": shown, "alerts": recent[:alerts], "generated_at": now, "desk": desk,
                "desks": sorted(watchlists.desks)}

    def _with_briefs(self, alert: dict) -> dict:
        return {**alert, "briefs": [self._briefs[i] for i in alert.get("brief_ids", ()) if i in self._briefs]}
