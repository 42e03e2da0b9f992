"""Options of the benchmark suites: the target to measure on and the models to measure.

    pytest benchmarks/ --benchmark-only --target cuda:0 --batch 8 --models 'efficientnet_b*'
    pytest benchmarks/ --benchmark-only -k latency --target cpu --threads 2 --benchmark-json out.json

Every latency test stores the model's params, FLOPs (multiply-adds), MAC and the target's description in its
``extra_info``, so one ``--benchmark-json`` file holds everything a chart needs, and
``pytest-benchmark compare`` works across runs and machines.
"""

from __future__ import annotations

import pytest

from cnnbench.catalog import resolve_patterns
from cnnbench.errors import CnnbenchError
from cnnbench.target import BACKENDS, DTYPES, INT8, INT8_RUNTIMES, Target, resolve_target

DEFAULT_MODELS = "mobilenet_v3_small,shufflenet_v2_x1_0,efficientnet_b0,resnet18"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnnbench")
    group.addoption("--models", default=None, help=f"zoo wildcards, comma-separated (default: {DEFAULT_MODELS})")
    group.addoption("--target", default="cpu", help="device: cpu, cuda, cuda:N or mps (default cpu)")
    group.addoption("--batch", default="1", help="batch sizes, comma-separated (default 1)")
    group.addoption("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    group.addoption("--dtype", default="fp32", choices=(*DTYPES, INT8),
                    help=f"fp16/bf16 under autocast; int8 with {', '.join(INT8_RUNTIMES)}")
    group.addoption("--channels-last", action="store_true", default=False, help="NHWC memory format")
    group.addoption("--backend", default="eager", choices=BACKENDS)
    group.addoption("--fuse-bn", action="store_true", default=False, help="fold BatchNorm into convolutions")


def _models(config: pytest.Config, default: str = DEFAULT_MODELS) -> list[str]:
    text = config.getoption("--models") or default
    return resolve_patterns([p.strip() for p in str(text).split(",") if p.strip()])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", _models(metafunc.config))
    if "batch" in metafunc.fixturenames:
        batches = [int(b) for b in str(metafunc.config.getoption("--batch")).split(",") if b.strip()]
        metafunc.parametrize("batch", batches)


@pytest.fixture(scope="session")
def model_patterns(request: pytest.FixtureRequest) -> list[str]:
    """The --models patterns as given (the counting-speed suite defaults to the whole zoo)."""
    text = request.config.getoption("--models") or "*"
    return [p.strip() for p in str(text).split(",") if p.strip()]


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    option = request.config.getoption
    wanted = Target(
        device=option("--target"),
        threads=option("--threads"),
        dtype=option("--dtype"),
        channels_last=option("channels_last"),
        backend=option("--backend"),
        fuse_bn=option("fuse_bn"),
    )
    try:
        resolved, _ = resolve_target(wanted)
    except CnnbenchError as err:
        pytest.exit(f"cnnbench: {err}", returncode=2)
    return resolved
