"""Graph lowering: an integer IR graph -> a program artifact (program, DRAM image, manifest, golden).

Tensors live in DRAM between layers (layer-by-layer execution). Channel concatenation costs no
instructions: producers of a concat's inputs store their pixels straight into the concat tensor at
their word offset (a second strided STORE when the input is also read on its own). Trailing host
ops (box decoding, NMS, ...) run in torch after the accelerator; they are listed in the manifest and
their inputs become artifact outputs. The graph as given (its accelerator part) is stored in the artifact
(compiler.storedgraph), so the golden can be recomputed for another input (compiler.regolden).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from bitbranch.isa.artifact import Artifact, LayerRecord, tensor_bytes
from bitbranch.isa.errors import FieldRangeError
from bitbranch.isa.hwconfig import HwConfig

from . import ir
from .builder import ProgramBuilder
from .conv import OutDest, lower_conv
from .conv import preload_groups as conv_groups
from .pool import copied_concat, lower_add, lower_concat, lower_pool, lower_upsample
from .pool import preload_groups as const_groups
from .rewrite import im2col_input
from .schedule import hoisted_order, remap_ranges
from .storedgraph import to_stored
from .tiling import LayerContext, LoweringError

LOWERINGS = {ir.Conv: lower_conv, ir.Pool: lower_pool, ir.Add: lower_add, ir.Upsample: lower_upsample,
             ir.Concat: lower_concat}


def split_host_tail(graph: ir.Graph) -> tuple[list[ir.Op], list[ir.HostOp]]:
    """Accelerator ops and the trailing host ops; a host op in the middle is refused."""
    ops = list(graph.ops)
    tail: list[ir.HostOp] = []
    while ops and isinstance(ops[-1], ir.HostOp):
        tail.insert(0, ops.pop())
    for op in ops:
        if isinstance(op, ir.HostOp):
            raise LoweringError(
                f"op '{op.name}' must run on the host ({op.reason or 'unsupported'}) but accelerator layers follow it; "
                "host ops are supported only at the end of a network"
            )
    return ops, tail


def _concat_views(graph: ir.Graph, hw: HwConfig) -> dict[str, list[tuple[str, int]]]:
    """For each tensor feeding a concat: (concat tensor, word offset) pairs it must also be written to."""
    views: dict[str, list[tuple[str, int]]] = {}
    for op in graph.ops:
        if not isinstance(op, ir.Concat) or copied_concat(op, graph, hw):
            continue
        out = graph.tensors[op.output]
        offset = 0
        for k, name in enumerate(op.inputs):
            t = graph.tensors[name]
            if t.bits != out.bits or (k < len(op.inputs) - 1 and t.shape[2] % hw.word_bits):
                raise LoweringError(
                    f"concat '{op.name}': input '{name}' has {t.shape[2]} channels / {t.bits} bits; concatenation "
                    f"by addressing needs whole {hw.word_bits}-channel words and equal bits ({out.bits})"
                )
            if graph.producer(name) is None:
                raise LoweringError(f"concat '{op.name}': input '{name}' is a graph input; copy it through a layer")
            views.setdefault(name, []).append((op.output, offset))
            offset += t.shape[2] // hw.word_bits
    return views


def preload_groups(op: ir.Op, graph: ir.Graph, hw: HwConfig) -> tuple[int, bool] | None:
    """(groups, halves) of a layer's WGT/CONST preloads, or None when it preloads nothing."""
    if isinstance(op, ir.Conv):
        return conv_groups(op, graph, hw)
    if isinstance(op, ir.Add) or (isinstance(op, ir.Pool) and op.mode == "avg") or isinstance(op, ir.Concat):
        return const_groups(op, graph, hw)
    return None


