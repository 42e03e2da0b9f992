"""What changes when a model leaves eager PyTorch for a deployment runtime: speed-ups against eager, how the ranking
of the zoo moves, and a few sentences that say it from the figures of the run. Pure: latency rows in, frames and
text out; nothing is measured here."""

from __future__ import annotations

import pandas as pd
from scipy.stats import spearmanr

from cnnbench.target import INT8, RUNTIMES

__all__ = ["speedups", "ranking", "summary_lines", "PAIR", "RUNTIME_NAMES", "runtimes_title", "method_text"]

# A pair whose ratio the README quotes on every target: a heavy dense net against the lightest MobileNet.
PAIR = ("resnet18", "mobilenet_v3_small")


# How the README names each runtime and says how its rows were made, keyed by runtime (--backend) and by the file
# it loads (cnnbench.target.Runtime.file): the runtimes themselves live in cnnbench.runtimes.
RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "executorch": "ExecuTorch", "ncnn": "ncnn"}
_HOW_RUN = {
    "onnxruntime": "ONNX Runtime's CPU provider, every graph optimisation, on the `torch.onnx.export` file (opset 17)",
    "openvino": "OpenVINO's CPU plugin on the same ONNX file",
    "executorch": "ExecuTorch on a `.pte` that `torch.export` lowered to XNNPACK (what XNNPACK does not take runs on "
    "the portable kernels; the row's notes name it)",
    "ncnn": "ncnn on pnnx's `.param`/`.bin` conversion, fp32 throughout, one image per call",
}
_MADE_BY = {"onnx": "`torch.onnx.export`", "pte": "ExecuTorch's lowering", "ncnn": "pnnx's conversion"}
_INT8_BY = {
    "onnx": "static QDQ for ONNX (per-channel int8 weights, uint8 activations, MinMax ranges)",
    "pte": "PT2E with XNNPACK's quantizer for ExecuTorch (per-channel int8 weights, int8 activations)",
}


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def runtimes_title(pairs: list[tuple[str, str]]) -> str:
    """``ONNX Runtime and OpenVINO, fp32 and INT8``: the runtimes and dtypes of the deployment tables, each
    (backend, dtype) of ``pairs`` once, in their order."""
    backends = list(dict.fromkeys(backend for backend, _ in pairs))
    dtypes = list(dict.fromkeys(dtype.upper() if dtype == INT8 else dtype for _, dtype in pairs))
    return f"{_and([RUNTIME_NAMES.get(b, b) for b in backends])}, {_and(dtypes)}"


def method_text(pairs: list[tuple[str, str]], calibration_images: int) -> str:
    """How the rows of ``pairs`` (backend, dtype) were made and run, and what their cold-start columns time."""
    backends = list(dict.fromkeys(backend for backend, _ in pairs))
    files = list(dict.fromkeys(RUNTIMES[b].file for b in backends if b in RUNTIMES))
    quantized = list(dict.fromkeys(RUNTIMES[b].file for b, dtype in pairs if dtype == INT8 and b in RUNTIMES))
    text = (
        "Each model's file for each runtime is made once (cached) and run with the report's threads: "
        + "; ".join(_HOW_RUN.get(b, b) for b in backends)
        + "."
    )
    if quantized:
        text += (
            f" INT8 is static post-training quantization, {_and([_INT8_BY[f] for f in quantized if f in _INT8_BY])}, "
            f"calibrated on {calibration_images} real images (the digits unless `--calibration DIR`; the ranges set "
            "the file's scales, not its graph or kernels, so latency needs no more)."
        )
    made = _and([_MADE_BY[f] for f in files if f in _MADE_BY])
    return (
        text + " Every measurement runs in a process of its own. `vs eager` = eager latency / this latency (above 1 "
        f"is faster). Cold start: `export` ({made}), `quantize` (calibration and quantization, INT8 only), `load` "
        "(session creation, compilation or program loading; building the model for eager), `first` (first inference)."
    )


