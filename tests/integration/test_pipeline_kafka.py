"""raw → briefs through a real broker and a real ``wirewatch worker`` process."""

from __future__ import annotations

import ast
import asyncio
import base64
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from kafka_helpers import free_port, metric_total, produce, read_topic, run, scrape_metrics, wait_until_drained
from wirewatch.core.parser import parse_page
from wirewatch.models import Brief, DeadLetter, Envelope

pytestmark = pytest.mark.kafka

FETCHED = datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc)
WORLD_PAGE = Path(__file__).resolve().parents[2] / "samples" / "pages" / "world-0800.txt"


def _produce_page_with_cli(path, fetched_at: datetime) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "wirewatch", "produce", str(path), "--fetched-at", fetched_at.isoformat(), "--source", "seed"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    return orjson.loads(lines[0])


def _internal_topics(settings) -> list[str]:
    return settings.stage_topics()[:2]


def test_two_snapshots_of_the_seed_page_yield_its_eight_briefs_once(
    wirewatch_settings, wirewatch_env, start_worker, seed_page, tmp_path
):
    start_worker(wirewatch_env)
    page = tmp_path / "seed.txt"
    page.write_text(seed_page, encoding="utf-8")
    first = _produce_page_with_cli(page, FETCHED)
    second = _produce_page_with_cli(page, FETCHED + timedelta(minutes=5))
    assert first["topic"] == second["topic"] == wirewatch_settings.topic_raw
    assert first["partition"] == second["partition"], "snapshots of one page share a key and a partition"

    run(read_topic(wirewatch_settings, wirewatch_settings.topic_briefs, at_least=8))
    run(wait_until_drained(wirewatch_settings, _internal_topics(wirewatch_settings)))
    records = run(read_topic(wirewatch_settings, wirewatch_settings.topic_briefs))

    assert len(records) == 8
    briefs = {record.key.decode(): (record, Brief.model_validate_json(record.value)) for record in records}
    expected = {
        brief.id: brief
        for brief in parse_page(seed_page, fetched_at=FETCHED, source="seed", url=page.resolve().as_uri()).briefs
    }
    assert set(briefs) == set(expected)
    for brief_id, (record, brief) in briefs.items():
        # the first snapshot to carry a brief is the one published
        assert brief == expected[brief_id]
        assert record.timestamp == int(brief.event_time.timestamp() * 1000)
    assert sorted(b.city for _, b in briefs.values()) == sorted(
        ["WASHINGTON", "STRAATSBURG", "DAVOS", "DAVOS", "DAVOS", "BRUSSEL", "TOKIO", "MOSKOU"]
    )
    assert run(read_topic(wirewatch_settings, wirewatch_settings.topic_dead_letters)) == []


def test_garbage_goes_to_the_dead_letter_topic_and_the_worker_goes_on(
    wirewatch_settings, wirewatch_env, start_worker, seed_page
):
    worker = start_worker(wirewatch_env)
    garbage = b"\xff\xfe\x00 not a page \xc3\x28"
    bad = run(produce(wirewatch_settings, wirewatch_settings.topic_raw, garbage, key=b"scraper-7"))
    envelope = {"source": "seed", "url": "https://example.org/buitenland", "fetched_at": FETCHED.isoformat(), "body": seed_page}
    run(produce(wirewatch_settings, wirewatch_settings.topic_raw, orjson.dumps(envelope), key=b"https://example.org/buitenland"))

    briefs = run(read_topic(wirewatch_settings, wirewatch_settings.topic_briefs, at_least=8))
    run(wait_until_drained(wirewatch_settings, _internal_topics(wirewatch_settings)))
    letters = run(read_topic(wirewatch_settings, wirewatch_settings.topic_dead_letters))

    assert len(briefs) == 8
    assert len(letters) == 1
    letter = DeadLetter.model_validate_json(letters[0].value)
    assert letter.reason == "invalid_utf8"
    assert "not UTF-8" in letter.message
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        wirewatch_settings.topic_raw,
        bad.partition,
        bad.offset,
    )
    assert base64.b64decode(letter.original_base64) == garbage
    assert base64.b64decode(letter.source_key_base64) == b"scraper-7"
    assert worker.process.poll() is None, "the worker is still running"


