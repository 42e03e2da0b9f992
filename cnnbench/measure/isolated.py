"""A measurement in a child process of its own: the resident-memory peak it reports is its own, and a crash or an
out-of-memory kill costs that one row, not the sweep.

Children fork from a forkserver that has imported torch, the runtimes and cnnbench's measurement once, so a child
starts in tens of milliseconds rather than the seconds a fresh interpreter takes to import torch. The forkserver
never runs a torch operation, so no thread pool is forked half-initialised.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from cnnbench.errors import CnnbenchError, reason

__all__ = ["run_isolated", "map_isolated", "preparation_workers"]

T = TypeVar("T")
# What a measurement imports, so that no child pays for it: besides the runtimes, ``onnx`` and ONNX Runtime's quantizer
# (int8), scikit-learn's datasets (the digits calibrate int8) and torch's dynamo, which the meta-device build of a
# runtime row pulls in (``torch.device("meta")`` runs weight initialisers through ``torch._refs``): 1–3 s a row.
_PRELOAD = [
    "cnnbench.measure.latency",
    "cnnbench.runtimes.session",
    "onnxruntime",
    "openvino",
    "onnx",
    "onnxruntime.quantization",
    "sklearn.datasets",
    "torch._dynamo",
]
_context: Any = None
# The report's preparation (exports and INT8 quantization, before any timing) stays within this much resident memory,
# this process, the forkserver and the children summed.
PREPARATION_BUDGET_BYTES = 4 * 10**9
# The largest preparation child: VGG-19-BN's ONNX export peaks at 2.99-3.04 GB resident (torch's exporter holds its
# 575 MB of weights four times: the model's, its ModelProto's, the serialized bytes and Python's copy of them; 0.6 GB
# are the imports every child shares with the forkserver). A VGG's INT8 quantization peaks at 2.1 GB, the rest under
# 1.9 GB.
LARGEST_PREPARATION_BYTES = 3_050_000_000
# The largest preparation child among the models of at most 7 G multiply-adds and 40 M parameters (no VGG, AlexNet,
# ResNet-101/152 or EfficientNet-B5-B7): an estimate, which the report's printed peak checks.
LIGHT_PREPARATION_BYTES = 1_300_000_000
FORKSERVER_BYTES = 670_000_000  # the forkserver, resident once it has imported _PRELOAD
_starting = threading.Lock()  # map_isolated starts children from threads: one start (and __main__ hiding) at a time


def _get_context() -> Any:
    global _context
    if _context is None:
        methods = multiprocessing.get_all_start_methods()
        _context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            _context.set_forkserver_preload(_PRELOAD)
    return _context


def _child(connection: Connection, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        connection.send(("ok", fn(*args, **kwargs)))
    except CnnbenchError as err:
        connection.send(("error", str(err)))
    except BaseException as err:  # noqa: BLE001 - reported to the parent as the row's reason
        connection.send(("error", reason(err, 200)))
    finally:
        connection.close()


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """The child needs only cnnbench's importable modules; without this it would re-run the parent's main script
    (the ``cnnbench`` console script, pytest, or a ``python -`` that no file holds)."""
    main = sys.modules["__main__"]
    saved = {key: main.__dict__[key] for key in ("__file__", "__spec__") if key in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)


def run_isolated(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a child process; its result (pickled back), or :class:`CnnbenchError` with the
    child's error, or with how it died (a signal: SIGKILL is usually the kernel's out-of-memory killer)."""
    with _starting:
        context = _get_context()
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(send, fn, args, kwargs), daemon=True)
        with _main_hidden():
            process.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:
        status, value = "died", None
    finally:
        process.join()
        receive.close()
    if status == "ok":
        return value  # type: ignore[no-any-return]
    if status == "error":
        raise CnnbenchError(str(value))
    code = process.exitcode or 0
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    hint = " (out of memory?)" if code == -signal.SIGKILL else ""
    raise CnnbenchError(f"the measuring process died ({how}){hint}")


def preparation_workers(largest_bytes: int = LARGEST_PREPARATION_BYTES) -> int:
    """Children to run at once for work that is not timed (exports, quantization): as many children of
    ``largest_bytes`` as fit in :data:`PREPARATION_BUDGET_BYTES` beside this process and the forkserver, at most the
    cores this process may use and 4, and at least one. For the largest models, one: on 2 cores, exporting then
    quantizing the 62 zoo models, the resident sizes of the parent and its descendants summed (sampled every 0.2 s)
    peaked at 4.3 GB one child at a time, 6.8 GB two at a time (two VGG exports at once). One is no slower for the
    exports, as torch already uses every core (80 s against 86 s), and slower for INT8 (250-261 s against 166-268 s,
    measured beside another benchmark)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    held = _resident_bytes() + (FORKSERVER_BYTES if _context is None else 0)  # the forkserver: once started, held
    fit = (PREPARATION_BUDGET_BYTES - held) // largest_bytes
    return max(1, min(4, cores, fit))


def _resident_bytes() -> int:
    """This process and its descendants (the forkserver, once started), summed; 0 off Linux."""
    from cnnbench.measure.resident import tree_resident_bytes

    return tree_resident_bytes() or 0


def map_isolated(
    fn: Callable[..., T],
    argsets: Sequence[tuple[Any, ...]],
    workers: int,
    progress: Callable[[Sequence[Future[T]], str], Iterable[Future[T]]] | None = None,
    desc: str = "",
) -> list[T | CnnbenchError]:
    """``fn(*args)`` for every argument tuple, each in its own child, ``workers`` at a time; in order, each its
    result or the :class:`CnnbenchError` it raised. Never for timing: the children share the cores."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run_isolated, fn, *args) for args in argsets]
        results: list[T | CnnbenchError] = []
        for future in progress(futures, desc) if progress else futures:
            try:
                results.append(future.result())
            except CnnbenchError as err:
                results.append(err)
        return results
