"""The synthetic networks that ``cnnbench calibrate`` times: the kernel suite, timed where kernels run.

An op timed alone, on a warm input, runs faster than the same op inside a network: on a 2-core Xeon, BatchNorm
1.5–1.9×, ReLU 1.7–2.5×, a small classifier 2.0–4.1× and convolutions 1.2–1.3× (the leaves of MobileNetV2,
ShuffleNetV2 and GoogLeNet, each timed alone on its own input shape against its op timed inside the network).
Inside a network the op's weights, code and the dispatcher's tables have been evicted by the ops before it, and it
reads an input another op has just written. So the kernel suite is timed in place: every kernel is an op of a
seeded synthetic network, timed one by one inside a whole forward (:func:`cnnbench.measure.breakdown.time_ops`), and
each network is also timed whole, as the report times a zoo model (:func:`cnnbench.measure.latency.measure`), each
in a process of its own.

Each network is drawn by a seeded generator from the layers the zoo's families are made of, never a zoo model:

- lightweight (two in three): a strided stem, then 3–7 stages of one block repeated 1–4 times with the same
  shapes: depthwise-separable pairs (3×3 to 7×7), dense 3×3 layers, inverted bottlenecks (with or without
  squeeze-excitation, through a mean or a global pool, sigmoid or hard-sigmoid gate, and a residual add), grouped
  1×1 layers with a channel shuffle (stride 2 joins an average-pooled shortcut by concat), split-and-shuffle
  units, fire modules (squeeze, then 1×1 and 3×3 expands joined by concat), four-branch inception modules; a wide
  1×1 head, a global pool and one or two linear layers;
- classic (one in four): a 7×7 or 11×11 stem or a 3×3 one at full size, stages of 3×3 layers (plain with max
  pools, with or without BatchNorm), residual pairs or residual bottlenecks, up to 512 channels, and a global
  classifier or a flattening one whose linear layers read up to 400 MB of weights;
- large (one in sixteen): a shallow lightweight network at 456–600 px, whose maps pass the allocator's mmap
  threshold (fresh pages at every forward).

Channel counts are drawn on the grid of multiples of 8 and off it, as width multipliers make them; activations are
ReLU, ReLU6, SiLU or hard-swish, in place or not, as the zoo's families write them. Networks above
:data:`MAX_NETWORK_FLOPS` are drawn again, to keep a calibration within minutes on a small CPU.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from cnnbench.errors import CnnbenchError
from cnnbench.measure.breakdown import time_ops
from cnnbench.measure.disturbance import Disturbance, Quieting, watch
from cnnbench.measure.isolated import run_isolated
from cnnbench.measure.latency import REPORT_TIMING, Timing, measure
from cnnbench.measure.profiling import profile
from cnnbench.target import Target

__all__ = [
    "NETWORKS",
    "MAX_NETWORK_FLOPS",
    "OP_REPEATS",
    "Network",
    "ChannelShuffle",
    "NetworkTimer",
    "network_suite",
    "time_network",
    "time_networks",
]

NETWORKS = 100  # networks per calibration: under two minutes on a 2-core CPU (150 gave no better fit)
MAX_NETWORK_FLOPS = 3e9  # multiply-adds of the largest network (VGG-16 has 15.5e9: its layers' sizes are covered)
OP_REPEATS = 7  # forwards per network timed op by op; each op's time is its median over them
_LIGHT_RESOLUTIONS = (128, 160, 192, 224, 224, 240, 260, 300, 380)
_CLASSIC_RESOLUTIONS = (112, 128, 160, 192, 224)
_LARGE_RESOLUTIONS = (456, 528, 600)
_LIGHT_BLOCKS = (
    *("separable", "dense", "bottleneck", "bottleneck", "grouped", "split", "fire", "inception"),
    *("mixed", "reparameterisable", "ghost", "densely_connected", "one_shot", "regnet", "convnext"),
)
LARGE, CLASSIC = 1 / 16, 1 / 4  # the shares of large and classic networks


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: reshape, transpose, and the copy that flattens it back."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class _Add(nn.Module):
    """``body(x) + shortcut(x)``, in place or not, then ``after`` (an activation, or nothing)."""

    def __init__(
        self, body: nn.Module, inplace: bool, after: nn.Module | None = None, shortcut: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.body, self.inplace = body, inplace
        self.after, self.shortcut = after or nn.Identity(), shortcut or nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        if self.inplace:
            y += self.shortcut(x)
        else:
            y = y + self.shortcut(x)
        return self.after(y)


class _SqueezeExcite(nn.Module):
    """A mean (or a global pool), a reduce and an expand 1×1 convolution, a gate, and the broadcast multiply."""

    def __init__(self, channels: int, squeezed: int, act: Callable[[], nn.Module], hard: bool, pool: bool) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1) if pool else None
        self.reduce, self.act = nn.Conv2d(channels, squeezed, 1), act()
        self.expand, self.gate = nn.Conv2d(squeezed, channels, 1), nn.Hardsigmoid() if hard else nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = self.pool(x) if self.pool is not None else x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class _Concat(nn.Module):
    """Branches joined along the channels, then ``after``."""

    def __init__(self, *branches: nn.Module, after: nn.Module | None = None) -> None:
        super().__init__()
        self.branches, self.after = nn.ModuleList(branches), after or nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.after(torch.cat([branch(x) for branch in self.branches], 1))


class _Split(nn.Module):
    """Half the channels kept, half through a branch, joined and shuffled."""

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch, self.shuffle = branch, ChannelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        kept, through = x.chunk(2, dim=1)
        return self.shuffle(torch.cat((kept, self.branch(through)), 1))


class _Branches(nn.Module):
    """Branches summed, then ``after``: a re-parameterisable block as it trains (RepVGG, MobileOne): a k×k and a 1×1
    convolution, each with its BatchNorm, and a BatchNorm alone as the identity branch."""

    def __init__(self, *branches: nn.Module, after: nn.Module | None = None) -> None:
        super().__init__()
        self.branches, self.after = nn.ModuleList(branches), after or nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.branches[0](x)
        for branch in self.branches[1:]:
            y = y + branch(x)
        return self.after(y)


class _MixedDepthwise(nn.Module):
    """MixNet's mixed depthwise convolution: the channels split into groups, each group its own kernel size, the
    outputs concatenated."""

    def __init__(self, splits: Sequence[int], kernels: Sequence[int], stride: int) -> None:
        super().__init__()
        self.splits = list(splits)
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False) for c, k in zip(splits, kernels, strict=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([conv(part) for conv, part in zip(self.convs, x.split(self.splits, 1), strict=True)], 1)


class _DenselyConnected(nn.Module):
    """DenseNet's dense block: each layer reads the concatenation of the block's input and every earlier layer's
    output, and adds ``growth`` channels; the block returns the concatenation of all."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class _OneShot(nn.Module):
    """VoVNet's one-shot aggregation: a chain of 3×3 layers whose outputs, with the input, are concatenated once and
    reduced by a 1×1 layer."""

    def __init__(self, chain: Sequence[nn.Module], reduce: nn.Module) -> None:
        super().__init__()
        self.chain, self.reduce = nn.ModuleList(chain), reduce

    def forward(self, x: Tensor) -> Tensor:
        outputs = [x]
        for layer in self.chain:
            outputs.append(layer(outputs[-1]))
        return self.reduce(torch.cat(outputs, 1))


