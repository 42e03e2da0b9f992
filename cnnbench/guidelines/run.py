"""A run of ShuffleNetV2's G1–G4 microbenchmarks on a target: which tables, how each is timed (:class:`GuidelineRun`),
and :func:`run_guidelines`, which times them (:mod:`.microbench`) and judges each guideline (:mod:`.verdicts`).

``cnnbench guidelines`` is this function with its output printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.guidelines.microbench import (
    GUIDELINES,
    QUICK_ROUNDS,
    ROUNDS,
    SCALES,
    cases,
    default_batch,
    paper_column,
    results_frame,
    run_table,
)
from cnnbench.guidelines.verdicts import verdict
from cnnbench.measure.latency import QUICK_TIMING, Timing
from cnnbench.target import Target, resolve_target

__all__ = ["GuidelineRun", "run_guidelines"]

Tables = Sequence[tuple[str, int]]
Progress = Callable[[Tables, str], Iterable[tuple[str, int]]]


@dataclass(frozen=True)
class GuidelineRun:
    """Which tables a run measures (guidelines × scales), and how: the batch, the timing of each configuration and
    the interleaved rounds per table. :meth:`chosen` holds the rules of a quick run."""

    guidelines: tuple[str, ...] = tuple(GUIDELINES)
    scales: tuple[int, ...] = SCALES
    batch: int | None = None  # None: default_batch(target), 1 on the CPU and 8 on a GPU
    timing: Timing = Timing()
    rounds: int = ROUNDS

    @classmethod
    def chosen(
        cls,
        *,
        quick: bool = False,
        guidelines: Sequence[str] | None = None,
        batch: int | None = None,
        timing: Timing | None = None,
        rounds: int | None = None,
    ) -> GuidelineRun:
        """A full run, or with ``quick`` the ×1 scale only, :data:`~.microbench.QUICK_ROUNDS` rounds and quick
        timing (tests, CI, a first look); ``guidelines``, ``batch``, ``timing`` and ``rounds``, where given, win."""
        run = cls(scales=(1,), timing=QUICK_TIMING, rounds=QUICK_ROUNDS) if quick else cls()
        return replace(
            run,
            guidelines=tuple(guidelines or run.guidelines),
            batch=batch,
            timing=timing or run.timing,
            rounds=rounds or run.rounds,
        )

    @property
    def tables(self) -> list[tuple[str, int]]:
        """(guideline, scale) of every table, in the order they are timed."""
        return [(g, s) for g in self.guidelines for s in self.scales]

    def batch_on(self, target: Target) -> int:
        return default_batch(target) if self.batch is None else self.batch

    def check(self, target: Target) -> None:
        """One line for an unknown guideline or scale, or a batch or rounds below 1: before any timing."""
        cases(self.guidelines, paper_column(target), self.scales)
        for name, value in (("batch", self.batch_on(target)), ("rounds", self.rounds)):
            if value < 1:
                raise CnnbenchError(f"{name} must be at least 1, got {value}")

    def settings(self, target: Target) -> dict[str, object]:
        """What a table's rows were measured with, beside the target and the code: timing, batch and rounds."""
        return {"timing": asdict(self.timing), "batch": self.batch_on(target), "rounds": self.rounds}


def run_guidelines(
    target: Target | None = None, run: GuidelineRun | None = None, progress: Progress | None = None
) -> pd.DataFrame:
    """Run the tables of ``run`` (default: all four guidelines at every scale) on ``target``: every configuration
    counted and timed in interleaved rounds, one table (guideline and scale) at a time, with its speed ratio to the
    table's first row and that ratio's interval (:func:`~.microbench.results_frame`), and each row's ``verdict``:
    its guideline's :attr:`~.verdicts.Verdict.summary`. ``progress(tables, "guidelines")``, if given, wraps the
    tables as they run."""
    target, _ = resolve_target(target or Target())
    run = run or GuidelineRun()
    run.check(target)
    tables = progress(run.tables, "guidelines") if progress is not None else run.tables
    batch = run.batch_on(target)
    rows = [row for g, s in tables for row in run_table(g, s, target, batch, run.timing, run.rounds)]
    frame = results_frame(rows, target)
    summaries = {g: verdict(frame, g).summary for g in frame["guideline"].unique()}
    frame["verdict"] = frame["guideline"].map(summaries)
    return frame
