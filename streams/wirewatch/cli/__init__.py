"""The ``wirewatch`` command.

Records go to stdout as JSON lines; messages for people go to stderr. Errors
exit non-zero with a one-line reason, never a traceback.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import click
import orjson

from .. import __version__
from ..errors import RejectedInput, WirewatchError
from ..models import Envelope
from ..settings import Settings

__all__ = ["main"]


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"wirewatch: {message}", err=True)
    sys.exit(code)


def _parse_time(value: str | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a UTC offset, e.g. {value}+00:00")
    return moment


def _read_bytes(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror}", 2)
    raise AssertionError("unreachable")


def _read_page(path: str) -> str:
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        _fail(f"{path} is not UTF-8 ({error.reason} at byte {error.start})")
    raise AssertionError("unreachable")


def _write_json_line(document: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(document) + b"\n")


def _configure_logging(level: str, fmt: str) -> dict:
    import logging.config

    from ..service.logs import logging_config

    config = logging_config(level, fmt)
    logging.config.dictConfig(config)
    return config


def _worker_class(source_topics: frozenset[str]):
    import signal

    import faust

    from ..topology.app import flow_state

    class Worker(faust.Worker):
        """Faust's worker; ``kill -USR1`` logs the consumer's flow state and offsets before Faust's dump of every task."""

        def install_signal_handlers(self) -> None:
            super().install_signal_handlers()
            self.loop.add_signal_handler(signal.SIGUSR1, self._dump_state)

        def _dump_state(self) -> None:
            try:
                sources = self.app.consumer.assigned(source_topics)
                logging.getLogger("wirewatch.worker").warning("consumer flow: %s", flow_state(self.app, sources))
            except Exception as error:  # a diagnostic must not take the worker down
                logging.getLogger("wirewatch.worker").warning("consumer flow: unavailable (%r)", error)
            self._on_sigusr1()

    return Worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wirewatch")
def main() -> None:
    """wirewatch: a stream processor for news-wire desks."""


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
        source=source, url=url, section=section, fetched_at=_parse_time(fetched_at), body=_read_page(page)
    )
    try:
        parsed = parse_envelope(envelope)
    except RejectedInput as error:
        _fail(f"cannot parse {page}: {error.reason}: {error.message}")
    for rejected in parsed.rejected:
        click.echo(f"wirewatch: skipped an item ({rejected.reason}): {rejected.message}", err=True)
    for brief in parsed.briefs:
        sys.stdout.write(brief.model_dump_json() + "\n")


@main.command()
@click.argument("pages", nargs=-1, required=True)
@click.option("--fetched-at", help="When the pages were fetched (ISO 8601 with offset); default now.")
@click.option("--source", default="local", show_default=True, help="Feed name in each envelope.")
@click.option("--url", default=None, help="Page URL; default file://<absolute path of PAGE>.")
@click.option("--section", default=None, help="Section, when a page has no 'Meer uit' header.")
@click.option("--raw", is_flag=True, help="Send each file's bytes unchanged, with a 'source' header.")
def produce(
    pages: tuple[str, ...], fetched_at: str | None, source: str, url: str | None, section: str | None, raw: bool
) -> None:
    """Publish PAGES to the raw topic as JSON envelopes; one JSON line per record written."""
    settings = Settings()
    fetched = _parse_time(fetched_at)
    records = []
    for page in pages:
        page_url = url or (Path(page).resolve().as_uri() if page != "-" else None)
        # Snapshots of one page share a key, so they stay in order on one partition.
        key = (page_url or source).encode()
        if raw:
            records.append((key, _read_bytes(page), [("source", source.encode())]))
            continue
        envelope = Envelope(source=source, url=page_url, section=section, fetched_at=fetched, body=_read_page(page))
        records.append((key, envelope.model_dump_json(exclude_none=True).encode(), []))
    try:
        asyncio.run(_produce(settings, records))
    except WirewatchError as error:
        _fail(str(error))


