"""MobileNetV1 at any width multiplier α and any input resolution.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications", arXiv 1704.04861.
The body is the paper's Table 1: a 3×3 stem, then 13 depthwise-separable layers (3×3 depthwise → 1×1 pointwise, each
followed by BatchNorm and an activation), global average pooling and one fully connected layer. torchvision has no
MobileNetV1; timm's ``mobilenetv1_100`` is the reference at α = 1.0, and :func:`convert_timm_state_dict` maps its
checkpoints onto ours.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ._errors import BadOverrideError, CnnbenchError
from ._layers import ConvBNAct, init_weights
from ._registry import Paper, Published, register_variant

__all__ = [
    "SeparableRow",
    "MobileNetV1Spec",
    "MOBILENET_V1",
    "MOBILENET_V1_WIDTHS",
    "MOBILENET_V1_RESOLUTIONS",
    "ACTIVATIONS",
    "scale",
    "DepthwiseSeparable",
    "MobileNetV1",
    "build_mobilenet_v1",
    "convert_timm_state_dict",
]

PAPER = Paper("MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications", "1704.04861", 2017)


@dataclass(frozen=True)
class SeparableRow:
    """One depthwise-separable layer of Table 1: a 3×3 depthwise conv with ``stride``, then a 1×1 conv to ``out``."""

    stride: int  # of the depthwise conv; the pointwise conv always has stride 1
    out: int  # output channels of the pointwise conv


@dataclass(frozen=True)
class MobileNetV1Spec:
    """A whole network as data: stem width and the depthwise-separable rows. The classifier reads the last width."""

    stem: int
    rows: tuple[SeparableRow, ...]


# MobileNet body, the paper's Table 1 (α = 1, input 224×224). Comments give each row's input size.
# The paper prints the last depthwise layer as "s2", a typo: its input is already 7×7 and the 7×7 average pool follows.
# TF-slim (``_CONV_DEFS``) and timm (``dsa_r2_k3_s2_c1024``: stride 2 then stride 1) both use stride 1 there.
MOBILENET_V1 = MobileNetV1Spec(
    stem=32,  # Conv 3×3, stride 2, 224 → 112
    rows=(
        SeparableRow(stride=1, out=64),  # 112×112×32
        SeparableRow(stride=2, out=128),  # 112×112×64
        SeparableRow(stride=1, out=128),  # 56×56×128
        SeparableRow(stride=2, out=256),  # 56×56×128
        SeparableRow(stride=1, out=256),  # 28×28×256
        SeparableRow(stride=2, out=512),  # 28×28×256
        SeparableRow(stride=1, out=512),  # 14×14×512, 5× in the paper
        SeparableRow(stride=1, out=512),
        SeparableRow(stride=1, out=512),
        SeparableRow(stride=1, out=512),
        SeparableRow(stride=1, out=512),
        SeparableRow(stride=2, out=1024),  # 14×14×512
        SeparableRow(stride=1, out=1024),  # 7×7×1024 (the paper's "s2 (sic)")
    ),
)

# The paper's Table 6 (width multiplier α at 224): top-1 %, parameters and multiply-adds ("Mult-Adds") as printed.
_T6 = "MobileNets, Table 6"
MOBILENET_V1_WIDTHS: dict[str, tuple[float, Published]] = {
    "x1_0": (1.0, Published(_T6, 70.6, None, 4.2e6, 569e6)),
    "x0_75": (0.75, Published(_T6, 68.4, None, 2.6e6, 325e6)),
    "x0_5": (0.5, Published(_T6, 63.7, None, 1.3e6, 149e6)),
    "x0_25": (0.25, Published(_T6, 50.6, None, 0.5e6, 41e6)),
}

# The paper's Table 7 (resolution multiplier ρ at α = 1.0): the same network fed smaller images. Parameters do not
# change with resolution; the classifier sees 1×1×1024 after the global pool whatever the input side.
_T7 = "MobileNets, Table 7"
MOBILENET_V1_RESOLUTIONS: dict[int, Published] = {
    224: Published(_T7, 70.6, None, 4.2e6, 569e6),
    192: Published(_T7, 69.1, None, 4.2e6, 418e6),
    160: Published(_T7, 67.2, None, 4.2e6, 290e6),
    128: Published(_T7, 64.4, None, 4.2e6, 186e6),
}

# timm's own figures for its ``mobilenetv1_100`` (results-imagenet.csv at 224, crop_pct 0.875; multiply-adds from its
# benchmark csv, which counts slightly more than conv+linear: our count is 568,740,352). Own recipe, ReLU6: never mix
# with the paper's figures.
TIMM_FIGURES = Published("timm 1.0, mobilenetv1_100.ra4_e3600_r224_in1k (crop 224)", 75.388, 92.310, 4_231_976, 0.58e9)

# The activation after every BatchNorm. The paper uses ReLU (Figure 3), so that is the default: the registered
# models are the paper's. timm's mobilenetv1_100 uses ReLU6; pass ``act="relu6"`` to run its weights.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def scale(spec: MobileNetV1Spec, width: float) -> MobileNetV1Spec:
    """Apply the width multiplier α: every layer's channels become ``int(α · c)``; pure, so the scaled table
    exists as a value.

    The paper gives no rounding rule. ``int(α · c)`` is TF-slim's ``depth`` and, for the four published widths, equals
    ``make_divisible(α · c, 8)`` (timm's rounding), because every Table 1 width times 0.25 is a multiple of 8.
    """
    if width <= 0:
        raise ValueError(f"width multiplier must be > 0, got {width}")

    def channels(c: int) -> int:
        return max(1, int(c * width))

    return MobileNetV1Spec(stem=channels(spec.stem), rows=tuple(replace(r, out=channels(r.out)) for r in spec.rows))


class DepthwiseSeparable(nn.Sequential):
    """3×3 depthwise conv-BN-act, then 1×1 pointwise conv-BN-act (the paper's Figure 3).

    Children are named ``depthwise`` and ``pointwise``, so that checkpoint keys say which half a weight belongs to.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, act: type[nn.Module]) -> None:
        super().__init__(
            OrderedDict(
                depthwise=ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, act=act),
                pointwise=ConvBNAct(in_channels, out_channels, 1, act=act),
            )
        )


