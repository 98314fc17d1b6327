"""An existing artifact on a new input: its DRAM input replaced, its golden recomputed.

Why: a compiled program is a fixed set of weights and instructions; only the input tensor in DRAM and the
expected outputs depend on the image. Both are made here exactly as compile_model and lower_graph make them:
the same input levels (compile.input_levels), the same host rewrite of the input (rewrite.im2col_input, when
lowering applied it), the same packing (isa.artifact.write_tensor) at the input tensor's address, and the
golden model (ir.run_graph) on the graph stored in the artifact (compiler.storedgraph).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bitbranch.isa.artifact import Artifact, ArtifactError, load_graph, write_tensor

from . import ir
from .compile import input_levels
from .lower import frame_name
from .rewrite import im2col_input
from .storedgraph import from_stored


def stored_ir(art: Artifact) -> ir.Graph:
    """The artifact's reference graph as IR (isa.artifact.NoStoredGraph for an artifact that predates it)."""
    stored = load_graph(art)
    source = Path(art.path or ".") / str(art.graph_files.get("graph", {}).get("file", "graph.json"))
    return from_stored(stored, str(source))


def frames_of(art: Artifact) -> int:
    """Frames one run of the artifact computes (its batch)."""
    return int((art.meta.get("batch") or {}).get("frames", 1))


Arrays = dict[str, np.ndarray]


def golden_for(graph: ir.Graph, image: np.ndarray, word_bits: int) -> tuple[Arrays, Arrays]:
    """(DRAM inputs, golden outputs) of one frame: what lower_graph would place and expect for `image`."""
    inputs = input_levels(graph, image)
    try:
        values = ir.run_graph(graph, inputs)
    except (ValueError, TypeError, RuntimeError, IndexError) as exc:  # passed its checks, yet does not compute
        raise ArtifactError(f"the stored graph does not run: {exc}") from None
    placed = im2col_input(graph, inputs, word_bits)[1] if graph.meta.get("im2col", True) else inputs
    return placed, {n: values[n] for n in graph.outputs}


def with_input(art: Artifact, frames: Sequence[np.ndarray], graph: ir.Graph | None = None) -> Artifact:
    """A copy of `art` computing `frames` (one uint8 image or vector per frame of its batch, already fitted to the
    model's input shape): each frame's input written into the DRAM image, the golden outputs recomputed.
    `graph`: stored_ir(art) when the caller has it already."""
    if len(frames) != frames_of(art):
        raise ValueError(f"{len(frames)} input frame(s) for an artifact that runs a batch of {frames_of(art)}")
    graph = graph if graph is not None else stored_ir(art)
    dram, golden = bytearray(art.dram), {}
    for f, image in enumerate(frames):
        placed, outs = golden_for(graph, image, art.hw.word_bits)
        for name, value in placed.items():
            spec = art.tensors.get(frame_name(name, f))
            if spec is None or spec.name not in art.inputs:
                raise ArtifactError(f"{art.path}: the stored graph's input '{name}' is not an input tensor of the "
                                    f"manifest ({', '.join(art.inputs)})")
            write_tensor(dram, spec, value, art.hw)
        golden.update({frame_name(n, f): v for n, v in outs.items()})
    if art.golden and set(golden) != set(art.golden):
        raise ArtifactError(f"{art.path}: the stored graph's outputs {sorted(golden)} are not the artifact's golden "
                            f"outputs {sorted(art.golden)}")
    return dataclasses.replace(art, dram=bytes(dram), golden=golden)
