"""Term extraction, clustering, windows, the spike detector and the engine, without a broker."""

from __future__ import annotations

import copy
import io
import itertools
import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirewatch.core.clustering import ClusterConfig
from wirewatch.core.engine import EngineState, HeldWrites, StoryEngine
from wirewatch.core.marks import NEWEST, ProcessedMarks
from wirewatch.core.parser import parse_page
from wirewatch.core.spikes import (
    DetectorConfig,
    SpikeDetector,
    TopicHistory,
    negative_binomial_head,
    negative_binomial_tail,
    surprise,
)
from wirewatch.core.terms import AliasTable, LanguageDetector, TermExtractor
from wirewatch.core.windows import HoppingCounts, HoppingWindows
from wirewatch.models import ClusterInput
from wirewatch.offline.backtest import read_counts, run_backtest

FETCHED = datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc)
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def extractor() -> TermExtractor:
    return TermExtractor(AliasTable.default(), LanguageDetector(("nl", "en", "de", "fr")))


def engine(extractor, **detector) -> StoryEngine:
    config = DetectorConfig(**detector)
    return StoryEngine(extractor, config, ClusterConfig(), EngineState.in_memory(config))


def final_stories(stories: StoryEngine, inputs: list[ClusterInput]) -> dict[str, str]:
    """Brief id → the story that holds it once every brief is in, absorbed stories followed to their survivor."""
    from wirewatch.offline.evaluation import resolve_merges

    assignments, merges = {}, []
    for brief in inputs:
        story = stories.process(brief).story
        assignments[brief.id] = story.id
        merges += [(gone, story.id) for gone in story.merged_story_ids]
    return resolve_merges(assignments, merges)


def seed_inputs(seed_page) -> list[ClusterInput]:
    briefs = parse_page(seed_page, fetched_at=FETCHED, source="seed").briefs
    return sorted((ClusterInput.from_brief(b) for b in briefs), key=lambda b: (b.published_at, b.id))


class TestTerms:
    def test_word_rarity_read_from_the_word_list_equals_wordfreqs_own_lookup(self, seed_page):
        from wordfreq import zipf_frequency

        from wirewatch.core.terms import _COMMON_ZIPF, _TOKEN, _fold, _is_common, _zipf

        texts = [seed_page] + [r["text"] for name in ("real-headlines.jsonl", "real-tweets.jsonl") for r in labelled(name)]
        words = {_fold(word) for text in texts for word in _TOKEN.findall(text)} | {"straße", "ﬁnal", "ıstanbul"}
        raw = {word for text in texts for word in _TOKEN.findall(text)} | {"Istanbul", "İzmir", "Volgens", "STRASSE"}
        for language in ("en", "nl", "es", "pt", "tl", "tr", "ar"):
            differing = [word for word in sorted(words) if _zipf(word, language) != zipf_frequency(word, language)]
            assert not differing, (language, differing[:5])
            misjudged = [w for w in sorted(raw) if _is_common(w, language) != (zipf_frequency(w, language) >= _COMMON_ZIPF)]
            assert not misjudged, (language, misjudged[:5])

    @pytest.mark.parametrize(
        ("text", "topic"),
        [
            ("Trump wil Groenland kopen.", "greenland"),
            ("Trump wants to buy Greenland.", "greenland"),
            ("Trump vil købe Grønland.", "greenland"),
            ("Het gesprek met Denemarken liep vast.", "denmark"),
            ("Talks with Denmark stalled.", "denmark"),
            ("De Deense premier reageerde.", "denmark"),
            ("De VS reageerden verbaasd.", "united states"),
            ("De Verenigde Staten reageerden.", "united states"),
            ("De Amerikaanse president sprak.", "united states"),
            ("Noord-Korea testte een raket.", "north korea"),
            ("Noord-Koreanen vechten mee.", "north korea"),
            ("Noord-Koreaanse troepen zijn gezien.", "north korea"),
        ],
    )
    def test_names_of_one_thing_are_one_topic(self, extractor, text, topic):
        assert topic in extractor.extract(text).topics

    def test_abbreviations_match_only_in_capitals(self, extractor):
        assert "united states" not in extractor.extract("He told us the plan was ready.").topics
        assert "united states" in extractor.extract("The US said the plan was ready.").topics

    def test_names_and_short_forms(self, extractor):
        terms = extractor.extract("De Amerikaanse president Donald Trump sprak in Davos. Trump zei dat hij wil onderhandelen.")
        assert "donald trump" in terms.topics and "trump" not in terms.topics
        assert "davos" in terms.topics
        assert "onderhandelen" in terms.weights, "content words stay"
        assert "dat" not in terms.weights and "de" not in terms.weights, "stopwords go"

    def test_sentence_openers_are_not_names(self, extractor):
        terms = extractor.extract("Volgens de bronnen gebeurde het gisteren. Dat is opvallend.")
        assert terms.topics == ()

    def test_language_is_detected_per_text(self, extractor):
        assert extractor.extract("De Amerikaanse president wil onmiddellijk onderhandelen met Denemarken.").language == "nl"
        assert extractor.extract("The American president wants to negotiate with Denmark at once.").language == "en"

    def test_unknown_languages_degrade_to_plain_words(self):
        plain = TermExtractor(AliasTable.default(), None)
        terms = plain.extract("Kashiwazaki-Kariwa taas käynnissä Japanissa.")
        assert "kashiwazaki kariwa" in terms.topics
        assert terms.language is None and terms.weights

    def test_users_can_extend_the_aliases(self, tmp_path, extractor):
        extra = tmp_path / "aliases.tsv"
        extra.write_text("# desk additions\nworld economic forum\tWEF | Wereld Economisch Forum\n", encoding="utf-8")
        custom = TermExtractor(AliasTable.default(extra), None)
        assert "world economic forum" in custom.extract("Het WEF begint maandag.").topics
        assert "world economic forum" not in extractor.extract("Het WEF begint maandag.").topics


