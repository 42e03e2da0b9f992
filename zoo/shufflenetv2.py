"""ShuffleNetV2 0.5×, 1×, 1.5× and 2×.

Ma, Zhang, Zheng & Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
arXiv 1807.11164 (ECCV 2018). The stage table is the paper's Table 5; the unit is its Figure 3(c) (basic unit) and
3(d) (stride-2 unit); the published figures are Table 8. Module names follow torchvision's ``shufflenet_v2_xN_N``
(``conv1``, ``stage2``–``stage4``, ``branch1``/``branch2``, ``conv5``, ``fc``), so its checkpoints load with
``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._layers import ConvBNAct, channel_shuffle
from ._registry import Paper, Published, register_variant

__all__ = [
    "ShuffleV2Stage",
    "ShuffleNetV2Spec",
    "SHUFFLENET_V2",
    "ShuffleV2Unit",
    "ShuffleNetV2",
    "build_shufflenet_v2",
]

PAPER = Paper("ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", "1807.11164", 2018)


@dataclass(frozen=True)
class ShuffleV2Stage:
    """One stage row of the paper's Table 5: a stride-2 unit, then ``repeats - 1`` basic units."""

    out: int  # output channels; each unit's two branches give out/2 each
    repeats: int  # units, the first with stride 2


@dataclass(frozen=True)
class ShuffleNetV2Spec:
    """A whole network as data: stem width, stages, Conv5 width."""

    stem: int  # Conv1 3×3 stride 2, then MaxPool 3×3 stride 2
    stages: tuple[ShuffleV2Stage, ...]  # named Stage2, Stage3, ... as in the paper
    conv5: int  # the 1×1 conv before global pooling


def _stages(c2: int, c3: int, c4: int) -> tuple[ShuffleV2Stage, ...]:
    # Table 5: repeats 4 / 8 / 4 at every width; output sizes 28×28, 14×14, 7×7 for a 224 input.
    return (ShuffleV2Stage(out=c2, repeats=4), ShuffleV2Stage(out=c3, repeats=8), ShuffleV2Stage(out=c4, repeats=4))


# SN2 Table 5, one column per width. The paper gives every width's channels outright (no scaling rule), so each is
# transcribed; only 2× widens Conv5 (2048).
SHUFFLENET_V2: dict[str, ShuffleNetV2Spec] = {
    "0_5": ShuffleNetV2Spec(stem=24, stages=_stages(48, 96, 192), conv5=1024),  # 41 MFLOPs, 1.4 M params
    "1_0": ShuffleNetV2Spec(stem=24, stages=_stages(116, 232, 464), conv5=1024),  # 146 MFLOPs, 2.3 M params
    "1_5": ShuffleNetV2Spec(stem=24, stages=_stages(176, 352, 704), conv5=1024),  # 299 MFLOPs, 3.5 M params
    "2_0": ShuffleNetV2Spec(stem=24, stages=_stages(244, 488, 976), conv5=2048),  # 591 MFLOPs, 7.4 M params
}

_WIDTHS = {"0_5": 0.5, "1_0": 1.0, "1_5": 1.5, "2_0": 2.0}

# SN2 Table 8 (top-1 = 100 − the printed error; FLOPs are multiply-adds, as printed).
_SN2 = "ShuffleNet V2 (1807.11164), Table 8; top-1 = 100 − err"
PUBLISHED: dict[str, Published] = {
    "0_5": Published(_SN2, top1=60.3, params=1.4e6, flops=41e6),
    "1_0": Published(_SN2, top1=69.4, params=2.3e6, flops=146e6),
    "1_5": Published(_SN2, top1=72.6, params=3.5e6, flops=299e6),
    "2_0": Published(_SN2, top1=74.9, params=7.4e6, flops=591e6),
}

# torchvision's own figures (its IMAGENET1K_V1 weights at a 224 crop; ``_ops`` in multiply-adds), kept apart from the
# paper's. 1.5× and 2× were trained with torchvision's newer recipe and are evaluated after a 232 resize.
_TV = "torchvision 0.29, ShuffleNet_V2_{}_Weights.IMAGENET1K_V1{}"
TORCHVISION_FIGURES: dict[str, Published] = {
    "0_5": Published(_TV.format("X0_5", ""), 60.552, 81.746, 1_366_792, 0.040e9, resolution=224),
    "1_0": Published(_TV.format("X1_0", ""), 69.362, 88.316, 2_278_604, 0.145e9, resolution=224),
    "1_5": Published(_TV.format("X1_5", " (resize 232)"), 72.996, 91.086, 3_503_624, 0.296e9, resolution=224),
    "2_0": Published(_TV.format("X2_0", " (resize 232)"), 76.230, 93.006, 7_393_996, 0.583e9, resolution=224),
}