def layer_contexts(ops: list[ir.Op], graph: ir.Graph, hw: HwConfig) -> list[LayerContext]:
    """Boundaries, WGT/CONST halves and prefetch links of every layer (see compiler/tiling.py)."""
    plans = [preload_groups(op, graph, hw) for op in ops]
    halves = [p is not None and p[1] for p in plans]
    contexts, half = [], 0
    for k, plan in enumerate(plans):
        prefetched = k > 0 and halves[k] and (plans[k - 1] is None or halves[k - 1])
        contexts.append(LayerContext(first=k == 0, last=k == len(ops) - 1, halves=halves[k], half=half,
                                     prefetched=prefetched))
        if halves[k]:
            half = (half + plan[0]) % 2  # the next layer starts on the half this layer's last group left
    return [dataclasses.replace(c, prefetch_next=k + 1 < len(ops) and contexts[k + 1].prefetched)
            for k, c in enumerate(contexts)]


def _needs_own_tensor(graph: ir.Graph, name: str, hw: HwConfig) -> bool:
    readers = graph.consumers(name)
    return name in graph.outputs or not readers or any(not isinstance(op, ir.Concat) or copied_concat(op, graph, hw)
                                                       for op in readers)


def hoist_loads(b: ProgramBuilder, records: list[dict]) -> None:
    """Reorder fetch so loads dispatch as early as their tokens allow (compiler/schedule.py); the
    layer records' instruction ranges follow."""
    order = hoisted_order(b.program, b.hw.token_depth)
    b.program = [b.program[k] for k in order]
    ranges = remap_ranges(order, [tuple(r["instructions"]) for r in records])
    for r, (start, end) in zip(records, ranges, strict=True):
        r["instructions"] = [start, end]


def frame_name(name: str, frame: int) -> str:
    """The artifact name of batch frame `frame`'s copy of tensor `name` (frame 0 keeps the name)."""
    return name if frame == 0 else f"{name}@{frame}"