def story_ids(extractor, texts: list[str]) -> set[str]:
    """The stories a fresh engine puts ``texts`` in, one minute apart."""
    stories = engine(extractor)
    return {
        stories.process(ClusterInput(id=f"b{i}", text=text, published_at=FETCHED + timedelta(minutes=i))).story.id
        for i, text in enumerate(texts)
    }


class TestClustering:
    def test_one_story_phrased_differently_is_one_story(self, extractor):
        texts = [
            "De Amerikaanse president Donald Trump wil Groenland kopen van Denemarken.",
            "Trump zegt dat de Verenigde Staten Groenland nodig hebben; Denemarken weigert.",
            "US President Donald Trump again said he wants to buy Greenland from Denmark.",
        ]
        assert len(story_ids(extractor, texts)) == 1

    def test_unrelated_briefs_are_separate_stories(self, extractor):
        texts = [
            "Japan heeft de kerncentrale Kashiwazaki-Kariwa weer opgestart.",
            "De Amerikaanse speciale gezant Steve Witkoff reist naar Rusland voor een ontmoeting met Poetin.",
            "Het Europees Parlement laakt de importtarieven op Groenland en Denemarken.",
        ]
        assert len(story_ids(extractor, texts)) == 3

    def test_the_seed_greenland_briefs_share_a_story(self, extractor, seed_page):
        assignments = final_stories(engine(extractor), seed_inputs(seed_page))
        inputs = seed_inputs(seed_page)
        greenland = {b.id for b in inputs if "Groenland" in b.text}
        assert len(greenland) == 4 and len({assignments[i] for i in greenland}) == 1
        story = assignments[next(iter(greenland))]
        # Von der Leyen not meeting Trump in Davos, two hours before, opens a story that the Greenland story
        # absorbs once they converge; the North Korea lead, the Japanese reactor and Witkoff's trip to Moscow
        # stay apart.
        davos = {b.id for b in inputs if "von der Leyen" in b.text}
        assert {i for i, s in assignments.items() if s == story} == greenland | davos
        lead = next(b.id for b in inputs if b.headline)
        assert sum(1 for s in assignments.values() if s == assignments[lead]) == 1

    def test_the_seed_ends_in_the_same_stories_wherever_the_earlier_davos_brief_arrives(self, extractor, seed_page):
        # Briefs of one page reach the story stage from several candidate partitions, so an older brief may
        # come after newer ones: it then joins their story, or opens one that they absorb.
        inputs = seed_inputs(seed_page)
        davos = next(b for b in inputs if "von der Leyen" in b.text)
        others = [b for b in inputs if b is not davos]
        outcomes = set()
        for position in range(len(others) + 1):
            stories = engine(extractor)
            final = final_stories(stories, others[:position] + [davos] + others[position:])
            groups = {}
            for brief_id, story in final.items():
                groups.setdefault(story, set()).add(brief_id)
            outcomes.add(frozenset(frozenset(group) for group in groups.values()))
            assert len(stories.state.stories) == 4
        assert len(outcomes) == 1

    def test_stories_expire(self, extractor):
        stories = engine(extractor)
        first = stories.process(ClusterInput(id="a", text="Groenland en Denemarken praten.", published_at=FETCHED))
        stories.process(ClusterInput(id="b", text="Iets heel anders over Japan.", published_at=FETCHED + timedelta(days=4)))
        assert first.story.id not in stories.state.stories
        again = stories.process(
            ClusterInput(id="c", text="Groenland en Denemarken praten.", published_at=FETCHED + timedelta(hours=7))
        )
        assert again.story.id == "story-c"


class TestWindows:
    def test_ranges_match_faust_hopping_windows(self):
        from faust.windows import HoppingWindow

        ours, faust_window = HoppingWindows(1800, 300), HoppingWindow(1800, 300)
        rng = random.Random(7)
        for _ in range(500):
            timestamp = T0 + rng.uniform(0, 86400)
            assert ours.ranges(timestamp) == [tuple(r) for r in faust_window.ranges(timestamp)]

    def test_counts_per_window(self):
        counts = HoppingCounts(HoppingWindows(1800, 300))
        for minutes in (0, 4, 12, 29, 31):
            counts.add("k", T0 + minutes * 60)
        by_start = {w.start: w.count for w in counts.counts("k", T0 + 29 * 60)}
        assert sorted(by_start) == [T0 + m * 60 for m in range(0, 30, 5)]
        assert by_start[T0] == 4  # [0, 30) holds 0, 4, 12, 29
        assert by_start[T0 + 300] == 3  # [5, 35) holds 12, 29, 31
        assert by_start[T0 + 1500] == 2  # [25, 55) holds 29, 31

    def test_step_larger_than_size_is_rejected(self):
        with pytest.raises(ValueError):
            HoppingWindows(300, 600)
        with pytest.raises(ValueError, match="whole number"):
            HoppingWindows(1000, 300)

    def test_fractional_seconds_are_refused_as_faust_would_mislay_them(self, monkeypatch):
        from faust.windows import HoppingWindow

        with pytest.raises(ValueError, match="whole seconds"):
            HoppingWindows(1.0, 0.5)
        with pytest.raises(ValueError, match="whole seconds"):
            HoppingWindows(603.0, 100.5)
        # What the check guards against: Faust's own ranges step by int(step).
        with pytest.raises(ValueError):
            HoppingWindow(1.0, 0.5).ranges(10.0)
        starts = [start for start, _ in HoppingWindow(603.0, 100.5).ranges(1000.0)]
        assert {b - a for a, b in zip(starts, starts[1:])} == {100.0}, "windows 100 s apart, not 100.5"
        monkeypatch.setenv("WIREWATCH_WINDOW_STEP_SECONDS", "100.5")
        monkeypatch.setenv("WIREWATCH_WINDOW_SIZE_SECONDS", "603")
        from wirewatch.settings import Settings

        with pytest.raises(ValueError, match="whole seconds"):
            Settings()

    def test_whole_second_windows_match_faust(self):
        from faust.windows import HoppingWindow

        for size, step in ((1800, 300), (600, 600), (90, 30)):
            for timestamp in (T0, T0 + 299.9, T0 + 1234.5):
                assert HoppingWindows(size, step).ranges(timestamp) == HoppingWindow(size, step).ranges(timestamp)

    def test_a_window_is_the_sum_of_its_step_buckets(self):
        # What the worker's windowed tables rely on: one tumbling bucket per step.
        windows = HoppingWindows(1800, 300)
        hopping, buckets = HoppingCounts(windows), HoppingCounts(HoppingWindows(300, 300))
        rng = random.Random(3)
        for _ in range(300):
            moment = T0 + rng.uniform(0, 4 * 3600)
            hopping.add("k", moment)
            buckets.add("k", moment)
        for probe in (T0 + rng.uniform(0, 4 * 3600) for _ in range(50)):
            for window in hopping.counts("k", probe):
                summed = sum(buckets.counts("k", step)[0].count for step in windows.steps(window.start))
                assert summed == window.count


