"""The memory of a whole job: this process and every process it started, at its highest.

A report measures each row in a child process and prepares exports in other children, so the parent's own
``ru_maxrss`` says little. :class:`PeakResident` samples the process tree (Linux ``/proc``) every :data:`SAMPLE_S`
from a thread and keeps three peaks:

- ``peak_pss_bytes``: the proportional set size (``Pss`` of ``/proc/PID/smaps_rollup``) summed over the tree. A
  page shared by several processes counts once in the sum, split between them: the children are forked from one
  forkserver and share the ~0.8 GB of libraries it loaded (torch, ONNX Runtime, OpenVINO). This is the physical
  memory the job holds, what a machine must have free to run it.
- ``peak_bytes``: ``VmRSS`` summed over the tree, which counts each shared page once per process that maps it (an
  upper bound, ~0.8 GB per live child above the physical figure here);
- ``largest_process_bytes``: the largest single process's high-water mark (``getrusage``: this process, and the
  largest child waited for). Sampling can miss a peak shorter than its period; this figure cannot.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["SAMPLE_S", "PeakResident", "TreeMemory", "process_children", "tree_memory", "tree_resident_bytes"]

SAMPLE_S = 0.5


def process_children() -> dict[int, list[int]]:
    """Every process's children, by parent pid (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
            parent = int(text[text.rfind(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    return children


@dataclass(frozen=True)
class TreeMemory:
    """One reading of a process tree: ``VmRSS`` and ``Pss`` summed over its processes, in bytes."""

    rss_bytes: int
    pss_bytes: int | None  # None where smaps_rollup is missing (kernels before 4.14) or unreadable


def _kib_field(path: str, name: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_memory(root: int | None = None) -> TreeMemory | None:
    """``root`` (default: this process) and all its descendants, summed; None off Linux. A process that ends while
    it is read counts as nothing."""
    if not os.path.isdir("/proc"):
        return None
    children, stack = process_children(), [root or os.getpid()]
    rss, pss, pss_known = 0, 0, True
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        resident = _kib_field(f"/proc/{pid}/status", "VmRSS:")
        if resident is None:
            continue  # gone, or a kernel thread
        rss += resident
        proportional = _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")
        pss_known = pss_known and proportional is not None
        pss += proportional or 0
    return TreeMemory(rss, pss if pss_known else None)


def tree_resident_bytes(root: int | None = None) -> int | None:
    """The summed ``VmRSS`` of ``root`` (default: this process) and all its descendants; None off Linux."""
    reading = tree_memory(root)
    return reading.rss_bytes if reading else None


class PeakResident:
    """A context manager: while it is open, the peaks of :func:`tree_memory` (``peak_pss_bytes``, ``peak_bytes``);
    after, also the largest single process's high-water mark (``largest_process_bytes``)."""

    def __init__(self, every_s: float = SAMPLE_S) -> None:
        self.every_s = every_s
        self.peak_bytes: int | None = None
        self.peak_pss_bytes: int | None = None
        self.largest_process_bytes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cnnbench-resident", daemon=True)

    def _sample(self) -> None:
        while True:
            now = tree_memory()
            if now is not None:
                self.peak_bytes = max(self.peak_bytes or 0, now.rss_bytes)
                if now.pss_bytes is not None:
                    self.peak_pss_bytes = max(self.peak_pss_bytes or 0, now.pss_bytes)
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> PeakResident:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        kib = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        self.largest_process_bytes = kib if sys.platform == "darwin" else kib * 1024  # bytes on macOS, KiB elsewhere

    def describe(self) -> str:
        """``peak memory 3.41 GB (proportional set size of this process and its children, summed: shared pages
        counted once; sampled every 0.5 s); summed RSS 4.20 GB; largest single process 2.30 GB``."""
        parts = []
        if self.peak_pss_bytes is not None:
            parts.append(
                f"peak memory {self.peak_pss_bytes / 1e9:.2f} GB (proportional set size of this process and its "
                f"children, summed: shared pages counted once; sampled every {self.every_s:g} s)"
            )
        if self.peak_bytes is not None:
            parts.append(f"summed RSS {self.peak_bytes / 1e9:.2f} GB (shared pages counted in every process)")
        if self.largest_process_bytes is not None:
            parts.append(f"largest single process {self.largest_process_bytes / 1e9:.2f} GB")
        return "; ".join(parts) or "no memory figures on this system"
