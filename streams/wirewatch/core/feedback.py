"""Editors' verdicts on alerts, and how they move a topic's bar.

A verdict is ``useful`` or ``noise`` on one alert (``wire.feedback``). A topic
marked noise again and again needs a more surprising window to alert: its
**noise level** counts its noise verdicts less its useful ones, each fading
with a half-life of ``half_life`` (a week), between 0 and ``MAX_LEVEL``. Each
unit of level adds ``margin_step`` to the margin by which a window must beat
the topic's ceiling, and one to the chance a quiet topic's window must reach
(−log₁₀ p). Bounded, so that no amount of verdicts can silence a topic for
good, and fading, so that a topic that has become news again is heard. Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["Verdict", "FeedbackLedger", "MAX_LEVEL", "editors_precision"]

#: The highest noise level verdicts can give a topic.
MAX_LEVEL = 4.0


class Verdict(BaseModel):
    """One editor's verdict on one alert: a record of ``wire.feedback``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="wire.feedback value")

    alert_id: str = Field(min_length=1, max_length=64, pattern=r"^alert-[0-9a-f]+$")
    topic: str = Field(min_length=1, max_length=200)
    verdict: str = Field(pattern=r"^(useful|noise)$")
    desk: str = Field(default="all", max_length=64, pattern=r"^[\w-]+$")
    at: AwareDatetime = Field(description="When the editor gave it.")


@dataclass
class FeedbackLedger:
    """The verdicts of the last while, per topic, as (seconds, alert id, desk) → +1 for noise or −1 for useful.

    The same verdict read twice (the topic followed again after a lost
    connection) counts once.
    """

    half_life: float = 7 * 86400.0
    #: Verdicts kept per topic: the newest; older ones have faded in any case.
    kept: int = 50
    verdicts: dict[str, dict[tuple[float, str, str], int]] = field(default_factory=dict)

    def record(self, verdict: Verdict) -> None:
        entries = self.verdicts.setdefault(verdict.topic, {})
        entries[(verdict.at.timestamp(), verdict.alert_id, verdict.desk)] = 1 if verdict.verdict == "noise" else -1
        if len(entries) > self.kept:
            for oldest in sorted(entries)[: len(entries) - self.kept]:
                del entries[oldest]

    def level(self, topic: str, at: float) -> float:
        """The topic's noise level at ``at`` (seconds): 0 for a topic no one has called noise."""
        entries = self.verdicts.get(topic)
        if not entries:
            return 0.0
        total = sum(sign * math.pow(0.5, max(at - moment, 0.0) / self.half_life)
                    for (moment, _, _), sign in entries.items())
        return min(max(total, 0.0), MAX_LEVEL)


def editors_precision(verdicts: Iterable[Verdict]) -> dict:
    """Per topic and per desk: useful and noise verdicts, and the share useful (editors' precision).

    An editor who changes their mind counts once, with their last verdict on the alert.
    """
    last: dict[tuple[str, str], Verdict] = {}
    for verdict in sorted(verdicts, key=lambda v: v.at):
        last[(verdict.alert_id, verdict.desk)] = verdict

    def tally(key) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for verdict in last.values():
            entry = counts.setdefault(key(verdict), {"useful": 0, "noise": 0})
            entry[verdict.verdict] += 1
        return {name: {**entry, "precision": round(entry["useful"] / (entry["useful"] + entry["noise"]), 3)}
                for name, entry in sorted(counts.items())}

    return {"alerts_judged": len(last), "by_topic": tally(lambda v: v.topic), "by_desk": tally(lambda v: v.desk)}
