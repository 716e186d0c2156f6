"""The records wirewatch reads and writes, as pydantic models.

Each model is the value contract of one Kafka topic; ``wirewatch schemas``
writes their JSON Schemas to ``schemas/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_SOURCE_CHARS",
    "Envelope",
    "Brief",
    "DeadLetter",
    "ClusterInput",
    "CountSeries",
    "Story",
    "Alert",
    "BriefKind",
    "Precision",
    "TOPIC_MODELS",
]

BriefKind = Literal["lead", "brief"]
Precision = Literal["second", "minute", "hour", "day"]


#: The longest source name an envelope takes; a bare page's key is cut to it.
MAX_SOURCE_CHARS = 200


class Envelope(BaseModel):
    """A scraped page as upstream producers publish it on ``wire.raw``."""

    # strict: a JSON envelope must carry times as ISO 8601 strings, not numbers
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, title="wire.raw envelope")

    source: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS, description="Feed or scraper name.")
    url: str | None = Field(default=None, max_length=4096, description="Where the page was fetched.")
    section: str | None = Field(
        default=None, max_length=200, description="Section the scraper fetched, if it knows."
    )
    fetched_at: AwareDatetime = Field(description="When the page was fetched, with a UTC offset.")
    published_at: AwareDatetime | None = Field(
        default=None,
        description="Publication time of the page's lead article, when the scraper knows it.",
    )
    content_type: Literal["text/plain", "text/html"] = Field(
        default="text/plain", description="Media type of body; markup is reduced to text either way."
    )
    body: str = Field(description="The page text.")


class Brief(BaseModel):
    """One news item split out of a page: the lead article or a list brief."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="wire.briefs value")

    id: str = Field(description="Stable content-derived id; the same brief in any snapshot has it.")
    kind: BriefKind
    source: str
    section: str | None
    city: str | None = Field(description="Dateline city as printed, e.g. 'DEN HAAG'.")
    agencies: list[str] = Field(description="Agencies in the dateline, e.g. ['ANP', 'RTR'].")
    headline: str | None = Field(description="The lead article's headline; null for list briefs.")
    text: str = Field(description="Plain text without the dateline.")
    language: str | None = Field(description="ISO 639-1 code of the page's language, if known.")
    published_at: AwareDatetime | None = Field(
        description="fetched_at minus the printed age, floored to its precision; null if unknown."
    )
    published_at_precision: Precision | None
    age_text: str | None = Field(description="The relative age as printed, e.g. '16 minuten geleden'.")
    fetched_at: AwareDatetime = Field(description="When the first snapshot carrying it was fetched.")
    event_time: AwareDatetime = Field(
        description="published_at when known, else fetched_at; the Kafka record timestamp."
    )
    url: str | None
    position: int = Field(ge=0, description="Order on the page, 0 for the first item.")


class DeadLetter(BaseModel):
    """A raw record, or a part of one, that wirewatch could not turn into briefs."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="wire.raw.dlq value")

    reason: str = Field(description="Machine-readable snake_case code, e.g. 'invalid_utf8'.")
    message: str = Field(description="What went wrong, for a person.")
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp: datetime | None
    source_key_base64: str | None = Field(description="The record key, base64-encoded; its first bytes when long.")
    source_key_size: int | None = Field(default=None, ge=0, description="Size in bytes of the whole record key.")
    source_key_truncated: bool = Field(default=False, description="True when only the key's first bytes are kept.")
    original_base64: str = Field(description="The offending record value, base64-encoded.")
    original_size: int = Field(ge=0, description="Size in bytes of the whole original value.")
    original_truncated: bool = Field(
        description="True when only the first bytes of a value too large to forward are kept."
    )
    rejected_count: int = Field(
        default=1, ge=1, description="How many fragments of the record this reason rejected."
    )
    failed_at: AwareDatetime


class ClusterInput(BaseModel):
    """A brief as ``wirewatch cluster`` reads it: a Brief, or any JSON with at least these fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    text: str
    published_at: AwareDatetime
    headline: str | None = None
    language: str | None = None
    city: str | None = None
    section: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _event_time_stands_in(cls, data: object) -> object:
        # A Brief line may carry a null published_at (a lead); its event_time is the time to use.
        if isinstance(data, dict) and data.get("published_at") is None and data.get("event_time") is not None:
            return {**data, "published_at": data["event_time"]}
        return data

    @classmethod
    def from_brief(cls, brief: Brief) -> "ClusterInput":
        return cls(
            id=brief.id,
            text=brief.text,
            published_at=brief.event_time,
            headline=brief.headline,
            language=brief.language,
            city=brief.city,
            section=brief.section,
        )


