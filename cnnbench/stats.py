"""The statistics behind every verdict: bootstrap intervals of a ratio of times, and where such an interval lies
against a level.

Two kinds of data, two resamplings:

- **paired** (:func:`paired_ratio_interval`): the guideline microbenchmarks time their configurations in interleaved
  rounds (A B C D, A B C D, ...), so round *i* of A and round *i* of B ran under the same machine state. The ratio is
  taken per round, and the bootstrap resamples rounds, keeping each pair together;
- **unpaired** (:func:`ratio_interval`, :func:`runs_ratio_interval`): ``cnnbench compare`` has two runs made at
  different times, whose samples have nothing to pair. The bootstrap resamples each side on its own (and, with
  several runs a side, first the runs, then the samples within each run drawn).

Every interval is a percentile bootstrap at :data:`CONFIDENCE`, with :data:`RESAMPLES` resamples drawn from a
generator seeded with :data:`SEED`: the same times always give the same interval.

An interval is judged against a level by :func:`side`: wholly above it, wholly below it, or across it. The
regression gate's rule, which also asks the point to clear a margin, is :func:`change`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import bootstrap

from cnnbench.errors import CnnbenchError

__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "SEED",
    "ABOVE",
    "BELOW",
    "ACROSS",
    "Interval",
    "paired_ratio_interval",
    "ratio_interval",
    "runs_ratio_interval",
    "side",
    "change",
]

CONFIDENCE = 0.95  # of every bootstrap interval: the guidelines' speed ratios and compare's ratios of medians
RESAMPLES = 2000
SEED = 0
RESAMPLED_ELEMENTS = 1_000_000  # per side and bootstrap batch: bounds the memory of runs with thousands of samples

ABOVE, BELOW, ACROSS = "above", "below", "across"


class Interval(NamedTuple):
    """A ratio and the low and high ends of its bootstrap interval (a tuple: ``point, low, high = ...``)."""

    point: float
    low: float
    high: float


def paired_ratio_interval(
    base: ArrayLike, other: ArrayLike, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> Interval:
    """The median of the per-pair ratios ``other[i] / base[i]`` and its ``confidence`` interval, for **paired** data
    (times taken in the same round): a percentile bootstrap of the median that resamples the pairs.

    With one pair, or every ratio the same, no resample can differ: the interval is the point itself.
    """
    ratios = np.asarray(other, dtype=float) / np.asarray(base, dtype=float)
    point = float(np.median(ratios))
    if len(ratios) < 2 or np.ptp(ratios) == 0:
        return Interval(point, point, point)
    result = bootstrap(
        (ratios,),
        np.median,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(point, float(low), float(high))


def ratio_interval(
    base: ArrayLike, other: ArrayLike, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> Interval:
    """``median(other) / median(base)`` and its ``confidence`` interval, for **unpaired** samples (two runs): a
    percentile bootstrap that resamples the two sets independently. Constant samples give the point itself."""
    before, after = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    point = float(np.median(after) / np.median(before))
    result = bootstrap(
        (after, before),
        _median_ratio,
        paired=False,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
        batch=max(1, RESAMPLED_ELEMENTS // max(len(before), len(after))),
    )
    low, high = result.confidence_interval
    return Interval(point, float(low), float(high))


def _median_ratio(other: np.ndarray, base: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(other, axis=axis) / np.median(base, axis=axis)


def runs_ratio_interval(
    base_runs: Sequence[ArrayLike],
    other_runs: Sequence[ArrayLike],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """``median(other) / median(base)`` over the pooled samples of several **unpaired** runs a side, and its
    ``confidence`` interval by a two-level percentile bootstrap: each resample draws as many runs as the side has,
    with replacement, then each drawn run's samples with replacement, and takes the median of what it drew. Runs
    that disagree widen the interval; one run a side gives the within-run interval of :func:`ratio_interval`
    (another resampling of it)."""
    sides = [[np.asarray(r, dtype=float) for r in runs] for runs in (base_runs, other_runs)]
    if any(not runs or any(len(r) == 0 for r in runs) for runs in sides):
        raise CnnbenchError("every run needs at least one sample")
    point = float(np.median(np.concatenate(sides[1])) / np.median(np.concatenate(sides[0])))
    rng = np.random.default_rng(seed)

    def medians(runs: list[np.ndarray]) -> np.ndarray:
        out = np.empty(resamples)
        for b in range(resamples):
            drawn = [runs[i] for i in rng.integers(len(runs), size=len(runs))]
            out[b] = np.median(np.concatenate([r[rng.integers(len(r), size=len(r))] for r in drawn]))
        return out

    ratios = medians(sides[1]) / medians(sides[0])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return Interval(point, float(low), float(high))


def side(low: float, high: float, level: float, ties: str | None = None) -> str:
    """Where the interval [low, high] lies against ``level``: :data:`ABOVE` (wholly above it), :data:`BELOW`
    (wholly below it) or :data:`ACROSS` (it holds the level).

    An end exactly at the level counts on neither side (``ties=None``), or on the side ``ties`` names: with
    ``ties=BELOW`` an interval ending at the level is below it; with ``ties=ABOVE`` one starting at it is above.
    """
    if ties not in (None, ABOVE, BELOW):
        raise ValueError(f"ties must be None, {ABOVE!r} or {BELOW!r}, got {ties!r}")
    if low > level or (ties == ABOVE and low >= level):
        return ABOVE
    if high < level or (ties == BELOW and high <= level):
        return BELOW
    return ACROSS


def change(point: float, low: float, high: float, margin: float) -> str:
    """Has a ratio moved away from 1, by more than ``margin`` and more than the noise explains?

    :data:`ABOVE` when the point exceeds ``1 + margin`` and the whole interval lies above 1; :data:`BELOW` when the
    point lies under ``1 / (1 + margin)`` (the mirror image: a ratio and its inverse get opposite verdicts) and the
    whole interval below 1; :data:`ACROSS` otherwise. ``margin`` is a fraction (0.05: 5%).
    """
    where = side(low, high, 1.0)
    if where == ABOVE and point > 1 + margin:
        return ABOVE
    if where == BELOW and point < 1 / (1 + margin):
        return BELOW
    return ACROSS
