"""Spike detection: is a topic's count in an event-time window surprising given its history?

The model
---------
Mentions of a topic arrive as an overdispersed point process. Its baseline
rate is a Gamma–Poisson estimate from the mentions *before* the window under
test (so a burst never raises its own bar), weighting the past with an
exponential decay of half-life ``baseline_half_life``::

    rate(s) = (decayed mentions before s + α₀) / (decayed exposure before s + β₀)

Exposure is the decayed time the stream has been observed, so a series that
just started is judged on what it has shown so far, not on zeros it never had.
The prior (α₀, β₀) is the cold start: ``β₀ = prior_strength`` seconds at a rate
that depends on how common the topic's name is in ordinary language (wordfreq):
a name used ten times as often gets ten times the prior rate, so at cold start
"Greenland" three times in half an hour is news and "United States" is not.

The window's count is compared with a negative binomial of that mean and shape
``dispersion`` (variance = μ + μ²/k), which allows for bursty, overdispersed
news and for a daily cycle that the decayed baseline follows with some lag; a
plain Poisson test would flood the desk. A window is a spike when all hold:
count ≥ ``min_count``, count ≥ ``min_ratio`` × μ, score = −log₁₀ P(X ≥ count) ≥
``sensitivity``, and the stream has been observed for ``warmup`` seconds before
the window starts. Pure Python: no Kafka, no Faust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "DetectorConfig",
    "Evaluation",
    "TopicHistory",
    "negative_binomial_tail",
    "surprise",
    "SpikeDetector",
]


@dataclass(frozen=True)
class DetectorConfig:
    """Window, baseline and alerting settings shared by the worker and the offline commands."""

    window_size: float = 1800.0
    window_step: float = 300.0
    window_retention: float = 6 * 3600.0
    baseline_half_life: float = 6 * 3600.0
    prior_rate_per_hour: float = 0.5
    prior_reference_zipf: float = 4.0
    prior_strength: float = 3600.0
    warmup: float = 3600.0
    min_count: int = 3
    min_ratio: float = 2.0
    sensitivity: float = 4.0
    dispersion: float = 2.0
    cooldown: float = 2 * 3600.0
    escalation_factor: float = 3.0

    @property
    def decay_time(self) -> float:
        return self.baseline_half_life / math.log(2)

    def prior_rate(self, zipf: float) -> float:
        """Prior mentions per second of a topic whose name has Zipf frequency ``zipf``."""
        scale = 10 ** max(min(zipf - self.prior_reference_zipf, 2.0), -2.0)
        return self.prior_rate_per_hour * scale / 3600.0


def negative_binomial_tail(count: int, mean: float, shape: float) -> float:
    """P(X ≥ count) for a negative binomial with ``mean`` and ``shape`` k (variance mean + mean²/k)."""
    if count <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    p = shape / (shape + mean)
    log_p, log_q = math.log(p), math.log1p(-p)
    below = 0.0
    for k in range(count):
        log_pmf = math.lgamma(k + shape) - math.lgamma(shape) - math.lgamma(k + 1) + shape * log_p + k * log_q
        below += math.exp(log_pmf)
    return max(1.0 - below, 0.0) if below < 0.999999 else _upper_tail(count, shape, log_p, log_q)


def _upper_tail(count: int, shape: float, log_p: float, log_q: float) -> float:
    # Summing the upper tail directly keeps precision where 1 − P(X < count) underflows.
    total = 0.0
    k = count
    while True:
        log_pmf = math.lgamma(k + shape) - math.lgamma(shape) - math.lgamma(k + 1) + shape * log_p + k * log_q
        term = math.exp(log_pmf)
        total += term
        if term < total * 1e-12 or k > count + 100_000:
            return total
        k += 1


def surprise(count: int, mean: float, shape: float) -> float:
    """−log₁₀ P(X ≥ count): 4 means a one-in-ten-thousand window."""
    tail = negative_binomial_tail(count, mean, shape)
    return 300.0 if tail <= 1e-300 else -math.log10(tail)


@dataclass
class TopicHistory:
    """What the detector remembers of one topic, as a JSON-able dict when stored.

    ``recent`` keeps mentions (time, brief id, story id) newer than ``keep``
    seconds before the newest one, exactly; older mentions are folded into
    ``mass``, their decayed sum as of ``mass_time``.
    """

    mass: float = 0.0
    mass_time: float | None = None
    recent: list[tuple[float, str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"mass": self.mass, "mass_time": self.mass_time, "recent": [list(item) for item in self.recent]}

    @classmethod
    def from_dict(cls, data: dict | None) -> "TopicHistory":
        if not data:
            return cls()
        return cls(data["mass"], data["mass_time"], [(float(t), str(b), str(s)) for t, b, s in data["recent"]])

    def add(self, timestamp: float, brief_id: str, story_id: str, *, keep: float, decay_time: float) -> bool:
        """Remember a mention; False (and no change) if this brief's mention is already remembered."""
        if any(known == brief_id for _, known, _ in self.recent):
            return False
        self.recent.append((timestamp, brief_id, story_id))
        self.recent.sort()
        newest = self.recent[-1][0]
        while self.recent and self.recent[0][0] < newest - keep:
            old = self.recent.pop(0)[0]
            self._fold(old, decay_time)
        return True

    def _fold(self, timestamp: float, decay_time: float) -> None:
        if self.mass_time is None:
            self.mass, self.mass_time = 1.0, timestamp
        elif timestamp >= self.mass_time:
            self.mass = self.mass * math.exp(-(timestamp - self.mass_time) / decay_time) + 1.0
            self.mass_time = timestamp
        else:
            self.mass += math.exp(-(self.mass_time - timestamp) / decay_time)

    def mass_before(self, moment: float, decay_time: float) -> float:
        """Decayed count of mentions before ``moment``, as of ``moment``."""
        total = 0.0
        if self.mass_time is not None:
            total += self.mass * math.exp(-(moment - self.mass_time) / decay_time)
        for timestamp, _, _ in self.recent:
            if timestamp < moment:
                total += math.exp(-(moment - timestamp) / decay_time)
        return total

    def mentions_between(self, start: float, end: float) -> list[tuple[float, str, str]]:
        return [mention for mention in self.recent if start <= mention[0] <= end]


@dataclass(frozen=True)
class Evaluation:
    """The detector's verdict on one window of one topic."""

    topic: str
    window_start: float
    window_end: float
    count: int
    baseline: float
    score: float
    is_spike: bool


class SpikeDetector:
    """Applies the model above; holds settings only, never state."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config

    def expected(self, history: TopicHistory, window_start: float, observed_since: float, zipf: float) -> float:
        """Expected mentions in a window starting at ``window_start``."""
        config = self.config
        tau = config.decay_time
        observed = max(window_start - observed_since, 0.0)
        exposure = tau * -math.expm1(-observed / tau)
        alpha = config.prior_rate(zipf) * config.prior_strength
        rate = (history.mass_before(window_start, tau) + alpha) / (exposure + config.prior_strength)
        return rate * config.window_size

    def evaluate(
        self,
        topic: str,
        window_start: float,
        window_end: float,
        count: int,
        history: TopicHistory,
        observed_since: float,
        zipf: float,
    ) -> Evaluation:
        config = self.config
        baseline = self.expected(history, window_start, observed_since, zipf)
        score = surprise(count, baseline, config.dispersion)
        is_spike = (
            count >= config.min_count
            and count >= config.min_ratio * baseline
            and score >= config.sensitivity
            and max(window_start - observed_since, 0.0) >= config.warmup
        )
        return Evaluation(topic, window_start, window_end, count, baseline, score, is_spike)
