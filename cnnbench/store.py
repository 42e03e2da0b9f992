"""Results files that survive interruption: a CSV table written atomically after every row, keyed so that a rerun
reuses what it finished, and a JSON sidecar that says where its rows were measured.

A row is reused only when its key columns match and its :class:`~cnnbench.provenance.Stamp` (machine, torch,
target, settings, and the ``code`` fingerprint of the model's family file, the shared zoo code and the measuring
modules) equals the caller's; editing a model re-measures that family only, and another machine re-measures all.
Files are written with the mode a new file gets under the umask (0644 as a rule), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pandas as pd

import zoo
from cnnbench.errors import CnnbenchError
from cnnbench.provenance import PROVENANCE_COLUMNS, Stamp, now

__all__ = [
    "ResultTable",
    "TEXT_COLUMNS",
    "atomic_folder",
    "atomic_path",
    "atomic_write_text",
    "cache_folder",
    "cached_file",
    "code_fingerprint",
    "provenance_summary",
    "refresh_sidecar",
    "sidecar_path",
    "write_sidecar",
]

# Columns read back as text whatever they hold: a fingerprint or commit of digits only must not become a number.
TEXT_COLUMNS = frozenset(
    {
        *(c for c in PROVENANCE_COLUMNS if c != "probe_ms"),
        "error",
        "notes",
        "status",
        "recipe",
        "seeds",
        "rounds_ms",
        "source",
        "disturbance",
        "rechecked",
    }
)


@cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _new_file_mode() -> int:
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, unique to this call; on success it is renamed over ``path`` (atomic on
    POSIX) with the mode a new file gets, or that ``path`` already has; on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}-", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        mode = path.stat().st_mode & 0o777 if path.exists() else _new_file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """A temporary folder beside ``folder``, unique to this call, to fill; on success it replaces ``folder`` whole
    (what was there is removed) with the mode a new folder gets, so no reader sees it half-written; on failure it is
    removed and ``folder`` stays as it was."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}-", suffix=".tmp", dir=folder.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
        if folder.exists():
            old = staging.with_name(staging.name.removesuffix(".tmp") + ".old")
            os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


