"""wirewatch's one settings object, read from environment variables.

Every setting is ``WIREWATCH_<NAME>``; the broker address is also read from the
conventional ``KAFKA_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Effective configuration of a wirewatch process."""

    model_config = SettingsConfigDict(env_prefix="WIREWATCH_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("WIREWATCH_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of the Kafka cluster.",
    )
    app_id: str = Field(default="wirewatch", description="Faust app id: consumer group and table prefix.")
    topic_raw: str = "wire.raw"
    topic_briefs: str = "wire.briefs"
    topic_dead_letters: str = "wire.raw.dlq"
    topic_partitions: int = Field(default=4, ge=1, description="Partitions of every topic wirewatch creates.")
    topic_replication_factor: int = Field(default=1, ge=1)
    max_page_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Larger raw values go to the DLQ.")
    dead_letter_max_original_bytes: int = Field(
        default=64 * 1024, ge=0, description="How much of a rejected value a dead letter keeps."
    )
    store: str = Field(default="memory://", description="Faust table store: memory:// or rocksdb://.")
    data_dir: str = Field(default=".cache/worker", description="Faust data folder (local table state).")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    broker_wait_timeout: float | None = Field(
        default=None, description="Seconds to wait for the broker at start; unset waits forever."
    )
    log_level: str = "info"

    @property
    def broker_url(self) -> str:
        """The bootstrap servers in Faust's ``kafka://`` URL form."""
        return ";".join(f"kafka://{server.strip()}" for server in self.kafka_bootstrap_servers.split(","))

    @property
    def bootstrap_servers(self) -> list[str]:
        return [server.strip() for server in self.kafka_bootstrap_servers.split(",") if server.strip()]