class TestDetector:
    def test_negative_binomial_tail_against_a_direct_sum(self):
        mean, shape = 1.5, 2.0
        p = shape / (shape + mean)
        pmf = [math.comb(k + 1, k) * p**2 * (1 - p) ** k for k in range(200)]  # shape 2: C(k+1, k)
        for count in (0, 1, 3, 8, 20):
            assert negative_binomial_tail(count, mean, shape) == pytest.approx(sum(pmf[count:]), rel=1e-9)

    def test_surprise_grows_with_the_count_and_shrinks_with_the_mean(self):
        assert surprise(4, 0.1, 2.0) > surprise(3, 0.1, 2.0) > surprise(3, 1.0, 2.0)
        assert surprise(0, 1.0, 2.0) == 0.0

    def test_overdispersion_is_more_forgiving_than_poisson(self):
        # shape → ∞ is Poisson; shape 2 lets bursty news through.
        assert surprise(10, 3.0, 2.0) < surprise(10, 3.0, 1e6)

    def test_the_tail_sums_agree_with_direct_sums_at_large_counts(self):
        mean, shape = 400.0, 7.5
        p = shape / (shape + mean)
        log_pmf = lambda k: (math.lgamma(k + shape) - math.lgamma(shape) - math.lgamma(k + 1)  # noqa: E731
                             + shape * math.log(p) + k * math.log1p(-p))
        pmf = [math.exp(log_pmf(k)) for k in range(6000)]
        for count in (50, 400, 1200, 3000):
            assert negative_binomial_tail(count, mean, shape) == pytest.approx(sum(pmf[count:]), rel=1e-8)
            assert negative_binomial_head(count, mean, shape) == pytest.approx(sum(pmf[: count + 1]), rel=1e-8)

    def test_a_burst_does_not_raise_its_own_bar(self):
        detector = SpikeDetector(DetectorConfig())
        history = TopicHistory()
        for index in range(12):
            detector.add(history, T0 + index * 60, 1, [[f"b{index}", "s"]], observed_since=T0 - 86400, zipf=3.0)
        assert history.mass == 0, "no step of the open windows is in the baseline yet"
        later = T0 + 3 * 3600
        detector.add(history, later, 1, [["late", "s"]], observed_since=T0 - 86400, zipf=3.0)
        assert history.mass > 0 and history.folded < detector.step_of(later) - DetectorConfig().window_size + 1

    def test_rows_from_before_step_counts_become_step_counts(self):
        old = {"mass": 2.5, "mass_time": T0 - 7200, "recent": [[T0, "a", "s1"], [T0 + 60, "b", "s1"], [T0 + 400, "c", "s2"]]}
        history = TopicHistory.from_dict(old, step=300)
        assert (history.count_at(T0), history.count_at(T0 + 300), history.mass) == (2, 1, 2.5)
        assert history.holds(T0, "b") and TopicHistory.from_dict(history.to_dict(), step=300) == history
        assert TopicHistory.newest_in(old) == T0 + 400 and TopicHistory.newest_in(history.to_dict()) == T0 + 300
        coarse = TopicHistory.from_dict(old, step=600)
        assert (coarse.count_at(T0), coarse.count_at(T0 + 300), coarse.count_at(T0 + 600)) == (3, 0, 0)


def series(function, *, days=3, step=300) -> str:
    lines = ["timestamp,count"]
    for index in range(int(days * 86400 / step)):
        timestamp = T0 + index * step
        lines.append(f"{datetime.fromtimestamp(timestamp, timezone.utc).isoformat()},{function(timestamp, index)}")
    return "\n".join(lines)


def poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def raised(alerts: list) -> set[str]:
    return {alert.id for alert in alerts}


def backtest(text: str, **settings) -> list:
    return list(run_backtest(read_counts(io.StringIO(text), default_topic="topic"), DetectorConfig(**settings)))


