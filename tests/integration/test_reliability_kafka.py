"""Losing nothing: crashes, scale-out, a broker restart and hostile input, against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from kafka_helpers import (
    drain_restarting_a_stalled_worker,
    free_port,
    metric_total,
    produce_many,
    read_topic,
    run,
    scrape_metrics,
    wait_until_drained,
)
from wirewatch.core.pipeline import parse_envelope
from wirewatch.models import Alert, DeadLetter, Envelope
from wirewatch.offline.simulation import Scenario, simulate

pytestmark = pytest.mark.kafka

COOLDOWN = 2 * 3600


def simulated_feed(
    hours: float, *, snapshot_every: float = 300.0, spikes: int = 4, seed: int = 7, end: datetime | None = None
):
    """(key, envelope bytes) records of a simulated feed ending at ``end`` (default now), and the brief ids the
    worker must publish."""
    start = (end or datetime.now(timezone.utc)) - timedelta(hours=hours)
    simulation = simulate(Scenario(hours=hours, spikes=spikes, seed=seed, snapshot_every=snapshot_every), start)
    records, expected = [], set()
    for snapshot in simulation.snapshots:
        envelope = Envelope(source="sim", url="https://wire.example/b", fetched_at=snapshot.fetched_at, body=snapshot.page)
        records.append((b"https://wire.example/b", envelope.model_dump_json().encode()))
        expected.update(brief.id for brief in parse_envelope(envelope).briefs)
    return records, expected


def stage_topics(settings) -> list[str]:
    return settings.stage_topics()


def brief_ids(settings) -> list[str]:
    return [record.key.decode() for record in run(read_topic(settings, settings.topic_briefs))]


def candidate_places(settings) -> dict[str, list[tuple[int, int]]]:
    """Brief id → (partition, offset) of every candidate record that carried it."""
    carried = defaultdict(list)
    for record in run(read_topic(settings, settings.topic_candidates)):
        carried[record.key.decode()].append((record.partition, record.offset))
    return carried


def assert_every_brief_published(settings, expected: set[str]) -> list[str]:
    """Every expected brief is on wire.briefs; if not, say where the missing ones got to."""
    published = brief_ids(settings)
    missing = expected - set(published)
    if missing:
        carried = candidate_places(settings)
        raise AssertionError(
            f"{len(missing)} briefs never published; candidate records (partition, offset) of each: "
            f"{sorted(carried.get(brief, []) for brief in missing)}"
        )
    assert set(published) == expected
    return published


def assert_no_brief_forwarded_again(settings, published_before: list[str]) -> None:
    """No brief reached wire.briefs again; if one did, say which, and which candidate records carried it."""
    published = brief_ids(settings)
    again = sorted(brief for brief, count in Counter(published).items() if count > Counter(published_before)[brief])
    if again:
        carried = candidate_places(settings)
        raise AssertionError(
            f"{len(again)} briefs forwarded again ({len(published)} records where {len(published_before)} were); "
            f"candidate records (partition, offset) of each: {[(brief, carried.get(brief, [])) for brief in again]}"
        )


def assert_repeats_are_identical(settings) -> None:
    """At least once: a brief published twice after a crash is the same record, so keeping one per id is safe."""
    values = defaultdict(set)
    for record in run(read_topic(settings, settings.topic_briefs)):
        values[record.key].add(record.value)
    assert all(len(found) == 1 for found in values.values())


def alerts_after_consumer_rule(settings) -> list[Alert]:
    """The documented rule: keep one record per (alert id, revision)."""
    unique = {}
    for record in run(read_topic(settings, settings.topic_alerts)):
        alert = Alert.model_validate_json(record.value)
        unique[(alert.id, alert.revision)] = alert
    return list(unique.values())


def assert_no_spike_alerted_twice(alerts: list[Alert]) -> None:
    raised = defaultdict(list)
    for alert in alerts:
        if alert.revision == 1 and alert.escalation == 0:
            raised[alert.topic].append(alert.detected_at.timestamp())
    for topic, times in raised.items():
        times.sort()
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert all(gap >= COOLDOWN for gap in gaps), f"{topic} raised again within its cooldown: {times}"


def test_a_lone_worker_leaves_no_record_undone_behind_a_done_one(wirewatch_settings, wirewatch_env, start_worker):
    """With no rebalance, every source record is acked once processed, so nothing is stranded or read twice.

    Nor after a clean restart: the worker that starts on the committed offsets
    of the one stopped with SIGTERM needs no rescue either.
    """
    records, expected = simulated_feed(hours=6, spikes=2, seed=5)
    half = len(records) // 2
    first = start_worker(wirewatch_env)
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[:half]))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=120))
    found = scrape_metrics(int(wirewatch_env["WIREWATCH_WEB_PORT"]))
    assert metric_total(found, "wirewatch_stranded_reads_total") == 0
    assert metric_total(found, "wirewatch_unprocessed_acks_total") == 0
    assert first.stop() == 0

    start_worker(wirewatch_env)
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[half:]))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=120))
    assert_every_brief_published(wirewatch_settings, expected)

    found = scrape_metrics(int(wirewatch_env["WIREWATCH_WEB_PORT"]))
    assert metric_total(found, "wirewatch_stranded_reads_total") == 0
    assert metric_total(found, "wirewatch_unprocessed_acks_total") == 0
    assert metric_total(found, "wirewatch_story_replays_total") == 0


def latest(time_of_day: time) -> datetime:
    """The latest moment at ``time_of_day`` (UTC) not after now."""
    now = datetime.now(timezone.utc)
    today = datetime.combine(now.date(), time_of_day, tzinfo=timezone.utc)
    return today if today <= now else today - timedelta(days=1)


# The detector's baseline knows the hour of day, so where a feed ends decides which spikes the kill
# lands in. This end is one where briefs read again after the kill once raised a spike a second time
# (docs/guarantees.md); every run meets the same hours.
CRASH_FEED_END = time(4, 30, 56)


def test_kill_9_mid_stream_loses_nothing_and_alerts_nothing_twice(wirewatch_settings, wirewatch_env, start_worker):
    records, expected = simulated_feed(hours=34, snapshot_every=60, end=latest(CRASH_FEED_END))
    assert len(records) > 2000
    first = start_worker(wirewatch_env)
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records))
    run(read_topic(wirewatch_settings, wirewatch_settings.topic_briefs, at_least=len(expected) // 3, timeout=120))
    first.kill()

    second = drain_restarting_a_stalled_worker(
        wirewatch_settings, stage_topics(wirewatch_settings), start_worker(wirewatch_env), lambda: start_worker(wirewatch_env)
    )
    published = assert_every_brief_published(wirewatch_settings, expected)
    assert_repeats_are_identical(wirewatch_settings)
    assert_no_spike_alerted_twice(alerts_after_consumer_rule(wirewatch_settings))
    assert second.process.poll() is None

    # The de-duplication table came back from its changelog: old snapshots add nothing.
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[:50]))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=120))
    assert len(brief_ids(wirewatch_settings)) == len(published)
    # Stories came back too: story updates after the restart continue stories opened before it.
    stories = [json.loads(record.value) for record in run(read_topic(wirewatch_settings, wirewatch_settings.topic_stories))]
    assert max(story["brief_count"] for story in stories) > 10


def test_two_workers_share_the_work_and_one_takes_over_when_the_other_dies(
    wirewatch_settings, wirewatch_env, start_worker, tmp_path
):
    ports = [free_port(), free_port()]
    envs = [
        {**wirewatch_env, "WIREWATCH_WEB_PORT": str(port), "WIREWATCH_DATA_DIR": f"{tmp_path}/w{port}"} for port in ports
    ]
    workers = [start_worker(env) for env in envs]
    records, expected = simulated_feed(hours=6, spikes=2, seed=11)
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[: len(records) // 2]))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=180))
    emitted = [metric_total(scrape_metrics(port), "wirewatch_briefs_emitted_total") for port in ports]
    assert all(count > 0 for count in emitted), f"both workers de-duplicate a share of the briefs: {emitted}"

    workers[0].kill()
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[len(records) // 2 :]))

    drain_restarting_a_stalled_worker(
        wirewatch_settings, stage_topics(wirewatch_settings), workers[1], lambda: start_worker(envs[1])
    )
    published = assert_every_brief_published(wirewatch_settings, expected)
    assert_no_spike_alerted_twice(alerts_after_consumer_rule(wirewatch_settings))
    # The survivor took over the dead worker's de-duplication state as well as its partitions.
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[:30]))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=120))
    assert_no_brief_forwarded_again(wirewatch_settings, published)


def test_the_worker_rides_out_a_broker_restart(wirewatch_settings, wirewatch_env, start_worker, kafka_control):
    worker = start_worker(wirewatch_env)
    records, expected = simulated_feed(hours=4, spikes=1, seed=3)
    half = len(records) // 2
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[:half]))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=120))

    kafka_control.restart()
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[half:]))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=240))
    assert set(brief_ids(wirewatch_settings)) == expected
    assert worker.process.poll() is None, "the worker resumed by itself"


BAD_RECORDS = [
    (b"\xff\xfe\xfa not utf-8", "invalid_utf8"),
    (b"", "empty_message"),
    (b"   ", "empty_message"),
    (b'{"source": 5, "fetched_at": "2026-01-01T00:00:00Z", "body": "x"}', "invalid_envelope"),
    (b'{"source": "s"}', "invalid_envelope"),
    (b"{" + b'"a":{' * 3000 + b"}" * 3001, "invalid_json"),
    (b"{not json at all", "invalid_json"),
    (b"\x00\x01\x02\x03", "empty_page"),
    (b"just words, no dateline anywhere", "no_briefs"),
    (b"x" * (10 * 1024 * 1024), "too_large"),
]


def test_soak_good_in_equals_briefs_out_and_bad_in_equals_dead_letters_out(
    wirewatch_settings, wirewatch_env, start_worker, seed_page
):
    worker = start_worker(wirewatch_env)
    good, expected = simulated_feed(hours=10, spikes=2, seed=5)
    now = datetime.now(timezone.utc)
    # The same pages again at a high rate: duplicates, not new briefs.
    good = good + good[-40:] * 5
    hostile_html = Envelope(
        source="sim", fetched_at=now, body="<html><script>evil()</script><p>Meer uit Buitenland</p>"
        "<p>PARIJS (ANP) - Een brief in HTML.</p><p>4 minuten geleden</p></html>"
    )
    good.append((b"html", hostile_html.model_dump_json().encode()))
    expected |= {b.id for b in parse_envelope(hostile_html).briefs}
    bad = []
    for index in range(150):
        value, reason = BAD_RECORDS[index % len(BAD_RECORDS)]
        if reason == "too_large" and index >= len(BAD_RECORDS):
            continue  # one oversized record is enough to prove the limit
        bad.append((f"bad-{index}".encode(), value, reason))
    bad.append((b"future", orjson.dumps({"source": "s", "fetched_at": (now + timedelta(days=3)).isoformat(), "body": seed_page}), "time_in_future"))
    mixed = []
    for index, record in enumerate(good):
        mixed.append(record)
        if index < len(bad):
            mixed.append(bad[index][:2])
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, mixed))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=240))

    assert set(brief_ids(wirewatch_settings)) == expected
    assert len(brief_ids(wirewatch_settings)) == len(expected), "each brief once"
    letters = [DeadLetter.model_validate_json(r.value) for r in run(read_topic(wirewatch_settings, wirewatch_settings.topic_dead_letters))]
    assert len(letters) == len(bad)
    assert sorted(letter.reason for letter in letters) == sorted(reason for _, _, reason in bad)
    assert all(len(letter.original_base64) <= 4 * 64 * 1024 // 3 + 4 for letter in letters)
    assert worker.process.poll() is None
    assert worker.rss_bytes() < 1024**3


def seed_briefs_through(env: dict[str, str], settings, seed_page: str) -> list:
    """Produce the seed page with ``wirewatch produce`` in ``env`` (a secured listener) and wait for its 8 briefs."""
    produced = subprocess.run(
        [sys.executable, "-m", "wirewatch", "produce", "--raw", "-", "--source", "seed"],
        input=seed_page.encode(), env={**os.environ, **env}, capture_output=True,
    )
    assert produced.returncode == 0, produced.stderr
    records = run(read_topic(settings, settings.topic_briefs, at_least=8))
    assert len({r.key for r in records}) == 8
    return records


def sasl_env(wirewatch_env: dict[str, str], local_broker, mechanism: str) -> dict[str, str]:
    """``wirewatch_env`` reaching the test broker's SASL listener as its user, with ``mechanism``."""
    return {
        **wirewatch_env,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{local_broker.sasl_port}",
        "WIREWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "WIREWATCH_KAFKA_SASL_MECHANISM": mechanism,
        "WIREWATCH_KAFKA_SASL_USERNAME": local_broker.sasl_user,
        "WIREWATCH_KAFKA_SASL_PASSWORD": local_broker.sasl_password,
    }


