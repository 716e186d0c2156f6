"""Commands that need no broker: parse, cluster, backtest, simulate, evaluate, schemas, config."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from ..errors import RejectedInput, WirewatchError
from ..models import Envelope
from ..settings import Settings
from .broker import produce_records
from .common import Progress, fail, json_lines, parse_time, read_page, write_json_line
from .group import main

__all__ = ["parse", "cluster", "backtest", "simulate", "evaluate", "schemas", "config"]


@main.command()
@click.argument("page", type=str)
@click.option("--fetched-at", help="When the page was fetched (ISO 8601 with offset); default now.")
@click.option("--source", default="local", show_default=True, help="Feed name stamped on every brief.")
@click.option("--url", default=None, help="Page URL stamped on every brief.")
@click.option("--section", default=None, help="Section, when the page has no 'Meer uit' header.")
def parse(page: str, fetched_at: str | None, source: str, url: str | None, section: str | None) -> None:
    """Split PAGE (a file, or - for stdin) into briefs, offline: one JSON brief per line."""
    from ..core.pipeline import parse_envelope

    envelope = Envelope(
        source=source, url=url, section=section, fetched_at=parse_time(fetched_at), body=read_page(page)
    )
    try:
        parsed = parse_envelope(envelope)
    except RejectedInput as error:
        fail(f"cannot parse {page}: {error.reason}: {error.message}")
    for rejected in parsed.rejected:
        click.echo(f"wirewatch: skipped an item ({rejected.reason}): {rejected.message}", err=True)
    for brief in parsed.briefs:
        sys.stdout.write(brief.model_dump_json() + "\n")


@main.command()
@click.argument("briefs", default="-")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="Simulate the story stage split into this many engines (docs/scaling.md).")
@click.option("--shard-by", type=click.Choice(["term", "language", "brief"]), default="term", show_default=True,
              help="What routes a brief to its shard: its heaviest term, its language, or its id.")
def cluster(briefs: str, shards: int, shard_by: str) -> None:
    """Replay BRIEFS (JSON lines; - for stdin) through the story engine, offline.

    Each line needs id, text and published_at (a Brief's event_time stands in
    for a null published_at); headline, language and city are optional. Briefs
    run in published_at order. Prints {"type": "assignment", ...} for every
    brief, {"type": "merge", "story_id": ..., "into": ...} when a story absorbs
    another, and {"type": "alert", ...} for every alert raised or revised.
    With --shards N, each assignment also names its shard, a story linked
    across shards is a merge line with "across_shards": true, alerts are each
    shard's own, and a summary of the shards' load goes to stderr.
    """
    from pydantic import ValidationError

    from ..core.engine import create_engine
    from ..models import ClusterInput

    inputs = []
    for number, document in json_lines(briefs):
        try:
            inputs.append(ClusterInput.model_validate(document))
        except ValidationError as error:
            problem = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in problem["loc"]) or "brief"
            fail(f"{briefs}:{number}: invalid brief: {where}: {problem['msg']}")
    unique = {brief.id: brief for brief in reversed(inputs)}  # the first line of an id wins
    if len(unique) < len(inputs):
        click.echo(f"wirewatch: ignored {len(inputs) - len(unique)} repeated brief id(s)", err=True)
    ordered = sorted(unique.values(), key=lambda b: (b.published_at, b.id))
    if shards > 1:
        _cluster_sharded(ordered, shards, shard_by)
        return
    engine = create_engine(Settings())
    progress = Progress("clustered", len(unique))
    for brief in ordered:
        result = engine.process(brief)
        write_json_line(
            {"type": "assignment", "brief_id": brief.id, "story_id": result.story.id, "story_label": result.story.label}
        )
        for absorbed in result.story.merged_story_ids:
            write_json_line({"type": "merge", "story_id": absorbed, "into": result.story.id})
        for alert in result.alerts:
            write_json_line({"type": "alert", **alert.model_dump(mode="json")})
        progress.step()
    progress.close()


def _cluster_sharded(ordered: list, shards: int, shard_by: str) -> None:
    from ..offline.sharding import ShardedStories

    sharded = ShardedStories(Settings(), shards, shard_by)
    progress = Progress("clustered", len(ordered))
    for brief in ordered:
        shard, result, links = sharded.process(brief)
        write_json_line({"type": "assignment", "brief_id": brief.id, "story_id": sharded.shown_as(result.story.id),
                         "story_label": result.story.label, "shard": shard})
        merged = set(result.story.merged_story_ids)
        for link in links:
            write_json_line({"type": "merge", "story_id": link.story_id, "into": link.into,
                             "across_shards": link.story_id not in merged})
        for alert in result.alerts:
            write_json_line({"type": "alert", **alert.model_dump(mode="json")})
        progress.step()
    progress.close()
    busiest = max(sharded.engine_seconds)
    click.echo(f"wirewatch: {shards} shards by {shard_by}: briefs per shard {sharded.briefs}; busiest shard "
               f"{busiest:.1f} s of engine time, {sharded.parallel_briefs_per_second():.0f} briefs/s with a core "
               f"each; linking {sharded.coordinator_seconds:.1f} s", err=True)


@main.command()
@click.argument("counts", default="-")
@click.option("--topic", default="series", show_default=True, help="Topic name for a timestamp,count file.")
def backtest(counts: str, topic: str) -> None:
    """Run the spike detector over COUNTS (CSV: timestamp,count or timestamp,topic,count); one JSON alert per line.

    Uses the worker's settings (WIREWATCH_WINDOW_*, WIREWATCH_SPIKE_*, ...), so a
    desk can tune them on its own history. Rows run in timestamp order; a
    header row is optional.
    """
    from ..offline.backtest import read_counts, run_backtest

    try:
        handle = sys.stdin if counts == "-" else open(counts, encoding="utf-8", newline="")
    except OSError as error:
        fail(f"cannot read {counts}: {error.strerror}", 2)
    with handle:
        try:
            rows = read_counts(handle, default_topic=topic)
        except ValueError as error:
            fail(f"{counts}: {error}")
    progress = Progress("rows", len(rows))
    for alert in run_backtest(rows, Settings().detector_config(), on_row=progress.step):
        write_json_line(alert.model_dump(mode="json"))
    progress.close()


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write pages, briefs and truth here.")
@click.option("--produce", "produce_pages", is_flag=True, help="Also publish the snapshots to the raw topic.")
@click.option("--hours", type=float, default=24.0, show_default=True)
@click.option("--spikes", type=int, default=8, show_default=True, help="Injected stories with a burst of briefs.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--start", help="Start of the feed (ISO 8601); default: HOURS before now.")
def simulate(out_dir: str | None, produce_pages: bool, hours: float, spikes: int, seed: int, start: str | None) -> None:
    """Generate a synthetic wire feed with known stories and spikes.

    Writes OUT/pages/*.txt (the snapshots), OUT/snapshots.jsonl (their
    envelopes), OUT/briefs.jsonl (what the worker publishes from them) and
    OUT/truth.jsonl (every brief's story and spike, every spike's start); with
    --produce, publishes the snapshots to the raw topic in fetch order.
    Prints one JSON summary line.
    """
    from datetime import timedelta

    from ..offline.simulation import Scenario
    from ..offline.simulation import simulate as run_simulation

    if not out_dir and not produce_pages:
        raise click.UsageError("give --out DIR, --produce, or both")
    begin = parse_time(start) if start else datetime.now(timezone.utc) - timedelta(hours=hours)
    simulation = run_simulation(Scenario(hours=hours, spikes=spikes, seed=seed), begin)
    envelopes = [
        Envelope(source="simulation", url="https://wire.example/buitenland", fetched_at=s.fetched_at, body=s.page)
        for s in simulation.snapshots
    ]
    summary = {"snapshots": len(envelopes), "briefs": len(simulation.briefs), "spikes": len(simulation.spikes)}
    if out_dir:
        summary.update(_write_simulation(Path(out_dir), simulation, envelopes))
    if produce_pages:
        records = [
            (b"https://wire.example/buitenland", envelope.model_dump_json(exclude_none=True).encode(), [])
            for envelope in envelopes
        ]
        try:
            with open("/dev/null", "w") as quiet, _stdout_to(quiet):
                asyncio.run(produce_records(Settings(), records))
        except WirewatchError as error:
            fail(str(error))
        summary["produced"] = len(records)
    write_json_line(summary)


class _stdout_to:
    """Send what a block writes to stdout elsewhere (the per-record lines of _produce)."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def __enter__(self) -> None:
        self.saved = sys.stdout
        sys.stdout = self.handle

    def __exit__(self, *exc: object) -> None:
        sys.stdout = self.saved


def _write_simulation(out: Path, simulation, envelopes: list[Envelope]) -> dict:
    from ..core.pipeline import parse_envelope

    pages = out / "pages"
    pages.mkdir(parents=True, exist_ok=True)
    published: dict[str, str] = {}
    with (out / "snapshots.jsonl").open("w", encoding="utf-8") as snapshots:
        for index, envelope in enumerate(envelopes):
            (pages / f"{index:05d}.txt").write_text(envelope.body, encoding="utf-8")
            snapshots.write(envelope.model_dump_json(exclude_none=True) + "\n")
            for brief in parse_envelope(envelope).briefs:
                published.setdefault(brief.id, brief.model_dump_json())
    (out / "briefs.jsonl").write_text("".join(line + "\n" for line in published.values()), encoding="utf-8")
    with (out / "truth.jsonl").open("w", encoding="utf-8") as truth:
        for brief in simulation.briefs:
            truth.write(
                json.dumps(
                    {
                        "type": "brief",
                        "id": brief.id,
                        "story": brief.story,
                        "topic": brief.topic,
                        "spike": brief.spike,
                        "published_at": brief.published_at.isoformat(),
                        "captured": brief.id in published,
                    }
                )
                + "\n"
            )
        for spike in simulation.spikes:
            truth.write(
                json.dumps(
                    {"type": "spike", "id": spike.id, "topic": spike.topic, "story": spike.story,
                     "start": spike.start.isoformat(), "size": spike.size}
                )
                + "\n"
            )
    return {"out": str(out), "published_briefs": len(published)}


@main.command()
@click.argument("truth", required=False)
@click.argument("results", default="-")
@click.option("--series", default=None, help="With a labels file of several series: the one RESULTS belong to.")
@click.option("--counts", default=None, type=click.Path(dir_okay=False),
              help="With a labels file: the series' CSV, to add NAB's standard-profile score (it counts in rows).")
@click.option("--feedback", "feedback", default=None,
              help="Instead: editors' verdicts (wire.feedback values, or 'wirewatch tail --json' lines; - for stdin): "
              "their precision per topic and desk.")
def evaluate(truth: str | None, results: str, series: str | None, counts: str | None, feedback: str | None) -> None:
    """Score RESULTS against TRUTH; prints one JSON object.

    \b
    TRUTH is one of:
    - labelled briefs (JSON lines with id and a gold 'story'), RESULTS the
      output of 'wirewatch cluster' on them: BCubed and pairwise scores, after
      merges and at arrival (each brief in the story it was first given);
    - a simulation's truth.jsonl ('wirewatch simulate'), RESULTS 'wirewatch
      cluster' output: stories and alerts;
    - a labels file (JSON: series name → [[start, end], ...] anomaly windows,
      or one such list), RESULTS the output of 'wirewatch backtest': windows
      detected, false alert episodes, delays; with --counts also the Numenta
      Anomaly Benchmark's standard-profile score (100 perfect, 0 never alerting).

    With --feedback FILE and no TRUTH: the share of alerts editors called
    useful, per topic and per desk (an editor's last verdict on an alert counts).
    """
    if feedback is not None:
        click.echo(json.dumps(_evaluate_feedback(feedback), indent=2))
        return
    if truth is None:
        fail("name the TRUTH to score against (or --feedback FILE)", 2)
    if truth.endswith(".json"):
        click.echo(json.dumps(_evaluate_series(truth, results, series, counts), indent=2))
        return
    from ..offline.evaluation import resolve_merges, score_alerts, score_clusters

    truth_story: dict[str, str] = {}
    brief_spike: dict[str, str | None] = {}
    spikes = []
    for number, line in json_lines(truth):
        if line.get("type") == "brief":
            truth_story[line["id"]] = line["story"]
            brief_spike[line["id"]] = line["spike"]
        elif line.get("type") == "spike":
            spikes.append({"id": line["id"], "start": datetime.fromisoformat(line["start"]).timestamp()})
        elif "type" not in line and "story" in line and "id" in line:
            truth_story[str(line["id"])] = str(line["story"])
        else:
            fail(f"{truth}:{number}: expected a labelled brief (id, story) or a simulation's truth line")
    simulated = bool(brief_spike)
    predicted: dict[str, str] = {}
    merges: list[tuple[str, str]] = []
    alerts = []
    for number, line in json_lines(results):
        if line.get("type") == "assignment":
            predicted[line["brief_id"]] = line["story_id"]
        elif line.get("type") == "merge":
            merges.append((line["story_id"], line["into"]))
        elif line.get("type") == "alert":
            alerts.append(
                {
                    "id": line["id"],
                    "revision": line.get("revision", 1),
                    "brief_ids": line["brief_ids"],
                    "detected_at": datetime.fromisoformat(line["detected_at"]).timestamp(),
                }
            )
        else:
            fail(f"{results}:{number}: expected 'wirewatch cluster' output (type assignment, merge or alert)")
    if not predicted:
        fail(f"{results}: no assignments to score")
    stories = score_clusters(truth_story, resolve_merges(predicted, merges))
    # The story each brief was first given: what its alert, the desk page and wire.stories used at that moment.
    at_arrival = score_clusters(truth_story, predicted)
    if simulated:
        report = {"alerts": score_alerts(spikes, brief_spike, alerts), "stories": stories,
                  "stories_at_arrival": at_arrival}
    else:
        report = {"stories": stories, "stories_at_arrival": at_arrival}
    click.echo(json.dumps(report, indent=2))


def _evaluate_feedback(path: str) -> dict:
    from pydantic import ValidationError

    from ..core.feedback import Verdict, editors_precision

    verdicts = []
    for number, line in json_lines(path):
        document = line.get("value") if isinstance(line.get("value"), dict) else line
        try:
            verdicts.append(Verdict.model_validate(document))
        except ValidationError as error:
            fail(f"{path}:{number}: not a verdict: {error.errors(include_url=False)[0]['msg']}")
    return editors_precision(verdicts)


def _evaluate_series(labels_path: str, results: str, series: str | None, counts: str | None) -> dict:
    from ..offline.evaluation import NAB_LOW_FP_FALSE_POSITIVE, nab_scores, score_spike_windows

    try:
        with open(labels_path, encoding="utf-8") as handle:
            labels = json.load(handle)
    except OSError as error:
        fail(f"cannot read {labels_path}: {error.strerror}", 2)
    except json.JSONDecodeError as error:
        fail(f"{labels_path}: not JSON: {error}")
    if isinstance(labels, dict):
        if series is None and len(labels) == 1:
            series = next(iter(labels))
        if series not in labels:
            fail(f"{labels_path}: name the series with --series (one of: {', '.join(sorted(labels))})")
        labels = labels[series]
    try:
        windows = [(_utc_seconds(start), _utc_seconds(end)) for start, end in labels]
    except (TypeError, ValueError):
        fail(f"{labels_path}: expected [[start, end], ...] windows in ISO 8601")
    # One alert is one id: its revisions update the page a desk already has, they do not page it again.
    first_seen: dict[str, float] = {}
    for number, line in json_lines(results):
        if "detected_at" not in line:
            fail(f"{results}:{number}: expected 'wirewatch backtest' output (alerts with detected_at)")
        moment = _utc_seconds(line["detected_at"])
        key = line.get("id") or f"line-{number}"
        first_seen[key] = min(first_seen.get(key, moment), moment)
    report = {"series": series, **score_spike_windows(windows, list(first_seen.values()))}
    if counts is not None:
        from ..offline.backtest import read_counts

        try:
            with open(counts, encoding="utf-8") as handle:
                stamps = sorted({row.timestamp for row in read_counts(handle, default_topic="series")})
        except OSError as error:
            fail(f"cannot read {counts}: {error.strerror}", 2)
        except ValueError as error:
            fail(f"{counts}: {error}")
        nab = nab_scores(stamps, windows, list(first_seen.values()))
        report["nab_standard"] = round(nab.normalised, 2)
        report["nab_raw"] = round(nab.raw, 4)
        low_fp = nab_scores(stamps, windows, list(first_seen.values()), NAB_LOW_FP_FALSE_POSITIVE)
        report["nab_low_fp"] = round(low_fp.normalised, 2)
    return report


def _utc_seconds(text: str) -> float:
    """Epoch seconds of an ISO 8601 time; one without an offset is UTC."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="schemas", show_default=True)
@click.option("--check", is_flag=True, help="Exit 1 when the files differ from the models instead of writing.")
def schemas(out_dir: str, check: bool) -> None:
    """Write the JSON Schema of every topic's value to OUT (one file per topic)."""
    from ..offline.schemas import render_schemas

    stale = []
    for filename, text in render_schemas().items():
        path = Path(out_dir) / filename
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}", err=True)
    if stale:
        fail(f"schemas out of date, run 'wirewatch schemas': {', '.join(stale)}")


@main.command()
def config() -> None:
    """Print the effective settings as one JSON object; secrets are masked."""
    settings = Settings()
    # SecretStr fields dump as "**********" in JSON mode.
    click.echo(json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
