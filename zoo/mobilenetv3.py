"""MobileNetV3-Large and -Small, at any width multiplier.

Howard et al., "Searching for MobileNetV3", arXiv 1905.02244. The block tables are the paper's Table 1 (Large) and
Table 2 (Small), transcribed here from torchvision's ``_mobilenet_v3_conf`` (which follows those tables), because
torchvision's checkpoints are the format we load with ``strict=True``. Published figures are Table 3 of the latest
arXiv version (an earlier one printed 66M / 2.9M for Small; see reference/papers.md §3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from ._layers import ConvBNAct, SqueezeExcite, init_weights, inverted_residual_layers, make_divisible
from ._registry import Paper, Published, register_variant

__all__ = [
    "Bneck",
    "MobileNetV3Spec",
    "MOBILENET_V3_LARGE",
    "MOBILENET_V3_SMALL",
    "MOBILENET_V3_VARIANTS",
    "scale",
    "InvertedResidualSE",
    "MobileNetV3",
    "build_mobilenet_v3",
]

PAPER = Paper("Searching for MobileNetV3", "1905.02244", 2019)

# The paper's nonlinearity column: RE = ReLU, HS = h-swish, x · ReLU6(x + 3) / 6, which is nn.Hardswish.
ACTIVATIONS: dict[str, type[nn.Module]] = {"RE": nn.ReLU, "HS": nn.Hardswish}


@dataclass(frozen=True)
class Bneck:
    """One "bneck" row of Tables 1–2: a mobile inverted bottleneck (the MobileNetV2 block, with optional SE)."""

    kernel: int  # depthwise kernel size
    expanded: int  # "exp size": width after the 1×1 expansion (no expansion conv when equal to the input width)
    out: int  # "#out"
    se: bool  # squeeze-and-excite after the depthwise conv
    act: Literal["RE", "HS"]  # "NL"
    stride: int  # "s", of the depthwise conv


@dataclass(frozen=True)
class MobileNetV3Spec:
    """A whole network as data: stem width, bneck rows, head width and the width of the hidden classifier layer."""

    stem: int  # 3×3 conv, stride 2, h-swish
    rows: tuple[Bneck, ...]
    head: int  # 1×1 conv after the last bneck, h-swish, then the global pool
    last: int  # the "1×1 conv, NBN" after the pool (a linear layer here, as in torchvision), h-swish


# MobileNetV3-Large, the paper's Table 1 (input 224×224). Comments give each row's input size.
MOBILENET_V3_LARGE = MobileNetV3Spec(
    stem=16,  # 224×224×3
    rows=(
        Bneck(kernel=3, expanded=16, out=16, se=False, act="RE", stride=1),  # 112×112×16
        Bneck(kernel=3, expanded=64, out=24, se=False, act="RE", stride=2),  # 112×112×16
        Bneck(kernel=3, expanded=72, out=24, se=False, act="RE", stride=1),  # 56×56×24
        Bneck(kernel=5, expanded=72, out=40, se=True, act="RE", stride=2),  # 56×56×24
        Bneck(kernel=5, expanded=120, out=40, se=True, act="RE", stride=1),  # 28×28×40
        Bneck(kernel=5, expanded=120, out=40, se=True, act="RE", stride=1),  # 28×28×40
        Bneck(kernel=3, expanded=240, out=80, se=False, act="HS", stride=2),  # 28×28×40
        Bneck(kernel=3, expanded=200, out=80, se=False, act="HS", stride=1),  # 14×14×80
        Bneck(kernel=3, expanded=184, out=80, se=False, act="HS", stride=1),  # 14×14×80
        Bneck(kernel=3, expanded=184, out=80, se=False, act="HS", stride=1),  # 14×14×80
        Bneck(kernel=3, expanded=480, out=112, se=True, act="HS", stride=1),  # 14×14×80
        Bneck(kernel=3, expanded=672, out=112, se=True, act="HS", stride=1),  # 14×14×112
        Bneck(kernel=5, expanded=672, out=160, se=True, act="HS", stride=2),  # 14×14×112
        Bneck(kernel=5, expanded=960, out=160, se=True, act="HS", stride=1),  # 7×7×160
        Bneck(kernel=5, expanded=960, out=160, se=True, act="HS", stride=1),  # 7×7×160
    ),
    head=960,  # 7×7×160 → 7×7×960
    last=1280,
)

# MobileNetV3-Small, the paper's Table 2 (input 224×224).
MOBILENET_V3_SMALL = MobileNetV3Spec(
    stem=16,  # 224×224×3
    rows=(
        Bneck(kernel=3, expanded=16, out=16, se=True, act="RE", stride=2),  # 112×112×16
        Bneck(kernel=3, expanded=72, out=24, se=False, act="RE", stride=2),  # 56×56×16
        Bneck(kernel=3, expanded=88, out=24, se=False, act="RE", stride=1),  # 28×28×24
        Bneck(kernel=5, expanded=96, out=40, se=True, act="HS", stride=2),  # 28×28×24
        Bneck(kernel=5, expanded=240, out=40, se=True, act="HS", stride=1),  # 14×14×40
        Bneck(kernel=5, expanded=240, out=40, se=True, act="HS", stride=1),  # 14×14×40
        Bneck(kernel=5, expanded=120, out=48, se=True, act="HS", stride=1),  # 14×14×40
        Bneck(kernel=5, expanded=144, out=48, se=True, act="HS", stride=1),  # 14×14×48
        Bneck(kernel=5, expanded=288, out=96, se=True, act="HS", stride=2),  # 14×14×48
        Bneck(kernel=5, expanded=576, out=96, se=True, act="HS", stride=1),  # 7×7×96
        Bneck(kernel=5, expanded=576, out=96, se=True, act="HS", stride=1),  # 7×7×96
    ),
    head=576,  # 7×7×96 → 7×7×576
    last=1024,
)

# Table 3 of the latest arXiv version (top-1 %, params, multiply-adds "MAdds" as printed); torchvision's own figures
# (IMAGENET1K_V1 weights, ``_ops`` in multiply-adds at crop 224) kept apart.
_T3 = "MobileNetV3 (latest arXiv version), Table 3"
_TV = "torchvision 0.29, MobileNet_V3_{}_Weights.IMAGENET1K_V1 (crop 224)"
MOBILENET_V3_VARIANTS: dict[str, tuple[MobileNetV3Spec, Published, Published]] = {
    "mobilenet_v3_large": (
        MOBILENET_V3_LARGE,
        Published(_T3, 75.2, None, 5.4e6, 219e6),
        Published(_TV.format("Large"), 74.042, 91.340, 5_483_032, 0.217e9),
    ),
    "mobilenet_v3_small": (
        MOBILENET_V3_SMALL,
        Published(_T3, 67.4, None, 2.5e6, 56e6),
        Published(_TV.format("Small"), 67.668, 87.402, 2_542_856, 0.057e9),
    ),
}


def scale(spec: MobileNetV3Spec, width: float) -> MobileNetV3Spec:
    """Apply a width multiplier; pure, so the scaled table exists as a value.

    Every width, expanded ones and ``last`` included, becomes ``make_divisible(c · width, 8)``. The head stays six
    times the last bneck's output (960 = 6 · 160, 576 = 6 · 96), as torchvision computes it; rounding 960 · width
    on its own would differ at some widths (0.33: 320, not 6 · 56 = 336).
    """
    if width <= 0:
        raise ValueError(f"width multiplier must be > 0, got {width}")
    head_ratio = spec.head // spec.rows[-1].out
    rows = tuple(
        replace(r, expanded=make_divisible(r.expanded * width), out=make_divisible(r.out * width)) for r in spec.rows
    )
    return MobileNetV3Spec(
        stem=make_divisible(spec.stem * width),
        rows=rows,
        head=head_ratio * rows[-1].out,
        last=make_divisible(spec.last * width),
    )


class InvertedResidualSE(nn.Module):
    """The MobileNetV3 bneck: MobileNetV2's inverted residual with an optional SE after the depthwise conv.

    The layers sit in ``block``, each a conv-BN(-act) triple, as in torchvision's checkpoints.
    """

    def __init__(self, in_channels: int, row: Bneck, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        act = ACTIVATIONS[row.act]
        se = None
        if row.se:
            # Squeeze width: a quarter of the *expanded* channels, rounded to 8 (the paper ties it to the expansion
            # layer; torchvision rounds with make_divisible). EfficientNet takes a quarter of the block's *input*
            # channels instead, unrounded. The gate is hard-sigmoid, ReLU6(x + 3) / 6.
            se = SqueezeExcite(row.expanded, make_divisible(row.expanded // 4), act=nn.ReLU, gate=nn.Hardsigmoid)
        self.block = nn.Sequential(
            *inverted_residual_layers(in_channels, row.expanded, row.out, row.kernel, row.stride, act, norm, se)
        )
        self.use_residual = row.stride == 1 and in_channels == row.out

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_residual:
            out += x  # in place, as torchvision: one activation buffer fewer
        return out


class MobileNetV3(nn.Module):
    """Stem → bnecks → 1×1 head → global pool → linear → h-swish → dropout → linear.

    ``features`` is flat as in torchvision: the stem (index 0), every bneck, the head (last index). The paper's two
    "1×1 conv, NBN" layers after the pool act on a 1×1 map, so they are linear layers (torchvision's ``classifier``
    indices 0 and 3).
    """

    def __init__(
        self,
        spec: MobileNetV3Spec,
        resolution: int = 224,
        num_classes: int = 1000,
        dropout: float = 0.2,
        norm_eps: float = 1e-3,
        norm_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.resolution = resolution

        norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=norm_momentum)

        features: list[nn.Module] = [ConvBNAct(3, spec.stem, 3, 2, norm=norm, act=nn.Hardswish)]
        channels = spec.stem
        for row in spec.rows:
            features.append(InvertedResidualSE(channels, row, norm))
            channels = row.out
        features.append(ConvBNAct(channels, spec.head, 1, norm=norm, act=nn.Hardswish))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(spec.head, spec.last),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout, inplace=True),
            nn.Linear(spec.last, num_classes),
        )
        init_weights(self, linear_std=0.01)  # torchvision: linear weights normal(0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_mobilenet_v3(
    spec: MobileNetV3Spec,
    width: float = 1.0,
    num_classes: int = 1000,
    dropout: float = 0.2,
    norm_eps: float = 1e-3,
    norm_momentum: float = 0.01,
) -> MobileNetV3:
    """MobileNetV3 from a table (``MOBILENET_V3_LARGE`` or ``MOBILENET_V3_SMALL``) at any width multiplier."""
    return MobileNetV3(scale(spec, width), 224, num_classes, dropout, norm_eps, norm_momentum)


# The registered builders take no width (build_mobilenet_v3 does): BatchNorm eps 1e-3 / momentum 0.01 (the
# TensorFlow values) and dropout 0.2, as torchvision: its weights were trained so, and other values change eval
# outputs with the same weights.
def _mobilenet_v3_builder(
    spec: MobileNetV3Spec,
    /,
    num_classes: int = 1000,
    dropout: float = 0.2,
    norm_eps: float = 1e-3,
    norm_momentum: float = 0.01,
) -> MobileNetV3:
    return build_mobilenet_v3(spec, 1.0, num_classes, dropout, norm_eps, norm_momentum)


for _name, (_spec, _published, _figures) in MOBILENET_V3_VARIANTS.items():
    register_variant(
        _name,
        _mobilenet_v3_builder,
        _spec,
        family="mobilenet_v3",
        paper=PAPER,
        published=_published,
        reference=f"torchvision:{_name}",
        reference_figures=_figures,
        variant={"width": 1.0},
    )