def test_sasl_scram_and_plain_work_and_a_wrong_password_is_refused_without_leaking(
    local_broker, wirewatch_settings, wirewatch_env, start_worker, seed_page
):
    if local_broker is None:
        pytest.skip("needs the test run's own broker, which has a SASL listener and a SCRAM user")
    sasl = sasl_env(wirewatch_env, local_broker, "SCRAM-SHA-512")
    worker = start_worker(sasl)
    records = seed_briefs_through(sasl, wirewatch_settings, seed_page)
    assert local_broker.sasl_password not in worker.log()
    tailed = subprocess.run(
        [sys.executable, "-m", "wirewatch", "tail", wirewatch_settings.topic_briefs, "--max-records", "8", "--json"],
        env={**os.environ, **sasl}, capture_output=True, timeout=60,
    )
    assert tailed.returncode == 0, tailed.stderr
    assert {orjson.loads(line)["key"].encode() for line in tailed.stdout.splitlines()} == {r.key for r in records}

    plain = {**sasl, "WIREWATCH_KAFKA_SASL_MECHANISM": "PLAIN"}
    over_plain = subprocess.run(
        [sys.executable, "-m", "wirewatch", "produce", "--raw", "-", "--source", "plain"],
        input=b"x", env={**os.environ, **plain}, capture_output=True,
    )
    assert over_plain.returncode == 0, over_plain.stderr

    wrong = {**sasl, "WIREWATCH_KAFKA_SASL_PASSWORD": "not-the-password", "WIREWATCH_BROKER_WAIT_TIMEOUT": "10"}
    refused = subprocess.run(
        [sys.executable, "-m", "wirewatch", "produce", "--raw", "-"], input=b"x", env={**os.environ, **wrong},
        capture_output=True, timeout=60,
    )
    assert refused.returncode == 1
    assert b"SaslAuthenticationFailed" in refused.stderr and b"no Kafka broker answered" in refused.stderr
    assert b"not-the-password" not in refused.stderr + refused.stdout


