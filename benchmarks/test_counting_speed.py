"""How fast the counting engine is, side by side in one run with fvcore and with the floor of any dispatch-based
counter: building the model on the meta device and running it once with no counting at all.

Each benchmark sweeps the zoo's torchvision twins at their default resolution, model built included (fvcore must
build on the CPU with real weights, since it traces real tensors; the others build on the meta device). The last
test prints the ratios and stores them in its ``extra_info``:

    pytest benchmarks/test_counting_speed.py --benchmark-only -s
"""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from fvcore.nn import FlopCountAnalysis

import zoo
from cnnbench import profile
from cnnbench.catalog import resolve_patterns
from cnnbench.models import build_model

MEDIANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def twins(model_patterns: list[str]) -> list[tuple[str, int]]:
    """(torchvision:NAME, resolution) of every zoo model whose reference is torchvision's."""
    specs = {}
    for name in resolve_patterns(model_patterns):
        reference = zoo.model_info(name).reference or ""
        if reference.startswith("torchvision:"):
            specs[reference] = build_model(reference).resolution
    if not specs:
        pytest.skip("no zoo model with a torchvision twin matches --models")
    return sorted(specs.items())


def _bare(twins: list[tuple[str, int]]) -> None:
    for spec, res in twins:
        model = build_model(spec).model
        with torch.no_grad():
            model(torch.empty(1, 3, res, res, device="meta"))


def _count(twins: list[tuple[str, int]]) -> None:
    for spec, res in twins:
        profile(spec, resolution=res, training_memory=False)


def _profile(twins: list[tuple[str, int]]) -> None:
    for spec, res in twins:
        profile(spec, resolution=res)


def _fvcore(twins: list[tuple[str, int]]) -> None:
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    for spec, res in twins:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(spec, device="cpu").model
            analysis = FlopCountAnalysis(model, torch.zeros(1, 3, res, res))
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.total()


SWEEPS = {
    "bare_meta_pass": (_bare, 3),
    "cnnbench_count": (_count, 3),  # flops, elementwise, MAC, inference memory: one pass
    "cnnbench_profile": (_profile, 3),  # + the training-memory pass
    "fvcore": (_fvcore, 1),  # slowest; one round is enough for a ratio
}


@pytest.mark.benchmark(group="counting-speed")
@pytest.mark.parametrize("sweep", list(SWEEPS))
def test_sweep(benchmark, twins: list[tuple[str, int]], sweep: str) -> None:  # type: ignore[no-untyped-def]
    target, rounds = SWEEPS[sweep]
    torch.set_num_threads(1)
    benchmark.extra_info["models"] = len(twins)
    benchmark.pedantic(target, args=(twins,), rounds=rounds, warmup_rounds=1 if rounds > 1 else 0)
    MEDIANS[sweep] = benchmark.stats.stats.median


@pytest.mark.benchmark(group="counting-speed")
def test_ratios(benchmark) -> None:  # type: ignore[no-untyped-def]
    if len(MEDIANS) < len(SWEEPS):
        pytest.skip("run the whole file: the ratios need every sweep")
    ratios = {
        "count / bare meta pass (goal <= 1.25)": MEDIANS["cnnbench_count"] / MEDIANS["bare_meta_pass"],
        "count / fvcore (goal <= 0.33)": MEDIANS["cnnbench_count"] / MEDIANS["fvcore"],
        "profile / bare meta pass": MEDIANS["cnnbench_profile"] / MEDIANS["bare_meta_pass"],
        "profile / fvcore": MEDIANS["cnnbench_profile"] / MEDIANS["fvcore"],
    }
    benchmark.extra_info.update({k: round(v, 3) for k, v in ratios.items()})
    benchmark.extra_info["medians_s"] = {k: round(v, 3) for k, v in MEDIANS.items()}
    benchmark(lambda: None)
    print()
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
