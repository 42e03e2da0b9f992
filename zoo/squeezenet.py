"""SqueezeNet 1.0 and 1.1.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size", arXiv
1602.07360. A Fire module squeezes with 1×1 convs and expands with 1×1 and 3×3 convs side by side, concatenated.
Version 1.0 is the paper's network (fire2 … fire9, a 7×7/2 stem of 96); version 1.1 comes from the authors'
repository (DeepScale/SqueezeNet): a 3×3/2 stem of 64 and the max pools moved earlier, after fire3 and fire5
instead of after fire4 and fire8, which cuts the multiply-adds by more than half for about the same parameters.
There is no fully connected layer: a 1×1 conv to ``num_classes`` and a global average pool end the net.
Module names follow torchvision's ``squeezenet1_x``, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._registry import Paper, Published, register_variant

__all__ = ["FireRow", "SqueezeNetSpec", "SQUEEZENET_VERSIONS", "Fire", "SqueezeNet", "build_squeezenet"]

PAPER = Paper("SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size", "1602.07360", 2016)


@dataclass(frozen=True)
class FireRow:
    """One Fire module: squeeze (1×1) width, then expand widths of the 1×1 and 3×3 branches (output = their sum)."""

    squeeze: int
    expand1x1: int
    expand3x3: int
    pool_before: bool = False  # a 3×3 / stride-2 max pool precedes this module


@dataclass(frozen=True)
class SqueezeNetSpec:
    """A whole version as data: the stem conv (no padding, stride 2, then a 3×3/2 max pool) and the Fire modules."""

    stem: int  # stem output channels
    stem_kernel: int
    fires: tuple[FireRow, ...]  # fire2 … fire9


# Comments give each module's output channels and its output side at a 224 input.
SQUEEZENET_VERSIONS: dict[str, SqueezeNetSpec] = {
    "1_0": SqueezeNetSpec(
        stem=96,  # 7×7/2: 224 → 109, pool → 54
        stem_kernel=7,
        fires=(
            FireRow(squeeze=16, expand1x1=64, expand3x3=64),  # fire2: 128, 54
            FireRow(squeeze=16, expand1x1=64, expand3x3=64),  # fire3: 128
            FireRow(squeeze=32, expand1x1=128, expand3x3=128),  # fire4: 256
            FireRow(squeeze=32, expand1x1=128, expand3x3=128, pool_before=True),  # fire5: 256, 27
            FireRow(squeeze=48, expand1x1=192, expand3x3=192),  # fire6: 384
            FireRow(squeeze=48, expand1x1=192, expand3x3=192),  # fire7: 384
            FireRow(squeeze=64, expand1x1=256, expand3x3=256),  # fire8: 512
            FireRow(squeeze=64, expand1x1=256, expand3x3=256, pool_before=True),  # fire9: 512, 13
        ),
    ),
    "1_1": SqueezeNetSpec(
        stem=64,  # 3×3/2: 224 → 111, pool → 55
        stem_kernel=3,
        fires=(
            FireRow(squeeze=16, expand1x1=64, expand3x3=64),  # fire2: 128, 55
            FireRow(squeeze=16, expand1x1=64, expand3x3=64),  # fire3: 128
            FireRow(squeeze=32, expand1x1=128, expand3x3=128, pool_before=True),  # fire4: 256, 27
            FireRow(squeeze=32, expand1x1=128, expand3x3=128),  # fire5: 256
            FireRow(squeeze=48, expand1x1=192, expand3x3=192, pool_before=True),  # fire6: 384, 13
            FireRow(squeeze=48, expand1x1=192, expand3x3=192),  # fire7: 384
            FireRow(squeeze=64, expand1x1=256, expand3x3=256),  # fire8: 512
            FireRow(squeeze=64, expand1x1=256, expand3x3=256),  # fire9: 512
        ),
    ),
}

_TV = "torchvision 0.29, SqueezeNet{}_Weights.IMAGENET1K_V1 (crop 224)"
TORCHVISION_FIGURES: dict[str, Published] = {
    "1_0": Published(_TV.format("1_0"), 58.092, 80.420, 1_248_424, 0.819e9),
    "1_1": Published(_TV.format("1_1"), 58.178, 80.624, 1_235_496, 0.349e9),
}


class Fire(nn.Module):
    """squeeze 1×1 → ReLU → [expand 1×1 → ReLU | expand 3×3 → ReLU], concatenated; torchvision's child names."""

    def __init__(self, in_channels: int, row: FireRow) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, row.squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(row.squeeze, row.expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(row.squeeze, row.expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


def _max_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


class SqueezeNet(nn.Module):
    """features (stem conv, ReLU, pool, Fire modules and pools) → dropout → 1×1 conv → ReLU → global average pool."""

    def __init__(self, spec: SqueezeNetSpec, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = [nn.Conv2d(3, spec.stem, spec.stem_kernel, stride=2), nn.ReLU(inplace=True)]
        layers.append(_max_pool())
        channels = spec.stem
        for row in spec.fires:
            if row.pool_before:
                layers.append(_max_pool())
            layers.append(Fire(channels, row))
            channels = row.expand1x1 + row.expand3x3
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )
        # torchvision's SqueezeNet initialisation: He uniform (fan-in) for every conv but the classifier, whose
        # weights are normal with std 0.01; all biases zero.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def build_squeezenet(version: str, num_classes: int = 1000, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet ``version`` "1_0" or "1_1"."""
    return SqueezeNet(SQUEEZENET_VERSIONS[version], num_classes, dropout)


for _version in SQUEEZENET_VERSIONS:
    _dotted = _version.replace("_", ".")
    register_variant(
        f"squeezenet{_version}",
        build_squeezenet,
        _version,
        family="squeezenet",
        paper=PAPER,
        published=Published(f"SqueezeNet (arXiv 1602.07360), v{_dotted}: no single-crop figure transcribed"),
        reference=f"torchvision:squeezenet{_version}",
        reference_figures=TORCHVISION_FIGURES[_version],
        variant={"version": _dotted},
    )
