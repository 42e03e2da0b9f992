"""``cnnbench fleet run --ray``: ``cnnbench report`` on every board of a Ray cluster, each board's folder gathered
into one folder. Ray schedules and moves the files; nothing here queues, retries or logs in anywhere (no ssh).

A *board* is what one report measures: a Raspberry Pi, a Jetson, a workstation. A Ray node carries a board by
advertising a custom resource named after it (``ray start --address HEAD:6379 --resources '{"rpi5": 1}'``): every
resource of a node that is not one of Ray's own (:data:`RAY_RESOURCES`, or a name starting with one of
:data:`RAY_RESOURCE_PREFIXES`) names a board, and its quantity does not matter. A node with no such resource runs
nothing. ``--ray auto`` starts a local Ray instance whose one node carries one board named after the host, so that
a fleet run can be tried on one machine. (The word is "board", not "device": ``--device`` stays the torch device a
report runs on, cpu or cuda.)

For each (node, board), one Ray task runs ``python -m cnnbench report MODEL... --out TMP`` on that node, in a process
of its own, and sends back the folder's files (CSV, JSON, Markdown, PNG, SVG: a few MB for the whole zoo). The task
asks for ``{board: 1}``, pinned to its node, and for all of the node's CPUs and GPUs: Ray then schedules nothing
else on the node beside the timed run, and a node's boards take turns. The driver writes each folder whole or not
at all, as ``OUT/<host>-<board>/`` (``OUT/<host>/`` for ``auto``'s board, named after the host), and sends a folder
already there to its board first, so that the report reuses its rows as ``cnnbench report`` does. A board that
fails leaves the others' folders written and its own as it was; one line names it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cnnbench.catalog import resolve_patterns
from cnnbench.errors import CnnbenchError, first_line, reason
from cnnbench.store import atomic_folder, check_writable
from cnnbench.target import BACKENDS, DTYPES, INT8

__all__ = [
    "AUTO",
    "RAY_RESOURCES",
    "RAY_RESOURCE_PREFIXES",
    "Board",
    "BoardRun",
    "ReportOptions",
    "boards_of",
    "is_board_resource",
    "report_on_board",
    "run_on_ray",
]

# `--ray auto`: a new local Ray instance (Ray's own address "local"; Ray's "auto" would join a running cluster).
AUTO = "auto"
# Ray's own resources: CPUs, memory, and the accelerators it detects (ray/_private/accelerators, Ray 2.58-2.60).
RAY_RESOURCES = frozenset("CPU GPU memory object_store_memory TPU NPU HPU neuron_cores RBLN TTNPU FURIOSA MBLT".split())
# Ray's per-node and per-kind resources: node:<ip>, node:__internal_head__, accelerator_type:A100, a TPU pod's
# TPU-v4-16-head; a placement group's bundles are <resource>_group_<id>.
RAY_RESOURCE_PREFIXES = ("node:", "accelerator_type:", "TPU-")
# Ray starts its workers at a niceness 15 above the raylet's (its worker_niceness), which the report would inherit:
# every un-niced process of the board would come first. A worker with this environment runs at the raylet's level,
# as Ray's own job supervisor does (ray/dashboard/modules/job/job_manager.py).
UNNICED = {"env_vars": {"RAY_worker_niceness": "0"}}
# The object store of `auto`'s local instance: it carries a few MB of files per board. Ray's minimum is 75 MiB.
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20


def is_board_resource(name: str) -> bool:
    """Whether a Ray resource names a board: any resource that is not one of Ray's own."""
    return name not in RAY_RESOURCES and not name.startswith(RAY_RESOURCE_PREFIXES) and "_group_" not in name


def _file_name(text: str) -> str:
    """``text`` as a folder name: letters, digits, ``.``, ``_`` and ``-`` kept, anything else ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "_"


@dataclass(frozen=True)
class Board:
    """One board on one Ray node, and the node's CPUs and GPUs its report takes whole."""

    node_id: str  # Ray's hex node id
    host: str  # the node's host name
    name: str  # the Ray resource that names the board ("rpi5")
    amount: float  # what its task asks of that resource: 1, or less where the node has less
    cpus: float
    gpus: float
    folder: str  # its folder under --out: <host>-<board>, or <host> for a board named after its host