async def _produce(settings: Settings, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    from ..service.kafka import ensure_topics, producer, wait_for_broker

    await wait_for_broker(settings, timeout=settings.broker_wait_timeout or 30)
    await ensure_topics(settings, [settings.topic_raw])
    client = producer(settings)
    await client.start()
    try:
        for key, value, headers in records:
            metadata = await client.send_and_wait(settings.topic_raw, value=value, key=key, headers=headers)
            _write_json_line(
                {
                    "topic": metadata.topic,
                    "partition": metadata.partition,
                    "offset": metadata.offset,
                    "key": key.decode(),
                    "bytes": len(value),
                }
            )
    finally:
        await client.stop()


@main.command()
@click.argument("topics", nargs=-1)
@click.option("--from-beginning/--from-end", default=True, show_default=True)
@click.option("--max-records", type=int, default=None, help="Stop after this many records.")
@click.option("--idle-timeout", type=float, default=None, help="Stop after this many seconds without a record.")
@click.option(
    "--json/--lines",
    "as_json",
    default=None,
    help="JSON lines, or one readable line per record; default: readable on a terminal, JSON when piped.",
)
def tail(
    topics: tuple[str, ...],
    from_beginning: bool,
    max_records: int | None,
    idle_timeout: float | None,
    as_json: bool | None,
) -> None:
    """Print records of TOPICS (default: briefs, stories, alerts, dead letters) as they arrive."""
    settings = Settings()
    kinds = {
        settings.topic_briefs: "brief",
        settings.topic_stories: "story",
        settings.topic_alerts: "alert",
        settings.topic_dead_letters: "dead_letter",
    }
    chosen = list(topics) or list(kinds)
    on_terminal = sys.stdout.isatty()
    if as_json is None:
        as_json = not on_terminal
    colour = on_terminal and not as_json and "NO_COLOR" not in os.environ
    try:
        asyncio.run(_tail(settings, chosen, from_beginning, max_records, idle_timeout, kinds, as_json, colour))
    except WirewatchError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        pass


async def _tail(
    settings: Settings,
    topics: list[str],
    from_beginning: bool,
    max_records: int | None,
    idle_timeout: float | None,
    kinds: dict[str, str],
    as_json: bool,
    colour: bool,
) -> None:
    from ..service import kafka
    from .render import human_line

    await kafka.wait_for_broker(settings, timeout=settings.broker_wait_timeout or 30)
    consumer = kafka.consumer(
        settings,
        *topics,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen = 0
    try:
        while max_records is None or seen < max_records:
            batches = await consumer.getmany(timeout_ms=int((idle_timeout or 3600) * 1000))
            if not batches and idle_timeout is not None:
                return
            for records in batches.values():
                for record in records:
                    try:
                        value = orjson.loads(record.value) if record.value is not None else None
                    except orjson.JSONDecodeError:
                        value = record.value.decode("utf-8", errors="replace")
                    if as_json:
                        _write_json_line(
                            {
                                "topic": record.topic,
                                "partition": record.partition,
                                "offset": record.offset,
                                "timestamp": datetime.fromtimestamp(
                                    record.timestamp / 1000, timezone.utc
                                ).isoformat(),
                                "key": record.key.decode("utf-8", errors="replace") if record.key else None,
                                "value": value,
                            }
                        )
                    else:
                        kind = kinds.get(record.topic, "other")
                        sys.stdout.write(human_line(kind, value, topic=record.topic, colour=colour) + "\n")
                    sys.stdout.flush()
                    seen += 1
    finally:
        await consumer.stop()


class _Progress:
    """A one-line progress counter on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = sys.stderr.isatty()

    def step(self, count: int = 1) -> None:
        self.done += count
        if self.enabled and (self.done % 200 == 0 or self.done == self.total):
            total = f"/{self.total}" if self.total else ""
            sys.stderr.write(f"\r{self.label}: {self.done}{total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            sys.stderr.write("\n")


def _json_lines(path: str):
    """(line number, parsed object) of every non-blank line of a JSON-lines file or stdin."""
    try:
        handle = sys.stdin if path == "-" else open(path, encoding="utf-8")
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror}", 2)
    with handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, orjson.loads(line)
                except orjson.JSONDecodeError as error:
                    _fail(f"{path}:{number}: not JSON: {error}")


@main.command()
@click.argument("briefs", default="-")
def cluster(briefs: str) -> None:
    """Replay BRIEFS (JSON lines; - for stdin) through the story engine, offline.

    Each line needs id, text and published_at (a Brief's event_time stands in
    for a null published_at); headline, language and city are optional. Briefs
    run in published_at order. Prints {"type": "assignment", ...} for every
    brief, {"type": "merge", "story_id": ..., "into": ...} when a story absorbs
    another, and {"type": "alert", ...} for every alert raised or revised.
    """
    from pydantic import ValidationError

    from ..core.engine import create_engine
    from ..models import ClusterInput

    inputs = []
    for number, document in _json_lines(briefs):
        try:
            inputs.append(ClusterInput.model_validate(document))
        except ValidationError as error:
            problem = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in problem["loc"]) or "brief"
            _fail(f"{briefs}:{number}: invalid brief: {where}: {problem['msg']}")
    engine = create_engine(Settings())
    unique = {brief.id: brief for brief in reversed(inputs)}  # the first line of an id wins
    if len(unique) < len(inputs):
        click.echo(f"wirewatch: ignored {len(inputs) - len(unique)} repeated brief id(s)", err=True)
    progress = _Progress("clustered", len(unique))
    for brief in sorted(unique.values(), key=lambda b: (b.published_at, b.id)):
        result = engine.process(brief)
        _write_json_line(
            {"type": "assignment", "brief_id": brief.id, "story_id": result.story.id, "story_label": result.story.label}
        )
        for absorbed in result.story.merged_story_ids:
            _write_json_line({"type": "merge", "story_id": absorbed, "into": result.story.id})
        for alert in result.alerts:
            _write_json_line({"type": "alert", **alert.model_dump(mode="json")})
        progress.step()
    progress.close()


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
        _fail(f"cannot read {counts}: {error.strerror}", 2)
    with handle:
        try:
            rows = read_counts(handle, default_topic=topic)
        except ValueError as error:
            _fail(f"{counts}: {error}")
    progress = _Progress("rows", len(rows))
    for alert in run_backtest(rows, Settings().detector_config(), on_row=progress.step):
        _write_json_line(alert.model_dump(mode="json"))
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

    from ..offline.simulation import Scenario, simulate as run_simulation

    if not out_dir and not produce_pages:
        raise click.UsageError("give --out DIR, --produce, or both")
    begin = _parse_time(start) if start else datetime.now(timezone.utc) - timedelta(hours=hours)
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
                asyncio.run(_produce(Settings(), records))
        except WirewatchError as error:
            _fail(str(error))
        summary["produced"] = len(records)
    _write_json_line(summary)


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
@click.argument("truth")
@click.argument("results", default="-")
@click.option("--series", default=None, help="With a labels file of several series: the one RESULTS belong to.")
def evaluate(truth: str, results: str, series: str | None) -> None:
    """Score RESULTS against TRUTH; prints one JSON object.

    \b
    TRUTH is one of:
    - labelled briefs (JSON lines with id and a gold 'story'), RESULTS the
      output of 'wirewatch cluster' on them: BCubed and pairwise scores;
    - a simulation's truth.jsonl ('wirewatch simulate'), RESULTS 'wirewatch
      cluster' output: stories and alerts;
    - a labels file (JSON: series name → [[start, end], ...] anomaly windows,
      or one such list), RESULTS the output of 'wirewatch backtest': windows
      detected, false alert episodes, delays.
    """
    if truth.endswith(".json"):
        click.echo(json.dumps(_evaluate_series(truth, results, series), indent=2))
        return
    from ..offline.evaluation import resolve_merges, score_alerts, score_clusters

    truth_story: dict[str, str] = {}
    brief_spike: dict[str, str | None] = {}
    spikes = []
    for number, line in _json_lines(truth):
        if line.get("type") == "brief":
            truth_story[line["id"]] = line["story"]
            brief_spike[line["id"]] = line["spike"]
        elif line.get("type") == "spike":
            spikes.append({"id": line["id"], "start": datetime.fromisoformat(line["start"]).timestamp()})
        elif "type" not in line and "story" in line and "id" in line:
            truth_story[str(line["id"])] = str(line["story"])
        else:
            _fail(f"{truth}:{number}: expected a labelled brief (id, story) or a simulation's truth line")
    simulated = bool(brief_spike)
    predicted: dict[str, str] = {}
    merges: list[tuple[str, str]] = []
    alerts = []
    for number, line in _json_lines(results):
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
            _fail(f"{results}:{number}: expected 'wirewatch cluster' output (type assignment, merge or alert)")
    if not predicted:
        _fail(f"{results}: no assignments to score")
    stories = score_clusters(truth_story, resolve_merges(predicted, merges))
    if simulated:
        report = {"alerts": score_alerts(spikes, brief_spike, alerts), "stories": stories}
    else:
        report = {"stories": stories}
    click.echo(json.dumps(report, indent=2))


def _evaluate_series(labels_path: str, results: str, series: str | None) -> dict:
    from ..offline.evaluation import score_spike_windows

    try:
        with open(labels_path, encoding="utf-8") as handle:
            labels = json.load(handle)
    except OSError as error:
        _fail(f"cannot read {labels_path}: {error.strerror}", 2)
    except json.JSONDecodeError as error:
        _fail(f"{labels_path}: not JSON: {error}")
    if isinstance(labels, dict):
        if series is None and len(labels) == 1:
            series = next(iter(labels))
        if series not in labels:
            _fail(f"{labels_path}: name the series with --series (one of: {', '.join(sorted(labels))})")
        labels = labels[series]
    try:
        windows = [(_utc_seconds(start), _utc_seconds(end)) for start, end in labels]
    except (TypeError, ValueError):
        _fail(f"{labels_path}: expected [[start, end], ...] windows in ISO 8601")
    # One alert is one id: its revisions update the page a desk already has, they do not page it again.
    first_seen: dict[str, float] = {}
    for number, line in _json_lines(results):
        if "detected_at" not in line:
            _fail(f"{results}:{number}: expected 'wirewatch backtest' output (alerts with detected_at)")
        moment = _utc_seconds(line["detected_at"])
        key = line.get("id") or f"line-{number}"
        first_seen[key] = min(first_seen.get(key, moment), moment)
    return {"series": series, **score_spike_windows(windows, list(first_seen.values()))}


def _utc_seconds(text: str) -> float:
    """Epoch seconds of an ISO 8601 time; one without an offset is UTC."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


@main.command()
@click.option("--loglevel", "-l", default=None, help="Log level (default: WIREWATCH_LOG_LEVEL or info).")
def worker(loglevel: str | None) -> None:
    """Run the stream processor: waits for the broker, creates topics, then runs the Faust worker."""
    from ..topology.app import changelog_topics, create_app
    from ..service.kafka import agent_topics, ensure_topics, wait_for_broker

    settings = Settings()
    level = loglevel or settings.log_level
    log_config = _configure_logging(level, settings.log_format)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    wirewatch = create_app(settings)
    try:
        loop.run_until_complete(wait_for_broker(settings, timeout=settings.broker_wait_timeout))
        loop.run_until_complete(ensure_topics(settings, [*agent_topics(settings), *changelog_topics(wirewatch.app)]))
    except WirewatchError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        sys.exit(130)
    if wirewatch.engine is not None:
        wirewatch.engine.extractor.warm_up(settings.language_codes())
    # What is built so far (modules, the app, word lists, stopword tables) lives as long as the worker.
    # Left to the collector, every full collection walked all of it again: pauses of 100-190 ms in a
    # running worker, each one the tail of raw → brief and spike → alert latency.
    gc.collect()
    gc.freeze()
    runner = _worker_class(wirewatch.source_topics)(
        wirewatch.app,
        loglevel=level,
        loop=loop,
        stdout=sys.stderr,
        redirect_stdouts=False,
        logging_config=log_config,
        quiet=settings.log_format == "json",
    )
    # At level warning or above Faust's progress spinner sets the root logger
    # to DEBUG so that it spins on every record: every library's debug call
    # then builds a record (a tenth of the worker's time in a profile).
    runner.spinner = None
    runner.execute_from_commandline()


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
        _fail(f"schemas out of date, run 'wirewatch schemas': {', '.join(stale)}")


@main.command()
def config() -> None:
    """Print the effective settings as one JSON object; secrets are masked."""
    settings = Settings()
    # SecretStr fields dump as "**********" in JSON mode.
    click.echo(json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
