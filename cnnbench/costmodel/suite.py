"""The kernel suite that ``cnnbench calibrate`` times: single layers over a grid of shapes, never a zoo model.

Each kernel is one layer (a module whose forward runs exactly one counted aten op of its kind), with the input it
runs on. The grid covers what the zoo's networks are made of: dense k×k convolutions (stems, ResNet, VGG,
AlexNet's 11×11), 1×1, depthwise (3×3 to 7×7, stride 1 and 2) and group convolutions, linear layers, BatchNorm, each
activation, add and a broadcast multiply (squeeze-excitation), the pools, concat and a channel shuffle. Channels
and sizes are drawn from the zoo's ranges by a seeded generator, so a suite is the same on every machine; kernels
above :data:`MAX_KERNEL_FLOPS` are redrawn to keep calibration within minutes on a small CPU. A share of the
channel counts and map sides is drawn off the grid of multiples of 8 and of the 224 px pyramid, as width
multipliers and larger resolutions make them (ShuffleNetV2's 116 and 232 channels, EfficientNet-B3's 150 px maps):
a convolution whose channels are not a multiple of the CPU's vector width runs a slower code path (1.3–1.6× per
multiply-add on an AVX-512 CPU), which the cost model fits as a factor of its own.

One more kernel kind, ``module``, times an ``nn.Module`` call that runs no op (a chain of containers around an
``nn.Identity``): the Python cost every container of a network adds to its layers'.
"""

from __future__ import annotations

import copy
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd
import torch
from torch import Tensor, nn

from cnnbench.measure.counting import CountingMode
from cnnbench.measure.forward import autocast, make_input, running
from cnnbench.measure.latency import Timing, time_callable
from cnnbench.target import Target

__all__ = ["Kernel", "KERNEL_KINDS", "KERNELS_PER_KIND", "MODULE_KIND", "CALIBRATION_TIMING", "MAX_KERNEL_FLOPS",
           "kernel_suite", "suite_size", "count_kernel", "time_kernels", "CONTAINER_DEPTH", "vector_channels",
           "KernelCount", "ChannelShuffle"]  # fmt: skip

MODULE_KIND = "module"  # a container's call: no op, only Python
# The counting engine's kinds that the suite covers (its "other" kind has no kernel: unknown ops cost what an
# element-wise op of the same traffic costs, see cnnbench.costmodel.model).
KERNEL_KINDS = ("conv", "conv_1x1", "conv_depthwise", "conv_group", "linear", "norm", "activation", "pool",
                "elementwise", "concat", "shuffle")  # fmt: skip
# 72 per kind, twice that per convolution kind: 1083 kernels, about 70 s on a 2-core CPU. With 24 per kind the fit
# missed the shapes where the library switches kernels (1×1 convolutions on 14×14 maps run at half the rate of their
# neighbours) and its held-out error was 22–27% on 21 zoo models; with 72, 13–21% on the same measurements.
KERNELS_PER_KIND = 72
MAX_KERNEL_FLOPS = 4e8  # multiply-adds of the largest kernel (VGG's biggest layer has 1.8e9: the rate carries over)
MAX_MAP_ELEMENTS = 64 * 224 * 224  # the largest feature map a zoo network makes (VGG's first block)
KERNEL_COLUMNS = ("kind", "kernel", "flops", "flops_elementwise", "mac_bytes", "ops", "channels", "output",
                  "time_ms")  # fmt: skip
CONTAINER_DEPTH = 16  # containers nested around the identity of a `module` kernel
MODULE_KERNELS = 3  # `module` kernels in a suite
# Short: a kernel's median is stable after a few calls, and the suite has hundreds of kernels.
CALIBRATION_TIMING = Timing(min_time_s=0.05, min_iters=5, window=3, settle=0.05, max_warmup_s=0.3, min_warmup_iters=3)

_CHANNELS = (8, 16, 24, 32, 40, 48, 64, 72, 96, 112, 128, 160, 192, 240, 256, 320, 384, 480, 512, 576, 672, 768, 960,
             1024)  # fmt: skip