def boards_of(nodes: Sequence[Mapping[str, Any]]) -> list[Board]:
    """The boards of the alive nodes in ``ray.nodes()``, by folder name. Two nodes of one host carrying boards of
    one name (a cluster on one machine) get the first 8 digits of their node id after the folder name."""
    boards = []
    for node in nodes:
        if not node.get("Alive", False):
            continue
        resources = node.get("Resources", {})
        host = _file_name(str(node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "node"))
        for name in sorted(filter(is_board_resource, resources)):
            folder = host if _file_name(name) == host else f"{host}-{_file_name(name)}"
            cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
            amount = min(float(resources[name]), 1.0)
            boards.append(Board(str(node["NodeID"]), host, name, amount, cpus, gpus, folder))
    seen = Counter(board.folder for board in boards)
    boards = [replace(b, folder=f"{b.folder}-{b.node_id[:8]}") if seen[b.folder] > 1 else b for b in boards]
    return sorted(boards, key=lambda board: board.folder)


@dataclass(frozen=True)
class ReportOptions:
    """The ``cnnbench report`` options every board runs with (the report's own defaults where None or unset)."""

    quick: bool = False  # four models, short timing
    device: str | None = None  # the torch device on each board: cpu, cuda, cuda:N, mps
    threads: int | None = None  # CPU threads; None: torch's default on each board
    deploy: str | None = None  # the report's --deploy as written: BACKEND:DTYPE,... or none
    sweeps: bool = True  # the batch and threads sweeps
    predict: bool = True  # the cost model's predictions

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise CnnbenchError(f"threads must be at least 1, got {self.threads}")
        for spec in (self.deploy or "").split(","):
            backend, sep, dtype = spec.strip().partition(":")
            if spec.strip() in ("", "none"):
                continue
            if not sep or backend not in BACKENDS or dtype not in (*DTYPES, INT8):
                raise CnnbenchError(
                    f"a deployment is BACKEND:DTYPE such as onnxruntime:int8 (backends {', '.join(BACKENDS)}), "
                    f"got {spec.strip()!r}"
                )

    def argv(self, models: Sequence[str]) -> list[str]:
        """The arguments of ``cnnbench report`` for ``models``, ``--out`` apart."""
        argv = list(models)
        argv += ["--quick"] if self.quick else []
        argv += ["--device", self.device] if self.device is not None else []
        argv += ["--threads", str(self.threads)] if self.threads is not None else []
        argv += ["--deploy", self.deploy] if self.deploy is not None else []
        argv += [] if self.sweeps else ["--no-sweeps"]
        argv += [] if self.predict else ["--no-predict"]
        return argv


@dataclass(frozen=True)
class BoardRun:
    """What one board sent back: its folder's files by relative path (empty when the report failed), the report's
    exit code and the last line it wrote (its summary, or its error)."""

    files: dict[str, bytes]
    returncode: int
    last_line: str