class TestBacktest:
    def test_a_flat_series_raises_nothing(self):
        assert backtest(series(lambda t, i: 2)) == []

    def test_a_daily_cycle_alone_raises_nothing(self):
        rng = random.Random(3)
        daily = lambda t, i: poisson(rng, 2.0 * (1 + 0.8 * math.sin(2 * math.pi * (t % 86400) / 86400)))  # noqa: E731
        assert backtest(series(daily, days=4)) == []

    def test_an_injected_burst_alerts_in_the_window_where_it_starts(self):
        rng = random.Random(5)
        burst_start = 600  # steps of 5 minutes: 50 hours in
        text = series(lambda t, i: poisson(rng, 0.3) + (6 if burst_start <= i < burst_start + 4 else 0))
        alerts = backtest(text)
        assert alerts, "the burst is detected"
        first = alerts[0]
        start = T0 + burst_start * 300
        assert first.window_start.timestamp() <= start <= first.window_end.timestamp()
        assert first.detected_at.timestamp() - start <= 2 * 300
        assert {a.id for a in alerts} == {first.id} or any(a.escalation for a in alerts)

    def test_a_level_shift_raises_at_most_one_alert(self):
        rng = random.Random(11)
        shifted = lambda t, i: poisson(rng, 20.0 if i < 3 * 288 else 60.0)  # noqa: E731
        assert len(raised(backtest(series(shifted, days=6)))) <= 1

    def test_a_burst_at_night_alerts_once_it_beats_the_topics_busiest_hours(self):
        night = lambda t: (t % 86400) < 6 * 3600  # noqa: E731
        burst = T0 + 5 * 86400 + 3 * 3600

        def night_burst(extra: float) -> list:
            rng = random.Random(12)
            cycle = lambda t, i: poisson(rng, (3.0 if night(t) else 40.0) + (extra if burst <= t < burst + 1800 else 0.0))  # noqa: E731
            # The first morning is news to a detector that has never seen one; from the second day on it knows the cycle.
            return [a for a in backtest(series(cycle, days=6)) if a.detected_at.timestamp() >= T0 + 86400]

        # Eight times the night's count, yet below every afternoon: real mention counts burst like that daily.
        assert night_burst(25.0) == []
        alerts = night_burst(200.0)
        assert len({a.id for a in alerts if a.escalation == 0}) == 1
        assert alerts[0].window_start.timestamp() <= burst + 1800 and alerts[0].detected_at.timestamp() >= burst
        assert alerts[0].direction == "rise" and "expected" in alerts[0].reason

    def test_a_busy_topics_modest_rise_alerts_once_the_mentions_after_it_beat_its_bar_too(self):
        jump = 2 * 288  # steps of 5 minutes: two days of ten mentions a step, sixty a half hour

        def alerts_for(extra: dict[int, int], **settings) -> list:
            return backtest(series(lambda t, i: 10 + extra.get(i, 0)), **settings)

        faded = {jump: 40}  # 100 in a half hour against a busiest 60, then back to 60
        assert alerts_for(faded) == []
        lasting = alerts_for(faded | {jump + k: 8 for k in range(1, 12)})
        assert len(raised(lasting)) == 1
        # Eighteen a step after the rise: past the busiest sixty 20 minutes on, when it alerts.
        assert lasting[0].detected_at.timestamp() == T0 + (jump + 4) * 300
        assert "busiest 30 min lately had 60; it held: 72 more in the 20 min after it rose" in lasting[0].reason
        clear = alerts_for({jump: 100})  # 160: over twice the busiest half hour is news at once
        assert clear and clear[0].detected_at.timestamp() == T0 + jump * 300
        assert alerts_for(faded, hold=0)[0].detected_at.timestamp() == T0 + jump * 300

    def test_a_busy_topic_rises_only_once_the_stream_has_shown_it_a_whole_day(self):
        def jump_at(step: int, **settings) -> set[str]:
            return raised(backtest(series(lambda t, i: 10 + (100 if i == step else 0)), **settings))

        # 160 in a half hour against sixty: news on the second day, not half a day into the stream.
        assert len(jump_at(2 * 288)) == 1
        assert jump_at(144) == set()
        assert len(jump_at(144, ceiling_warmup=3600.0)) == 1

    def test_a_hold_is_whole_window_steps_and_at_most_one_window(self):
        with pytest.raises(ValueError, match="hold"):
            DetectorConfig(hold=450.0)
        with pytest.raises(ValueError, match="at most one window"):
            DetectorConfig(hold=3600.0)

    def test_a_sparse_topic_going_from_nothing_to_four_mentions_in_22_minutes_raises_one_alert(self):
        mentions = {T0 + 2 * 86400 + minute * 60 for minute in (0, 7, 15, 22)}
        rows = ["timestamp,count"]
        for index in range(3 * 288 * 5):  # a row a minute for three days
            moment = T0 + index * 60
            rows.append(f"{datetime.fromtimestamp(moment, timezone.utc).isoformat()},{int(moment in mentions)}")
        alerts = backtest("\n".join(rows))
        assert len(raised(alerts)) == 1 and alerts[0].count in (3, 4)

    def test_a_busy_series_gone_quiet_raises_one_drop(self):
        rng = random.Random(13)
        outage = T0 + 4 * 86400 + 12 * 3600
        quiet = lambda t, i: poisson(rng, 3.0 if outage <= t < outage + 7200 else 100.0)  # noqa: E731
        alerts = backtest(series(quiet, days=5))
        assert [a.direction for a in alerts if a.revision == 1] == ["drop"]
        assert alerts[0].window_end.timestamp() > outage and outage < alerts[0].detected_at.timestamp() < outage + 3600

    def test_a_feed_that_stops_pages_nobody_on_the_desk(self):
        # Two hours without a single mention of a topic counted in hundreds: the feed stopped (the operator's
        # WirewatchNoInput), not the news. Falling to a handful, as in the test above, is still a drop.
        rng = random.Random(13)
        outage = T0 + 4 * 86400 + 12 * 3600
        stopped = lambda t, i: 0 if outage <= t < outage + 7200 else poisson(rng, 100.0)  # noqa: E731
        assert [a for a in backtest(series(stopped, days=5)) if a.direction == "drop"] == []

    def test_replaying_the_same_counts_gives_the_same_alerts(self):
        rng = random.Random(14)
        text = series(lambda t, i: poisson(rng, 5.0) + (30 if 700 <= i < 704 else 0), days=4)
        first = [a.model_dump() for a in backtest(text)]
        assert first and first == [a.model_dump() for a in backtest(text)]

    def test_a_topic_state_stays_the_same_size_whatever_its_volume_and_age(self):
        detector = SpikeDetector(DetectorConfig())
        sizes = {}
        for mean in (5.0, 500.0):
            rng, history = random.Random(15), TopicHistory()
            for index in range(20 * 288):
                moment = T0 + index * 300
                count = poisson(rng, mean * (1.5 + math.sin(2 * math.pi * (moment % 86400) / 86400)) / 2.5)
                detector.add(history, moment, count, [[f"b{index}-{k}", "s"] for k in range(count)],
                             observed_since=T0, zipf=3.0)
                if index in (8 * 288, 20 * 288 - 1):
                    sizes[mean, index] = len(json.dumps(history.to_dict()))
        # A hundred times the volume or twelve more days change the row by digits, not by entries.
        assert max(sizes.values()) < 1.25 * min(sizes.values()), sizes

    def test_three_column_files_track_each_topic(self):
        rows = ["timestamp,topic,count"]
        for index in range(600):
            stamp = datetime.fromtimestamp(T0 + index * 300, timezone.utc).isoformat()
            rows.append(f"{stamp},steady,1")
            rows.append(f"{stamp},sudden,{8 if 500 <= index < 503 else 0}")
        alerts = backtest("\n".join(rows))
        assert {a.topic for a in alerts} == {"sudden"}

    def test_bad_rows_name_their_line(self):
        with pytest.raises(ValueError, match="line 3"):
            read_counts(io.StringIO("timestamp,count\n2026-01-01T00:00:00Z,1\n2026-01-01T00:05:00Z,many\n"), default_topic="t")


