"""The committed ``results/`` tell the truth about where they came from.

Every measured row names a clean commit (made on a committed tree, never ``+dirty``), a machine and a time; every
sidecar states the commits, machines and row count of its own table's rows, not those of the latest run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from cnnbench.results import DEFAULT_FOLDER, ResultsFolder

RESULTS = Path(__file__).resolve().parent.parent / "results"
MEASURED = sorted(p for p in RESULTS.glob("*.csv") if "commit" in pd.read_csv(p, nrows=0).columns)


def test_measured_tables_are_committed() -> None:
    names = {p.name for p in MEASURED}
    assert {"zoo.csv", "guidelines-audit.csv"} <= names
    assert any(n.startswith("latency-") for n in names) and any(n.startswith("guidelines-cpu") for n in names)


@pytest.mark.parametrize("path", MEASURED, ids=lambda p: p.name)
def test_every_row_names_a_clean_commit_a_machine_and_a_time(path: Path) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(frame) > 0
    for column in ("commit", "machine", "measured_at", "torch"):
        assert column in frame.columns, f"{path.name} has no {column} column"
        assert (frame[column] != "").all(), f"{path.name}: a row without {column}"
    assert not frame["commit"].str.endswith("+dirty").any(), f"{path.name}: rows measured on a dirty tree"
    assert not frame["commit"].eq("unknown").any()
    assert not frame.get("quick", pd.Series(["False"])).eq("True").any(), f"{path.name}: --quick rows committed"


@pytest.mark.parametrize("path", MEASURED, ids=lambda p: p.name)
def test_sidecar_states_the_rows_own_provenance(path: Path) -> None:
    sidecar = path.with_suffix(".env.json")
    if not sidecar.exists():
        pytest.skip(f"{path.name} has no sidecar")
    record = json.loads(sidecar.read_text())
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    provenance = record["provenance"]
    assert record["file"] == path.name
    assert provenance["rows"] == len(frame)
    assert provenance["commits"] == sorted(set(frame["commit"]))
    assert sorted(m["machine"] for m in provenance["machines"]) == sorted(set(frame["machine"]))
    assert provenance["measured"]["first"] == min(frame["measured_at"])
    assert provenance["measured"]["last"] == max(frame["measured_at"])
    assert "commit" not in record  # the commit of a run is not the commit of its rows


def test_results_readme_names_the_commits_of_its_rows() -> None:
    text = (RESULTS / "README.md").read_text()
    commits = set().union(*(set(pd.read_csv(p, dtype=str)["commit"]) for p in MEASURED))
    for commit in commits:
        assert commit in text, f"results/README.md does not name commit {commit}"
    assert not re.search(r"\b[0-9a-f]{7,}\+dirty", text), "results/README.md names a dirty commit"


def test_every_committed_file_is_one_the_results_folder_names() -> None:
    """Each file of results/ is named by :class:`~cnnbench.results.ResultsFolder` (the one home of the names), for
    the targets its latency tables carry: a file written under a name spelled elsewhere would show up here."""
    folder = ResultsFolder(RESULTS)
    assert RESULTS.name == DEFAULT_FOLDER.name
    targets = [folder.latency_target(p) for p in folder.latency_tables()]
    tables = [folder.zoo, folder.imagenet_accuracy, folder.digits, folder.deployed_digits, folder.guidelines_audit]
    charts = [folder.accuracy_chart("params"), folder.accuracy_chart("flops"), folder.speedup_chart]
    charts += [folder.latency_chart("flops"), folder.latency_chart("mac_bytes")]
    records = [folder.readme]
    for target in targets:
        tables += [folder.latency(target), folder.pareto(target)]
        tables += [folder.breakdown(target), folder.guidelines(target), folder.prediction(target)]
        tables += [folder.sweep("batch", target), folder.sweep("threads", target)]
        records += [folder.roofline(target), folder.cost_model(target), folder.guidelines_page(target)]
        charts += [folder.front_chart(target), folder.breakdown_chart(target), folder.roofline_chart(target)]
        charts += [folder.sweep_chart("batch", target), folder.sweep_chart("threads", target)]
        charts += [folder.prediction_chart(target)]
    named = {*tables, *map(folder.sidecar, tables), *records}
    named |= {stem.with_suffix(suffix) for stem in charts for suffix in (".png", ".svg")}
    committed = {p for p in RESULTS.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert targets and committed - named == set()
