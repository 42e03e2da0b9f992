"""Options shared by the benchmark suites (run them with ``pytest benchmarks/ --benchmark-only``)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnnbench")
    group.addoption(
        "--models",
        default="*",
        help="shell-style wildcard(s) over zoo names, comma-separated (default: every model)",
    )


@pytest.fixture(scope="session")
def model_patterns(request: pytest.FixtureRequest) -> list[str]:
    return [p.strip() for p in str(request.config.getoption("--models")).split(",") if p.strip()]
