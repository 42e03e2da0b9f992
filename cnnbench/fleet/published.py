"""ncnn's published benchmark table as rows beside cnnbench's own: ``--published ncnn``.

ncnn's ``benchmark/README.md`` (Tencent/ncnn) pastes the output of its ``benchncnn`` tool once per device: a
``### heading`` names the device in free text, and each run inside its code block prints its settings and then one
line per model::

    ./benchncnn 8 4 2 -1 1
    loop_count = 8
    num_threads = 4
    powersave = 2
    gpu_device = -1
    cooling_down = 1
              squeezenet  min =   12.34  max =   13.00  avg =   12.56

All times are milliseconds of one image, batch 1. ``avg`` is the **mean** of ``loop_count`` runs (benchncnn.cpp sums
and divides), not a median; it fills ``latency_ms_median`` so that published rows sit in the same column as measured
ones, and the docs say so. A row whose max/min exceeds :data:`UNSTABLE_RATIO` is flagged ``unstable``: its mean may
be spoiled by outliers (Raspberry Pi 5, mobilenet, 4 threads: min 9.0, max 73.0, avg 33.9). The table gives no ncnn
version and no date for its rows (a few headings or notes mention one in free text); the source commit of the
README is the only version a row carries.

:func:`read_benchncnn` splits a log into runs (and counts the result-like lines it could not read);
:func:`parse_benchncnn` turns the runs into published rows; :func:`published_rows` reads the table shipped with
cnnbench (:data:`SHIPPED`), or parses a newer README the user gives.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from cnnbench.errors import CnnbenchError
from cnnbench.store import atomic_write_text

__all__ = [
    "COLUMNS",
    "NCNN_TO_ZOO",
    "PUBLISHED_COMMIT",
    "SHIPPED",
    "UNSTABLE_RATIO",
    "BenchLog",
    "BenchRun",
    "ModelTiming",
    "generate_shipped_table",
    "ncnn_model_name",
    "parse_benchncnn",
    "published_rows",
    "published_target",
    "read_benchncnn",
    "split_int8",
]

PUBLISHED_COMMIT = "a4d2ea1d"  # Tencent/ncnn commit whose benchmark/README.md the shipped table was parsed from

# The shipped table: made by ``generate_shipped_table(Path("benchmark_README.md"))``, where the README is
# ``git show a4d2ea1d:benchmark/README.md`` of Tencent/ncnn (a copy: /work/shared/reference/ncnn/benchmark_README.md);
# tests/test_fleet_published.py checks that parsing the copy gives this file again.
SHIPPED = Path(__file__).resolve().parent.parent / "data" / f"ncnn-benchmark-{PUBLISHED_COMMIT}.csv"

UNSTABLE_RATIO = 3.0  # max/min above this: the run's mean is not to be trusted

# ncnn's built-in benchmark models that are zoo models, checked against the .param files in benchmark/models/ at
# a4d2ea1d (weights = the sum of each Convolution's and InnerProduct's weight count, biases and BN excluded; the zoo's
# count is the same sum over its nn.Conv2d and nn.Linear weights). Rows of ncnn's other models keep ncnn's name,
# prefixed "ncnn:". The rows of old README sections were measured with the .param files of their day.
NCNN_TO_ZOO: dict[str, str] = {
    # conv1 64×3×3/2 and pools after fire3 and fire5 (1.0 has 96×7×7/2); 26 weighted layers, 1,231,552 weights =
    # the zoo's. Input 227×227 (benchncnn's), where the zoo times 224.
    "squeezenet": "squeezenet1_1",
    # Caffe MobileNet 1.0: 32, then 13 depthwise-separable blocks to 1024; 28 weighted layers, 4,209,088 weights
    # = the zoo's α = 1.0.
    "mobilenet": "mobilenet_v1_x1_0",
    # The zoo's, plus a 1×1 expansion conv (32 → 32) in the first block, whose t = 1 needs none: 54 weighted layers
    # and 3,470,784 weights against 53 and 3,469,760 (+1,024).
    "mobilenet_v2": "mobilenet_v2",
    # Large (15 bnecks, 16 → 160, 960 → 1280 head, SE and h-swish where Table 1 has them; Small has 11 bnecks to
    # 96), but its last three bnecks are 672 5×5/1, 672 5×5/2, 960 5×5/1 where Table 1 and the zoo have 672 5×5/2,
    # 960 5×5/1, 960 5×5/1: one block more runs at 14×14, one has 672 channels, not 960. Its SE squeezes 72 and 120
    # to 18 and 30 (the zoo: 24 and 32). 64 weighted layers both; 5,115,080 weights against 5,451,272 (−6.2%).
    "mobilenet_v3": "mobilenet_v3_large",
    # g = 3, 1×: stem 24, stages 240/480/960 with 4/8/4 units, grouped 1×1 convs (groups 3; the first unit's first
    # conv ungrouped). Its stride-2 units squeeze to (out − in)/4 (54, 60, 120) where the zoo squeezes to out/4
    # (60, 120, 240): 50 weighted layers both; 1,789,998 weights against 1,840,248 (−2.7%).
    "shufflenet": "shufflenet_v1_g3_x1_0",
    # 1×: stem 24, branches 58/116/232 (stages 116/232/464) with 4/8/4 units, conv5 1024; 57 weighted layers,
    # 2,261,424 weights = the zoo's.
    "shufflenet_v2": "shufflenet_v2_x1_0",
    # 82 weighted layers (SE as 1×1 convs); 5,236,192 weights = the zoo's.
    "efficientnet_b0": "efficientnet_b0",
    # Caffe's BVLC GoogLeNet: real 5×5 branches and LRN, no BN, no auxiliary heads; the zoo follows torchvision
    # (3×3 in the "5×5" branch, BN): 58 weighted layers both; 6,990,272 weights against the zoo's 6,609,344
    # without its aux heads (+5.8%).
    "googlenet": "googlenet",
    # Caffe's ResNet-18: a 1×1 projection shortcut in the first block (res2a_branch1) where the zoo has the
    # identity: 22 weighted layers and 11,683,008 weights against 21 and 11,678,912 (+4,096, +0.04%).
    "resnet18": "resnet18",
    # Caffe's ResNet-50 (v1): 54 weighted layers, 25,502,912 weights = the zoo's, but a downsampling block strides
    # its first 1×1 conv where the zoo (torchvision's v1.5) strides the 3×3: the same weights, fewer multiply-adds.
    "resnet50": "resnet50",
    # 13 convs + 3 linear layers, no BN: 138,344,128 weights = the zoo's vgg16.
    "vgg16": "vgg16",
    # Caffe's BVLC AlexNet (two-tower groups in conv2/4/5, LRN, widths 96/256/384/384/256, input 227) where the zoo
    # is torchvision's one-tower variant (64/192/384/256/256): 60,954,656 weights against 61,090,496 (−0.2%).
    "alexnet": "alexnet",
}

# Spellings of old README sections (the HiSilicon Hi3519 section) for the names benchncnn prints now.
OLD_SPELLINGS = {
    "squeezenet-int8": "squeezenet_int8",
    "squeezenet-ssd": "squeezenet_ssd",
    "mobilenet-ssd": "mobilenet_ssd",
    "mobilenet-yolo": "mobilenet_yolo",
}

COLUMNS = (
    "device",
    "model",
    "ncnn_model",
    "threads",
    "backend",
    "dtype",
    "gpu",
    "latency_ms_median",
    "latency_ms_min",
    "latency_ms_max",
    "unstable",
    "source",
    "target",
    "published_commit",
)

POWERSAVE = {0: "all cores", 1: "little cores", 2: "big cores"}  # benchncnn's [powersave] argument

_TIMING = re.compile(
    r"^\s*(?P<name>\S+)\s+min\s*=\s*(?P<min>\d+(?:\.\d+)?)\s+max\s*=\s*(?P<max>\d+(?:\.\d+)?)"
    r"\s+avg\s*=\s*(?P<avg>\d+(?:\.\d+)?)\s*$"
)
_SETTING = re.compile(r"^\s*(loop_count|num_threads|powersave|gpu_device|cooling_down)\s*=\s*(-?\d+)\s*$")
# benchncnn's printed settings → BenchRun's fields ("": not kept)
_SETTING_FIELDS = {
    "loop_count": "loops",
    "num_threads": "threads",
    "powersave": "powersave",
    "gpu_device": "gpu_device",
    "cooling_down": "",
}
_COMMAND = re.compile(r"benchncnn(?:\.exe)?((?:[ \t]+-?\d+)*)[ \t]*(?:\S+=\S*[ \t]*)*$")
_HEADING = re.compile(r"^###\s+(.*?)\s*$")
_NOTE = re.compile(r"^\*\*(.+?)\*\*\s*$")
_LOOKS_LIKE_TIMING = re.compile(r"\bmin\s*=")
_TRADEMARKS = re.compile(r"\((?:R|TM)\)|®|™")  # "Intel(R) UHD Graphics 770" is no "Intel" followed by specs


@dataclass(frozen=True)
class ModelTiming:
    """One line of benchncnn's output: a model's min, max and avg (a mean) over the run's loops, in ms."""

    name: str  # as printed: a built-in model's name, or the param= path given
    min_ms: float
    max_ms: float
    avg_ms: float


