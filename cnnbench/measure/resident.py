"""The resident memory of a whole job: this process and every process it started, summed, at its highest.

A report measures each row in a child process and prepares exports in several children at once, so the parent's
own ``ru_maxrss`` says little. :class:`PeakResident` samples the sum of ``VmRSS`` over this process tree (Linux
``/proc``) every :data:`SAMPLE_S` from a thread, and also keeps the largest single process's high-water mark
(``getrusage``: this process, and the largest child waited for). Sampling can miss a peak shorter than its period;
the single-process figure cannot.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path
from types import TracebackType

__all__ = ["SAMPLE_S", "PeakResident", "process_children", "tree_resident_bytes"]

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


def tree_resident_bytes(root: int | None = None) -> int | None:
    """The summed ``VmRSS`` of ``root`` (default: this process) and all its descendants; None off Linux."""
    if not os.path.isdir("/proc"):
        return None
    children, stack, total = process_children(), [root or os.getpid()], 0
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


class PeakResident:
    """A context manager: while it is open, the peak of :func:`tree_resident_bytes` (``peak_bytes``); after, also the
    largest single process's high-water mark (``largest_process_bytes``)."""

    def __init__(self, every_s: float = SAMPLE_S) -> None:
        self.every_s = every_s
        self.peak_bytes: int | None = None
        self.largest_process_bytes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cnnbench-resident", daemon=True)

    def _sample(self) -> None:
        while True:
            now = tree_resident_bytes()
            if now is not None:
                self.peak_bytes = max(self.peak_bytes or 0, now)
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
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        )
        self.largest_process_bytes = kib if sys.platform == "darwin" else kib * 1024  # bytes on macOS, KiB elsewhere

    def describe(self) -> str:
        """``peak resident memory 2.31 GB (this process and its children, summed, sampled every 0.5 s); largest
        single process 1.90 GB``."""
        parts = []
        if self.peak_bytes is not None:
            parts.append(
                f"peak resident memory {self.peak_bytes / 1e9:.2f} GB (this process and its children, "
                f"summed, sampled every {self.every_s:g} s)"
            )
        if self.largest_process_bytes is not None:
            parts.append(f"largest single process {self.largest_process_bytes / 1e9:.2f} GB")
        return "; ".join(parts) or "no memory figures on this system"
