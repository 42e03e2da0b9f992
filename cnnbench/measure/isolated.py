"""A measurement in a child process of its own: the resident-memory peak it reports is its own, and a crash or an
out-of-memory kill costs that one row, not the sweep.

Children fork from a forkserver that has imported torch, the runtimes and cnnbench's measurement once, so a child
starts in tens of milliseconds rather than the seconds a fresh interpreter takes to import torch. The forkserver
never runs a torch operation, so no thread pool is forked half-initialised.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from cnnbench.errors import CnnbenchError, reason

__all__ = ["FORKSERVER_BYTES", "CallPlan", "held_bytes", "map_isolated", "run_isolated"]

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
# The forkserver's proportional set size once it has imported _PRELOAD: this process alone 0.66 GB, with it 1.26 GB.
FORKSERVER_BYTES = 600_000_000
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


def held_bytes() -> int:
    """The memory this process and its descendants hold now, as a budget counts it: their proportional set sizes
    summed (shared pages once), the forkserver's estimated before it starts; 0 off Linux."""
    from cnnbench.measure.resident import tree_memory

    reading = tree_memory()
    if reading is None:
        return 0
    held = reading.pss_bytes if reading.pss_bytes is not None else reading.rss_bytes
    return held + (FORKSERVER_BYTES if _context is None else 0)


@dataclass(frozen=True)
class CallPlan:
    """When each call of :func:`map_isolated` may start: ``sizes[i]`` is the memory call ``i``'s child adds, and
    the calls running together stay within ``budget_bytes`` (a call larger than the budget runs alone);
    ``after[i]``, when not None, is the earlier call that must finish first (call ``i`` reads what it makes)."""

    sizes: tuple[int, ...]
    budget_bytes: int
    after: tuple[int | None, ...] = ()

    def prerequisite(self, index: int) -> int | None:
        return self.after[index] if self.after else None


class _AsTheyFinish(Sequence[str]):
    """The labels of ``futures``, iterated in the order the futures finish (each waited for), so that a progress
    line per item counts what is done and its estimate of what is left holds."""

    def __init__(self, futures: list[Future[Any]], labels: Sequence[str]) -> None:
        self._futures, self._labels = futures, labels

    def __len__(self) -> int:
        return len(self._futures)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return self._labels[index]

    def __iter__(self) -> Iterator[str]:
        index_of = {id(future): i for i, future in enumerate(self._futures)}
        for future in as_completed(self._futures):
            yield self._labels[index_of[id(future)]]


def map_isolated(
    fn: Callable[..., T],
    argsets: Sequence[tuple[Any, ...]],
    workers: int,
    progress: Callable[[Sequence[str], str], Iterable[str]] | None = None,
    desc: str = "",
    plan: CallPlan | None = None,
    labels: Sequence[str] | None = None,
) -> list[T | CnnbenchError]:
    """``fn(*args)`` for every argument tuple, each in its own child, at most ``workers`` at a time; in order, each
    its result or the :class:`CnnbenchError` it raised. Never for timing: the children share the cores.

    With a ``plan``, the first waiting call that it allows starts, in the given order: a large call first in line
    runs beside small ones rather than beside another large one. A call whose prerequisite failed does not run and
    carries that error. ``progress`` sees each call's label (default: its number) as the call finishes."""
    plan = plan or CallPlan((0,) * len(argsets), 0)
    if len(plan.sizes) != len(argsets) or len(plan.after) not in (0, len(argsets)):
        raise ValueError(f"a plan for {len(plan.sizes)} calls, given {len(argsets)}")
    if any(first is not None and not 0 <= first < index for index, first in enumerate(plan.after)):
        raise ValueError("a call's prerequisite must come before it")
    futures: list[Future[T]] = [Future() for _ in argsets]
    scheduler = threading.Thread(
        target=_schedule, args=(fn, argsets, max(1, workers), plan, futures), name="cnnbench-isolated", daemon=True
    )
    scheduler.start()
    finishing = _AsTheyFinish(futures, labels or [str(i + 1) for i in range(len(futures))])
    for _ in progress(finishing, desc) if progress else finishing:
        pass
    scheduler.join()
    results: list[T | CnnbenchError] = []
    for future in futures:
        try:
            results.append(future.result())
        except CnnbenchError as err:
            results.append(err)
    return results


def _schedule(
    fn: Callable[..., T], argsets: Sequence[tuple[Any, ...]], workers: int, plan: CallPlan, futures: list[Future[T]]
) -> None:
    """Start the calls of :func:`map_isolated` as the workers and the plan allow; hand each outcome to its future."""
    waiting = list(range(len(argsets)))
    running: dict[Future[T], int] = {}

    def blocked(index: int) -> bool:  # its prerequisite has not finished
        first = plan.prerequisite(index)
        return first is not None and not futures[first].done()

    def failed_prerequisite(index: int) -> BaseException | None:
        first = plan.prerequisite(index)
        return futures[first].exception() if first is not None and futures[first].done() else None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        while waiting or running:
            for index in list(waiting):
                error = failed_prerequisite(index)
                if error is not None:  # nothing to start from
                    waiting.remove(index)
                    futures[index].set_exception(error)
            while waiting and len(running) < workers:
                used = sum(plan.sizes[i] for i in running.values())
                fits = [
                    i for i in waiting if not blocked(i) and (not running or used + plan.sizes[i] <= plan.budget_bytes)
                ]
                if not fits:
                    break
                waiting.remove(fits[0])
                running[pool.submit(run_isolated, fn, *argsets[fits[0]])] = fits[0]
            if not running:
                continue  # every call left waited on one that failed: handled above
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for done in finished:
                index = running.pop(done)
                error = done.exception()
                if error is None:
                    futures[index].set_result(done.result())
                else:
                    futures[index].set_exception(error)