class _Ghost(nn.Module):
    """GhostNet's ghost module: a 1×1 layer makes part of the channels, a cheap depthwise layer the rest from them."""

    def __init__(self, primary: nn.Module, cheap: nn.Module, out: int) -> None:
        super().__init__()
        self.primary, self.cheap, self.out = primary, cheap, out

    def forward(self, x: Tensor) -> Tensor:
        y = self.primary(x)
        return torch.cat((y, self.cheap(y)), 1)[:, : self.out]


class _ChannelsLast(nn.Module):
    """ConvNeXt's block: a 7×7 depthwise convolution, then channels-last LayerNorm, a 4× linear expansion, GELU,
    the projection and a per-channel layer scale, back to channels-first and added to the input (input first, so
    that the sum is channels-first, as ConvNeXt's is)."""

    def __init__(self, channels: int, kernel: int, expand: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel, 1, kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.expand, self.act = nn.Linear(channels, expand * channels), nn.GELU()
        self.project = nn.Linear(expand * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        y = self.depthwise(x).permute(0, 2, 3, 1)
        y = self.project(self.act(self.expand(self.norm(y)))) * self.scale
        return x + y.permute(0, 3, 1, 2)


def _activation(rng: random.Random) -> Callable[[], nn.Module]:
    kind, inplace = rng.choice(("relu", "relu", "relu6", "silu", "hardswish", "gelu")), rng.random() < 0.6
    return {
        "gelu": lambda: nn.GELU(),
        "relu": lambda: nn.ReLU(inplace),
        "relu6": lambda: nn.ReLU6(inplace),
        "silu": lambda: nn.SiLU(inplace),
        "hardswish": lambda: nn.Hardswish(inplace),
    }[kind]


def _width(channels: float, rng: random.Random) -> int:
    """A channel count near ``channels``: a multiple of 8 two times in five, else of 4 or 2, or any count (ReXNet's
    and width multipliers' odd ones)."""
    step = rng.choice((8, 8, 4, 2, 1))
    return max(step, round(channels / step) * step)


def _conv(
    c_in: int,
    c_out: int,
    k: int = 1,
    stride: int = 1,
    groups: int = 1,
    act: Callable[[], nn.Module] | None = None,
    norm: bool = True,
) -> list[nn.Module]:
    """A convolution, its BatchNorm (else a bias) and an activation."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=not norm)]
    return layers + ([nn.BatchNorm2d(c_out)] if norm else []) + ([act()] if act else [])


def _seq(*parts: nn.Module | list[nn.Module]) -> nn.Sequential:
    return nn.Sequential(*[m for part in parts for m in (part if isinstance(part, list) else [part])])


def _light_block(
    kind: str,
    c: int,
    c_out: int,
    stride: int,
    act: Callable[[], nn.Module],
    rng: random.Random,
) -> tuple[nn.Module, int]:
    """One block of a lightweight network and its output channels."""
    inplace_add = rng.random() < 0.6
    if kind == "separable":
        tail = act if rng.random() < 0.5 else None
        return _seq(_conv(c, c, rng.choice((3, 3, 5, 7, 9)), stride, c, act), _conv(c, c_out, act=tail)), c_out
    if kind == "dense":
        return _seq(_conv(c, c_out, 3, stride, act=act)), c_out
    if kind == "bottleneck":
        wide = _width(c * rng.choice((1, 3, 4, 6)), rng)
        squeeze: list[nn.Module] = []
        if rng.random() < 0.5:
            squeezed = max(4, _width(rng.choice((c / 4, wide / 4, wide / 24)), rng))
            squeeze = [_SqueezeExcite(wide, squeezed, act, rng.random() < 0.4, rng.random() < 0.5)]
        body = _seq(
            _conv(c, wide, act=act) if wide != c else [],
            _conv(wide, wide, rng.choice((3, 3, 5, 7)), stride, wide, act),
            squeeze,
            _conv(wide, c_out),
        )
        return (_Add(body, inplace_add) if stride == 1 and c_out == c else body), c_out
    if kind == "grouped":
        groups = rng.choice([g for g in (2, 3, 4, 8) if c % g == 0] or [1])
        mid = max(groups, _width(c_out / 4, rng) // groups * groups)
        if stride == 2:  # the shortcut is average-pooled and concatenated: the body adds the channels that grow
            body_out = max(groups, (c_out - c if c_out - c >= groups else c) // groups * groups)
        else:
            body_out = c if c_out == c else max(groups, c_out // groups * groups)
        body = _seq(
            _conv(c, mid, groups=groups, act=act),
            ChannelShuffle(groups) if groups > 1 else [],
            _conv(mid, mid, 3, stride, mid),
            _conv(mid, body_out, groups=groups),
        )
        if stride == 2:
            return _Concat(nn.AvgPool2d(3, 2, 1), body, after=act()), c + body_out
        if body_out == c:
            return _Add(body, inplace_add, act()), c
        return _seq(body, act()), body_out
    if kind == "split":
        if stride == 1 and c % 2 == 0:
            half = c // 2
            return _Split(
                _seq(_conv(half, half, act=act), _conv(half, half, 3, 1, half), _conv(half, half, act=act))
            ), c
        half = max(4, c_out // 4 * 2)
        left = _seq(_conv(c, c, 3, stride, c), _conv(c, half, act=act))
        right = _seq(_conv(c, half, act=act), _conv(half, half, 3, stride, half), _conv(half, half, act=act))
        return _Concat(left, right, after=ChannelShuffle(2)), 2 * half
    if kind == "fire":
        squeezed, norm = max(8, _width(c_out / 8, rng)), rng.random() < 0.5
        one, three = c_out // 2, c_out - c_out // 2
        expands = _Concat(
            _seq(_conv(squeezed, one, act=act, norm=norm)), _seq(_conv(squeezed, three, 3, act=act, norm=norm))
        )
        return _seq(_conv(c, squeezed, act=act, norm=norm), expands), c_out
    if kind == "inception":
        widths = [max(8, _width(c_out * share, rng)) for share in (0.25, 0.125, 0.375, 0.125)]
        reduced = [max(8, _width(w * 0.6, rng)) for w in widths[1:3]]
        return _Concat(
            _seq(_conv(c, widths[0], act=act)),
            _seq(_conv(c, reduced[0], act=act), _conv(reduced[0], widths[1], 3, act=act)),
            _seq(_conv(c, reduced[1], act=act), _conv(reduced[1], widths[2], rng.choice((3, 5)), act=act)),
            _seq(nn.MaxPool2d(3, 1, 1, ceil_mode=True), _conv(c, widths[3], act=act)),
        ), sum(widths)
    if kind in _DESIGN_SPACE_BLOCKS:
        return _DESIGN_SPACE_BLOCKS[kind](c, c_out, stride, act, rng)
    raise ValueError(f"no block {kind!r}")


# --- blocks from the design spaces of the architectures after the zoo's: NAS, re-parameterised, densely connected,
# RegNet's and ConvNeXt's. Each takes (channels in, channels out, stride, activation, rng) and returns the block and
# its output channels.


def _mixed_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """MixNet (arXiv:1907.09595): an inverted bottleneck whose depthwise layer mixes 2-4 kernel sizes of 3 to 9."""
    wide = _width(c * rng.choice((3, 6)), rng)
    groups = rng.choice((2, 3, 4))
    splits = [wide // groups + (1 if i < wide % groups else 0) for i in range(groups)]
    squeeze = [_SqueezeExcite(wide, max(4, c // 4), act, False, False)] if rng.random() < 0.5 else []
    body = _seq(
        _conv(c, wide, act=act),
        _MixedDepthwise(splits, (3, 5, 7, 9)[:groups], stride),
        nn.BatchNorm2d(wide),
        act(),
        squeeze,
        _conv(wide, c_out),
    )
    return (_Add(body, rng.random() < 0.5) if stride == 1 and c_out == c else body), c_out


def _reparameterisable_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """RepVGG (arXiv:2101.03697) or MobileOne (arXiv:2206.04040) as trained: k×k, 1×1 and BatchNorm-only branches
    summed; MobileOne's depthwise then pointwise pair when the channels stay."""

    def branches(c_in: int, out: int, k: int, s: int, groups: int) -> _Branches:
        parts = [_seq(_conv(c_in, out, k, s, groups))]
        if k > 1:
            parts.append(_seq(_conv(c_in, out, 1, s, groups)))
        if s == 1 and c_in == out:
            parts.append(nn.BatchNorm2d(out))
        return _Branches(*parts, after=act())

    if c_out == c and rng.random() < 0.4:
        return _seq(branches(c, c, 3, stride, c), branches(c, c, 1, 1, 1)), c
    return branches(c, c_out, 3, stride, 1), c_out


def _ghost_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """GhostNet (arXiv:1911.11907): a ghost module expands, a depthwise layer strides, a second one projects."""

    def ghost(c_in: int, out: int, relu: bool) -> _Ghost:
        made = (out + 1) // 2
        tail = act if relu else None
        return _Ghost(_seq(_conv(c_in, made, act=tail)), _seq(_conv(made, made, 3, 1, made, tail)), out)

    wide = _width(c * rng.choice((2, 3, 4, 6)), rng)
    body = _seq(ghost(c, wide, True), _conv(wide, wide, rng.choice((3, 5)), stride, wide) if stride == 2 else [])
    body = _seq(body, ghost(wide, c_out, False))
    shortcut = None
    if stride != 1 or c != c_out:
        shortcut = _seq(_conv(c, c, 3, stride, c), _conv(c, c_out))
    return _Add(body, False, shortcut=shortcut), c_out


def _densely_connected_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """DenseNet-BC (arXiv:1608.06993): 2-6 pre-activation layers (BatchNorm, ReLU, a 1×1 layer to 4 × growth, then
    a 3×3 layer to growth) on the concatenation of everything before them; a stride-2 block starts with DenseNet's
    transition (BatchNorm, ReLU, a 1×1 layer halving the channels, a 2×2 average pool)."""
    transition: list[nn.Module] = []
    if stride == 2:
        half = max(8, c // 2)
        transition = [nn.BatchNorm2d(c), act(), nn.Conv2d(c, half, 1, bias=False), nn.AvgPool2d(2, 2)]
        c = half
    growth, count = rng.choice((12, 16, 24, 32)), rng.randint(2, 6)
    layers = []
    for i in range(count):
        c_in = c + i * growth
        layers.append(
            _seq(
                nn.BatchNorm2d(c_in),
                act(),
                nn.Conv2d(c_in, 4 * growth, 1, bias=False),
                nn.BatchNorm2d(4 * growth),
                act(),
                nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
            )
        )
    return _seq(*transition, _DenselyConnected(layers)), c + count * growth


def _one_shot_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """VoVNet (arXiv:1904.09730): 3-5 chained 3×3 layers, aggregated once by a 1×1 layer; a stride-2 block starts
    with VoVNet's 3×3/2 max pool."""
    width = max(8, _width(c_out * rng.choice((0.25, 0.5)), rng))
    count = rng.randint(3, 5)
    chain = [_seq(_conv(c if i == 0 else width, width, 3, act=act)) for i in range(count)]
    block = _OneShot(chain, _seq(_conv(c + count * width, c_out, act=act)))
    return (_seq(nn.MaxPool2d(3, 2, 1, ceil_mode=True), block) if stride == 2 else block), c_out


def _regnet_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """RegNet's X (and, with squeeze-excitation, Y) block (arXiv:2003.13678): 1×1, a 3×3 group layer of group
    width 8-64, 1×1; a strided 1×1 projection as the shortcut when the shape changes."""
    group_width = rng.choice((8, 16, 24, 32, 48, 64))
    inner = max(group_width, round(c_out * rng.choice((1, 0.5, 0.25)) / group_width) * group_width)
    squeeze = [_SqueezeExcite(inner, max(4, c // 4), act, False, True)] if rng.random() < 0.5 else []
    body = _seq(
        _conv(c, inner, act=act),
        _conv(inner, inner, 3, stride, inner // group_width, act),
        squeeze,
        _conv(inner, c_out),
    )
    shortcut = None if stride == 1 and c == c_out else _seq(_conv(c, c_out, 1, stride))
    return _Add(body, rng.random() < 0.6, act(), shortcut), c_out


def _convnext_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """ConvNeXt (arXiv:2201.03545): a 7×7 (or 5×5, 9×9) depthwise layer, channels-last LayerNorm, a 4× MLP with
    GELU and a layer scale, added to the input; a 2×2/2 convolution downsamples before it."""
    downsample = [nn.Conv2d(c, c_out, 2, 2)] if stride == 2 or c != c_out else []
    if downsample and stride == 1:
        downsample = [nn.Conv2d(c, c_out, 1)]
    return _seq(*downsample, _ChannelsLast(c_out, rng.choice((7, 7, 5, 9)), rng.choice((3, 4)))), c_out


_DESIGN_SPACE_BLOCKS = {
    "mixed": _mixed_block,
    "reparameterisable": _reparameterisable_block,
    "ghost": _ghost_block,
    "densely_connected": _densely_connected_block,
    "one_shot": _one_shot_block,
    "regnet": _regnet_block,
    "convnext": _convnext_block,
}


def _light(rng: random.Random, resolution: int) -> nn.Module:
    act = _activation(rng)
    c = _width(rng.choice((8, 16, 24, 32, 48, 64)) * rng.uniform(0.6, 1.4), rng)
    layers: list[nn.Module] = [_seq(_conv(3, c, 3, 2, act=act))]
    side = (resolution + 1) // 2
    if rng.random() < 0.3:
        layers.append(nn.MaxPool2d(3, 2, 1))
        side = (side + 1) // 2
    for _ in range(rng.randint(3, 7)):
        kind, repeats = rng.choice(_LIGHT_BLOCKS), rng.randint(1, 4)
        stride = 2 if side > 7 and rng.random() < 0.5 else 1
        c_out = min(1280, max(8, _width(c * rng.choice((1, 1, 1.5, 2)), rng)))
        shapes = rng.random()  # every repeat draws its choices from the same seed: one block, repeated
        for i in range(repeats):
            block, c = _light_block(kind, c, c_out, stride if i == 0 else 1, act, random.Random(shapes))
            layers.append(block)
        side = (side + 1) // 2 if stride == 2 else side
        if side > 7 and rng.random() < 0.1:
            layers.append(rng.choice((nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, 2), nn.AvgPool2d(2, 2))))
            side //= 2
    head: list[nn.Module] = []
    if rng.random() < 0.6:
        wide = _width(rng.choice((512, 1024, 1280)) * rng.uniform(0.5, 1.5), rng)
        head, c = _conv(c, wide, act=act), wide
    head += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if rng.random() < 0.3:
        hidden = rng.choice((1024, 1280))
        head, c = [*head, nn.Linear(c, hidden), act()], hidden
    return _seq(*layers, *head, nn.Dropout(0.2), nn.Linear(c, rng.choice((1000, 1000, 10))))


def _classic(rng: random.Random, resolution: int) -> nn.Module:
    style = rng.choice(("plain", "pairs", "bottleneck"))
    norm = style != "plain" or rng.random() < 0.5
    relu = lambda: nn.ReLU(inplace=rng.random() < 0.8)  # noqa: E731
    c = _width(rng.choice((32, 48, 64, 96)), rng)
    stem = rng.choice(("7x7", "11x11", "3x3"))
    if stem == "7x7":  # stride 2 and a 3×3/2 max pool
        layers: list[nn.Module] = [*_conv(3, c, 7, 2, act=relu, norm=norm), nn.MaxPool2d(3, 2, 1)]
        side = ((resolution - 1) // 2 + 1 - 1) // 2 + 1
    elif stem == "11x11":  # stride 4, padding 2, and a 3×3/2 max pool without padding
        layers, side = [nn.Conv2d(3, c, 11, 4, 2), relu(), nn.MaxPool2d(3, 2)], ((resolution - 7) // 4 + 1 - 3) // 2 + 1
    else:
        layers, side = _conv(3, c, 3, act=relu, norm=norm), resolution
    for stage in range(rng.randint(2, 4)):
        c_out = min(512, _width(c * 2, rng)) if stage else c
        for i in range(rng.randint(1, 3)):
            stride = 2 if stage and i == 0 and side > 7 else 1
            if style == "plain":
                layers += ([nn.MaxPool2d(2, 2)] if stride == 2 else []) + _conv(c, c_out, 3, act=relu, norm=norm)
            else:
                if style == "pairs":
                    body = _seq(_conv(c, c_out, 3, stride, act=relu), _conv(c_out, c_out, 3))
                else:
                    mid = max(16, c_out // 4)
                    body = _seq(_conv(c, mid, act=relu), _conv(mid, mid, 3, stride, act=relu), _conv(mid, c_out))
                shortcut = None if stride == 1 and c == c_out else _seq(_conv(c, c_out, 1, stride))
                layers.append(_Add(body, True, relu(), shortcut))
            side = (side + 1) // 2 if stride == 2 else side
            c = c_out
    if rng.random() < 0.35:  # flattening classifier: its linear layers read their weights once per forward
        pooled, hidden = rng.choice((6, 7)), rng.choice((1024, 2048, 4096))
        layers += [
            nn.AdaptiveAvgPool2d(pooled),
            nn.Flatten(),
            nn.Dropout(),
            nn.Linear(c * pooled * pooled, hidden),
            relu(),
            nn.Linear(hidden, hidden),
            relu(),
            nn.Linear(hidden, 1000),
        ]
    else:
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)]
    return nn.Sequential(*layers)


def _large(rng: random.Random, resolution: int) -> nn.Module:
    act = _activation(rng)
    c = _width(rng.choice((24, 32, 40, 48)), rng)
    layers: list[nn.Module] = [_seq(_conv(3, c, 3, 2, act=act))]
    for _ in range(rng.randint(1, 2)):
        block, c = _light_block(
            "bottleneck", c, _width(c * rng.choice((0.75, 1, 1.5)), rng), 1, act, random.Random(rng.random())
        )
        layers.append(block)
    for _ in range(3):
        block, c = _light_block(
            rng.choice(("bottleneck", "separable")), c, _width(c * 2, rng), 2, act, random.Random(rng.random())
        )
        layers.append(block)
    return _seq(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000))


def _network(draw: int) -> tuple[nn.Module, int, str]:
    """The network of one draw, in eval mode, with its input side and a description; its weights are seeded too."""
    rng = random.Random(draw)
    share = rng.random()
    with torch.random.fork_rng():
        torch.manual_seed(draw)
        if share < LARGE:
            resolution = rng.choice(_LARGE_RESOLUTIONS)
            return _large(rng, resolution).eval(), resolution, f"large @{resolution}"
        if share < LARGE + CLASSIC:
            resolution = rng.choice(_CLASSIC_RESOLUTIONS)
            return _classic(rng, resolution).eval(), resolution, f"classic @{resolution}"
        resolution = rng.choice(_LIGHT_RESOLUTIONS)
        return _light(rng, resolution).eval(), resolution, f"lightweight @{resolution}"


@dataclass(frozen=True)
class Network:
    """One synthetic network: its name, input side, the draw that builds it, and its counting pass's layers."""

    name: str
    resolution: int
    draw: int
    layers: pd.DataFrame = field(compare=False, repr=False)  # cnnbench.measure.profiling.Profile.layers

    def build(self) -> nn.Module:
        return _network(self.draw)[0]


def network_suite(
    count: int = NETWORKS,
    seed: int = 0,
    progress: Callable[[Sequence[int], str], Iterable[int]] = lambda items, desc: items,
) -> list[Network]:
    """``count`` synthetic networks drawn by ``random.Random(seed)``, the same on every machine, each counted on the
    meta device (those above :data:`MAX_NETWORK_FLOPS` are drawn again)."""
    rng = random.Random(seed)
    drawn: list[Network] = []
    for index in progress(range(count), "draw"):
        while True:
            draw = rng.randrange(2**31)
            net, resolution, description = _network(draw)
            counted = profile(net, resolution=resolution, batch=1, training_memory=False)
            if counted.totals.flops <= MAX_NETWORK_FLOPS:
                drawn.append(Network(f"net{index:03d} ({description})", resolution, draw, counted.layers))
                break
    return drawn


def time_network(
    draw: int,
    target: Target,
    timing: Timing = REPORT_TIMING,
    repeats: int = OP_REPEATS,
) -> tuple[float, pd.DataFrame, Disturbance]:
    """One network's median latency, timed as the report times a zoo model, then each of its ops in its place
    (:func:`cnnbench.measure.breakdown.time_ops`), and the least favourable of what the machine gave the two
    (:class:`~cnnbench.measure.disturbance.Disturbance`); run it in a process of its own, as :func:`time_networks`
    does."""
    net, resolution, _ = _network(draw)
    whole = measure(net, target, resolution=resolution, timing=timing)
    with watch(target.threads) as seen:
        ops = time_ops(net, target, resolution=resolution, repeats=repeats)
    return whole.median_ms, ops, Disturbance.worst([whole.disturbance, seen[0]])


class NetworkTimer:
    """Times drawn networks a few at a time, each in a child process as the report times a zoo model, so that a
    report can interleave them with the models it measures: a machine whose speed drifts over minutes then slows
    both alike. :meth:`finish` times what is left and returns the tables.

    A network timed while another process held the CPUs is timed again once the machine is quiet, as a latency row
    is (``quieting``); one that stays disturbed is kept in the per-network table, flagged, and its ops are left out
    of the per-op table that the fit reads."""

    def __init__(
        self,
        drawn: Sequence[Network],
        target: Target,
        timing: Timing = REPORT_TIMING,
        repeats: int = OP_REPEATS,
        quieting: Quieting | None = None,
    ) -> None:
        self.waiting, self.target, self.timing, self.repeats = list(drawn), target, timing, repeats
        self.quieting = quieting or Quieting()
        self.tables: list[pd.DataFrame] = []
        self.rows: list[dict[str, object]] = []

    def step(self, count: int = 1) -> None:
        """Time the next ``count`` networks (none when all are timed)."""
        for network in self.waiting[:count]:
            self._time(network)
        del self.waiting[:count]

    def finish(
        self,
        progress: Callable[[Sequence[Network], str], Iterable[Network]] = lambda items, desc: items,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Time every network left, then return the per-op table (the counting pass's layers with the network's
        name and each op's ``time_ms``; undisturbed networks only) and the per-network one (``network``,
        ``resolution``, ``measured_ms``, ``ops_ms``: the sum of its ops timed one by one, ``ops``, ``disturbed``,
        ``cpu_share``, ``attempts``), in the order the networks were drawn. Raises :class:`CnnbenchError` when every
        network was disturbed: a cost model fitted on them would publish a machine's busy hour as its speed."""
        for network in progress(self.waiting, "networks"):
            self._time(network)
        self.waiting = []
        if not self.tables:
            raise CnnbenchError(
                f"all {len(self.rows)} calibration networks were disturbed (other processes held the "
                "CPUs); calibrate again on a quiet machine"
            )
        return pd.concat(self.tables, ignore_index=True), pd.DataFrame(self.rows)

    def _time(self, network: Network) -> None:
        (whole, timed, seen), attempts = self.quieting.measure(
            network.name,
            lambda: run_isolated(time_network, network.draw, self.target, self.timing, self.repeats),
            lambda result: result[2],
        )
        layers = network.layers
        if list(timed["kind"]) != list(layers["kind"]):
            raise CnnbenchError(
                f"{network.name}: its ops timed one by one ({len(timed)}) do not line up with its "
                f"counting pass ({len(layers)}); this is a bug, please report it"
            )
        if not seen.disturbed:
            self.tables.append(layers.assign(network=network.name, time_ms=timed["time_ms"].to_numpy()))
        self.rows.append(
            {
                "network": network.name,
                "resolution": network.resolution,
                "measured_ms": whole,
                "ops_ms": float(np.sum(timed["time_ms"])),
                "ops": len(timed),
                **seen.columns(),
                "attempts": attempts,
            }
        )


def time_networks(
    drawn: Sequence[Network],
    target: Target,
    progress: Callable[[Sequence[Network], str], Iterable[Network]] = lambda items, desc: items,
    timing: Timing = REPORT_TIMING,
    repeats: int = OP_REPEATS,
    quieting: Quieting | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time every network, one after the other (:class:`NetworkTimer`); returns its two tables."""
    return NetworkTimer(drawn, target, timing, repeats, quieting).finish(progress)
