"""Where a forward's time goes: every aten op timed where it runs, one by one, and summed per op kind.

The kinds are the counting engine's (:data:`cnnbench.measure.counting.KINDS`), so a kind's share of time stands
beside its share of FLOPs and MAC. This is the one per-op timer: the report's breakdown and the guideline audit's
``--time`` use :func:`time_by_kind`, the cost model's calibration :func:`time_ops` (each op of a network in its
place, in execution order).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from cnnbench.measure.counting import HANDLES, KINDS, ZERO_COST
from cnnbench.measure.forward import forward_on, running, synchronize
from cnnbench.models import resolve
from cnnbench.target import Target, resolve_target

__all__ = ["OpTimer", "time_ops", "time_by_kind"]

aten = torch.ops.aten


class OpTimer(TorchDispatchMode):
    """Times every aten op (synchronised on a GPU) and names its kind with the counting engine's handles."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.times: list[tuple[str, float]] = []  # (kind, ms) per op, in execution order
        self.ops: list[str] = []  # each op's aten name (``relu_``, ``convolution``, ``cat``...)

    def _sync(self) -> None:
        synchronize(self.device)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        self._sync()
        t0 = time.perf_counter()
        result = func(*args, **kwargs)
        self._sync()
        elapsed = (time.perf_counter() - t0) * 1e3
        packet = func.overloadpacket
        if packet is aten.contiguous and result is not args[0]:
            packet = aten.clone  # under inference_mode the copy runs inside contiguous, which no mode sees as clone
        elif packet in ZERO_COST:
            return result
        handle = HANDLES.get(packet)
        outputs = [t for t in (result if isinstance(result, (tuple, list)) else [result]) if isinstance(t, Tensor)]
        kind = handle(args, kwargs, outputs).kind if handle is not None else "other"
        self.times.append((kind, elapsed))
        self.ops.append(packet.__name__)
        return result


def time_ops(
    model: nn.Module | str,
    target: Target | None = None,
    batch: int = 1,
    resolution: int | None = None,
    repeats: int = 5,
) -> pd.DataFrame:
    """Every aten op of one forward timed in its place: one row per op in execution order (``op``, ``kind``,
    ``time_ms``, the median over ``repeats`` forwards after a warm-up one). Views and metadata ops are not timed,
    as the counting engine does not count them, so the rows line up with a counting pass's layers."""
    target, _ = resolve_target(target or Target())
    resolved = resolve(model, resolution, device="cpu")
    eager = replace(target, backend="eager")
    forward = forward_on(resolved.model, eager, batch, resolved.resolution, copy_model=not resolved.built)
    timers: list[OpTimer] = []
    with running(target):
        forward()  # warm-up
        for _ in range(repeats):
            timer = OpTimer(target.torch_device)
            with timer:
                forward()
            timers.append(timer)
    first = timers[0]
    per_op = np.median(np.array([[t for _, t in timer.times] for timer in timers]), axis=0)
    return pd.DataFrame({"op": first.ops, "kind": [k for k, _ in first.times], "time_ms": per_op})


def time_by_kind(
    model: nn.Module | str,
    target: Target | None = None,
    batch: int = 1,
    resolution: int | None = None,
    repeats: int = 5,
) -> pd.DataFrame:
    """Time per op kind (conv, conv_1x1, conv_depthwise, ..., the counting engine's kinds) of one forward.

    Every aten op is timed on its own (synchronised on a GPU, CUDA or MPS), ``repeats`` times after a warm-up; the
    median per op is summed per kind, and ``timed_ops`` counts the ops of each kind. The per-op synchronisation and
    Python dispatch add a little to each op, so use the shares, not the sum, beside :func:`measure`'s end-to-end
    latency.
    """
    per_op = time_ops(model, target, batch, resolution, repeats)
    grouped = per_op.groupby("kind", sort=False)["time_ms"]
    frame = pd.DataFrame({"timed_ops": grouped.size(), "time_ms": grouped.sum()})
    frame = frame.reindex([k for k in KINDS if k in frame.index]).rename_axis("kind").reset_index()
    frame["time_share"] = frame["time_ms"] / frame["time_ms"].sum()
    return frame
