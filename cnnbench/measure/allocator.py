"""The host allocator while cnnbench times a forward: glibc's malloc told to keep the memory a forward frees.

By default glibc gives a freed block above its mmap threshold back to the kernel, and raises that threshold each
time the process frees a bigger block. An eager CPU forward's activations then land on fresh pages (a page fault
per 4 KiB) or on reused ones depending on what the process ran before. On a 2-core EPYC, EfficientNet-B6 took
433 ms measured after the rest of the zoo and 265 ms with freed memory kept; MobileNetV2 took 11.4 ms with 2,600
page faults per forward and 8.5 ms with none. Fixed thresholds make a forward's time its own, as a caching
allocator does (PyTorch's on CUDA, ONNX Runtime's arena, and jemalloc or tcmalloc, which PyTorch's CPU launcher
preloads). Blocks above 32 MiB (activations of a large batch) are still mapped afresh each time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "hold_freed_memory"]

# glibc's mallopt parameters (malloc.h) and the values cnnbench sets: blocks up to 32 MiB (the largest threshold
# glibc takes on 64 bits) come from the heap, and the heap is given back to the kernel only above 1 GiB free.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 2**30


@functools.cache
def hold_freed_memory() -> str:
    """Have glibc's malloc keep freed memory for reuse, once per process (the setting cannot be undone); returns
    what the allocator does, for the description of every target. Elsewhere (musl, macOS, Windows) nothing is
    changed, and the description says so."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    if libc is None or not hasattr(libc, "gnu_get_libc_version"):
        return "system allocator, unchanged (not glibc)"
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    if not (mmap_set and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        return "glibc malloc, unchanged (mallopt refused)"
    return f"glibc malloc, freed memory kept (mmap threshold {MMAP_THRESHOLD_BYTES >> 20} MiB, trim 1 GiB)"
