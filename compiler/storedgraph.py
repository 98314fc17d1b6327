"""The integer IR graph as artifact data (isa.artifact.StoredGraph) and back.

Why: the golden outputs are `ir.run_graph` on this graph; storing it (JSON structure + plain arrays, never
pickle) lets `bitbranch simulate DIR --input IMAGE` recompute them for a new image from the artifact alone.
Only the accelerator's ops are stored: host ops (torch callables) run after the golden outputs anyway.

Structure (graph.json): {"tensors": {name: {"shape", "bits", "scale", "zero"}}, "inputs", "outputs",
"im2col": whether lowering rewrote the input into patches, "ops": [{"kind", "name", "inputs", "output",
<scalar fields>, <array fields as array names>, "requant": {...}}]}. Weights are packed at their own width:
an odd M-bit code w as its level index (w + 2^M - 1)/2 in M bits, a ternary one as w + 1 in 2 bits
(PackedWeights: a 2-bit weight costs 2 bits, not the 64 of the IR's int64); other integer arrays are stored
in the narrowest dtype holding them.
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
POSITIVE = {"mbits", "stride", "dil", "groups", "kernel", "factor"}  # the other integer fields are >= 0
POOL_MODES = ("max", "avg")


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


CHECKS: dict[str, Callable[[object], bool]] = {
    "int": _is_int, "int?": lambda x: x is None or _is_int(x), "bool": lambda x: isinstance(x, bool),
    "str": lambda x: isinstance(x, str), "number": lambda x: isinstance(x, numbers.Real) and not isinstance(x, bool),
    "pair": lambda x: isinstance(x, list) and len(x) == 2 and all(_is_int(i) and i >= 0 for i in x),
}


@dataclass(frozen=True)
class PackedWeights:
    """How a convolution's weights sit in their packed array: `bits` per value, little-endian bit order, values in
    row-major order of `shape`; `code` "odd" (w = 2u − (2^bits − 1)) or "ternary" (w = u − 1, u <= 2)."""

    code: str
    bits: int
    shape: tuple[int, ...]

    @classmethod
    def of(cls, op: ir.Conv) -> PackedWeights | None:
        """The packing of `op`'s weights, or None when they are not the codes its fields promise (stored plain)."""
        w = op.weights
        if op.ternary:
            ok, spec = bool(np.isin(w, (-1, 0, 1)).all()), cls("ternary", 2, w.shape)
        else:
            top = (1 << op.mbits) - 1
            ok, spec = bool(1 <= op.mbits <= 8 and (w % 2 != 0).all() and (np.abs(w) <= top).all()), cls(
                "odd", op.mbits, w.shape)
        return spec if ok else None

    def levels(self, w: np.ndarray) -> np.ndarray:
        return (w + 1 if self.code == "ternary" else (w + (1 << self.bits) - 1) // 2).astype(np.uint8)

    def pack(self, w: np.ndarray) -> np.ndarray:
        u = self.levels(np.asarray(w, dtype=np.int64)).reshape(-1)
        planes = (u[:, None] >> np.arange(self.bits, dtype=np.uint8)) & 1
        return np.packbits(planes.reshape(-1), bitorder="little")

    def nbytes(self) -> int:
        return -(-int(np.prod(self.shape)) * self.bits // 8)

    def unpack(self, packed: np.ndarray) -> np.ndarray:
        n = int(np.prod(self.shape))
        planes = np.unpackbits(packed, count=n * self.bits, bitorder="little").reshape(n, self.bits)
        u = planes.astype(np.int64) @ (1 << np.arange(self.bits, dtype=np.int64))
        w = u - 1 if self.code == "ternary" else 2 * u - ((1 << self.bits) - 1)
        return w.reshape(self.shape)


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
        arrays[key] = value if value.dtype == np.uint8 else _narrow(value)  # packed weights stay bytes
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
        packing = PackedWeights.of(op)
        if packing is None:
            d["weights"] = array(f"{key}.weights", op.weights)
        else:
            d["weights"] = {"packed": array(f"{key}.weights", packing.pack(op.weights)), "code": packing.code,
                            "bits": packing.bits, "shape": list(packing.shape)}
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
        if not CHECKS[check](v):
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
    if not isinstance(inputs, list) or not inputs or any(not isinstance(i, str) or i not in known for i in inputs):
        raise r.fail(where, f"field 'inputs'={inputs!r}: every input must be a graph input or an earlier op's output")
    output = d.get("output")
    if not isinstance(output, str) or output not in tensors or output in known:
        raise r.fail(where, f"field 'output'={output!r} is not a tensor of the graph produced once")
    fields = {f: r.field(d, f, check, where) for f, check in SCALARS[kind].items()}
    for f, v in fields.items():
        if _is_int(v) and v < (1 if f in POSITIVE else 0):
            raise r.fail(where, f"field '{f}'={v} must be >= {1 if f in POSITIVE else 0}")
    if kind == "pool" and fields["mode"] not in POOL_MODES:
        raise r.fail(where, f"field 'mode'={fields['mode']!r} is not one of {', '.join(POOL_MODES)}")
    cout = tensors[output].shape[2]
    if kind == "conv":
        cin = tensors[inputs[0]].shape[2]
        groups = fields["groups"]
        if groups < 1 or cin % groups or cout % groups:
            raise r.fail(where, f"field 'groups'={groups} does not divide {cin} input and {cout} output channels")
        fields["weights"] = _weights(r, d, where, cout, cin // groups)
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


def _weights(r: _Reader, d: dict, where: str, cout: int, cin: int) -> np.ndarray:
    """A convolution's (Cout, Cin/groups, kh, kw) int64 weights, packed (PackedWeights) or a plain array."""
    w = d.get("weights")
    if not isinstance(w, dict):  # a plain integer array
        a = r.stored.arrays.get(w) if isinstance(w, str) else None
        kernel = a.shape[2:] if a is not None and a.ndim == 4 else (1, 1)
        return r.array(d, "weights", where, ((cout, cin, *kernel),))
    where = f"{where} weights"
    code, bits = r.field(w, "code", "str", where), r.field(w, "bits", "int", where)
    shape = w.get("shape")
    if code not in ("odd", "ternary") or not 1 <= bits <= 8 or (code == "ternary" and bits != 2):
        raise r.fail(where, f"fields 'code'={code!r}, 'bits'={bits} are not odd 1..8 or ternary 2")
    if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(s, int) and s > 0 for s in shape)
            and shape[:2] == [cout, cin]):
        raise r.fail(where, f"field 'shape'={shape!r} is not ({cout}, {cin}, kh, kw)")
    packing = PackedWeights(code, bits, tuple(shape))
    packed = r.stored.arrays.get(w.get("packed")) if isinstance(w.get("packed"), str) else None
    if packed is None or packed.dtype != np.uint8 or packed.shape != (packing.nbytes(),):
        got = "no array" if packed is None else f"{packed.dtype} {packed.shape}"
        raise r.fail(where, f"field 'packed'={w.get('packed')!r}: {got}, expected uint8 ({packing.nbytes()},) "
                            f"for {'x'.join(map(str, shape))} {bits}-bit codes")
    values = packing.unpack(packed)
    if code == "ternary" and (values > 1).any():
        raise r.fail(where, "a ternary weight's level is 3 (only 0, 1, 2 are -1, 0, +1)")
    return values


def _requant(r: _Reader, d: object, where: str, cout: int) -> ir.Requant:
    if not isinstance(d, dict):
        raise r.fail(where, "not an object")
    shapes = ((cout,), ())
    scalars = {f: r.field(d, f, check, where) for f, check in REQUANT_SCALARS.items()}
    rmul = r.array(d, "rmul", where, shapes) if "rmul" in d else None
    return ir.Requant(r.array(d, "mul", where, shapes), r.array(d, "bias", where, shapes), rmul=rmul, **scalars)
