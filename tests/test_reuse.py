"""`cnnbench report`'s reuse rule: rows reused only on the machine, settings and code that measured them; subsets
joining the same tables; an interrupted run resumed without duplicates. No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_report import KEY, MODELS, config, fixed_roofline_and_guideline_clock  # noqa: F401 - an autouse fixture

import cnnbench.guidelines.microbench as guidelines
import cnnbench.report.guideline_tables as guideline_tables
import cnnbench.report.latency_tables as latency_tables
import cnnbench.report.tables as tables
import cnnbench.results as results
from cnnbench.cli import main
from cnnbench.measure.latency import QUICK_TIMING, Timing
from cnnbench.provenance import MACHINE_ENV, machine_identity
from cnnbench.report.config import ReportConfig
from cnnbench.report.run import run_report
from cnnbench.target import Target

pytestmark = pytest.mark.slow  # each test runs quick reports


def _count_measurements(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Record what each table measures: latency (iter_bench), counts (profile), breakdown (time_by_kind),
    guidelines (run_table) and the audit."""
    calls: dict[str, list[str]] = {"latency": [], "profile": [], "breakdown": [], "guidelines": [], "audit": []}

    def spy(kind: str, real, key=lambda *a, **k: str(a[0])):  # type: ignore[no-untyped-def]
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[kind].append(key(*args, **kwargs))
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(latency_tables, "iter_bench",
                        spy("latency", latency_tables.iter_bench, lambda names, *a, **k: names[0]))  # fmt: skip
    monkeypatch.setattr(tables, "profile", spy("profile", tables.profile))
    monkeypatch.setattr(tables, "time_by_kind", spy("breakdown", tables.time_by_kind))
    monkeypatch.setattr(guidelines, "run_table", spy("guidelines", guidelines.run_table, lambda g, s, *a: f"{g}x{s}"))
    monkeypatch.setattr(guideline_tables, "audit", spy("audit", guideline_tables.audit))
    return calls


def test_rerun_reuses_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    run_report(config(out, models=MODELS[:2]))
    before = pd.read_csv(out / "zoo.csv", dtype=str)
    calls = _count_measurements(monkeypatch)
    run_report(config(out, models=MODELS[:2]))
    assert calls == {k: [] for k in calls}  # nothing measured again
    pd.testing.assert_frame_equal(pd.read_csv(out / "zoo.csv", dtype=str), before)
    run_report(config(out, models=MODELS[:2], force=True))
    assert calls["latency"] == list(MODELS[:2]) and calls["guidelines"] == ["G1x1", "G2x1", "G3x1", "G4x1"]


def test_another_machine_measures_every_row_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Results from machine A (same host name and CPU here) never stand in for machine B: B measures every row of
    every table, and a second run on B reuses them all. A's rows are replaced, never re-labelled."""
    out = tmp_path / "results"
    monkeypatch.setenv(MACHINE_ENV, "machine-A")
    run_report(config(out, models=MODELS[:2]))
    a = machine_identity("cpu")
    first = pd.read_csv(out / f"latency-{KEY}.csv", dtype=str).set_index("model")
    monkeypatch.setenv(MACHINE_ENV, "machine-B")
    b = machine_identity("cpu")
    assert a != b
    calls = _count_measurements(monkeypatch)
    run_report(config(out, models=MODELS[:2]))
    assert calls["latency"] == list(MODELS[:2]) and sorted(calls["breakdown"]) == sorted(MODELS[:2])
    assert calls["guidelines"] == ["G1x1", "G2x1", "G3x1", "G4x1"] and calls["audit"] == list(MODELS[:2])
    assert set(calls["profile"]) >= set(MODELS[:2])  # zoo.csv counted again
    for name in ("zoo", f"latency-{KEY}", f"breakdown-{KEY}", f"guidelines-{KEY}", "guidelines-audit"):
        assert set(pd.read_csv(out / f"{name}.csv", dtype=str)["machine"]) == {b}, name
    second = pd.read_csv(out / f"latency-{KEY}.csv", dtype=str).set_index("model")
    assert (second["measured_at"] >= first["measured_at"]).all()
    assert (second["latency_ms_median"] != first["latency_ms_median"]).any()  # measured, not copied
    for kind in calls:
        calls[kind].clear()
    run_report(config(out, models=MODELS[:2]))
    assert calls == {k: [] for k in calls}  # B's second run reuses everything