class TestEngine:
    def test_the_seed_page_raises_one_alert_on_greenland(self, extractor, seed_page):
        stories = engine(extractor)
        alerts = [alert for brief in seed_inputs(seed_page) for alert in stories.process(brief).alerts]
        greenland = {b.id for b in seed_inputs(seed_page) if "Groenland" in b.text}
        assert {a.id for a in alerts} == {alerts[0].id}
        final = alerts[-1]
        assert final.topic == "greenland" and set(final.brief_ids) == greenland and final.count == 4
        assert [a.revision for a in alerts] == list(range(1, len(alerts) + 1))

    def test_an_alert_lists_its_first_briefs_and_counts_them_all(self, extractor):
        stories = engine(extractor, warmup=0)
        alerts = []
        for second in range(0, 30 * 40, 40):
            text = f"Groenland: Trump stuurt schepen naar Groenland, bericht {second}."
            brief = ClusterInput(id=f"g{second:04d}", text=text, published_at=FETCHED + timedelta(seconds=second))
            alerts += [a for a in stories.process(brief).alerts if a.topic == "greenland"]
        final = max(alerts, key=lambda a: (a.escalation, a.revision))
        assert final.count == 30 and len(final.brief_ids) == 10
        assert final.brief_ids == sorted(final.brief_ids)[:10] and final.brief_ids[0] == "g0000"
        assert final.reason.startswith("30 in 30 min against")

    def test_single_brief_stories_raise_nothing(self, extractor, seed_page):
        stories = engine(extractor)
        singles = [b for b in seed_inputs(seed_page) if "Groenland" not in b.text]
        assert [alert for brief in singles for alert in stories.process(brief).alerts] == []

    def test_replaying_the_same_briefs_gives_the_same_stories_and_alerts(self, extractor, seed_page):
        def replay():
            stories = engine(extractor)
            results = [stories.process(brief) for brief in seed_inputs(seed_page)]
            return [r.story for r in results], [a for r in results for a in r.alerts]

        assert replay() == replay()

    def test_an_escalating_spike_raises_a_new_alert(self, extractor):
        stories = engine(extractor, warmup=0)
        ids = set()
        for minute in range(14):
            text = f"Groenland: Trump stuurt schepen naar Groenland, bericht {minute}."
            brief = ClusterInput(id=f"g{minute}", text=text, published_at=FETCHED + timedelta(minutes=minute))
            ids |= {(a.id, a.escalation) for a in stories.process(brief).alerts if a.topic == "greenland"}
        levels = {level for _, level in ids}
        assert 0 in levels and 1 in levels
        assert len({alert_id for alert_id, _ in ids}) == len(levels)


    def test_a_late_brief_joins_its_alert_after_the_stream_moved_on(self, extractor):
        stories = engine(extractor, warmup=0)
        raised = []
        for minute in range(6):
            text = f"Groenland: Trump stuurt schepen naar Groenland, bericht {minute}."
            brief = ClusterInput(id=f"g{minute}", text=text, published_at=FETCHED + timedelta(minutes=minute))
            raised += stories.process(brief).alerts
        assert raised and raised[0].revision == 1
        # Other news moves the stream three hours on; then a Greenland brief from minute 7 arrives late.
        for step in range(1, 19):
            moment = FETCHED + timedelta(minutes=10 * step)
            stories.process(ClusterInput(id=f"j{step}", text=f"Japan kiest een nieuwe premier, deel {step}.", published_at=moment))
        late = stories.process(
            ClusterInput(id="g7", text="Groenland: nog meer schepen bij Groenland.", published_at=FETCHED + timedelta(minutes=7))
        )
        greenland = [alert for alert in late.alerts if alert.topic == "greenland"]
        assert greenland and all(alert.id == raised[0].id and alert.revision > 1 for alert in greenland)

    def test_briefs_read_again_after_the_stream_moved_past_their_windows_raise_nothing(self, extractor):
        # After a crash a backlog is read again while other partitions carried the stream hours on:
        # the briefs' processed marks and their alert are forgotten by then, but their counts may not be.
        stories = engine(extractor, warmup=0)
        greenland = [
            ClusterInput(id=f"g{minute}", text=f"Groenland: Trump stuurt schepen naar Groenland, bericht {minute}.",
                         published_at=FETCHED + timedelta(minutes=minute))
            for minute in range(6)
        ]
        raised = {alert.id for brief in greenland for alert in stories.process(brief).alerts if alert.revision == 1}
        assert len(raised) == 1
        later = FETCHED + timedelta(hours=10)
        stories.process(ClusterInput(id="j", text="Japan kiest een nieuwe premier.", published_at=later))
        again = [stories.process(brief) for brief in greenland]
        assert [alert for result in again for alert in result.alerts if alert.id not in raised] == []
        assert all(result.late for result in again)
        # A late brief seen for the first time still gets a story, and counts for no spike.
        history = copy.deepcopy(stories.state.topic_history.get("greenland"))
        first_seen = stories.process(ClusterInput(id="g9", text="Groenland: nog meer schepen bij Groenland.",
                                                  published_at=FETCHED + timedelta(minutes=9)))
        assert first_seen.late and first_seen.story is not None and first_seen.alerts == []
        assert stories.state.topic_history.get("greenland") == history


