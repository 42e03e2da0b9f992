"""VGG 11/13/16/19 (configurations A, B, D, E), with and without batch normalisation.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", arXiv 1409.1556.
The configurations are the paper's Table 1 columns A, B, D and E: five stages of 3×3 convs (stride 1, padding 1),
each closed by a 2×2 / stride-2 max pool, then three fully connected layers. A-LRN and C (which has 1×1 convs) are
left out, as in torchvision. The ``_bn`` variants, with BatchNorm after every conv, are torchvision's addition; their
convs keep a bias, as torchvision's do, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._layers import init_weights
from ._registry import Paper, Published, register_variant

__all__ = ["VGGStage", "VGG_CONFIGS", "VGG_FC", "VGG", "build_vgg"]

PAPER = Paper("Very Deep Convolutional Networks for Large-Scale Image Recognition", "1409.1556", 2014)


@dataclass(frozen=True)
class VGGStage:
    """``convs`` 3×3 convs of ``width`` output channels, then a 2×2 / stride-2 max pool."""

    width: int
    convs: int


# The paper's Table 1, one tuple of stages per configuration; the depth in the name counts weight layers: the convs
# plus the three fully connected ones (A: 8 + 3 = 11).
_WIDTHS = (64, 128, 256, 512, 512)
VGG_CONFIGS: dict[str, tuple[VGGStage, ...]] = {
    "A": tuple(VGGStage(w, n) for w, n in zip(_WIDTHS, (1, 1, 2, 2, 2), strict=True)),  # VGG-11
    "B": tuple(VGGStage(w, n) for w, n in zip(_WIDTHS, (2, 2, 2, 2, 2), strict=True)),  # VGG-13
    "D": tuple(VGGStage(w, n) for w, n in zip(_WIDTHS, (2, 2, 3, 3, 3), strict=True)),  # VGG-16
    "E": tuple(VGGStage(w, n) for w, n in zip(_WIDTHS, (2, 2, 4, 4, 4), strict=True)),  # VGG-19
}
VGG_DEPTHS: dict[int, str] = {11: "A", 13: "B", 16: "D", 19: "E"}
VGG_POOL_SIDE = 7  # adaptive average pool to 7×7 before the classifier (an identity at 224)
VGG_FC: tuple[int, ...] = (4096, 4096)  # hidden widths of the classifier, before the num_classes layer

# torchvision's own figures (IMAGENET1K_V1 weights, crop 224; GFLOPS = ``_ops``, multiply-adds). reference/papers.md
# §6 transcribes only vgg16; for vgg11/13/19 and vgg16_bn the params and conv+linear multiply-adds are those of
# reference/torchvision_params_madds.csv (exact counts; papers.md says they equal ``_ops`` to 3 dp), without accuracy;
# for vgg11_bn/13_bn/19_bn neither source has a row.
_TV = "torchvision 0.29, {}_Weights.IMAGENET1K_V1 (crop 224)"
_CSV = "; params and conv+linear multiply-adds from reference/torchvision_params_madds.csv, accuracy not transcribed"
_NONE = "; not transcribed in reference/papers.md §6 nor in reference/torchvision_params_madds.csv"
TORCHVISION_FIGURES: dict[str, Published] = {
    "vgg11": Published(_TV.format("VGG11") + _CSV, None, None, 132_863_336, 7_609_090_048),
    "vgg13": Published(_TV.format("VGG13") + _CSV, None, None, 133_047_848, 11_308_466_176),
    "vgg16": Published(_TV.format("VGG16"), 71.592, 90.382, 138_357_544, 15.470e9),
    "vgg19": Published(_TV.format("VGG19") + _CSV, None, None, 143_667_240, 19_632_062_464),
    "vgg11_bn": Published(_TV.format("VGG11_BN") + _NONE),
    "vgg13_bn": Published(_TV.format("VGG13_BN") + _NONE),
    "vgg16_bn": Published(_TV.format("VGG16_BN") + _CSV, None, None, 138_365_992, 15_470_264_320),
    "vgg19_bn": Published(_TV.format("VGG19_BN") + _NONE),
}


class VGG(nn.Module):
    """features (conv[/BN]/ReLU ×n, max pool, per stage) → 7×7 average pool → linear/ReLU/dropout ×2 → linear.

    ``features`` is one flat ``nn.Sequential``, as in torchvision, so conv ``k`` of the whole net sits at a fixed
    index (``features.0``, ``features.2``, …, or every third index with BN).
    """

    def __init__(
        self,
        stages: tuple[VGGStage, ...],
        batch_norm: bool = False,
        num_classes: int = 1000,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.stages = stages
        layers: list[nn.Module] = []
        channels = 3
        for stage in stages:
            for _ in range(stage.convs):
                layers.append(nn.Conv2d(channels, stage.width, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(stage.width))
                layers.append(nn.ReLU(inplace=True))
                channels = stage.width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(VGG_POOL_SIDE)
        head: list[nn.Module] = []
        width = channels * VGG_POOL_SIDE**2
        for hidden in VGG_FC:
            head += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout)]
            width = hidden
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)
        # torchvision's VGG initialisation: convs He normal (fan-out), BN 1/0, linear layers normal with std 0.01.
        init_weights(self, linear_std=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_vgg(config: str, batch_norm: bool = False, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """A VGG from the name of a Table 1 column ("A", "B", "D" or "E")."""
    return VGG(VGG_CONFIGS[config], batch_norm=batch_norm, num_classes=num_classes, dropout=dropout)


def _vgg_builder(member: tuple[str, bool], /, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    config, batch_norm = member
    return build_vgg(config, batch_norm, num_classes, dropout)


for _depth, _config in VGG_DEPTHS.items():
    for _bn in (False, True):
        _name = f"vgg{_depth}" + ("_bn" if _bn else "")
        register_variant(
            _name,
            _vgg_builder,
            (_config, _bn),
            family="vgg",
            paper=PAPER,
            published=Published(f"VGG (arXiv 1409.1556), configuration {_config}: no single-crop figure transcribed"),
            reference=f"torchvision:{_name}",
            reference_figures=TORCHVISION_FIGURES[_name],
            variant={"config": _config, "batch_norm": _bn},
        )