def test_a_worker_logging_at_debug_over_sasl_plain_never_writes_the_password(
    local_broker, wirewatch_settings, wirewatch_env, start_worker, seed_page
):
    if local_broker is None:
        pytest.skip("needs the test run's own broker, which has a SASL listener")
    plain = {**sasl_env(wirewatch_env, local_broker, "PLAIN"), "WIREWATCH_LOG_LEVEL": "debug"}
    worker = start_worker(plain)
    seed_briefs_through(plain, wirewatch_settings, seed_page)
    log = worker.log()
    assert "[DEBUG]" in log  # the worker did log at debug
    assert local_broker.sasl_password not in log


def test_the_development_brokers_files_with_passwords_are_its_owners_alone(local_broker):
    if local_broker is None:
        pytest.skip("needs the test run's own broker")
    data_dir = Path(local_broker.env["KAFKA_DATA_DIR"])
    properties = data_dir / "server.properties"
    assert local_broker.sasl_password in properties.read_text()
    for secret in (properties, data_dir / "tls" / "password", data_dir / "tls"):
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} is open to others: {oct(secret.stat().st_mode)}"


def test_a_worker_connects_over_tls_and_a_client_refuses_a_broker_its_ca_did_not_sign(
    local_broker, wirewatch_settings, wirewatch_env, start_worker, seed_page, tmp_path
):
    if local_broker is None:
        pytest.skip("needs the test run's own broker, which has a TLS listener and the CA that signed it")
    tls = {
        **wirewatch_env,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{local_broker.tls_port}",
        "WIREWATCH_KAFKA_SECURITY_PROTOCOL": "SSL",
        "WIREWATCH_KAFKA_SSL_CAFILE": str(local_broker.tls_ca),
    }
    start_worker(tls)
    seed_briefs_through(tls, wirewatch_settings, seed_page)

    # A CA of another's: the broker's certificate does not verify, and the client says so.
    other = tmp_path / "other-ca"
    store = ["-keystore", f"{other}.p12", "-storetype", "PKCS12", "-storepass", "other-pass", "-alias", "ca"]
    subprocess.run(["keytool", "-genkeypair", *store, "-keyalg", "RSA", "-dname", "CN=another CA", "-ext", "bc:c"],
                   check=True, capture_output=True)
    subprocess.run(["keytool", "-exportcert", "-rfc", *store, "-file", f"{other}.pem"], check=True, capture_output=True)
    wrong = {**tls, "WIREWATCH_KAFKA_SSL_CAFILE": f"{other}.pem", "WIREWATCH_BROKER_WAIT_TIMEOUT": "5"}
    refused = subprocess.run(
        [sys.executable, "-m", "wirewatch", "produce", "--raw", "-"], input=b"x", env={**os.environ, **wrong},
        capture_output=True, timeout=60,
    )
    assert refused.returncode == 1
    assert b"CERTIFICATE_VERIFY_FAILED" in refused.stderr and b"no Kafka broker answered" in refused.stderr


