"""GoogLeNet (Inception v1), with its two auxiliary classifiers.

Szegedy et al., "Going Deeper with Convolutions", arXiv 1409.4842. The Inception rows are the paper's Table 1
(columns #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj).

Where torchvision departs from the paper, this file follows torchvision, because its checkpoint (ported from the
original weights) is the format and the outputs must match it:

- every conv is conv (no bias) → BatchNorm (eps 0.001) → ReLU (torchvision's ``BasicConv2d``); the paper has no BN;
- the "5×5" branch uses a **3×3** conv (a known torchvision quirk, pytorch/vision#906, kept for its weights), so its
  multiply-adds and parameters are lower than the paper's 5×5 would give;
- ``maxpool4`` (before 5a) is 2×2 / stride 2, the others 3×3 / stride 2, all with ``ceil_mode``;
- the auxiliary heads pool adaptively to 4×4.

The auxiliary heads exist as modules (``aux1``/``aux2``, torchvision's keys) but run in training mode only: eval
returns the logits tensor alone. torchvision's published ``num_params`` (6,624,904) counts the network without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._layers import IMAGENET_MEAN, IMAGENET_STD
from ._registry import ModelInfo, Paper, Published, register_model

__all__ = ["InceptionRow", "GOOGLENET_INCEPTIONS", "GoogLeNetOutputs", "GoogLeNet", "googlenet"]

PAPER = Paper("Going Deeper with Convolutions", "1409.4842", 2014)


@dataclass(frozen=True)
class InceptionRow:
    """One row of the paper's Table 1: an Inception module's branch widths."""

    name: str  # "3a" … "5b"; the module is ``inception{name}``
    ch1x1: int  # #1×1
    ch3x3_reduce: int  # #3×3 reduce
    ch3x3: int  # #3×3
    ch5x5_reduce: int  # #5×5 reduce
    ch5x5: int  # #5×5 (a 3×3 conv here, as in torchvision)
    pool_proj: int  # pool proj
    pool_after: int = 0  # kernel of the stride-2 max pool that follows (0: none)
    aux_after: bool = False  # an auxiliary classifier taps this module's output (training only)

    @property
    def out(self) -> int:
        """Output channels: the four branches concatenated."""
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


# The paper's Table 1. Comments give the input side at 224 and the output channels.
GOOGLENET_INCEPTIONS: tuple[InceptionRow, ...] = (
    InceptionRow(  # 28×28, 256
        name="3a", ch1x1=64, ch3x3_reduce=96, ch3x3=128, ch5x5_reduce=16, ch5x5=32, pool_proj=32
    ),
    InceptionRow(  # 28×28, 480
        name="3b", ch1x1=128, ch3x3_reduce=128, ch3x3=192, ch5x5_reduce=32, ch5x5=96, pool_proj=64, pool_after=3
    ),
    InceptionRow(  # 14×14, 512
        name="4a", ch1x1=192, ch3x3_reduce=96, ch3x3=208, ch5x5_reduce=16, ch5x5=48, pool_proj=64, aux_after=True
    ),
    InceptionRow(  # 14×14, 512
        name="4b", ch1x1=160, ch3x3_reduce=112, ch3x3=224, ch5x5_reduce=24, ch5x5=64, pool_proj=64
    ),
    InceptionRow(  # 14×14, 512
        name="4c", ch1x1=128, ch3x3_reduce=128, ch3x3=256, ch5x5_reduce=24, ch5x5=64, pool_proj=64
    ),
    InceptionRow(  # 14×14, 528
        name="4d", ch1x1=112, ch3x3_reduce=144, ch3x3=288, ch5x5_reduce=32, ch5x5=64, pool_proj=64, aux_after=True
    ),
    InceptionRow(  # 14×14, 832; torchvision pools 2×2 here
        name="4e", ch1x1=256, ch3x3_reduce=160, ch3x3=320, ch5x5_reduce=32, ch5x5=128, pool_proj=128, pool_after=2
    ),
    InceptionRow(  # 7×7, 832
        name="5a", ch1x1=256, ch3x3_reduce=160, ch3x3=320, ch5x5_reduce=32, ch5x5=128, pool_proj=128
    ),
    InceptionRow(  # 7×7, 1024
        name="5b", ch1x1=384, ch3x3_reduce=192, ch3x3=384, ch5x5_reduce=48, ch5x5=128, pool_proj=128
    ),
)

TORCHVISION_FIGURES = Published(
    "torchvision 0.29, GoogLeNet_Weights.IMAGENET1K_V1 (crop 224); num_params without the auxiliary heads",
    69.778,
    89.530,
    6_624_904,
    1.498e9,
)

# ``transform_input`` maps inputs normalised with ImageNet's statistics to the (x - 0.5) / 0.5 normalisation that
# the ported weights expect.


class GoogLeNetOutputs(NamedTuple):
    """Training-mode outputs; the field order is torchvision's, so its training loops unpack them unchanged."""

    logits: Tensor
    aux_logits2: Tensor
    aux_logits1: Tensor


