"""Precision specs: `W2A2` for every layer, or a per-layer mapping file (JSON or TOML).

A token is `W<m>A<k>`: m = 1..8 weight bits (1 = binary {-1,+1}) or `T` for ternary {-1,0,+1}
weights, k = 1..8 activation bits. A layer's `a` is the width of the activations it *produces*
(its output quantizer), so every tensor has exactly one width even when several layers read it;
the network input is always 8-bit planes. Tensors without an activation function (e.g. a
downsample branch `bn(conv(x))` feeding a residual add) default to `linear_bits` (8): they are
signed and mostly feed the requantize step, where width costs memory, not branches.

File form (TOML shown; JSON has the same keys):

    default = "W2A2"
    linear_bits = 8                       # optional
    [layers]
    "conv1" = { w = 8 }                   # module path of a conv / linear / pooling layer
    "fc" = { w = 8, a = 8 }
    "layer*.downsample.0" = { a = 4 }     # fnmatch patterns; exact paths win over patterns
    "layer2.0.conv1" = { w = "ternary" }  # or ternary = true; w = "binary" is w = 1

Every override must match some layer of the model (typos are errors, not silent defaults).
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitbranch.isa.numeric import MAX_BITS

_TOKEN = re.compile(r"^W(?P<w>[0-9]+|T)A(?P<a>[0-9]+)$", re.IGNORECASE)
_FILE_KEYS = {"default", "linear_bits", "layers"}
_LAYER_KEYS = {"w", "a", "ternary"}


class PrecisionError(ValueError):
    """A precision string or file is malformed; the message names the offending token or key."""


@dataclass(frozen=True)
class WeightPrecision:
    bits: int  # planes: M for M-bit codes, 2 for ternary
    ternary: bool = False

    @property
    def mode(self) -> str:
        return "ternary" if self.ternary else "mbit"

    def __str__(self) -> str:
        return "T" if self.ternary else str(self.bits)


@dataclass
class PrecisionSpec:
    weight: WeightPrecision
    act_bits: int
    linear_bits: int = 8
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)  # path or pattern -> {w, a}
    source: str = ""

    def _merged(self, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pattern, values in self.layers.items():
            if pattern != path and fnmatch.fnmatchcase(path, pattern):
                out.update(values)
        out.update(self.layers.get(path, {}))
        return out

    def weight_for(self, path: str) -> WeightPrecision:
        return self._merged(path).get("w", self.weight)

    def act_bits_for(self, path: str, linear: bool = False) -> int:
        """Output activation bits of the layer at `path`; `linear` tensors default to linear_bits."""
        explicit = self._merged(path).get("a")
        if explicit is not None:
            return explicit
        return self.linear_bits if linear else self.act_bits

    def check_paths(self, paths: Iterable[str]) -> None:
        """Every override must name (or match) at least one of the model's layer paths."""
        known = list(paths)
        for pattern in self.layers:
            if pattern not in known and not any(fnmatch.fnmatchcase(p, pattern) for p in known):
                close = ", ".join(known[:8]) + (" ..." if len(known) > 8 else "")
                raise PrecisionError(f"precision{self._where()}: layer '{pattern}' matches no layer of the model "
                                     f"(layers: {close})")

    def _where(self) -> str:
        return f" file '{self.source}'" if self.source else ""

    def describe(self) -> str:
        base = f"W{self.weight}A{self.act_bits}"
        return base if not self.layers else f"{base} + {len(self.layers)} per-layer overrides"


def _check_bits(n: Any, what: str, token: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_BITS:
        raise PrecisionError(f"precision token '{token}': {what} bits {n!r} outside 1..{MAX_BITS}")
    return n


def parse_token(token: str) -> tuple[WeightPrecision, int]:
    """'W2A2' -> (2-bit weights, 2-bit activations); 'WTA4' -> (ternary weights, 4-bit activations)."""
    m = _TOKEN.match(str(token).strip())
    if m is None:
        raise PrecisionError(f"precision token '{token}' is not of the form W<bits|T>A<bits> (e.g. W2A2, WTA2)")
    w = m.group("w").upper()
    weight = WeightPrecision(2, True) if w == "T" else WeightPrecision(_check_bits(int(w), "weight", token))
    return weight, _check_bits(int(m.group("a")), "activation", token)


def _weight_value(v: Any, where: str) -> WeightPrecision:
    if isinstance(v, str):
        key = v.strip().lower()
        if key in ("t", "ternary"):
            return WeightPrecision(2, True)
        if key == "binary":
            return WeightPrecision(1)
        raise PrecisionError(f"{where}: w = {v!r} (expected 1..{MAX_BITS}, 'binary' or 'ternary')")
    return WeightPrecision(_check_bits(v, "weight", where))


def _layer_entry(path: str, entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise PrecisionError(f"{where}: layer '{path}' must be a table like {{ w = 2, a = 2 }}, got {entry!r}")
    unknown = set(entry) - _LAYER_KEYS
    if unknown:
        raise PrecisionError(f"{where}: layer '{path}': unknown key '{sorted(unknown)[0]}' (use w, a, ternary)")
    out: dict[str, Any] = {}
    if "w" in entry:
        out["w"] = _weight_value(entry["w"], f"{where}: layer '{path}'")
    if "ternary" in entry:
        if not isinstance(entry["ternary"], bool):
            raise PrecisionError(f"{where}: layer '{path}': ternary must be true or false")
        if entry["ternary"]:
            out["w"] = WeightPrecision(2, True)
        elif out.get("w", WeightPrecision(2, True)).ternary:
            raise PrecisionError(f"{where}: layer '{path}': ternary = false needs w = <bits>")
    if "a" in entry:
        out["a"] = _check_bits(entry["a"], "activation", f"{where}: layer '{path}' a")
    return out


def spec_from_mapping(data: Mapping[str, Any], source: str = "") -> PrecisionSpec:
    where = f"precision file '{source}'" if source else "precision mapping"
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise PrecisionError(f"{where}: unknown key '{sorted(unknown)[0]}' (expected default, linear_bits, layers)")
    weight, act = parse_token(data.get("default", "W2A2"))
    linear = _check_bits(data.get("linear_bits", 8), "linear", f"{where}: linear_bits")
    layers = data.get("layers", {})
    if not isinstance(layers, Mapping):
        raise PrecisionError(f"{where}: 'layers' must map module paths to tables")
    entries = {str(p): _layer_entry(str(p), e, where) for p, e in layers.items()}
    return PrecisionSpec(weight, act, linear, entries, source)


def load_precision_file(path: str | Path) -> PrecisionSpec:
    p = Path(path)
    text = p.read_text()
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise PrecisionError(f"precision file '{p}': {e}") from e
    if not isinstance(data, Mapping):
        raise PrecisionError(f"precision file '{p}': top level must be a table/object")
    return spec_from_mapping(data, str(p))


def parse_precision(spec: str | Path | Mapping[str, Any] | PrecisionSpec) -> PrecisionSpec:
    """A PrecisionSpec from a token ('W2A2'), a .json/.toml file path, a mapping or a spec."""
    if isinstance(spec, PrecisionSpec):
        return spec
    if isinstance(spec, Mapping):
        return spec_from_mapping(spec)
    text = str(spec)
    if isinstance(spec, Path) or text.lower().endswith((".json", ".toml")):
        if not Path(text).is_file():
            raise PrecisionError(f"precision file '{text}' does not exist")
        return load_precision_file(text)
    weight, act = parse_token(text)
    return PrecisionSpec(weight, act)