def lower_graph(graph: ir.Graph, hw: HwConfig, inputs: dict[str, np.ndarray], meta: dict | None = None,
                im2col: bool = True, golden: dict[str, np.ndarray] | None = None,
                progress: ir.Progress | None = None, more_frames: Sequence[dict[str, np.ndarray]] = (),
                more_golden: Sequence[dict[str, np.ndarray]] | None = None, store_graph: bool = True) -> Artifact:
    """Lower every accelerator op, compute the golden outputs, and assemble the artifact.

    `golden`: `ir.run_graph(graph, inputs)` when the caller has run it already (compile_model does, to
    report it as its own phase). `progress` is called per op lowered.

    Batch: `more_frames` are the inputs of frames 1.. (their golden values `more_golden`, else computed). The
    activation tensors of frame 0 fill DRAM [0, A); frame f's copies sit at + f·A (artifact names `NAME@f`,
    inputs and outputs). Each layer runs every frame before the next layer, each weight group's preload once
    for all frames (LayerContext.frames).

    `store_graph`: put the graph as given into the artifact (compiler.storedgraph; `simulate --input` recomputes
    the golden from it). Callers that never save the artifact may skip it (ResNet-18: 0.3 s of packing)."""
    meta = dict(meta or {})
    source = graph  # stored in the artifact as given (compiler.storedgraph): its golden is what the hardware must match
    # golden from the graph as given, before any rewrite
    values = dict(golden) if golden is not None else ir.run_graph(graph, inputs)
    frames = [dict(f) for f in more_frames]
    frame_values = [dict(v) for v in more_golden] if more_golden is not None else [ir.run_graph(graph, f)
                                                                                   for f in frames]
    if im2col:
        graph, inputs, transforms = im2col_input(graph, inputs, hw.word_bits)
        values.update(inputs)
        for k, f in enumerate(frames):
            frames[k] = im2col_input(source, f, hw.word_bits)[1]
            frame_values[k].update(frames[k])
        if transforms:
            meta["input_transforms"] = transforms
    ops, host = split_host_tail(graph)
    b = ProgramBuilder(hw)
    addrs: dict[str, int] = {}
    for name in graph.inputs:
        t = graph.tensors[name]
        addrs[name] = b.tensor(name, "planes", t.shape, t.bits, values[name]).addr
    views = _concat_views(graph, hw)
    for op in ops:
        t = graph.tensors[op.output]
        if isinstance(op, ir.Concat) or _needs_own_tensor(graph, op.output, hw):
            if t.bits == ir.INT32:
                cstride = math.ceil(t.shape[2] / hw.array_cols) * hw.array_cols
                addrs[t.name] = b.tensor(t.name, "int32", t.shape, cstride=cstride).addr
            else:
                addrs[t.name] = b.tensor(t.name, "planes", t.shape, t.bits).addr
    batch = 1 + len(frames)
    arena = -(-len(b.dram) // 64) * 64  # frame 0's activation tensors
    if batch > 1:
        b.alloc((batch - 1) * arena)  # frames 1.. at + f·arena, before any weight or constant
        for f, f_inputs in enumerate(frames, start=1):
            for name in graph.inputs:
                first = b.tensors[name]
                spec = dataclasses.replace(first, name=frame_name(name, f), addr=first.addr + f * arena)
                data = tensor_bytes(spec, f_inputs[name], hw)
                b.dram[spec.addr:spec.addr + len(data)] = data
                b.tensors[spec.name] = spec
        meta["batch"] = {"frames": batch, "frame_bytes": arena}
    records = []
    compute_ops = [op for op in ops if not isinstance(op, ir.Concat) or copied_concat(op, graph, hw)]
    contexts = [dataclasses.replace(c, frames=batch, frame_bytes=arena if batch > 1 else 0)
                for c in layer_contexts(compute_ops, graph, hw)]
    for op, ctx in ir.steps(list(zip(compute_ops, contexts, strict=True)), progress, lambda oc: oc[0].name):
        lower = LOWERINGS.get(type(op))
        if lower is None:
            raise LoweringError(f"op '{op.name}': no lowering for {type(op).__name__}")
        t = graph.tensors[op.output]
        pix = math.ceil(t.shape[2] / hw.word_bits) * t.bits
        dests = [OutDest(addrs[t.name], pix)] if t.name in addrs else []
        for concat, offset in views.get(t.name, []):
            c = graph.tensors[concat]
            dests.append(OutDest(addrs[concat], math.ceil(c.shape[2] / hw.word_bits) * c.bits, offset))
        try:
            record = lower(b, op, graph, addrs, dests, ctx)
            record["macs"] *= batch  # the layer's instructions run every frame
            records.append(record)
        except FieldRangeError as e:  # an encoding limit (a 4-bit window field, ...): name the layer, not the insn
            raise LoweringError(f"layer '{op.name}' ({type(op).__name__.lower()}, output {t.shape}) needs an "
                                f"instruction field beyond its width ({e.detail}); "
                                "the layer is too large for one instruction of this ISA") from None
    hoist_loads(b, records)
    outputs = [n for n in graph.outputs if n in addrs] + [i for h in host for i in h.inputs if i in addrs]
    outputs = list(dict.fromkeys(outputs))
    golden_out = {n: values[n] for n in outputs}
    for f, f_values in enumerate(frame_values, start=1):
        for n in outputs:
            spec = b.tensors[n]
            b.tensors[frame_name(n, f)] = dataclasses.replace(spec, name=frame_name(n, f), addr=spec.addr + f * arena)
            golden_out[frame_name(n, f)] = f_values[n]
    frame_inputs = [frame_name(n, f) for f in range(1, batch) for n in graph.inputs]
    outputs += [frame_name(n, f) for f in range(1, batch) for n in list(outputs)]
    art = b.artifact(inputs=[*graph.inputs, *frame_inputs], outputs=outputs, golden=golden_out,
                     layers=[LayerRecord.from_dict(r, f"layer '{r['name']}'", len(b.program)) for r in records],
                     meta=meta)
    art.host_ops = [{"name": h.name, "inputs": h.inputs, "output": h.output, "reason": h.reason} for h in host]
    if store_graph:
        art.graph = to_stored(source, split_host_tail(source)[0], outputs[:len(outputs) // batch], im2col)
    return art