@dataclass(frozen=True)
class BenchRun:
    """One ``benchncnn`` run: its settings and the lines it printed."""

    heading: str  # the README's ``###`` heading of its section; "" in a bare log
    section: int  # which section, counted from 1 (0 before any heading)
    note: str = ""  # a bold line before the run inside its section ("With AVX512")
    loops: int | None = None
    threads: int | None = None  # None: neither printed nor on the command line
    powersave: int = 0
    gpu_device: int = -1  # -1: the CPU; 0, 1, ...: a Vulkan GPU
    timings: tuple[ModelTiming, ...] = ()

    @property
    def gpu(self) -> bool:
        return self.gpu_device >= 0


@dataclass
class BenchLog:
    """A log read into runs, and the lines that looked like results (``min =``) but could not be read."""

    runs: list[BenchRun] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)


def _command_settings(line: str) -> dict[str, int] | None:
    """The settings a ``benchncnn [loops] [threads] [powersave] [gpu] [cooling]`` command line gives, or None."""
    match = _COMMAND.search(line)
    if match is None:
        return None
    numbers = [int(n) for n in match.group(1).split()][:4]  # cooling down is not kept
    return dict(zip(("loops", "threads", "powersave", "gpu_device")[: len(numbers)], numbers, strict=True))


def read_benchncnn(text: str) -> BenchLog:
    """Split ncnn's README (or a device's benchncnn log) into runs.

    A run starts at a ``benchncnn`` command line or a ``loop_count =`` line once the previous one printed results,
    or where a model repeats inside a run; its settings are benchncnn's defaults (powersave 0, gpu -1), then the
    command line's, then the printed ones. Lines that mention ``min =`` but do not read as a result, or whose min is
    not above 0, go to :attr:`BenchLog.unparsed`.
    """
    log = BenchLog()
    heading, section, note, fenced = "", 0, "", False
    current = BenchRun(heading, section)

    def close() -> None:
        if current.timings:
            log.runs.append(current)

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced and (match := _HEADING.match(line)):
            close()
            heading, section, note = match.group(1), section + 1, ""
            current = BenchRun(heading, section)
            continue
        if not fenced and (match := _NOTE.match(line)):
            note = re.sub(r"^Results \((.*)\)$", r"\1", match.group(1).strip())
            continue
        if (timing := _TIMING.match(raw)) is not None:
            item = ModelTiming(timing["name"], float(timing["min"]), float(timing["max"]), float(timing["avg"]))
            if item.min_ms <= 0:
                log.unparsed.append(raw)
                continue
            if any(t.name == item.name for t in current.timings):  # a second run with the same settings
                close()
                current = replace(current, timings=())
            current = replace(current, timings=(*current.timings, item))
            continue
        if _LOOKS_LIKE_TIMING.search(line):
            log.unparsed.append(raw)
            continue
        command = _command_settings(line) if "benchncnn" in line else None
        if command is not None:  # a command line starts a run with its arguments
            close()
            current = BenchRun(heading, section, note, **command)
            continue
        if (setting := _SETTING.match(line)) is not None:
            if current.timings:  # settings printed after results: the next run's
                close()
                current = BenchRun(heading, section, note)
            key = _SETTING_FIELDS[setting.group(1)]
            if key:
                current = replace(current, **{key: int(setting.group(2))})
    close()
    return log