def _flat(*blocks: ConvBNAct) -> nn.Sequential:
    """Conv-BN(-ReLU) blocks laid side by side in one Sequential: torchvision's branches are flat (``branch2.3`` is
    the depthwise conv), so the children are taken out of their ``ConvBNAct`` wrappers."""
    return nn.Sequential(*(layer for block in blocks for layer in block))


class ShuffleV2Unit(nn.Module):
    """The ShuffleNetV2 unit (SN2 Fig. 3c/d), ending with a channel shuffle of 2 groups.

    Stride 1 (basic unit): channel split; the left half passes through (``branch1`` is the identity), the right half
    goes 1×1 → 3×3 depthwise → 1×1. Stride 2: no split; both branches see the whole input, ``branch1`` is
    3×3 depthwise (stride 2) → 1×1, ``branch2`` as above with a stride-2 depthwise. Each branch gives ``out/2``
    channels. ReLU follows every 1×1 conv, never the depthwise one.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"a ShuffleNetV2 unit needs an even output width, got {out_channels}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"a stride-1 unit keeps its width, got {in_channels} → {out_channels}")
        half = out_channels // 2
        self.stride = stride
        if stride == 1:
            self.branch1: nn.Module = nn.Identity()  # no parameters: no state_dict keys, as torchvision's empty one
            branch2_in = half
        else:
            self.branch1 = _flat(
                ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, act=None),
                ConvBNAct(in_channels, half, 1),
            )
            branch2_in = in_channels
        self.branch2 = _flat(
            ConvBNAct(branch2_in, half, 1),
            ConvBNAct(half, half, 3, stride, groups=half, act=None),
            ConvBNAct(half, half, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)  # the channel split, c' = c/2
        else:
            left = right = x
        return channel_shuffle(torch.cat((self.branch1(left), self.branch2(right)), dim=1), 2)


class ShuffleNetV2(nn.Module):
    """Conv1 → MaxPool → Stage2…StageN → Conv5 → global average pool → FC (SN2 Table 5).

    Initialisation is PyTorch's default for each layer, as in torchvision's ShuffleNetV2 (which sets none), so that a
    model built here starts from the same distribution as torchvision's (the same weights, given the same seed).
    """

    def __init__(self, spec: ShuffleNetV2Spec, num_classes: int = 1000) -> None:
        super().__init__()
        self.spec = spec
        self.resolution = 224
        self.conv1 = ConvBNAct(3, spec.stem, 3, 2)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stage_names: list[str] = []
        channels = spec.stem
        for i, stage in enumerate(spec.stages, start=2):  # the paper numbers stages from 2 (Conv1 is 1)
            units = [ShuffleV2Unit(channels, stage.out, 2)]
            units += [ShuffleV2Unit(stage.out, stage.out, 1) for _ in range(stage.repeats - 1)]
            self.add_module(f"stage{i}", nn.Sequential(*units))
            self.stage_names.append(f"stage{i}")
            channels = stage.out
        self.conv5 = ConvBNAct(channels, spec.conv5, 1)
        self.fc = nn.Linear(spec.conv5, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        for name in self.stage_names:
            x = self.get_submodule(name)(x)
        return self.fc(self.conv5(x).mean((2, 3)))  # global average pool


def build_shufflenet_v2(width: str, num_classes: int = 1000) -> ShuffleNetV2:
    """The one builder: Table 5's column for ``width`` ("0_5", "1_0", "1_5", "2_0")."""
    try:
        spec = SHUFFLENET_V2[width]
    except KeyError:
        raise ValueError(f"unknown ShuffleNetV2 width {width!r}; choose one of {', '.join(SHUFFLENET_V2)}") from None
    return ShuffleNetV2(spec, num_classes=num_classes)


for _width in SHUFFLENET_V2:
    register_variant(
        f"shufflenet_v2_x{_width}",
        build_shufflenet_v2,
        _width,
        family="shufflenet_v2",
        paper=PAPER,
        published=PUBLISHED[_width],
        reference=f"torchvision:shufflenet_v2_x{_width}",
        reference_figures=TORCHVISION_FIGURES[_width],
        variant={"width": _WIDTHS[_width]},
    )
