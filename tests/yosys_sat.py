"""Yosys `sat -prove` over every input of a wrapper (tests/formal/) whose output `ok` must be 1."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bitbranch.rtlharness.synth import SynthError, find_yosys


def proves(sources: list[Path], top: str, **params: int) -> bool:
    """True when Yosys proves `ok` = 1 for every input of `top` (its parameters set to `params`), False when it
    finds a counterexample; skips when no Yosys is installed."""
    try:
        yosys = find_yosys()
    except SynthError as exc:
        pytest.skip(str(exc))
    chparam = f"chparam {' '.join(f'-set {k} {v}' for k, v in params.items())} {top}; " if params else ""
    script = (f"read_verilog {' '.join(str(s) for s in sources)}; {chparam}"
              f"prep -top {top}; flatten; sat -prove ok 1")
    out = subprocess.run([*yosys, "-p", script], capture_output=True, text=True, timeout=600).stdout
    assert "SAT proof finished" in out, out[-2000:]
    return "no model found: SUCCESS!" in out
