"""``cnnbench report``: what it measures and the checks before it starts (:mod:`.config`), its tables
(:mod:`.tables`), pytest-benchmark files from other targets (:mod:`.benchmark_json`), its charts (:mod:`.charts`)
and its README page (:mod:`.page`)."""

from cnnbench.report.config import ReportConfig, check_config
from cnnbench.report.tables import run_report

__all__ = ["ReportConfig", "check_config", "run_report"]