class MobileNetV1(nn.Module):
    """Stem → 13 depthwise-separable layers → global average pool → dropout → linear.

    ``features`` holds the stem (index 0) and the rows (1–13). The pool is adaptive, so any input side works (the
    paper's Table 7 runs the same weights at 224, 192, 160, 128); ``resolution`` is the side it was designed for.
    """

    def __init__(
        self,
        spec: MobileNetV1Spec,
        resolution: int = 224,
        num_classes: int = 1000,
        dropout: float = 0.0,
        act: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.resolution = resolution
        features: list[nn.Module] = [ConvBNAct(3, spec.stem, 3, 2, act=act)]
        channels = spec.stem
        for row in spec.rows:
            features.append(DepthwiseSeparable(channels, row.out, row.stride, act))
            channels = row.out
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        # timm's initialisation: He normal fan-out convs, linear uniform ±1/√out (init_weights' default).
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_mobilenet_v1(
    width: float = 1.0,
    num_classes: int = 1000,
    dropout: float = 0.0,
    act: str = "relu",
) -> MobileNetV1:
    """MobileNetV1 at width multiplier ``width`` (α); ``act`` is ``"relu"`` (the paper) or ``"relu6"`` (timm)."""
    if act not in ACTIVATIONS:
        raise BadOverrideError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
    return MobileNetV1(scale(MOBILENET_V1, width), 224, num_classes, dropout, ACTIVATIONS[act])


# timm's key layout: ``conv_stem``/``bn1`` for the stem, ``blocks.S.I.{conv_dw,bn1,conv_pw,bn2}`` for block I of
# stage S, ``classifier`` for the linear layer.
_TIMM_BLOCK = re.compile(r"blocks\.(\d+)\.(\d+)\.(conv_dw|bn1|conv_pw|bn2)\.(.+)")
_TIMM_BLOCK_PART = {"conv_dw": "depthwise.0", "bn1": "depthwise.1", "conv_pw": "pointwise.0", "bn2": "pointwise.1"}
_TIMM_TOP = {"conv_stem.": "features.0.0.", "bn1.": "features.0.1.", "classifier.": "classifier.1."}


def convert_timm_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map a timm ``mobilenetv1_*`` state_dict onto :class:`MobileNetV1`'s keys (tensors are shared, not copied).

    timm nests the 13 rows in 5 stages (1, 2, 2, 6, 2 blocks); ours are flat, so block I of stage S becomes row
    ``1 + (blocks before stage S) + I``. Load the result into a model built with ``act="relu6"`` to get timm's
    outputs. Models with a head conv (``mobilenetv1_100h``) have keys that we do not hold, and are refused.
    """
    blocks: dict[tuple[int, int], dict[str, Tensor]] = {}
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        match = _TIMM_BLOCK.fullmatch(key)
        if match:
            stage, block, part, leaf = match.groups()
            blocks.setdefault((int(stage), int(block)), {})[f"{_TIMM_BLOCK_PART[part]}.{leaf}"] = value
            continue
        prefix = next((p for p in _TIMM_TOP if key.startswith(p)), None)
        if prefix is None:
            raise CnnbenchError(f"timm key {key!r} has no MobileNetV1 counterpart; only mobilenetv1_* without a head")
        out[_TIMM_TOP[prefix] + key[len(prefix) :]] = value
    # (stage, block) pairs in order are the rows in order.
    for row, position in enumerate(sorted(blocks), start=1):
        for leaf, value in blocks[position].items():
            out[f"features.{row}.{leaf}"] = value
    return out


# No dropout by default (build_mobilenet_v1's): the paper names none, and timm's mobilenetv1_100 trains with
# drop_rate 0. timm has no 0.75/0.5/0.25, so only width 1.0 has a reference.
for _suffix, (_width, _published) in MOBILENET_V1_WIDTHS.items():
    register_variant(
        f"mobilenet_v1_{_suffix}",
        build_mobilenet_v1,
        _width,
        family="mobilenet_v1",
        paper=PAPER,
        published=_published,
        reference="timm:mobilenetv1_100" if _width == 1.0 else None,
        reference_figures=TIMM_FIGURES if _width == 1.0 else None,
        variant={"width": _width},
    )
