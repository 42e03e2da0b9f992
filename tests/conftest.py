"""Shared helpers for the tests: building models on the meta device keeps counting fast and allocation-free."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from cnnbench import costmodel
from cnnbench.costmodel import networks
from cnnbench.costmodel.features import KINDS_AS_KEYS
from cnnbench.measure.counting import KINDS
from cnnbench.measure.probe import Probe

# The speed probe every timed row records, in tests: a fixed figure, so that whether a stored row is reused depends on
# what a test changes, not on how fast the machine ran the probe a second ago (tests/test_probe.py times the real one).
STEADY_PROBE_MS = 10.0

# The largest models: building them with real weights takes most of a test run on a 2-core CPU.
# The largest models: the 8 VGGs (over 130 M parameters each), ResNet-101/152 and EfficientNet-B5-B7 (over 7 G
# multiply-adds), the 13 that `--deploy-max-gflops 7` leaves out of a report. Building one with real weights takes
# seconds, exporting it several.
BIG = {
    *(f"vgg{depth}{bn}" for depth in (11, 13, 16, 19) for bn in ("", "_bn")),
    "resnet101",
    "resnet152",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
}


def slow_if_big(names: list[str]) -> list[object]:
    """``names`` as pytest parameters, those in :data:`BIG` marked ``slow`` (``pytest -m 'not slow'`` skips them)."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in names]


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """state_dict keys and shapes, the checkpoint format."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def randomize_bn_stats(model: nn.Module, generator: torch.Generator) -> None:
    """Give BatchNorm non-trivial running statistics, so that an eps or momentum mismatch shows in eval outputs."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0.0, 0.1, generator=generator)
            m.running_var.uniform_(0.5, 1.5, generator=generator)
            m.weight.data.uniform_(0.5, 1.5, generator=generator)
            m.bias.data.normal_(0.0, 0.1, generator=generator)


@pytest.fixture(autouse=True, scope="session")
def cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One cache (ONNX exports, INT8 files, the roofline) for the whole run, never the user's ~/.cache."""
    previous = os.environ.get("CNNBENCH_CACHE")
    os.environ["CNNBENCH_CACHE"] = str(tmp_path_factory.mktemp("cnnbench-cache"))
    yield
    if previous is None:
        os.environ.pop("CNNBENCH_CACHE", None)
    else:
        os.environ["CNNBENCH_CACHE"] = previous


_REAL_PROBE_MS = Probe.ms


@pytest.fixture(autouse=True, scope="session")
def steady_probe() -> Iterator[None]:
    """Every :class:`Probe` answers :data:`STEADY_PROBE_MS` for the whole run (module fixtures that measure
    included), except in tests marked ``real_probe``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Probe, "ms", lambda self: STEADY_PROBE_MS)
        yield


@pytest.fixture(autouse=True)
def real_probe_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_probe") is not None:
        monkeypatch.setattr(Probe, "ms", _REAL_PROBE_MS)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def conv_linear_madds(model: nn.Module, side: int, in_channels: int = 3) -> int:
    """Multiply-adds of every Conv2d and Linear, computed from layer shapes alone (forward hooks on the meta device).

    A conv costs out_elements · (in_channels / groups) · kh · kw; a linear out_elements · in_features. Batch 1.
    This is the hand computation the counting engine is checked against, and the papers' convention.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    model = model.to("meta").eval()
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.empty(1, in_channels, side, side, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


CONV = costmodel.OpCost(overhead_ms=0.02, parallel_ms=0.0, parallel_above=None, compute_gops=50.0, memory_gbs=10.0,
                        misaligned_factor=1.0, ops=1, error=0.0)  # fmt: skip
ELEMENTWISE = costmodel.OpCost(overhead_ms=0.005, parallel_ms=0.0, parallel_above=None, compute_gops=100.0,
                               memory_gbs=20.0, misaligned_factor=1.0, ops=1, error=0.0)  # fmt: skip


@functools.cache
def synthetic_suite() -> tuple[networks.Network, ...]:
    """The default calibration suite (100 networks of seed 0, counted on the meta device), drawn once per session:
    several tests read it, and drawing it takes 15 s."""
    return tuple(networks.network_suite())


def fixed_runtime_model(key: str = "cpu-t1-fp32-nchw-onnxruntime") -> costmodel.RuntimeCostModel:
    """A runtime's cost model with round numbers: BatchNorm after a convolution and activations fold, every other op
    keeps its node, no node of the runtime's own; 5 µs a node, 100 G/s of arithmetic and 20 GB/s for every kind."""
    return costmodel.RuntimeCostModel(target={"key": key, "device": "cpu", "backend": "onnxruntime"},
                                      kept={"norm<-conv": 0.0, "activation": 0.0}, made_per_op={}, node_ms=0.005,
                                      compute_gops={kind: 100.0 for kind in KINDS},
                                      memory_gbs={kind: 20.0 for kind in KINDS}, base_ms=0.01, flops_ms_per_g=20.0,
                                      mac_ms_per_gb=100.0, networks=7, network_error=0.15, node_error=0.1,
                                      kept_examples=500, interval=(0.8, 1.3),
                                      environment={"machine": "m", "cpu": "test"})  # fmt: skip


def fixed_model(key: str = "cpu-t1-fp32-nchw-eager") -> costmodel.CostModel:
    """A cost model with round numbers: every convolution kind and linear costs as CONV, every other op (through its
    kind's fallback) and ``any`` as ELEMENTWISE; every channel count is on the lanes, no page faults, scale 1."""
    costs = {kind: CONV for kind in KINDS_AS_KEYS}
    costs |= {f"kind:{kind}": ELEMENTWISE for kind in KINDS if kind not in KINDS_AS_KEYS}
    return costmodel.CostModel(target={"key": key, "device": "cpu"}, costs={**costs, costmodel.ANY: ELEMENTWISE},
                               lanes=1, page_fault_gbs=None, network_scale=1.0, flops_ms_per_g=20.0,
                               mac_ms_per_gb=100.0, networks=7, ops=700, network_error=0.05, interval=(0.9, 1.2),
                               environment={"machine": "m", "cpu": "test"})  # fmt: skip
