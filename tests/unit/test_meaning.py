"""Meaning beside words: the sentence encoder, and how the clusterer weighs it (the real shipped model)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from wirewatch.core.clustering import ClusterConfig, Clusterer
from wirewatch.core.embedding import SentenceEncoder, default_encoder
from wirewatch.core.engine import create_engine
from wirewatch.core.terms import BriefTerms
from wirewatch.models import ClusterInput
from wirewatch.offline.evaluation import score_clusters
from wirewatch.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"
START = 1_700_000_000.0
#: A story of four words, each weighing 0.5 in its unit vector.
QUAKE_STORY = {"quake": 1.0, "tremor": 1.0, "rescue": 1.0, "aftershock": 1.0}
QUAKE_HEADLINE = "Strong earthquake shakes Tokyo, rescuers search collapsed homes"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


class CountingEncoder(SentenceEncoder):
    """The real encoder, counting the texts it is asked to encode."""

    def __init__(self) -> None:
        real = default_encoder(128)
        super().__init__(real._tokenizer, real._table)
        self.calls = 0

    def encode(self, text: str):
        self.calls += 1
        return super().encode(text)


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return default_encoder(128)


@pytest.mark.parametrize("name", ["real-headlines.jsonl", "real-tweets.jsonl"])
def test_texts_of_one_story_mean_more_alike_than_texts_of_two(encoder, name):
    rows = _rows(name)
    vectors = [encoder.encode(row["text"]) for row in rows]
    same, different = [], []
    for i, j in itertools.combinations(range(len(rows)), 2):
        (same if rows[i]["story"] == rows[j]["story"] else different).append(float(vectors[i] @ vectors[j]))
    assert sum(same) / len(same) > sum(different) / len(different) + 0.2
    assert all(abs(float(vector @ vector) - 1.0) < 1e-5 for vector in vectors), "unit vectors"


def test_a_text_without_a_token_has_no_meaning(encoder):
    assert encoder.encode("   ") is None
    assert encoder.encode("https://t.co/abc") is None, "a bare link says nothing of a story"


def test_meaning_lifts_a_brief_that_shares_a_few_words_with_a_story_of_the_same_meaning(encoder):
    config = ClusterConfig(similarity=0.3, embedding_weight=2.0, embedding_floor=0.25, embedding_share=0.5)
    # One word of four shared: term affinity 0.25, under the bar of 0.3 and over half of it.
    few_shared = {"quake": 1.0, "tokyo": 1.0, "homes": 1.0, "collapsed": 1.0}

    def story_then(brief_headline: str, with_encoder: bool) -> tuple[str, str]:
        clusterer = Clusterer(config, {}, encoder if with_encoder else None)
        first = clusterer.assign("a", BriefTerms("en", (), QUAKE_STORY), START, QUAKE_HEADLINE, headline=QUAKE_HEADLINE)
        second = clusterer.assign("b", BriefTerms("en", (), few_shared), START + 60, brief_headline,
                                  headline=brief_headline)
        return first.story["id"], second.story["id"]

    same_meaning = "Tokyo earthquake: homes collapse as rescuers dig through rubble"
    joined, chosen = story_then(same_meaning, with_encoder=True)
    assert chosen == joined
    alone, chosen = story_then(same_meaning, with_encoder=False)
    assert chosen != alone, "by words alone it stays apart"
    apart, chosen = story_then("Apple shares rise after iPhone sales beat forecasts", with_encoder=True)
    assert chosen != apart, "the same few words with another meaning stay apart"


def test_meaning_never_supplies_more_than_its_share_of_the_bar(encoder):
    config = ClusterConfig(similarity=0.3, embedding_weight=2.0, embedding_floor=0.25, embedding_share=0.5)
    clusterer = Clusterer(config, {}, encoder)
    first = clusterer.assign("a", BriefTerms("en", (), QUAKE_STORY), START, QUAKE_HEADLINE, headline=QUAKE_HEADLINE)
    # One word of sixteen shared: term affinity 0.125, under half the bar; the very same headline cannot lift it.
    weak = {"quake": 1.0, **{f"other{i}": 1.0 for i in range(15)}}
    second = clusterer.assign("b", BriefTerms("en", (), weak), START + 60, QUAKE_HEADLINE, headline=QUAKE_HEADLINE)
    assert second.opened and second.story["id"] != first.story["id"]


def test_a_clear_choice_spends_no_encoding_once_a_story_has_its_first_briefs():
    encoder = CountingEncoder()
    config = ClusterConfig(similarity=0.3, embedding_seed_briefs=8)
    clusterer = Clusterer(config, {}, encoder)
    for i in range(20):
        story = clusterer.assign(f"b{i}", BriefTerms("en", (), QUAKE_STORY), START + 60 * i, QUAKE_HEADLINE).story
    assert story["count"] == 20 and story["embedded"] == 8
    assert encoder.calls == 8, "the first eight give the story its meaning; the rest could not change a choice"


def test_a_storys_meaning_is_stored_with_it_and_read_back_after_a_restart(encoder):
    config = ClusterConfig(similarity=0.3)
    stories: dict = {}
    Clusterer(config, stories, encoder).assign("a", BriefTerms("en", (), QUAKE_STORY), START, QUAKE_HEADLINE)
    restored = json.loads(json.dumps(stories))
    assert isinstance(restored["story-a"]["embedding"], str), "stored compactly in the row"
    few_shared = {"quake": 1.0, "tokyo": 1.0, "homes": 1.0, "collapsed": 1.0}
    text = "Tokyo earthquake: homes collapse as rescuers dig through rubble"
    later = Clusterer(config, restored, encoder).assign("b", BriefTerms("en", (), few_shared), START + 60, text)
    assert later.story["id"] == "story-a"


def test_on_real_tweets_meaning_brings_together_what_the_words_split():
    rows = _rows("real-tweets.jsonl")
    truth = {row["id"]: row["story"] for row in rows}
    scores = {}
    for weight in (0.0, 2.0):
        engine = create_engine(Settings(_env_file=None, story_embedding_weight=weight))
        chosen = {}
        for row in sorted(rows, key=lambda row: (row["published_at"], row["id"])):
            chosen[row["id"]] = engine.process(ClusterInput.model_validate(row)).story.id
        scores[weight] = score_clusters(truth, chosen)["bcubed_f1"]
    assert scores[2.0] > scores[0.0] and scores[2.0] >= 0.95, scores


@pytest.mark.parametrize("with_encoder", [False, True])
def test_stories_whose_words_converge_merge_only_if_they_say_the_same(encoder, with_encoder):
    config = ClusterConfig(similarity=0.3, merge_similarity=0.3, merge_meaning_floor=0.35)
    clusterer = Clusterer(config, {}, encoder if with_encoder else None)

    def brief(i: int, headline: str, *words: str):
        terms = BriefTerms("en", (), {word: 1.0 for word in words})
        return clusterer.assign(f"b{i}", terms, START + 60 * i, headline, headline=headline)

    brief(0, "Strong earthquake shakes Tokyo", "quake", "tremor")
    brief(1, "Apple shares rise after iPhone sales beat forecasts", "evacuation", "shelter")
    brief(2, "Aftershocks rattle Tokyo after the earthquake", "quake", "tremor", "aftershock")
    last = brief(3, "Apple shares rise again as iPhone demand holds", "evacuation", "shelter", "quake", "tremor")
    if with_encoder:
        assert last.merged == [] and len(clusterer.stories) == 2, "the words met; an earthquake and a share price did not"
    else:
        assert last.merged == ["story-b1"] and len(clusterer.stories) == 1


def test_a_brief_in_a_language_the_model_does_not_know_is_judged_by_its_words_alone():
    encoder = CountingEncoder()
    clusterer = Clusterer(ClusterConfig(similarity=0.3, embedding_languages=("en",)), {}, encoder)
    dutch = "Japan heeft de kerncentrale Kashiwazaki-Kariwa weer opgestart"
    opened = clusterer.assign("nl-0", BriefTerms("nl", (), {"kerncentrale": 1.0, "japan": 1.0}), START, dutch)
    assert encoder.calls == 0 and "embedding" not in opened.story
    clusterer.assign("en-0", BriefTerms("en", (), QUAKE_STORY), START, QUAKE_HEADLINE)
    assert encoder.calls == 1
