"""ShuffleNet (v1): groups g ∈ {1, 2, 3, 4, 8} × widths 0.25×, 0.5×, 1×, 1.5×, 2×.

Zhang, Zhou, Lin & Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
arXiv 1707.01083 (CVPR 2018). The stage table is the paper's Table 1 (1×, one column per g); the unit is its
Figure 2(b) (stride 1) and 2(c) (stride 2); published figures are Tables 1, 2 and 5.

No library ships a reference implementation (neither torchvision nor timm), so module names are our own, after the
paper's layer names (``conv1``, ``maxpool``, ``stage2``–``stage4``, ``fc``). Where the paper is silent, the choice
and its reason sit beside the code: the stem width of the scaled models (:data:`SCALES`), channel rounding
(:func:`scale`), the channel shuffle for g=1 and in Stage2's first unit (:class:`ShuffleV1Unit`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._layers import ChannelShuffle, ConvBNAct, init_weights, make_divisible
from ._registry import Paper, Published, register_variant

__all__ = [
    "ShuffleV1Stage",
    "ShuffleNetV1Spec",
    "SHUFFLENET_V1_1X",
    "Scale",
    "SCALES",
    "scale",
    "ShuffleV1Unit",
    "ShuffleNetV1",
    "build_shufflenet_v1",
]

PAPER = Paper("ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices", "1707.01083", 2017)

GROUPS = (1, 2, 3, 4, 8)


@dataclass(frozen=True)
class ShuffleV1Stage:
    """One stage row of the paper's Table 1: a stride-2 unit, then ``repeats - 1`` stride-1 units."""

    out: int  # output channels; the bottleneck of every unit in the stage is out/4 (SN1 §3.3)
    repeats: int  # units, the first with stride 2


@dataclass(frozen=True)
class ShuffleNetV1Spec:
    """A whole network as data: groups of the pointwise convs, stem width, stages."""

    groups: int  # g, the groups of every 1×1 conv but Stage2's first
    stem: int  # Conv1 3×3 stride 2, then MaxPool 3×3 stride 2
    stages: tuple[ShuffleV1Stage, ...]  # named Stage2, Stage3, ... as in the paper


# SN1 Table 1 (1×, input 224): Stage2/3/4 output channels per g; repeats 1 + 3, 1 + 7, 1 + 3 (4 / 8 / 4) at every g;
# output sizes 28×28, 14×14, 7×7. The complexity row each column must give: 143 / 140 / 137 / 133 / 137 MFLOPs.
_TABLE1_OUT: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
_TABLE1_REPEATS = (4, 8, 4)

SHUFFLENET_V1_1X: dict[int, ShuffleNetV1Spec] = {
    g: ShuffleNetV1Spec(
        groups=g,
        stem=24,
        stages=tuple(ShuffleV1Stage(out=c, repeats=r) for c, r in zip(outs, _TABLE1_REPEATS, strict=True)),
    )
    for g, outs in _TABLE1_OUT.items()
}


@dataclass(frozen=True)
class Scale:
    """One "ShuffleNet s×" member: stage widths multiplied by ``width``; the stem set on its own (see SCALES)."""

    width: float  # s
    stem: int  # Conv1 width before rounding to a multiple of g


# The paper says only that s× "scales the number of filters in ShuffleNet 1× by s times", so complexity is roughly
# s² times 1×'s (§4.1.1); it gives no stem width for s ≠ 1. Scaling the stem with s does not give the paper's
# figures: 24·0.25 = 6 counts 11.0 MFLOPs at 0.25× (g=3) where Table 2 prints 13, and 24·1.5 = 36 counts 299.6 at
# 1.5× where Table 5 prints 292. The stems of the authors' own implementation (megvii-model/ShuffleNet-Series,
# ShuffleNetV1/network.py: 12 / 24 / 24 / 48 at 0.5× / 1× / 1.5× / 2×) give 37.6, 137.5, 292.4 and 524.0 MFLOPs
# at g=3, against the paper's 38, 137, 292 and 524; 0.25× (not in that code) takes the same 12, which counts 13.3
# against the paper's 13. tests/test_shufflenet.py prints the whole comparison.
SCALES: dict[str, Scale] = {
    "0_25": Scale(width=0.25, stem=12),
    "0_5": Scale(width=0.5, stem=12),
    "1_0": Scale(width=1.0, stem=24),
    "1_5": Scale(width=1.5, stem=24),
    "2_0": Scale(width=2.0, stem=48),
}


