"""``cnnbench report``: what it measures and the checks before it starts (:mod:`.config`), the run itself
(:mod:`.run`), its tables (:mod:`.tables`, :mod:`.latency_tables`, :mod:`.guideline_tables`, :mod:`.sweep_tables`),
what it reads back from the results folder (:mod:`.readers`), its charts (:mod:`.charts` draws them,
:mod:`.page_charts` chooses them) and its README page (:mod:`.page`, :mod:`.page_sections`)."""

from cnnbench.report.config import ReportConfig, check_config
from cnnbench.report.run import run_report

__all__ = ["ReportConfig", "check_config", "run_report"]
