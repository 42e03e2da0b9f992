"""The building blocks of the synthetic networks (:mod:`cnnbench.costmodel.networks`): the layers the zoo's families
are made of, and the blocks of the design spaces after them (NAS, re-parameterised, densely connected, RegNet's and
ConvNeXt's). Each block builder takes (channels in, channels out, stride, activation, rng) and returns the block and
its output channels.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "DESIGN_SPACE_BLOCKS",
    "Add",
    "Branches",
    "ChannelShuffle",
    "ChannelsLast",
    "Concat",
    "DenselyConnected",
    "Ghost",
    "MixedDepthwise",
    "OneShot",
    "SqueezeExcite",
    "Split",
    "activation",
    "conv",
    "light_block",
    "sequence",
    "width",
]


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: reshape, transpose, and the copy that flattens it back."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class Add(nn.Module):
    """``body(x) + shortcut(x)``, in place or not, then ``after`` (an activation, or nothing)."""

    def __init__(
        self, body: nn.Module, inplace: bool, after: nn.Module | None = None, shortcut: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.body, self.inplace = body, inplace
        self.after, self.shortcut = after or nn.Identity(), shortcut or nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        if self.inplace:
            y += self.shortcut(x)
        else:
            y = y + self.shortcut(x)
        return self.after(y)


class SqueezeExcite(nn.Module):
    """A mean (or a global pool), a reduce and an expand 1×1 convolution, a gate, and the broadcast multiply."""

    def __init__(self, channels: int, squeezed: int, act: Callable[[], nn.Module], hard: bool, pool: bool) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1) if pool else None
        self.reduce, self.act = nn.Conv2d(channels, squeezed, 1), act()
        self.expand, self.gate = nn.Conv2d(squeezed, channels, 1), nn.Hardsigmoid() if hard else nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = self.pool(x) if self.pool is not None else x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class Concat(nn.Module):
    """Branches joined along the channels, then ``after``."""

    def __init__(self, *branches: nn.Module, after: nn.Module | None = None) -> None:
        super().__init__()
        self.branches, self.after = nn.ModuleList(branches), after or nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.after(torch.cat([branch(x) for branch in self.branches], 1))


class Split(nn.Module):
    """Half the channels kept, half through a branch, joined and shuffled."""

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch, self.shuffle = branch, ChannelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        kept, through = x.chunk(2, dim=1)
        return self.shuffle(torch.cat((kept, self.branch(through)), 1))


class Branches(nn.Module):
    """Branches summed, then ``after``: a re-parameterisable block as it trains (RepVGG, MobileOne): a k×k and a 1×1
    convolution, each with its BatchNorm, and a BatchNorm alone as the identity branch."""

    def __init__(self, *branches: nn.Module, after: nn.Module | None = None) -> None:
        super().__init__()
        self.branches, self.after = nn.ModuleList(branches), after or nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.branches[0](x)
        for branch in self.branches[1:]:
            y = y + branch(x)
        return self.after(y)


class MixedDepthwise(nn.Module):
    """MixNet's mixed depthwise convolution: the channels split into groups, each group its own kernel size, the
    outputs concatenated."""

    def __init__(self, splits: Sequence[int], kernels: Sequence[int], stride: int) -> None:
        super().__init__()
        self.splits = list(splits)
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False) for c, k in zip(splits, kernels, strict=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([layer(part) for layer, part in zip(self.convs, x.split(self.splits, 1), strict=True)], 1)


class DenselyConnected(nn.Module):
    """DenseNet's dense block: each layer reads the concatenation of the block's input and every earlier layer's
    output, and adds ``growth`` channels; the block returns the concatenation of all."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class OneShot(nn.Module):
    """VoVNet's one-shot aggregation: a chain of 3×3 layers whose outputs, with the input, are concatenated once and
    reduced by a 1×1 layer."""

    def __init__(self, chain: Sequence[nn.Module], reduce: nn.Module) -> None:
        super().__init__()
        self.chain, self.reduce = nn.ModuleList(chain), reduce

    def forward(self, x: Tensor) -> Tensor:
        outputs = [x]
        for layer in self.chain:
            outputs.append(layer(outputs[-1]))
        return self.reduce(torch.cat(outputs, 1))