def test_internal_records_of_a_newer_version_flow_on_and_broken_ones_are_dead_lettered(
    wirewatch_settings, wirewatch_env, start_worker, seed_page
):
    worker = start_worker(wirewatch_env)
    world = parse_page(WORLD_PAGE.read_text(encoding="utf-8"), fetched_at=FETCHED, source="world").briefs[0]
    # A newer wirewatch, mid rolling upgrade, writes candidates with a field this version does not know.
    newer = orjson.dumps({**world.model_dump(mode="json"), "sentiment": 0.4})
    broken = orjson.dumps({**world.model_dump(mode="json"), "id": "f" * 20, "event_time": "yesterday"})
    run(produce(wirewatch_settings, wirewatch_settings.topic_candidates, newer, key=world.id.encode()))
    bad_candidate = run(produce(wirewatch_settings, wirewatch_settings.topic_candidates, broken, key=b"f" * 20))
    bad_input = run(produce(wirewatch_settings, wirewatch_settings.topic_story_input, b'{"id": 7}', key=b"stories"))
    envelope = {"source": "seed", "fetched_at": FETCHED.isoformat(), "body": seed_page}
    run(produce(wirewatch_settings, wirewatch_settings.topic_raw, orjson.dumps(envelope), key=b"seed"))

    briefs = run(read_topic(wirewatch_settings, wirewatch_settings.topic_briefs, at_least=9))
    run(wait_until_drained(wirewatch_settings, wirewatch_settings.stage_topics()))
    assert len(briefs) == 9
    passed_on = [record for record in briefs if record.key == world.id.encode()]
    assert [orjson.loads(record.value)["sentiment"] for record in passed_on] == [0.4], "passed on unchanged"
    stories = run(read_topic(wirewatch_settings, wirewatch_settings.topic_stories, at_least=9))
    assert world.id in {orjson.loads(record.value)["brief_id"] for record in stories}

    letters = [DeadLetter.model_validate_json(r.value) for r in run(read_topic(wirewatch_settings, wirewatch_settings.topic_dead_letters, at_least=2))]
    assert {(letter.reason, letter.source_topic, letter.source_offset) for letter in letters} == {
        ("invalid_brief", wirewatch_settings.topic_candidates, bad_candidate.offset),
        ("invalid_brief", wirewatch_settings.topic_story_input, bad_input.offset),
    }
    assert any("event_time" in letter.message for letter in letters)
    found = scrape_metrics(int(wirewatch_env["WIREWATCH_WEB_PORT"]))
    assert metric_total(found, "wirewatch_dead_letters_total", reason="invalid_brief") == 2
    assert worker.process.poll() is None, "the worker is still running"


def test_a_bare_page_takes_source_from_its_header_and_time_from_its_record(
    wirewatch_settings, wirewatch_env, start_worker, seed_page
):
    start_worker(wirewatch_env)
    stamp = FETCHED + timedelta(hours=1)
    run(
        produce(
            wirewatch_settings,
            wirewatch_settings.topic_raw,
            seed_page.encode(),
            key=b"page-1",
            headers=[("source", b"agency-feed")],
            timestamp_ms=int(stamp.timestamp() * 1000),
        )
    )
    records = run(read_topic(wirewatch_settings, wirewatch_settings.topic_briefs, at_least=8))
    briefs = [Brief.model_validate_json(record.value) for record in records]
    assert {brief.source for brief in briefs} == {"agency-feed"}
    assert {brief.fetched_at for brief in briefs} == {stamp}
    straatsburg = next(brief for brief in briefs if brief.city == "STRAATSBURG")
    assert straatsburg.published_at == stamp.replace(second=0) - timedelta(minutes=16)