class BasicConv2d(nn.Module):
    """Conv (no bias) → BatchNorm (eps 0.001) → ReLU, with torchvision's child names ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches, concatenated: 1×1 | 1×1 → 3×3 | 1×1 → "5×5" (3×3) | 3×3 max pool → 1×1."""

    def __init__(self, in_channels: int, row: InceptionRow) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, row.ch1x1, 1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, row.ch3x3_reduce, 1), BasicConv2d(row.ch3x3_reduce, row.ch3x3, 3, padding=1)
        )
        self.branch3 = nn.Sequential(  # torchvision's 3×3 where the paper has 5×5 (see the module docstring)
            BasicConv2d(in_channels, row.ch5x5_reduce, 1), BasicConv2d(row.ch5x5_reduce, row.ch5x5, 3, padding=1)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True), BasicConv2d(in_channels, row.pool_proj, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4×4 average pool → 1×1 conv (128) → linear 1024 → ReLU → dropout → linear."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, 4)), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class GoogLeNet(nn.Module):
    """Stem (7×7/2 conv, pool, 1×1, 3×3, pool) → Inception modules with pools → average pool → dropout → linear.

    Children are created in torchvision's order and under its names (``conv1`` … ``inception5b``, ``aux1``,
    ``aux2``, ``fc``). In training mode with ``aux_logits`` the forward returns :class:`GoogLeNetOutputs`; otherwise
    the logits tensor.
    """

    def __init__(
        self,
        table: tuple[InceptionRow, ...] = GOOGLENET_INCEPTIONS,
        num_classes: int = 1000,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        self.table = table
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        channels, pools, aux_inputs = 192, 2, []
        for row in table:
            self.add_module(f"inception{row.name}", Inception(channels, row))
            channels = row.out
            if row.aux_after:
                aux_inputs.append(channels)
            if row.pool_after:
                pools += 1
                self.add_module(f"maxpool{pools}", nn.MaxPool2d(row.pool_after, stride=2, ceil_mode=True))
        for i, aux_in in enumerate(aux_inputs, start=1):
            self.add_module(f"aux{i}", InceptionAux(aux_in, num_classes, dropout_aux) if aux_logits else None)

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels, num_classes)
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        # Not persistent: no state_dict key, so torchvision's checkpoint format is unchanged.
        self.register_buffer("_input_scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_input_shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's GoogLeNet initialisation: conv and linear weights truncated normal (std 0.01, cut at ±2,
        # i.e. ±200 std, so practically untruncated), BN 1/0; linear biases keep PyTorch's default.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        if self.transform_input:
            x = x * self._input_scale + self._input_shift
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        want_aux = self.training and self.aux_logits
        aux: list[Tensor] = []
        pools = 2
        for row in self.table:
            x = getattr(self, f"inception{row.name}")(x)
            if row.aux_after and want_aux:
                aux.append(getattr(self, f"aux{len(aux) + 1}")(x))
            if row.pool_after:
                pools += 1
                x = getattr(self, f"maxpool{pools}")(x)
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if want_aux:
            return GoogLeNetOutputs(logits, aux_logits2=aux[1], aux_logits1=aux[0])
        return logits


@register_model(
    ModelInfo(
        name="googlenet",
        family="googlenet",
        paper=PAPER,
        resolution=224,
        published=Published("GoogLeNet (arXiv 1409.4842): no single-crop figure transcribed"),
        reference="torchvision:googlenet",
        reference_figures=TORCHVISION_FIGURES,
        variant={"inceptions": len(GOOGLENET_INCEPTIONS)},
    )
)
def googlenet(
    num_classes: int = 1000,
    aux_logits: bool = True,
    transform_input: bool = False,
    dropout: float = 0.2,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """GoogLeNet as torchvision builds it. Pass ``transform_input=True`` to run torchvision's ported weights on
    ImageNet-normalised inputs (torchvision sets it when it loads them); ``aux_logits=False`` drops the heads."""
    return GoogLeNet(
        num_classes=num_classes,
        aux_logits=aux_logits,
        transform_input=transform_input,
        dropout=dropout,
        dropout_aux=dropout_aux,
    )