def ncnn_model_name(printed: str) -> str:
    """The model name benchncnn printed, as ncnn spells it now: a ``param=`` path loses its folder and ``.param``
    (``.ncnn.param``) suffix; the old hyphenated spellings become the current ones."""
    name = printed.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".ncnn.param", ".param"):
        name = name.removesuffix(suffix)
    return OLD_SPELLINGS.get(name, name)


def split_int8(name: str) -> tuple[str, str]:
    """``mobilenet_int8`` → (``mobilenet``, ``int8``); other names → (name, ``fp32``)."""
    for suffix in ("_int8", "-int8"):
        if name.endswith(suffix):
            return name.removesuffix(suffix), "int8"
    return name, "fp32"


def _short(heading: str) -> str:
    """A heading up to its first parenthesis, comma, bracket or " - ": the device without its specification."""
    return re.split(r"\(|,|\[| - ", _TRADEMARKS.sub("", heading), maxsplit=1)[0].strip()


def _first_parenthesis(heading: str) -> str:
    """A heading up to the end of its first parenthesis (``MacBook Pro (13-inch, M1, 2020)``)."""
    heading = _TRADEMARKS.sub("", heading)
    end = heading.find(")")
    return heading if end < 0 else heading[: end + 1].strip()


def _device_names(headings: dict[int, str]) -> dict[int, str]:
    """Each section's device name: the short heading; where two different headings share it, the heading up to its
    first parenthesis; where that still clashes, the whole heading. A repeated heading gets ``#2``, ``#3``."""
    names: dict[str, str] = {}
    rules: list[Callable[[str], str]] = [_short, _first_parenthesis, str.strip]
    for number, rule in enumerate(rules, start=1):
        pending = [h for h in dict.fromkeys(headings.values()) if h not in names]
        taken = Counter(" ".join(rule(h).split()) for h in pending)
        for heading in pending:
            name = " ".join(rule(heading).split())
            if taken[name] == 1 or number == len(rules):
                names[heading] = name or "unnamed device"
    seen: Counter[str] = Counter()
    by_section: dict[int, str] = {}
    for section, heading in sorted(headings.items()):
        seen[heading] += 1
        by_section[section] = names[heading] + (f" #{seen[heading]}" if seen[heading] > 1 else "")
    return by_section


