"""The integer IR graph as artifact data (isa.artifact.StoredGraph) and back.

Why: the golden outputs are `ir.run_graph` on this graph; storing it (JSON structure + plain arrays, never
pickle) lets `bitbranch simulate DIR --input IMAGE` recompute them for a new image from the artifact alone.
Only the accelerator's ops are stored: host ops (torch callables) run after the golden outputs anyway.

Structure (graph.json): {"tensors": {name: {"shape", "bits", "scale", "zero"}}, "inputs", "outputs",
"im2col": whether lowering rewrote the input into patches, "ops": [{"kind", "name", "inputs", "output",
<scalar fields>, <array fields as array names>, "requant": {...}}]}. Weights are stored in the narrowest
integer dtype that holds them (odd 2-bit codes: int8) and widened back to int64 on load.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bitbranch.isa.artifact import ArtifactError, StoredGraph

from . import ir

KINDS: dict[str, type[ir.Op]] = {"conv": ir.Conv, "pool": ir.Pool, "add": ir.Add, "concat": ir.Concat,
                                 "upsample": ir.Upsample}
# scalar fields of each kind (name -> check); "requant", "edge" and "weights" are handled on their own
SCALARS: dict[str, dict[str, str]] = {
    "conv": {"mbits": "int", "ternary": "bool", "stride": "int", "pad": "int", "dil": "int", "groups": "int",
             "pad_w": "int?"},
    "pool": {"mode": "str", "kernel": "int", "stride": "int", "pad": "int", "kernel_w": "int", "extra": "pair"},
    "add": {}, "concat": {}, "upsample": {"factor": "int"},
}
REQUANT_SCALARS = {"shift": "int", "lo": "int", "hi": "int", "out_int32": "bool"}
EDGE_REGIONS = ("col", "row", "corner")


def _narrow(a: np.ndarray) -> np.ndarray:
    """An integer array in the smallest signed dtype holding it exactly (2-bit codes: 1 byte, not 8)."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    dtype = next(t for t in (np.int8, np.int16, np.int32, np.int64) if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)
    return a.astype(dtype)


# --- IR -> data --------------------------------------------------------------------------------------


def to_stored(graph: ir.Graph, ops: list[ir.Op], outputs: list[str], im2col: bool) -> StoredGraph:
    """`ops` of `graph` (its accelerator part, in order) producing `outputs` from the graph's inputs."""
    arrays: dict[str, np.ndarray] = {}

    def array(key: str, value: np.ndarray) -> str:
        arrays[key] = _narrow(value)
        return key

    used = set(graph.inputs) | {t for op in ops for t in (*op.inputs, op.output)}
    spec = {
        "tensors": {n: {"shape": list(t.shape), "bits": t.bits, "scale": float(t.scale), "zero": float(t.zero)}
                    for n, t in graph.tensors.items() if n in used},
        "inputs": list(graph.inputs), "outputs": list(outputs), "im2col": bool(im2col),
        "ops": [_op_spec(op, f"op{k}", array) for k, op in enumerate(ops)],
    }
    return StoredGraph(spec, arrays)


def _op_spec(op: ir.Op, key: str, array: Callable[[str, np.ndarray], str]) -> dict:
    kind = next((k for k, cls in KINDS.items() if type(op) is cls), None)
    if kind is None:
        raise TypeError(f"op '{op.name}': {type(op).__name__} cannot be stored (not an accelerator op)")
    d: dict = {"kind": kind, "name": op.name, "inputs": list(op.inputs), "output": op.output}
    for f in SCALARS[kind]:
        v = getattr(op, f)
        d[f] = list(v) if isinstance(v, tuple) else v
    if isinstance(op, ir.Conv):
        d["weights"] = array(f"{key}.weights", op.weights)
    if getattr(op, "requant", None) is not None:
        d["requant"] = _requant_spec(op.requant, f"{key}.requant", array)
    if getattr(op, "edge", None):
        d["edge"] = {r: _requant_spec(rq, f"{key}.edge.{r}", array) for r, rq in op.edge.items()}
    return d


