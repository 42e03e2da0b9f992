"""The counting engine: one pass on the meta device records every aten op with its cost.

Units, stated where the numbers are made:

- ``flops``: multiply-adds of convolutions, linear layers and matrix products; **one fused multiply-add = 1**, the
  convention of every paper in the zoo and of fvcore (torch's ``FlopCounterMode`` counts 2 per multiply-add).
- ``flops_elementwise``: the other arithmetic, one per output element of each element-wise op (activation, add,
  mul, bias), one per element for an inference BatchNorm (it folds to one multiply-add), one per window element for
  pooling. Counted apart, never mixed into ``flops``.
- ``mac``: memory access cost as ShuffleNetV2 (arXiv 1807.11164, §2) defines it, in elements: every input read and
  every output written, weights included. A 1×1 conv costs hw(c1+c2) + c1·c2; a group conv hw(c1+c2) + c1·c2/g.
  ``mac_bytes`` is the same traffic in bytes for the dtypes in use. Under autocast (fp16/bf16, as every target
  runs them) the bytes really moved are counted: weights and buffers at their stored dtype (fp32: autocast keeps
  them so and casts per op), activations at the autocast dtype (``CountingMode(weight_itemsize=4)``). The cast
  copy autocast makes of each weight is not counted, and the few ops autocast runs in fp32 count at the autocast
  dtype too.

Each op's cost is a small function in :data:`HANDLES`, keyed by aten op; views and metadata ops are in
:data:`ZERO_COST`. An op in neither is recorded with kind ``other`` and listed in ``unknown_ops``: never silently
zero. Memory is tracked in the same pass: each output storage is live from the op that makes it until Python frees
it, exactly as in eager execution, which gives the inference activation peak without computing anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["OpCount", "HANDLES", "ZERO_COST", "KINDS", "CountingMode", "RECORD_FIELDS", "tensors_in"]

aten = torch.ops.aten

# The op kinds, in the order tables show them.
KINDS = (
    "conv",  # dense k×k convolution
    "conv_1x1",  # pointwise convolution
    "conv_depthwise",
    "conv_group",
    "linear",  # linear layers and matrix products
    "norm",
    "activation",
    "pool",
    "elementwise",  # add, mul, ...
    "concat",
    "shuffle",  # copies made by transpose/permute + reshape (channel shuffle) or contiguous()
    "other",
)


@dataclass(frozen=True)
class OpCount:
    """What a handle counts of one op (the units: the module docstring)."""

    kind: str
    flops: int = 0  # multiply-adds
    flops_elementwise: int = 0
    mac: int = 0  # elements read + written, weights included


def tensors_in(values: Sequence[Any]) -> list[Tensor]:
    """Tensors among ``values``, looking one level into lists and tuples (aten arguments never nest deeper)."""
    found: list[Tensor] = []
    for v in values:
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found.extend(t for t in v if isinstance(t, Tensor))
    return found


def _numel(values: Sequence[Any]) -> int:
    return sum(t.numel() for t in tensors_in(values))


# --- handles: (args, kwargs, outputs) -> OpCount -----------------------------------------------------------------

Handle = Callable[[tuple[Any, ...], dict[str, Any], list[Tensor]], OpCount]


def _convolution(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    return _conv_count(args[0], args[1], args[2], transposed=bool(args[6]), groups=int(args[8]), y=out[0])


def _conv2d(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    """aten.conv2d, seen before decomposition on real tensors under inference mode (latency breakdowns)."""
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    groups = int(args[6]) if len(args) > 6 else int(kwargs.get("groups", 1))
    return _conv_count(args[0], args[1], bias, transposed=False, groups=groups, y=out[0])


def _conv_count(x: Tensor, weight: Tensor, bias: Tensor | None, transposed: bool, groups: int, y: Tensor) -> OpCount:
    per_output = weight[0].numel()  # (c_in / groups) · kh · kw
    if transposed:  # each input element is scattered through c_out/groups · kh · kw weights
        flops = x.numel() * weight.numel() // weight.shape[0]
    else:
        flops = y.numel() * per_output
    c_in = x.shape[1]
    kernel = tuple(weight.shape[2:])
    if groups == 1:
        kind = "conv_1x1" if all(k == 1 for k in kernel) else "conv"
    elif groups == c_in:
        kind = "conv_depthwise"
    else:
        kind = "conv_group"
    mac = x.numel() + y.numel() + weight.numel()
    elementwise = 0
    if bias is not None:
        mac += bias.numel()
        elementwise = y.numel()
    return OpCount(kind, flops, elementwise, mac)


def _addmm(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    bias, a, b = args[0], args[1], args[2]
    y = out[0]
    flops = a.shape[0] * a.shape[1] * b.shape[1]
    return OpCount("linear", flops, y.numel(), a.numel() + b.numel() + bias.numel() + y.numel())


def _linear(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    """aten.linear before decomposition (inference mode on real tensors)."""
    x, weight = args[0], args[1]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    y = out[0]
    mac = x.numel() + weight.numel() + y.numel() + (bias.numel() if bias is not None else 0)
    return OpCount("linear", x.numel() * weight.shape[0], y.numel() if bias is not None else 0, mac)


def _mm(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    a, b = args[0], args[1]
    return OpCount("linear", a.numel() * b.shape[-1], 0, a.numel() + b.numel() + out[0].numel())


def _bmm(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    a, b = args[0], args[1]  # (B, M, K) @ (B, K, N)
    return OpCount("linear", a.numel() * b.shape[-1], 0, a.numel() + b.numel() + out[0].numel())


def _batch_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    x = args[0]
    params = _numel(args[1:5])  # weight, bias, running mean, running var
    # Inference: one fused multiply-add per element (x·scale + shift). Training adds the batch statistics:
    # a mean and a variance pass over the input.
    training = bool(args[5]) if len(args) > 5 and isinstance(args[5], bool) else False
    ops = x.numel() * (3 if training else 1)
    return OpCount("norm", 0, ops, x.numel() + out[0].numel() + params)


def _batch_norm_composite(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    """aten.batch_norm before decomposition: same arguments as native_batch_norm, then cudnn_enabled."""
    return _batch_norm(args[:8], kwargs, out)


def _reshape(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    """aten.reshape before decomposition: a view when it can be, else a copy (a channel shuffle's last step)."""
    x, y = args[0], out[0]
    if x.device.type == "meta" or y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        return OpCount("shuffle")
    return OpCount("shuffle", 0, 0, x.numel() + y.numel())


def _batch_norm_no_training(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    x = args[0]
    return OpCount("norm", 0, x.numel(), x.numel() + out[0].numel() + _numel(args[1:5]))


def _norm_with_statistics(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    """Layer and group norm compute their statistics at inference too: mean, variance, normalise-and-scale."""
    x = args[0]
    return OpCount("norm", 0, 3 * x.numel(), x.numel() + out[0].numel() + _numel(args[1:3]))


def _unary(kind: str) -> Handle:
    def handle(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
        n = out[0].numel()
        return OpCount(kind, 0, n, args[0].numel() + n)

    return handle


def _binary(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    n = out[0].numel()
    return OpCount("elementwise", 0, n, _numel(args[:2]) + n)


def _reduction(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    x = args[0]
    return OpCount("elementwise", 0, x.numel(), x.numel() + out[0].numel())


def _pool_window(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    x, kernel = args[0], args[1]
    window = math.prod(kernel) if len(kernel) > 1 else kernel[0] ** (x.dim() - 2)
    y = out[0]  # max pooling's indices are an output we do not count as traffic of inference
    return OpCount("pool", 0, y.numel() * window, x.numel() + y.numel())


def _pool_global(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
    x, y = args[0], out[0]
    return OpCount("pool", 0, x.numel(), x.numel() + y.numel())


def _data_movement(kind: str) -> Handle:
    def handle(args: tuple[Any, ...], kwargs: dict[str, Any], out: list[Tensor]) -> OpCount:
        return OpCount(kind, 0, 0, _numel(args[:1] if kind != "concat" else args[0]) + out[0].numel())

    return handle


HANDLES: dict[Any, Handle] = {
    aten.convolution: _convolution,
    aten.conv2d: _conv2d,
    aten.linear: _linear,
    aten.batch_norm: _batch_norm_composite,
    aten.reshape: _reshape,
    aten.addmm: _addmm,
    aten.mm: _mm,
    aten.bmm: _bmm,
    aten.native_batch_norm: _batch_norm,
    aten._native_batch_norm_legit: _batch_norm,
    aten._native_batch_norm_legit_no_training: _batch_norm_no_training,
    aten.native_layer_norm: _norm_with_statistics,
    aten.layer_norm: _norm_with_statistics,  # before decomposition (inference mode on real tensors): same arguments
    aten.native_group_norm: _norm_with_statistics,
    aten.max_pool2d_with_indices: _pool_window,
    aten.max_pool2d: _pool_window,
    aten.avg_pool2d: _pool_window,
    aten._adaptive_avg_pool2d: _pool_global,
    aten.adaptive_avg_pool2d: _pool_global,
    aten.adaptive_max_pool2d: _pool_global,
    aten.mean: _pool_global,
    aten.sum: _reduction,
    aten.cat: _data_movement("concat"),
    aten.clone: _data_movement("shuffle"),
    aten._to_copy: _data_movement("shuffle"),
    aten.copy_: _data_movement("shuffle"),
    aten.constant_pad_nd: _data_movement("shuffle"),  # F.pad: a copy into a larger tensor (TF "same" padding)
    **{
        op: _unary("activation")
        for op in (
            aten.relu,
            aten.relu_,
            aten.silu,
            aten.silu_,
            aten.sigmoid,
            aten.sigmoid_,
            aten.hardswish,
            aten.hardswish_,
            aten.hardsigmoid,
            aten.hardsigmoid_,
            aten.hardtanh,
            aten.hardtanh_,
            aten.gelu,
            aten.gelu_,
            aten.tanh,
            aten.tanh_,
            aten.leaky_relu,
            aten.leaky_relu_,
            aten.elu,
            aten.elu_,
            aten.clamp,
            aten.clamp_,
            aten.clamp_min,
            aten.clamp_min_,
            aten.softmax,
            aten._softmax,
        )
    },
    **{op: _binary for op in (aten.add, aten.add_, aten.mul, aten.mul_, aten.sub, aten.sub_, aten.div, aten.div_)},
}

# Views and metadata: they move no data. (Allocation without writing, like empty, is free too.)
ZERO_COST: frozenset[Any] = frozenset(
    {
        aten.view,
        aten._unsafe_view,
        aten._reshape_alias,
        aten.t,
        aten.transpose,
        aten.permute,
        aten.expand,
        aten.squeeze,
        aten.unsqueeze,
        aten.alias,
        aten.detach,
        aten.split,
        aten.split_with_sizes,
        aten.chunk,
        aten.slice,
        aten.select,
        aten.narrow,
        aten.as_strided,
        aten.unbind,
        aten.empty,
        aten.empty_like,
        aten.empty_strided,
        aten.new_empty,
        aten.new_empty_strided,
        aten.lift_fresh,
        aten.dropout,
        aten.feature_dropout,
        aten.dropout_,
        aten.feature_dropout_,
        aten.bernoulli_,
        aten.bernoulli,
        aten.flatten,
        aten.contiguous,
        aten.zeros,
        aten.ones,
        aten.fill_,
        aten.zero_,
        aten.sym_size,
        aten.sym_stride,
        aten.sym_numel,
        aten.is_same_size,
        aten._local_scalar_dense,
    }
)


_ALLOCATIONS = frozenset({aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided})

# The fields of one record, in the order the per-layer table shows them. Records are plain tuples while counting
# (a dataclass per op would cost more than the op's own bookkeeping); shapes are formatted once, at the end.
RECORD_FIELDS = (
    "module",  # path of the innermost module that ran the op
    "module_type",
    "op",
    "kind",
    "input_shapes",
    "output_shape",
    "flops",
    "flops_elementwise",
    "mac",
    "mac_bytes",
    "counted",  # False: unknown op, its cost estimated as its inputs and outputs read/written once
)


class CountingMode(TorchDispatchMode):
    """Record every aten op with its cost, and the live activation bytes over time.

    ``external`` storages (parameters, buffers, the input) are never counted as activations. ``weights`` are the
    parameters and buffers; with ``weight_itemsize`` their share of each op's traffic is counted at that many bytes
    per element (4 for fp32 weights under autocast) and the rest at the op's output dtype.
    """

    def __init__(
        self, external: Sequence[Tensor] = (), weights: Sequence[Tensor] = (), weight_itemsize: int | None = None
    ) -> None:
        super().__init__()
        self._weights = {StorageWeakRef(t.untyped_storage()).cdata for t in weights}
        self.weight_itemsize = weight_itemsize
        self.records: list[tuple[Any, ...]] = []  # RECORD_FIELDS
        self.module_stack: list[tuple[str, str]] = [("", "")]
        self.modules_run: set[int] = set()  # ids of the modules whose forward ran (filled by the profiler's hooks)
        self.unknown: dict[str, int] = {}
        self._external = {StorageWeakRef(t.untyped_storage()).cdata for t in external}
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.live_bytes = 0
        self.peak_bytes = 0

    def _sweep(self) -> None:
        dead = [key for key, (ref, _) in self._live.items() if ref.expired()]
        for key in dead:
            self.live_bytes -= self._live.pop(key)[1]

    def _track(self, outputs: list[Tensor]) -> None:
        for t in outputs:
            storage = t.untyped_storage()
            ref = StorageWeakRef(storage)
            if ref.cdata in self._external:
                continue
            known = self._live.get(ref.cdata)
            if known is not None and not known[0].expired():
                continue  # a view of, or an in-place write to, a storage already counted
            if known is not None:  # a dead storage whose address was reused before we swept it
                self.live_bytes -= known[1]
            nbytes = storage.nbytes()
            self._live[ref.cdata] = (ref, nbytes)
            self.live_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        self._sweep()
        result = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in ZERO_COST:
            if packet in _ALLOCATIONS:
                self._track(tensors_in([result]))
            return result
        outputs = tensors_in([result])
        handle = HANDLES.get(packet)
        inputs = tensors_in(args)
        if handle is None:
            self.unknown[packet.__name__] = self.unknown.get(packet.__name__, 0) + 1
            count = OpCount("other", 0, 0, sum(t.numel() for t in inputs) + sum(t.numel() for t in outputs))
        else:
            count = handle(args, kwargs, outputs)
        if outputs:
            self._track(outputs)
        itemsize = outputs[0].element_size() if outputs else 4
        mac_bytes = count.mac * itemsize
        if self.weight_itemsize is not None and self._weights:
            weight_elems = sum(t.numel() for t in inputs if StorageWeakRef(t.untyped_storage()).cdata in self._weights)
            weight_elems = min(weight_elems, count.mac)
            mac_bytes += weight_elems * (self.weight_itemsize - itemsize)
        module, module_type = self.module_stack[-1]
        self.records.append(
            (
                module,
                module_type,
                packet.__name__,
                count.kind,
                tuple(t.shape for t in inputs),
                outputs[0].shape if outputs else (),
                count.flops,
                count.flops_elementwise,
                count.mac,
                mac_bytes,
                handle is not None,
            )
        )
        return result