def _qualified(name: str, runs: list[BenchRun]) -> list[str]:
    """The device of each run of one section: its name, `` · t<threads>`` where the section ran several thread
    counts, then what else tells two runs of one kind (CPU or GPU) apart: the cores, the GPU, the note, the loops,
    and at last the run's place."""
    labels: list[list[str]] = [[] for _ in runs]
    if len({r.threads for r in runs}) > 1:
        labels = [[f"t{r.threads}"] for r in runs]
    tellers: list[Callable[[int], str]] = [
        lambda i: POWERSAVE.get(runs[i].powersave, f"powersave {runs[i].powersave}"),
        lambda i: f"gpu{runs[i].gpu_device}",
        lambda i: runs[i].note,
        lambda i: f"{runs[i].loops} loops",
        lambda i: f"run {i + 1}",
    ]
    for tell in tellers:
        groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
        for i, run in enumerate(runs):
            groups[(*labels[i], run.gpu)].append(i)
        for members in groups.values():
            told = [tell(i) for i in members]
            if len(members) > 1 and len(set(told)) > 1:
                for i, label in zip(members, told, strict=True):
                    labels[i].append(label)
    return [" · ".join([name, *(label for label in own if label)]) for own in labels]


def published_target(dtype: str, gpu: bool) -> str:
    """The target of a published row: ``published-ncnn-fp32``, ``published-ncnn-int8-gpu``."""
    return f"published-ncnn-{dtype}" + ("-gpu" if gpu else "")


