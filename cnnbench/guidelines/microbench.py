"""ShuffleNetV2's four guidelines (Ma et al., arXiv 1807.11164, §2) as microbenchmarks on a target.

Each guideline is a controlled experiment: ten identical blocks stacked on a 56×56 input, FLOPs (multiply-adds)
held nearly constant down each table, speed measured at three channel scales (×1, ×2, ×4: every channel count
doubled, then doubled again; the paper's columns). The tables below transcribe SN2 Tables 1–4 with the paper's own
channel numbers and speeds: the GPU column's channels are run on a GPU target (cuda, mps), the ARM/CPU column's on
the CPU, and each row is shown beside the paper's figure from that same column.

Where the paper is silent, the choices are:

- batch: 1 on the CPU, 8 on a GPU (the batch sizes of the paper's Fig. 1); an option everywhere;
- no BatchNorm and no conv bias: the paper runs with "full optimisation, including tensor fusion", where BN folds
  into the conv; G4 measures ReLU and the shortcut alone;
- G3's parallel blocks join their branches by concatenation (GoogLeNet-style multi-path, the paper's example of
  fragmentation): each of k branches is a 1×1 conv c → c/k, so a k-fragment-parallel block has exactly the
  1-fragment block's FLOPs, and the join moves data without arithmetic (a sum would add element-wise work, which
  is G4's subject). Series blocks chain k 1×1 convs c' → c' with c' = c/√k rounded to the nearest FLOPs;
- G4's bottleneck has the ResNet expansion of 4: c → c/4 (1×1), c/4 → c/4 (3×3), c/4 → c (1×1), ReLU after
  each conv (the last after the shortcut's add), so c is the unit's input and output width;
- weights are drawn with variance 1/fan-in (activations neither vanish into denormals nor blow up over 40 convs).

Speeds are compared in interleaved rounds: every configuration of a table (one guideline at one scale) is warmed up,
then timed for a slice of ``min_time`` in turn, A B C D, A B C D, ..., :data:`ROUNDS` times, so that a machine whose
speed drifts (this one's drifted 2.5× within an hour) slows all of them alike. Each configuration's time is the
median of its round medians; each speed ratio is the median of the per-round ratios, with a 95% bootstrap interval
over the rounds. :mod:`cnnbench.guidelines.verdicts` judges the paper's orderings by those intervals.

The paper's own channel numbers do not hold FLOPs exactly equal: in Table 1, (22, 44) has 5.5% fewer FLOPs than
(32, 32), and Table 2's (180, g=2) 1.1% fewer than (128, g=1); its CPU c = 180 for g = 8 is not divisible by 8 (184
runs there). The counted FLOPs and their ratio to the baseline row are in every row, so a reader sees the difference.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

import pandas as pd
import torch
from torch import Tensor, nn

from cnnbench.errors import CnnbenchError
from cnnbench.measure.disturbance import watch
from cnnbench.measure.forward import forward_on, running
from cnnbench.measure.latency import Timing, time_iterations, warm_up
from cnnbench.measure.profiling import profile
from cnnbench.stats import Interval, paired_ratio_interval
from cnnbench.target import Target, describe, resolve_target

__all__ = [
    "PointwisePair",
    "GroupPointwise",
    "Fragments",
    "Bottleneck",
    "PaperRow",
    "PAPER_COLUMNS",
    "Guideline",
    "GUIDELINES",
    "Case",
    "SIDE",
    "BLOCKS",
    "SCALES",
    "ROUNDS",
    "QUICK_ROUNDS",
    "cases",
    "build_stack",
    "countable_stack",
    "count_case",
    "prepared_forward",
    "time_table",
    "run_table",
    "speed_ratio",
    "results_frame",
    "pair_ratio",
    "speed_texts",
    "default_batch",
    "paper_column",
]

SIDE = 56  # input side of every microbenchmark (SN2 §2)
BLOCKS = 10  # blocks stacked per network (SN2 §2)
SCALES = (1, 2, 4)  # the ×1, ×2, ×4 columns: channel counts multiplied by the scale
ROUNDS = 7  # interleaved rounds per table: 7 gave stable verdicts here where one pass per configuration flipped
QUICK_ROUNDS = 3


def _conv1x1(c_in: int, c_out: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, groups=groups, bias=False)


# --- blocks: one frozen dataclass per block type, each able to build itself ----------------------------------------


class Block(Protocol):
    @property
    def in_channels(self) -> int: ...
    def scaled(self, factor: int) -> Block: ...
    def channels(self) -> str: ...
    def build(self) -> nn.Module: ...


class _Scaled:
    """The ×2 and ×4 columns of a block dataclass: every channel count (the fields named in ``widths``) multiplied
    by the scale; the rest (groups, fragments, ReLU, shortcut) kept."""

    widths: ClassVar[tuple[str, ...]] = ("c",)

    def scaled(self, factor: int) -> Block:
        return replace(self, **{name: getattr(self, name) * factor for name in self.widths})


@dataclass(frozen=True)
class PointwisePair(_Scaled):
    """G1's block: a 1×1 conv c1 → c2, then a 1×1 conv c2 → c1."""

    widths = ("c1", "c2")
    c1: int
    c2: int

    @property
    def in_channels(self) -> int:
        return self.c1

    def channels(self) -> str:
        return f"{self.c1}→{self.c2}→{self.c1}"

    def build(self) -> nn.Module:
        return nn.Sequential(_conv1x1(self.c1, self.c2), _conv1x1(self.c2, self.c1))


