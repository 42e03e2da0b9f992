"""Where, when and with what a figure was measured, and when a stored row may stand for a new measurement.

Every row a results table stores carries its provenance (:data:`PROVENANCE_COLUMNS`): the machine, the torch
version, the target, the settings, the code fingerprint, the commit (``+dirty`` when the code had uncommitted
changes) and the time it was measured. A stored row is reused only when its :class:`Stamp` equals the one the
caller would measure under now; otherwise it is measured again, and never re-labelled.

The machine's identity tells apart two machines with the same CPU model and host name: it hashes the operating
system's machine id (``/etc/machine-id`` on Linux, the platform UUID on macOS), the host name, the device's name
and its :func:`hardware`: the CPU's family, model and stepping, the instruction-set extensions that select kernels,
the cores and the memory. VMs cloned from one image share a machine id and a host name, and a cloud CPU's name
("AMD EPYC") can stand for several generations; the hardware tells an AVX2-only EPYC from an AVX-512-VNNI one.
``CNNBENCH_MACHINE_ID`` overrides the OS's id (tests use it to fake a second machine).

Hardware alone does not make two figures comparable: a VM's speed drifts with its neighbours and its host. Each
timed row also records ``probe_ms``, a fixed speed probe's time (:mod:`cnnbench.measure.probe`), and a stored row
is reused only while today's probe is within :data:`PROBE_TOLERANCE` of the row's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import torch

__all__ = [
    "MACHINE_ENV",
    "PROBE_TOLERANCE",
    "PROVENANCE_COLUMNS",
    "Stamp",
    "cpu_model",
    "hardware",
    "is_disturbed",
    "device_name",
    "environment",
    "fingerprint",
    "git_commit",
    "machine_identity",
    "now",
    "probe_agrees",
]

MACHINE_ENV = "CNNBENCH_MACHINE_ID"

# The columns every stored row carries. The first six are the stamp (they must match for a row to be reused); the
# others say where and when it was measured, and how fast the machine was then (``probe_ms``).
STAMP_COLUMNS = ("machine", "hardware", "torch", "target", "settings", "code")
PROVENANCE_COLUMNS = (*STAMP_COLUMNS, "quick", "commit", "host", "device_name", "measured_at", "probe_ms")
# A stored timed row stands for a new measurement only while today's speed probe is within this fraction of the
# probe taken when the row was measured (the probe repeats within ±2-3% on a quiet machine).
PROBE_TOLERANCE = 0.10
# The instruction-set extensions that decide which kernels oneDNN, XNNPACK, ONNX Runtime and OpenVINO run: two
# CPUs of one name that differ here run different code. x86 (/proc/cpuinfo "flags") and ARM ("Features").
KERNEL_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "amx_fp16",
    "asimd",
    "asimddp",
    "asimdhp",
    "fphp",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
    "sme",
)


@cache
def _os_machine_id() -> str:
    """The operating system's id of this installation; the network card's address where there is none."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(
                ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], capture_output=True, text=True, timeout=5
            ).stdout
            for line in out.splitlines():
                if "IOPlatformUUID" in line:
                    return line.split("=", 1)[1].strip().strip('"')
        except (OSError, subprocess.SubprocessError):
            pass
    return f"node-{uuid.getnode():012x}"


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux); empty elsewhere."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _memory_gib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return math.ceil(int(line.split()[1]) / 2**20)  # the kernel keeps some: 23.6 GiB of a 24 GiB VM
    except OSError:
        pass
    try:
        return math.ceil(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        return None


@cache
def cpu_hardware() -> str:
    """The CPU as kernels see it: model; family/model/stepping (x86) or implementer/part/revision (ARM); the
    :data:`KERNEL_FLAGS` it has; logical CPUs; memory. For example ``Intel(R) Xeon(R) Processor; x86_64 6/207/2;
    avx2 fma avx512f ... amx_int8; 2 cpus; 23 GiB``."""
    info = _cpuinfo()
    machine = platform.machine()
    if "cpu family" in info:
        generation = f"{machine} {info.get('cpu family')}/{info.get('model')}/{info.get('stepping')}"
    elif "CPU part" in info:
        generation = f"{machine} {info.get('CPU implementer')}/{info.get('CPU part')}/{info.get('CPU revision')}"
    else:
        generation = machine
    present = set((info.get("flags") or info.get("Features") or "").split())
    flags = " ".join(f for f in KERNEL_FLAGS if f in present) or "no flags listed"
    memory = _memory_gib()
    parts = [cpu_model(), generation, flags, f"{os.cpu_count()} cpus"]
    if memory is not None:
        parts.append(f"{memory} GiB")
    return "; ".join(parts)


def hardware(device: torch.device | str = "cpu") -> str:
    """What ran the figures: :func:`cpu_hardware`, and for a GPU its name, compute capability and memory first."""
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return (
            f"{props.name}; sm_{props.major}{props.minor}; {round(props.total_memory / 2**30)} GiB; "
            f"host {cpu_hardware()}"
        )
    if device.type == "mps":
        return f"Apple GPU (mps); host {cpu_hardware()}"
    return cpu_hardware()


def device_name(device: torch.device | str = "cpu") -> str:
    """The device's own name: the CPU model, the GPU's name, or ``Apple GPU (mps)``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (mps)"
    return cpu_model()


def machine_identity(device: torch.device | str = "cpu") -> str:
    """12 hex digits naming this machine and device: OS machine id (or ``$CNNBENCH_MACHINE_ID``), host, device and
    its :func:`hardware`."""
    base = os.environ.get(MACHINE_ENV) or _os_machine_id()
    text = f"{base}|{platform.node()}|{device_name(device)}|{hardware(device)}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@cache
def git_commit() -> str:
    """The short commit of the checkout cnnbench runs from, with ``+dirty`` when its code has uncommitted changes
    (results/, which the report itself rewrites, does not count); ``unknown`` outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],  # results/: outputs
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def now() -> str:
    """The time of a measurement: UTC, ISO 8601, to the second."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def environment(device: torch.device | str = "cpu") -> dict[str, str]:
    """What every results file records about the machine and software a figure was measured with."""
    return {
        "machine": machine_identity(device),
        "host": platform.node(),
        "device_name": device_name(device),
        "hardware": hardware(device),
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit(),
    }


def fingerprint(settings: Mapping[str, object]) -> str:
    """12 hex digits of a settings mapping (timing, batch, resolution, ...), independent of key order."""
    text = json.dumps(
        dict(settings), sort_keys=True, default=lambda v: asdict(v) if hasattr(v, "__dataclass_fields__") else str(v)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Stamp:
    """What must all match for a stored row to stand for a measurement made now.

    ``target`` is :attr:`Target.key` (``meta`` for counts), ``settings`` a :func:`fingerprint` of the timing, batch
    and resolution, ``code`` a fingerprint of every module whose output the row stores. ``quick`` rows come from
    short timing and are never reused by a full run (their settings differ too). ``probe_ms`` is today's speed
    probe for timed rows (None for counts): a row is reused only while its own probe is within
    :data:`PROBE_TOLERANCE` of it. A row flagged ``disturbed`` is never reused.
    """

    machine: str
    hardware: str
    torch: str
    target: str
    settings: str
    code: str
    quick: bool = False
    probe_ms: float | None = None

    @classmethod
    def here(
        cls,
        target: str,
        settings: Mapping[str, object],
        code: str,
        device: torch.device | str = "cpu",
        quick: bool = False,
        probe_ms: float | None = None,
    ) -> Stamp:
        """The stamp of a measurement on this machine and device, with this torch."""
        return cls(
            machine_identity(device),
            hardware(device),
            torch.__version__,
            target,
            fingerprint({**settings, "quick": quick}),
            code,
            quick,
            probe_ms,
        )

    def matches(self, row: Mapping[str, object]) -> bool:
        """Whether ``row`` stands for a measurement made now (see the class doc)."""
        if not all(str(row.get(k)) == str(getattr(self, k)) for k in (*STAMP_COLUMNS, "quick")):
            return False
        if is_disturbed(row):
            return False
        return self.probe_ms is None or probe_agrees(row.get("probe_ms"), self.probe_ms)

    def columns(self, device: torch.device | str = "cpu") -> dict[str, object]:
        """The provenance columns of a row measured now under this stamp."""
        return {
            **{k: getattr(self, k) for k in STAMP_COLUMNS},
            "quick": self.quick,
            "commit": git_commit(),
            "host": platform.node(),
            "device_name": device_name(device),
            "measured_at": now(),
            "probe_ms": None if self.probe_ms is None else round(self.probe_ms, 4),
        }


def is_disturbed(row: Mapping[str, object]) -> bool:
    """Whether a stored row was flagged ``disturbed`` (:mod:`cnnbench.measure.disturbance`); rows from before the
    flag existed, and rows that were never timed, are not."""
    return str(row.get("disturbed")).strip().lower() in ("true", "1", "1.0")


def probe_agrees(stored: object, today: float, tolerance: float = PROBE_TOLERANCE) -> bool:
    """Whether a row's ``probe_ms`` (as stored: a number, text, or missing) is within ``tolerance`` of today's."""
    try:
        value = float(stored)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and value > 0 and abs(today / value - 1) <= tolerance
