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
_PRELOAD = ["cnnbench.measure.latency", "cnnbench.runtimes.session", "onnxruntime", "openvino", "onnx",
            "onnxruntime.quantization", "sklearn.datasets", "torch._dynamo"]
_context: Any = None
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


def preparation_workers() -> int:
    """Children to run at once for work that is not timed (exports, quantization): the cores this process may use,
    at most 4 (a VGG quantization holds a few GB)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def map_isolated(fn: Callable[..., T], argsets: Sequence[tuple[Any, ...]], workers: int,
                 progress: Callable[[Sequence[Future[T]], str], Iterable[Future[T]]] | None = None,
                 desc: str = "") -> list[T | CnnbenchError]:  # fmt: skip
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
