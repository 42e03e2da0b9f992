"""Where, when and with what a figure was measured, and when a stored row may stand for a new measurement.

Every row a results table stores carries its provenance (:data:`PROVENANCE_COLUMNS`): the machine, the torch
version, the target, the settings, the code fingerprint, the commit (``+dirty`` when the code had uncommitted
changes) and the time it was measured. A stored row is reused only when its :class:`Stamp` equals the one the
caller would measure under now; otherwise it is measured again, and never re-labelled.

The machine's identity tells apart two machines with the same CPU model and host name: it hashes the operating
system's machine id (``/etc/machine-id`` on Linux, the platform UUID on macOS), the host name and the device's
name. Containers cloned from one image may share a machine id; ``CNNBENCH_MACHINE_ID`` overrides the OS's id
(tests use it to fake a second machine).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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
    "PROVENANCE_COLUMNS",
    "Stamp",
    "cpu_model",
    "device_name",
    "environment",
    "fingerprint",
    "git_commit",
    "machine_identity",
    "now",
]

MACHINE_ENV = "CNNBENCH_MACHINE_ID"

# The columns every stored row carries. The first five are the stamp (they must match for a row to be reused); the
# others say where and when it was measured.
STAMP_COLUMNS = ("machine", "torch", "target", "settings", "code")
PROVENANCE_COLUMNS = (*STAMP_COLUMNS, "quick", "commit", "host", "device_name", "measured_at")


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


def device_name(device: torch.device | str = "cpu") -> str:
    """The device's own name: the CPU model, the GPU's name, or ``Apple GPU (mps)``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (mps)"
    return cpu_model()


def machine_identity(device: torch.device | str = "cpu") -> str:
    """12 hex digits naming this machine and device: OS machine id (or ``$CNNBENCH_MACHINE_ID``), host, device."""
    base = os.environ.get(MACHINE_ENV) or _os_machine_id()
    text = f"{base}|{platform.node()}|{device_name(device)}"
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
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit(),
    }


def fingerprint(settings: Mapping[str, object]) -> str:
    """12 hex digits of a settings mapping (timing, batch, resolution, ...), independent of key order."""
    text = json.dumps(dict(settings), sort_keys=True, default=lambda v: asdict(v) if hasattr(v, "__dataclass_fields__")
                      else str(v))  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Stamp:
    """What must all match for a stored row to stand for a measurement made now.

    ``target`` is :attr:`Target.key` (``meta`` for counts), ``settings`` a :func:`fingerprint` of the timing, batch
    and resolution, ``code`` a fingerprint of every module whose output the row stores. ``quick`` rows come from
    short timing and are never reused by a full run (their settings differ too).
    """

    machine: str
    torch: str
    target: str
    settings: str
    code: str
    quick: bool = False

    @classmethod
    def here(cls, target: str, settings: Mapping[str, object], code: str, device: torch.device | str = "cpu",
             quick: bool = False) -> Stamp:  # fmt: skip
        """The stamp of a measurement on this machine and device, with this torch."""
        return cls(machine_identity(device), torch.__version__, target, fingerprint({**settings, "quick": quick}),
                   code, quick)  # fmt: skip

    def matches(self, row: Mapping[str, object]) -> bool:
        return all(str(row.get(k)) == str(getattr(self, k)) for k in (*STAMP_COLUMNS, "quick"))

    def columns(self, device: torch.device | str = "cpu") -> dict[str, object]:
        """The provenance columns of a row measured now under this stamp."""
        return {
            **{k: getattr(self, k) for k in STAMP_COLUMNS},
            "quick": self.quick,
            "commit": git_commit(),
            "host": platform.node(),
            "device_name": device_name(device),
            "measured_at": now(),
        }
