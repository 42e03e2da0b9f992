"""Audit a model against ShuffleNetV2's guidelines G1–G4 (arXiv 1807.11164, §2), from the counting engine.

Everything is counted on the meta device with :func:`cnnbench.profile`; a dispatch mode of our own, stacked under the
counting engine's in the same forward, records the op graph (which op reads which op's output), which the engine
does not keep. The definitions:

- **G1** (equal channel width): every dense 1×1 convolution's MAC over its lower bound 2·√(hw·B) + B/hw, where B is
  its multiply-adds and hw its output map (times the batch); 1.0 means c1 = c2. The model's figure is ΣMAC / Σbound
  over its 1×1 convs (how much more traffic they move than the same multiply-adds need at equal widths) and the
  worst layer. A layer at or above 1.25 (c1:c2 beyond about 1:4 on a large map; MobileNetV2's 1:6 gives 1.43) is
  flagged. A stride-2 1×1 conv reads 4× its output map, so it sits above the bound too: that is real traffic.
- **G2** (group convolution): the share of the model's MAC in group convolutions (kind ``conv_group``: 1 < groups <
  input channels; depthwise convs are G4's) and the group counts used. Any group conv is flagged.
- **G3** (fragmentation): per block, the **branches** (the most ops inside the block that read one tensor: a
  residual block has 2, an Inception block 4) and the **fragments** (conv, linear and pooling ops: the separate
  operators SN2 counts). A **block** is the outermost module below the root that has children and is not a plain
  ``nn.Sequential``/``nn.ModuleList``/``nn.ModuleDict`` (a ResNet bottleneck, an MBConv, a ConvBNAct); ops in no
  such module are grouped by the first module under a plain container (VGG's ``features.3``), or by the root's
  child. A block with more than 2 branches is flagged (ShuffleNetV2's own unit has 2).
- **G4** (element-wise ops): the share of MAC in ops of kinds ``activation``, ``elementwise`` (add, mul, ...),
  ``norm`` (an unfolded BatchNorm is a per-channel multiply-add) and ``conv_depthwise`` (SN2 counts depthwise convs as
  element-wise for their high MAC/FLOPs ratio); concat and shuffle copies are data movement and not included, and a
  conv's own bias (AddBias in SN2) stays in the conv's record, where the counting engine puts it.
  Optionally the share of time in the same kinds, measured per op on a target (:func:`time_by_kind`). A share at or
  above 0.5 is flagged.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

from cnnbench.errors import CnnbenchError
from cnnbench.measure.breakdown import time_by_kind
from cnnbench.measure.counting import ZERO_COST, tensors_in
from cnnbench.measure.profiling import profile
from cnnbench.models import resolve
from cnnbench.target import Target

__all__ = [
    "Audit",
    "audit",
    "audit_frame",
    "offenders_frame",
    "block_of",
    "G1_FLAG",
    "G3_FLAG",
    "G4_FLAG",
    "G4_KINDS",
    "FRAGMENT_KINDS",
]

G1_FLAG = 1.25  # a 1×1 conv whose MAC is at least 1.25× its bound
G3_FLAG = 2  # a block with more branches than this
G4_FLAG = 0.5  # a model with at least this share of its MAC in element-wise ops
G4_KINDS = ("activation", "elementwise", "norm", "conv_depthwise")
FRAGMENT_KINDS = ("conv", "conv_1x1", "conv_depthwise", "conv_group", "linear", "pool")
_PLAIN_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_CONV = torch.ops.aten.convolution


# --- the op graph: which op's output each op reads ----------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    op: str
    producers: tuple[int, ...]  # ops whose outputs this op reads (negative: a tensor no op of the pass wrote)
    groups: int  # convolutions only, else 0
    c_in: int
    c_out: int


class _GraphMode(TorchDispatchMode):
    """Record, for every op the counting engine records (every op outside ``ZERO_COST``), the ops it reads from.

    Tensors are followed by storage: a view reads its base's storage, an in-place op becomes the storage's new
    writer. Parameters and buffers are not graph edges; each tensor no recorded op wrote (the input, a fresh
    ``zeros``) gets its own negative id, so two ops reading two different such tensors are not siblings.
    """

    def __init__(self, external: Sequence[Tensor]) -> None:
        super().__init__()
        self.nodes: list[_Node] = []
        self._weights = {self._key(t) for t in external}
        self._writer: dict[int, int] = {}
        self._fresh = 0

    @staticmethod
    def _key(t: Tensor) -> int:
        return StorageWeakRef(t.untyped_storage()).cdata

    def _new_source(self, key: int) -> int:
        self._fresh -= 1
        self._writer[key] = self._fresh
        return self._fresh

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        inputs = [self._key(t) for t in tensors_in([*args, *kwargs.values()])]
        outputs = [self._key(t) for t in tensors_in([result])]
        if func.overloadpacket in ZERO_COST:
            for key in outputs:
                if key not in inputs:  # an allocation, not a view: whatever wrote that address before is gone
                    self._new_source(key)
            return result
        read = [k for k in inputs if k not in self._weights]
        producers = {self._writer[k] if k in self._writer else self._new_source(k) for k in read}
        groups = c_in = c_out = 0
        if func.overloadpacket is _CONV:
            groups, c_in, c_out = int(args[8]), int(args[0].shape[1]), int(args[1].shape[0])
        index = len(self.nodes)
        self.nodes.append(_Node(func.overloadpacket.__name__, tuple(sorted(producers)), groups, c_in, c_out))
        for key in outputs:
            self._writer[key] = index
        return result


def block_of(model: nn.Module) -> Callable[[str], str]:
    """A function from an op's module path to its block's path (the definition is in the module docstring)."""
    modules = dict(model.named_modules())

    def plain(m: nn.Module) -> bool:
        return type(m) in _PLAIN_CONTAINERS

    cache: dict[str, str] = {}

    def find(path: str) -> str:
        if not path or path not in modules:
            return "(top)"
        if path in cache:
            return cache[path]
        parts = path.split(".")
        prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
        block = None
        for prefix in prefixes:  # the outermost composite module reached through plain containers only
            m = modules[prefix]
            if not plain(m):
                block = prefix if len(m._modules) else None
                break
        if block is None:  # the first module under a plain container, else the root's child
            under_container = (p for p in prefixes if plain(modules[p.rpartition(".")[0]]))
            block = next(under_container, prefixes[0])
        cache[path] = block
        return block

    return find


# --- the audit ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audit:
    """One model's audit: ``summary`` (one flat record), ``layers`` (one row per op), ``blocks`` (one per block)."""

    model: str
    summary: dict[str, object]
    layers: pd.DataFrame
    blocks: pd.DataFrame

    def offenders(self, top: int = 5) -> pd.DataFrame:
        """The worst ``top`` layers (or blocks, for G3) per guideline, by MAC in excess of the bound (G1) or by MAC."""
        total = float(self.summary["mac"])  # type: ignore[arg-type]
        rows: list[dict[str, object]] = []
        layers = self.layers

        def add(guideline: str, frame: pd.DataFrame, detail: Callable[[Any], str], excess: str = "mac") -> None:
            for r in frame.sort_values(excess, ascending=False).head(top).itertuples():
                rows.append(
                    {
                        "model": self.model,
                        "guideline": guideline,
                        "module": r.module,
                        "op": getattr(r, "op", "(block)"),
                        "kind": getattr(r, "kind", "block"),
                        "detail": detail(r),
                        "mac": int(r.mac),
                        "excess_mac": int(getattr(r, excess)),
                        "mac_share": r.mac / total if total else 0.0,
                    }
                )

        g1 = layers[layers["mac_over_bound"] >= G1_FLAG]
        add("G1", g1, lambda r: f"{r.c_in}→{r.c_out} on {r.map}, MAC/bound {r.mac_over_bound:.2f}", "excess_over_bound")
        g2 = layers[layers["kind"] == "conv_group"]
        add("G2", g2, lambda r: f"{r.c_in}→{r.c_out}, g={r.groups}")
        g3 = self.blocks[self.blocks["branches"] > G3_FLAG].rename(columns={"block": "module"})
        add("G3", g3, lambda r: f"{r.branches} branches, {r.fragments} conv/pool ops, {r.ops} ops")
        g4 = layers[layers["kind"].isin(G4_KINDS)]
        add("G4", g4, lambda r: f"output {r.output_shape}")
        columns = ["model", "guideline", "module", "op", "kind", "detail", "mac", "excess_mac", "mac_share"]
        return pd.DataFrame(rows, columns=columns)


