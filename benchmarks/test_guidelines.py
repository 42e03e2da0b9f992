"""ShuffleNetV2's guideline microbenchmarks (SN2 Tables 1–4) on a target, one pytest-benchmark test per configuration.

    pytest benchmarks/test_guidelines.py --benchmark-only --target cpu --threads 1
    pytest benchmarks/test_guidelines.py --benchmark-only --target cuda -k G3 --benchmark-json g3.json

Tests are grouped per table and scale (``G1-x1``), so pytest-benchmark's comparison within a group is the paper's
ratio to the fastest configuration. A CPU target runs the paper's ARM column's channels at batch 1, a GPU target
the GPU column's at batch 8 (see :mod:`cnnbench.guidelines`). Each test stores its guideline, configuration,
counted FLOPs (multiply-adds) and MAC, the paper's speed and the target's description in ``extra_info``.
"""

from __future__ import annotations

import pytest

from cnnbench.guidelines.microbench import Case, cases, count_case, default_batch, paper_column, prepared_forward
from cnnbench.measure.forward import running
from cnnbench.target import Target, describe

CONFIGS = [(c.guideline, c.row.label, c.scale) for c in cases()]


def _case(guideline: str, label: str, scale: int, target: Target) -> Case:
    return next(c for c in cases([guideline], paper_column(target), [scale]) if c.row.label == label)


@pytest.mark.parametrize(("guideline", "label", "scale"), CONFIGS, ids=[f"{g}-{lab}-x{s}" for g, lab, s in CONFIGS])
def test_guideline(benchmark, target: Target, guideline: str, label: str, scale: int) -> None:  # type: ignore[no-untyped-def]
    case = _case(guideline, label, scale, target)
    batch = default_batch(target)
    flops, mac = count_case(case)
    run = prepared_forward(case, target, batch)
    run.sync = True  # pytest-benchmark reads the host clock: the call must not return before the device is done

    benchmark.group = f"{guideline}-x{scale}"
    benchmark.extra_info.update(
        {
            "guideline": guideline,
            "config": label,
            "scale": scale,
            "channels": case.block.channels(),
            "batch": batch,
            "flops": flops,  # multiply-adds, one 56×56 input
            "mac": mac,  # elements, one input
            "paper_column": case.column,
            "paper_speed": case.paper_speed,  # GPU batches/s or ARM images/s, SN2 Tables 1–4
            **{f"target_{k}": v for k, v in describe(target).items()},
        }
    )
    with running(target):
        for _ in range(3):  # warm-up outside the measurement: allocator, oneDNN/cuDNN caches, torch.compile
            run()
        benchmark.pedantic(run, rounds=20, warmup_rounds=2, iterations=1)