def test_quick_rows_are_never_reused_by_a_full_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    run_report(config(out, models=MODELS[:1]))
    calls = _count_measurements(monkeypatch)
    full = ReportConfig(out=out, models=MODELS[:1], target=Target(threads=1), timing=QUICK_TIMING,
                        breakdown_repeats=2, guideline_rounds=3, deployments=())  # fmt: skip
    run_report(full)
    assert calls["latency"] == list(MODELS[:1]) and calls["breakdown"] == list(MODELS[:1])
    assert len(calls["guidelines"]) == 12  # every table at every scale
    rows = pd.read_csv(out / f"latency-{KEY}.csv", dtype=str)
    assert list(rows["quick"]) == ["False"]


def test_changed_settings_or_code_measure_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    run_report(config(out, models=MODELS[:1]))
    calls = _count_measurements(monkeypatch)
    run_report(config(out, models=MODELS[:1], timing=Timing(min_time_s=0.0, min_iters=4, window=2,
                                                              max_warmup_s=0.5, min_warmup_iters=0)))  # fmt: skip
    assert calls["latency"] == list(MODELS[:1])
    calls["latency"].clear()
    monkeypatch.setattr(results, "code_fingerprint", lambda *a, **k: "changed-code")
    run_report(config(out, models=MODELS[:1]))
    assert calls["latency"] == list(MODELS[:1]) and calls["audit"] == list(MODELS[:1])


def test_the_code_fingerprint_follows_what_the_code_does_not_its_layout(tmp_path: Path) -> None:
    from types import ModuleType

    from cnnbench.store import code_fingerprint

    def fingerprint(source: str) -> str:
        path = tmp_path / "measured.py"
        path.write_text(source)
        module = ModuleType("measured")
        module.__file__ = str(path)
        return code_fingerprint(None, [module])

    packed = 'def f(x):\n    """Add one."""\n    return x + 1  # fmt: skip\n'
    spread = 'def f(\n    x,\n):\n    """Add one to x, reworded."""\n\n    # a comment\n    return (x + 1)\n'
    assert fingerprint(packed) == fingerprint(spread)
    assert fingerprint(packed) != fingerprint('def f(x):\n    """Add one."""\n    return x + 2\n')


def test_subset_rows_join_the_same_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    run_report(config(out, models=MODELS[:2]))
    before = pd.read_csv(out / f"latency-{KEY}.csv", dtype=str).set_index("model")
    assert main(["report", "--quick", "--threads", "1", "--deploy", "none", "--out", str(out), "squeezenet*"]) == 0
    after = pd.read_csv(out / f"latency-{KEY}.csv", dtype=str).set_index("model")
    assert sorted(after.index) == sorted([*MODELS[:2], "squeezenet1_0", "squeezenet1_1"])  # added, others kept
    pd.testing.assert_series_equal(after.loc[list(MODELS[:2]), "measured_at"], before["measured_at"])
    assert set(pd.read_csv(out / "zoo.csv")["model"]) >= set(MODELS)
    assert "| squeezenet1_1" in (out / "README.md").read_text()


def test_interrupted_run_resumes_without_duplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    real = latency_tables.iter_bench
    measured: list[str] = []

    def flaky(names: list[str], *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if len(measured) == 2:
            raise KeyboardInterrupt  # killed while measuring the third model
        measured.append(names[0])
        return real(names, *args, **kwargs)

    monkeypatch.setattr(latency_tables, "iter_bench", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_report(config(out))
    kept = pd.read_csv(out / "latency-cpu-t1-fp32-nchw-eager.csv")
    assert list(kept["model"]) == list(MODELS[:2])  # the finished rows survived

    monkeypatch.setattr(latency_tables, "iter_bench",
                        lambda names, *a, **k: measured.append(names[0]) or real(names, *a, **k))  # fmt: skip
    run_report(config(out))
    assert measured == [*MODELS[:2], MODELS[2]]  # the rerun measured only the missing model
    final = pd.read_csv(out / "latency-cpu-t1-fp32-nchw-eager.csv")
    assert sorted(final["model"]) == sorted(MODELS) and not final["model"].duplicated().any()
    assert not list(out.glob(".*tmp*"))  # no temporary file left behind