def _requant_spec(rq: ir.Requant, key: str, array: Callable[[str, np.ndarray], str]) -> dict:
    d = {f: getattr(rq, f) for f in REQUANT_SCALARS}
    d.update(mul=array(f"{key}.mul", rq.mul), bias=array(f"{key}.bias", rq.bias))
    if rq.rmul is not None:
        d["rmul"] = array(f"{key}.rmul", rq.rmul)
    return d


# --- data -> IR --------------------------------------------------------------------------------------


@dataclass
class _Reader:
    """Checked access to a stored graph: every error names the file, the entry and the field."""

    stored: StoredGraph
    source: str  # e.g. "DIR/graph.json"

    def fail(self, where: str, text: str) -> ArtifactError:
        return ArtifactError(f"{self.source}: {where}: {text}")

    def field(self, d: dict, name: str, check: str, where: str):
        if name not in d:
            if check.endswith("?"):
                return None
            raise self.fail(where, f"missing field '{name}'")
        v = d[name]
        ok = {"int": lambda x: isinstance(x, numbers.Integral) and not isinstance(x, bool),
              "int?": lambda x: x is None or (isinstance(x, numbers.Integral) and not isinstance(x, bool)),
              "bool": lambda x: isinstance(x, bool), "str": lambda x: isinstance(x, str),
              "number": lambda x: isinstance(x, numbers.Real) and not isinstance(x, bool),
              "pair": lambda x: isinstance(x, list) and len(x) == 2 and all(
                  isinstance(i, int) and not isinstance(i, bool) for i in x)}[check](v)
        if not ok:
            raise self.fail(where, f"field '{name}'={v!r} is not {check.rstrip('?')}")
        return tuple(v) if check == "pair" else v

    def array(self, d: dict, name: str, where: str, shapes: tuple[tuple[int, ...], ...]) -> np.ndarray:
        key = d.get(name)
        if not isinstance(key, str) or key not in self.stored.arrays:
            raise self.fail(where, f"field '{name}'={key!r} names no array of the graph")
        a = self.stored.arrays[key]
        if a.dtype.kind not in "iu" or a.shape not in shapes:
            raise self.fail(where, f"field '{name}': array '{key}' is {a.dtype} {a.shape}, expected integers of shape "
                                   + " or ".join(str(s) for s in shapes))
        return a.astype(np.int64)


def from_stored(stored: StoredGraph, source: str) -> ir.Graph:
    """The IR graph of `stored`, every field checked (kinds, types, tensor names in topological order, array
    shapes against the tensors they produce); `source` names the file in errors."""
    r = _Reader(stored, source)
    spec = stored.spec
    for key, kind in (("tensors", dict), ("ops", list), ("inputs", list), ("outputs", list)):
        if not isinstance(spec.get(key), kind):
            raise r.fail("graph", f"field '{key}' missing or not a{'n object' if kind is dict else ' list'}")
    tensors = {n: _tensor(r, n, d) for n, d in spec["tensors"].items()}
    known = set(_names(r, spec["inputs"], tensors, "field 'inputs'"))
    ops = []
    for k, d in enumerate(spec["ops"]):
        op = _op(r, d, f"ops[{k}]", tensors, known)
        known.add(op.output)
        ops.append(op)
    outputs = _names(r, spec["outputs"], tensors, "field 'outputs'")
    if missing := [n for n in outputs if n not in known]:
        raise r.fail("field 'outputs'", f"tensor '{missing[0]}' is computed by no op")
    return ir.Graph(tensors, ops, list(spec["inputs"]), outputs, {"im2col": bool(spec.get("im2col", True))})