def _with_graph(layers: pd.DataFrame, nodes: list[_Node], blocks: Callable[[str], str], name: str) -> pd.DataFrame:
    if [n.op for n in nodes] != list(layers["op"]):
        raise CnnbenchError(f"{name}: the op graph and the counting engine disagree on the ops; it cannot be audited")
    layers = layers.assign(
        block=layers["module"].map(blocks),
        producers=[n.producers for n in nodes],
        groups=[n.groups for n in nodes],
        c_in=[n.c_in for n in nodes],
        c_out=[n.c_out for n in nodes],
    )
    # G1: hw counts every output position of the batch, so the bound keeps the paper's form at any batch.
    pointwise = layers["kind"] == "conv_1x1"
    hw = pd.Series(math.nan, index=layers.index)
    shapes = layers.loc[pointwise, "output_shape"].map(lambda s: math.prod(int(d) for d in s.split("×")))
    hw[pointwise] = shapes / layers.loc[pointwise, "c_out"]
    flops = layers["flops"].astype("float64")
    layers["bound"] = 2 * (hw * flops) ** 0.5 + flops / hw
    layers["mac_over_bound"] = layers["mac"] / layers["bound"]
    layers["excess_over_bound"] = layers["mac"] - layers["bound"]
    layers["map"] = layers["output_shape"].map(lambda s: "×".join(s.split("×")[-2:]))
    return layers


