"""The program artifact: what the compiler writes and the simulator and RTL bench read, unchanged.

A directory holding
    manifest.json   format/version, hardware config, tensors (DRAM address, layout, shape), inputs,
                    outputs, golden files, layer map, host-side ops, free-form metadata
    program.bin     the instruction binary (isa.encoding file format)
    dram.bin        the initial DRAM image (weights, constants, input)
    golden/*.npy    expected output tensors from the integer reference model
    graph.json      (optional) the integer reference graph's structure: tensors, ops, inputs, outputs, and the
                    dtype and shape of every array it uses; its meaning belongs to the compiler
                    (compiler.storedgraph), so `simulate --input` can recompute the golden for a new image
    graph.npz       (optional) those arrays (weights as odd codes, requantization constants), one member each

Artifacts are data that users share, so loading one never runs code: JSON only, numpy files with
allow_pickle=False, and every size, offset and digest in the manifest is checked against the files
before anything is used.

Tensor layouts in DRAM:
    planes  levels of shape (H, W, C) with `bits` planes, stored [H][W][ceil(C/Wb)][bits] as
            Wb-bit words (Wb = hw.word_bits, little-endian, channel c at bit c mod Wb of word c // Wb);
            channels past C in the last word are 0 (level 0).
    int32   little-endian int32, row-major, any shape; with `cstride` the last axis is padded to cstride
            values in memory (accelerator outputs come in whole C-lane column tiles).
    raw     bytes (uint8), any shape.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .encoding import Instruction, decode_program, encode_program
from .errors import IsaError
from .hwconfig import ConfigError, HwConfig

FORMAT = "bitbranch-artifact"
VERSION = 1
LAYOUTS = ("planes", "int32", "raw")


class ArtifactError(IsaError):
    """An artifact directory is missing files or its manifest disagrees with them."""


@dataclass(frozen=True)
class TensorSpec:
    """Where and how a named tensor lives in DRAM."""

    name: str
    addr: int
    layout: str
    shape: tuple[int, ...]
    bits: int = 0  # planes only
    cstride: int = 0  # int32 only: values per pixel in memory when the last axis is padded (0: none)

    def nbytes(self, hw: HwConfig) -> int:
        if self.layout == "planes":
            h, w, c = self.shape
            return h * w * math.ceil(c / hw.word_bits) * self.bits * (hw.word_bits // 8)
        size = math.prod(self.memory_shape)
        return size * 4 if self.layout == "int32" else size

    @property
    def memory_shape(self) -> tuple[int, ...]:
        return (*self.shape[:-1], self.cstride) if self.cstride else self.shape

    def to_dict(self) -> dict:
        d = {"addr": self.addr, "layout": self.layout, "shape": list(self.shape)}
        if self.layout == "planes":
            d["bits"] = self.bits
        if self.cstride:
            d["cstride"] = self.cstride
        return d

    @classmethod
    def from_dict(cls, name: str, d: dict, source: str) -> TensorSpec:
        where = f"{source}: tensor '{name}'"
        try:
            spec = cls(name, int(d["addr"]), str(d["layout"]), tuple(int(s) for s in d["shape"]), int(d.get("bits", 0)),
                       int(d.get("cstride", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{where}: malformed entry ({exc!r})") from None
        if spec.layout not in LAYOUTS:
            raise ArtifactError(f"{where}: field 'layout'={spec.layout!r} not one of {LAYOUTS}")
        if spec.addr < 0 or any(s <= 0 for s in spec.shape):
            raise ArtifactError(f"{where}: negative address or non-positive shape {spec.shape}")
        if spec.layout == "planes" and (len(spec.shape) != 3 or not 1 <= spec.bits <= 8):
            raise ArtifactError(f"{where}: planes need shape (H, W, C) and bits 1..8, got {spec.shape}, {spec.bits}")
        if spec.cstride and (spec.layout != "int32" or spec.cstride < spec.shape[-1]):
            raise ArtifactError(f"{where}: field 'cstride'={spec.cstride} needs layout int32 and >= {spec.shape[-1]}")
        return spec


@dataclass(frozen=True)
class LayerBits:
    """Bit widths of a layer: input and output activation planes, weight planes (None: no weights)."""

    a_in: int
    a_out: int
    w: int | None = None
    ternary: bool = False


@dataclass(frozen=True)
class LayerRecord:
    """One layer of the manifest's layer map: which instructions compute it and what it computes.

    `macs` are the useful multiply-accumulates (0 for layers without weights), `weight_bits` the packed
    weight size; `detail` holds what only some kinds have (kernel, stride, pad, residual, groups, chunks,
    conv_groups, bgemm_passes, factor), for reports and tests."""

    name: str
    kind: str
    instructions: tuple[int, int]  # [first, end) instruction indices
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    bits: LayerBits
    tiles: int
    tile_rows: int
    tile_cols: int
    macs: int = 0
    weight_bits: int = 0
    detail: dict = field(default_factory=dict)

    COMMON = ("name", "kind", "instructions", "in_shape", "out_shape", "bits", "tiles", "tile_rows", "tile_cols",
              "macs", "weight_bits")

    def to_dict(self) -> dict:
        bits = {"a_in": self.bits.a_in, "a_out": self.bits.a_out}
        if self.bits.w is not None:
            bits.update(w=self.bits.w, ternary=self.bits.ternary)
        return {"name": self.name, "kind": self.kind, "instructions": list(self.instructions),
                "in_shape": list(self.in_shape), "out_shape": list(self.out_shape), "bits": bits, "tiles": self.tiles,
                "tile_rows": self.tile_rows, "tile_cols": self.tile_cols, "macs": self.macs,
                "weight_bits": self.weight_bits, **self.detail}

    @classmethod
    def from_dict(cls, d: dict, source: str, n_instructions: int | None = None) -> LayerRecord:
        """A checked record; `source` names where it came from (file and index) in every error."""
        if not isinstance(d, dict):
            raise ArtifactError(f"{source}: a layer record must be an object, not {type(d).__name__}")
        where = f"{source} ('{d.get('name', '?')}')"
        missing = [k for k in cls.COMMON[:9] if k not in d]
        if missing:
            raise ArtifactError(f"{where}: missing field(s) {', '.join(missing)}")
        try:
            bits = d["bits"]
            rec = cls(
                name=_typed(d["name"], str, where, "name"), kind=_typed(d["kind"], str, where, "kind"),
                instructions=tuple(_int(v, where, "instructions") for v in d["instructions"]),
                in_shape=tuple(_int(v, where, "in_shape") for v in d["in_shape"]),
                out_shape=tuple(_int(v, where, "out_shape") for v in d["out_shape"]),
                bits=LayerBits(_int(bits["a_in"], where, "bits.a_in"), _int(bits["a_out"], where, "bits.a_out"),
                               None if bits.get("w") is None else _int(bits["w"], where, "bits.w"),
                               bool(_typed(bits.get("ternary", False), bool | np.bool_, where, "bits.ternary"))),
                tiles=_int(d["tiles"], where, "tiles"), tile_rows=_int(d["tile_rows"], where, "tile_rows"),
                tile_cols=_int(d["tile_cols"], where, "tile_cols"), macs=_int(d.get("macs", 0), where, "macs"),
                weight_bits=_int(d.get("weight_bits", 0), where, "weight_bits"),
                detail={k: v for k, v in d.items() if k not in cls.COMMON},
            )
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"{where}: malformed field ({exc!r})") from None
        first_end = rec.instructions
        if len(first_end) != 2 or not 0 <= first_end[0] <= first_end[1] or (
                n_instructions is not None and first_end[1] > n_instructions):
            raise ArtifactError(f"{where}: field 'instructions'={list(first_end)} is not a range [first, end) of the "
                                f"program's {n_instructions} instructions")
        if min(rec.macs, rec.weight_bits, rec.tiles) < 0:
            raise ArtifactError(f"{where}: negative macs, weight_bits or tiles")
        return rec


def _typed(value, kind, where: str, name: str):
    if not isinstance(value, kind):
        raise ArtifactError(f"{where}: field '{name}'={value!r} is not a {getattr(kind, '__name__', kind)}")
    return value


def _int(value, where: str, name: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise ArtifactError(f"{where}: field '{name}'={value!r} is not an integer")
    return int(value)


# --- tensor <-> DRAM bytes ----------------------------------------------------------------------


def pack_plane_tensor(levels: np.ndarray, bits: int, word_bits: int) -> bytes:
    """(H, W, C) levels -> [H][W][CW][bits] little-endian word bytes."""
    levels = np.asarray(levels)
    if levels.ndim != 3:
        raise ValueError(f"plane tensors are (H, W, C); got shape {levels.shape}")
    if levels.size and (levels.min() < 0 or levels.max() >= 1 << bits):
        raise ValueError(f"levels outside 0..{(1 << bits) - 1} for a {bits}-bit tensor")
    h, w, c = levels.shape
    cw = math.ceil(c / word_bits)
    padded = np.zeros((h, w, cw * word_bits), dtype=np.uint8)
    padded[:, :, :c] = levels
    out = np.empty((h, w, cw, bits, word_bits // 8), dtype=np.uint8)
    for i in range(bits):  # one plane at a time: ~3x faster than packing a (bits x) bit array at once
        out[:, :, :, i, :] = np.packbits((padded >> i) & 1, axis=-1, bitorder="little").reshape(h, w, cw, -1)
    return out.tobytes()


def unpack_plane_tensor(data: bytes | np.ndarray, shape: tuple[int, int, int], bits: int, word_bits: int) -> np.ndarray:
    h, w, c = shape
    cw = math.ceil(c / word_bits)
    raw = np.frombuffer(bytes(data), dtype=np.uint8).reshape(h, w, cw, bits, word_bits // 8)
    planes = np.unpackbits(raw, axis=-1, bitorder="little")  # h,w,cw,bits,Wb
    weights = (1 << np.arange(bits, dtype=np.int64))[None, None, None, :, None]
    levels = (planes.astype(np.int64) * weights).sum(axis=3).reshape(h, w, cw * word_bits)
    return levels[:, :, :c].astype(np.uint8)


def tensor_bytes(spec: TensorSpec, value: np.ndarray, hw: HwConfig) -> bytes:
    value = np.asarray(value)
    if tuple(value.shape) != spec.shape:
        raise ValueError(f"tensor '{spec.name}': value shape {value.shape} != manifest shape {spec.shape}")
    if spec.layout == "planes":
        return pack_plane_tensor(value, spec.bits, hw.word_bits)
    if spec.layout == "int32":
        padded = np.zeros(spec.memory_shape, dtype="<i4")
        padded[..., : spec.shape[-1]] = value
        return padded.tobytes()
    return value.astype(np.uint8).tobytes()


def read_tensor(dram: bytes | np.ndarray, spec: TensorSpec, hw: HwConfig) -> np.ndarray:
    raw = bytes(memoryview(dram)[spec.addr : spec.addr + spec.nbytes(hw)])
    if len(raw) != spec.nbytes(hw):
        raise ArtifactError(f"tensor '{spec.name}' at {spec.addr}+{spec.nbytes(hw)} lies beyond the DRAM image")
    if spec.layout == "planes":
        return unpack_plane_tensor(raw, spec.shape, spec.bits, hw.word_bits)
    if spec.layout == "int32":
        return np.frombuffer(raw, dtype="<i4").reshape(spec.memory_shape)[..., : spec.shape[-1]].astype(np.int32)
    return np.frombuffer(raw, dtype=np.uint8).reshape(spec.shape).copy()


def write_tensor(dram: bytearray, spec: TensorSpec, value: np.ndarray, hw: HwConfig) -> None:
    data = tensor_bytes(spec, value, hw)
    if spec.addr + len(data) > len(dram):
        raise ArtifactError(f"tensor '{spec.name}' at {spec.addr}+{len(data)} lies beyond the DRAM image ({len(dram)})")
    dram[spec.addr : spec.addr + len(data)] = data


# --- the artifact -------------------------------------------------------------------------------


@dataclass
class StoredGraph:
    """The integer reference graph as data: `spec` is JSON (the compiler's structure; `spec["arrays"]` declares
    each array's dtype and shape) and `arrays` its numpy arrays. This package stores and checks it; only the
    compiler gives it meaning (compiler.storedgraph), so the simulator never needs the compiler."""

    spec: dict
    arrays: dict[str, np.ndarray]


GRAPH_FILES = {"graph": "graph.json", "graph_arrays": "graph.npz"}  # manifest key -> file name
ARRAY_KINDS = "biuf"  # numpy dtype kinds a stored graph may hold: bool, int, uint, float (never object)


class NoStoredGraph(ArtifactError):
    """The artifact was written before artifacts stored their reference graph (or by a producer without one)."""


@dataclass
class Artifact:
    """An artifact in memory. `golden` maps output names to expected arrays."""

    hw: HwConfig
    program: list[Instruction]
    dram: bytes
    tensors: dict[str, TensorSpec]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    golden: dict[str, np.ndarray] = field(default_factory=dict)
    layers: list[LayerRecord] = field(default_factory=list)
    host_ops: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    graph: StoredGraph | None = None  # in memory: what the compiler made, or what load_graph read
    graph_files: dict = field(default_factory=dict)  # a loaded artifact's manifest entries of GRAPH_FILES

    def output(self, dram: bytes | np.ndarray, name: str) -> np.ndarray:
        return read_tensor(dram, self.tensors[name], self.hw)

    def outputs_from(self, dram: bytes | np.ndarray) -> dict[str, np.ndarray]:
        return {name: self.output(dram, name) for name in self.outputs}

    def compare_golden(self, dram: bytes | np.ndarray) -> dict[str, bool]:
        """Per output: True when the DRAM image holds exactly the golden values."""
        result = {}
        for name, want in self.golden.items():
            got = self.output(dram, name)
            result[name] = got.shape == want.shape and bool(np.array_equal(got.astype(np.int64), want.astype(np.int64)))
        return result


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_artifact(art: Artifact, directory: str | Path) -> Path:
    out = Path(directory)
    (out / "golden").mkdir(parents=True, exist_ok=True)
    program = encode_program(art.program)
    (out / "program.bin").write_bytes(program)
    (out / "dram.bin").write_bytes(art.dram)
    golden_files = {}
    for name, value in art.golden.items():
        rel = f"golden/{name}.npy"
        np.save(out / rel, np.asarray(value), allow_pickle=False)
        golden_files[name] = rel
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "hw": art.hw.to_dict(),
        "program": {"file": "program.bin", "instructions": len(art.program), "sha256": _sha256(program)},
        "dram": {"file": "dram.bin", "bytes": len(art.dram), "sha256": _sha256(art.dram)},
        "tensors": {name: spec.to_dict() for name, spec in art.tensors.items()},
        "inputs": art.inputs,
        "outputs": art.outputs,
        "golden": golden_files,
        "layers": [r.to_dict() for r in art.layers],
        "host_ops": art.host_ops,
        "meta": art.meta,
    }
    if art.graph is not None:
        manifest.update(_save_graph(art.graph, out))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    art.path = out
    return out


def _save_graph(graph: StoredGraph, out: Path) -> dict:
    """Write graph.json and graph.npz (compressed: most weights are 2-bit codes); their manifest entries."""
    declared = {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in graph.arrays.items()}
    spec = {**graph.spec, "arrays": declared}
    text = (json.dumps(spec, separators=(",", ":")) + "\n").encode()
    (out / GRAPH_FILES["graph"]).write_bytes(text)
    _write_npz(out / GRAPH_FILES["graph_arrays"], graph.arrays)
    data = (out / GRAPH_FILES["graph_arrays"]).read_bytes()
    return {key: {"file": name, "bytes": len(blob), "sha256": _sha256(blob)}
            for (key, name), blob in zip(GRAPH_FILES.items(), (text, data), strict=True)}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed with fixed entry timestamps (the same graph always gives the same bytes and digest) and
    the fastest deflate level (packed weights hardly compress; ResNet-18: level 6 took 8x as long for 10%)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)


def _check_graph_entries(base: Path, manifest: dict) -> dict:
    """The manifest's graph entries, when present: both, each naming a file of the artifact with its byte count
    (contents and digests are checked when the graph is read: load_graph)."""
    mpath = base / "manifest.json"
    present = [k for k in GRAPH_FILES if k in manifest]
    if not present:
        return {}
    if len(present) != len(GRAPH_FILES):
        missing = next(k for k in GRAPH_FILES if k not in manifest)
        raise ArtifactError(f"{mpath}: field '{present[0]}' without field '{missing}'")
    for key in GRAPH_FILES:
        entry = manifest[key]
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ArtifactError(f"{mpath}: field '{key}': missing field 'file'")
        path = (base / entry["file"]).resolve()
        if base.resolve() not in path.parents or not path.is_file():
            raise ArtifactError(f"{mpath}: field '{key}': file {entry['file']!r} missing or outside the artifact")
        if entry.get("bytes") != path.stat().st_size:
            raise ArtifactError(f"{mpath}: field '{key}.bytes'={entry.get('bytes')} but {path.name} has "
                                f"{path.stat().st_size} bytes")
    return {k: dict(manifest[k]) for k in GRAPH_FILES}


def load_graph(art: Artifact) -> StoredGraph:
    """The artifact's reference graph, read on first use and checked: digests and sizes against the manifest,
    JSON structure, every declared array present in graph.npz with its dtype and shape (no pickle)."""
    if art.graph is not None:
        return art.graph
    if not art.graph_files or art.path is None:
        raise NoStoredGraph(f"{art.path or 'the artifact'}: the artifact predates stored reference graphs (no "
                            "'graph' in manifest.json), so its golden cannot be recomputed for a new input: "
                            "recompile the model with this version of bitbranch")
    base = Path(art.path)
    text = _read_checked(base, art.graph_files["graph"], "field 'graph'", "bytes")
    blob_path = base / art.graph_files["graph_arrays"]["file"]
    _read_checked(base, art.graph_files["graph_arrays"], "field 'graph_arrays'", "bytes")
    jpath = base / art.graph_files["graph"]["file"]
    try:
        spec = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{jpath}: not valid JSON: {exc}") from None
    declared = _declared_arrays(spec, jpath)
    art.graph = StoredGraph(spec, _load_arrays(blob_path, declared, jpath.name))
    return art.graph


def _declared_arrays(spec: object, jpath: Path) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    if not isinstance(spec, dict) or not isinstance(spec.get("arrays"), dict):
        raise ArtifactError(f"{jpath}: missing field 'arrays' (an object: name -> dtype and shape)")
    declared = {}
    for name, d in spec["arrays"].items():
        where = f"{jpath}: field 'arrays.{name}'"
        if not isinstance(d, dict) or not isinstance(d.get("shape"), list) or not isinstance(d.get("dtype"), str):
            raise ArtifactError(f"{where}: needs 'dtype' (a numpy dtype string) and 'shape' (a list of integers)")
        shape = tuple(_int(s, where, "shape") for s in d["shape"])
        try:
            dtype = np.dtype(d["dtype"])
        except TypeError:
            raise ArtifactError(f"{where}: field 'dtype'={d.get('dtype')!r} is not a numpy dtype") from None
        if dtype.kind not in ARRAY_KINDS or min(shape, default=0) < 0:
            raise ArtifactError(f"{where}: dtype {dtype} / shape {shape} is not a plain numeric array")
        declared[name] = (dtype, shape)
    return declared


def _load_arrays(path: Path, declared: dict[str, tuple[np.dtype, tuple[int, ...]]], json_name: str
                 ) -> dict[str, np.ndarray]:
    """graph.npz's members, exactly those declared, each with its declared dtype and shape."""
    if not zipfile.is_zipfile(path):  # np.load would try to unpickle it and say so
        raise ArtifactError(f"{path}: not an .npz archive (not a zip file)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            arrays = {name: npz[name] for name in declared if name in files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # not a zip, an object array, a bad member
        raise ArtifactError(f"{path}: not a readable .npz archive of plain arrays ({exc})") from None
    missing = sorted(set(declared) - files)
    if missing:
        more = f" ({len(missing)} missing)" if len(missing) > 1 else ""
        raise ArtifactError(f"{path}: member '{missing[0]}' (declared in {json_name} field 'arrays') is missing{more}")
    for name, (dtype, shape) in declared.items():
        a = arrays[name]
        if a.dtype != dtype or a.shape != shape:
            raise ArtifactError(f"{path}: member '{name}' is {a.dtype} {a.shape}, {json_name} field "
                                f"'arrays.{name}' says {dtype} {shape}")
    return arrays


def _read_checked(base: Path, entry: dict, what: str, size_key: str | None) -> bytes:
    source = f"{base / 'manifest.json'}: {what}"
    if not isinstance(entry, dict) or "file" not in entry:
        raise ArtifactError(f"{source}: missing field 'file'")
    path = (base / str(entry["file"])).resolve()
    if base.resolve() not in path.parents:
        raise ArtifactError(f"{source}: file {entry['file']!r} lies outside the artifact directory")
    if not path.is_file():
        raise ArtifactError(f"{source}: file {path} does not exist")
    data = path.read_bytes()
    if size_key and int(entry.get(size_key, -1)) != len(data):
        raise ArtifactError(f"{source}: field '{size_key}'={entry.get(size_key)} but {path.name} has {len(data)} bytes")
    if "sha256" in entry and entry["sha256"] != _sha256(data):
        raise ArtifactError(f"{source}: {path.name} does not match its sha256 in the manifest")
    return data


def load_artifact(directory: str | Path) -> Artifact:
    """Load and check an artifact directory; every inconsistency is an ArtifactError naming file and field."""
    base = Path(directory)
    mpath = base / "manifest.json"
    if not mpath.is_file():
        raise ArtifactError(f"{base}: not an artifact directory (no manifest.json)")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{mpath}: not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ArtifactError(
            f"{mpath}: format {manifest.get('format')!r} version {manifest.get('version')!r}, "
            f"expected {FORMAT!r} version {VERSION}"
        )
    try:
        hw = HwConfig.from_dict(manifest["hw"], source=f"{mpath}: field 'hw'")
    except (KeyError, ConfigError) as exc:
        raise ArtifactError(f"{mpath}: field 'hw': {exc}") from None
    program_bytes = _read_checked(base, manifest.get("program"), "field 'program'", None)
    program = decode_program(program_bytes, source=str(base / "program.bin"))
    if int(manifest["program"].get("instructions", -1)) != len(program):
        raise ArtifactError(f"{mpath}: field 'program.instructions' disagrees with program.bin ({len(program)})")
    dram = _read_checked(base, manifest.get("dram"), "field 'dram'", "bytes")
    tensors = {n: TensorSpec.from_dict(n, d, str(mpath)) for n, d in manifest.get("tensors", {}).items()}
    for spec in tensors.values():
        if spec.addr + spec.nbytes(hw) > len(dram):
            raise ArtifactError(f"{mpath}: tensor '{spec.name}' at {spec.addr}+{spec.nbytes(hw)} beyond DRAM image")
    for key in ("inputs", "outputs"):
        for name in manifest.get(key, []):
            if name not in tensors:
                raise ArtifactError(f"{mpath}: field '{key}' names unknown tensor '{name}'")
    golden = {}
    for name, rel in manifest.get("golden", {}).items():
        if name not in tensors:
            raise ArtifactError(f"{mpath}: golden output '{name}' is not a tensor of the manifest")
        path = (base / rel).resolve()
        if base.resolve() not in path.parents or not path.is_file():
            raise ArtifactError(f"{mpath}: golden file {rel!r} missing or outside the artifact")
        try:
            golden[name] = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ArtifactError(f"{path}: not a plain numpy array ({exc})") from None
        if tuple(golden[name].shape) != tensors[name].shape:
            raise ArtifactError(f"{path}: shape {golden[name].shape} != tensor shape {tensors[name].shape}")
    return Artifact(
        hw=hw,
        program=program,
        dram=dram,
        tensors=tensors,
        inputs=list(manifest.get("inputs", [])),
        outputs=list(manifest.get("outputs", [])),
        golden=golden,
        layers=[LayerRecord.from_dict(r, f"{mpath}: layers[{i}]", len(program))
                for i, r in enumerate(manifest.get("layers", []))],
        host_ops=list(manifest.get("host_ops", [])),
        meta=dict(manifest.get("meta", {})),
        path=base,
        graph_files=_check_graph_entries(base, manifest),
    )