_SIDES = (7, 14, 28, 56, 112, 224)
OFF_GRID = 0.4  # the share of channel counts and sides drawn off the grids above
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "hardswish": nn.Hardswish, "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
}  # fmt: skip
_POOLS: dict[str, Callable[[], nn.Module]] = {
    "max3s2": lambda: nn.MaxPool2d(3, 2, 1), "max2s2": lambda: nn.MaxPool2d(2, 2),
    "avg3s1": lambda: nn.AvgPool2d(3, 1, 1), "global": lambda: nn.AdaptiveAvgPool2d(1),
    "max3s1": lambda: nn.MaxPool2d(3, 1, 1, ceil_mode=True), "max3s2ceil": lambda: nn.MaxPool2d(3, 2, ceil_mode=True),
}  # fmt: skip


class _Add(nn.Module):
    """A residual add of two maps."""

    def __init__(self, other: Tensor) -> None:
        super().__init__()
        self.register_buffer("other", other)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.other


class _Scale(nn.Module):
    """Squeeze-excitation's multiply: a map times one gate per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("gate", torch.rand(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate


class _Concat(nn.Module):
    """Two branches joined along the channels (GoogLeNet, SqueezeNet, ShuffleNetV2's units)."""

    def __init__(self, other: Tensor) -> None:
        super().__init__()
        self.register_buffer("other", other)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.other], 1)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: reshape, transpose, and the copy that flattens it back (the suite's and the
    synthetic networks'; the zoo has its own)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def _nested(depth: int) -> nn.Module:
    module: nn.Module = nn.Identity()
    for _ in range(depth):
        module = nn.Sequential(module)
    return module


@dataclass(frozen=True)
class Kernel:
    """One layer of the suite and the input it runs on (``side`` 0: a flat ``batch × channels`` input)."""

    kind: str
    name: str  # what the layer is, for the table: "conv 3×3 s2 64→128 @56"
    channels: int  # input channels (features, for a linear layer)
    side: int
    build: Callable[[], nn.Module]

    def make(self) -> nn.Module:
        return self.build().eval()


def _off_grid(value: int, rng: random.Random, step: int) -> int:
    """``value`` kept, or (with probability :data:`OFF_GRID`) scaled by a width multiplier of 0.7–1.3 and rounded
    to a multiple of ``step``, as a width multiplier or a larger resolution moves a layer off the grid."""
    if rng.random() >= OFF_GRID:
        return value
    return max(step, round(value * rng.uniform(0.7, 1.3) / step) * step)


def _fitting(channels: Sequence[int], side: int) -> list[int]:
    """The channel counts whose map at ``side`` is no larger than the zoo's largest (the smallest if none is)."""
    return [c for c in channels if c * side * side <= MAX_MAP_ELEMENTS] or [channels[0]]


def _draw(kind: str, rng: random.Random) -> Kernel:
    side = _off_grid(rng.choice(_SIDES), rng, 1)
    c = _off_grid(rng.choice(_fitting(_CHANNELS, side)), rng, 2)
    if kind == "conv":
        c_in = rng.choice((3, *_CHANNELS[:16]))
        c_in = c_in if c_in == 3 else _off_grid(c_in, rng, 2)
        c_out = _off_grid(rng.choice(_fitting(_CHANNELS[:18], side)), rng, 2)
        k = rng.choice((3, 3, 3, 5, 7, 11))
        stride = rng.choice((1, 2, 4) if k == 11 else (1, 2))
        bias = rng.random() < 0.3
        return Kernel(kind, f"conv {k}×{k} s{stride} {c_in}→{c_out} @{side}", c_in, side,
                      lambda: nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=bias))  # fmt: skip
    if kind == "conv_1x1":
        c_out = _off_grid(rng.choice(_fitting(_CHANNELS, side)), rng, 2)
        stride = rng.choice((1, 1, 1, 2))
        bias = rng.random() < 0.3
        return Kernel(kind, f"conv 1×1 s{stride} {c}→{c_out} @{side}", c, side,
                      lambda: nn.Conv2d(c, c_out, 1, stride, bias=bias))  # fmt: skip
    if kind == "conv_depthwise":
        k, stride = rng.choice((3, 3, 5, 7)), rng.choice((1, 1, 2))
        return Kernel(kind, f"depthwise {k}×{k} s{stride} {c} @{side}", c, side,
                      lambda: nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False))  # fmt: skip
    if kind == "conv_group":
        groups, k = rng.choice((2, 3, 4, 8)), rng.choice((1, 1, 3))
        c_in, c_out = groups * rng.choice((8, 16, 24, 30, 48, 60, 96)), groups * rng.choice((8, 16, 24, 30, 48, 60, 96))
        return Kernel(kind, f"group conv {k}×{k} g{groups} {c_in}→{c_out} @{side}", c_in, side,
                      lambda: nn.Conv2d(c_in, c_out, k, 1, k // 2, groups=groups, bias=False))  # fmt: skip
    if kind == "linear":
        f_in, f_out = (
            rng.choice((64, 256, 512, 576, 960, 1024, 1280, 2048, 4096, 9216, 25088)),
            rng.choice((10, 1000, 1024, 4096)),
        )
        return Kernel(kind, f"linear {f_in}→{f_out}", f_in, 0, lambda: nn.Linear(f_in, f_out))
    if kind == "norm":
        return Kernel(kind, f"batchnorm {c} @{side}", c, side, lambda: nn.BatchNorm2d(c))
    if kind == "activation":
        act = rng.choice(sorted(_ACTIVATIONS))
        return Kernel(kind, f"{act} {c} @{side}", c, side, _ACTIVATIONS[act])
    if kind == "pool":
        pool = rng.choice(sorted(_POOLS))
        return Kernel(kind, f"pool {pool} {c} @{side}", c, side, _POOLS[pool])
    if kind == "elementwise":
        if rng.random() < 0.5:
            return Kernel(kind, f"add {c} @{side}", c, side, lambda: _Add(torch.randn(1, c, side, side)))
        return Kernel(kind, f"scale {c} @{side}", c, side, lambda: _Scale(c))
    if kind == "concat":
        other = _off_grid(rng.choice(_CHANNELS[:16]), rng, 2)
        return Kernel(kind, f"concat {c}+{other} @{side}", c, side, lambda: _Concat(torch.randn(1, other, side, side)))
    if kind == "shuffle":
        groups = rng.choice((2, 3, 4, 8))
        channels = groups * max(1, c // groups)
        return Kernel(kind, f"shuffle g{groups} {channels} @{side}", channels, side, lambda: ChannelShuffle(groups))
    raise ValueError(f"no kernels of kind {kind!r}")


class KernelCount(NamedTuple):
    """What the counting engine gives for one kernel: the counts every prediction uses, and its channels."""

    flops: int  # multiply-adds
    flops_elementwise: int
    mac_bytes: int
    ops: int  # counted ops (1 for every kernel of the suite)
    channels: tuple[int, ...]  # :func:`vector_channels` of its op
    output: tuple[int, ...]  # its op's output shape


def vector_channels(first_input: Sequence[int], output: Sequence[int]) -> tuple[int, ...]:
    """The channel counts an op's vector loops run over: of its first input and of its output, dim 1 of a 4-D
    (NCHW) tensor and the features of a 2-D one. Other ranks give none."""
    return tuple(shape[1] for shape in (first_input, output) if len(shape) in (2, 4))


def count_kernel(kernel: Kernel, batch: int = 1) -> KernelCount:
    """A kernel's counts, on the meta device with the engine every prediction uses."""
    module = copy.deepcopy(kernel.make()).to("meta")
    x = torch.empty(batch, kernel.channels, *((kernel.side,) * 2 if kernel.side else ()), device="meta")
    weights = [*module.parameters(), *module.buffers()]
    mode = CountingMode(external=[*weights, x], weights=weights)
    with torch.no_grad(), mode:
        module(x)
    records = mode.records
    channels = vector_channels(records[0][4][0] if records[0][4] else (), records[0][5]) if records else ()
    output = tuple(records[0][5]) if records else ()
    return KernelCount(sum(r[6] for r in records), sum(r[7] for r in records), sum(r[9] for r in records),
                       len(records), channels, output)  # fmt: skip


def kernel_suite(
    per_kind: int = KERNELS_PER_KIND, seed: int = 0, kinds: Sequence[str] = KERNEL_KINDS, batch: int = 1
) -> list[Kernel]:
    """``per_kind`` kernels of every kind (convolutions and pools get twice as many: their rates vary most), drawn
    from the zoo's channel and size ranges by ``random.Random(seed)``, plus a few ``module`` kernels."""
    rng = random.Random(seed)
    suite: list[Kernel] = []
    for kind in kinds:
        wanted = _per_kind(kind, per_kind)
        drawn = 0
        while drawn < wanted:
            kernel = _draw(kind, rng)
            too_big = kernel.channels * kernel.side**2 > MAX_MAP_ELEMENTS
            if too_big or count_kernel(kernel, batch).flops > MAX_KERNEL_FLOPS:
                continue
            suite.append(kernel)
            drawn += 1
    suite += [Kernel(MODULE_KIND, f"{CONTAINER_DEPTH} nested containers", 8, 7, lambda: _nested(CONTAINER_DEPTH))
              for _ in range(MODULE_KERNELS)]  # fmt: skip
    return suite


def suite_size(per_kind: int = KERNELS_PER_KIND, kinds: Sequence[str] = KERNEL_KINDS) -> int:
    """How many kernels :func:`kernel_suite` returns, without drawing (and counting) them."""
    return sum(_per_kind(kind, per_kind) for kind in kinds) + MODULE_KERNELS


def _per_kind(kind: str, per_kind: int) -> int:
    return per_kind * (2 if kind.startswith("conv") or kind == "pool" else 1)  # pools: windowed and global


def _input(kernel: Kernel, target: Target, batch: int) -> Tensor:
    if kernel.side == 0:
        return torch.randn(batch, kernel.channels).to(target.torch_device)
    return make_input(target, batch, kernel.side, kernel.channels)


def time_kernels(
    kernels: Sequence[Kernel],
    target: Target,
    batch: int = 1,
    timing: Timing = CALIBRATION_TIMING,
    progress: Callable[[Sequence[Kernel], str], Iterable[Kernel]] = lambda items, desc: items,
) -> pd.DataFrame:
    """Time every kernel on an eager ``target``; one row per kernel with its counts and median time in ms.

    A ``module`` kernel's time is per container call (the chain's time over :data:`CONTAINER_DEPTH`), its counts 0.
    ``channels`` is its :func:`vector_channels`, space-separated; ``output`` its op's output shape (``1×32×1×1``).
    """
    rows = []
    for kernel in progress(kernels, "calibrate"):
        module = kernel.make().to(target.torch_device)
        if target.channels_last and kernel.side:
            module = module.to(memory_format=torch.channels_last)
        x = _input(kernel, target, batch)

        def forward(module: nn.Module = module, x: Tensor = x) -> Tensor:
            with autocast(target):
                return module(x)

        with running(target):
            samples, _ = time_callable(forward, target.torch_device, timing)
        time_ms = statistics.median(samples)
        if kernel.kind == MODULE_KIND:
            count = KernelCount(0, 0, 0, 0, (), ())
            time_ms /= CONTAINER_DEPTH
        else:
            count = count_kernel(kernel, batch)
        rows.append({"kind": kernel.kind, "kernel": kernel.name, "flops": count.flops,
                     "flops_elementwise": count.flops_elementwise, "mac_bytes": count.mac_bytes, "ops": count.ops,
                     "channels": " ".join(map(str, count.channels)), "output": "×".join(map(str, count.output)),
                     "time_ms": time_ms})  # fmt: skip
    return pd.DataFrame(rows, columns=[*KERNEL_COLUMNS])