_TEMPORARY = re.compile(r"^\..+\.(\d+)-[^.]+\.tmp(\.[^.]+)?$")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` (and folders :func:`atomic_folder`) left in ``folder`` when
    its process was killed (``kill -9`` skips every clean-up); one whose process still runs on this host is kept.
    Returns what was deleted."""
    removed = []
    for candidate in folder.glob(".*.tmp*") if folder.is_dir() else ():
        match = _TEMPORARY.match(candidate.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if candidate.is_dir():  # an :func:`atomic_folder`'s
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_writable(folder: Path, option: str) -> None:
    """Make ``folder`` and prove a file can be written there, or one line naming ``option`` (``--out``)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cnnbench-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise CnnbenchError(f"cannot write to {folder} ({reason}); give {option} a folder you can write") from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _source_hash(path: str) -> str:
    """The hash of a Python file's syntax tree without its docstrings (:func:`_syntax_hash`), read now: a file
    edited while the process runs is hashed afresh."""
    return _syntax_hash(Path(path).read_bytes())


@cache
def _syntax_hash(source: bytes) -> str:
    """Reformatting a file, or rewording its comments and docstrings, keeps the rows it measured; any change to what
    the code does measures them again. Cached by content: each file is parsed once per process."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def cache_root() -> Path:
    """cnnbench's cache folder: ``$CNNBENCH_CACHE``, else ``$XDG_CACHE_HOME/cnnbench`` (``~/.cache/cnnbench``). It
    holds what is slow to make and safe to remake: the roofline, exported ONNX files, their INT8 versions."""
    explicit = os.environ.get("CNNBENCH_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnbench"


def cache_folder(folder: Path) -> Path:
    """``folder`` (a cache's folder, such as ``cache_root() / "onnx"``), made if missing and cleared of the
    temporaries a killed process left there."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    return folder


Made = TypeVar("Made")


def cached_file(
    path: Path,
    read: Callable[[dict[str, Any]], Made],
    make: Callable[[], tuple[Made, dict[str, object]]],
    also: Sequence[Path] = (),
) -> Made:
    """A file made once and kept: ``read(record)`` when ``path``, the files ``also`` and the JSON record beside
    ``path`` (``path.with_suffix(".json")``) exist, else ``make()``, which writes the file atomically and returns what
    it made and the record's fields; the record is written last, with ``made_at``, so a file without a record (a run
    killed between the two) is made again, as is one whose record is damaged."""
    record = path.with_suffix(".json")
    if path.exists() and record.exists() and all(p.exists() for p in also):
        try:
            return read(json.loads(record.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged record: make the file again
    made, fields = make()
    atomic_write_text(record, json.dumps({**fields, "made_at": now()}, indent=2) + "\n")
    return made


def code_fingerprint(model: str | None, modules: Iterable[ModuleType] = ()) -> str:
    """12 hex digits that change when the code that builds ``model`` or measures it changes.

    Covers the model's family file (where its builder lives), the shared zoo files, and ``modules``. Models from
    timm or torchvision are keyed by the library's version instead; ``None`` keys by ``modules`` alone.
    """
    parts: list[str] = []
    if model is None:
        pass
    elif model.startswith(("timm:", "torchvision:")):
        library = __import__(model.split(":", 1)[0])
        parts.append(f"{model}@{library.__version__}")
    else:
        builder = zoo.model_builder(model)
        family_file = inspect.getsourcefile(inspect.unwrap(builder)) or ""
        zoo_dir = Path(zoo.__file__).parent
        parts += [_source_hash(family_file), _source_hash(str(zoo_dir / "_layers.py"))]
    parts += [_source_hash(inspect.getsourcefile(m) or "") for m in modules]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


class ResultTable:
    """A CSV of rows with a key; every change rewrites the file atomically.

    Provenance columns, ``error``, ``notes`` and the other :data:`TEXT_COLUMNS` (and ``text_columns``) are read
    back as text. A file that is not a CSV, or lacks the key columns, is refused with a one-line error.
    """

    def __init__(self, path: Path, key: Sequence[str], text_columns: Iterable[str] = ()) -> None:
        self.path = path
        self.key = list(key)
        self.text = TEXT_COLUMNS | set(text_columns)
        self._rows: list[dict[str, object]] = []
        remove_stale_temporaries(path.parent)
        if path.exists() and path.stat().st_size:
            self._rows = self._read(path)

    def _read(self, path: Path) -> list[dict[str, object]]:
        try:
            header = pd.read_csv(path, nrows=0).columns
            frame = pd.read_csv(
                path, keep_default_na=False, na_values=[""], dtype={c: str for c in header if c in self.text}
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
            raise CnnbenchError(f"{path} is not a results CSV ({err}); move it away or give another --out") from None
        missing = [k for k in self.key if k not in frame.columns]
        if missing:
            raise CnnbenchError(f"{path} lacks the key columns {', '.join(missing)}; move it away or use another --out")
        for column in self.text & set(frame.columns):
            frame[column] = frame[column].fillna("")
        return frame.astype(object).where(frame.notna(), None).to_dict("records")

    def _key_of(self, row: dict[str, object]) -> tuple[str, ...]:
        return tuple(str(row.get(k)) for k in self.key)

    def get(self, **key: object) -> dict[str, object] | None:
        wanted = self._key_of(key)
        return next((r for r in self._rows if self._key_of(r) == wanted), None)

    def reusable(self, stamp: Stamp, **key: object) -> dict[str, object] | None:
        """The row with ``key`` if its stamp equals ``stamp`` (same machine, torch, target, settings and code)."""
        row = self.get(**key)
        return row if row is not None and stamp.matches(row) else None

    def find(self, **filters: object) -> list[dict[str, object]]:
        """Rows whose columns equal every filter (compared as text, as they are read back from CSV)."""
        return [r for r in self._rows if _matches(r, filters)]

    def reusable_group(self, stamp: Stamp, size: int | None = None, **filters: object) -> bool:
        """Whether the rows matching ``filters`` (a model's op kinds, a guideline table) can all stand: there are
        some (``size`` of them, when given) and every one carries ``stamp``."""
        rows = self.find(**filters)
        return bool(rows) and (size is None or len(rows) == size) and all(stamp.matches(r) for r in rows)

    def put(self, row: dict[str, object]) -> None:
        """Insert or replace the row with the same key, then save the whole table atomically."""
        wanted = self._key_of(row)
        self._rows = [r for r in self._rows if self._key_of(r) != wanted] + [row]
        self._save()

    def replace(self, rows: Sequence[dict[str, object]], **filters: object) -> None:
        """Drop every row matching ``filters``, add ``rows``, and save once: a group of rows (a model's op kinds,
        a guideline table) is replaced whole or not at all."""
        keys = {self._key_of(r) for r in rows}
        self._rows = [r for r in self._rows if not _matches(r, filters) and self._key_of(r) not in keys] + list(rows)
        self._save()

    def _save(self) -> None:
        atomic_write_text(self.path, self.frame().to_csv(index=False))

    def frame(self, where: Callable[[dict[str, object]], bool] | None = None) -> pd.DataFrame:
        """The rows (those for which ``where`` is true) as a DataFrame."""
        return pd.DataFrame([r for r in self._rows if where is None or where(r)])

    def keep_only(self, keys: Iterable[dict[str, object]]) -> None:
        """Drop rows whose key is not among ``keys`` (models removed from the zoo), and save."""
        wanted = {self._key_of(k) for k in keys}
        kept = [r for r in self._rows if self._key_of(r) in wanted]
        if len(kept) != len(self._rows):
            self._rows = kept
            self._save()


def _matches(row: dict[str, object], filters: dict[str, object]) -> bool:
    return all(str(row.get(k)) == str(v) for k, v in filters.items())


def provenance_summary(frame: pd.DataFrame) -> dict[str, object]:
    """Where the rows of a table came from: their commits, machines, torch versions and times of measurement."""
    if frame.empty or "machine" not in frame:
        return {"rows": int(len(frame))}
    machines = (
        frame[["machine", "host", "device_name"]].drop_duplicates().sort_values("machine").to_dict("records")
        if {"host", "device_name"} <= set(frame.columns)
        else [{"machine": m} for m in sorted(set(frame["machine"]))]
    )
    times = sorted(str(t) for t in frame.get("measured_at", pd.Series(dtype=str)) if t)
    return {
        "rows": int(len(frame)),
        "commits": sorted({str(c) for c in frame.get("commit", []) if c}),
        "machines": machines,
        "torch": sorted({str(t) for t in frame.get("torch", []) if t}),
        "measured": {"first": times[0], "last": times[-1]} if times else {},
        "quick_rows": int(frame["quick"].astype(str).eq("True").sum()) if "quick" in frame else 0,
    }


def sidecar_path(results_file: Path) -> Path:
    """The sidecar of a results table: ``name.csv`` → ``name.env.json``."""
    return results_file.with_suffix(".env.json")


def refresh_sidecar(results_file: Path, frame: pd.DataFrame) -> Path:
    """Rewrite the provenance of ``results_file``'s sidecar from its rows (``frame``) after rows changed, keeping
    the settings it records; a sidecar that is missing or unreadable is written afresh."""
    sidecar = sidecar_path(results_file)
    try:
        settings = {k: v for k, v in json.loads(sidecar.read_text()).items() if k not in ("file", "provenance")}
    except (OSError, ValueError):
        settings = {}
    return write_sidecar(results_file, frame, settings)


def write_sidecar(results_file: Path, frame: pd.DataFrame | None, settings: dict[str, object] | None = None) -> Path:
    """``name.csv`` → ``name.env.json`` (:func:`sidecar_path`): where its rows were measured (from the rows
    themselves) and ``settings``."""
    sidecar = sidecar_path(results_file)
    record: dict[str, object] = {"file": results_file.name}
    if frame is not None:
        record["provenance"] = provenance_summary(frame)
    record.update(settings or {})
    atomic_write_text(sidecar, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return sidecar
