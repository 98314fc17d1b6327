"""Per-point results on disk, keyed by content: a re-run, or a larger space, computes only new points.

A point's key is the SHA-256 of (model name, its weights, the input image, the full precision spec,
every hardware field but name/description, the bitbranch version), so anything that changes a
result changes the key, and nothing else does. Each result is one small JSON file,
`DIR/points/ab/abcdef….json`, written atomically (a killed run leaves no half file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from bitbranch.isa.hwconfig import HwConfig


def digest_arrays(arrays: dict[str, np.ndarray] | list[tuple[str, np.ndarray]]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of arrays (e.g. a model's state_dict)."""
    h = hashlib.sha256()
    items = arrays.items() if isinstance(arrays, dict) else arrays
    for name, a in items:
        a = np.ascontiguousarray(a)
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def model_digest(model) -> str:
    """Digest of a torch module's parameters and buffers."""
    return digest_arrays([(k, v.detach().cpu().numpy()) for k, v in model.state_dict().items()])


def hw_identity(hw: HwConfig) -> dict:
    """The fields of a config that can change a result (not its name or description)."""
    return {k: v for k, v in dataclasses.asdict(hw).items() if k not in ("name", "description")}


def point_key(base: dict, hw: HwConfig) -> str:
    """`base`: {model, weights, input, precision, version}; the key adds the hardware fields."""
    doc = {**base, "hw": hw_identity(hw)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


class ResultStore:
    """`store.get(key)` -> the stored row or None; `store.put(key, row)`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / "points"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, row: dict) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(row, fh, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.exists() else 0
