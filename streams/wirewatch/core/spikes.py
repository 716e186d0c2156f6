"""Spike detection: is a topic's count in an event-time window surprising, given its history and the hour?

What a topic's history holds
----------------------------
:class:`TopicHistory` is one topic's state, small enough for one table row
whatever the topic's volume: its counts per window step for the last
``window_retention`` seconds (with the first few brief ids of each recent
step), and a baseline learned from the steps that have left every window
still open. A step is *folded* into the baseline only once no window that
contains the newest mention contains it, so a burst never raises its own bar.

The baseline
------------
A step's expected count is ``level × seasonal factor``:

- ``level`` is a Gamma–Poisson estimate of the deseasonalised count per step,
  its past decayed with half-life ``baseline_half_life``::

      level = (decayed counts + α₀) / (decayed seasonal exposure + β₀)

  Exposure is the decayed sum of the seasonal factors of the steps observed,
  counted from the moment the stream was first observed, so a topic never
  named before has a long quiet history, and a stream that has just started
  is judged on what it has shown so far. The prior (α₀, β₀) is the cold start:
  ``β₀ = prior_strength`` seconds at a rate that depends on how common the
  topic's name is in ordinary language (wordfreq): a name used ten times as
  often gets ten times the prior rate, so at cold start "Greenland" four times
  in half an hour is news and "United States" is not.
- The seasonal factor of a half hour of the week (Monday 09:00–09:30 UTC) is a
  Gamma–Poisson ratio too: decayed counts in that half hour over the level's
  expectation for it, remembered for ``season_memory``, with a prior of
  ``season_prior`` counts at the ratio for that half hour of any day; that one
  has the same prior at 1. A topic learns its daily cycle in days and its
  weekly one (quiet Sunday mornings, busy Friday nights) in weeks; a topic
  named a few times a day keeps factors near 1, and one that expects under
  one mention per hundred steps learns none.
- Spikes are kept out: once the baseline has seen half its memory (before
  that the level is still catching up, and neither the season, the spread nor
  the range learn), a step's count enters it clipped at one mention plus
  ``clip_deviations`` standard deviations above its expectation. A lasting
  level shift still moves the level, step by step.
- Overdispersion is learned per topic: the window counts that left the open
  windows give a moment estimate of the negative binomial's 1/shape, shrunk
  towards ``1 / dispersion`` with the weight of ``dispersion_prior_windows``
  windows. A regular series (taxi rides) gets a tight band, bursty tweets a
  wide one.

The verdict
-----------
A window **rises** when all hold: count ≥ ``min_count`` and ≥ ``min_ratio`` ×
expected; the stream has been observed for ``warmup`` seconds (an hour), or
for ``ceiling_warmup`` (a day) where the topic expects ``ceiling_min_expected``
or more: a busy topic's ceiling says what is unusual only once it has seen a
whole daily cycle; and the count beats the topic's **ceiling** by
``ceiling_margin`` (a quarter). The ceiling
is the busiest window that has closed, its memory halving every
``ceiling_half_life`` (three days): a topic must beat what it has itself
done lately, so one that bursts every afternoon does not alert every
afternoon, a spike raises the bar for the next one, and a burst that builds up
over half an hour is judged against its own first windows as they close. Mention
counts are heavy-tailed: against a variance, a Poisson or a negative
binomial, every busy afternoon is a one-in-a-million event; against the topic's
own range it is not. Where the topic expects fewer than
``ceiling_min_expected`` (10) mentions in a window (a wire topic counted in ones and
twos, a topic seen for the first time, whose ceiling says little) the count
must also be surprising under the baseline: score = −log₁₀ P(X ≥ count) ≥
``sensitivity`` under that negative binomial, so that at cold start three
mentions of a common word are not news.

A busy topic's rise must **hold**: where the topic expects
``ceiling_min_expected`` or more and the count is under ``hold_bypass``
(twice) its ceiling, the rise is remembered (``TopicHistory.held``: the step
it rose in and the ceiling it cleared) and alerts once the mentions after it
beat that ceiling too, if they do within ``hold`` (the next half hour); a
count of twice the ceiling or more alerts at once. Most of a busy topic's
false alerts on real tweet volumes were bursts that had faded within the
half hour. The choice of rule and of its settings was made
leave-one-series-out on real labelled series (see
``docs/stories-and-alerts.md``).

A window **drops** when the count falls below its expectation by
``min_ratio``, below the topic's lowest recent ratio to expectation (decayed
with ``range_half_life``), and is surprising under the negative binomial, for
a topic that expects at least ``drop_min_expected`` in a window (a wire that
goes quiet). A window whose last step has not a single mention is not
judged: that is a feed that stopped, which pages the operator
(``WirewatchNoInput``), not the desk. Pure, deterministic Python: no Kafka, no Faust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

__all__ = [
    "RISE",
    "DROP",
    "Baseline",
    "ClosedWindow",
    "DetectorConfig",
    "Evaluation",
    "TopicHistory",
    "WindowView",
    "negative_binomial_tail",
    "negative_binomial_head",
    "surprise",
    "expected_text",
    "SpikeDetector",
]

RISE, DROP = "rise", "drop"


@dataclass(frozen=True)
class DetectorConfig:
    """Window, baseline and alerting settings shared by the worker and the offline commands."""

    window_size: float = 1800.0
    window_step: float = 300.0
    window_retention: float = 6 * 3600.0
    baseline_half_life: float = 6 * 3600.0
    season_memory: float = 21 * 86400.0
    season_prior: float = 20.0
    range_half_life: float = 5 * 86400.0
    ceiling_half_life: float = 3 * 86400.0
    ceiling_margin: float = 0.25
    ceiling_min_expected: float = 10.0
    hold: float = 1800.0
    hold_bypass: float = 2.0
    noise_margin_step: float = 0.25
    prior_rate_per_hour: float = 0.5
    prior_reference_zipf: float = 4.0
    prior_strength: float = 3600.0
    warmup: float = 3600.0
    ceiling_warmup: float = 86400.0
    min_count: int = 3
    min_ratio: float = 1.5
    sensitivity: float = 4.0
    dispersion: float = 2.0
    dispersion_prior_windows: float = 24.0
    clip_deviations: float = 3.0
    drop_min_expected: float = 30.0
    cooldown: float = 2 * 3600.0
    escalation_factor: float = 3.0
    ids_per_step: int = 10

    def __post_init__(self) -> None:
        if self.window_step <= 0 or self.window_size < self.window_step or self.window_size % self.window_step:
            raise ValueError("window size must be a whole, positive number of window steps")
        if not 0 <= self.hold <= self.window_size or self.hold % self.window_step:
            raise ValueError("a rise's hold must be a whole number of window steps, at most one window")

    @property
    def decay_time(self) -> float:
        return self.baseline_half_life / math.log(2)

    @property
    def steps_per_window(self) -> int:
        return int(self.window_size // self.window_step)

    def prior_rate(self, zipf: float) -> float:
        """Prior mentions per second of a topic whose name has Zipf frequency ``zipf``."""
        scale = 10 ** max(min(zipf - self.prior_reference_zipf, 2.0), -2.0)
        return self.prior_rate_per_hour * scale / 3600.0


def _log_beta_prefix(a: float, b: float, x: float) -> float:
    return math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)


def _beta_fraction(a: float, b: float, x: float) -> float:
    # Lentz's method for the continued fraction of the incomplete beta function.
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 100_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return result


def _regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(_log_beta_prefix(a, b, x)) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(_log_beta_prefix(a, b, x)) * _beta_fraction(b, a, 1.0 - x) / b


def negative_binomial_tail(count: int, mean: float, shape: float) -> float:
    """P(X ≥ count) for a negative binomial with ``mean`` and ``shape`` k (variance mean + mean²/k)."""
    if count <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    return _regularized_beta(count, shape, mean / (shape + mean))


def negative_binomial_head(count: int, mean: float, shape: float) -> float:
    """P(X ≤ count) for the same negative binomial."""
    if count < 0:
        return 0.0
    if mean <= 0:
        return 1.0
    return _regularized_beta(shape, count + 1, shape / (shape + mean))


def _deviation(mean: float, inverse_shape: float) -> float:
    """The standard deviation of a negative binomial with ``mean`` and 1/shape ``inverse_shape``."""
    return math.sqrt(mean + mean**2 * inverse_shape)


def _score(probability: float) -> float:
    return 300.0 if probability <= 1e-300 else -math.log10(probability)


def surprise(count: int, mean: float, shape: float) -> float:
    """−log₁₀ P(X ≥ count): 4 means a one-in-ten-thousand window."""
    return _score(negative_binomial_tail(count, mean, shape))


_SLOTS_PER_DAY, _SLOTS_PER_WEEK = 48, 7 * 48


def expected_text(value: float) -> str:
    """An expected count for people: whole above 10, two decimals below 1, and a tiny one as "< 0.01"."""
    if value >= 10:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.01 else "< 0.01"


def _season_slots(timestamp: float) -> tuple[int, int]:
    """The UTC half hour of the day and of the week (from Monday 00:00) of ``timestamp``."""
    half_hours = int(timestamp // 1800)
    # 1 January 1970 was a Thursday: three days, 144 half hours, after a Monday.
    return half_hours % _SLOTS_PER_DAY, (half_hours + 3 * _SLOTS_PER_DAY) % _SLOTS_PER_WEEK


@dataclass(frozen=True)
class WindowView:
    """One window of a topic: its count, its expectation from the baseline, and how far it strays."""

    start: float
    end: float
    count: int
    expected: float

    @property
    def log_ratio(self) -> float:
        return math.log((self.count + 1.0) / (self.expected + 1.0))


@dataclass
class TopicHistory:
    """What the detector remembers of one topic; a JSON-able dict when stored (:meth:`to_dict`).

    ``steps`` maps a step's start to ``[count, [[brief id, story id], ...]]``:
    only steps with mentions, only for ``window_retention``, ids only for the
    first ``ids_per_step`` mentions of steps still in an open window.
    ``folded`` is the start of the newest step in the baseline, ``newest`` of
    the newest step seen; ``held`` is a rise waiting to show it holds:
    ``[start of the step it rose in, the ceiling it cleared]``. The seasonal
    sums are stored undecayed since ``season_anchor`` (the reader decays them
    all at once), and empty until the topic is busy enough to learn a cycle.
    """

    steps: dict[float, list] = field(default_factory=dict)
    folded: float | None = None
    newest: float | None = None
    mass: float = 0.0
    exposure: float = 0.0
    season_anchor: float | None = None
    day_counts: list[float] = field(default_factory=list)
    day_expected: list[float] = field(default_factory=list)
    week_counts: list[float] = field(default_factory=list)
    week_expected: list[float] = field(default_factory=list)
    spread: float = 0.0
    spread_weight: float = 0.0
    trough: float = 0.0
    ceiling: float = 0.0
    held: list | None = None

    def to_dict(self) -> dict:
        return {
            "steps": [[start, entry[0], entry[1]] for start, entry in sorted(self.steps.items())],
            "folded": self.folded,
            "newest": self.newest,
            "level": [self.mass, self.exposure],
            "season": [
                self.season_anchor,
                list(self.day_counts),
                list(self.day_expected),
                list(self.week_counts),
                list(self.week_expected),
            ],
            "spread": [self.spread, self.spread_weight],
            "trough": self.trough,
            "ceiling": self.ceiling,
            **({"held": list(self.held)} if self.held else {}),
        }

    @classmethod
    def from_dict(cls, data: dict | None, *, step: float) -> "TopicHistory":
        """The history a stored row holds; ``step`` is the window step its counts are kept by."""
        if not data:
            return cls()
        if "recent" in data:
            return cls._from_mention_list(data, step)
        anchor, day_counts, day_expected, week_counts, week_expected = data["season"]
        return cls(
            steps={float(start): [count, [list(pair) for pair in ids] if ids else []] for start, count, ids in data["steps"]},
            folded=data["folded"],
            newest=data["newest"],
            mass=data["level"][0],
            exposure=data["level"][1],
            season_anchor=anchor,
            day_counts=list(day_counts),
            day_expected=list(day_expected),
            week_counts=list(week_counts),
            week_expected=list(week_expected),
            spread=data["spread"][0],
            spread_weight=data["spread"][1],
            # Rows written before the ceiling was kept hold [peak, trough] as "range"; they learn a ceiling anew.
            trough=data["trough"] if "trough" in data else data["range"][1],
            ceiling=data.get("ceiling", 0.0),
            held=data.get("held"),
        )

    @classmethod
    def _from_mention_list(cls, data: dict, step: float) -> "TopicHistory":
        # Rows written before histories were kept as step counts listed every recent mention: they
        # become step counts (none of them folded yet) and the old decayed mass becomes the level.
        history = cls(mass=float(data.get("mass") or 0.0))
        for timestamp, brief_id, story_id in data["recent"]:
            entry = history.steps.setdefault((float(timestamp) // step) * step, [0, []])
            entry[0] += 1
            entry[1].append([str(brief_id), str(story_id)])
        if history.steps:
            history.newest = max(history.steps)
            history.folded = min(history.steps) - step
        return history

    @staticmethod
    def newest_in(data: dict) -> float | None:
        """The newest step a stored row has seen, without reading the rest of it."""
        if "recent" in data:
            return max((float(mention[0]) for mention in data["recent"]), default=None)
        return data["newest"]

    def count_at(self, step_start: float) -> int:
        entry = self.steps.get(step_start)
        return entry[0] if entry else 0

    def holds(self, step_start: float, brief_id: str) -> bool:
        """Whether the step lists the brief among its mentions."""
        entry = self.steps.get(step_start)
        return bool(entry) and any(known == brief_id for known, _ in entry[1])

    def is_fully_listed(self, step_start: float) -> bool:
        """Whether every mention of the step has its brief id listed."""
        entry = self.steps.get(step_start)
        return not entry or entry[0] == len(entry[1])

    def mentions(self, start: float, end: float) -> list[list[str]]:
        """Listed ``[brief id, story id]`` pairs of the steps in ``[start, end]``, oldest step first."""
        return [pair for step, entry in sorted(self.steps.items()) if start <= step <= end for pair in entry[1]]


@dataclass(frozen=True)
class Baseline:
    """A topic's expectation per step as it stands: its level and its seasonal factors."""

    level: float
    history: TopicHistory
    scale: float
    prior: float
    step: float
    #: Half hour of the week → its factor, worked out once; folding shares it across steps (see ``advance``).
    factors: dict[int, float] = field(default_factory=dict, compare=False)

    def factor(self, step_start: float) -> float:
        history = self.history
        if not history.day_counts:
            return 1.0
        of_day, of_week = _season_slots(step_start)
        known = self.factors.get(of_week)
        if known is not None:
            return known
        scale, prior = self.scale, self.prior
        daily = (history.day_counts[of_day] * scale + prior) / (history.day_expected[of_day] * scale + prior)
        value = (history.week_counts[of_week] * scale + prior * daily) / (history.week_expected[of_week] * scale + prior)
        self.factors[of_week] = value
        return value

    def expected(self, start: float, steps: int) -> float:
        return self.level * sum(self.factor(start + k * self.step) for k in range(steps))


