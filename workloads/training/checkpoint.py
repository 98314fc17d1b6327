"""Checkpoints of trained models: tensors in `<name>.pt`, everything else in `<name>.json`.

The .pt file holds only state dicts (`{"model": ..., "sq": ...}`), written with torch.save and read
with torch.load(weights_only=True): loading a checkpoint a colleague sent never runs code. The JSON
side says how to rebuild the module the state belongs to (data set -> network, precision mapping,
ternary thresholds) and records accuracy and timing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bitbranch.compiler.quantize import quantize_model
from bitbranch.compiler.smartquant import apply_deltas

from ..models.lenet import MODELS

FLOAT = "float"


def paths(stem: str | Path) -> tuple[Path, Path]:
    """(tensors, info) paths for a checkpoint given as DIR/name, DIR/name.pt or DIR/name.json."""
    p = Path(stem)
    if p.suffix in (".pt", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".pt"), p.with_suffix(".json")


def save(stem: str | Path, states: dict[str, dict[str, torch.Tensor]], info: dict[str, Any]) -> Path:
    pt, js = paths(stem)
    pt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: {n: t.detach().cpu() for n, t in sd.items()} for k, sd in states.items()}, pt)
    js.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return pt


def load(stem: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    pt, js = paths(stem)
    if not pt.is_file():
        raise FileNotFoundError(f"checkpoint {pt} does not exist")
    states = torch.load(pt, map_location="cpu", weights_only=True)
    info = json.loads(js.read_text()) if js.is_file() else {}
    if not isinstance(states, dict) or "model" not in states:
        raise ValueError(f"checkpoint {pt}: expected a dict of state dicts with a 'model' entry")
    return states, info


def build(dataset: str, precision: str | dict) -> nn.Module:
    """The untrained module a checkpoint's state belongs to: the float network or its QAT version."""
    if dataset not in MODELS:
        raise ValueError(f"unknown dataset '{dataset}' (expected one of {', '.join(MODELS)})")
    model = MODELS[dataset]()
    if precision == FLOAT:
        return model
    return quantize_model(model, precision, (1, *model.input_shape))


def restore(stem: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A trained model (eval mode) and its info, from a checkpoint written by `save`."""
    states, info = load(stem)
    model = build(info["dataset"], info["precision"])
    model.load_state_dict(states["model"])
    apply_deltas(model, info.get("deltas", {}))
    return model.eval(), info
