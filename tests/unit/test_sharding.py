"""The story stage past one partition, simulated: routing, links across shards, and what a desk is shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wirewatch.models import ClusterInput
from wirewatch.offline.evaluation import resolve_merges, score_clusters
from wirewatch.offline.sharding import ShardedStories, shard_of
from wirewatch.settings import Settings

HEADLINES = Path(__file__).resolve().parents[1] / "data" / "real-headlines.jsonl"


def labelled() -> tuple[list[ClusterInput], dict[str, str]]:
    records = [json.loads(line) for line in HEADLINES.read_text().splitlines()]
    inputs = {record["id"]: ClusterInput.model_validate(record) for record in records}
    return sorted(inputs.values(), key=lambda b: (b.published_at, b.id)), {r["id"]: r["story"] for r in records}


def run(shards: int, by: str) -> tuple[ShardedStories, dict[str, str], list]:
    briefs, _ = labelled()
    stories = ShardedStories(Settings(), shards, by)
    at_arrival, links = {}, []
    for brief in briefs:
        _, result, made = stories.process(brief)
        at_arrival[brief.id] = stories.shown_as(result.story.id)
        links += made
    return stories, at_arrival, links


def test_one_shard_is_the_engine_itself():
    from wirewatch.core.engine import create_engine

    briefs, _ = labelled()
    engine = create_engine(Settings())
    plain = {}
    for brief in briefs:
        result = engine.process(brief)
        plain[brief.id] = result.story.id
    stories, at_arrival, _ = run(1, "term")
    assert at_arrival == plain and stories.briefs == [len(briefs)]


@pytest.mark.parametrize("by", ["brief", "language", "term"])
def test_links_join_roots_into_a_forest_the_desk_reads_as_one_story_each(by):
    stories, at_arrival, links = run(4, by)
    assert sum(stories.briefs) == len(at_arrival)
    # Every link starts at a root that has not been linked before: following them in order never loops.
    linked = set()
    for link in links:
        assert link.story_id not in linked and link.story_id != link.into
        linked.add(link.story_id)
    final = resolve_merges(at_arrival, [(link.story_id, link.into) for link in links])
    assert final == {brief: stories.shown_as(story) for brief, story in at_arrival.items()}


def test_routing_by_brief_spreads_the_load_and_links_bring_stories_back_together():
    briefs, truth = labelled()
    stories, at_arrival, links = run(4, "brief")
    assert min(stories.briefs) > 0.15 * len(briefs)
    assert any(link for link in links)
    unlinked = score_clusters(truth, at_arrival)["bcubed_recall"]
    linked = score_clusters(truth, {b: stories.shown_as(s) for b, s in at_arrival.items()})["bcubed_recall"]
    assert linked > unlinked


def test_a_shard_is_the_same_for_a_key_in_every_process():
    code = "from wirewatch.offline.sharding import shard_of; print(shard_of('greenland', 8))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(other) == shard_of("greenland", 8) and 0 <= shard_of("greenland", 8) < 8


def test_cluster_with_shards_names_each_brief_shard_and_evaluate_reads_the_links(tmp_path):
    result = subprocess.run([sys.executable, "-m", "wirewatch", "cluster", "--shards", "3", "--shard-by", "brief",
                             str(HEADLINES)], capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assignments = [line for line in lines if line["type"] == "assignment"]
    assert {line["shard"] for line in assignments} == {0, 1, 2}
    assert any(line.get("across_shards") for line in lines if line["type"] == "merge")
    assert b"3 shards by brief" in result.stderr
    results = tmp_path / "results.jsonl"
    results.write_bytes(result.stdout)
    report = subprocess.run([sys.executable, "-m", "wirewatch", "evaluate", str(HEADLINES), str(results)],
                            capture_output=True, timeout=60, check=False)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["stories"]["briefs"] == len(assignments)
