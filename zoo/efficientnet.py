"""EfficientNet B0–B7 and any compound-scaled member.

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", arXiv 1905.11946 (v5).
The B0 stage table is the paper's Table 1, with kernel, stride and expansion from the TPU reference
(``efficientnet_builder.py``); the B1–B7 coefficients are those of the TPU reference's ``efficientnet_params``.
Module names follow torchvision's ``efficientnet_bN``, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import Tensor, nn

from ._layers import ConvBNAct, SqueezeExcite, StochasticDepth, init_weights, inverted_residual_layers, make_divisible
from ._registry import Paper, Published, register_variant

__all__ = [
    "MBConvStage",
    "EfficientNetSpec",
    "EFFICIENTNET_B0",
    "EFFICIENTNET_VARIANTS",
    "Compound",
    "compound_coefficients",
    "scale",
    "EfficientNet",
    "build_efficientnet",
    "efficientnet_scaled",
]

PAPER = Paper("EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", "1905.11946", 2019)


@dataclass(frozen=True)
class MBConvStage:
    """One row of the paper's Table 1: ``repeats`` mobile inverted bottlenecks with the same shape.

    ``stride`` applies to the first block of the stage only; ``se`` is the squeeze-and-excitation ratio, taken of
    the block's *input* channels (the TPU reference and torchvision), not of the expanded ones.
    """

    expand: int  # expansion ratio of the first 1×1 conv (MBConv1 has none)
    kernel: int  # depthwise kernel size
    stride: int
    out: int  # output channels
    repeats: int
    se: float = 0.25


@dataclass(frozen=True)
class EfficientNetSpec:
    """A whole network as data: stem width, stages, head width."""

    stem: int
    stages: tuple[MBConvStage, ...]
    head: int


# EfficientNet-B0, the paper's Table 1 (input 224×224). Comments give each stage's input resolution.
EFFICIENTNET_B0 = EfficientNetSpec(
    stem=32,  # Conv3×3, stride 2, 224 → 112
    stages=(
        MBConvStage(expand=1, kernel=3, stride=1, out=16, repeats=1),  # 112×112
        MBConvStage(expand=6, kernel=3, stride=2, out=24, repeats=2),  # 112×112
        MBConvStage(expand=6, kernel=5, stride=2, out=40, repeats=2),  # 56×56
        MBConvStage(expand=6, kernel=3, stride=2, out=80, repeats=3),  # 28×28
        MBConvStage(expand=6, kernel=5, stride=1, out=112, repeats=3),  # 14×14
        MBConvStage(expand=6, kernel=5, stride=2, out=192, repeats=4),  # 14×14
        MBConvStage(expand=6, kernel=3, stride=1, out=320, repeats=1),  # 7×7
    ),
    head=1280,  # Conv1×1 & pooling & FC, 7×7
)


@dataclass(frozen=True)
class Compound:
    """The scaling knobs of one family member."""

    width: float  # channel multiplier
    depth: float  # repeats multiplier
    resolution: int  # input resolution, pixels
    dropout: float  # before the classifier


# B0–B7: (width, depth, resolution, dropout) from the TPU reference's ``efficientnet_params``; published figures from
# the paper's Table 2 (params and FLOPs as printed, rounded to 2 significant figures; FLOPs are multiply-adds).
# torchvision's own figures (IMAGENET1K_V1 weights, evaluated at its crop; ``_ops`` in multiply-adds) are kept apart.
EFFICIENTNET_VARIANTS: dict[str, tuple[Compound, Published]] = {
    "b0": (Compound(1.0, 1.0, 224, 0.2), Published("EfficientNet v5, Table 2", 77.1, 93.3, 5.3e6, 0.39e9)),
    "b1": (Compound(1.0, 1.1, 240, 0.2), Published("EfficientNet v5, Table 2", 79.1, 94.4, 7.8e6, 0.70e9)),
    "b2": (Compound(1.1, 1.2, 260, 0.3), Published("EfficientNet v5, Table 2", 80.1, 94.9, 9.2e6, 1.0e9)),
    "b3": (Compound(1.2, 1.4, 300, 0.3), Published("EfficientNet v5, Table 2", 81.6, 95.7, 12e6, 1.8e9)),
    "b4": (Compound(1.4, 1.8, 380, 0.4), Published("EfficientNet v5, Table 2", 82.9, 96.4, 19e6, 4.2e9)),
    "b5": (Compound(1.6, 2.2, 456, 0.4), Published("EfficientNet v5, Table 2", 83.6, 96.7, 30e6, 9.9e9)),
    "b6": (Compound(1.8, 2.6, 528, 0.5), Published("EfficientNet v5, Table 2", 84.0, 96.8, 43e6, 19e9)),
    "b7": (Compound(2.0, 3.1, 600, 0.5), Published("EfficientNet v5, Table 2", 84.3, 97.0, 66e6, 37e9)),
}


_TV = "torchvision 0.29, EfficientNet_{}_Weights.IMAGENET1K_V1"
TORCHVISION_FIGURES: dict[str, Published] = {
    "b0": Published(_TV.format("B0"), 77.692, 93.532, 5_288_548, 0.386e9, resolution=224),
    "b1": Published(_TV.format("B1"), 78.642, 94.186, 7_794_184, 0.687e9, resolution=240),
    "b2": Published(_TV.format("B2"), 80.608, 95.310, 9_109_994, 1.088e9, resolution=288),
    "b3": Published(_TV.format("B3"), 82.008, 96.054, 12_233_232, 1.827e9, resolution=300),
    "b4": Published(_TV.format("B4"), 83.384, 96.594, 19_341_616, 4.394e9, resolution=380),
    "b5": Published(_TV.format("B5"), 83.444, 96.628, 30_389_784, 10.266e9, resolution=456),
    "b6": Published(_TV.format("B6"), 84.008, 96.916, 43_040_704, 19.068e9, resolution=528),
    "b7": Published(_TV.format("B7"), 84.122, 96.908, 66_347_960, 37.746e9, resolution=600),
}


def scale(spec: EfficientNetSpec, width: float, depth: float) -> EfficientNetSpec:
    """Apply width and depth coefficients to a table; pure, so the scaled table exists as a value.

    Channels: ``make_divisible(c · width, 8)`` (the reference's ``round_filters``). Repeats: ``ceil(r · depth)``
    (``round_repeats``). The head is scaled from 1280 like every other width (equal to torchvision's 4 × last stage
    for B0–B7).
    """
    return EfficientNetSpec(
        stem=make_divisible(spec.stem * width),
        stages=tuple(
            replace(s, out=make_divisible(s.out * width), repeats=int(math.ceil(s.repeats * depth)))
            for s in spec.stages
        ),
        head=make_divisible(spec.head * width),
    )


def compound_coefficients(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> Compound:
    """The paper's compound scaling (§3.3, eq. 3): depth α^φ, width β^φ, resolution 224·γ^φ.

    Resolution is rounded to the nearest multiple of 4, as every published B1–B7 resolution is one (240, 260, …,
    600). Dropout rises linearly from 0.2 at φ=0 to 0.5 at φ=7 (the paper's §5.2 range for B0→B7) and stays at 0.5
    beyond. With the paper's α=1.2, β=1.1, γ=1.15, α·β²·γ² = 1.92, so FLOPs grow by about 1.92^φ.
    """
    if phi < 0:
        raise ValueError(f"phi must be >= 0, got {phi}")
    if min(alpha, beta, gamma) < 1.0:
        raise ValueError("alpha, beta and gamma must each be >= 1 (the paper's constraint)")
    resolution = 4 * round(224 * gamma**phi / 4)
    dropout = min(0.5, 0.2 + 0.3 * phi / 7)
    return Compound(width=beta**phi, depth=alpha**phi, resolution=resolution, dropout=round(dropout, 4))


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [1×1 expand] → k×k depthwise → SE → 1×1 project (linear), residual when shapes
    match. Child names equal torchvision's (``block``, ``stochastic_depth``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand: int,
        kernel: int,
        stride: int,
        se: float,
        stochastic_depth: float,
        norm: partial[nn.Module] | type[nn.Module],
    ) -> None:
        super().__init__()
        hidden = make_divisible(in_channels * expand)
        # SE width from the block's input channels, not the expanded ones (TPU reference, torchvision).
        squeeze = SqueezeExcite(hidden, max(1, int(in_channels * se)), act=nn.SiLU)
        self.block = nn.Sequential(
            *inverted_residual_layers(in_channels, hidden, out_channels, kernel, stride, nn.SiLU, norm, squeeze)
        )
        self.use_residual = stride == 1 and in_channels == out_channels
        self.stochastic_depth = StochasticDepth(stochastic_depth)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_residual:
            out = self.stochastic_depth(out)
            out += x  # in place, as torchvision: one activation buffer fewer
        return out


class EfficientNet(nn.Module):
    """Stem → stages of MBConv → 1×1 head → global pool → dropout → linear.

    ``features`` holds the stem (index 0), one ``nn.Sequential`` per stage, and the head (last index), as in
    torchvision. ``resolution`` is the input size the member was designed for.
    """

    def __init__(
        self,
        spec: EfficientNetSpec,
        resolution: int,
        num_classes: int = 1000,
        dropout: float = 0.2,
        stochastic_depth: float = 0.2,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.resolution = resolution
        norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=norm_momentum)
        features: list[nn.Module] = [ConvBNAct(3, spec.stem, 3, 2, norm=norm, act=nn.SiLU)]
        total_blocks = sum(s.repeats for s in spec.stages)
        block_id = 0
        channels = spec.stem
        for stage in spec.stages:
            blocks: list[nn.Module] = []
            for i in range(stage.repeats):
                # The drop probability rises linearly with block depth, from 0 to ``stochastic_depth``.
                p = stochastic_depth * block_id / total_blocks
                stride = stage.stride if i == 0 else 1
                blocks.append(MBConv(channels, stage.out, stage.expand, stage.kernel, stride, stage.se, p, norm))
                channels = stage.out
                block_id += 1
            features.append(nn.Sequential(*blocks))
        features.append(ConvBNAct(channels, spec.head, 1, norm=norm, act=nn.SiLU))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(spec.head, num_classes))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build_efficientnet(
    compound: Compound,
    num_classes: int = 1000,
    dropout: float | None = None,
    stochastic_depth: float = 0.2,
    norm_eps: float = 1e-5,
    norm_momentum: float = 0.1,
) -> EfficientNet:
    """The one builder: scale B0's table by ``compound`` and build it.

    ``stochastic_depth`` is the drop probability of the last block (the reference's ``drop_connect_rate`` 0.2,
    i.e. survival 0.8). ``dropout=None`` takes the member's own.
    """
    spec = scale(EFFICIENTNET_B0, compound.width, compound.depth)
    return EfficientNet(
        spec,
        compound.resolution,
        num_classes=num_classes,
        dropout=compound.dropout if dropout is None else dropout,
        stochastic_depth=stochastic_depth,
        norm_eps=norm_eps,
        norm_momentum=norm_momentum,
    )


def efficientnet_scaled(
    phi: float,
    alpha: float = 1.2,
    beta: float = 1.1,
    gamma: float = 1.15,
    **overrides: float | int,
) -> EfficientNet:
    """Any compound-scaled EfficientNet: B0's table scaled by :func:`compound_coefficients` (φ need not be an
    integer). The model's ``resolution`` attribute is the input size it was scaled for.

    These follow the formula, not the hand-tuned B1–B7 (φ=1 gives width 1.1, depth 1.2, 256 px, where B1 is
    width 1.0, depth 1.1, 240 px); use ``create_model("efficientnet_bN")`` for the published members.
    """
    return build_efficientnet(compound_coefficients(phi, alpha, beta, gamma), **overrides)  # type: ignore[arg-type]


# torchvision builds B5–B7 with BatchNorm eps 1e-3 / momentum 0.01 (the TF values) and B0–B4 with PyTorch's
# defaults, because their weights were ported from different sources; following it keeps outputs equal with the
# same weights. The TF reference uses eps 1e-3 everywhere: pass ``norm_eps=1e-3`` for that.
for _variant, (_compound, _published) in EFFICIENTNET_VARIANTS.items():
    _eps, _momentum = (1e-3, 0.01) if _variant in ("b5", "b6", "b7") else (1e-5, 0.1)
    register_variant(
        f"efficientnet_{_variant}",
        build_efficientnet,
        _compound,
        family="efficientnet",
        paper=PAPER,
        resolution=_compound.resolution,
        published=_published,
        reference=f"torchvision:efficientnet_{_variant}",
        reference_figures=TORCHVISION_FIGURES[_variant],
        variant={"width": _compound.width, "depth": _compound.depth, "dropout": _compound.dropout},
        defaults={"dropout": _compound.dropout, "norm_eps": _eps, "norm_momentum": _momentum},
    )
