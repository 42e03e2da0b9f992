"""What the cost model's formula needs of each op of a counting pass (:func:`cnnbench.measure.profiling.profile`'s
layers): its cost key, its work, and the sizes that decide its parallel step, its lanes and its fresh pages.

Every op has a *cost key*: the counting engine's kind for convolutions (dense, 1×1, depthwise, group) and linear
layers, ``pool_global`` for a pool that leaves no spatial extent (squeeze-excitation's mean, the classifier's global
average), and the aten op otherwise (``native_batch_norm``, ``relu_``, ``silu``, ``add_``, ``mul``, ``cat``,
``max_pool2d_with_indices``...), so that an in-place activation, which allocates nothing, is costed apart from one
that writes a new tensor.

The features of a table of ops are one array per name, one value per op (:func:`op_features`); the fit and the
prediction both read them (:mod:`cnnbench.costmodel.fit`, :mod:`cnnbench.costmodel.predict`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from cnnbench import allocator

__all__ = [
    "Features",
    "GLOBAL_POOL",
    "KINDS_AS_KEYS",
    "cost_key",
    "misaligned",
    "op_features",
    "parse_shapes",
    "select",
    "vector_channels",
]

# One array per feature, one value per op: key, kind, size, arithmetic, mac_bytes, fresh_bytes, channels, and
# misaligned once the lanes are known.
Features = dict[str, np.ndarray]

GLOBAL_POOL = "pool_global"
KINDS_AS_KEYS = ("conv", "conv_1x1", "conv_depthwise", "conv_group", "linear")  # costed by kind, whatever the op


def parse_shapes(text: object) -> list[tuple[int, ...]]:
    """The shapes of the profile's ``"1×3×224×224, 16×3×3×3"`` (none for a blank, or a CSV's NaN)."""
    if not isinstance(text, str) or not text:
        return []
    return [tuple(int(n) for n in shape.split("×") if n) for shape in text.split(", ")]


def vector_channels(first_input: Sequence[int], output: Sequence[int]) -> tuple[int, ...]:
    """The channel counts an op's vector loops run over: of its first input and of its output, dim 1 of a 4-D
    (NCHW) tensor and the features of a 2-D one. Other ranks give none."""
    return tuple(shape[1] for shape in (first_input, output) if len(shape) in (2, 4))


def misaligned(channels: Iterable[Sequence[int]], lanes: int) -> np.ndarray:
    """Which ops have a channel count that is not a multiple of ``lanes``."""
    return np.array([any(c % lanes for c in counts) for counts in channels], dtype=bool)


def cost_key(kind: str, op: str, output: Sequence[int]) -> str:
    """The key an op is costed by: its kind for convolutions and linear layers, ``pool_global`` for a pool whose
    output has no spatial extent left (``1×C×1×1`` or ``1×C``), else its aten op (``relu_`` apart from ``relu``)."""
    if kind in KINDS_AS_KEYS:
        return kind
    if kind == "pool" and (len(output) == 2 or (len(output) == 4 and output[2] * output[3] == 1)):
        return GLOBAL_POOL
    return op


def op_features(layers: pd.DataFrame) -> Features:
    """What the formula needs of each op of a counting pass's layers: ``key``, ``kind``, ``arithmetic``
    (multiply-adds plus element-wise operations), ``mac_bytes``, ``size`` (elements of the input an op parallelises
    over: its first input, a linear layer's features, a concat's output), ``fresh_bytes`` (the output of an op that
    is not in place, when it passes the allocator's mmap threshold, :data:`allocator.MMAP_THRESHOLD_BYTES`: such a
    block is mapped afresh at every forward) and ``channels`` (:func:`vector_channels`)."""
    inputs = [parse_shapes(s) for s in layers["input_shapes"]]
    outputs = [parse_shapes(s) for s in layers["output_shape"]]
    kinds, ops = layers["kind"].to_numpy(dtype=object), layers["op"].to_numpy(dtype=object)
    sizes, fresh, channels, keys = [], [], [], []
    for kind, op, ins, outs in zip(kinds, ops, inputs, outputs, strict=True):
        out = outs[0] if outs else ()
        sizes.append(math.prod(_parallel_shape(kind, op, ins, out)))
        out_bytes = 4 * math.prod(out) if out else 0
        fresh.append(out_bytes if out_bytes > allocator.MMAP_THRESHOLD_BYTES and not op.endswith("_") else 0)
        channels.append(vector_channels(ins[0] if ins else (), out))
        keys.append(cost_key(kind, op, out))
    return {
        "key": np.array(keys, dtype=object),
        "kind": kinds,
        "size": np.array(sizes, dtype=float),
        "arithmetic": (layers["flops"] + layers["flops_elementwise"]).to_numpy(dtype=float),
        "mac_bytes": layers["mac_bytes"].to_numpy(dtype=float),
        "fresh_bytes": np.array(fresh, dtype=float),
        "channels": _objects(channels),
    }


def select(features: Features, index: np.ndarray) -> Features:
    """The features of the ops at ``index``."""
    return {name: values[index] for name, values in features.items()}


def _parallel_shape(kind: str, op: str, inputs: list[tuple[int, ...]], output: tuple[int, ...]) -> tuple[int, ...]:
    """The tensor an op splits among threads: a concat's output, the features of a linear layer (``addmm``'s
    inputs are bias, features, weights), else the first input."""
    if kind == "concat" or not inputs:
        return output
    return inputs[1] if op == "addmm" and len(inputs) > 1 else inputs[0]


def _objects(values: Sequence[object]) -> np.ndarray:
    """A 1-D object array of ``values`` (tuples stay tuples, whatever their lengths)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