def test_a_rocksdb_worker_restarts_from_local_state_and_still_expires_windows(
    wirewatch_settings, wirewatch_env, start_worker, tmp_path
):
    env = {**wirewatch_env, "WIREWATCH_STORE": "rocksdb://", "WIREWATCH_DATA_DIR": str(tmp_path / "state")}
    port = int(env["WIREWATCH_WEB_PORT"])
    first = start_worker(env)
    # A feed that ended two days ago: its windows are far behind the next one.
    old = datetime.now(timezone.utc) - timedelta(days=2)
    simulation = simulate(Scenario(hours=6, spikes=1, seed=13), old - timedelta(hours=6))
    records = [
        (b"old", Envelope(source="sim", fetched_at=s.fetched_at, body=s.page).model_dump_json().encode())
        for s in simulation.snapshots
    ]
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records))
    run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=180))
    windows_before = metric_total(scrape_metrics(port), "wirewatch_table_entries", table="story-step-counts")
    seen_before = metric_total(scrape_metrics(port), "wirewatch_table_entries", table="brief-first-seen")
    assert windows_before > 20 and seen_before > 50
    assert first.stop() == 0

    second = start_worker(env)
    assert "Restoring state from changelog topics" not in second.log(), "local RocksDB state was current"
    assert metric_total(scrape_metrics(port), "wirewatch_table_entries", table="brief-first-seen") == seen_before
    published = len(brief_ids(wirewatch_settings))
    run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, records[-20:]))
    # Two new briefs of one story, two days after the old feed and eight hours apart: the second expires
    # the windows this worker wrote for the first (Faust's expiry bookkeeping once failed there on RocksDB's keys).
    now = datetime.now(timezone.utc)
    for source, fetched_at, text in (("earlier", now - timedelta(hours=8), "Groenland blijft in het nieuws."),
                                     ("now", now, "Groenland opnieuw in het nieuws.")):
        page = f"Meer uit Buitenland\nPARIJS (ANP) - {text}\n1 minuut geleden"
        envelope = {"source": source, "fetched_at": fetched_at.isoformat(), "body": page}
        run(produce_many(wirewatch_settings, wirewatch_settings.topic_raw, [(source.encode(), orjson.dumps(envelope))]))
        run(wait_until_drained(wirewatch_settings, stage_topics(wirewatch_settings), timeout=120))
    assert len(brief_ids(wirewatch_settings)) == published + 2, "old snapshots stay duplicates after the restart"
    assert "Crashed reason" not in second.log()
    # faust-streaming #385: windows recovered after a restart never expire. Here they are dropped by event
    # time: what is left is the one step bucket of the last brief's story.
    assert metric_total(scrape_metrics(port), "wirewatch_table_entries", table="story-step-counts") == 1
