"""The second line of defence against a disturbed row: a latency far outside what the model's counts imply.

The disturbance detector (:mod:`cnnbench.measure.disturbance`) sees another process take the CPUs. What it cannot
see (a VM whose host is busy without stealing, a thermal throttle, a page-cache storm) may still leave a row far
slower than its model can be. A row is implausible when its median exceeds :data:`RECHECK_FACTOR` times what is
expected of it:

- the cost model's prediction, where the report has one for the target (eager fp32: a few per cent off as a rule);
- otherwise what the table's other rows imply: a least-squares fit of log latency on log FLOPs and log MAC bytes
  over the other undisturbed rows (leave-one-out; :data:`MIN_SIBLINGS` at least). On the committed tables of a
  2-core Xeon no row exceeded 1.8× this fit on eager, and 2.4× at most on the runtimes (ShuffleNetV1 ×0.25, whose
  group convolutions are slow for their counts).

The report measures such a row once more and records what it did in the row's ``rechecked`` column; a row already
rechecked is not rechecked again (a model slow for its counts stays slow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnnbench.fronts import disturbed

__all__ = ["RECHECK_FACTOR", "MIN_SIBLINGS", "Implausible", "implausible", "recheck_note"]

RECHECK_FACTOR = 2.0
MIN_SIBLINGS = 8


@dataclass(frozen=True)
class Implausible:
    model: str
    measured_ms: float
    expected_ms: float
    source: str  # "the cost model" or "the table's counts fit"

    @property
    def factor(self) -> float:
        return self.measured_ms / self.expected_ms


def _counts_fit(frame: pd.DataFrame) -> pd.Series:
    """Each row's latency as the other rows' log-log fit on FLOPs and MAC bytes predicts it (NaN when too few)."""
    y = np.log(pd.to_numeric(frame["latency_ms_median"]).to_numpy(float))
    flops = pd.to_numeric(frame["flops"], errors="coerce").to_numpy(float)
    mac = pd.to_numeric(frame["mac_bytes"], errors="coerce").to_numpy(float)
    design = np.column_stack([np.ones(len(frame)), np.log(flops), np.log(mac)])
    usable = np.isfinite(y) & np.isfinite(design).all(axis=1)
    expected = np.full(len(frame), np.nan)
    for i in np.flatnonzero(usable):
        others = usable.copy()
        others[i] = False
        if others.sum() < MIN_SIBLINGS:
            continue
        coef, *_ = np.linalg.lstsq(design[others], y[others], rcond=None)
        expected[i] = float(np.exp(design[i] @ coef))
    return pd.Series(expected, index=frame.index)


def implausible(frame: pd.DataFrame, predicted: pd.Series | None = None) -> list[Implausible]:
    """The rows of one latency table (one target and batch, this machine's) whose median exceeds
    :data:`RECHECK_FACTOR` times what is expected (see the module doc). ``predicted``: the cost model's latency
    per model, where there is one. Failed, disturbed and already rechecked rows are not judged."""
    if frame.empty or "latency_ms_median" not in frame:
        return []
    ok = frame[(frame["status"] == "ok") & ~disturbed(frame)]
    if "rechecked" in ok:
        ok = ok[ok["rechecked"].fillna("").astype(str) == ""]
    siblings = frame[(frame["status"] == "ok") & ~disturbed(frame)]
    by_counts = _counts_fit(siblings) if len(siblings) > MIN_SIBLINGS else pd.Series(np.nan, index=siblings.index)
    found = []
    for index, row in ok.iterrows():
        measured = float(row["latency_ms_median"])
        model = str(row["model"])
        if predicted is not None and model in predicted.index and pd.notna(predicted[model]):
            expected, source = float(predicted[model]), "the cost model"
        else:
            expected, source = float(by_counts.get(index, np.nan)), "the table's counts fit"
        if np.isfinite(expected) and expected > 0 and measured > RECHECK_FACTOR * expected:
            found.append(Implausible(model, measured, expected, source))
    return found


def recheck_note(first: Implausible, again_ms: float) -> str:
    """What the ``rechecked`` column says: ``1275 ms was 2.4× the cost model's 530 ms; measured again: 11.2 ms``."""
    return (
        f"{first.measured_ms:.4g} ms was {first.factor:.1f}× {first.source}'s {first.expected_ms:.4g} ms; "
        f"measured again: {again_ms:.4g} ms"
    )