def _blocks(layers: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for block, ops in layers.groupby("block", sort=False):
        readers: Counter[int] = Counter(p for producers in ops["producers"] for p in producers)
        rows.append(
            {
                "block": block,
                "ops": len(ops),
                "fragments": int(ops["kind"].isin(FRAGMENT_KINDS).sum()),
                "branches": max(readers.values(), default=1),
                "flops": int(ops["flops"].sum()),
                "mac": int(ops["mac"].sum()),
            }
        )
    return pd.DataFrame(rows)


def _summary(name: str, layers: pd.DataFrame, blocks: pd.DataFrame) -> dict[str, object]:
    mac = float(layers["mac"].sum())
    pointwise = layers[layers["kind"] == "conv_1x1"]
    group = layers[layers["kind"] == "conv_group"]
    share = {kind: float(layers.loc[layers["kind"] == kind, "mac"].sum()) / mac for kind in G4_KINDS}
    g1_worst = float(pointwise["mac_over_bound"].max()) if len(pointwise) else math.nan
    summary: dict[str, object] = {
        "model": name,
        "flops": int(layers["flops"].sum()),
        "mac": int(mac),
        "g1_pointwise_convs": len(pointwise),
        "g1_mac_over_bound": float(pointwise["mac"].sum() / pointwise["bound"].sum()) if len(pointwise) else math.nan,
        "g1_worst": g1_worst,
        "g1_flagged": int((pointwise["mac_over_bound"] >= G1_FLAG).sum()),
        "g2_group_convs": len(group),
        "g2_mac_share": float(group["mac"].sum()) / mac,
        "g2_groups": ",".join(str(g) for g in sorted(set(group["groups"]))),
        "g3_blocks": len(blocks),
        "g3_max_branches": int(blocks["branches"].max()),
        "g3_flagged_blocks": int((blocks["branches"] > G3_FLAG).sum()),
        "g3_mean_fragments": float(blocks["fragments"].mean()),
        "g4_mac_share": sum(share.values()),
        **{f"g4_{kind}_share": value for kind, value in share.items()},
    }
    flags = [
        "G1" if g1_worst >= G1_FLAG else "",
        "G2" if len(group) else "",
        "G3" if summary["g3_flagged_blocks"] else "",
        "G4" if summary["g4_mac_share"] >= G4_FLAG else "",  # type: ignore[operator]
    ]
    summary["flags"] = " ".join(f for f in flags if f)
    return summary


def audit(
    model: nn.Module | str,
    resolution: int | None = None,
    batch: int = 1,
    time_target: Target | None = None,
    name: str | None = None,
) -> Audit:
    """Audit one model (a module, a zoo name, ``timm:NAME`` or ``torchvision:NAME``) on the meta device.

    With ``time_target``, the model also runs for real there, and ``g4_time_share`` is the share of per-op time in
    the element-wise kinds (see :func:`time_by_kind`).
    """
    resolved = resolve(model, resolution, name=name)
    name, resolution = resolved.name, resolved.resolution
    # shapes are all the audit needs; the caller's model is left as it is
    net = resolved.model if resolved.built else copy.deepcopy(resolved.model).to("meta")
    # One forward serves both: our graph mode sits under the counting engine's mode, so it sees every op the engine
    # records, with the same arguments, in the same order.
    graph = _GraphMode(external=[*net.parameters(), *net.buffers()])
    try:
        with graph:
            counted = profile(net, resolution=resolution, batch=batch, training_memory=False, copy_model=False)
    except CnnbenchError as err:  # the engine names the module's class; say which model the user asked for
        raise CnnbenchError(f"{name}: {err}") from None
    layers = _with_graph(counted.layers, graph.nodes, block_of(net), name)
    blocks = _blocks(layers)
    summary = _summary(name, layers, blocks)
    if time_target is not None:
        timed = time_by_kind(model, time_target, batch=batch, resolution=resolution)  # a name is built on the CPU there
        summary["g4_time_share"] = float(timed.loc[timed["kind"].isin(G4_KINDS), "time_share"].sum())
    return Audit(name, summary, layers, blocks)


def audit_frame(audits: Sequence[Audit]) -> pd.DataFrame:
    """One summary row per audit."""
    return pd.DataFrame([a.summary for a in audits])


def offenders_frame(audits: Sequence[Audit], top: int = 5) -> pd.DataFrame:
    """Every audit's worst offenders, one after the other."""
    return pd.concat([a.offenders(top) for a in audits], ignore_index=True)