class TestEvaluation:
    def test_perfect_and_merged_clusterings(self):
        from wirewatch.offline.evaluation import score_clusters

        truth = {"a": "x", "b": "x", "c": "y", "d": "y"}
        assert score_clusters(truth, {"a": 1, "b": 1, "c": 2, "d": 2})["bcubed_f1"] == 1.0
        merged = score_clusters(truth, {"a": 1, "b": 1, "c": 1, "d": 1})
        assert merged["bcubed_recall"] == 1.0 and merged["bcubed_precision"] == 0.5
        assert merged["pairwise_precision"] == round(2 / 6, 4) and merged["pairwise_recall"] == 1.0

    def test_alert_matching_and_delay(self):
        from wirewatch.offline.evaluation import score_alerts

        spikes = [{"id": "s1", "start": 1000.0}, {"id": "s2", "start": 5000.0}]
        brief_spike = {"a": "s1", "b": "s1", "c": "s1", "z": None}
        alerts = [
            {"id": "A", "revision": 1, "brief_ids": ["a", "b", "c"], "detected_at": 1300.0},
            {"id": "A", "revision": 2, "brief_ids": ["a", "b", "c"], "detected_at": 1500.0},
            {"id": "B", "revision": 1, "brief_ids": ["z"], "detected_at": 2000.0},
        ]
        report = score_alerts(spikes, brief_spike, alerts)
        assert (report["alerts"], report["true_alerts"], report["precision"], report["recall"]) == (2, 1, 0.5, 0.5)
        assert report["median_delay_seconds"] == 300.0 and report["missed_spikes"] == ["s2"]


def test_a_brief_read_again_changes_nothing(extractor, seed_page):
    stories = engine(extractor)
    inputs = seed_inputs(seed_page)
    results = [stories.process(brief) for brief in inputs]
    counts = {topic: dict(h) for topic, h in stories.state.topic_history.items()}
    again = stories.process(inputs[-2])  # STRAATSBURG, which revised the Greenland alert
    assert again.replayed and again.story.id == results[-2].story.id
    assert [a.id for a in again.alerts] == [a.id for a in results[-2].alerts]
    assert {topic: dict(h) for topic, h in stories.state.topic_history.items()} == counts
    history = TopicHistory.from_dict(stories.state.topic_history["greenland"], step=300)
    assert max(w.count for w in stories.spikes.detector.windows_containing(history, inputs[-2].published_at.timestamp(), 4.0)) == 4


def test_windows_are_dropped_by_event_time():
    counts = HoppingCounts(HoppingWindows(1800, 300))
    counts.add("k", T0)
    counts.add("k", T0 + 4 * 3600)
    counts.forget_before(T0 + 3600)
    assert max(w.count for w in counts.counts("k", T0)) == 0
    assert max(w.count for w in counts.counts("k", T0 + 4 * 3600)) == 1


def test_replaying_old_briefs_counts_like_a_live_feed(extractor, seed_page):
    # The same page a year earlier raises the same alert: windows run on event time only.
    def alerts(shift: timedelta):
        stories = engine(extractor)
        found = []
        for brief in seed_inputs(seed_page):
            moved = brief.model_copy(update={"published_at": brief.published_at - shift})
            found += [(a.topic, a.count) for a in stories.process(moved).alerts]
        return found

    assert alerts(timedelta(days=365)) == alerts(timedelta(0)) != []


STATE_TABLES = ("stories", "topic_history", "alerts", "stream", "story_counts")


@pytest.mark.parametrize("crash_after_batch", range(4))
def test_a_crash_that_keeps_any_part_of_a_batch_alerts_once(extractor, seed_page, crash_after_batch):
    """The worker marks a batch processed only after its other writes reached the broker.

    A crash before that keeps any subset of the batch's table writes (each
    table's changelog is cut on its own); a crash after it keeps them all and
    maybe the marks. Replayed, every case raises one Greenland alert and counts
    each Greenland brief once.
    """
    inputs = seed_inputs(seed_page)
    batches = [inputs[i : i + 2] for i in range(0, len(inputs), 2)]
    greenland = {b.id for b in inputs if "Groenland" in b.text}
    davos_story = greenland | {b.id for b in inputs if "von der Leyen" in b.text}

    def run_batch(stories: StoryEngine, batch) -> list:
        results = [stories.apply(brief) for brief in batch]
        for result in results:
            stories.mark_processed(result)
        stories.state.processed.apply()
        return [alert for result in results for alert in result.alerts]

    before = engine(extractor)
    published = [alert for batch in batches[:crash_after_batch] for alert in run_batch(before, batch)]
    committed = copy.deepcopy(before.state)
    crashed = [before.apply(brief) for brief in batches[crash_after_batch]]
    applied = copy.deepcopy(before.state)
    published += [alert for result in crashed for alert in result.alerts]  # maybe sent before the crash
    marks = {result.brief_id: result.record for result in crashed}

    cuts = [set(kept) for size in range(len(STATE_TABLES) + 1) for kept in itertools.combinations(STATE_TABLES, size)]
    for kept, marked in [(cut, False) for cut in cuts] + [(set(STATE_TABLES), True)]:
        recovered = engine(extractor)
        state = recovered.state
        for name in STATE_TABLES:
            setattr(state, name, copy.deepcopy(getattr(applied if name in kept else committed, name)))
        state.processed = ProcessedMarks(copy.deepcopy(committed.processed.store))
        if marked:
            for brief_id, mark in marks.items():
                state.processed.hold(brief_id, mark)
            state.processed.apply()
        recovered.clusterer.stories = state.stories
        alerts = published + [alert for batch in batches[crash_after_batch:] for alert in run_batch(recovered, batch)]
        cut = f"kept {sorted(kept)}, marks {'kept' if marked else 'lost'}"
        raised = {alert.id for alert in alerts if alert.topic == "greenland" and alert.revision == 1}
        assert len(raised) == 1, f"{cut}: Greenland raised as {raised}"
        final = max((a for a in alerts if a.topic == "greenland"), key=lambda a: a.revision)
        assert state.stories[final.story_ids[0]]["count"] == len(davos_story), cut
        assert final.count == 4 and set(final.brief_ids) == greenland, cut


