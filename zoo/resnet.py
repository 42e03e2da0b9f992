"""ResNet-18/34/50/101/152.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", arXiv 1512.03385. The depths are the paper's
Table 1: a 7×7/2 stem and a 3×3/2 max pool, then four stages (conv2_x … conv5_x) of basic blocks (two 3×3 convs) or
bottlenecks (1×1 reduce → 3×3 → 1×1 expand ×4), with a projection shortcut (1×1 conv + BN, the paper's option B)
wherever the shape changes.

Bottlenecks put the stride-2 of a downsampling block on the **3×3** conv, as torchvision does ("ResNet v1.5"); the
paper's original puts it on the first 1×1 conv. v1.5 runs that 1×1 conv at the stage's input resolution, four times
the positions, so ResNet-50 has about 0.23 G more multiply-adds than the paper's layout (``stride_in_3x3=False``
builds that one; tests/test_classic.py computes the difference by hand). Module names follow torchvision's
``resnetN``, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._layers import init_weights
from ._registry import Paper, Published, register_variant

__all__ = ["BasicBlock", "Bottleneck", "ResNetSpec", "RESNET_DEPTHS", "STAGE_WIDTHS", "ResNet", "build_resnet"]

PAPER = Paper("Deep Residual Learning for Image Recognition", "1512.03385", 2015)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """Projection shortcut (1×1 conv + BN) where the shape changes, identity (None) elsewhere."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """3×3 conv → BN → ReLU → 3×3 conv → BN, plus shortcut, → ReLU. Output width = ``width``."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, stride_in_3x3: bool = True) -> None:
        super().__init__()
        del stride_in_3x3  # taken for a uniform constructor; both convs are 3×3, the stride has one place to go
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _shortcut(in_channels, width, stride)

    def residual_norm(self) -> nn.BatchNorm2d:
        """The BN that closes the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        # One op per statement, rebinding ``out``: a nested call would hold each input until the next BN finished,
        # and the shortcut comes last so its output is not held during the main branch. Both lower peak memory.
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out += x if self.downsample is None else self.downsample(x)  # in place, as torchvision
        return self.relu(out)


class Bottleneck(nn.Module):
    """1×1 reduce → BN → ReLU → 3×3 → BN → ReLU → 1×1 expand → BN, plus shortcut, → ReLU. Output = 4 × ``width``.

    ``stride_in_3x3`` (default, torchvision's v1.5) strides the 3×3 conv; ``False`` strides the first 1×1 conv, as
    the paper. Parameters and state_dict keys are the same either way.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, stride_in_3x3: bool = True) -> None:
        super().__init__()
        out_channels = width * self.expansion
        stride_1x1, stride_3x3 = (1, stride) if stride_in_3x3 else (stride, 1)
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride_1x1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride_3x3, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def residual_norm(self) -> nn.BatchNorm2d:
        """The BN that closes the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)  # one op per statement and the shortcut last, as in BasicBlock (peak memory)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        out += x if self.downsample is None else self.downsample(x)  # in place, as torchvision
        return self.relu(out)


@dataclass(frozen=True)
class ResNetSpec:
    """One column of the paper's Table 1: the block type and the number of blocks in each of the four stages."""

    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]  # blocks in conv2_x, conv3_x, conv4_x, conv5_x


# The paper's Table 1. Stage widths are the basic block's width and the bottleneck's inner (3×3) width; a bottleneck
# stage outputs 4× that. Stages 2–4 start with a stride-2 block.
STAGE_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)
STEM_WIDTH = 64
RESNET_DEPTHS: dict[int, ResNetSpec] = {
    18: ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    34: ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    50: ResNetSpec(Bottleneck, (3, 4, 6, 3)),
    101: ResNetSpec(Bottleneck, (3, 4, 23, 3)),
    152: ResNetSpec(Bottleneck, (3, 8, 36, 3)),
}

# torchvision's own figures (IMAGENET1K_V1 weights, the original recipe, crop 224; GFLOPS = ``_ops``, multiply-adds),
# reference/papers.md §6. Its IMAGENET1K_V2 weights (a newer recipe) are not the ones described here.
_TV = "torchvision 0.29, ResNet{}_Weights.IMAGENET1K_V1 (crop 224)"
TORCHVISION_FIGURES: dict[int, Published] = {
    18: Published(_TV.format(18), 69.758, 89.078, 11_689_512, 1.814e9),
    34: Published(_TV.format(34), 73.314, 91.420, 21_797_672, 3.664e9),
    50: Published(_TV.format(50), 76.130, 92.862, 25_557_032, 4.089e9),
    101: Published(_TV.format(101), 77.374, 93.546, 44_549_160, 7.801e9),
    152: Published(_TV.format(152), 78.312, 94.046, 60_192_808, 11.514e9),
}


class ResNet(nn.Module):
    """Stem (7×7/2 conv, BN, ReLU, 3×3/2 max pool) → ``layer1`` … ``layer4`` → global average pool → linear."""

    def __init__(
        self,
        spec: ResNetSpec,
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        stride_in_3x3: bool = True,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.conv1 = nn.Conv2d(3, STEM_WIDTH, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = STEM_WIDTH
        for i, (width, blocks) in enumerate(zip(STAGE_WIDTHS, spec.layers, strict=True)):
            stage: list[nn.Module] = []
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                stage.append(spec.block(channels, width, stride, stride_in_3x3))
                channels = width * spec.block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

        # torchvision's ResNet initialisation: convs He normal (fan-out), BN 1/0, and the classifier left at
        # PyTorch's default (init_weights sets linear layers, so the fc is reset to that default afterwards).
        init_weights(self)
        self.fc.reset_parameters()
        if zero_init_residual:  # each block starts as an identity (Goyal et al., arXiv 1706.02677)
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.residual_norm().weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        # One stage at a time, rebinding x, so each stage's input is freed as soon as the next one starts (a nested
        # call would keep the stem's output alive through all four stages: 0.8 MB more peak memory at 224).
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_resnet(
    depth: int, num_classes: int = 1000, zero_init_residual: bool = False, stride_in_3x3: bool = True
) -> ResNet:
    """A ResNet of one of the paper's depths (18, 34, 50, 101, 152)."""
    return ResNet(RESNET_DEPTHS[depth], num_classes, zero_init_residual, stride_in_3x3)


# The registered builders leave ``stride_in_3x3`` at build_resnet's default (torchvision's v1.5 layout).
def _resnet_builder(depth: int, /, num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    return build_resnet(depth, num_classes, zero_init_residual)


for _depth, _spec in RESNET_DEPTHS.items():
    register_variant(
        f"resnet{_depth}",
        _resnet_builder,
        _depth,
        family="resnet",
        paper=PAPER,
        published=Published(f"ResNet (arXiv 1512.03385), ResNet-{_depth}: no single-crop figure transcribed"),
        reference=f"torchvision:resnet{_depth}",
        reference_figures=TORCHVISION_FIGURES[_depth],
        variant={"block": _spec.block.__name__, "layers": _spec.layers},
    )