class Story(BaseModel):
    """The state of a story cluster after a brief joined it."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="wire.stories value")

    id: str = Field(description="story-<id of the brief that opened it>; stable across replays.")
    title: str = Field(
        "", description="The headline, else the first sentence, of its most central brief, in its briefs' main language."
    )
    tags: list[str] = Field(default_factory=list, description="Up to three names its briefs use most.")
    label: str = Field(description="Its most frequent topics, joined by ' · '.")
    topics: dict[str, int] = Field(description="Topic → number of its briefs that name it.")
    top_terms: list[str] = Field(description="Heaviest terms of its centroid.")
    brief_ids: list[str] = Field(description="Its briefs, oldest first (the latest 500).")
    brief_count: int = Field(ge=1)
    first_seen: AwareDatetime = Field(description="Earliest event time of its briefs.")
    last_seen: AwareDatetime = Field(description="Latest event time of its briefs.")
    window_count: int = Field(ge=0, description="Its briefs in the busiest event-time window around the latest one.")
    samples: list[str] = Field(description="Texts of its first few briefs.")
    opened: bool = Field(description="True when this brief opened the story.")
    brief_id: str = Field(description="The brief whose arrival produced this update.")
    merged_story_ids: list[str] = Field(
        default_factory=list,
        description="Stories this one absorbed with this update: they end here, their briefs are now this story's.",
    )


Severity = Literal["medium", "high", "critical"]


class CountSeries(BaseModel):
    """A topic's briefs per window step over the last hours, beside what its baseline expects of each step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: AwareDatetime = Field(description="Start of the first step.")
    step_seconds: float = Field(gt=0)
    counts: list[int] = Field(description="Briefs naming the topic in each step, oldest first.")
    expected: list[float] = Field(description="The expected count of each step at its hour.")


class Alert(BaseModel):
    """A topic spiking in an event-time window."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="wire.alerts value")

    id: str = Field(description="Derived from topic and window; the same spike always has the same id.")
    revision: int = Field(ge=1, description="1 when raised; higher as more briefs join the same spike.")
    topic: str
    label: str = Field(description="The label of the story the spike belongs to (the topic, for a drop).")
    title: str = Field("", description="The title of that story (the topic, for a drop).")
    direction: Literal["rise", "drop"] = Field(
        "rise", description="rise: far more briefs than expected; drop: a busy topic gone quiet."
    )
    reason: str = Field("", description="Why it fired, in a sentence: count against expected, chance, range.")
    related_topics: list[str] = Field(description="Other topics spiking in the same briefs.")
    story_ids: list[str]
    window_start: AwareDatetime
    window_end: AwareDatetime
    count: int = Field(ge=0, description="Briefs naming the topic in the window.")
    baseline: float = Field(ge=0, description="Expected count in the window from the topic's history and the hour.")
    score: float = Field(description="-log10 of the chance of at least this count under the baseline.")
    severity: Severity
    escalation: int = Field(ge=0, description="0 for a new spike; n after n clear escalations of it.")
    brief_ids: list[str] = Field(description="The first briefs of the window (at most 10 of count), oldest first.")
    samples: list[str] = Field(description="A few texts of the spiking story.")
    detected_at: AwareDatetime = Field(description="Event time of the brief that raised or revised it.")
    cities: list[str] = Field(default_factory=list, description="Dateline cities of the briefs that raised and revised it.")
    sections: list[str] = Field(default_factory=list, description="Their sections.")
    languages: list[str] = Field(default_factory=list, description="Their languages.")
    series: CountSeries | None = Field(
        None, description="The topic's counts per step up to the brief that raised or revised it, for a chart."
    )


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    "wire.raw": Envelope,
    "wire.briefs": Brief,
    "wire.raw.dlq": DeadLetter,
    "wire.stories": Story,
    "wire.alerts": Alert,
}
