"""Desks and what each follows: which alerts and stories are whose.

A watchlists file (YAML) names each desk and what it covers::

    desks:
      foreign:
        topics: [greenland, denmark, donald trump]   # topics, or aliases of them
        places: [NUUK, KOPENHAGEN]                   # dateline cities and countries
        sections: [Buitenland]
        languages: [nl, en]
        min_severity: medium                         # medium, high or critical

An alert is a desk's when its severity reaches the desk's minimum, its
language (when the desk names languages) is one of the desk's, and something
it is about is on the list: its topic or a related one, a term of its story's
label, the dateline city of one of its briefs, or its section. A desk that
names neither topics, places nor sections takes every alert that passes the
other two tests. An alert no desk takes belongs to :data:`DEFAULT_DESK`.
Names are compared without regard to case. Pure Python.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError

__all__ = ["DEFAULT_DESK", "Watchlist", "Watchlists", "load_watchlists", "WatchlistFile"]

DEFAULT_DESK = "all"
_SEVERITY_ORDER = {"medium": 0, "high": 1, "critical": 2}


def _folded(names: Iterable[str]) -> frozenset[str]:
    return frozenset(" ".join(name.split()).casefold() for name in names if name and name.strip())


class Watchlist(BaseModel):
    """What one desk follows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: list[str] = Field(default_factory=list, description="Topics or their aliases.")
    places: list[str] = Field(default_factory=list, description="Dateline cities and countries.")
    sections: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list, description="ISO 639-1 codes; empty: any.")
    min_severity: str = "medium"

    @field_validator("min_severity")
    @classmethod
    def _known_severity(cls, value: str) -> str:
        if value not in _SEVERITY_ORDER:
            raise ValueError(f"min_severity must be one of {', '.join(_SEVERITY_ORDER)}")
        return value

    @cached_property
    def names(self) -> frozenset[str]:
        """Its topics and places, folded: what an alert or a story must be about."""
        return _folded([*self.topics, *self.places])

    @cached_property
    def _wanted_sections(self) -> frozenset[str]:
        return _folded(self.sections)

    @cached_property
    def _wanted_languages(self) -> frozenset[str]:
        return _folded(self.languages)

    def takes(self, about: frozenset[str], severity: str, languages: Iterable[str], sections: Iterable[str]) -> bool:
        """Whether an alert (or a story) about ``about`` (folded names) is this desk's."""
        if _SEVERITY_ORDER.get(severity, 0) < _SEVERITY_ORDER[self.min_severity]:
            return False
        if self._wanted_languages and not self._wanted_languages & _folded(languages):
            return False
        if not self.names and not self._wanted_sections:
            return True
        return bool(self.names & about) or bool(self._wanted_sections & _folded(sections))


class Watchlists(BaseModel):
    """Every desk, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    desks: dict[str, Watchlist] = Field(default_factory=dict)

    @field_validator("desks")
    @classmethod
    def _names_are_labels(cls, desks: dict[str, Watchlist]) -> dict[str, Watchlist]:
        for name in desks:
            if not name or not name.replace("-", "").replace("_", "").isalnum() or name == DEFAULT_DESK:
                raise ValueError(f"desk name {name!r}: use letters, digits, - and _, and not {DEFAULT_DESK!r}")
        return desks

    def desks_for_alert(self, alert: dict[str, Any]) -> list[str]:
        """The desks an alert line (of ``wire.alerts``) is for; the default desk when none takes it."""
        about = _folded([alert.get("topic", ""), *alert.get("related_topics", []),
                         *alert.get("label", "").split(" · "), *alert.get("cities", [])])
        taken = [name for name, watchlist in self.desks.items()
                 if watchlist.takes(about, alert.get("severity", "medium"), alert.get("languages", []),
                                    alert.get("sections", []))]
        return sorted(taken) or [DEFAULT_DESK]

    def desks_for_story(self, story: dict[str, Any]) -> list[str]:
        """The desks a story line (of ``wire.stories``) is for, by its topics and label; the default desk if none."""
        about = _folded([*story.get("topics", {}), *story.get("label", "").split(" · ")])
        taken = [name for name, watchlist in self.desks.items()
                 if watchlist.names & about or not (watchlist.topics or watchlist.places or watchlist.sections)]
        return sorted(taken) or [DEFAULT_DESK]


def load_watchlists(path: str) -> Watchlists:
    """The watchlists in the YAML file at ``path``; :class:`ConfigError` saying what is wrong where."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as error:
        raise ConfigError(f"watchlists {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"watchlists {path}: not YAML: {error}") from None
    try:
        return Watchlists.model_validate(document or {})
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the file"
        raise ConfigError(f"watchlists {path}: {where}: {problem['msg']}") from None


@dataclass
class WatchlistFile:
    """The watchlists of a file, read again when the file changes (checked at most every ``every`` seconds).

    A change that breaks the file keeps the last good watchlists and says so
    in ``error``; the next good change takes effect.
    """

    path: str | None
    every: float = 5.0
    current: Watchlists = field(default_factory=Watchlists)
    error: str | None = None
    _stamp: tuple[float, int] | None = None
    _checked: float = float("-inf")

    def __post_init__(self) -> None:
        if self.path is not None:
            self.current = load_watchlists(self.path)  # a broken file at start is an error, not a warning
            self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            status = os.stat(self.path)
        except OSError:
            return None
        return status.st_mtime, status.st_size

    def get(self, now: float) -> Watchlists:
        if self.path is None or now - self._checked < self.every:
            return self.current
        self._checked = now
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.current, self.error = load_watchlists(self.path), None
            except ConfigError as error:
                self.error = str(error)
        return self.current
