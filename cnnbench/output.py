"""How the CLI renders tables and shows progress. Measurement code never prints; only the CLI calls these."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TypeVar

import pandas as pd
from tqdm import tqdm

__all__ = ["FORMATS", "emit", "progress"]

FORMATS = ("table", "csv", "json", "markdown")
T = TypeVar("T")


def emit(frame: pd.DataFrame, fmt: str, table_columns: dict[str, str] | None = None) -> str:
    """Render a frame: every column for csv/json; for table/markdown the ``table_columns`` (renamed), if given."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2) + "\n"
    shown = frame[list(table_columns)].rename(columns=table_columns) if table_columns else frame
    if fmt == "markdown":
        return shown.astype(object).where(shown.notna(), "–").to_markdown(index=False) + "\n"
    return shown.to_string(index=False, na_rep="–") + "\n"


def progress(items: Sequence[T], desc: str, unit: str = "model") -> Iterable[T]:
    """A progress bar on stderr when there is more than one item and stderr is a terminal."""
    return tqdm(items, desc=desc, unit=unit, disable=None if len(items) > 1 else True, file=sys.stderr)
