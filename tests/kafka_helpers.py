"""Helpers for tests that talk to the real broker: worker processes, producing, reading, draining."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from wirewatch.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class WorkerProcess:
    """A ``wirewatch worker`` subprocess whose log goes to a file."""

    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, env: dict[str, str], *, log_path: Path) -> "WorkerProcess":
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "wirewatch", "worker", "--loglevel", env.get("WIREWATCH_LOG_LEVEL", "info")],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return cls(process, log_path)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker never logged {text!r}:\n{self.log()[-4000:]}")
            time.sleep(0.2)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until Faust reports the worker ready, that is, started and assigned partitions."""
        self.wait_for_log("[^Worker]: Ready", timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no flush."""
        self.process.kill()
        self.process.wait()

    def dump_tasks(self) -> None:
        """SIGUSR1: the worker logs its consumer's flow state and every asyncio task's stack."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(2)

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def drain_restarting_a_stalled_worker(
    settings: Settings, topics: list[str], worker: WorkerProcess, start_again, *, patience: float = 150.0
) -> WorkerProcess:
    """Wait until the group has committed everything; if ``worker`` is still behind after ``patience`` seconds,
    log its task dump, kill it and run ``start_again()`` once (what an operator paged by
    WirewatchConsumerLagGrowing does about the Faust stall the README describes). Returns the worker now running."""
    try:
        run(wait_until_drained(settings, topics, timeout=patience))
        return worker
    except AssertionError as stalled:
        warnings.warn(f"a worker stalled and was restarted: {stalled}", stacklevel=2)
        worker.dump_tasks()  # what the stalled worker was waiting on goes to its log
        worker.kill()
        restarted = start_again()
        run(wait_until_drained(settings, topics, timeout=300))
        return restarted


def scrape_metrics(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, from a worker's /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric_total(found: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in found.items()
        if sample == name and all((key, wanted) in sample_labels for key, wanted in labels.items())
    )


def run(coroutine):
    return asyncio.run(coroutine)


async def produce(
    settings: Settings,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    timestamp_ms: int | None = None,
):
    """Write one record and return its metadata."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        return await producer.send_and_wait(topic, value, key=key, headers=headers, timestamp_ms=timestamp_ms)
    finally:
        await producer.stop()


async def produce_many(
    settings: Settings,
    topic: str,
    records: list[tuple[bytes | None, bytes | None]],
    *,
    linger_ms: int = 5,
    max_batch_size: int = 16384,
) -> None:
    """Write (key, value) records in order and wait until all are acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str, *, at_least: int = 0, timeout: float = 60.0) -> list[ConsumerRecord]:
    """Every record on ``topic`` from the beginning, waiting until there are ``at_least``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic, timeout)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while True:
            end = await consumer.end_offsets(partitions)
            positions = {tp: await consumer.position(tp) for tp in partitions}
            caught_up = all(positions[tp] >= end[tp] for tp in partitions)
            if caught_up and len(records) >= at_least:
                return records
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(records)} records after {timeout}s, wanted {at_least}")
            batch = await consumer.getmany(timeout_ms=300)
            for chunk in batch.values():
                records.extend(chunk)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str, timeout: float) -> list[TopicPartition]:
    deadline = time.monotonic() + timeout
    while True:
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, partition) for partition in sorted(found)]
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} does not exist")
        await asyncio.sleep(0.3)


async def wait_until_drained(settings: Settings, topics: list[str], *, timeout: float = 60.0) -> None:
    """Until the worker's consumer group has committed every record now on ``topics``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            partitions = [tp for topic in topics for tp in await _partitions(consumer, topic, timeout)]
            end = await consumer.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(settings.group_id)
            behind = {}
            for tp in partitions:
                done = committed[tp].offset if tp in committed else 0
                if done < end[tp]:
                    behind[tp] = end[tp] - done
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer group {settings.group_id} still behind: {behind}")
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
        await consumer.stop()