def test_the_worker_waits_for_a_broker_that_is_not_up_yet(wirewatch_settings, wirewatch_env, start_worker, seed_page):
    broker_host, broker_port = wirewatch_settings.bootstrap_servers[0].rsplit(":", 1)
    proxy_port = free_port()
    worker = start_worker({**wirewatch_env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{proxy_port}"}, wait_ready=False)
    worker.wait_for_log("waiting for Kafka", timeout=30)
    assert worker.process.poll() is None

    async def forward(reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection(broker_host, int(broker_port))

        async def pipe(source, sink):
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)

    async def bring_broker_up_and_check():
        # The broker becomes reachable at the address the worker was given only now.
        server = await asyncio.start_server(forward, "127.0.0.1", proxy_port)
        try:
            while "[^Worker]: Ready" not in worker.log():
                assert worker.process.poll() is None, worker.log()[-3000:]
                await asyncio.sleep(0.3)
            await produce(wirewatch_settings, wirewatch_settings.topic_raw, seed_page.encode(), key=b"seed",
                          headers=[("source", b"seed")])
            return await read_topic(wirewatch_settings, wirewatch_settings.topic_briefs, at_least=8, timeout=90)
        finally:
            server.close()

    records = run(asyncio.wait_for(bring_broker_up_and_check(), 150))
    assert len(records) == 8


def test_the_deduplication_table_forgets_ids_past_their_retention_and_a_restart_recovers_without_them(
    wirewatch_settings, wirewatch_env, start_worker, seed_page
):
    env = {**wirewatch_env, "WIREWATCH_STAGES": "briefs", "WIREWATCH_BRIEF_ID_RETENTION_SECONDS": "3600",
           # one candidates partition, whose clock every page moves
           "WIREWATCH_TOPIC_PARTITIONS": "1"}
    worker = start_worker(env)
    settings = wirewatch_settings.model_copy(update={"topic_partitions": 1})
    first_seen = f"{settings.group_id}-brief-first-seen-changelog"
    entries = "wirewatch_table_entries"

    def send(page: str, fetched_at: datetime) -> None:
        envelope = Envelope(source="retention", fetched_at=fetched_at, body=page)
        run(produce(settings, settings.topic_raw, envelope.model_dump_json().encode(), key=b"page"))

    early = datetime.now(timezone.utc) - timedelta(hours=3)
    send(seed_page, early)
    seed_ids = {brief.id for brief in parse_page(seed_page, fetched_at=early, source="retention").briefs}
    run(read_topic(settings, settings.topic_briefs, at_least=8))
    run(wait_until_drained(settings, _internal_topics(settings)))
    assert metric_total(scrape_metrics(int(env["WIREWATCH_WEB_PORT"])), entries, table="brief-first-seen") == 8

    # Two hours of fetch time later: the seed page's ids are an hour past the retention.
    world = WORLD_PAGE.read_text(encoding="utf-8")
    send(world, early + timedelta(hours=2))
    world_ids = {brief.id for brief in parse_page(world, fetched_at=early, source="retention").briefs}
    run(read_topic(settings, settings.topic_briefs, at_least=8 + len(world_ids)))
    run(wait_until_drained(settings, _internal_topics(settings)))
    assert metric_total(scrape_metrics(int(env["WIREWATCH_WEB_PORT"])), entries, table="brief-first-seen") == len(
        world_ids
    )
    changelog = run(read_topic(settings, first_seen, at_least=8 + len(world_ids) + 8))
    forgotten = {record.key.decode().strip('"') for record in changelog if record.value is None}
    assert forgotten == seed_ids

    # The deletions are durable: a restarted worker recovers the table without them.
    worker.stop()
    port = free_port()
    start_worker({**env, "WIREWATCH_WEB_PORT": str(port)})
    assert metric_total(scrape_metrics(port), entries, table="brief-first-seen") == len(world_ids)


def test_kill_usr1_logs_where_each_source_partition_stands(wirewatch_settings, wirewatch_env, start_worker, seed_page):
    worker = start_worker(wirewatch_env)
    envelope = {"source": "seed", "fetched_at": FETCHED.isoformat(), "body": seed_page}
    sent = run(produce(wirewatch_settings, wirewatch_settings.topic_raw, orjson.dumps(envelope), key=b"page"))
    run(wait_until_drained(wirewatch_settings, _internal_topics(wirewatch_settings)))

    worker.dump_tasks()
    worker.wait_for_log("consumer flow:")
    line = next(line for line in worker.log().splitlines() if "consumer flow:" in line)
    state = ast.literal_eval(line.split("consumer flow: ", 1)[1])
    raw = state["partitions"][f"{wirewatch_settings.topic_raw}[{sent.partition}]"]
    assert raw["read"] == sent.offset, "Faust read the page"
    assert raw["next"] == sent.offset + 1, "wirewatch's consumer expects the record after it"
    assert raw["position"] == sent.offset + 1, "and the fetcher stands right after it"
    assert raw["paused"] is False and raw["gaps"] == 0
    assert not any("changelog" in name for name in state["partitions"])


def test_tail_prints_json_lines_when_piped_and_readable_lines_when_asked(wirewatch_settings, seed_page):
    briefs = parse_page(seed_page, fetched_at=FETCHED, source="seed").briefs[:3]
    for brief in briefs:
        run(produce(wirewatch_settings, wirewatch_settings.topic_briefs, brief.model_dump_json().encode(), key=brief.id.encode()))
    run(produce(wirewatch_settings, wirewatch_settings.topic_dead_letters, b"\xffnot json"))

    def tail(*options: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-m", "wirewatch", "tail", "--max-records", "4", "--idle-timeout", "20", *options],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.splitlines()

    piped = [orjson.loads(line) for line in tail()]
    assert sorted(record["key"] for record in piped if record["topic"] == wirewatch_settings.topic_briefs) == sorted(
        brief.id for brief in briefs
    )
    assert {record["value"]["city"] for record in piped if record["topic"] == wirewatch_settings.topic_briefs} == {
        brief.city for brief in briefs
    }

    readable = tail("--lines")
    assert len(readable) == 4
    assert sum(" brief " in line for line in readable) == 3
    assert all("\x1b[" not in line for line in readable), "no colour when stdout is not a terminal"
    for brief in briefs:
        assert any(brief.city in line and (brief.headline or brief.text)[:20] in line for line in readable)


def test_hostile_records_are_dead_lettered_small_and_the_worker_keeps_pace(wirewatch_settings, wirewatch_env, start_worker,
                                                                           seed_page):
    # A dead letter keeping the whole value of a 1.2 MB record is larger than a producer request may be.
    worker = start_worker({**wirewatch_env, "WIREWATCH_DEAD_LETTER_MAX_ORIGINAL_BYTES": "4000000",
                           "WIREWATCH_MAX_PAGE_BYTES": "1000000"})
    topic = wirewatch_settings.topic_raw
    stamp = int(FETCHED.timestamp() * 1000)
    backtracking = b"AB (" + b"A  /" * 24 + b"A  !\n"  # 25 s at 16 repeats before, each two more about x8
    sent = {
        "backtracking": run(produce(wirewatch_settings, topic, backtracking, key=b"redos", timestamp_ms=stamp)),
        "long_key": run(produce(wirewatch_settings, topic, b"\xff broken", key=b"k" * 500_000, timestamp_ms=stamp)),
        "huge": run(produce_large(wirewatch_settings, topic, b"\xfe" * 1_200_000)),
    }
    long_url = ("https://example.org/" + "a" * 400).encode()
    run(produce(wirewatch_settings, topic, seed_page.encode(), key=long_url, timestamp_ms=stamp))

    briefs = run(read_topic(wirewatch_settings, wirewatch_settings.topic_briefs, at_least=8, timeout=60))
    assert {Brief.model_validate_json(record.value).source[:20] for record in briefs} == {"https://example.org/"}
    run(wait_until_drained(wirewatch_settings, _internal_topics(wirewatch_settings)))
    letters = {
        (letter.source_partition, letter.source_offset): letter
        for letter in (DeadLetter.model_validate_json(r.value) for r in
                       run(read_topic(wirewatch_settings, wirewatch_settings.topic_dead_letters, at_least=3)))
    }
    by_case = {case: letters[(meta.partition, meta.offset)] for case, meta in sent.items()}
    assert by_case["backtracking"].reason == "no_briefs"
    assert by_case["long_key"].reason == "invalid_utf8"
    assert (by_case["long_key"].source_key_size, by_case["long_key"].source_key_truncated) == (500_000, True)
    assert by_case["huge"].reason == "too_large"
    assert by_case["huge"].original_base64 == "" and "left out" in by_case["huge"].message
    port = int(wirewatch_env["WIREWATCH_WEB_PORT"])
    metrics = scrape_metrics(port)
    assert metric_total(metrics, "wirewatch_dead_letters_total") == 3
    assert metric_total(metrics, "wirewatch_dead_letters_total", reason="internal_error") == 0
    assert worker.process.poll() is None
    assert "Traceback" not in worker.log()


async def produce_large(settings, topic: str, value: bytes):
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=4_000_000)
    await producer.start()
    try:
        return await producer.send_and_wait(topic, value, key=b"huge", timestamp_ms=int(FETCHED.timestamp() * 1000))
    finally:
        await producer.stop()
