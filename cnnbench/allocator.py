"""The host allocator while cnnbench times a forward: glibc's malloc told to keep the memory a forward frees.

By default glibc gives a freed block above its mmap threshold back to the kernel, and raises that threshold each
time the process frees a bigger block. An eager CPU forward's activations then land on fresh pages (a page fault
per 4 KiB) or on reused ones depending on what the process ran before. On a 2-core EPYC, EfficientNet-B6 took
433 ms measured after the rest of the zoo and 265 ms with freed memory kept; MobileNetV2 took 11.4 ms with 2,600
page faults per forward and 8.5 ms with none. Fixed thresholds make a forward's time its own, as a caching
allocator does (PyTorch's on CUDA, ONNX Runtime's arena, and jemalloc or tcmalloc, which PyTorch's CPU launcher
preloads). Blocks above 32 MiB (activations of a large batch) are still mapped afresh each time.

Only a timed region changes the setting (:func:`hold_freed_memory`, called by
:func:`cnnbench.measure.forward.running`); describing a target reads it (:func:`while_timing`) and changes nothing,
which is why this module sits below both :mod:`cnnbench.target` and :mod:`cnnbench.measure`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = [
    "MMAP_THRESHOLD_BYTES",
    "TRIM_THRESHOLD_BYTES",
    "give_back_freed_memory",
    "hold_freed_memory",
    "while_timing",
]

# glibc's mallopt parameters (malloc.h) and the values cnnbench sets: blocks up to 32 MiB (the largest threshold
# glibc takes on 64 bits) come from the heap, and the heap is given back to the kernel only above 1 GiB free.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 2**30


NOT_GLIBC = "system allocator, unchanged (not glibc)"
REFUSED = "glibc malloc, unchanged (mallopt refused)"
HELD = f"glibc malloc, freed memory kept (mmap threshold {MMAP_THRESHOLD_BYTES >> 20} MiB, trim 1 GiB)"


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc (the only one whose malloc takes these settings), else ``None``."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "gnu_get_libc_version") else None


@functools.cache
def hold_freed_memory() -> str:
    """Have glibc's malloc keep freed memory for reuse, once per process (the setting cannot be undone); returns
    what the allocator does. Only a timed region calls it (:func:`cnnbench.measure.forward.running`). Elsewhere
    (musl, macOS, Windows) nothing is changed, and the description says so."""
    libc = _glibc()
    if libc is None:
        return NOT_GLIBC
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    if not (mmap_set and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        return REFUSED
    return HELD


def while_timing() -> str:
    """What the allocator does while cnnbench times a forward, read without changing it: what
    :func:`hold_freed_memory` did if a timed region has run in this process, else what it will do."""
    if hold_freed_memory.cache_info().currsize:
        return hold_freed_memory()
    return HELD if _glibc() is not None else NOT_GLIBC


def give_back_freed_memory() -> bool:
    """Return the heap's free pages to the kernel now (glibc's ``malloc_trim(0)``), whatever the thresholds say;
    True when some were. A long job's parent calls it between stages, so the memory its profiling and drawing
    freed is not held while its children export the largest models. Does nothing where malloc is not glibc's."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
