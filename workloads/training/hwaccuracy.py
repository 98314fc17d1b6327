"""Test-set accuracy through the hardware path: the golden integer model and the simulator, per image.

A trained QAT model is integerized and lowered once (`compile_trained`). Every test image then runs
  - through the golden model (`compiler.ir.run_graph` on the integer IR, the graph before rewrites), and
  - through the cycle-level simulator (fast datapath) on the same program: only the input tensor's
    bytes in a copy of the DRAM image change per image, transformed the way the artifact's manifest
    says (`input_transforms`: the im2col layout of compiler.rewrite), so no recompilation is needed.
Logits are int32 in both; the simulator must reproduce the golden logits exactly, so predictions are
identical by construction and `evaluate` refuses (raises) if they are not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from torch import nn

from bitbranch.compiler import ir
from bitbranch.compiler.integerize import to_ir
from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.rewrite import patches
from bitbranch.compiler.threads import torch_threads
from bitbranch.isa.artifact import Artifact, write_tensor
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.simulator import run

from ..progress import Progress


class HardwareMismatch(AssertionError):
    """The simulator's outputs differ from the golden model's."""


@dataclass
class Compiled:
    graph: ir.Graph  # the golden model (before lowering rewrites)
    art: Artifact

    @property
    def output(self) -> str:
        return self.graph.outputs[0]


def compile_trained(model: nn.Module, input_shape: tuple[int, int, int], hw: HwConfig, example: np.ndarray,
                    meta: dict | None = None) -> Compiled:
    """Integer IR and artifact of a trained QAT model; `example` (H, W) uint8 is the artifact's input."""
    graph = to_ir(model.eval(), (1, *input_shape), hw)
    info = {**graph.meta, **(meta or {})}
    info.pop("fx_nodes", None)
    art = lower_graph(graph, hw, {graph.inputs[0]: _hwc(example)}, meta=info)
    if len(graph.outputs) != 1 or len(art.inputs) != 1:
        raise ValueError("hardware accuracy needs a single-input, single-output classifier")
    return Compiled(graph, art)


def _hwc(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 levels -> (H, W, 1); the input quantizer maps x = u/255 back to exactly u."""
    return np.asarray(image, dtype=np.uint8)[:, :, None]


def artifact_input(art: Artifact, image: np.ndarray) -> tuple[str, np.ndarray]:
    """The artifact's input tensor for one image, with the manifest's input transform applied."""
    name = art.inputs[0]
    u = _hwc(image)
    t = art.meta.get("input_transforms", {}).get(name)
    if t is None:
        return name, u
    if t["transform"] != "im2col":
        raise ValueError(f"input '{name}': unknown input transform '{t['transform']}'")
    (kh, kw), stride, pad, dil = t["kernel"], t["stride"], t["pad"], t["dil"]
    return name, patches(u, kh, kw, stride, pad, dil)


def golden_logits(c: Compiled, images: np.ndarray) -> np.ndarray:
    """(N, classes) int32 logits of the integer golden model (one torch thread: per-image convolutions are too
    small to share, and extra threads only spin on a busy machine)."""
    name = c.graph.inputs[0]
    with torch_threads(1):
        return np.stack([ir.run_graph(c.graph, {name: _hwc(im)})[c.output].reshape(-1) for im in images])


def simulate_one(art: Artifact, image: np.ndarray) -> tuple[np.ndarray, int]:
    """Logits and cycles of one image on the simulator (fast datapath)."""
    dram = bytearray(art.dram)
    name, value = artifact_input(art, image)
    write_tensor(dram, art.tensors[name], value, art.hw)
    res = run((art.program, bytes(dram), art.hw), datapath="fast")
    return art.output(res.dram, art.outputs[0]).reshape(-1), res.cycles


@dataclass
class HwAccuracy:
    """Golden and simulator accuracy on one test set (the simulator possibly on its first n_sim images)."""

    golden_acc: float
    sim_acc: float
    n: int
    n_sim: int
    cycles: int
    golden_seconds: float
    sim_seconds: float

def evaluate(c: Compiled, images: np.ndarray, labels: np.ndarray, n_sim: int | None = None,
             label: str = "hw") -> HwAccuracy:
    """Golden on all images, simulator on the first n_sim (all by default); raises HardwareMismatch."""
    t0 = time.perf_counter()
    gold = golden_logits(c, images)
    t_gold = time.perf_counter() - t0
    n_sim = len(images) if n_sim is None else min(n_sim, len(images))
    sims, cycles = [], set()
    t0 = time.perf_counter()
    with Progress(n_sim, f"simulate {label}") as bar:
        for k in range(n_sim):
            logits, cyc = simulate_one(c.art, images[k])
            sims.append(logits)
            cycles.add(cyc)
            bar.update()
    t_sim = time.perf_counter() - t0
    sim = np.stack(sims) if sims else np.zeros((0, gold.shape[1]), gold.dtype)
    bad = np.flatnonzero((sim != gold[:n_sim]).any(axis=1))
    if bad.size:
        k = int(bad[0])
        raise HardwareMismatch(f"{label}: simulator logits differ from golden on {bad.size} of {n_sim} images "
                               f"(first: image {k}, golden {gold[k].tolist()}, simulator {sim[k].tolist()})")
    if len(cycles) > 1:
        raise HardwareMismatch(f"{label}: cycle count depends on the data ({sorted(cycles)[:4]} ...)")
    return HwAccuracy(golden_acc=float((gold.argmax(1) == labels).mean()),
                      sim_acc=float((sim.argmax(1) == labels[:n_sim]).mean()) if n_sim else float("nan"),
                      n=len(images), n_sim=n_sim, cycles=cycles.pop() if cycles else 0, golden_seconds=t_gold,
                      sim_seconds=t_sim)
