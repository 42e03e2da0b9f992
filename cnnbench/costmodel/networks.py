"""Synthetic networks that ``cnnbench calibrate`` times whole, beside the kernel suite: never a zoo model.

A layer timed alone runs faster than the same layer inside a network. In a network each op finds its parameters,
its code and the dispatcher's tables evicted by the ops before it, and reads an input that another op (often a
oneDNN convolution) has just written; timed alone it finds all of them warm. On a 2-core EPYC, with freed memory
kept, the suite's isolated fit predicted 48 random networks 26% low on the median, and BatchNorm ran about twice
as long after a 1×1 convolution as alone. The cost model therefore fits three in-network factors (overhead, compute
and memory terms, :func:`cnnbench.costmodel.model.fit_network_factors`) on whole networks that are built here.

Each network is drawn by a seeded generator. Three in four are made of the blocks lightweight CNNs are built from,
in stages of random kind, width and depth, each stage one block repeated 1–4 times with the same shapes (as real
networks repeat theirs, so that a repeated block finds its kernels' code warm): a strided stem,
depthwise-separable pairs, dense 3×3 layers, inverted bottlenecks (with or without squeeze-excitation and a
residual add), grouped 1×1 layers with a channel shuffle, pools, two-branch concats, a global pool and a
classifier; widths are drawn off the grid of multiples of 8 as often as on it. The fourth is wide and dense, as
the classic families are: stages of 3×3 layers, plain or in residual pairs, up to 512 channels, and one or two
linear layers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor, nn

from cnnbench.costmodel.suite import ChannelShuffle
from cnnbench.measure.latency import REPORT_TIMING, Timing, measure
from cnnbench.target import Target

__all__ = ["NETWORKS", "Network", "network_suite", "time_networks"]

NETWORKS = 48  # networks per calibration: about a minute on a 2-core CPU
_ACTIVATIONS: tuple[Callable[[], nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish)
_RESOLUTIONS = (224, 192, 160, 128)
_BLOCKS = ("separable", "dense", "bottleneck", "grouped", "pool", "concat")
CLASSIC = 0.25  # the share of networks built as the classic families are (wide dense 3×3 stages)


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.pool, self.reduce, self.act = nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeezed, 1), nn.ReLU()
        self.expand, self.gate = nn.Conv2d(squeezed, channels, 1), nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class _Branches(nn.Module):
    def __init__(self, left: nn.Module, right: nn.Module) -> None:
        super().__init__()
        self.left, self.right = left, right

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.left(x), self.right(x)], 1)


def _conv_bn(
    c_in: int, c_out: int, k: int, stride: int, groups: int, act: Callable[[], nn.Module] | None
) -> list[nn.Module]:
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return layers + ([act()] if act else [])


def _block(
    kind: str, c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[list[nn.Module], int]:
    """One block's layers and its output channels."""
    if kind == "separable":
        tail = act if rng.random() < 0.5 else None
        return _conv_bn(c, c, rng.choice((3, 5, 7)), stride, c, act) + _conv_bn(c, c_out, 1, 1, 1, tail), c_out
    if kind == "dense":
        return _conv_bn(c, c_out, 3, stride, 1, act), c_out
    if kind == "bottleneck":
        wide = c * rng.choice((3, 4, 6))
        se = [_SqueezeExcite(wide, max(8, wide // 4))] if rng.random() < 0.4 else []
        depthwise = _conv_bn(wide, wide, rng.choice((3, 5)), stride, wide, act)
        body = nn.Sequential(*_conv_bn(c, wide, 1, 1, 1, act), *depthwise, *se, *_conv_bn(wide, c_out, 1, 1, 1, None))
        return [_Residual(body) if stride == 1 and c_out == c else body], c_out
    if kind == "grouped":
        groups = rng.choice((2, 4, 8))
        c_in, c_out = c // groups * groups, max(groups, c_out // groups * groups)
        head = _conv_bn(c, c_in, 1, 1, 1, act) if c_in != c else []
        grouped = _conv_bn(c_in, c_out, 1, 1, groups, act) + [ChannelShuffle(groups)]
        return head + grouped + _conv_bn(c_out, c_out, 3, stride, c_out, None), c_out
    if kind == "concat":
        half = max(8, c_out // 2)
        left, right = (nn.Sequential(*_conv_bn(c, half, k, stride, 1, act)) for k in (1, 3))
        return [_Branches(left, right)], 2 * half
    raise ValueError(f"no block {kind!r}")


def _classic(rng: random.Random, resolution: int) -> tuple[nn.Module, int, str]:
    """A wide network of dense 3×3 layers, as the classic families are built: a 7×7 stem (and a max pool), then
    stages that double the channels and halve the side, of residual pairs of 3×3 layers or of plain 3×3 stacks
    (with or without BatchNorm), and a classifier of one or two linear layers."""
    c = rng.choice((48, 64, 96))
    layers: list[nn.Module] = _conv_bn(3, c, 7, 2, 1, nn.ReLU) + ([nn.MaxPool2d(3, 2, 1)] if rng.random() < 0.5 else [])
    residual, norm = rng.random() < 0.5, rng.random() < 0.7
    stages = rng.randint(2, 4)
    for stage in range(stages):
        c_out = min(512, c * 2) if stage else c
        for i in range(rng.randint(1, 3)):
            stride = 2 if stage and i == 0 else 1
            if residual:
                body = nn.Sequential(*_conv_bn(c, c_out, 3, stride, 1, nn.ReLU), *_conv_bn(c_out, c_out, 3, 1, 1, None))
                layers += [_Residual(body) if stride == 1 and c == c_out else body, nn.ReLU()]
            else:
                if stride == 2:
                    layers.append(nn.MaxPool2d(2, 2))
                conv = nn.Conv2d(c, c_out, 3, 1, 1, bias=not norm)
                layers += [conv, nn.BatchNorm2d(c_out), nn.ReLU()] if norm else [conv, nn.ReLU()]
            c = c_out
    hidden = rng.choice((0, 1024, 4096))
    head = [nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, 1000)] if hidden else [nn.Linear(c, 1000)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head]
    style = "residual" if residual else "plain"
    return nn.Sequential(*layers).eval(), resolution, f"classic {style}, {stages} stages @{resolution}"


def _network(rng: random.Random) -> tuple[nn.Module, int, str]:
    resolution = rng.choice(_RESOLUTIONS)
    if rng.random() < CLASSIC:
        return _classic(rng, resolution)
    c, act = rng.choice((8, 12, 16, 24, 32, 48, 64)), rng.choice(_ACTIVATIONS)
    layers, side, blocks = _conv_bn(3, c, 3, 2, 1, act), resolution // 2, 0
    for _ in range(rng.randint(3, 8)):  # stages: one block drawn, then repeated with the same shapes
        kind, repeats = rng.choice(_BLOCKS), rng.randint(1, 4)
        if kind == "pool":
            if side > 7:
                layers.append(rng.choice((nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, 2))))
                side //= 2
            continue
        stride = 2 if side > 7 and rng.random() < 0.4 else 1
        c_out, shapes = min(1024, max(8, int(c * rng.choice((1, 1, 1.5, 2))))), rng.random()
        for i in range(repeats):
            block, c = _block(kind, c, c_out, stride if i == 0 else 1, act, random.Random(shapes))
            layers += block
            blocks += 1
        side = (side + 1) // 2 if stride == 2 else side
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)]
    return nn.Sequential(*layers).eval(), resolution, f"{blocks} blocks @{resolution}"


