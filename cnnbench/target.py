"""A target: where latency is measured. Device (cpu, cuda[:N], mps), threads, dtype, memory format, backend.

:func:`resolve_target` checks that the target exists on this machine and says what to do when it does not;
:func:`describe` records everything a results file needs to say where it was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from cnnbench import allocator
from cnnbench.errors import CnnbenchError
from cnnbench.provenance import environment

__all__ = [
    "Target",
    "Runtime",
    "resolve_target",
    "describe",
    "DTYPES",
    "BACKENDS",
    "RUNTIMES",
    "INT8",
    "INT8_RUNTIMES",
    "runtime_version",
]

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
INT8 = "int8"  # static post-training quantization, deployment runtimes only: not a torch autocast dtype


@dataclass(frozen=True)
class Runtime:
    """A deployment runtime (:mod:`cnnbench.runtimes`): the file it loads, what it takes, where it runs."""

    name: str  # the --backend value
    package: str  # what pip installs
    file: str  # the file it loads: "onnx" (shared by the runtimes that load ONNX), "pte", "ncnn"
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]  # torch device types
    batch_one: bool = False  # takes one image per call
    no_int8: str = ""  # why --dtype int8 is not offered, where it is not


RUNTIMES: dict[str, Runtime] = {
    "onnxruntime": Runtime("onnxruntime", "onnxruntime", "onnx", ("fp32", INT8), ("cpu", "cuda")),
    "openvino": Runtime("openvino", "openvino", "onnx", ("fp32", INT8), ("cpu",)),
    "executorch": Runtime("executorch", "executorch", "pte", ("fp32", INT8), ("cpu",)),
    "ncnn": Runtime(
        "ncnn",
        "ncnn",
        "ncnn",
        ("fp32",),
        ("cpu",),
        batch_one=True,
        no_int8="ncnn's INT8 needs its ncnn2table and ncnn2int8 tools, which the ncnn and pnnx wheels do not carry",
    ),
}
BACKENDS = ("eager", "compile", *RUNTIMES)
INT8_RUNTIMES = tuple(name for name, runtime in RUNTIMES.items() if INT8 in runtime.dtypes)


@dataclass(frozen=True)
class Target:
    """Where and how a model runs. ``dtype`` other than fp32 runs under autocast, as users run mixed precision."""

    device: str = "cpu"  # cpu, cuda, cuda:N, mps
    threads: int | None = None  # CPU intra-op threads; None keeps torch's default
    dtype: str = "fp32"  # fp32 | fp16 | bf16 (autocast); int8 (onnxruntime, openvino: static QDQ quantization)
    channels_last: bool = False
    backend: str = "eager"  # eager | compile (torch.compile) | onnxruntime | openvino
    fuse_bn: bool = False  # fold BatchNorm into the preceding convolution (inference only)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The dtype PyTorch computes in: the autocast dtype; fp32 for int8, whose input is fp32 and whose integer
        arithmetic happens inside the runtime."""
        return DTYPES.get(self.dtype, torch.float32)

    @property
    def runtime(self) -> bool:
        """True for a deployment runtime (the model runs as an exported ONNX graph, not as a torch module)."""
        return self.backend in RUNTIMES

    @property
    def has_roofline(self) -> bool:
        """Whether a latency on this target has a roofline bound: not for int8, whose roofline would be measured in
        fp32 (:attr:`torch_dtype`), a peak that bounds nothing about a runtime's integer kernels."""
        return self.dtype != INT8

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
    if target.dtype not in (*DTYPES, INT8):
        raise CnnbenchError(f"unknown dtype {target.dtype!r}; use one of {', '.join((*DTYPES, INT8))}")
    if target.backend not in BACKENDS:
        raise CnnbenchError(f"unknown backend {target.backend!r}; use one of {', '.join(BACKENDS)}")
    if target.dtype == INT8 and not target.runtime:
        raise CnnbenchError(f"--dtype int8 runs on {', '.join(INT8_RUNTIMES)} only; add --backend onnxruntime")
    if target.runtime:
        _check_runtime(target)
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


def _check_runtime(target: Target) -> None:
    """A deployment runtime takes what its :class:`Runtime` says, on its own layout; say so before anything is
    exported."""
    import importlib.util

    runtime = RUNTIMES[target.backend]
    if target.dtype not in runtime.dtypes:
        why = f" ({runtime.no_int8})" if target.dtype == INT8 and runtime.no_int8 else ""
        other = f"; --dtype int8 runs on {', '.join(INT8_RUNTIMES)}" if target.dtype == INT8 else ""
        raise CnnbenchError(
            f"--backend {target.backend} takes --dtype {' or '.join(runtime.dtypes)}, not {target.dtype}{why}{other}"
        )
    if target.channels_last:
        raise CnnbenchError(f"--backend {target.backend} picks its own memory layout; drop --channels-last")
    if target.fuse_bn:
        raise CnnbenchError(f"--backend {target.backend} folds BatchNorm itself; drop --fuse-bn")
    if importlib.util.find_spec(target.backend) is None:
        raise CnnbenchError(f"{target.backend} is not installed; pip install {runtime.package}")
    kind = torch.device(target.device).type
    if kind not in runtime.devices:
        where = " or ".join(runtime.devices)
        raise CnnbenchError(f"cnnbench runs {target.backend} on {where} only; use --device cpu, not {target.device}")
    if target.backend == "onnxruntime" and kind == "cuda":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise CnnbenchError("this onnxruntime has no CUDA provider; pip install onnxruntime-gpu, or --device cpu")


def describe(target: Target) -> dict[str, object]:
    """The target's full description: its settings, the machine, device and software (see
    :func:`cnnbench.provenance.environment`), and what the host allocator does while timing
    (:func:`cnnbench.allocator.while_timing`). Describing only reads: nothing here changes the process."""
    return {
        **asdict(target),
        "target": target.key,
        **environment(target.torch_device),
        "runtime_version": runtime_version(target.backend),
        "allocator": allocator.while_timing(),
    }


def runtime_version(backend: str) -> str:
    """The version of what runs the model: torch for eager and compile, the runtime's own otherwise."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(backend if backend in RUNTIMES else "torch")
    except PackageNotFoundError:
        return "not installed"
