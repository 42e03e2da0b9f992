"""AlexNet, the single-tower variant that torchvision ships.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS 2012,
has no arXiv id. torchvision's network is the one-tower model of Krizhevsky, "One weird trick for parallelizing
convolutional neural networks", arXiv 1404.5997, which is therefore the paper cited here: five convs of widths
64/192/384/256/256, no local response normalisation, and an adaptive average pool to 6×6 before the classifier, so
that inputs other than 224 still reach the 9216-wide first linear layer.
Module names follow torchvision's ``alexnet``, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._registry import ModelInfo, Paper, Published, register_model

__all__ = ["AlexNetConv", "ALEXNET_CONVS", "ALEXNET_FC", "AlexNet", "alexnet"]

PAPER = Paper("One weird trick for parallelizing convolutional neural networks", "1404.5997", 2014)


@dataclass(frozen=True)
class AlexNetConv:
    """One convolutional layer (conv → ReLU), optionally followed by a 3×3 / stride-2 max pool."""

    out: int  # output channels
    kernel: int
    stride: int
    padding: int
    pool: bool  # a 3×3, stride-2 max pool follows


# The single-tower feature extractor, as torchvision builds it. Comments give the output side at a 224 input.
ALEXNET_CONVS: tuple[AlexNetConv, ...] = (
    AlexNetConv(out=64, kernel=11, stride=4, padding=2, pool=True),  # 55 → pool 27
    AlexNetConv(out=192, kernel=5, stride=1, padding=2, pool=True),  # 27 → pool 13
    AlexNetConv(out=384, kernel=3, stride=1, padding=1, pool=False),  # 13
    AlexNetConv(out=256, kernel=3, stride=1, padding=1, pool=False),  # 13
    AlexNetConv(out=256, kernel=3, stride=1, padding=1, pool=True),  # 13 → pool 6
)
ALEXNET_POOL_SIDE = 6  # adaptive average pool to 6×6 before the classifier
ALEXNET_FC: tuple[int, ...] = (4096, 4096)  # hidden widths of the classifier, before the num_classes layer

# torchvision's own figures (reference/papers.md §6; GFLOPS = ``_ops``, multiply-adds), kept apart from the paper's.
TORCHVISION_FIGURES = Published(
    "torchvision 0.29, AlexNet_Weights.IMAGENET1K_V1 (crop 224)", 56.522, 79.066, 61_100_840, 0.714e9
)


class AlexNet(nn.Module):
    """features (conv/ReLU/pool) → 6×6 average pool → dropout/linear/ReLU ×2 → linear.

    torchvision puts dropout *before* each hidden linear layer (``classifier.0`` and ``.3``), so the linear layers are
    ``classifier.1``, ``.4``, ``.6``; the order below keeps those keys.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for row in ALEXNET_CONVS:
            layers += [nn.Conv2d(channels, row.out, row.kernel, row.stride, row.padding), nn.ReLU(inplace=True)]
            if row.pool:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            channels = row.out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(ALEXNET_POOL_SIDE)
        head: list[nn.Module] = []
        width = channels * ALEXNET_POOL_SIDE**2
        for hidden in ALEXNET_FC:
            head += [nn.Dropout(p=dropout), nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)
        # No explicit initialisation: torchvision's AlexNet keeps PyTorch's default (uniform, fan-in) for every layer.

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    ModelInfo(
        name="alexnet",
        family="alexnet",
        paper=PAPER,
        resolution=224,
        published=Published("One weird trick (arXiv 1404.5997): no single-crop figure transcribed"),
        reference="torchvision:alexnet",
        reference_figures=TORCHVISION_FIGURES,
        variant={"towers": 1},
    )
)
def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """torchvision's single-tower AlexNet."""
    return AlexNet(num_classes=num_classes, dropout=dropout)
