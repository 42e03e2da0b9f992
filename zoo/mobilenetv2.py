"""MobileNetV2 at any width multiplier, and the inverted-residual block that MobileNetV3 reuses.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", arXiv 1801.04381.
The stage table is the paper's Table 2 (t, c, n, s), as torchvision's ``mobilenet_v2`` also writes it; module names
follow torchvision's, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import Tensor, nn

from ._layers import ConvBNAct, init_weights, inverted_residual_layers, make_divisible
from ._registry import Paper, Published, register_variant

__all__ = [
    "InvertedResidualStage",
    "MobileNetV2Spec",
    "MOBILENET_V2",
    "MOBILENET_V2_VARIANTS",
    "scale",
    "InvertedResidual",
    "MobileNetV2",
    "build_mobilenet_v2",
]

PAPER = Paper("MobileNetV2: Inverted Residuals and Linear Bottlenecks", "1801.04381", 2018)


@dataclass(frozen=True)
class InvertedResidualStage:
    """One row of the paper's Table 2: ``repeats`` bottlenecks with the same shape; ``stride`` applies to the first."""

    expand: int  # t, expansion factor of the first 1×1 conv (t = 1: no expansion conv)
    out: int  # c, output channels
    repeats: int  # n
    stride: int  # s


@dataclass(frozen=True)
class MobileNetV2Spec:
    """A whole network as data: stem width, stages, head width (the 1×1 conv before the pool)."""

    stem: int
    stages: tuple[InvertedResidualStage, ...]
    head: int


# MobileNetV2, the paper's Table 2 (width 1.0, input 224×224). Comments give each stage's input size. Every depthwise
# conv is 3×3 and every activation ReLU6; the 1×1 projection is linear (the "linear bottleneck").
MOBILENET_V2 = MobileNetV2Spec(
    stem=32,  # conv2d 3×3, stride 2, 224 → 112
    stages=(
        InvertedResidualStage(expand=1, out=16, repeats=1, stride=1),  # 112×112×32
        InvertedResidualStage(expand=6, out=24, repeats=2, stride=2),  # 112×112×16
        InvertedResidualStage(expand=6, out=32, repeats=3, stride=2),  # 56×56×24
        InvertedResidualStage(expand=6, out=64, repeats=4, stride=2),  # 28×28×32
        InvertedResidualStage(expand=6, out=96, repeats=3, stride=1),  # 14×14×64
        InvertedResidualStage(expand=6, out=160, repeats=3, stride=2),  # 14×14×96
        InvertedResidualStage(expand=6, out=320, repeats=1, stride=1),  # 7×7×160
    ),
    head=1280,  # conv2d 1×1, 7×7×320 → 7×7×1280, then avgpool 7×7 and the classifier
)

# Width multipliers with the paper's Table 4 figures (top-1 %, params, multiply-adds as printed; the paper counts
# "the total number of Multiply-Adds"). torchvision's own figures (IMAGENET1K_V1 weights) are kept apart.
_T4 = "MobileNetV2, Table 4"
MOBILENET_V2_VARIANTS: dict[str, tuple[float, Published]] = {
    "mobilenet_v2": (1.0, Published(_T4, 72.0, None, 3.4e6, 300e6)),
    "mobilenet_v2_x1_4": (1.4, Published(_T4, 74.7, None, 6.9e6, 585e6)),
}

TORCHVISION_FIGURES: dict[str, Published] = {
    "mobilenet_v2": Published(
        "torchvision 0.29, MobileNet_V2_Weights.IMAGENET1K_V1 (crop 224)", 71.878, 90.286, 3_504_872, 0.301e9
    ),
}


def scale(spec: MobileNetV2Spec, width: float) -> MobileNetV2Spec:
    """Apply the width multiplier; pure, so the scaled table exists as a value.

    Every width becomes ``make_divisible(c · width, 8)``, except the head, which only grows:
    ``make_divisible(1280 · max(1, width), 8)``, so thinner members keep a 1280-wide head (torchvision's rule; it makes
    the 0.5 model's head as wide as the 1.0 model's).
    """
    if width <= 0:
        raise ValueError(f"width multiplier must be > 0, got {width}")
    return MobileNetV2Spec(
        stem=make_divisible(spec.stem * width),
        stages=tuple(replace(s, out=make_divisible(s.out * width)) for s in spec.stages),
        head=make_divisible(spec.head * max(1.0, width)),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2's bottleneck (the paper's Table 1), residual when stride is 1 and the widths match.

    The layers sit in ``conv``; the projection's conv and BatchNorm are its direct children (``conv.2``, ``conv.3``),
    not a nested conv-BN pair, because that is torchvision's checkpoint format.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand: int,
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand))
        *body, project = inverted_residual_layers(in_channels, hidden, out_channels, 3, stride, nn.ReLU6, norm)
        self.conv = nn.Sequential(*body, *project)  # unpacking the projection flattens its conv and BN
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return out + x if self.use_residual else out


class MobileNetV2(nn.Module):
    """Stem → 17 inverted residuals → 1×1 head → global pool → dropout → linear.

    ``features`` is flat as in torchvision: the stem (index 0), every block in order (1–17), the head (18).
    """

    def __init__(
        self,
        spec: MobileNetV2Spec,
        resolution: int = 224,
        num_classes: int = 1000,
        dropout: float = 0.2,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.resolution = resolution

        norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=norm_momentum)

        features: list[nn.Module] = [ConvBNAct(3, spec.stem, 3, 2, norm=norm, act=nn.ReLU6)]
        channels = spec.stem
        for stage in spec.stages:
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                features.append(InvertedResidual(channels, stage.out, stride, stage.expand, norm))
                channels = stage.out
        features.append(ConvBNAct(channels, spec.head, 1, norm=norm, act=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(spec.head, num_classes))
        init_weights(self, linear_std=0.01)  # torchvision: linear weights normal(0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_mobilenet_v2(
    width: float = 1.0,
    num_classes: int = 1000,
    dropout: float = 0.2,
    norm_eps: float = 1e-5,
    norm_momentum: float = 0.1,
) -> MobileNetV2:
    """MobileNetV2 at any width multiplier (the paper's Table 2 scaled by :func:`scale`)."""
    return MobileNetV2(scale(MOBILENET_V2, width), 224, num_classes, dropout, norm_eps, norm_momentum)


# Dropout 0.2 before the classifier and PyTorch's BatchNorm defaults (eps 1e-5, momentum 0.1), build_mobilenet_v2's,
# as torchvision, whose checkpoints these builders load. Only width 1.0 is a torchvision model name; torchvision's
# builder takes width_mult=1.4 but registers no name, so the 1.4 model has no reference here (tests/test_mobilenet.py
# checks it against that builder directly).
for _name, (_width, _published) in MOBILENET_V2_VARIANTS.items():
    register_variant(
        _name,
        build_mobilenet_v2,
        _width,
        family="mobilenet_v2",
        paper=PAPER,
        published=_published,
        reference=f"torchvision:{_name}" if _name in TORCHVISION_FIGURES else None,
        reference_figures=TORCHVISION_FIGURES.get(_name),
        variant={"width": _width},
    )
