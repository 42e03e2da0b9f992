"""Building blocks shared by every family: one place for conv-BN-activation, squeeze-and-excitation, channel shuffle,
stochastic depth and channel rounding.

Module attribute names and child order are chosen so that state_dict keys equal torchvision's (``0.weight`` for the
conv of a conv-BN-activation, ``fc1``/``fc2`` in squeeze-and-excitation): a torchvision checkpoint loads as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "make_divisible",
    "ConvBNAct",
    "inverted_residual_layers",
    "SqueezeExcite",
    "StochasticDepth",
    "channel_shuffle",
    "ChannelShuffle",
    "init_weights",
]

# ImageNet's per-channel statistics (RGB, pixels in [0, 1]): what every reference implementation normalises with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Activation = Callable[..., nn.Module]
Norm = Callable[[int], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never going more than 10% below ``value``.

    This is the rounding of the TensorFlow reference implementations (EfficientNet's ``round_filters``,
    MobileNetV2/V3's ``_make_divisible``) and of torchvision; channel counts of scaled models depend on it.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) → normalization → activation, with 'same' padding for odd kernels.

    Children are numbered 0, 1, 2 like torchvision's ``Conv2dNormActivation``; ``act=None`` leaves the activation
    out (a linear projection), ``norm=None`` leaves the norm out and gives the conv a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm: Norm | None = nn.BatchNorm2d,
        act: Activation | None = nn.ReLU,
        padding: int | None = None,
        dilation: int = 1,
    ) -> None:
        padding = (kernel - 1) // 2 * dilation if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                dilation=dilation,
                groups=groups,
                bias=norm is None,
            )
        ]
        if norm is not None:
            layers.append(norm(out_channels))
        if act is not None:
            layers.append(_make_act(act))
        super().__init__(*layers)
        self.out_channels = out_channels


def _make_act(act: Activation) -> nn.Module:
    # In-place activations save memory; SiLU/Hardswish/ReLU all take ``inplace``.
    try:
        return act(inplace=True)
    except TypeError:
        return act()


def inverted_residual_layers(
    in_channels: int,
    expanded: int,
    out_channels: int,
    kernel: int,
    stride: int,
    act: Activation,
    norm: Norm,
    se: nn.Module | None = None,
) -> list[nn.Module]:
    """The layers of a mobile inverted bottleneck: 1×1 expand → k×k depthwise → [SE] → 1×1 linear projection.

    The expansion conv is left out when ``expanded == in_channels`` (MobileNetV2's t = 1, MobileNetV3's first
    Large block). Shared by EfficientNet's MBConv and MobileNetV2/V3, whose blocks differ only in how they nest
    these layers.
    """
    layers: list[nn.Module] = []
    if expanded != in_channels:
        layers.append(ConvBNAct(in_channels, expanded, 1, norm=norm, act=act))
    layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, norm=norm, act=act))
    if se is not None:
        layers.append(se)
    layers.append(ConvBNAct(expanded, out_channels, 1, norm=norm, act=None))  # linear bottleneck: no activation
    return layers


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., arXiv 1709.01507): global pool → 1×1 reduce → act → 1×1 expand → gate.

    The reduced width is decided by the caller, because families disagree: EfficientNet takes a quarter of the
    block's *input* channels, MobileNetV3 a quarter of the *expanded* channels rounded to 8.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        act: Activation = nn.ReLU,
        gate: Activation = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = act()
        self.scale_activation = gate()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class StochasticDepth(nn.Module):
    """Drop a residual branch for a whole sample with probability ``p`` while training (Huang et al., 1603.09382).

    Kept samples are scaled by 1/(1-p) so that evaluation needs no rescaling. Identity in eval mode.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"stochastic depth probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle (arXiv 1707.01083 §3.1): view channels as (groups, c/g), transpose, flatten."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelShuffle(nn.Module):
    """:func:`channel_shuffle` as a module, so that it shows up in module paths."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def init_weights(model: nn.Module, linear_std: float | None = None) -> None:
    """The initialisation the reference implementations use for convolutional classifiers.

    Convs: He normal, fan-out. Norms: weight 1, bias 0. Linear: uniform ±1/√out (EfficientNet) or,
    when ``linear_std`` is given, normal with that std (MobileNetV2, MobileNetV3).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is None:
                bound = 1.0 / m.out_features**0.5
                nn.init.uniform_(m.weight, -bound, bound)
            else:
                nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