@dataclass(frozen=True)
class Network:
    """One synthetic network of the calibration: its name, input side and builder."""

    name: str
    resolution: int
    build: Callable[[], nn.Module]


def network_suite(count: int = NETWORKS, seed: int = 0) -> list[Network]:
    """``count`` synthetic networks drawn by ``random.Random(seed)``: the same on every machine."""
    rng = random.Random(seed)
    networks = []
    for i in range(count):
        draw = rng.randrange(2**31)
        _, resolution, description = _network(random.Random(draw))
        networks.append(Network(f"net{i:02d} ({description})", resolution,
                                lambda draw=draw: _network(random.Random(draw))[0]))  # fmt: skip
    return networks


def time_networks(
    drawn: Sequence[Network],
    target: Target,
    progress: Callable[[Sequence[Network], str], Iterable[Network]] = lambda items, desc: items,
    timing: Timing = REPORT_TIMING,
) -> pd.DataFrame:
    """Each network's median latency on an eager ``target``, timed as the report times a zoo model."""
    rows = []
    for network in progress(drawn, "networks"):
        timed = measure(network.build(), target, resolution=network.resolution, timing=timing, name=network.name)
        rows.append({"network": network.name, "resolution": network.resolution, "measured_ms": timed.median_ms})
    return pd.DataFrame(rows, columns=["network", "resolution", "measured_ms"])
