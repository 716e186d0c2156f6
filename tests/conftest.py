"""Shared fixtures: one real Kafka broker per test run, fresh topics and app id per test.

``tests/unit`` needs no broker; everything in ``tests/integration`` talks to
the real one and is marked ``kafka`` (so ``-m "not kafka"`` is the fast suite).
The broker is the project's own ``deploy/kafka/local-kafka.sh`` on a free
port with empty storage, unless ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster to
use instead.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka_helpers import WorkerProcess, free_port
from wirewatch.settings import Settings

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"
SEED_PAGE = TEST_DATA / "seed-page.txt"
LOCAL_KAFKA = REPO / "deploy" / "kafka" / "local-kafka.sh"


INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def seed_page() -> str:
    """The real captured page the project is specified against."""
    path = Path(os.environ.get("WIREWATCH_SEED_PAGE", SEED_PAGE))
    return path.read_text(encoding="utf-8")


class LocalBroker:
    """The test run's broker, started by deploy/kafka/local-kafka.sh."""

    sasl_user, sasl_password = "wirewatch", "s3cret-scram-pass"

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.sasl_port = free_port()
        self.tls_port = free_port()
        #: The CA that signed the TLS listener's certificate, made with the storage.
        self.tls_ca = data_dir / "tls" / "ca.pem"
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_SASL_PORT": str(self.sasl_port),
            "KAFKA_SASL_USER": self.sasl_user,
            "KAFKA_SASL_PASSWORD": self.sasl_password,
            "KAFKA_TLS_PORT": str(self.tls_port),
            "KAFKA_DATA_DIR": str(data_dir),
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, fresh: bool = False) -> None:
        env = {**self.env, "KAFKA_FRESH": "1" if fresh else "0"}
        subprocess.run([str(LOCAL_KAFKA), "start"], env=env, check=True)

    def stop(self) -> None:
        subprocess.run([str(LOCAL_KAFKA), "stop"], env=self.env, check=False)

    def restart(self) -> None:
        """Stop the broker cleanly and start it again on the same storage."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def local_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker | None]:
    """The broker started for this test run; None when KAFKA_BOOTSTRAP_SERVERS names one to use."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield None
        return
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"))
    broker.start(fresh=True)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_broker: LocalBroker | None) -> str:
    """Bootstrap address of a running broker."""
    return local_broker.bootstrap if local_broker else os.environ["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture
def kafka_control(local_broker: LocalBroker | None) -> LocalBroker:
    """Stop and start the broker; only for the broker this test run started."""
    if local_broker is None:
        pytest.skip("restarting the broker needs the test run's own broker, not KAFKA_BOOTSTRAP_SERVERS")
    return local_broker


@pytest.fixture
def wirewatch_env(kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a wirewatch process with its own app id (consumer group) and topics."""
    run = uuid.uuid4().hex[:10]
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "WIREWATCH_APP_ID": f"wirewatch-test-{run}",
        "WIREWATCH_TOPIC_RAW": f"test-{run}.wire.raw",
        "WIREWATCH_TOPIC_BRIEFS": f"test-{run}.wire.briefs",
        "WIREWATCH_TOPIC_DEAD_LETTERS": f"test-{run}.wire.raw.dlq",
        "WIREWATCH_TOPIC_STORIES": f"test-{run}.wire.stories",
        "WIREWATCH_TOPIC_ALERTS": f"test-{run}.wire.alerts",
        "WIREWATCH_TOPIC_FEEDBACK": f"test-{run}.wire.feedback",
        "WIREWATCH_TOPIC_PARTITIONS": "3",
        "WIREWATCH_DATA_DIR": str(tmp_path / "worker-data"),
        "WIREWATCH_WEB_PORT": str(free_port()),
        "WIREWATCH_BROKER_WAIT_TIMEOUT": "60",
        # A killed worker's partitions move after 10 s instead of a minute.
        "WIREWATCH_SESSION_TIMEOUT_SECONDS": "10",
        # A stalled worker logs its consumer's flow state well before a test gives up on it.
        "WIREWATCH_STALL_SECONDS": "60",
    }


@pytest.fixture
def wirewatch_settings(wirewatch_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of this test's wirewatch, also exported to the test's own environment."""
    for name, value in wirewatch_env.items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """Start ``wirewatch worker`` processes; every one still running is stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str], *, wait_ready: bool = True) -> WorkerProcess:
        worker = WorkerProcess.start(env, log_path=tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        if wait_ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