class Ghost(nn.Module):
    """GhostNet's ghost module: a 1×1 layer makes part of the channels, a cheap depthwise layer the rest from them."""

    def __init__(self, primary: nn.Module, cheap: nn.Module, out: int) -> None:
        super().__init__()
        self.primary, self.cheap, self.out = primary, cheap, out

    def forward(self, x: Tensor) -> Tensor:
        y = self.primary(x)
        return torch.cat((y, self.cheap(y)), 1)[:, : self.out]


class ChannelsLast(nn.Module):
    """ConvNeXt's block: a 7×7 depthwise convolution, then channels-last LayerNorm, a 4× linear expansion, GELU,
    the projection and a per-channel layer scale, back to channels-first and added to the input (input first, so
    that the sum is channels-first, as ConvNeXt's is)."""

    def __init__(self, channels: int, kernel: int, expand: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel, 1, kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.expand, self.act = nn.Linear(channels, expand * channels), nn.GELU()
        self.project = nn.Linear(expand * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        y = self.depthwise(x).permute(0, 2, 3, 1)
        y = self.project(self.act(self.expand(self.norm(y)))) * self.scale
        return x + y.permute(0, 3, 1, 2)


def activation(rng: random.Random) -> Callable[[], nn.Module]:
    kind, inplace = rng.choice(("relu", "relu", "relu6", "silu", "hardswish", "gelu")), rng.random() < 0.6
    return {
        "gelu": lambda: nn.GELU(),
        "relu": lambda: nn.ReLU(inplace),
        "relu6": lambda: nn.ReLU6(inplace),
        "silu": lambda: nn.SiLU(inplace),
        "hardswish": lambda: nn.Hardswish(inplace),
    }[kind]


def width(channels: float, rng: random.Random) -> int:
    """A channel count near ``channels``: a multiple of 8 two times in five, else of 4 or 2, or any count (ReXNet's
    and width multipliers' odd ones)."""
    step = rng.choice((8, 8, 4, 2, 1))
    return max(step, round(channels / step) * step)


def conv(
    c_in: int,
    c_out: int,
    k: int = 1,
    stride: int = 1,
    groups: int = 1,
    act: Callable[[], nn.Module] | None = None,
    norm: bool = True,
) -> list[nn.Module]:
    """A convolution, its BatchNorm (else a bias) and an activation."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=not norm)]
    return layers + ([nn.BatchNorm2d(c_out)] if norm else []) + ([act()] if act else [])


def sequence(*parts: nn.Module | list[nn.Module]) -> nn.Sequential:
    return nn.Sequential(*[m for part in parts for m in (part if isinstance(part, list) else [part])])


def light_block(
    kind: str,
    c: int,
    c_out: int,
    stride: int,
    act: Callable[[], nn.Module],
    rng: random.Random,
) -> tuple[nn.Module, int]:
    """One block of a lightweight network and its output channels."""
    inplace_add = rng.random() < 0.6
    if kind == "separable":
        tail = act if rng.random() < 0.5 else None
        return sequence(conv(c, c, rng.choice((3, 3, 5, 7, 9)), stride, c, act), conv(c, c_out, act=tail)), c_out
    if kind == "dense":
        return sequence(conv(c, c_out, 3, stride, act=act)), c_out
    if kind == "bottleneck":
        wide = width(c * rng.choice((1, 3, 4, 6)), rng)
        squeeze: list[nn.Module] = []
        if rng.random() < 0.5:
            squeezed = max(4, width(rng.choice((c / 4, wide / 4, wide / 24)), rng))
            squeeze = [SqueezeExcite(wide, squeezed, act, rng.random() < 0.4, rng.random() < 0.5)]
        body = sequence(
            conv(c, wide, act=act) if wide != c else [],
            conv(wide, wide, rng.choice((3, 3, 5, 7)), stride, wide, act),
            squeeze,
            conv(wide, c_out),
        )
        return (Add(body, inplace_add) if stride == 1 and c_out == c else body), c_out
    if kind == "grouped":
        groups = rng.choice([g for g in (2, 3, 4, 8) if c % g == 0] or [1])
        mid = max(groups, width(c_out / 4, rng) // groups * groups)
        if stride == 2:  # the shortcut is average-pooled and concatenated: the body adds the channels that grow
            body_out = max(groups, (c_out - c if c_out - c >= groups else c) // groups * groups)
        else:
            body_out = c if c_out == c else max(groups, c_out // groups * groups)
        body = sequence(
            conv(c, mid, groups=groups, act=act),
            ChannelShuffle(groups) if groups > 1 else [],
            conv(mid, mid, 3, stride, mid),
            conv(mid, body_out, groups=groups),
        )
        if stride == 2:
            return Concat(nn.AvgPool2d(3, 2, 1), body, after=act()), c + body_out
        if body_out == c:
            return Add(body, inplace_add, act()), c
        return sequence(body, act()), body_out
    if kind == "split":
        if stride == 1 and c % 2 == 0:
            half = c // 2
            return Split(
                sequence(conv(half, half, act=act), conv(half, half, 3, 1, half), conv(half, half, act=act))
            ), c
        half = max(4, c_out // 4 * 2)
        left = sequence(conv(c, c, 3, stride, c), conv(c, half, act=act))
        right = sequence(conv(c, half, act=act), conv(half, half, 3, stride, half), conv(half, half, act=act))
        return Concat(left, right, after=ChannelShuffle(2)), 2 * half
    if kind == "fire":
        squeezed, norm = max(8, width(c_out / 8, rng)), rng.random() < 0.5
        one, three = c_out // 2, c_out - c_out // 2
        expands = Concat(
            sequence(conv(squeezed, one, act=act, norm=norm)), sequence(conv(squeezed, three, 3, act=act, norm=norm))
        )
        return sequence(conv(c, squeezed, act=act, norm=norm), expands), c_out
    if kind == "inception":
        widths = [max(8, width(c_out * share, rng)) for share in (0.25, 0.125, 0.375, 0.125)]
        reduced = [max(8, width(w * 0.6, rng)) for w in widths[1:3]]
        return Concat(
            sequence(conv(c, widths[0], act=act)),
            sequence(conv(c, reduced[0], act=act), conv(reduced[0], widths[1], 3, act=act)),
            sequence(conv(c, reduced[1], act=act), conv(reduced[1], widths[2], rng.choice((3, 5)), act=act)),
            sequence(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv(c, widths[3], act=act)),
        ), sum(widths)
    if kind in DESIGN_SPACE_BLOCKS:
        return DESIGN_SPACE_BLOCKS[kind](c, c_out, stride, act, rng)
    raise ValueError(f"no block {kind!r}")


# --- blocks from the design spaces of the architectures after the zoo's: NAS, re-parameterised, densely connected,
# RegNet's and ConvNeXt's. Each takes (channels in, channels out, stride, activation, rng) and returns the block and
# its output channels.


def mixed_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """MixNet (arXiv:1907.09595): an inverted bottleneck whose depthwise layer mixes 2-4 kernel sizes of 3 to 9."""
    wide = width(c * rng.choice((3, 6)), rng)
    groups = rng.choice((2, 3, 4))
    splits = [wide // groups + (1 if i < wide % groups else 0) for i in range(groups)]
    squeeze = [SqueezeExcite(wide, max(4, c // 4), act, False, False)] if rng.random() < 0.5 else []
    body = sequence(
        conv(c, wide, act=act),
        MixedDepthwise(splits, (3, 5, 7, 9)[:groups], stride),
        nn.BatchNorm2d(wide),
        act(),
        squeeze,
        conv(wide, c_out),
    )
    return (Add(body, rng.random() < 0.5) if stride == 1 and c_out == c else body), c_out


def reparameterisable_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """RepVGG (arXiv:2101.03697) or MobileOne (arXiv:2206.04040) as trained: k×k, 1×1 and BatchNorm-only branches
    summed; MobileOne's depthwise then pointwise pair when the channels stay."""

    def branches(c_in: int, out: int, k: int, s: int, groups: int) -> Branches:
        parts = [sequence(conv(c_in, out, k, s, groups))]
        if k > 1:
            parts.append(sequence(conv(c_in, out, 1, s, groups)))
        if s == 1 and c_in == out:
            parts.append(nn.BatchNorm2d(out))
        return Branches(*parts, after=act())

    if c_out == c and rng.random() < 0.4:
        return sequence(branches(c, c, 3, stride, c), branches(c, c, 1, 1, 1)), c
    return branches(c, c_out, 3, stride, 1), c_out


def ghost_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """GhostNet (arXiv:1911.11907): a ghost module expands, a depthwise layer strides, a second one projects."""

    def ghost(c_in: int, out: int, relu: bool) -> Ghost:
        made = (out + 1) // 2
        tail = act if relu else None
        return Ghost(sequence(conv(c_in, made, act=tail)), sequence(conv(made, made, 3, 1, made, tail)), out)

    wide = width(c * rng.choice((2, 3, 4, 6)), rng)
    body = sequence(ghost(c, wide, True), conv(wide, wide, rng.choice((3, 5)), stride, wide) if stride == 2 else [])
    body = sequence(body, ghost(wide, c_out, False))
    shortcut = None
    if stride != 1 or c != c_out:
        shortcut = sequence(conv(c, c, 3, stride, c), conv(c, c_out))
    return Add(body, False, shortcut=shortcut), c_out


def densely_connected_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """DenseNet-BC (arXiv:1608.06993): 2-6 pre-activation layers (BatchNorm, ReLU, a 1×1 layer to 4 × growth, then
    a 3×3 layer to growth) on the concatenation of everything before them; a stride-2 block starts with DenseNet's
    transition (BatchNorm, ReLU, a 1×1 layer halving the channels, a 2×2 average pool)."""
    transition: list[nn.Module] = []
    if stride == 2:
        half = max(8, c // 2)
        transition = [nn.BatchNorm2d(c), act(), nn.Conv2d(c, half, 1, bias=False), nn.AvgPool2d(2, 2)]
        c = half
    growth, count = rng.choice((12, 16, 24, 32)), rng.randint(2, 6)
    layers = []
    for i in range(count):
        c_in = c + i * growth
        layers.append(
            sequence(
                nn.BatchNorm2d(c_in),
                act(),
                nn.Conv2d(c_in, 4 * growth, 1, bias=False),
                nn.BatchNorm2d(4 * growth),
                act(),
                nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
            )
        )
    return sequence(*transition, DenselyConnected(layers)), c + count * growth


def one_shot_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """VoVNet (arXiv:1904.09730): 3-5 chained 3×3 layers, aggregated once by a 1×1 layer; a stride-2 block starts
    with VoVNet's 3×3/2 max pool."""
    chained = max(8, width(c_out * rng.choice((0.25, 0.5)), rng))
    count = rng.randint(3, 5)
    chain = [sequence(conv(c if i == 0 else chained, chained, 3, act=act)) for i in range(count)]
    block = OneShot(chain, sequence(conv(c + count * chained, c_out, act=act)))
    return (sequence(nn.MaxPool2d(3, 2, 1, ceil_mode=True), block) if stride == 2 else block), c_out


def regnet_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """RegNet's X (and, with squeeze-excitation, Y) block (arXiv:2003.13678): 1×1, a 3×3 group layer of group
    width 8-64, 1×1; a strided 1×1 projection as the shortcut when the shape changes."""
    group_width = rng.choice((8, 16, 24, 32, 48, 64))
    inner = max(group_width, round(c_out * rng.choice((1, 0.5, 0.25)) / group_width) * group_width)
    squeeze = [SqueezeExcite(inner, max(4, c // 4), act, False, True)] if rng.random() < 0.5 else []
    body = sequence(
        conv(c, inner, act=act),
        conv(inner, inner, 3, stride, inner // group_width, act),
        squeeze,
        conv(inner, c_out),
    )
    shortcut = None if stride == 1 and c == c_out else sequence(conv(c, c_out, 1, stride))
    return Add(body, rng.random() < 0.6, act(), shortcut), c_out


def convnext_block(
    c: int, c_out: int, stride: int, act: Callable[[], nn.Module], rng: random.Random
) -> tuple[nn.Module, int]:
    """ConvNeXt (arXiv:2201.03545): a 7×7 (or 5×5, 9×9) depthwise layer, channels-last LayerNorm, a 4× MLP with
    GELU and a layer scale, added to the input; a 2×2/2 convolution downsamples before it."""
    downsample = [nn.Conv2d(c, c_out, 2, 2)] if stride == 2 or c != c_out else []
    if downsample and stride == 1:
        downsample = [nn.Conv2d(c, c_out, 1)]
    return sequence(*downsample, ChannelsLast(c_out, rng.choice((7, 7, 5, 9)), rng.choice((3, 4)))), c_out


DESIGN_SPACE_BLOCKS = {
    "mixed": mixed_block,
    "reparameterisable": reparameterisable_block,
    "ghost": ghost_block,
    "densely_connected": densely_connected_block,
    "one_shot": one_shot_block,
    "regnet": regnet_block,
    "convnext": convnext_block,
}
