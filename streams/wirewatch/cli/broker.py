"""Commands that talk to the Kafka cluster: produce, tail, worker."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import click
import orjson

from ..errors import WirewatchError
from ..models import Envelope
from ..settings import Settings
from .common import fail, parse_time, read_bytes, read_page, write_json_line
from .group import main

__all__ = ["produce", "produce_records", "tail", "worker"]


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
    fetched = parse_time(fetched_at)
    records = []
    for page in pages:
        page_url = url or (Path(page).resolve().as_uri() if page != "-" else None)
        # Snapshots of one page share a key, so they stay in order on one partition.
        key = (page_url or source).encode()
        if raw:
            records.append((key, read_bytes(page), [("source", source.encode())]))
            continue
        envelope = Envelope(source=source, url=page_url, section=section, fetched_at=fetched, body=read_page(page))
        records.append((key, envelope.model_dump_json(exclude_none=True).encode(), []))
    try:
        asyncio.run(produce_records(settings, records))
    except WirewatchError as error:
        fail(str(error))


async def produce_records(settings: Settings, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    from ..service.kafka import ensure_topics, producer, wait_for_broker

    await wait_for_broker(settings, timeout=settings.broker_wait_timeout or 30)
    await ensure_topics(settings, [settings.topic_raw])
    client = producer(settings)
    await client.start()
    try:
        for key, value, headers in records:
            metadata = await client.send_and_wait(settings.topic_raw, value=value, key=key, headers=headers)
            write_json_line(
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
        fail(str(error))
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
                        write_json_line(
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


def _configure_logging(level: str, fmt: str) -> dict:
    import logging.config

    from ..service.logs import logging_config

    config = logging_config(level, fmt)
    logging.config.dictConfig(config)
    return config


def _worker_class(source_topics: frozenset[str]):
    import signal

    import faust

    from ..topology.watchdogs import flow_state

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


@main.command()
@click.option("--loglevel", "-l", default=None, help="Log level (default: WIREWATCH_LOG_LEVEL or info).")
def worker(loglevel: str | None) -> None:
    """Run the stream processor: waits for the broker, creates topics, then runs the Faust worker."""
    from ..service.kafka import agent_topics, ensure_topics, wait_for_broker
    from ..topology.app import changelog_topics, create_app

    settings = Settings()
    level = loglevel or settings.log_level
    log_config = _configure_logging(level, settings.log_format)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        wirewatch = create_app(settings)
    except WirewatchError as error:  # a broken watchlists file, say: its reason, not a traceback
        fail(str(error))
    try:
        loop.run_until_complete(wait_for_broker(settings, timeout=settings.broker_wait_timeout))
        loop.run_until_complete(ensure_topics(settings, [*agent_topics(settings), *changelog_topics(wirewatch.app)]))
    except WirewatchError as error:
        fail(str(error))
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