def _relative(name: str) -> Path:
    """A file name of a folder sent between nodes, refused if it would land outside the folder."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise CnnbenchError(f"refused a results file named {name!r}: outside its folder")
    return path


def _read_folder(folder: Path) -> dict[str, bytes]:
    """The files of ``folder`` by relative path; hidden ones (an interrupted write's temporaries) left out."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }


def _write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / _relative(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _report_environment() -> dict[str, str]:
    """The environment of the report on a board: this worker's, less the ``OMP_NUM_THREADS`` Ray sets to a task's
    CPUs (ray._private.utils.set_omp_num_threads_if_unset), so that a report without --threads uses torch's own
    count, as by hand. A value the node was started with that differs from the task's CPUs is kept."""
    import ray

    env = dict(os.environ)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus is not None and env.get("OMP_NUM_THREADS") == str(max(math.floor(cpus), 1)):
        del env["OMP_NUM_THREADS"]
    return env


def report_on_board(argv: Sequence[str], command: Sequence[str] | None, earlier: Mapping[str, bytes]) -> BoardRun:
    """On a board's node, as its Ray task: ``command`` (None: this Python's ``-m cnnbench report``) with ``argv``
    and ``--out`` a fresh folder holding ``earlier`` (the board's folder from an earlier run), in a process of its
    own; the folder's files come back."""
    run = [*(command or [sys.executable, "-m", "cnnbench", "report"]), *argv]
    with tempfile.TemporaryDirectory(prefix="cnnbench-fleet-") as tmp:
        folder = Path(tmp) / "results"
        folder.mkdir()
        _write_files(folder, earlier)
        done = subprocess.run(
            [*run, "--out", str(folder)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_report_environment(),
        )
        said = [line.strip() for line in (done.stderr if done.returncode else done.stdout).splitlines()]
        files = _read_folder(folder) if done.returncode == 0 else {}
    return BoardRun(files, done.returncode, next((line for line in reversed(said) if line), ""))


def _replace_folder(folder: Path, files: Mapping[str, bytes]) -> Path:
    """``folder`` holding ``files`` and nothing else, written whole beside it and renamed into place: no reader
    sees it half-written, and a failure leaves what was there."""
    with atomic_folder(folder) as staging:
        _write_files(staging, files)
    return folder


def _connect(address: str) -> None:
    """``ray.init``: a new local instance for :data:`AUTO`, whose node carries one board named after the host; the
    cluster at ``address`` otherwise. Ray's own log stays at warnings; the workers' output is not forwarded (each
    report's is captured on its node)."""
    import ray

    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address == AUTO:
            host = socket.gethostname()
            ray.init(
                address="local",
                resources={host: 1},
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
                **quiet,
            )
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as err:
        ray.shutdown()
        raise CnnbenchError(
            f"cannot reach the Ray cluster at {address} ({first_line(err)}); `ray status` on its head node prints "
            "its address, or use --ray auto to try one machine"
        ) from None


def run_on_ray(
    address: str,
    models: Sequence[str],
    options: ReportOptions,
    out: Path,
    *,
    command: Sequence[str] | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Path]:
    """``cnnbench report`` with ``models`` (zoo names or wildcards; none: the report's default) and ``options`` on
    every board of the Ray cluster at ``address`` (or :data:`AUTO`), each board's folder written into ``out``.

    ``command`` is how a node runs the report, before its arguments (None: the node's own ``python -m cnnbench
    report``). ``say`` gets a line as each board starts and ends. Returns the folders written, by name; when a
    board fails, the others' folders are written first, then one line names each failed board.
    """
    resolve_patterns(models)  # an unknown name fails here, with the closest names, before Ray starts
    check_writable(out, "--out")
    if importlib.util.find_spec("ray") is None:
        raise CnnbenchError("fleet run needs Ray, which is not installed: pip install cnnbench[fleet]")
    import ray
    from ray.exceptions import RayError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    tell = say or (lambda line: None)
    _connect(address)
    try:
        boards = boards_of(ray.nodes())
        if not boards:
            raise CnnbenchError(
                f"no node of the Ray cluster at {address} carries a board: join each with `ray start --address "
                f"{address} --resources '{{\"rpi5\": 1}}'` (docs/fleet-ray.md)"
            )
        report = ray.remote(report_on_board)
        argv = options.argv(models)
        running: dict[Any, Board] = {}
        for board in boards:
            task = report.options(
                resources={board.name: board.amount},
                num_cpus=board.cpus,
                num_gpus=board.gpus,
                scheduling_strategy=NodeAffinitySchedulingStrategy(board.node_id, soft=False),
                max_retries=0,
                runtime_env=UNNICED,
            )
            running[task.remote(argv, command, _read_folder(out / board.folder))] = board
        tell(f"running the report on {len(boards)} board(s): {', '.join(b.folder for b in boards)}")
        written: list[Path] = []
        failed: list[str] = []
        pending = list(running)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            board = running[ready[0]]
            try:
                result: BoardRun = ray.get(ready[0])
            except RayError as err:
                failed.append(f"{board.folder} on node {board.node_id[:8]}: {reason(getattr(err, 'cause', err))}")
                tell(f"failed: {failed[-1]}")
                continue
            if result.returncode != 0:
                failed.append(f"{board.folder}: cnnbench report exited {result.returncode}: {result.last_line}")
                tell(f"{board.folder}: failed: {result.last_line}")
                continue
            written.append(_replace_folder(out / board.folder, result.files))
            tell(f"{board.folder}: {len(result.files)} files into {written[-1]}/ ({result.last_line})")
    finally:
        ray.shutdown()
    if failed:
        kept = f"; written: {', '.join(map(str, sorted(written)))}" if written else ""
        raise CnnbenchError(f"{len(failed)} of {len(boards)} board(s) failed: {' | '.join(failed)}{kept}")
    return sorted(written)