def parse_benchncnn(text: str) -> pd.DataFrame:
    """ncnn's benchmark README (or any text in its format) as published rows, one per model and run, with the
    columns :data:`COLUMNS`. ``latency_ms_median`` holds benchncnn's ``avg``, which is a mean. Runs that print no
    thread count are left out; :func:`read_benchncnn` shows what was read."""
    runs = [run for run in read_benchncnn(text).runs if run.threads is not None]
    sections: dict[int, list[BenchRun]] = defaultdict(list)
    for run in runs:
        sections[run.section].append(run)
    names = _device_names({section: members[0].heading for section, members in sections.items()})
    rows = []
    for section, members in sections.items():
        for run, device in zip(members, _qualified(names[section], members), strict=True):
            for timing in run.timings:
                ncnn_model = ncnn_model_name(timing.name)
                network, dtype = split_int8(ncnn_model)
                rows.append(
                    {
                        "device": device,
                        "model": NCNN_TO_ZOO.get(network, f"ncnn:{network}"),
                        "ncnn_model": ncnn_model,
                        "threads": run.threads,
                        "backend": "ncnn",
                        "dtype": dtype,
                        "gpu": run.gpu,
                        "latency_ms_median": timing.avg_ms,  # benchncnn's avg: a mean, not a median
                        "latency_ms_min": timing.min_ms,
                        "latency_ms_max": timing.max_ms,
                        "unstable": timing.max_ms / timing.min_ms > UNSTABLE_RATIO,
                        "source": "published",
                        "target": published_target(dtype, run.gpu),
                        "published_commit": PUBLISHED_COMMIT,
                    }
                )
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"threads": "int64", "gpu": bool, "unstable": bool})


def published_rows(path: Path | None = None) -> pd.DataFrame:
    """The published rows: the table shipped with cnnbench (``None``, parsed from ncnn's README at
    :data:`PUBLISHED_COMMIT`), or ``path``, a newer README in the same format, parsed now."""
    if path is None:
        frame = pd.read_csv(SHIPPED, encoding="utf-8", keep_default_na=False)
        return frame.astype({"threads": "int64", "gpu": bool, "unstable": bool})[list(COLUMNS)]
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise CnnbenchError(f"cannot read {path} ({err.strerror or type(err).__name__}); give ncnn's README") from None
    except UnicodeDecodeError:
        raise CnnbenchError(f"{path} is not text; give ncnn's benchmark/README.md") from None
    frame = parse_benchncnn(text)
    if frame.empty:
        raise CnnbenchError(f"{path} holds no benchncnn result line (`name  min = …  max = …  avg = …`)")
    return frame


def generate_shipped_table(readme: Path, out: Path = SHIPPED) -> Path:
    """Parse ncnn's benchmark README at :data:`PUBLISHED_COMMIT` into the shipped CSV (written atomically)."""
    frame = published_rows(readme)
    atomic_write_text(out, frame.to_csv(index=False))
    return out
