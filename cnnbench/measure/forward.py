"""One forward on a target, set up once: the model prepared, the input made, the dtype, layout, threads and sync.

Every timer of cnnbench (latency, the per-op breakdown, the roofline, the guideline tables, ``benchmarks/``) runs
its forward through :func:`forward_on`, so each applies the target the same way:

- the model is a copy in eval mode on the target's device, BatchNorm folded with ``fuse_bn``, in channels-last
  with ``channels_last``, wrapped by ``torch.compile`` with the ``compile`` backend (:func:`prepare`); the
  caller's module is never changed;
- the input is made once (random normal, optionally seeded) in the target's layout (:func:`make_input`);
- fp16/bf16 run under autocast: weights stay fp32 and each op casts (:func:`autocast`);
- :func:`running` sets the target's threads and ``torch.inference_mode()`` around the timed region, and has
  glibc's malloc keep the memory a forward frees for the next one (:func:`cnnbench.allocator.hold_freed_memory`);
- :func:`synchronize` waits for a GPU (CUDA or MPS); the CPU needs nothing;
- a deployment runtime (``onnxruntime``, ``openvino``) gets the model exported to ONNX and loaded there instead
  (:func:`cnnbench.runtimes.session.runtime_forward`), quantized to INT8 for an ``int8`` target.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from cnnbench.allocator import hold_freed_memory

from ..target import Target

if TYPE_CHECKING:
    from cnnbench.runtimes.int8 import Calibration
    from cnnbench.runtimes.session import RuntimeForward

__all__ = [
    "Forward",
    "autocast",
    "forward_on",
    "fuse_batchnorm",
    "make_input",
    "prepare",
    "running",
    "synchronize",
    "threads",
]


def fuse_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` with every BatchNorm that directly follows a convolution folded into it (eval only);
    returns (copy, folded). ``model`` itself is left as it is.

    Tries torch.fx's conv-BN fusion on the traced graph first (it sees through any module layout); models that fx
    cannot trace (shape-dependent code such as channel shuffle) fall back on folding adjacent Conv2d → BatchNorm2d
    children of every ``nn.Sequential``, which covers the zoo's conv-BN-activation blocks.
    """
    from torch.fx.experimental.optimization import fuse as fx_fuse
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    try:
        fused: nn.Module = fx_fuse(model)  # builds a new module; the original is untouched
    except Exception:  # noqa: BLE001 - any tracing failure sends us to the structural fallback
        fused = copy.deepcopy(model)
        for container in list(fused.modules()):
            if not isinstance(container, nn.Sequential):
                continue
            children = list(container._modules.items())
            for (conv_name, first), (bn_name, second) in zip(children, children[1:], strict=False):
                if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                    container._modules[conv_name] = fuse_conv_bn_eval(first, second)
                    container._modules[bn_name] = nn.Identity()
    after = sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    return fused, before - after


def prepare(model: nn.Module, target: Target, *, copy_model: bool = True) -> tuple[nn.Module, list[str]]:
    """The model as ``target`` runs it: eval mode, BN folded (``fuse_bn``), on the device, channels-last, compiled
    (``compile`` backend). Returns (model, notes). Works on a deep copy unless ``copy_model=False``, which a caller
    that built the model itself passes to spare the memory."""
    notes: list[str] = []
    model = copy.deepcopy(model) if copy_model else model
    model = model.eval()
    if target.fuse_bn:
        model, folded = fuse_batchnorm(model)
        left = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        notes.append(f"fuse-bn folded {folded} BatchNorm" + (f", {left} left (not after a conv)" if left else ""))
    model = model.to(target.torch_device)
    if target.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if target.backend == "compile":
        model = torch.compile(model)  # type: ignore[assignment]
    return model, notes


def make_input(
    target: Target, batch: int, side: int, channels: int = 3, generator: torch.Generator | None = None
) -> Tensor:
    """A ``batch × channels × side × side`` random-normal input on the target's device, in its layout (fp32: autocast
    casts it)."""
    x = torch.randn(batch, channels, side, side, generator=generator).to(target.torch_device)
    return x.contiguous(memory_format=torch.channels_last) if target.channels_last else x


def autocast(target: Target) -> contextlib.AbstractContextManager[object]:
    """Autocast to the target's dtype (fp16/bf16); nothing for fp32."""
    if target.dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=target.torch_device.type, dtype=target.torch_dtype)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` (``None``: left as they are) for the block, then restored."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def running(target: Target) -> Iterator[None]:
    """The timed region: the target's threads and ``torch.inference_mode()``, with freed memory kept for reuse
    (:func:`hold_freed_memory`)."""
    hold_freed_memory()
    with threads(target.threads), torch.inference_mode():
        yield


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA, MPS); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@dataclass
class Forward:
    """One forward of a prepared model on its input, under the target's autocast. Calling it returns the output,
    unsynchronised on a GPU unless ``sync``; call it inside :func:`running`."""

    model: nn.Module
    x: Tensor
    target: Target
    sync: bool = False
    notes: tuple[str, ...] = ()

    def __call__(self) -> Tensor:
        with autocast(self.target):
            out = self.model(self.x)
        if self.sync:
            synchronize(self.target.torch_device)
        return out


def forward_on(
    model: nn.Module,
    target: Target,
    batch: int,
    side: int,
    *,
    channels: int = 3,
    seed: int | None = None,
    sync: bool = False,
    copy_model: bool = True,
    name: str | None = None,
    calibration: Calibration | None = None,
) -> Forward | RuntimeForward:
    """Prepare ``model`` for ``target`` (:func:`prepare`), make its input once, and return the forward to time.

    On a deployment runtime the model is exported and loaded there; ``name`` (a model name) caches the export, and
    ``calibration`` gives an int8 target its images (see :func:`cnnbench.runtimes.session.runtime_forward`).
    """
    if target.runtime:
        from cnnbench.runtimes.session import runtime_forward

        return runtime_forward(
            model if name is None else None,
            target,
            batch,
            side,
            channels=channels,
            seed=seed,
            name=name,
            calibration=calibration,
        )
    net, notes = prepare(model, target, copy_model=copy_model)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return Forward(net, make_input(target, batch, side, channels, generator), target, sync, tuple(notes))