def _tensor(r: _Reader, name: str, d: object) -> ir.Tensor:
    where = f"tensors['{name}']"
    if not isinstance(d, dict):
        raise r.fail(where, "not an object")
    shape = d.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) and s > 0 for s in shape)):
        raise r.fail(where, f"field 'shape'={shape!r} is not (H, W, C) positive integers")
    bits = r.field(d, "bits", "int", where)
    if not (1 <= bits <= 8 or bits == ir.INT32):
        raise r.fail(where, f"field 'bits'={bits} is not 1..8 or 32")
    return ir.Tensor(name, tuple(shape), bits, float(r.field(d, "scale", "number", where)),
                     float(r.field(d, "zero", "number", where)))


def _names(r: _Reader, names: list, tensors: dict, where: str) -> list[str]:
    for n in names:
        if not isinstance(n, str) or n not in tensors:
            raise r.fail(where, f"{n!r} is not a tensor of the graph")
    return list(names)


def _op(r: _Reader, d: object, where: str, tensors: dict[str, ir.Tensor], known: set[str]) -> ir.Op:
    if not isinstance(d, dict) or d.get("kind") not in KINDS:
        raise r.fail(where, f"field 'kind' must be one of {', '.join(KINDS)}")
    kind, name = d["kind"], r.field(d, "name", "str", where)
    where = f"{where} ('{name}')"
    inputs = d.get("inputs")
    if not isinstance(inputs, list) or not inputs or any(i not in known for i in inputs):
        raise r.fail(where, f"field 'inputs'={inputs!r}: every input must be a graph input or an earlier op's output")
    output = d.get("output")
    if output not in tensors or output in known:
        raise r.fail(where, f"field 'output'={output!r} is not a tensor of the graph produced once")
    fields = {f: r.field(d, f, check, where) for f, check in SCALARS[kind].items()}
    fields = {f: v for f, v in fields.items() if v is not None or f == "pad_w"}
    cout = tensors[output].shape[2]
    if kind == "conv":
        cin = tensors[inputs[0]].shape[2]
        groups = fields["groups"]
        if groups < 1 or cin % groups or cout % groups:
            raise r.fail(where, f"field 'groups'={groups} does not divide {cin} input and {cout} output channels")
        w = r.array(d, "weights", where, tuple((cout, cin // groups, kh, kw) for kh, kw in [_kernel(r, d, where)]))
        fields["weights"] = w
    if "requant" in d:
        fields["requant"] = _requant(r, d["requant"], f"{where} requant", cout)
    elif kind in ("conv", "add") or (kind == "pool" and fields.get("mode") == "avg"):
        raise r.fail(where, "missing field 'requant'")
    if "edge" in d:
        edge = d["edge"]
        if not isinstance(edge, dict) or any(k not in EDGE_REGIONS for k in edge):
            raise r.fail(where, f"field 'edge' must map {', '.join(EDGE_REGIONS)} to requantizations")
        fields["edge"] = {k: _requant(r, v, f"{where} edge.{k}", cout) for k, v in edge.items()}
    return KINDS[kind](name, list(inputs), output, **fields)


def _kernel(r: _Reader, d: dict, where: str) -> tuple[int, int]:
    """(kh, kw) as stored in the weights' own shape (checked against Cout and Cin/groups by the caller)."""
    key = d.get("weights")
    a = r.stored.arrays.get(key) if isinstance(key, str) else None
    if a is None or a.ndim != 4:
        raise r.fail(where, f"field 'weights'={key!r} names no (Cout, Cin/groups, kh, kw) array of the graph")
    return a.shape[2], a.shape[3]


def _requant(r: _Reader, d: object, where: str, cout: int) -> ir.Requant:
    if not isinstance(d, dict):
        raise r.fail(where, "not an object")
    shapes = ((cout,), ())
    scalars = {f: r.field(d, f, check, where) for f, check in REQUANT_SCALARS.items()}
    rmul = r.array(d, "rmul", where, shapes) if "rmul" in d else None
    return ir.Requant(r.array(d, "mul", where, shapes), r.array(d, "bias", where, shapes), rmul=rmul, **scalars)