@dataclass(frozen=True)
class GroupPointwise(_Scaled):
    """G2's block: one 1×1 group convolution c → c with ``groups`` groups.

    ``c`` is the paper's number; the block runs ``c`` rounded up to a multiple of ``groups``. Only one cell needs
    it: Table 2 prints c = 180 for g = 8 on the CPU, which 8 does not divide, so 184 runs there (FLOPs +3.3% over
    g = 1, where 176 would give −5.5%); ×2 and ×4 (360, 720) divide.
    """

    c: int
    groups: int

    @property
    def in_channels(self) -> int:
        return -(-self.c // self.groups) * self.groups

    def channels(self) -> str:
        w = self.in_channels
        return f"{w}→{w}, g={self.groups}"

    def build(self) -> nn.Module:
        return _conv1x1(self.in_channels, self.in_channels, self.groups)


def series_width(c: int, fragments: int) -> int:
    """Width c' of ``fragments`` chained 1×1 convs c' → c' whose FLOPs are nearest those of one conv c → c."""
    exact = c / math.sqrt(fragments)
    return min((math.floor(exact), math.ceil(exact)), key=lambda w: abs(fragments * w * w - c * c))


class ParallelConcat(nn.Module):
    """Branches that all read the block's input, joined by concatenation along channels."""

    def __init__(self, branches: Sequence[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


@dataclass(frozen=True)
class Fragments(_Scaled):
    """G3's block: ``fragments`` 1×1 convs, in series or in parallel; ``c`` is the 1-fragment block's width."""

    c: int
    fragments: int
    parallel: bool

    def __post_init__(self) -> None:
        if self.parallel and self.c % self.fragments:
            raise CnnbenchError(f"a {self.fragments}-fragment-parallel block needs c divisible by it, got {self.c}")

    @property
    def in_channels(self) -> int:
        return self.c if self.parallel else series_width(self.c, self.fragments)

    def channels(self) -> str:
        if self.parallel:
            return f"{self.fragments}× {self.c}→{self.c // self.fragments}, concat"
        w = self.in_channels
        return f"{self.fragments}× {w}→{w}" if self.fragments > 1 else f"{w}→{w}"

    def build(self) -> nn.Module:
        if self.parallel:
            return ParallelConcat([_conv1x1(self.c, self.c // self.fragments) for _ in range(self.fragments)])
        w = self.in_channels
        return nn.Sequential(*[_conv1x1(w, w) for _ in range(self.fragments)])


class BottleneckUnit(nn.Module):
    """ResNet's bottleneck without BatchNorm: 1×1 c → c/4, 3×3 c/4 → c/4, 1×1 c/4 → c, optional ReLU and shortcut."""

    def __init__(self, c: int, relu: bool, shortcut: bool) -> None:
        super().__init__()
        mid = c // 4
        self.conv1 = _conv1x1(c, mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.conv3 = _conv1x1(mid, c)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        if self.shortcut:
            y = y + x
        return self.act(y)


@dataclass(frozen=True)
class Bottleneck(_Scaled):
    """G4's block: the ResNet bottleneck unit with c input and output channels."""

    c: int
    relu: bool
    shortcut: bool

    @property
    def in_channels(self) -> int:
        return self.c

    def channels(self) -> str:
        return f"{self.c}→{self.c // 4}→{self.c // 4}→{self.c}"

    def build(self) -> nn.Module:
        return BottleneckUnit(self.c, self.relu, self.shortcut)


# --- the paper's tables -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperRow:
    """One row of an SN2 table: the ×1 block of each column, and the speeds printed at ×1, ×2, ×4."""

    label: str
    gpu: Block  # the GPU column's ×1 channels
    cpu: Block  # the ARM ("CPU") column's ×1 channels
    gpu_batches_s: tuple[float, float, float]  # GTX 1080Ti, batches/s
    cpu_images_s: tuple[float, float, float]  # Snapdragon 810, one thread, images/s


# What each column of SN2's tables ran on, and the unit of its speeds.
PAPER_COLUMNS = {"gpu": "GTX 1080Ti, batches/s", "cpu": "Snapdragon 810 ARM, 1 thread, img/s"}


@dataclass(frozen=True)
class Guideline:
    key: str
    title: str
    source: str
    rows: tuple[PaperRow, ...]  # the first row is the table's baseline


# SN2 Table 1: c1:c2 at ×1, GPU (c1, c2) and ARM (c1, c2); ×2 and ×4 double the channels.
G1_ROWS = (
    PaperRow("1:1", PointwisePair(128, 128), PointwisePair(32, 32), (1480, 723, 232), (76.2, 21.7, 5.3)),
    PaperRow("1:2", PointwisePair(90, 180), PointwisePair(22, 44), (1296, 586, 206), (72.9, 20.5, 5.1)),
    PaperRow("1:6", PointwisePair(52, 312), PointwisePair(13, 78), (876, 489, 189), (69.1, 17.9, 4.6)),
    PaperRow("1:12", PointwisePair(36, 432), PointwisePair(9, 108), (748, 392, 163), (57.6, 15.1, 4.4)),
)

# SN2 Table 2: g and c at ×1 (GPU c = 128·√g, CPU c = 64·√g, rounded by the paper).
G2_ROWS = (
    PaperRow("g=1", GroupPointwise(128, 1), GroupPointwise(64, 1), (2451, 1289, 437), (40.0, 10.2, 2.3)),
    PaperRow("g=2", GroupPointwise(180, 2), GroupPointwise(90, 2), (1725, 873, 341), (35.0, 9.5, 2.2)),
    PaperRow("g=4", GroupPointwise(256, 4), GroupPointwise(128, 4), (1026, 644, 338), (32.9, 8.7, 2.1)),
    PaperRow("g=8", GroupPointwise(360, 8), GroupPointwise(180, 8), (634, 445, 230), (27.8, 7.5, 1.8)),
)

# SN2 Table 3: GPU c = 128, 256, 512; CPU c = 64, 128, 256 (c is the 1-fragment block's width).
G3_ROWS = (
    PaperRow("1-fragment", Fragments(128, 1, False), Fragments(64, 1, False), (2446, 1274, 434), (40.2, 10.1, 2.3)),
    PaperRow(
        "2-fragment-series", Fragments(128, 2, False), Fragments(64, 2, False), (1790, 909, 336), (38.6, 10.1, 2.2)
    ),
    PaperRow(
        "4-fragment-series", Fragments(128, 4, False), Fragments(64, 4, False), (752, 745, 349), (38.4, 10.1, 2.3)
    ),
    PaperRow(
        "2-fragment-parallel", Fragments(128, 2, True), Fragments(64, 2, True), (1537, 803, 320), (33.4, 9.1, 2.2)
    ),
    PaperRow("4-fragment-parallel", Fragments(128, 4, True), Fragments(64, 4, True), (691, 572, 292), (35.0, 8.4, 2.1)),
)

# SN2 Table 4: c = 32, 64, 128 on both GPU and CPU; the row says whether the unit keeps its ReLUs and its shortcut.
_UNIT = {
    label: Bottleneck(32, relu, shortcut)
    for label, relu, shortcut in (
        ("ReLU+shortcut", True, True),
        ("ReLU only", True, False),
        ("shortcut only", False, True),
        ("neither", False, False),
    )
}
G4_ROWS = (
    PaperRow("ReLU+shortcut", _UNIT["ReLU+shortcut"], _UNIT["ReLU+shortcut"], (2427, 2066, 1436), (56.7, 16.9, 5.0)),
    PaperRow("ReLU only", _UNIT["ReLU only"], _UNIT["ReLU only"], (2647, 2256, 1735), (61.9, 18.8, 5.2)),
    PaperRow("shortcut only", _UNIT["shortcut only"], _UNIT["shortcut only"], (2672, 2121, 1458), (57.3, 18.2, 5.1)),
    PaperRow("neither", _UNIT["neither"], _UNIT["neither"], (2842, 2376, 1782), (66.3, 20.2, 5.4)),
)

GUIDELINES: dict[str, Guideline] = {
    "G1": Guideline("G1", "equal channel width minimises MAC", "SN2 Table 1", G1_ROWS),
    "G2": Guideline("G2", "excessive group convolution increases MAC", "SN2 Table 2", G2_ROWS),
    "G3": Guideline("G3", "network fragmentation reduces parallelism", "SN2 Table 3", G3_ROWS),
    "G4": Guideline("G4", "element-wise operations are non-negligible", "SN2 Table 4", G4_ROWS),
}


# --- cases: one cell of a table, as run on a target ---------------------------------------------------------------


def paper_column(target: Target) -> str:
    """``gpu`` for a GPU target (cuda, mps), ``cpu`` for the CPU: which column's channels and speeds apply."""
    return "cpu" if target.torch_device.type == "cpu" else "gpu"


def default_batch(target: Target) -> int:
    """1 on the CPU, 8 on a GPU: the batch sizes of SN2 Fig. 1 (Tables 1–4 state none)."""
    return 1 if paper_column(target) == "cpu" else 8


@dataclass(frozen=True)
class Case:
    guideline: str
    row: PaperRow
    column: str  # gpu | cpu
    scale: int  # 1, 2 or 4

    @property
    def block(self) -> Block:
        base = self.row.gpu if self.column == "gpu" else self.row.cpu
        return base.scaled(self.scale)

    @property
    def paper_speed(self) -> float:
        speeds = self.row.gpu_batches_s if self.column == "gpu" else self.row.cpu_images_s
        return speeds[SCALES.index(self.scale)]

    @property
    def name(self) -> str:
        return f"{self.guideline}-{self.row.label}-x{self.scale}"


def cases(
    guidelines: Sequence[str] = tuple(GUIDELINES), column: str = "cpu", scales: Sequence[int] = SCALES
) -> list[Case]:
    """Every configuration of the named tables, row by row within each scale."""
    unknown = [g for g in guidelines if g not in GUIDELINES]
    if unknown:
        raise CnnbenchError(f"unknown guideline {unknown[0]!r}; use G1, G2, G3 or G4")
    bad = [s for s in scales if s not in SCALES]
    if bad:
        raise CnnbenchError(f"unknown scale {bad[0]}; the paper's scales are 1, 2 and 4")
    if column not in ("gpu", "cpu"):
        raise CnnbenchError(f"unknown column {column!r}; use gpu or cpu")
    return [Case(g, row, column, s) for g in guidelines for s in scales for row in GUIDELINES[g].rows]


def _init(module: nn.Module, generator: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.weight.device.type != "meta":
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear", generator=generator)  # variance 1/fan-in


def build_stack(block: Block, blocks: int = BLOCKS, device: torch.device | str = "cpu") -> nn.Sequential:
    """``blocks`` copies of ``block`` in sequence, in eval mode, with seeded weights (on meta: shapes only)."""
    with torch.device(device):
        stack = nn.Sequential(*[block.build() for _ in range(blocks)])
    _init(stack, torch.Generator().manual_seed(0))
    return stack.eval()


class _FromImage(nn.Module):
    """Feeds a stack from :func:`cnnbench.profile`'s 3-channel image: the image is replaced by an allocation of the
    stack's own input (``new_empty`` is free in the counting engine), so only the stack's ops are counted."""

    def __init__(self, stack: nn.Module, channels: int) -> None:
        super().__init__()
        self.stack, self.channels = stack, channels

    def forward(self, x: Tensor) -> Tensor:
        return self.stack(x.new_empty((x.shape[0], self.channels, x.shape[2], x.shape[3])))


def countable_stack(block: Block, blocks: int = BLOCKS) -> nn.Module:
    """The block stack on the meta device, fed from an image, as :func:`cnnbench.profile` and the audit take it."""
    return _FromImage(build_stack(block, blocks, device="meta"), block.in_channels)


def count_case(case: Case) -> tuple[int, int]:
    """(FLOPs, MAC) of the case's 10-block stack for one 56×56 image, from the counting engine (meta device)."""
    totals = profile(countable_stack(case.block), resolution=SIDE, batch=1, training_memory=False).totals
    return totals.flops, totals.mac


def prepared_forward(case: Case, target: Target, batch: int) -> Callable[[], object]:
    """One forward of the case's stack on ``target`` (device, layout, backend; dtype by autocast), input made once
    (seeded). Call it inside :func:`~cnnbench.measure.forward.running`; on a GPU it returns unsynchronised."""
    target, _ = resolve_target(target)
    return forward_on(
        build_stack(case.block), target, batch, SIDE, channels=case.block.in_channels, seed=1, copy_model=False
    )


def time_table(
    table: Sequence[Case], target: Target, batch: int, timing: Timing, rounds: int = ROUNDS
) -> list[list[float]]:
    """Per-round median times (ms) of each case of one table, measured in interleaved rounds.

    Every case is built and warmed up first; then each round times every case in turn for ``min_time_s / rounds``
    seconds (at least ``ceil(min_iters / rounds)`` iterations) and keeps the median. Returns one list per case.
    """
    if rounds < 1:
        raise CnnbenchError(f"rounds must be at least 1, got {rounds}")
    target, _ = resolve_target(target)
    device = target.torch_device
    slice_s, slice_iters = timing.min_time_s / rounds, max(1, math.ceil(timing.min_iters / rounds))
    with running(target):
        forwards = [prepared_forward(case, target, batch) for case in table]
        for forward in forwards:
            warm_up(forward, device, timing)
        medians: list[list[float]] = [[] for _ in table]
        for _ in range(rounds):
            for i, forward in enumerate(forwards):
                medians[i].append(statistics.median(time_iterations(forward, device, slice_s, slice_iters)))
    return medians


def _rounds_text(rounds: Sequence[float]) -> str:
    return ";".join(f"{r:.6g}" for r in rounds)


def _rounds_of(row: pd.Series | dict[str, object]) -> list[float]:
    text = row.get("rounds_ms")
    if isinstance(text, str) and text:
        return [float(v) for v in text.split(";")]
    return []


def run_table(
    guideline: str, scale: int, target: Target, batch: int, timing: Timing, rounds: int = ROUNDS
) -> list[dict[str, object]]:
    """Rows of one table at one scale: each configuration, its counted FLOPs and MAC, its median time over the
    interleaved rounds and their per-round medians (``rounds_ms``), its speed, and the paper's speed."""
    if batch < 1:
        raise CnnbenchError(f"batch must be at least 1, got {batch}")
    target, _ = resolve_target(target)
    table = cases([guideline], paper_column(target), [scale])
    with watch(target.threads) as seen:  # one window for the table: its rows are timed interleaved
        times = time_table(table, target, batch, timing, rounds)
    disturbance = seen[0].columns()
    rows = []
    for case, per_round in zip(table, times, strict=True):
        flops, mac = count_case(case)
        median = statistics.median(per_round)
        rows.append(
            {
                "guideline": case.guideline,
                "config": case.row.label,
                "scale": case.scale,
                "channels": case.block.channels(),
                "batch": batch,
                "flops": flops,  # multiply-adds, one image
                "mac": mac,  # elements, one image
                "latency_ms_median": median,
                "batches_s": 1000.0 / median,
                "images_s": 1000.0 * batch / median,
                "rounds": len(per_round),
                "rounds_ms": _rounds_text(per_round),
                "paper_column": case.column,
                "paper_speed": case.paper_speed,  # GPU: batches/s, CPU: images/s
                **disturbance,
            }
        )
    return rows


def speed_ratio(times_a: Sequence[float], times_b: Sequence[float]) -> Interval:
    """Speed of A relative to B from paired per-round times: the median of B/A per round, with its bootstrap
    interval over the rounds (:func:`cnnbench.stats.paired_ratio_interval`: a round's two times are a pair)."""
    return paired_ratio_interval(times_a, times_b)


def pair_ratio(a: pd.Series, b: pd.Series) -> Interval:
    """Speed of row ``a`` relative to row ``b``: from their rounds when both have them, else from ``images_s``."""
    rounds_a, rounds_b = _rounds_of(a), _rounds_of(b)
    if rounds_a and len(rounds_a) == len(rounds_b):
        return speed_ratio(rounds_a, rounds_b)
    point = float(a["images_s"]) / float(b["images_s"])
    return Interval(point, point, point)


def results_frame(rows: Sequence[dict[str, object]], target: Target | None = None) -> pd.DataFrame:
    """Rows of :func:`run_table` as a table, with each row's ratio to its table's first row at the same scale:
    ``speed_vs_base`` with its interval ``speed_vs_base_low``/``_high``."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return frame
    keys = ["guideline", "scale"]
    first = frame.groupby(keys, sort=False).transform("first")
    frame["flops_vs_base"] = frame["flops"] / first["flops"]
    ratios = {
        i: pair_ratio(row, group.iloc[0]) for _, group in frame.groupby(keys, sort=False) for i, row in group.iterrows()
    }
    frame["speed_vs_base"], frame["speed_vs_base_low"], frame["speed_vs_base_high"] = zip(
        *(ratios[i] for i in frame.index), strict=True
    )
    frame["paper_vs_base"] = frame["paper_speed"] / first["paper_speed"]
    if target is not None:
        info = describe(resolve_target(target)[0])
        frame["target"], frame["device_name"], frame["torch"] = info["target"], info["device_name"], info["torch"]
    return frame


def speed_texts(frame: pd.DataFrame) -> list[str]:
    """``speed vs base [95% CI]`` of every row of :func:`results_frame`, as the tables print it."""
    columns = (frame["speed_vs_base"], frame["speed_vs_base_low"], frame["speed_vs_base_high"])
    return [f"{p:.2f} [{lo:.2f}, {hi:.2f}]" for p, lo, hi in zip(*columns, strict=True)]
