"""The Prometheus metrics a wirewatch worker exports (prometheus-client).

Names follow Prometheus conventions: one ``wirewatch_`` prefix, base units
(seconds, bytes), counters ending in ``_total``. Label values that come from
the wire (source, section) are capped to ``max_label_values`` distinct values
per label, the rest reported as ``other``, so a misbehaving producer cannot
blow up the series count. No brief, story or alert id is ever a label.

Faust's own Prometheus sensor is not exposed: its ~26 families are named
``<app id>_…`` in milliseconds and would break these conventions; what a
dashboard needs from the stream is here.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import __version__

__all__ = ["Metrics", "LabelCap"]

prometheus_client.disable_created_metrics()

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
_PARSE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class LabelCap:
    """Passes the first ``limit`` distinct values of a label, then says ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        value = value or "unknown"
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return "other"


class _CallbackGauges(Collector):
    """Gauges read at scrape time from callbacks returning (labels, value) pairs."""

    def __init__(self, name: str, documentation: str, labels: list[str], read: Callable[[], Iterable]) -> None:
        self.name, self.documentation, self.labels, self.read = name, documentation, labels, read

    def collect(self):
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in self.read():
            family.add_metric(list(labels), value)
        yield family

    def describe(self):
        yield GaugeMetricFamily(self.name, self.documentation, labels=self.labels)


class Metrics:
    """All of a worker's metrics, in a registry of their own."""

    def __init__(self, *, max_label_values: int = 50) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.source_label = LabelCap(max_label_values)
        self.section_label = LabelCap(max_label_values)

        self.raw_messages = Counter(
            "wirewatch_raw_messages", "Raw records consumed, by source.", ["source"], registry=registry
        )
        self.raw_bytes = Counter(
            "wirewatch_raw_bytes", "Bytes of raw record values consumed, by source.", ["source"], registry=registry
        )
        self.briefs_emitted = Counter(
            "wirewatch_briefs_emitted",
            "Briefs published on the briefs topic, by section and kind.",
            ["section", "kind"],
            registry=registry,
        )
        self.duplicate_briefs = Counter(
            "wirewatch_duplicate_briefs",
            "Repeated briefs dropped, by stage: split (this worker forwarded the id lately) or deduplicate (the table).",
            ["stage"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "wirewatch_dead_letters", "Records sent to the dead-letter topic, by reason.", ["reason"], registry=registry
        )
        self.parse_duration = Histogram(
            "wirewatch_parse_duration_seconds",
            "Time to decode and split one raw record.",
            buckets=_PARSE_BUCKETS,
            registry=registry,
        )
        self.event_lag = Histogram(
            "wirewatch_event_lag_seconds",
            "Time from a brief's published_at to its publication by wirewatch.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.processing_lag = Histogram(
            "wirewatch_processing_lag_seconds",
            "Time from a page's fetched_at to the publication of its new briefs.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.stories_opened = Counter("wirewatch_stories_opened", "Stories opened.", registry=registry)
        self.story_replays = Counter(
            "wirewatch_story_replays",
            "Briefs the story stage had already processed, read again after a restart; their outputs are re-sent.",
            registry=registry,
        )
        self.late_briefs = Counter(
            "wirewatch_late_briefs",
            "Briefs older than the story stage's window retention behind its newest brief: they join stories, "
            "but count in no window and raise or revise no alert.",
            registry=registry,
        )
        self.stories_active = Gauge("wirewatch_stories_active", "Stories not yet expired.", registry=registry)
        self.held_back_records = Counter(
            "wirewatch_held_back_records",
            "Source records fetched ahead of their partition's next offset and held back (read again in order).",
            ["topic"],
            registry=registry,
        )
        self.unprocessed_acks = Counter(
            "wirewatch_unprocessed_acks",
            "Source records acked during a rebalance or from before it, not recorded as done (read again).",
            ["topic"],
            registry=registry,
        )
        self.stranded_reads = Counter(
            "wirewatch_stranded_reads",
            "Times a source partition was read again because records were stranded: the record at the committed "
            "offset never done while later ones were, or fetched records never handed on.",
            ["topic"],
            registry=registry,
        )
        self.stalled_partitions = Gauge(
            "wirewatch_stalled_partitions",
            "Source partitions behind whose committed offset has not moved for WIREWATCH_STALL_SECONDS.",
            registry=registry,
        )
        self.alerts_raised = Counter(
            "wirewatch_alerts_raised", "Alerts raised (new ids), by severity.", ["severity"], registry=registry
        )
        self.alert_revisions = Counter(
            "wirewatch_alert_revisions", "Revisions of alerts already raised.", registry=registry
        )
        self.alert_deliveries = Counter(
            "wirewatch_alert_deliveries",
            "Posts of alert lines to Alertmanager, by outcome: delivered, failed (tried again) or rejected (a 4xx).",
            ["outcome"],
            registry=registry,
        )
        self.alert_feedback = Counter(
            "wirewatch_alert_feedback", "Editors' verdicts on alerts taken from the desk page, by verdict.",
            ["verdict"], registry=registry,
        )
        self.alert_deliveries_pending = Gauge(
            "wirewatch_alert_deliveries_pending", "Alert lines waiting for Alertmanager to take them.", registry=registry
        )
        self.build_info = Gauge(
            "wirewatch_build_info",
            "Always 1; the labels say what is running.",
            ["version", "python_version", "faust_version"],
            registry=registry,
        )
        from faust import __version__ as faust_version

        self.build_info.labels(__version__, platform.python_version(), faust_version).set(1)
        self._consumer_lag: dict[tuple[str, str], float] = {}
        self._active_alerts: dict[str, tuple[int, float]] = {}
        self._read_tables: Callable[[], Iterable[tuple[tuple[str], float]]] = lambda: ()
        self.registry.register(
            _CallbackGauges(
                "wirewatch_table_entries",
                "Entries held in each table on this worker (windowed tables: one per key and window).",
                ["table"],
                lambda: self._read_tables(),
            )
        )
        self.registry.register(
            _CallbackGauges(
                "wirewatch_consumer_lag_records",
                "Records on each assigned source partition not yet committed by the consumer group.",
                ["topic", "partition"],
                lambda: list(self._consumer_lag.items()),
            )
        )
        self.registry.register(
            _CallbackGauges(
                "wirewatch_active_alert_briefs",
                "Briefs in the window of each topic with an alert in its cooldown (at most the 20 largest).",
                ["topic"],
                lambda: [((topic,), float(count)) for topic, (count, _) in self._top_active_alerts()],
            )
        )

    def watch_tables(self, read: Callable[[], Iterable[tuple[tuple[str], float]]]) -> None:
        """Export ``wirewatch_table_entries{table}`` from ``read`` at each scrape."""
        self._read_tables = read

    def set_consumer_lag(self, lags: dict[tuple[str, int], int]) -> None:
        self._consumer_lag = {(topic, str(partition)): float(lag) for (topic, partition), lag in lags.items()}

    def note_alert(self, topic: str, count: int, raised_at: float) -> None:
        self._active_alerts[topic] = (count, raised_at)

    def expire_alerts(self, watermark: float, cooldown: float) -> None:
        """Forget alerts whose cooldown ended before ``watermark`` (event time)."""
        self._active_alerts = {
            topic: entry for topic, entry in self._active_alerts.items() if watermark - entry[1] < cooldown
        }

    def _top_active_alerts(self) -> list[tuple[str, tuple[int, float]]]:
        # Topics are open-ended, so only the few currently alerting ones become series.
        return sorted(self._active_alerts.items(), key=lambda item: (-item[1][0], item[0]))[:20]

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
