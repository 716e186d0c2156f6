"""Story titles and tags read like news: a brief's own headline or first sentence, and names, never plain words."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from wirewatch.core.clustering import MAX_TITLE_CHARS, title_of
from wirewatch.core.engine import create_engine
from wirewatch.core.parser import parse_page
from wirewatch.core.terms import AliasTable
from wirewatch.models import ClusterInput
from wirewatch.settings import Settings

REPO = Path(__file__).resolve().parents[2]
FETCHED = datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc)


def seed_and_sample_briefs(seed_page: str) -> list[ClusterInput]:
    pages = [seed_page, *(path.read_text(encoding="utf-8") for path in sorted((REPO / "samples" / "pages").glob("*.txt")))]
    briefs = [brief for page in pages for brief in parse_page(page, fetched_at=FETCHED, source="t").briefs]
    return [ClusterInput.from_brief(brief) for brief in sorted(briefs, key=lambda b: (b.event_time, b.id))]


def real_headlines() -> list[ClusterInput]:
    lines = (REPO / "tests" / "data" / "real-headlines.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[:400]]
    return [ClusterInput.model_validate({**row, "headline": row["text"]}) for row in rows]


def names_in(texts: list[str]) -> set[str]:
    """Every run of words, folded, that the texts print with a capital: what a name looks like in print."""
    found = set()
    for text in texts:
        words = re.findall(r"\w+(?:['’]\w+)?", text)
        for start, word in enumerate(words):
            if word[:1].isupper():
                for end in range(start + 1, min(start + 5, len(words)) + 1):
                    found.add(" ".join(words[start:end]).casefold())
    return found


@pytest.mark.parametrize("source", ["seed and samples", "real headlines"])
def test_every_title_is_a_briefs_headline_or_first_sentence_and_every_tag_a_name(source, seed_page):
    briefs = seed_and_sample_briefs(seed_page) if source == "seed and samples" else real_headlines()
    by_id = {brief.id: brief for brief in briefs}
    engine = create_engine(Settings())
    aliases = AliasTable.default()
    canonical = {topic.casefold() for topic in aliases.topics()}
    stories = {}
    for brief in briefs:
        story = engine.process(brief).story
        stories[story.id] = story
    assert stories
    for story in stories.values():
        candidates = {title_of(by_id[i].headline, by_id[i].text) for i in story.brief_ids if i in by_id}
        assert story.title in candidates, (story.title, candidates)
        assert 0 < len(story.title) <= MAX_TITLE_CHARS
        texts = [(by_id[i].headline or "") + " " + by_id[i].text for i in story.brief_ids if i in by_id]
        printed = names_in(texts)
        for tag in story.tags:
            assert tag in story.topics and (tag in printed or tag in canonical), (tag, story.title)


def test_the_first_sentence_is_cut_where_a_sentence_ends_and_long_ones_at_a_word():
    assert title_of(None, "Noord-Koreaanse troepen vechten in Koersk. Dat meldt het Pentagon.") == (
        "Noord-Koreaanse troepen vechten in Koersk.")
    assert title_of("  Kop   van het stuk ", "Tekst. Meer.") == "Kop van het stuk"
    assert title_of(None, "De VS en de E.U. praten. Verder niets.") == "De VS en de E.U. praten."
    long = title_of(None, "woord " * 60)
    assert long.endswith("…") and len(long) <= MAX_TITLE_CHARS and not long[:-1].endswith(" ")


def test_a_title_changes_only_for_a_clearly_more_central_brief_in_the_main_language(seed_page):
    engine = create_engine(Settings())
    titles = []
    for brief in seed_and_sample_briefs(seed_page):
        story = engine.process(brief).story
        titles.append((story.id, story.title))
    changes = sum(1 for (a, x), (b, y) in zip(titles, titles[1:]) if a == b and x != y)
    assert changes <= len({story_id for story_id, _ in titles})  # no flicker: at most about once a story