def scale(spec: ShuffleNetV1Spec, width: float, stem: int) -> ShuffleNetV1Spec:
    """A scaled table; pure, so every member's channels exist as a value.

    Stage widths: ``make_divisible(c · width, 4·g)`` (nearest multiple of 4·g, never 10% below), so the bottleneck and
    the output split evenly into g groups. Table 1's own widths are all multiples of 4·g, so 1× is unchanged.

    Stem: the largest multiple of g not above ``stem`` (at least g). A stride-2 unit's branch gives out − in channels
    from a g-group conv, so Stage2's input (the stem) must be a multiple of g too. Only g=8 at 0.25× and 0.5× is
    affected (12 → 8): rounding down keeps those members within the paper's budget (12.4 and 36.6 MFLOPs against
    13 and 38; 16 would count 15.7 at 0.25×, 21% over).
    """
    g = spec.groups
    return ShuffleNetV1Spec(
        groups=g,
        stem=max(g, stem // g * g),
        stages=tuple(ShuffleV1Stage(out=make_divisible(s.out * width, 4 * g), repeats=s.repeats) for s in spec.stages),
    )


class ShuffleV1Unit(nn.Module):
    """The ShuffleNet unit (SN1 Fig. 2b/c).

    1×1 group conv (bottleneck) → BN → ReLU → channel shuffle → 3×3 depthwise (stride 1 or 2) → BN → 1×1 group conv
    → BN. No ReLU after the depthwise conv (§3.2). Stride 1: add the input, then ReLU. Stride 2: concatenate a 3×3
    average pool (stride 2) of the input, so the branch gives out − in channels.

    ``first_groups`` is the groups of the first 1×1 conv: 1 in Stage2's first unit, whose input has only the stem's
    channels (§3.3), g elsewhere. The shuffle is kept there too: after an ungrouped conv it is a fixed permutation
    that the conv's weights absorb, so it changes nothing the network can compute, and every unit stays the same.
    For g=1 there is no shuffle module at all (``nn.Identity``): it would be an identity permutation, and leaving it
    out keeps a no-op copy out of latency measurements.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int, first_groups: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"a ShuffleNet unit has stride 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"a stride-1 unit keeps its width, got {in_channels} → {out_channels}")
        bottleneck = out_channels // 4  # of the unit's output, also in stride-2 units (not of out − in)
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        if bottleneck % groups or branch_out % groups or in_channels % first_groups:
            raise ValueError(
                f"widths {in_channels} → {out_channels} do not split into {groups} groups; "
                f"round stage widths to a multiple of 4·g"
            )
        self.stride = stride
        self.compress = ConvBNAct(in_channels, bottleneck, 1, groups=first_groups)
        self.shuffle: nn.Module = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvBNAct(bottleneck, bottleneck, 3, stride, groups=bottleneck, act=None)
        self.expand = ConvBNAct(bottleneck, branch_out, 1, groups=groups, act=None)
        self.shortcut: nn.Module = nn.AvgPool2d(3, 2, padding=1) if stride == 2 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.expand(self.depthwise(self.shuffle(self.compress(x))))
        if self.stride == 1:
            out += x  # in place: one activation buffer fewer
            return self.relu(out)
        # ReLU after the concatenation, applied to the branch only: the pooled input is already non-negative (every
        # unit and the stem end in ReLU), so ReLU would leave it unchanged.
        return torch.cat((self.shortcut(x), self.relu(out)), dim=1)


class ShuffleNetV1(nn.Module):
    """Conv1 → MaxPool → Stage2…StageN → global average pool → FC (SN1 Table 1).

    Initialisation: :func:`init_weights` (He normal, fan-out, for convs; BN 1/0), with the FC normal(0, 0.01), as in
    the authors' implementation; the paper states none.
    """

    def __init__(self, spec: ShuffleNetV1Spec, num_classes: int = 1000) -> None:
        super().__init__()
        self.spec = spec
        self.resolution = 224
        g = spec.groups
        self.conv1 = ConvBNAct(3, spec.stem, 3, 2)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stage_names: list[str] = []
        channels = spec.stem
        for i, stage in enumerate(spec.stages, start=2):  # the paper numbers stages from 2 (Conv1 is 1)
            units = [ShuffleV1Unit(channels, stage.out, 2, g, first_groups=1 if i == 2 else g)]
            units += [ShuffleV1Unit(stage.out, stage.out, 1, g, first_groups=g) for _ in range(stage.repeats - 1)]
            self.add_module(f"stage{i}", nn.Sequential(*units))
            self.stage_names.append(f"stage{i}")
            channels = stage.out
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self, linear_std=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        for name in self.stage_names:
            x = self.get_submodule(name)(x)
        return self.fc(x.mean((2, 3)))  # global average pool


def build_shufflenet_v1(groups: int, width: str, num_classes: int = 1000) -> ShuffleNetV1:
    """The one builder: Table 1's column for ``groups``, scaled by the :data:`SCALES` row ``width`` ("0_25"…"2_0")."""
    if groups not in SHUFFLENET_V1_1X:
        raise ValueError(f"ShuffleNet groups must be one of {GROUPS}, got {groups}")
    if width not in SCALES:
        raise ValueError(f"unknown ShuffleNet width {width!r}; choose one of {', '.join(SCALES)}")
    s = SCALES[width]
    return ShuffleNetV1(scale(SHUFFLENET_V1_1X[groups], s.width, s.stem), num_classes=num_classes)


# Published figures. SN1 reports top-1 error: top-1 = 100 − err. FLOPs are multiply-adds ("the number of
# floating-point multiplication-adds", SN1 §4). SN1 gives no parameter counts.
_TABLE2_ERR: dict[str, dict[int, float]] = {  # SN1 Table 2, top-1 err %
    "1_0": {1: 33.6, 2: 32.7, 3: 32.6, 4: 32.8, 8: 32.4},
    "0_5": {1: 45.1, 2: 44.4, 3: 43.2, 4: 41.6, 8: 42.3},
    "0_25": {1: 57.1, 2: 56.8, 3: 55.0, 4: 54.2, 8: 52.7},
}
# 1×: Table 1's complexity row, per g (Table 2 rounds the row to 140). 0.5×, 0.25×: Table 2, one figure for every g.
_MFLOPS: dict[str, dict[int, float]] = {
    "1_0": {1: 143, 2: 140, 3: 137, 4: 133, 8: 137},
    "0_5": dict.fromkeys(GROUPS, 38),
    "0_25": dict.fromkeys(GROUPS, 13),
}
_T5 = "ShuffleNet (1707.01083), Table 5 (MFLOPs, top-1 = 100 − err); params: MobileNetV2 (1801.04381), Table 4"


def _published(width: str, groups: int) -> Published:
    if width in _TABLE2_ERR:
        flops_table = "Table 1" if width == "1_0" else "Table 2"
        source = f"ShuffleNet (1707.01083): MFLOPs from {flops_table}, top-1 = 100 − err from Table 2"
        top1 = round(100.0 - _TABLE2_ERR[width][groups], 1)
        return Published(source, top1=top1, flops=_MFLOPS[width][groups] * 1e6)
    if groups == 3 and width == "1_5":
        return Published(_T5, top1=round(100.0 - 28.5, 1), params=3.4e6, flops=292e6)
    if groups == 3 and width == "2_0":
        return Published(_T5, top1=round(100.0 - 26.3, 1), params=5.4e6, flops=524e6)
    return Published("ShuffleNet (1707.01083): no figures for this member (1.5× and 2× only at g=3, Table 5)")


# The authors' re-trained PyTorch weights (megvii-model/ShuffleNet-Series README), kept apart from the paper's; the
# README's "Top-1" is an error rate. Only the member the project's reference notes quote.
_MEGVII = "megvii-model/ShuffleNet-Series README (re-trained PyTorch weights); top-1 = 100 − err"
REFERENCE_FIGURES: dict[tuple[str, int], Published] = {
    ("1_0", 3): Published(_MEGVII, top1=round(100.0 - 32.2, 1), flops=138e6),
}


def _shufflenet_v1_builder(member: tuple[int, str], /, num_classes: int = 1000) -> ShuffleNetV1:
    groups, width = member
    return build_shufflenet_v1(groups, width, num_classes)


for _groups in GROUPS:
    for _width, _scale in SCALES.items():
        register_variant(
            f"shufflenet_v1_g{_groups}_x{_width}",
            _shufflenet_v1_builder,
            (_groups, _width),
            family="shufflenet_v1",
            paper=PAPER,
            published=_published(_width, _groups),
            reference=None,  # neither torchvision nor timm has ShuffleNet v1
            reference_figures=REFERENCE_FIGURES.get((_width, _groups)),
            variant={
                "groups": _groups,
                "width": _scale.width,
                "stem": scale(SHUFFLENET_V1_1X[_groups], _scale.width, _scale.stem).stem,
            },
        )
