"""Does each of ShuffleNetV2's guidelines hold on this target? The orderings the paper's Tables 1–4 claim, judged
at each scale by the 95% intervals of the measured speed ratios (rows of
:func:`cnnbench.guidelines.microbench.results_frame`), per multiply-add, with a tie margin for "no faster than"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.guidelines.microbench import G1_ROWS, G2_ROWS, G3_ROWS, PaperRow, pair_ratio
from cnnbench.provenance import is_disturbed
from cnnbench.stats import ABOVE, ACROSS, BELOW, side

__all__ = ["TIE", "Comparison", "CLAIMS", "Verdict", "verdict"]


# Speeds per multiply-add within 5% are a tie for a "no faster than" claim: about the spread of one latency row on a
# shared CPU (the median CV of the zoo's rows here is 4–7%). Without it, a pair the paper itself has within a few per
# cent (G1's 1:1 and 1:2) flips between "holds" and "fails" from one run to the next.
TIE = 0.05


@dataclass(frozen=True)
class Comparison:
    """One ordering the paper claims: ``slower`` runs no faster than ``faster`` (``strict``: runs slower)."""

    slower: str
    faster: str
    strict: bool = False

    def outcome(self, low: float, high: float) -> str:
        """By the interval of speed(slower) / speed(faster), per multiply-add: ``holds``, ``fails`` or ``undecided``.

        "No faster than" holds when the interval lies at or below 1 + :data:`TIE` and fails when it lies above; a
        claimed speed-up (``strict``) holds when the interval lies below 1 and fails when it lies at or above 1
        (equal speeds are no speed-up). See :func:`cnnbench.stats.side`."""
        where = side(low, high, 1.0, ties=ABOVE) if self.strict else side(low, high, 1.0 + TIE, ties=BELOW)
        return {BELOW: "holds", ABOVE: "fails", ACROSS: "undecided"}[where]


def _falling(labels: Sequence[str]) -> list[Comparison]:
    """The first is the fastest, and each is no faster than the one before."""
    return [Comparison(lab, labels[0]) for lab in labels[1:]] + [
        Comparison(later, earlier) for earlier, later in zip(labels[1:], labels[2:], strict=False)
    ]


def _labels(rows: tuple[PaperRow, ...]) -> list[str]:
    return [r.label for r in rows]


_G3_LABELS = _labels(G3_ROWS)
CLAIMS: dict[str, tuple[str, list[Comparison], str]] = {
    "G1": ("1:1 fastest, speed falling as c1:c2 grows", _falling(_labels(G1_ROWS)), "1:12"),
    "G2": ("g=1 fastest, speed falling as g grows", _falling(_labels(G2_ROWS)), "g=8"),
    "G3": (
        "1-fragment fastest, parallel no faster than series",
        [Comparison(lab, _G3_LABELS[0]) for lab in _G3_LABELS[1:]]
        + [Comparison(f"{k}-fragment-parallel", f"{k}-fragment-series") for k in (2, 4)],
        "4-fragment-parallel",
    ),
    "G4": (
        "removing ReLU and shortcut speeds the unit up",
        [
            Comparison("ReLU+shortcut", "ReLU only"),
            Comparison("ReLU+shortcut", "shortcut only"),
            Comparison("ReLU+shortcut", "neither", strict=True),
        ],
        "neither",
    ),
}  # guideline → (claim, the orderings it makes, the config whose ratio to the baseline is quoted)


@dataclass(frozen=True)
class Verdict:
    guideline: str
    claim: str  # what the paper's ordering says, in our words
    outcomes: tuple[str, ...]  # per scale, in SCALES order: holds | fails | undecided | disturbed (not judged)
    detail: str  # the quoted ratio with its interval, here and in the paper

    @property
    def holds(self) -> int:
        return self.outcomes.count("holds")

    @property
    def scales(self) -> int:
        return len(self.outcomes)

    @property
    def judged(self) -> int:
        """Scales judged: those whose table was not disturbed."""
        return self.scales - self.outcomes.count("disturbed")

    @property
    def word(self) -> str:
        counts = {o: self.outcomes.count(o) for o in ("holds", "fails", "undecided")}
        if not self.judged:
            return "not judged (every table disturbed)"
        if counts["holds"] == self.judged:
            return "holds"
        if counts["fails"] == self.judged:
            return "does not hold"
        if counts["undecided"] == self.judged:
            return "undecided"
        return "partly holds" if counts["holds"] else "mixed"

    @property
    def summary(self) -> str:
        parts = [
            f"{o} at {self.outcomes.count(o)}/{self.scales}"
            for o in ("holds", "fails", "undecided", "disturbed")
            if o in self.outcomes
        ]
        return f"{self.guideline} {self.word} ({', '.join(parts)} scales): {self.claim}. {self.detail}"


def _ratio_text(point: float, low: float, high: float) -> str:
    return f"{point:.2f}" if low == high else f"{point:.2f} [{low:.2f}, {high:.2f}]"


def _per_flop(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """The interval of row ``a``'s speed per multiply-add relative to row ``b``'s."""
    _, low, high = pair_ratio(a, b)
    flops = float(a["flops"]) / float(b["flops"])
    return low * flops, high * flops


def verdict(frame: pd.DataFrame, guideline: str) -> Verdict:
    """Does the paper's ordering hold in ``frame`` (rows of :func:`results_frame`) for a guideline, and by how much.

    At each scale every ordering the claim makes (:data:`CLAIMS`) is judged by the 95% interval of its speed ratio
    times the ratio of the two rows' FLOPs (speed per multiply-add; the paper's channel numbers leave up to 5.5%
    between rows): see :meth:`Comparison.outcome`. A scale holds when every ordering holds, fails when any fails,
    and is undecided otherwise. A scale whose table was ``disturbed`` (another process held the CPUs while it was
    timed) is not judged: its outcome is ``disturbed``. The quoted detail gives plain speed ratios.
    """
    claim, comparisons, quoted = CLAIMS[guideline]
    rows = frame[frame["guideline"] == guideline]
    if rows.empty:
        raise CnnbenchError(f"no results for {guideline}")
    outcomes, ours, theirs = [], [], []
    for _, at_scale in rows.groupby("scale", sort=True):
        by_config = {str(r["config"]): r for _, r in at_scale.iterrows()}
        if any(is_disturbed(r) for r in by_config.values()):
            outcomes.append("disturbed")
        else:
            results = [c.outcome(*_per_flop(by_config[c.slower], by_config[c.faster])) for c in comparisons]
            outcomes.append("fails" if "fails" in results else "undecided" if "undecided" in results else "holds")
        row = by_config[quoted]  # its ratio to the table's first row is in the frame already
        ours.append(_ratio_text(row["speed_vs_base"], row["speed_vs_base_low"], row["speed_vs_base_high"]))
        theirs.append(f"{row['paper_vs_base']:.2f}")
    base = rows["config"].iloc[0]
    detail = f"{quoted} vs {base}: {' / '.join(ours)}× here, {' / '.join(theirs)}× in the paper"
    return Verdict(guideline, claim, tuple(outcomes), detail)
