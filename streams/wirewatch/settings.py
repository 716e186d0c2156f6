"""wirewatch's one settings object, read from environment variables.

Every setting is ``WIREWATCH_<NAME>``; the broker address is also read from the
conventional ``KAFKA_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import ssl
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .core.clustering import ClusterConfig
from .core.parser import DEFAULT_PARSE_BUDGET
from .core.spikes import DetectorConfig

_DETECTOR = DetectorConfig()

__all__ = ["Settings"]

_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


class Settings(BaseSettings):
    """Effective configuration of a wirewatch process."""

    model_config = SettingsConfigDict(env_prefix="WIREWATCH_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("WIREWATCH_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of the Kafka cluster.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, description="Never logged or printed.")
    kafka_ssl_cafile: str | None = Field(default=None, description="CA bundle to verify the brokers (SSL).")
    kafka_ssl_certfile: str | None = Field(default=None, description="Client certificate for mutual TLS.")
    kafka_ssl_keyfile: str | None = None
    stream_buffer_maxsize: int = Field(
        default=16384,
        ge=1024,
        description="Records Faust buffers per stream; room for a backlog while a restarted worker recovers tables.",
    )
    producer_max_batch_bytes: int = Field(
        default=262144,
        ge=16384,
        le=1000000,
        description="Largest batch the producer sends to one partition. With one request in flight per broker, "
        "a send to a partition whose batch is full waits for the request before it.",
    )
    producer_buffer_max_messages: int = Field(
        default=10000,
        ge=100,
        description="Table writes that may wait to be produced before Faust stops delivering records.",
    )
    session_timeout_seconds: float = Field(
        default=60.0, ge=6, description="A worker silent this long leaves the group and its partitions move."
    )
    group_instance_id: str | None = Field(
        default=None, description="Static group membership id, e.g. the pod name; restarts keep partitions."
    )
    app_id: str = Field(default="wirewatch", description="Faust app id: consumer group and table prefix.")
    stages: Literal["all", "briefs", "stories", "deliver"] = Field(
        default="all",
        description="What a worker runs: every stage, only raw → briefs, only the story stage "
        "(consumer group <app_id>-stories), or only alert delivery to Alertmanager (<app_id>-deliver). "
        "Separate processes keep the story engine's CPU work off the briefs' path.",
    )
    alertmanager_url: str | None = Field(
        default=None,
        description="Alertmanager to deliver alerts to (http://127.0.0.1:9093); unset, alerts stay on wire.alerts "
        "and the desk page.",
    )
    watchlists_file: str | None = Field(
        default=None,
        description="YAML file of desks and what each follows (docs/operating.md); read again when it changes. "
        "Unset: every alert is for the desk 'all'.",
    )
    desk_url: str | None = Field(
        default=None,
        description="The desk page's address as people reach it, for links in delivered alerts; "
        "default http://<web_host>:<web_port>/.",
    )
    topic_raw: str = "wire.raw"
    topic_briefs: str = "wire.briefs"
    topic_dead_letters: str = "wire.raw.dlq"
    topic_stories: str = "wire.stories"
    topic_alerts: str = "wire.alerts"
    topic_feedback: str = "wire.feedback"
    topic_partitions: int = Field(default=4, ge=1, description="Partitions of every topic wirewatch creates.")
    topic_replication_factor: int = Field(default=1, ge=1)
    max_page_bytes: int = Field(
        default=900 * 1024,
        ge=1024,
        description="Larger raw values go to the DLQ. Kafka's default message limit is 1 MiB; raise both together.",
    )
    max_briefs_per_page: int = Field(default=500, ge=1, description="Items beyond this on one page are rejected.")
    parse_budget_seconds: float = Field(
        default=DEFAULT_PARSE_BUDGET,
        gt=0,
        description="CPU seconds one page may take to parse; a page that takes longer is dead-lettered "
        "as parse_budget_exceeded and its offset moves on.",
    )
    recent_brief_ids: int = Field(
        default=100_000,
        ge=0,
        description="Brief ids each worker remembers forwarding, to skip repeats before Kafka; 0 sends every candidate.",
    )
    brief_id_retention_seconds: float = Field(
        default=7 * 86400,
        gt=0,
        description="The de-duplication table forgets a brief id once its candidates partition's fetch times have "
        "moved this far past the candidate that first carried it; a page listing the brief after that may forward it again.",
    )
    dead_letter_max_original_bytes: int = Field(
        default=64 * 1024, ge=0, description="How much of a rejected value a dead letter keeps."
    )
    store: str = Field(default="memory://", description="Faust table store: memory:// or rocksdb://.")
    data_dir: str = Field(default=".cache/worker", description="Faust data folder (local table state).")
    web_host: str = Field(
        default="127.0.0.1",
        description="The address the desk page, /api/desk and /metrics listen on (and are linked by); "
        "0.0.0.0 opens them to the network.",
    )
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_auth_token: SecretStr | None = Field(
        default=None,
        description="When set, every web path but /health and /ready asks for it: as a bearer token, or as the "
        "password of HTTP basic authentication (any user name), which a browser prompts for. Never logged.",
    )
    web_allowed_hosts: str = Field(
        default="",
        description="Comma-separated host names the web port answers to (the Host header, port aside); '*' any. "
        "Empty: loopback names when web_host is a loopback address, any otherwise.",
    )
    web_idle_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A web client that has sent no whole request for this long is disconnected, idle or slow.",
    )
    broker_wait_timeout: float | None = Field(
        default=None, description="Seconds to wait for the broker at start; unset waits forever."
    )
    log_level: str = "info"
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias=AliasChoices("WIREWATCH_LOG_FORMAT", "LOG_FORMAT")
    )
    metrics_max_label_values: int = Field(default=50, ge=1, description="Distinct sources/sections per label.")
    consumer_lag_interval_seconds: float = Field(default=15.0, gt=0)
    stall_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A source partition behind whose committed offset has not moved this long is fetched again "
        "from that offset; twice this long, /health says 503.",
    )
    stranded_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A source partition with records that nothing will process (the record at the committed "
        "offset not done while a later one is, or fetched records let go of) this long is read again from there.",
    )

    languages: str = Field(
        default="nl,en,de,fr,es,it,pt,da", description="ISO 639-1 codes the language detector chooses among."
    )
    aliases_file: str | None = Field(default=None, description="Extra topic aliases, same format as data/aliases.tsv.")
    story_similarity: float = Field(
        default=0.05, gt=0, le=1, description="Affinity (cosine damped by the story's quiet time) to join a story."
    )
    story_merge_similarity: float = Field(
        default=0.12, gt=0, le=1, description="Affinity of two stories at which the larger absorbs the smaller."
    )
    story_embedding_weight: float = Field(
        default=2.0,
        ge=0,
        description="Weight of what a brief means (word embeddings) beside the words it shares with a story; 0 turns "
        "it off and loads no model.",
    )
    story_embedding_floor: float = Field(
        default=0.25, ge=-1, lt=1, description="Meaning cosine of unrelated texts: only the closeness above it counts."
    )
    story_embedding_share: float = Field(
        default=0.5, ge=0, le=1, description="The most of the bar to join a story that meaning may supply; shared "
        "words supply the rest.",
    )
    story_embedding_languages: str = Field(
        default="en",
        description="Comma-separated ISO 639-1 codes of the briefs whose meaning is weighed: languages the model was "
        "trained on.",
    )
    story_merge_meaning_floor: float = Field(
        default=0.35, ge=-1, le=1, description="With meaning weighed, two stories merge only if their meanings are "
        "at least this close (cosine).",
    )
    story_time_scale_seconds: float = Field(
        default=6 * 3600,
        gt=0,
        description="A story quiet this long, or as long as it has run if longer, has its affinity damped by e.",
    )
    story_ttl_seconds: float = Field(
        default=3 * 24 * 3600, gt=0, description="A story expires after this long without a brief."
    )
    window_size_seconds: float = Field(default=1800, gt=0)
    window_step_seconds: float = Field(default=300, gt=0)
    window_retention_seconds: float = Field(
        default=6 * 3600,
        gt=0,
        description="Windows that ended this long (event time) before the newest brief are dropped.",
    )
    baseline_half_life_seconds: float = Field(default=_DETECTOR.baseline_half_life, gt=0)
    season_memory_seconds: float = Field(
        default=_DETECTOR.season_memory, gt=0, description="How long a topic's daily and weekly cycle is remembered."
    )
    prior_rate_per_hour: float = Field(
        default=_DETECTOR.prior_rate_per_hour, gt=0, description="Cold-start rate of a topic as common as Zipf 4."
    )
    prior_strength_seconds: float = Field(default=_DETECTOR.prior_strength, gt=0)
    warmup_seconds: float = Field(
        default=_DETECTOR.warmup, ge=0, description="Observe the stream this long before alerting."
    )
    spike_ceiling_warmup_seconds: float = Field(
        default=_DETECTOR.ceiling_warmup, ge=0, description="A topic that expects spike_ceiling_min_expected or more "
        "per window rises only after this much stream: its ceiling means little before it has seen a whole day."
    )
    spike_min_count: int = Field(default=_DETECTOR.min_count, ge=1)
    spike_min_ratio: float = Field(default=_DETECTOR.min_ratio, ge=1)
    spike_sensitivity: float = Field(
        default=_DETECTOR.sensitivity, gt=0, description="Alert when -log10 p reaches this."
    )
    spike_dispersion: float = Field(
        default=_DETECTOR.dispersion, gt=0, description="Prior negative binomial shape, before a topic shows its own."
    )
    spike_range_half_life_seconds: float = Field(
        default=_DETECTOR.range_half_life, gt=0, description="A drop must fall below the topic's lowest recent "
        "windows (against expectation), forgotten this fast."
    )
    spike_ceiling_half_life_seconds: float = Field(
        default=_DETECTOR.ceiling_half_life, gt=0, description="A rise must beat the topic's busiest closed window, "
        "its memory halving this fast."
    )
    spike_ceiling_margin: float = Field(
        default=_DETECTOR.ceiling_margin, ge=0, description="By how much (0.25: a quarter) a rise must beat that window."
    )
    spike_noise_margin_step: float = Field(
        default=_DETECTOR.noise_margin_step, ge=0, description="Margin added over the ceiling per unit of a topic's "
        "noise level (editors' 'noise' verdicts, fading over a week, at most 4)."
    )
    spike_ceiling_min_expected: float = Field(
        default=_DETECTOR.ceiling_min_expected, ge=0, description="From this many expected mentions per window a "
        "topic is busy: a rise above its ceiling alerts whatever its chance under the baseline (below it, the chance "
        "decides too), must hold (spike_hold_seconds) and waits for spike_ceiling_warmup_seconds of stream."
    )
    spike_hold_seconds: float = Field(
        default=_DETECTOR.hold, ge=0, description="A busy topic's modest rise (it expects spike_ceiling_min_expected "
        "or more per window, and stays under spike_hold_bypass times its ceiling) alerts once the mentions after it "
        "beat the ceiling it cleared, if they do within this long. Whole window steps, at most one window; 0 alerts "
        "at once."
    )
    spike_hold_bypass: float = Field(
        default=_DETECTOR.hold_bypass, ge=1, description="A rise to this many times the topic's ceiling alerts at once."
    )
    spike_drop_min_expected: float = Field(
        default=_DETECTOR.drop_min_expected, gt=0, description="A topic must expect this many per window to drop."
    )
    alert_cooldown_seconds: float = Field(default=_DETECTOR.cooldown, ge=0)
    alert_escalation_factor: float = Field(default=_DETECTOR.escalation_factor, gt=1)
    story_batch_seconds: float = Field(
        default=0.02,
        gt=0,
        description="The story agent sorts briefs arriving this close together by event time. Faust's batching "
        "waits this long after every batch that is not full, idle, so it also caps the stage's rate in bursts.",
    )

    @model_validator(mode="after")
    def _windows_are_whole_steps(self) -> "Settings":
        # Windows are counted as sums of step-long buckets of whole seconds (see HoppingWindows).
        if self.window_step_seconds != int(self.window_step_seconds) or self.window_size_seconds != int(
            self.window_size_seconds
        ):
            raise ValueError("WIREWATCH_WINDOW_SIZE_SECONDS and WIREWATCH_WINDOW_STEP_SECONDS must be whole seconds")
        if self.window_size_seconds < self.window_step_seconds or self.window_size_seconds % self.window_step_seconds:
            raise ValueError("WIREWATCH_WINDOW_SIZE_SECONDS must be a whole number of WIREWATCH_WINDOW_STEP_SECONDS")
        return self

    @property
    def broker_url(self) -> str:
        """The bootstrap servers in Faust's ``kafka://`` URL form."""
        return ";".join(f"kafka://{server.strip()}" for server in self.kafka_bootstrap_servers.split(","))

    @property
    def group_id(self) -> str:
        """This worker's Faust app id: its consumer group and the prefix of its tables' changelogs."""
        return f"{self.app_id}-{self.stages}" if self.stages in ("stories", "deliver") else self.app_id

    @property
    def runs_briefs(self) -> bool:
        return self.stages in ("all", "briefs")

    @property
    def runs_stories(self) -> bool:
        return self.stages in ("all", "stories")

    @property
    def runs_delivery(self) -> bool:
        return self.stages in ("all", "deliver") and self.alertmanager_url is not None

    def desk_link(self) -> str:
        return self.desk_url or f"http://{self.web_host}:{self.web_port}/"

    @property
    def topic_candidates(self) -> str:
        """Internal: brief candidates keyed by brief id, for de-duplication."""
        return f"{self.app_id}-brief-candidates"

    @property
    def topic_story_input(self) -> str:
        """Internal: new briefs under one key, for the story stage."""
        return f"{self.app_id}-story-input"

    def web_host_names(self) -> frozenset[str]:
        """The Host header names the web port answers to; empty for any."""
        names = {name.strip().lower() for name in self.web_allowed_hosts.split(",") if name.strip()}
        if "*" in names:
            return frozenset()
        if names:
            return frozenset(names)
        if self.web_host in _LOOPBACK_NAMES:
            return _LOOPBACK_NAMES
        return frozenset()

    def stage_topics(self) -> list[str]:
        """The topics the agents consume, in pipeline order."""
        return [self.topic_raw, self.topic_candidates, self.topic_story_input]

    def broker_credentials(self):
        """Faust credentials for the configured security protocol (None for PLAINTEXT)."""
        from faust import SASLCredentials, SSLCredentials

        context = None
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
            if self.kafka_ssl_certfile:
                context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        if self.kafka_security_protocol.startswith("SASL"):
            password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            return SASLCredentials(
                username=self.kafka_sasl_username,
                password=password,
                mechanism=self.kafka_sasl_mechanism,
                ssl_context=context,
            )
        if context is not None:
            return SSLCredentials(context)
        return None

    def kafka_client_options(self) -> dict:
        """Security options for aiokafka clients, the same Faust uses."""
        from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

        return credentials_to_aiokafka_auth(self.broker_credentials())

    def detector_config(self) -> DetectorConfig:
        return DetectorConfig(
            window_size=self.window_size_seconds,
            window_step=self.window_step_seconds,
            window_retention=self.window_retention_seconds,
            baseline_half_life=self.baseline_half_life_seconds,
            season_memory=self.season_memory_seconds,
            range_half_life=self.spike_range_half_life_seconds,
            ceiling_half_life=self.spike_ceiling_half_life_seconds,
            ceiling_margin=self.spike_ceiling_margin,
            ceiling_min_expected=self.spike_ceiling_min_expected,
            hold=self.spike_hold_seconds,
            hold_bypass=self.spike_hold_bypass,
            noise_margin_step=self.spike_noise_margin_step,
            drop_min_expected=self.spike_drop_min_expected,
            prior_rate_per_hour=self.prior_rate_per_hour,
            prior_strength=self.prior_strength_seconds,
            warmup=self.warmup_seconds,
            ceiling_warmup=self.spike_ceiling_warmup_seconds,
            min_count=self.spike_min_count,
            min_ratio=self.spike_min_ratio,
            sensitivity=self.spike_sensitivity,
            dispersion=self.spike_dispersion,
            cooldown=self.alert_cooldown_seconds,
            escalation_factor=self.alert_escalation_factor,
        )

    def cluster_config(self) -> ClusterConfig:
        return ClusterConfig(
            similarity=self.story_similarity,
            merge_similarity=self.story_merge_similarity,
            time_scale=self.story_time_scale_seconds,
            ttl=self.story_ttl_seconds,
            embedding_weight=self.story_embedding_weight,
            embedding_floor=self.story_embedding_floor,
            embedding_share=self.story_embedding_share,
            merge_meaning_floor=self.story_merge_meaning_floor,
            embedding_languages=_codes(self.story_embedding_languages),
        )

    def language_codes(self) -> tuple[str, ...]:
        return _codes(self.languages)

    @property
    def bootstrap_servers(self) -> list[str]:
        return [server.strip() for server in self.kafka_bootstrap_servers.split(",") if server.strip()]


def _codes(listed: str) -> tuple[str, ...]:
    """Language codes from a comma-separated setting, lower case."""
    return tuple(code.strip().lower() for code in listed.split(",") if code.strip())
