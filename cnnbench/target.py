"""A target: where latency is measured. Device (cpu, cuda[:N], mps), threads, dtype, memory format, backend.

:func:`resolve_target` checks that the target exists on this machine and says what to do when it does not;
:func:`describe` records everything a results file needs to say where it was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from cnnbench.errors import CnnbenchError
from cnnbench.provenance import environment

__all__ = ["Target", "resolve_target", "describe", "DTYPES"]

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("eager", "compile")


@dataclass(frozen=True)
class Target:
    """Where and how a model runs. ``dtype`` other than fp32 runs under autocast, as users run mixed precision."""

    device: str = "cpu"  # cpu, cuda, cuda:N, mps
    threads: int | None = None  # CPU intra-op threads; None keeps torch's default
    dtype: str = "fp32"  # fp32 | fp16 | bf16
    channels_last: bool = False
    backend: str = "eager"  # eager | compile (torch.compile)
    fuse_bn: bool = False  # fold BatchNorm into the preceding convolution (inference only)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def key(self) -> str:
        """A short file-name-safe name: ``cpu-t2-fp32-nchw-eager`` (cf. timm's results/ file names)."""
        parts = [self.device.replace(":", "")]
        if self.device == "cpu":
            parts.append(f"t{self.threads or torch.get_num_threads()}")
        parts += [self.dtype, "nhwc" if self.channels_last else "nchw", self.backend]
        if self.fuse_bn:
            parts.append("fusebn")
        return "-".join(parts)


def resolve_target(target: Target) -> tuple[Target, list[str]]:
    """Check the target against this machine; returns it (threads filled in) and notes for the user.

    Raises :class:`CnnbenchError` for a device that is not here or a setting that cannot work.
    """
    notes: list[str] = []
    if target.dtype not in DTYPES:
        raise CnnbenchError(f"unknown dtype {target.dtype!r}; use one of {', '.join(DTYPES)}")
    if target.backend not in BACKENDS:
        raise CnnbenchError(f"unknown backend {target.backend!r}; use eager or compile")
    try:
        device = torch.device(target.device)
    except RuntimeError:
        raise CnnbenchError(f"unknown device {target.device!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CnnbenchError(f"{target.device} is not available on this machine (no CUDA GPU); use --device cpu")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise CnnbenchError(
                f"{target.device} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise CnnbenchError(f"{target.device} is not available on this machine (no Apple GPU); use --device cpu")
    elif device.type != "cpu":
        raise CnnbenchError(f"unsupported device {target.device!r}; use cpu, cuda, cuda:N or mps")
    if target.threads is not None and target.threads < 1:
        raise CnnbenchError(f"--threads must be at least 1, got {target.threads}")
    if device.type == "cpu" and target.dtype == "fp16":
        notes.append("fp16 on the CPU runs, but most CPUs have no fast fp16 kernels: expect it slower than fp32")
    if device.type == "cpu" and target.threads is None:
        target = replace(target, threads=torch.get_num_threads())
    return target, notes


def describe(target: Target) -> dict[str, object]:
    """The target's full description: its settings, and the machine, device and software (see
    :func:`cnnbench.provenance.environment`)."""
    return {**asdict(target), "target": target.key, **environment(target.torch_device)}
