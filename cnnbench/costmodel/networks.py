"""The synthetic networks that ``cnnbench calibrate`` times: the kernel suite, timed where kernels run.

An op timed alone, on a warm input, runs faster than the same op inside a network: on a 2-core Xeon, BatchNorm
1.5–1.9×, ReLU 1.7–2.5×, a small classifier 2.0–4.1× and convolutions 1.2–1.3× (the leaves of MobileNetV2,
ShuffleNetV2 and GoogLeNet, each timed alone on its own input shape against its op timed inside the network).
Inside a network the op's weights, code and the dispatcher's tables have been evicted by the ops before it, and it
reads an input another op has just written. So the kernel suite is timed in place: every kernel is an op of a
seeded synthetic network, timed one by one inside a whole forward (:func:`cnnbench.measure.breakdown.time_ops`), and
each network is also timed whole, as the report times a zoo model (:func:`cnnbench.measure.latency.measure`), each
in a process of its own.

Each network is drawn by a seeded generator from the layers the zoo's families are made of and from the design
spaces of the architectures published after them (:mod:`cnnbench.costmodel.blocks`), never a zoo model:

- lightweight (two in three): a strided stem, then 3–7 stages of one block repeated 1–4 times with the same
  shapes: depthwise-separable pairs (3×3 to 9×9), dense 3×3 layers, inverted bottlenecks (with or without
  squeeze-excitation, through a mean or a global pool, sigmoid or hard-sigmoid gate, and a residual add), grouped
  1×1 layers with a channel shuffle (stride 2 joins an average-pooled shortcut by concat), split-and-shuffle
  units, fire modules (squeeze, then 1×1 and 3×3 expands joined by concat), four-branch inception modules; and
  MixNet's mixed depthwise kernels (3 to 9), RepVGG's and MobileOne's training-time branches, Ghost modules,
  DenseNet's and VoVNet's concatenations, RegNet's group-width bottlenecks with a strided 1×1 projection, and
  ConvNeXt's 7×7 depthwise, channels-last LayerNorm and GELU MLP; a wide 1×1 head, a global pool and one or two
  linear layers;
- classic (one in four): a 7×7 or 11×11 stem or a 3×3 one at full size, stages of 3×3 layers (plain with max
  pools, with or without BatchNorm), residual pairs or residual bottlenecks, up to 512 channels, and a global
  classifier or a flattening one whose linear layers read up to 400 MB of weights;
- large (one in sixteen): a shallow lightweight network at 456–600 px, whose maps pass the allocator's mmap
  threshold (fresh pages at every forward).

Channel counts are drawn on the grid of multiples of 8 and off it, odd ones included, as width multipliers make
them; activations are ReLU, ReLU6, SiLU, hard-swish or GELU, in place or not, as the zoo's families write them.
Networks above :data:`MAX_NETWORK_FLOPS` are drawn again, to keep a calibration within minutes on a small CPU.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from cnnbench.costmodel.blocks import Add, ChannelShuffle, activation, conv, light_block, sequence, width
from cnnbench.errors import CnnbenchError
from cnnbench.measure.breakdown import time_ops
from cnnbench.measure.disturbance import Disturbance, Quieting, watch
from cnnbench.measure.isolated import run_isolated
from cnnbench.measure.latency import REPORT_TIMING, Timing, measure
from cnnbench.measure.profiling import profile
from cnnbench.target import Target

__all__ = [
    "NETWORKS",
    "RUNTIME_NETWORKS",
    "default_count",
    "MAX_NETWORK_FLOPS",
    "OP_REPEATS",
    "Network",
    "ChannelShuffle",
    "NetworkTimer",
    "QueuedTimer",
    "network_suite",
    "time_network",
    "time_networks",
]

NETWORKS = 100  # networks per calibration: under two minutes on a 2-core CPU (150 gave no better fit)
# networks per calibration of a deployment runtime (about a minute on 2 cores): eight random halves of a 100-network
# ONNX Runtime calibration fitted 31 held-out models with median errors of 13-23%, the whole 100 with 18%.
RUNTIME_NETWORKS = 50
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


def _light(rng: random.Random, resolution: int) -> nn.Module:
    act = activation(rng)
    c = width(rng.choice((8, 16, 24, 32, 48, 64)) * rng.uniform(0.6, 1.4), rng)
    layers: list[nn.Module] = [sequence(conv(3, c, 3, 2, act=act))]
    side = (resolution + 1) // 2
    if rng.random() < 0.3:
        layers.append(nn.MaxPool2d(3, 2, 1))
        side = (side + 1) // 2
    for _ in range(rng.randint(3, 7)):
        kind, repeats = rng.choice(_LIGHT_BLOCKS), rng.randint(1, 4)
        stride = 2 if side > 7 and rng.random() < 0.5 else 1
        c_out = min(1280, max(8, width(c * rng.choice((1, 1, 1.5, 2)), rng)))
        shapes = rng.random()  # every repeat draws its choices from the same seed: one block, repeated
        for i in range(repeats):
            block, c = light_block(kind, c, c_out, stride if i == 0 else 1, act, random.Random(shapes))
            layers.append(block)
        side = (side + 1) // 2 if stride == 2 else side
        if side > 7 and rng.random() < 0.1:
            layers.append(rng.choice((nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, 2), nn.AvgPool2d(2, 2))))
            side //= 2
    head: list[nn.Module] = []
    if rng.random() < 0.6:
        wide = width(rng.choice((512, 1024, 1280)) * rng.uniform(0.5, 1.5), rng)
        head, c = conv(c, wide, act=act), wide
    head += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if rng.random() < 0.3:
        hidden = rng.choice((1024, 1280))
        head, c = [*head, nn.Linear(c, hidden), act()], hidden
    return sequence(*layers, *head, nn.Dropout(0.2), nn.Linear(c, rng.choice((1000, 1000, 10))))


def _classic(rng: random.Random, resolution: int) -> nn.Module:
    style = rng.choice(("plain", "pairs", "bottleneck"))
    norm = style != "plain" or rng.random() < 0.5
    relu = lambda: nn.ReLU(inplace=rng.random() < 0.8)  # noqa: E731
    c = width(rng.choice((32, 48, 64, 96)), rng)
    stem = rng.choice(("7x7", "11x11", "3x3"))
    if stem == "7x7":  # stride 2 and a 3×3/2 max pool
        layers: list[nn.Module] = [*conv(3, c, 7, 2, act=relu, norm=norm), nn.MaxPool2d(3, 2, 1)]
        side = ((resolution - 1) // 2 + 1 - 1) // 2 + 1
    elif stem == "11x11":  # stride 4, padding 2, and a 3×3/2 max pool without padding
        layers, side = [nn.Conv2d(3, c, 11, 4, 2), relu(), nn.MaxPool2d(3, 2)], ((resolution - 7) // 4 + 1 - 3) // 2 + 1
    else:
        layers, side = conv(3, c, 3, act=relu, norm=norm), resolution
    for stage in range(rng.randint(2, 4)):
        c_out = min(512, width(c * 2, rng)) if stage else c
        for i in range(rng.randint(1, 3)):
            stride = 2 if stage and i == 0 and side > 7 else 1
            if style == "plain":
                layers += ([nn.MaxPool2d(2, 2)] if stride == 2 else []) + conv(c, c_out, 3, act=relu, norm=norm)
            else:
                if style == "pairs":
                    body = sequence(conv(c, c_out, 3, stride, act=relu), conv(c_out, c_out, 3))
                else:
                    mid = max(16, c_out // 4)
                    body = sequence(conv(c, mid, act=relu), conv(mid, mid, 3, stride, act=relu), conv(mid, c_out))
                shortcut = None if stride == 1 and c == c_out else sequence(conv(c, c_out, 1, stride))
                layers.append(Add(body, True, relu(), shortcut))
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
    act = activation(rng)
    c = width(rng.choice((24, 32, 40, 48)), rng)
    layers: list[nn.Module] = [sequence(conv(3, c, 3, 2, act=act))]
    for _ in range(rng.randint(1, 2)):
        block, c = light_block(
            "bottleneck", c, width(c * rng.choice((0.75, 1, 1.5)), rng), 1, act, random.Random(rng.random())
        )
        layers.append(block)
    for _ in range(3):
        block, c = light_block(
            rng.choice(("bottleneck", "separable")), c, width(c * 2, rng), 2, act, random.Random(rng.random())
        )
        layers.append(block)
    return sequence(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000))


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


def default_count(target: Target) -> int:
    """How many networks calibrate ``target`` unless told: :data:`RUNTIME_NETWORKS` on a deployment runtime, else
    :data:`NETWORKS`."""
    return RUNTIME_NETWORKS if target.runtime else NETWORKS


def network_suite(
    count: int = NETWORKS,
    seed: int = 0,
    progress: Callable[[Sequence[int], str], Iterable[int]] = lambda items, desc: items,
) -> list[Network]:
    """``count`` synthetic networks drawn by ``random.Random(seed)``, the same on every machine, each counted on the
    meta device (those above :data:`MAX_NETWORK_FLOPS` are drawn again)."""
    if count < 1:
        raise CnnbenchError(f"--networks must be at least 1, got {count}")
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


class QueuedTimer:
    """Drawn networks waiting to be timed: :meth:`step` times the next few (a report interleaves them with the rows
    it measures), :meth:`time_rest` all that are left; a subclass times one network (:meth:`_time`)."""

    def __init__(self, drawn: Sequence[Network]) -> None:
        self.waiting = list(drawn)

    def step(self, count: int = 1) -> None:
        """Time the next ``count`` networks (none when all are timed)."""
        for network in self.waiting[:count]:
            self._time(network)
        del self.waiting[:count]

    def time_rest(
        self, progress: Callable[[Sequence[Network], str], Iterable[Network]] = lambda items, desc: items
    ) -> None:
        """Time every network left."""
        for network in progress(self.waiting, "networks"):
            self._time(network)
        self.waiting = []

    def _time(self, network: Network) -> None:
        raise NotImplementedError


class NetworkTimer(QueuedTimer):
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
        super().__init__(drawn)
        self.target, self.timing, self.repeats = target, timing, repeats
        self.quieting = quieting or Quieting()
        self.tables: list[pd.DataFrame] = []
        self.rows: list[dict[str, object]] = []

    def finish(
        self,
        progress: Callable[[Sequence[Network], str], Iterable[Network]] = lambda items, desc: items,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Time every network left, then return the per-op table (the counting pass's layers with the network's
        name and each op's ``time_ms``; undisturbed networks only) and the per-network one (``network``,
        ``resolution``, ``measured_ms``, ``ops_ms``: the sum of its ops timed one by one, ``ops``, ``disturbed``,
        ``cpu_share``, ``attempts``), in the order the networks were drawn. Raises :class:`CnnbenchError` when every
        network was disturbed: a cost model fitted on them would publish a machine's busy hour as its speed."""
        self.time_rest(progress)
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
