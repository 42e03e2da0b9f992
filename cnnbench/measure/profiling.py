"""``profile``: params, FLOPs (multiply-adds), memory-access cost and memory footprint of a model, per layer.

Everything is counted on the meta device: no weights are allocated and nothing is computed, so the whole zoo
profiles in seconds. See :mod:`cnnbench.counting` for the units and the op table.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import pandas as pd
import torch
from torch import Tensor, nn
from torch.multiprocessing.reductions import StorageWeakRef

from cnnbench.errors import CnnbenchError
from cnnbench.measure.counting import KINDS, RECORD_FIELDS, CountingMode
from cnnbench.models import resolve
from cnnbench.target import DTYPES

__all__ = ["Profile", "ProfileTotals", "profile", "smallest_resolution", "totals_frame", "layers_frame"]

SUM_COLUMNS = ["flops", "flops_elementwise", "mac", "mac_bytes"]


@dataclass(frozen=True)
class ProfileTotals:
    """Totals of one model at one input size. ``flops`` are multiply-adds (one fused multiply-add = 1)."""

    model: str
    resolution: int
    batch: int
    dtype: str
    params: int
    params_used: int  # parameters of the modules the inference forward runs (GoogLeNet's training-only heads out)
    flops: int  # multiply-adds of conv, linear and matmul
    flops_elementwise: int  # activations, norms, adds, muls, pooling; counted apart
    mac: int  # memory access cost, elements read + written, weights included (ShuffleNetV2 §2)
    mac_bytes: int
    activation_peak_bytes: int  # peak live activations of an inference forward (input and weights excluded)
    training_saved_bytes: int | None  # tensors autograd keeps for backward in a training forward (weights excluded)
    unknown_ops: str  # aten ops with no handle ("" when every op was counted)

    @property
    def arithmetic_intensity(self) -> float:
        """Multiply-adds per byte of memory traffic."""
        return self.flops / self.mac_bytes if self.mac_bytes else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "arithmetic_intensity": self.arithmetic_intensity}


@dataclass(frozen=True)
class Profile:
    """Totals and the per-op table of one counting pass."""

    totals: ProfileTotals
    layers: pd.DataFrame  # one row per aten op, in execution order

    def by_kind(self) -> pd.DataFrame:
        """Sums per op kind (dense conv, 1×1 conv, depthwise, ..., in :data:`KINDS` order), with shares of each."""
        grouped = self.layers.groupby("kind")[SUM_COLUMNS].sum()
        grouped = grouped.reindex([k for k in KINDS if k in grouped.index])
        grouped.insert(0, "ops", self.layers.groupby("kind").size())
        for column in ("flops", "mac"):
            total = grouped[column].sum()
            grouped[f"{column}_share"] = grouped[column] / total if total else 0.0
        return grouped.reset_index()

    def by_module(self, depth: int | None = 2) -> pd.DataFrame:
        """Sums per module path, cut to ``depth`` components (``features.3`` at depth 2); ``None`` keeps leaves."""
        paths = self.layers["module"]
        if depth is not None:
            paths = paths.map(lambda p: ".".join(p.split(".")[:depth]) if p else "(top)")
        table = self.layers.assign(module=paths).groupby("module", sort=False)[SUM_COLUMNS].sum()
        return table.reset_index()


@contextmanager
def _module_paths(model: nn.Module, mode: CountingMode) -> Iterator[None]:
    """Keep ``mode.module_stack`` equal to the modules whose forward is running (global hooks, removed after)."""
    names = {id(m): name for name, m in model.named_modules()}

    def push(module: nn.Module, _inputs: object) -> None:
        mode.module_stack.append((names.get(id(module), "?"), type(module).__name__))
        mode.modules_run.add(id(module))

    def pop(module: nn.Module, _inputs: object, _output: object) -> None:
        mode.module_stack.pop()

    pre = torch.nn.modules.module.register_module_forward_pre_hook(push)
    post = torch.nn.modules.module.register_module_forward_hook(pop)
    try:
        yield
    finally:
        pre.remove()
        post.remove()


def _runs(model: nn.Module, batch: int, resolution: int, dtype: torch.dtype) -> bool:
    try:
        with torch.no_grad():
            model(torch.empty(batch, 3, resolution, resolution, device="meta", dtype=dtype))
    except (RuntimeError, ValueError, IndexError):
        return False
    return True


def smallest_resolution(model: nn.Module, upper: int = 1024, dtype: torch.dtype = torch.float32) -> int | None:
    """The smallest square input side a (meta) model accepts, by bisection; ``None`` if even ``upper`` fails."""
    if not _runs(model, 1, upper, dtype):
        return None
    lo, hi = 1, upper  # hi always runs
    while lo < hi:
        mid = (lo + hi) // 2
        if _runs(model, 1, mid, dtype):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _training_saved_bytes(model: nn.Module, x: Tensor) -> int:
    """Bytes of the distinct tensors autograd saves for backward in a training-mode forward, weights excluded.

    The pack hook sees every tensor autograd saves; storages are told apart by identity, and all stay alive until
    the pass ends (as in real training), so no address is reused. Train mode matters: dropout masks, batch
    statistics and stochastic-depth branches are saved only there. Backward is never run.
    """
    weights = {StorageWeakRef(t.untyped_storage()).cdata for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        key = StorageWeakRef(t.untyped_storage()).cdata
        if key not in weights:
            saved[key] = t.untyped_storage().nbytes()
        return t

    was_training = model.training
    model.train()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        del out
    finally:
        model.train(was_training)
    return sum(saved.values())


def _training_memory(model: nn.Module, x: Tensor, name: str) -> int:
    try:
        return _training_saved_bytes(model, x)
    except (RuntimeError, ValueError) as err:
        n, _, h, w = x.shape
        raise CnnbenchError(
            f"{name} cannot run a training forward on a {n}×3×{h}×{w} input ({str(err).splitlines()[0]}); "
            "use a larger --batch or --res, or --no-training"
        ) from None


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _to_meta(model: nn.Module, copy_model: bool = True) -> nn.Module:
    if not copy_model and all(p.device.type == "meta" for p in model.parameters()):
        return model
    return copy.deepcopy(model).to("meta")  # a meta copy of a meta module costs no memory


def profile(
    model: nn.Module | str,
    resolution: int | None = None,
    batch: int = 1,
    dtype: torch.dtype | str = torch.float32,
    training_memory: bool = True,
    autocast: bool = False,
    *,
    copy_model: bool = True,
) -> Profile:
    """Count params, multiply-adds, element-wise work, memory-access cost and memory of one forward pass.

    ``model`` is a module or a name (a zoo name, ``timm:NAME`` or ``torchvision:NAME``); ``resolution`` defaults to
    the model's own. The model is counted in eval mode on the meta device, on a copy: yours is left as it is
    (``copy_model=False`` counts a meta module in place, for a caller that made it and tracks its tensors).
    ``training_memory=False`` skips the second, training-mode pass (``training_saved_bytes`` is then ``None``).

    ``dtype`` other than fp32 counts the model cast to it (``model.half()``), unless ``autocast``: then the model
    runs as a target runs it, under autocast, and ``mac_bytes`` counts what that moves: weights and buffers at fp32,
    activations at ``dtype`` (see :mod:`cnnbench.counting`). Activation memory is at ``dtype`` either way.
    """
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise CnnbenchError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    if batch < 1:
        raise CnnbenchError(f"batch must be at least 1, got {batch}")
    resolved = resolve(model, resolution)
    name, resolution = resolved.name, resolved.resolution
    net = resolved.model if resolved.built else _to_meta(resolved.model, copy_model)
    if resolution < 1:
        raise CnnbenchError(f"resolution must be a positive number of pixels, got {resolution}")
    if dtype != torch.float32:
        net = net.to(dtype=dtype)
    net.eval()

    x = torch.empty(batch, 3, resolution, resolution, device="meta", dtype=dtype)
    weights = [*net.parameters(), *net.buffers()]
    weight_itemsize = torch.finfo(torch.float32).bits // 8 if autocast and dtype != torch.float32 else None
    mode = CountingMode(external=[*weights, x], weights=weights, weight_itemsize=weight_itemsize)
    try:
        with torch.no_grad(), _module_paths(net, mode), mode:
            net(x)
    except (RuntimeError, ValueError, IndexError) as err:
        if _runs(net, 1, 1024, dtype) and not _runs(net, 1, resolution, dtype):
            smallest = smallest_resolution(net, dtype=dtype)
            raise CnnbenchError(
                f"resolution {resolution} is too small for {name}; the smallest it takes is {smallest} (use --res)"
            ) from None
        raise CnnbenchError(f"{name} failed on a {batch}×3×{resolution}×{resolution} input: {err}") from None
    if not mode.records:
        raise CnnbenchError(f"{name} ran no operation; is it an nn.Module with a forward?")
    layers = pd.DataFrame.from_records(mode.records, columns=RECORD_FIELDS)
    layers["input_shapes"] = layers["input_shapes"].map(lambda shapes: ", ".join(map(_fmt_shape, shapes)))
    layers["output_shape"] = layers["output_shape"].map(_fmt_shape)
    layers["arithmetic_intensity"] = layers["flops"] / layers["mac_bytes"].where(layers["mac_bytes"] > 0)

    totals = ProfileTotals(
        model=name,
        resolution=resolution,
        batch=batch,
        dtype=str(dtype).removeprefix("torch."),
        params=sum(p.numel() for p in net.parameters()),
        params_used=sum(
            p.numel() for m in net.modules() if id(m) in mode.modules_run for p in m.parameters(recurse=False)
        ),
        flops=int(layers["flops"].sum()),
        flops_elementwise=int(layers["flops_elementwise"].sum()),
        mac=int(layers["mac"].sum()),
        mac_bytes=int(layers["mac_bytes"].sum()),
        activation_peak_bytes=mode.peak_bytes,
        training_saved_bytes=_training_memory(net, x, name) if training_memory else None,
        unknown_ops=", ".join(f"{op}×{n}" for op, n in sorted(mode.unknown.items())),
    )
    return Profile(totals, layers)


TOTAL_COLUMNS = [f.name for f in fields(ProfileTotals)] + ["arithmetic_intensity"]


def totals_frame(profiles: list[Profile]) -> pd.DataFrame:
    """One row of totals per profile (the columns of :class:`ProfileTotals` plus ``arithmetic_intensity``)."""
    return pd.DataFrame([p.totals.as_dict() for p in profiles], columns=TOTAL_COLUMNS)


def layers_frame(profiles: list[Profile]) -> pd.DataFrame:
    """Every profile's per-op table, one after the other, with a leading ``model`` column."""
    return pd.concat([p.layers.assign(model=p.totals.model) for p in profiles], ignore_index=True)[
        ["model", *profiles[0].layers.columns]
    ]