class _CountingStore(dict):
    """A dict that counts writes and deletions, as a Faust table's changelog would record them."""

    writes = 0

    def __setitem__(self, key, value) -> None:
        self.writes += 1
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self.writes += 1
        super().__delitem__(key)


def test_a_batch_of_marks_is_one_row_and_each_brief_is_found_in_it():
    store = _CountingStore()
    marks = ProcessedMarks(store)
    for number in range(50):
        marks.hold(f"b{number}", {"t": 1000.0 + number, "story": "s", "alerts": []})
    assert marks.get("b7") == {"t": 1007.0, "story": "s", "alerts": []} and store.writes == 0
    assert marks.apply() == 50
    # One row for the batch and one naming it the newest: two changelog records for fifty marks.
    assert store.writes == 2 and len(marks) == 50
    assert marks.get("b49")["t"] == 1049.0 and marks.get("b50") is None


def test_marks_written_by_another_worker_are_found_after_a_takeover():
    shared = {}
    first, second = ProcessedMarks(shared), ProcessedMarks(shared)
    first.hold("a", {"t": 1.0, "story": "s", "alerts": []})
    first.apply()
    assert second.get("a") is not None  # indexed from the rows on first use
    second.hold("b", {"t": 2.0, "story": "s", "alerts": []})
    second.apply()
    # The first worker's index predates the second's batch: the newest row tells it to read the rows again.
    assert first.get("b") == {"t": 2.0, "story": "s", "alerts": []}
    # A batch read again after a crash reuses its row's name; it still counts as a write the index has not seen.
    first.hold("c", {"t": 3.0, "story": "s", "alerts": []})
    first.apply()
    shared["batch-c"] = {"t": 3.0, "marks": {"c": shared["batch-c"]["marks"]["c"], "d": {"t": 3.0, "story": "s", "alerts": []}}}
    shared[NEWEST] = {"row": "batch-c", "n": shared[NEWEST]["n"] + 1}
    assert first.get("d") is not None


def test_marks_go_a_batch_at_a_time_once_all_of_them_are_past_the_horizon():
    marks = ProcessedMarks({"old-brief": {"t": 5.0, "story": "s", "alerts": []}})  # a row from before batching
    for number, moment in enumerate((10.0, 20.0)):
        marks.hold(f"b{number}", {"t": moment, "story": "s", "alerts": []})
    marks.apply()
    marks.hold("late", {"t": 30.0, "story": "s", "alerts": []})
    marks.apply()
    assert marks.get("old-brief") is not None
    assert marks.forget_before(15.0) == 1  # the old row; the batch keeps b0 until b1 is past too
    assert (marks.get("old-brief"), marks.get("b0") is not None) == (None, True)
    assert marks.forget_before(25.0) == 1
    assert (marks.get("b0"), marks.get("b1"), marks.get("late") is not None) == (None, None, True)


def test_held_writes_reach_the_store_once_per_key_when_applied():
    store = _CountingStore(old=1, gone=2)
    held = HeldWrites(store)
    for count in range(1, 11):
        held["greenland"] = count
    del held["gone"]
    assert (held["greenland"], "gone" in held, sorted(held), len(held)) == (10, False, ["greenland", "old"], 2)
    with pytest.raises(KeyError):
        held["gone"]
    assert store == {"old": 1, "gone": 2} and store.writes == 0, "nothing reaches the store before apply"
    assert held.apply() == 2
    assert store == {"old": 1, "greenland": 10} and store.writes == 2
    held["fresh"] = 1
    del held["fresh"]
    held.apply()
    assert "fresh" not in store and store.writes == 2, "a key written and deleted within a batch never reaches it"
    held["greenland"] = 11
    held.discard()
    assert (held["greenland"], held.apply(), store.writes) == (10, 0, 2), "a discarded batch leaves the store alone"


def test_the_engine_decides_alike_over_held_writes_applied_per_batch(extractor):
    from wirewatch.offline.simulation import Scenario, simulate

    scenario = Scenario(hours=12, seed=5, spikes=4, snapshot_every=86400)
    briefs = sorted(simulate(scenario, datetime(2026, 3, 2, tzinfo=timezone.utc)).briefs, key=lambda b: b.published_at)
    inputs = [ClusterInput(id=b.id, text=b.text, headline=b.headline, published_at=b.published_at) for b in briefs]

    def run(batch_size: int | None) -> tuple[list, list, dict]:
        config = DetectorConfig()
        plain = EngineState.in_memory(config)
        state = plain
        if batch_size is not None:
            state = EngineState(HeldWrites({}), HeldWrites({}), HeldWrites({}), HeldWrites({}), plain.story_counts,
                                ProcessedMarks({}))
        stories = StoryEngine(extractor, config, ClusterConfig(), state)
        alerts, story_ids = [], []
        for start in range(0, len(inputs), batch_size or 1):
            results = [stories.apply(brief) for brief in inputs[start : start + (batch_size or 1)]]
            if batch_size is not None:
                for mapping in (state.stories, state.topic_history, state.alerts, state.stream):
                    mapping.apply()
            for result in results:
                stories.mark_processed(result)
                alerts += [(a.id, a.revision, a.count) for a in result.alerts]
                story_ids.append(result.story.id)
            state.processed.apply()
        store = state.stories.store if batch_size is not None else state.stories
        return alerts, story_ids, {key: value["count"] for key, value in store.items()}

    plain = run(None)
    assert plain[0], "the scenario raises alerts"
    assert run(7) == plain


