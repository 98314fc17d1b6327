"""Precision for workloads, in the compiler's one format (compiler.precision; docs there).

A workload's default precision is a `PrecisionSpec`: a `W<m|T>A<k>` default plus per-layer tables
keyed by module path (`{"conv1": {"w": 8}}`; a layer's `a` is the width of the activations it
*produces*). Here: what the commands add on top — `--bits` replaces the default and keeps the
workload's per-layer overrides, a short label for tables, and the mapping form for JSON reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bitbranch.compiler.precision import PrecisionError, PrecisionSpec, parse_precision, parse_token, spec_from_mapping

__all__ = ["PrecisionError", "PrecisionSpec", "label", "layer_bits", "parse_bits", "spec", "to_mapping",
           "with_default"]


def spec(default: str = "W2A2", **layers: Mapping[str, Any]) -> PrecisionSpec:
    """`spec("W2A2", conv1={"w": 8})`; use `spec_from_mapping` for paths that are not identifiers."""
    return spec_from_mapping({"default": default, "layers": dict(layers)})


def parse_bits(text: str, base: PrecisionSpec | None = None) -> PrecisionSpec:
    """`--bits`: a token (`W4A4`, `WTA2`) as the new default over `base`'s per-layer overrides, or a
    precision file (.json/.toml), which replaces everything."""
    if text.strip().lower().endswith((".json", ".toml")) or base is None:
        return parse_precision(text)
    return with_default(base, text)


def with_default(base: PrecisionSpec, token: str) -> PrecisionSpec:
    weight, act = parse_token(token)
    return dataclasses.replace(base, weight=weight, act_bits=act, layers=dict(base.layers))


def label(p: PrecisionSpec) -> str:
    """`W2A2`, or `W2A2+2` when two per-layer overrides apply."""
    return f"W{p.weight}A{p.act_bits}" + (f"+{len(p.layers)}" if p.layers else "")


def layer_bits(p: PrecisionSpec, path: str) -> tuple[int, bool, int]:
    """(weight planes, ternary, output activation bits) of the layer at `path`."""
    w = p.weight_for(path)
    return w.bits, w.ternary, p.act_bits_for(path)


def to_mapping(p: PrecisionSpec) -> dict:
    """The file form (JSON-ready), e.g. for reports."""
    def entry(values: Mapping[str, Any]) -> dict:
        out = {k: v for k, v in values.items() if k != "w"}
        if "w" in values:
            out["w"] = "ternary" if values["w"].ternary else values["w"].bits
        return out

    return {"default": f"W{p.weight}A{p.act_bits}", "linear_bits": p.linear_bits,
            "layers": {k: entry(v) for k, v in p.layers.items()}}
