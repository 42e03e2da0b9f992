"""Results files that survive interruption: a CSV table written atomically after every row, keyed so that a rerun
reuses what it finished, and a JSON sidecar that records where the table was measured.

A row is reused when its key columns match and its ``code`` fingerprint (the source of the model's family file,
the shared zoo code and the measuring modules) is unchanged, so editing a model re-measures that family only.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

import pandas as pd

import zoo

__all__ = ["ResultTable", "atomic_write_text", "code_fingerprint", "write_sidecar"]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path`` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@cache
def _source_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
        family_file = inspect.getsourcefile(builder) or ""
        zoo_dir = Path(zoo.__file__).parent
        parts += [_source_hash(family_file), _source_hash(str(zoo_dir / "_layers.py"))]
    parts += [_source_hash(inspect.getsourcefile(m) or "") for m in modules]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


class ResultTable:
    """A CSV of rows with a key; every :meth:`put` rewrites the file atomically."""

    def __init__(self, path: Path, key: Sequence[str]) -> None:
        self.path = path
        self.key = list(key)
        self._rows: list[dict[str, object]] = []
        if path.exists() and path.stat().st_size:
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
            self._rows = frame.astype(object).where(frame.notna(), None).to_dict("records")

    def _key_of(self, row: dict[str, object]) -> tuple[str, ...]:
        return tuple(str(row.get(k)) for k in self.key)

    def get(self, **key: object) -> dict[str, object] | None:
        wanted = self._key_of(key)
        return next((r for r in self._rows if self._key_of(r) == wanted), None)

    def find(self, **filters: object) -> list[dict[str, object]]:
        """Rows whose columns equal every filter (compared as text, as they are read back from CSV)."""
        return [r for r in self._rows if all(str(r.get(k)) == str(v) for k, v in filters.items())]

    def put(self, row: dict[str, object]) -> None:
        """Insert or replace the row with the same key, then save the whole table atomically."""
        wanted = self._key_of(row)
        self._rows = [r for r in self._rows if self._key_of(r) != wanted] + [row]
        atomic_write_text(self.path, self.frame().to_csv(index=False))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows)

    def keep_only(self, keys: Iterable[dict[str, object]]) -> None:
        """Drop rows whose key is not among ``keys`` (models removed from the zoo), and save."""
        wanted = {self._key_of(k) for k in keys}
        kept = [r for r in self._rows if self._key_of(r) in wanted]
        if len(kept) != len(self._rows):
            self._rows = kept
            atomic_write_text(self.path, self.frame().to_csv(index=False))


def write_sidecar(results_file: Path, environment: dict[str, object]) -> Path:
    """``name.csv`` → ``name.env.json``: where and with what the table was measured."""
    sidecar = results_file.with_suffix(".env.json")
    atomic_write_text(sidecar, json.dumps(environment, indent=2, sort_keys=True, default=str) + "\n")
    return sidecar