def labelled(name: str) -> list[dict]:
    """Real labelled briefs copied from public data sets into tests/data (headlines: UCI News Aggregator;
    tweets: CrisisLexT26), each with its gold story."""
    path = Path(__file__).resolve().parents[1] / "data" / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cluster_labelled(extractor, records: list[dict]) -> dict[str, str]:
    ordered = sorted(records, key=lambda r: (r["published_at"], r["id"]))
    return final_stories(engine(extractor), [ClusterInput.model_validate(record) for record in ordered])


class TestRealStories:
    @pytest.mark.parametrize("name", ["real-headlines.jsonl", "real-tweets.jsonl"])
    def test_no_story_mixes_two_real_stories(self, extractor, name):
        records = labelled(name)
        gold = {r["id"]: r["story"] for r in records}
        predicted = cluster_labelled(extractor, records)
        members: dict[str, set[str]] = {}
        for brief, story in predicted.items():
            members.setdefault(story, set()).add(gold[brief])
        assert all(len(stories) == 1 for stories in members.values()), members

    def test_headlines_of_one_story_from_many_publishers_are_one_story(self, extractor):
        records = labelled("real-headlines.jsonl")
        predicted = cluster_labelled(extractor, records)
        for story in {r["story"] for r in records}:
            assert len({predicted[r["id"]] for r in records if r["story"] == story}) == 1, story

    def test_tweets_of_one_event_mostly_land_in_one_story(self, extractor):
        from wirewatch.offline.evaluation import score_clusters

        records = labelled("real-tweets.jsonl")
        scores = score_clusters({r["id"]: r["story"] for r in records}, cluster_labelled(extractor, records))
        assert scores["bcubed_precision"] == 1.0
        assert scores["bcubed_recall"] >= 0.75
        assert scores["predicted_stories"] <= 4


def test_two_stories_that_converge_merge_into_the_larger():
    from wirewatch.core.clustering import ClusterConfig, Clusterer
    from wirewatch.core.terms import BriefTerms

    clusterer = Clusterer(ClusterConfig(similarity=0.3, merge_similarity=0.3), {})
    start = FETCHED.timestamp()

    def brief(i: int, *words: str):
        return clusterer.assign(f"b{i}", BriefTerms("en", (), {w: 1.0 for w in words}), start + 60 * i, " ".join(words))

    assert brief(0, "quake", "tremor").opened
    assert brief(1, "evacuation", "shelter").opened, "no shared word yet: a second story"
    assert brief(2, "quake", "tremor", "aftershock").story["id"] == "story-b0"
    joined = brief(3, "evacuation", "shelter", "quake", "tremor")
    assert joined.story["id"] == "story-b0" and joined.merged == ["story-b1"]
    assert set(joined.story["brief_ids"]) == {"b0", "b1", "b2", "b3"} and joined.story["count"] == 4
    assert set(clusterer.stories) == {"story-b0"}
    follower = brief(4, "shelter", "evacuation")
    assert follower.story["id"] == "story-b0", "the absorbed story's words lead to the survivor"


@given(
    st.dictionaries(st.text(alphabet="abcdef", min_size=1, max_size=3), st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0])),
    st.integers(min_value=0, max_value=12),
)
def test_the_heaviest_terms_are_those_of_a_full_sort_ties_in_key_order(weights, limit):
    from wirewatch.core.clustering import heaviest

    assert heaviest(weights, limit) == sorted(weights.items(), key=lambda item: (-item[1], item[0]))[:limit]


def test_a_long_story_forgives_a_longer_silence_than_a_short_one():
    from wirewatch.core.clustering import ClusterConfig, Clusterer
    from wirewatch.core.terms import BriefTerms

    words = {"quake": 1.0, "rescue": 1.0}
    start = FETCHED.timestamp()
    clusterer = Clusterer(ClusterConfig(similarity=0.3, time_scale=3600.0, ttl=30 * 86400.0), {})
    brief = clusterer.assign("short-0", BriefTerms("en", (), words), start, "quake")
    clusterer.assign("short-1", BriefTerms("en", (), words), start + 600, "quake")
    later = clusterer.assign("short-2", BriefTerms("en", (), words), start + 600 + 3 * 3600, "quake")
    assert later.story["id"] != brief.story["id"], "ten minutes of briefs, then three hours of silence: e^-3"

    clusterer = Clusterer(ClusterConfig(similarity=0.3, time_scale=3600.0, ttl=30 * 86400.0), {})
    for half_hour in range(96):
        story = clusterer.assign(f"long-{half_hour}", BriefTerms("en", (), words), start + half_hour * 1800, "quake").story
    assert story["count"] == 96
    later = clusterer.assign("long-late", BriefTerms("en", (), words), start + 95 * 1800 + 3 * 3600, "quake")
    assert later.story["id"] == story["id"], "two days of briefs: three hours of silence damp by e^-(3/47.5)"


def test_stories_far_apart_in_time_do_not_merge_or_join():
    from wirewatch.core.clustering import ClusterConfig, Clusterer
    from wirewatch.core.terms import BriefTerms

    clusterer = Clusterer(ClusterConfig(similarity=0.3, time_scale=3600.0, ttl=30 * 86400.0), {})
    start = FETCHED.timestamp()
    first = clusterer.assign("a", BriefTerms("en", (), {"flood": 1.0, "river": 1.0}), start, "flood")
    later = clusterer.assign("b", BriefTerms("en", (), {"flood": 1.0, "river": 1.0}), start + 5 * 3600, "flood")
    assert first.story["id"] != later.story["id"], "five hours of silence damp the affinity by e^-5"