def _ok(everything: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    frame = everything[(everything["status"] == "ok") & everything["target"].isin(targets)]
    return frame.assign(latency_ms_median=pd.to_numeric(frame["latency_ms_median"]))


def speedups(everything: pd.DataFrame, baseline: str, targets: list[str]) -> pd.DataFrame:
    """One row per (model, target): median latency, eager's, and ``speedup`` = baseline / target (above 1: the
    target is faster). Only models measured on both."""
    frame = _ok(everything, [baseline, *targets])
    wide = frame.pivot_table(index="model", columns="target", values="latency_ms_median", aggfunc="first")
    if baseline not in wide:
        return pd.DataFrame(columns=["model", "family", "target", "latency_ms_median", "baseline_ms", "speedup"])
    families = frame.drop_duplicates("model").set_index("model")["family"]
    rows = []
    for target in [t for t in targets if t in wide]:
        both = wide[[baseline, target]].dropna()
        for model, values in both.iterrows():
            rows.append(
                {
                    "model": model,
                    "family": families.get(model, "other"),
                    "target": target,
                    "latency_ms_median": values[target],
                    "baseline_ms": values[baseline],
                    "speedup": values[baseline] / values[target],
                }
            )
    return pd.DataFrame(rows)


def ranking(everything: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    """Each model's latency rank (1 = fastest) on each target, for the models measured on all of them, with the
    largest move between any two targets; sorted by that move, largest first."""
    frame = _ok(everything, targets)
    wide = frame.pivot_table(index="model", columns="target", values="latency_ms_median", aggfunc="first")
    wide = wide[[t for t in targets if t in wide]].dropna()
    ranks = wide.rank(method="min").astype(int)
    ranks["moves"] = ranks.max(axis=1) - ranks.min(axis=1)
    return ranks.sort_values(["moves", ranks.columns[0]], ascending=[False, True]).reset_index()


def _ratio(frame: pd.DataFrame, target: str, heavy: str, light: str) -> float | None:
    part = frame[frame["target"] == target].set_index("model")["latency_ms_median"]
    return float(part[heavy] / part[light]) if heavy in part and light in part else None


def summary_lines(everything: pd.DataFrame, baseline: str, targets: list[str]) -> list[str]:
    """Sentences for results/README.md, each computed from the run's rows."""
    ups = speedups(everything, baseline, targets)
    if ups.empty:
        return []
    lines = []
    for target, group in ups.groupby("target", sort=False):
        fastest, slowest = group.loc[group["speedup"].idxmax()], group.loc[group["speedup"].idxmin()]
        lines.append(
            f"On **{target}**, the median model runs {group['speedup'].median():.2f}× as fast as on {baseline} "
            f"({len(group)} models): from {slowest['speedup']:.2f}× ({slowest['model']}) to "
            f"{fastest['speedup']:.2f}× ({fastest['model']})."
        )
    frame = _ok(everything, [baseline, *targets])
    heavy, light = PAIR
    ratios = [(t, _ratio(frame, t, heavy, light)) for t in [baseline, *targets]]
    quoted = [f"{r:.1f}× on {t}" for t, r in ratios if r is not None]
    if len(quoted) > 1:
        lines.append(
            f"The ranking moves: {heavy} takes {quoted[0].replace(' on ', f' the time of {light} on ')}, "
            + ", ".join(quoted[1:])
            + "."
        )
    int8 = [t for t in targets if "-int8-" in t]
    for target in int8:
        fp32 = target.replace("-int8-", "-fp32-")
        if fp32 not in set(frame["target"]):
            continue
        pair = ups[ups["target"] == target].merge(ups[ups["target"] == fp32], on="model", suffixes=("", "_fp32"))
        if pair.empty:
            continue
        gain = pair["latency_ms_median_fp32"] / pair["latency_ms_median"]
        slower = pair.loc[gain < 1, "model"].tolist()
        best = pair.loc[gain.idxmax()]
        lines.append(
            f"INT8 against fp32 on the same runtime ({target}): median {gain.median():.2f}× as fast, best "
            f"{gain.max():.2f}× ({best['model']}); slower than fp32 for {len(slower)} of {len(pair)} models"
            + (f" ({', '.join(slower[:8])}{', …' if len(slower) > 8 else ''})." if slower else ".")
        )
    ranks = ranking(everything, [baseline, *targets])
    if len(ranks) > 2:
        for target in targets:
            if target in ranks:
                rho = spearmanr(ranks[baseline], ranks[target])[0]
                lines.append(f"Rank correlation of latency between {baseline} and {target}: Spearman ρ = {rho:.2f}.")
    return lines
