"""cnnbench.stats: the bootstrap intervals against a direct numpy computation of the same percentile bootstrap (same
seed, same draws), and the rules that judge an interval against a level on hand-made intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnbench.errors import CnnbenchError
from cnnbench.stats import (
    ABOVE,
    ACROSS,
    BELOW,
    CONFIDENCE,
    RESAMPLES,
    SEED,
    Interval,
    change,
    paired_ratio_interval,
    ratio_interval,
    runs_ratio_interval,
    side,
)

TAILS = [(1 - CONFIDENCE) / 2 * 100, (1 + CONFIDENCE) / 2 * 100]  # 2.5 and 97.5 percent


def _resampled_medians(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RESAMPLES medians of ``values`` drawn with replacement, one row of indices per resample."""
    return np.median(values[rng.integers(0, len(values), (RESAMPLES, len(values)))], axis=-1)


def test_paired_interval_is_a_percentile_bootstrap_of_the_per_pair_ratios() -> None:
    base = [10.0, 10.2, 9.9, 10.1, 10.0, 10.3, 9.8]
    other = [9.0, 9.3, 8.8, 9.1, 9.2, 9.0, 9.1]
    ratios = np.array(other) / np.array(base)
    low, high = np.percentile(_resampled_medians(ratios, np.random.default_rng(SEED)), TAILS)
    found = paired_ratio_interval(base, other)
    assert found.point == pytest.approx(np.median(ratios))  # 9.1 / 10.1: the median of the seven ratios
    assert (found.low, found.high) == (pytest.approx(low), pytest.approx(high))
    assert found.low <= found.point <= found.high < 1
    assert paired_ratio_interval(base, other) == found  # seeded: the same pairs, the same interval


def test_pairing_matters() -> None:
    """A drift that slows both sides of each round alike leaves the per-round ratio constant: the paired interval
    is the point itself, where an unpaired one over the same times is wide."""
    drift = np.array([1.0, 1.5, 2.0, 2.5, 3.0])
    base, other = 10 * drift, 12 * drift
    assert paired_ratio_interval(base, other) == (pytest.approx(1.2),) * 3
    unpaired = ratio_interval(base, other)
    assert unpaired.high - unpaired.low > 0.5


@pytest.mark.parametrize(("base", "other"), [([4.0], [2.0]), ([2.0] * 5, [1.0] * 5), ([1.0, 2.0], [2.0, 4.0])])
def test_a_paired_interval_with_nothing_to_resample_is_the_point(base: list[float], other: list[float]) -> None:
    point = other[0] / base[0]
    assert paired_ratio_interval(base, other) == Interval(point, point, point)


def test_unpaired_interval_resamples_each_side_on_its_own() -> None:
    base = np.array([10.0, 10.0, 10.0, 11.0, 10.5])
    other = np.array([12.0, 11.5, 12.5, 12.0])
    rng = np.random.default_rng(SEED)
    other_medians = _resampled_medians(other, rng)  # the numerator's sample is drawn first
    base_medians = _resampled_medians(base, rng)
    low, high = np.percentile(other_medians / base_medians, TAILS)
    found = ratio_interval(base, other)
    assert found.point == 12.0 / 10.0
    assert (found.low, found.high) == (pytest.approx(low), pytest.approx(high))
    assert ratio_interval([10.0] * 5, [12.0] * 5) == (1.2, 1.2, 1.2)  # constant samples: every resample is 1.2


def test_two_level_interval_by_hand() -> None:
    # base runs at 10 and 11 ms: a resample draws both runs at 10 (median 10), both at 11 (11) or one of each
    # (10.5), each of the first two with probability 1/4, far more than the 2.5% tails; the other runs are at 12
    point, low, high = runs_ratio_interval([[10.0] * 4, [11.0] * 4], [[12.0] * 4, [12.0] * 4])
    assert point == pytest.approx(12 / 10.5)
    assert (low, high) == (pytest.approx(12 / 11), pytest.approx(12 / 10))
    with pytest.raises(CnnbenchError, match="every run needs at least one sample"):
        runs_ratio_interval([[10.0], []], [[12.0]])


@pytest.mark.parametrize(
    ("low", "high", "level", "ties", "expected"),
    [
        (1.1, 1.2, 1.0, None, ABOVE),
        (0.8, 0.9, 1.0, None, BELOW),
        (0.9, 1.1, 1.0, None, ACROSS),
        (1.0, 1.0, 1.0, None, ACROSS),  # an end at the level: on neither side
        (1.0, 1.2, 1.0, None, ACROSS),
        (1.0, 1.2, 1.0, ABOVE, ABOVE),  # ... or on the side ties names
        (1.0, 1.0, 1.0, ABOVE, ABOVE),
        (0.8, 1.0, 1.0, ABOVE, ACROSS),
        (0.8, 1.05, 1.05, BELOW, BELOW),
        (1.0, 1.0, 1.0, BELOW, BELOW),
        (1.05, 1.2, 1.05, BELOW, ACROSS),
        (float("nan"), float("nan"), 1.0, None, ACROSS),  # no interval: nothing is decided
    ],
)
def test_side_of_an_interval(low: float, high: float, level: float, ties: str | None, expected: str) -> None:
    assert side(low, high, level, ties) == expected


def test_side_refuses_an_unknown_tie() -> None:
    with pytest.raises(ValueError, match="ties must be"):
        side(0.9, 1.1, 1.0, ties="across")


@pytest.mark.parametrize(
    ("point", "low", "high", "expected"),
    [
        (1.10, 1.02, 1.20, ABOVE),  # beyond the 5% margin, and the whole interval above 1
        (1.04, 1.02, 1.06, ACROSS),  # surely above 1, but within the margin
        (1.10, 0.99, 1.20, ACROSS),  # beyond the margin, but the noise explains it
        (1 / 1.10, 0.85, 0.98, BELOW),
        (0.96, 0.90, 0.99, ACROSS),  # 1/0.96 = 1.042: within the mirrored margin
        (0.95, 0.90, 0.99, BELOW),  # 1/0.95 = 1.053: beyond it
        (1.0, 1.0, 1.0, ACROSS),
    ],
)
def test_change_needs_the_margin_and_the_interval(point: float, low: float, high: float, expected: str) -> None:
    assert change(point, low, high, margin=0.05) == expected


def test_change_is_mirrored() -> None:
    """A ratio and its inverse get opposite verdicts, at any margin."""
    for point, low, high in [(1.2, 1.1, 1.3), (1.06, 1.01, 1.1), (1.04, 1.01, 1.1), (1.3, 0.9, 1.5)]:
        for margin in (0.0, 0.05, 0.2):
            mirrored = {ABOVE: BELOW, BELOW: ABOVE, ACROSS: ACROSS}[change(point, low, high, margin)]
            assert change(1 / point, 1 / high, 1 / low, margin) == mirrored


@pytest.mark.parametrize("definition", ["CONFIDENCE = ", "from scipy.stats import bootstrap", "def ratio_interval("])
def test_the_statistics_have_one_home(definition: str) -> None:
    """No second confidence level or bootstrap beside cnnbench/stats.py: its callers import them."""
    root = Path(__file__).resolve().parents[1] / "cnnbench"
    homes = [
        path.relative_to(root).as_posix()
        for path in sorted(root.rglob("*.py"))
        if any(line.lstrip().startswith(definition) for line in path.read_text().splitlines())
    ]
    assert homes == ["stats.py"], homes