class SpikeDetector:
    """Applies the model above to :class:`TopicHistory` rows; holds settings only, never state."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self._step_decay = math.exp(-config.window_step / config.decay_time)
        self._range_decay = math.exp(-config.window_step * math.log(2) / config.range_half_life)
        self._ceiling_decay = math.exp(-config.window_step * math.log(2) / config.ceiling_half_life)
        self._spread_decay = math.exp(-config.window_step / config.season_memory)

    def step_of(self, timestamp: float) -> float:
        step = self.config.window_step
        return (timestamp // step) * step

    def baseline(self, history: TopicHistory, zipf: float, factors: dict[int, float] | None = None) -> Baseline:
        config = self.config
        prior_steps = config.prior_strength / config.window_step
        prior_mass = config.prior_rate(zipf) * config.window_step * prior_steps
        level = (history.mass + prior_mass) / (history.exposure + prior_steps)
        anchor = history.season_anchor
        scale = math.exp(-((history.newest or 0.0) - anchor) / config.season_memory) if anchor is not None else 1.0
        return Baseline(level, history, scale, config.season_prior, config.window_step, {} if factors is None else factors)

    def inverse_shape(self, history: TopicHistory) -> float:
        """1/k of the negative binomial that this topic's window counts follow."""
        config = self.config
        weight = config.dispersion_prior_windows
        return max((weight / config.dispersion + history.spread) / (weight + history.spread_weight), 1e-4)

    def window(self, history: TopicHistory, start: float, baseline: Baseline) -> WindowView:
        config = self.config
        steps = config.steps_per_window
        count = sum(history.count_at(start + k * config.window_step) for k in range(steps))
        return WindowView(start, start + config.window_size - 0.1, count, baseline.expected(start, steps))

    def windows_containing(self, history: TopicHistory, timestamp: float, zipf: float) -> list[WindowView]:
        """Every window that contains ``timestamp``, oldest first."""
        config, baseline = self.config, self.baseline(history, zipf)
        size = config.steps_per_window
        starts, counts = self._steps_around(history, self.step_of(timestamp))
        expected = [baseline.level * baseline.factor(start) for start in starts]
        return [
            WindowView(starts[k], starts[k] + config.window_size - 0.1, sum(counts[k : k + size]), sum(expected[k : k + size]))
            for k in range(size)
        ]

    def _steps_around(self, history: TopicHistory, last: float) -> tuple[list[float], list[int]]:
        """The starts and counts of the steps of every window that contains the step ``last``, oldest first."""
        step, size = self.config.window_step, self.config.steps_per_window
        starts = [last + (k - size + 1) * step for k in range(2 * size - 1)]
        return starts, [history.count_at(start) for start in starts]

    def _busiest_containing(self, history: TopicHistory, last: float, baseline: Baseline) -> WindowView:
        """The window of most mentions that contains the step ``last``, the earliest of those tied.

        What ``max`` over :meth:`windows_containing` gives, for the one window judged at every mention.
        """
        config = self.config
        size = config.steps_per_window
        starts, counts = self._steps_around(history, last)
        best = running = sum(counts[:size])
        best_k = 0
        for k in range(1, size):
            running += counts[k + size - 1] - counts[k - 1]
            if running > best:
                best, best_k = running, k
        expected = sum(baseline.level * baseline.factor(start) for start in starts[best_k : best_k + size])
        return WindowView(starts[best_k], starts[best_k] + config.window_size - 0.1, best, expected)

    def recent_steps(
        self, history: TopicHistory, last: float, zipf: float, *, since: float
    ) -> tuple[float, list[int], list[float]]:
        """The topic's count and expected count per step, up to the step of ``last``, as far back as it keeps.

        Returns (start of the first step, counts, expected counts); steps
        before ``since`` (when the stream was first observed) are left out.
        The expectations are today's baseline at each step's hour.
        """
        config = self.config
        end = self.step_of(last)
        first = max(end - config.window_retention + config.window_step, self.step_of(since))
        starts = [first + k * config.window_step for k in range(int((end - first) // config.window_step) + 1)]
        baseline = self.baseline(history, zipf)
        return first, [history.count_at(start) for start in starts], [baseline.level * baseline.factor(start) for start in starts]

    # -- learning --------------------------------------------------------------------------------

    def add(
        self,
        history: TopicHistory,
        timestamp: float,
        count: int,
        ids: list[list[str]],
        *,
        observed_since: float,
        zipf: float,
    ) -> list["ClosedWindow"]:
        """Count ``count`` mentions at ``timestamp`` (``ids``: their ``[brief id, story id]``, if known).

        Returns the windows that this moved out of the open ones, as :meth:`advance` does.
        """
        config = self.config
        step = self.step_of(timestamp)
        if history.folded is None:
            # A topic named for the first time has been silent since the stream was first observed. That
            # silence lowers its level, and teaches its season, spread and range nothing: it is folded in
            # one go, however busy the cold-start prior would have it.
            history.folded = history.newest = self.step_of(observed_since) - config.window_step
            silent_steps = int((step - config.window_size - history.folded) // config.window_step)
            if silent_steps > 0:
                self._fold_silence(history, silent_steps)
        closed = self.advance(history, step, zipf)
        if count > 0:
            entry = history.steps.setdefault(step, [0, []])
            entry[0] += count
            room = config.ids_per_step - len(entry[1])
            if room > 0:
                entry[1].extend(list(pair) for pair in ids[:room])
        return closed

    def advance(self, history: TopicHistory, step: float, zipf: float) -> list["ClosedWindow"]:
        """Move the topic's clock to ``step``: fold the steps that left every open window, forget old ones.

        Returns each window that closed, as it was judged against the baseline
        and the range from before it (none for a quiet topic's silence).
        """
        config = self.config
        closed: list[ClosedWindow] = []
        if history.newest is None or step <= history.newest:
            return closed
        history.newest = step
        last_to_fold = step - config.steps_per_window * config.window_step
        last_counted = max(history.steps, default=None)  # folding leaves the steps as they are
        # The seasonal factors change only in the slot a fold learns; between, every fold of this
        # advance reads them from one cache (the season's scale depends on ``newest``, fixed here).
        factors: dict[int, float] = {}
        while history.folded < last_to_fold:
            if last_counted is None or last_counted <= history.folded:
                baseline = self.baseline(history, zipf, factors)
                if baseline.expected(history.folded, config.steps_per_window) < 1.0:
                    # A quiet topic with nothing left to count: fold its silence in one go.
                    self._fold_silence(history, int((last_to_fold - history.folded) // config.window_step))
                    break
            closed.append(self._fold(history, history.folded + config.window_step, zipf, factors))
        horizon = step - config.window_retention
        listed_from = step - 2 * config.window_size
        for start in [s for s in history.steps if s < horizon]:
            del history.steps[start]
        for start, entry in history.steps.items():
            if start < listed_from and entry[1]:
                entry[1] = []
        return closed

    def _fold_silence(self, history: TopicHistory, steps: int) -> None:
        decay = self._step_decay**steps
        history.mass *= decay
        history.exposure = history.exposure * decay + (1.0 - decay) / (1.0 - self._step_decay)
        history.trough *= self._range_decay**steps
        history.ceiling *= self._ceiling_decay**steps
        history.folded += steps * self.config.window_step

    def _fold(self, history: TopicHistory, start: float, zipf: float, factors: dict[int, float]) -> "ClosedWindow":
        config = self.config
        baseline = self.baseline(history, zipf, factors)
        window = self.window(history, start, baseline)
        inverse_shape = self.inverse_shape(history)
        # Clip and learn only once the baseline has seen half its memory: before that, the level is still catching up.
        settled = history.exposure * config.window_step >= 0.5 * config.decay_time
        if window.expected >= 1.0 and settled:
            deviation = _deviation(window.expected, inverse_shape)
            excess = min(abs(window.count - window.expected), config.clip_deviations * deviation)
            estimate = max((excess**2 - window.expected) / window.expected**2, 0.0)
            history.spread = history.spread * self._spread_decay + estimate
            history.spread_weight = history.spread_weight * self._spread_decay + 1.0
        closed = ClosedWindow(window, history.trough * self._range_decay, history.spread_weight, inverse_shape)
        history.trough *= self._range_decay
        history.ceiling = max(history.ceiling * self._ceiling_decay, float(window.count))
        if settled:
            # A baseline still catching up strays far from what it sees; that is no range to beat later.
            history.trough = min(history.trough, window.log_ratio)
        season = baseline.factor(start)
        expected = baseline.level * season
        count = float(history.count_at(start))
        if settled:
            # One mention more than expected always counts in full: a quiet topic's every mention is above its mean.
            bound = expected + 1.0 + config.clip_deviations * _deviation(expected, inverse_shape)
            count = min(count, bound)
        history.mass = history.mass * self._step_decay + count
        history.exposure = history.exposure * self._step_decay + season
        if settled and baseline.level >= 0.01:
            # The factors learn from a level that is known: at a cold start it is still the prior's.
            self._learn_season(history, start, count, baseline.level, factors)
        history.folded = start
        return closed

    def _learn_season(
        self, history: TopicHistory, start: float, count: float, level: float, factors: dict[int, float]
    ) -> None:
        if not history.day_counts:
            factors.clear()
            history.season_anchor = start
            history.day_counts, history.day_expected = [0.0] * _SLOTS_PER_DAY, [0.0] * _SLOTS_PER_DAY
            history.week_counts, history.week_expected = [0.0] * _SLOTS_PER_WEEK, [0.0] * _SLOTS_PER_WEEK
        growth = math.exp((start - history.season_anchor) / self.config.season_memory)
        if growth > 1e6:
            # Rebase before the undecayed sums grow out of range.
            for values in (history.day_counts, history.day_expected, history.week_counts, history.week_expected):
                values[:] = [value / growth for value in values]
            history.season_anchor, growth = start, 1.0
            factors.clear()
        of_day, of_week = _season_slots(start)
        for same_day_slot in range(of_day, _SLOTS_PER_WEEK, _SLOTS_PER_DAY):
            factors.pop(same_day_slot, None)
        history.day_counts[of_day] += count * growth
        history.day_expected[of_day] += level * growth
        history.week_counts[of_week] += count * growth
        history.week_expected[of_week] += level * growth

    # -- the verdict -------------------------------------------------------------------------------

    def evaluate(
        self,
        topic: str,
        history: TopicHistory,
        timestamp: float,
        observed_since: float,
        zipf: float,
        closed: list["ClosedWindow"] = (),
        noise_level: float = 0.0,
    ) -> "Evaluation":
        """The verdict on the busiest window that contains ``timestamp`` (earliest on ties), or on a drop.

        ``closed``: the windows that the mention at ``timestamp`` closed (from
        :meth:`add`); a drop is judged on the newest of them. ``noise_level``
        (editors' verdicts, :mod:`wirewatch.core.feedback`) raises a rise's
        bar: ``noise_margin_step`` more margin over the ceiling and one more
        unit of −log₁₀ p per unit of level.
        """
        config = self.config
        baseline = self.baseline(history, zipf)
        now = self.step_of(timestamp)
        busiest = self._busiest_containing(history, now, baseline)
        shape = 1.0 / self.inverse_shape(history)
        rise = self._rise(topic, history, busiest, observed_since, shape, noise_level)
        if rise is None and history.held is not None:
            rise = self._held_rise(topic, history, now, baseline, shape)
        if rise is not None:
            return rise
        if closed:
            last = closed[-1]
            window = last.window
            if (
                max(window.start - observed_since, 0.0) >= config.warmup
                and window.expected >= config.drop_min_expected
                # Not one mention in the window's last step, where dozens were due, is a feed that stopped: the
                # operator is paged for that (WirewatchNoInput), the desk is not.
                and history.count_at(self.step_of(window.end)) > 0
                and window.count * config.min_ratio <= window.expected
                and window.log_ratio < last.trough
                and last.spread_weight >= config.dispersion_prior_windows
            ):
                drop_shape = 1.0 / last.inverse_shape
                score = _score(negative_binomial_head(window.count, window.expected, drop_shape))
                if score >= config.sensitivity:
                    return Evaluation(topic, window, score, DROP, self._reason(window, score, DROP), drop_shape)
        return Evaluation(topic, busiest, 0.0, None, "", shape)

    def _rise(
        self, topic: str, history: TopicHistory, busiest: WindowView, observed_since: float, shape: float,
        noise_level: float,
    ) -> Evaluation | None:
        """A rise of ``busiest`` to alert now; None if there is none, or if it must hold first (``history.held``)."""
        config = self.config
        busy = busiest.expected >= config.ceiling_min_expected
        warmup = max(config.warmup, config.ceiling_warmup) if busy else config.warmup
        warm = max(busiest.start - observed_since, 0.0) >= warmup
        if not (warm and busiest.count >= config.min_count and busiest.count >= config.min_ratio * busiest.expected):
            return None
        # Judged against windows that have closed, those of this very burst among them: a burst that builds
        # up over half an hour clears its own last windows by less than the margin, and stays quiet. Measured
        # on real series, that silence is right far more often than not (see docs/stories-and-alerts.md).
        margin = config.ceiling_margin + config.noise_margin_step * noise_level
        if busiest.count <= history.ceiling * (1.0 + margin):
            return None
        score = surprise(busiest.count, busiest.expected, shape)
        if score < config.sensitivity + noise_level and busiest.expected < config.ceiling_min_expected:
            return None
        if config.hold and busy and busiest.count < config.hold_bypass * history.ceiling:
            # A busy topic's modest rise must last: it alerts once the mentions after it beat the bar it cleared as
            # well (``_held_rise``). Bursts that fade within the half hour are most of a busy topic's false alerts.
            if history.held is None:
                history.held = [busiest.start + config.window_size - config.window_step, history.ceiling]
            return None
        history.held = None
        reason = self._reason(busiest, score, RISE, history.ceiling)
        if noise_level >= 0.5:
            reason += f"; bar raised: editors called it noise lately ({noise_level:.1f})"
        return Evaluation(topic, busiest, score, RISE, reason, shape)

    def _held_rise(
        self, topic: str, history: TopicHistory, now: float, baseline: Baseline, shape: float
    ) -> Evaluation | None:
        """The held rise, once the mentions since it beat the ceiling it cleared; forgotten ``hold`` after it.

        Counts only grow, so the first step at which the mentions after the
        rise beat that ceiling gives the verdict the step ``hold`` later
        would give, sooner.
        """
        config = self.config
        rose_at, bar = history.held
        if now > rose_at + config.hold:
            history.held = None
            return None
        steps = round((now - rose_at) / config.window_step)
        since = sum(history.count_at(rose_at + k * config.window_step) for k in range(1, steps + 1))
        if since <= bar:
            return None
        history.held = None
        latest = self.window(history, now - config.window_size + config.window_step, baseline)
        score = surprise(latest.count, latest.expected, shape)
        held = f"; it held: {since} more in the {round(steps * config.window_step / 60)} min after it rose"
        return Evaluation(topic, latest, score, RISE, self._reason(latest, score, RISE, bar) + held, shape)

    def rescored(self, evaluation: "Evaluation") -> "Evaluation":
        """``evaluation`` with its score and reason worked out, for an alert it revises."""
        score = surprise(evaluation.count, evaluation.baseline, evaluation.shape)
        return replace(evaluation, score=score, reason=self._reason(evaluation.window, score, RISE))

    def _reason(self, window: WindowView, score: float, direction: str, ceiling: float | None = None) -> str:
        minutes = round(self.config.window_size / 60)
        chance = f"a 1-in-10^{score:.0f} window" if score < 300 else "a window beyond any chance"
        if direction == RISE:
            ratio = window.count / window.expected if window.expected > 0 else float("inf")
            times = f"{ratio:.1f}×" if ratio < 1000 else "over 1000×"
            if ceiling is None:  # a revision: the bar it cleared is the alert's first reason's
                lately = ""
            else:
                lately = f"; its busiest {minutes} min lately had {ceiling:.0f}" if ceiling >= 0.5 else "; quiet lately"
            return (
                f"{window.count} in {minutes} min against {expected_text(window.expected)} expected at this hour ({times}); "
                f"{chance}{lately}"
            )
        return (
            f"only {window.count} in {minutes} min against {expected_text(window.expected)} expected at this hour; "
            f"{chance}, below this topic's recent range"
        )


@dataclass(frozen=True)
class ClosedWindow:
    """A window as it left the open ones: with the range and the spread it was judged by."""

    window: WindowView
    trough: float
    spread_weight: float
    inverse_shape: float


@dataclass(frozen=True)
class Evaluation:
    """The detector's verdict on one window of one topic: ``direction`` is "rise", "drop" or None.

    ``score`` and ``reason`` are worked out only for a verdict that fires
    (see :meth:`SpikeDetector.rescored`).
    """

    topic: str
    window: WindowView
    score: float
    direction: str | None
    reason: str
    shape: float

    @property
    def window_start(self) -> float:
        return self.window.start

    @property
    def window_end(self) -> float:
        return self.window.end

    @property
    def count(self) -> int:
        return self.window.count

    @property
    def baseline(self) -> float:
        return self.window.expected
