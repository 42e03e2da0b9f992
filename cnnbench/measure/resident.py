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

__all__ = [
    "SAMPLE_S",
    "PeakResident",
    "TreeMemory",
    "process_children",
    "tree_memory",
    "tree_pids",
    "tree_resident_bytes",
]

SAMPLE_S = 0.5
PSS_EVERY = 10  # samples: below that, the PSS at most this seldom
RSS_ONLY = 2**62  # a `pss_above` no tree reaches: the RSS alone


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


def _children_of(pid: int) -> list[int] | None:
    """``pid``'s children from ``/proc/PID/task/TID/children`` (a few small reads, where walking all of /proc costs
    ~10 ms of CPU); None where the kernel does not offer the file."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # gone
    kids: list[int] = []
    for task in tasks:
        try:
            kids += [int(n) for n in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except FileNotFoundError:
            if os.path.isdir(f"/proc/{pid}/task/{task}"):
                return None  # a kernel without CONFIG_PROC_CHILDREN
            continue  # the thread ended meanwhile
        except (OSError, ValueError):
            continue
    return kids


def tree_pids(root: int | None = None) -> list[int]:
    """``root`` (default: this process) and all its descendants; empty off Linux."""
    if not os.path.isdir("/proc"):
        return []
    pids, stack, everyone = [], [root or os.getpid()], None
    while stack:
        pid = stack.pop()
        pids.append(pid)
        kids = _children_of(pid)
        if kids is None:  # no children files: one walk of /proc for the rest of the tree
            everyone = everyone if everyone is not None else process_children()
            kids = everyone.get(pid, [])
        stack += kids
    return pids


def tree_memory(root: int | None = None, pss_above: int = 0) -> TreeMemory | None:
    """``root`` (default: this process) and all its descendants, summed; None off Linux. A process that ends while
    it is read counts as nothing. The proportional set size costs a walk of each process's page tables (~10 ms for
    a 2 GB process), so it is read only when the summed RSS is above ``pss_above``: a sum of PSS never exceeds the
    sum of RSS, so below that it cannot beat a peak already seen (``pss_bytes`` is then None)."""
    if not os.path.isdir("/proc"):
        return None
    alive: list[int] = []
    rss = 0
    for pid in tree_pids(root):
        resident = _kib_field(f"/proc/{pid}/status", "VmRSS:")
        if resident is None:
            continue  # gone, or a kernel thread
        rss += resident
        alive.append(pid)
    if rss <= pss_above:
        return TreeMemory(rss, None)
    proportional = [_kib_field(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in alive]
    if any(p is None for p in proportional):
        return TreeMemory(rss, None)
    return TreeMemory(rss, sum(p or 0 for p in proportional))


def tree_resident_bytes(root: int | None = None) -> int | None:
    """The summed ``VmRSS`` of ``root`` (default: this process) and all its descendants; None off Linux."""
    reading = tree_memory(root, pss_above=RSS_ONLY)
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
        """Every ``every_s``: the summed RSS (0.1 ms of CPU). The proportional set size (~20 ms, beside the rows
        being timed) only when it could set a new peak (the summed RSS above the PSS peak), and then only when the
        RSS sets a new high of its own or :data:`PSS_EVERY` samples have passed: the two peak together."""
        since_pss = PSS_EVERY
        while True:
            rss = tree_memory(pss_above=RSS_ONLY)
            if rss is not None:
                new_high = rss.rss_bytes > (self.peak_bytes or 0)
                self.peak_bytes = max(self.peak_bytes or 0, rss.rss_bytes)
                if rss.rss_bytes > (self.peak_pss_bytes or 0) and (new_high or since_pss >= PSS_EVERY):
                    now = tree_memory(pss_above=self.peak_pss_bytes or 0)
                    since_pss = 0
                    if now is not None and now.pss_bytes is not None:
                        self.peak_pss_bytes = max(self.peak_pss_bytes or 0, now.pss_bytes)
                since_pss += 1
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
