"""Yosys `sat -prove` over every input of a wrapper (tests/formal/) whose output `ok` must be 1."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from bitbranch.rtlharness.synth import SynthError, find_yosys


def proves(sources: list[Path], top: str, **params: int) -> bool:
    """True when Yosys proves `ok` = 1 for every input of `top` (its parameters set to `params`), False when it
    finds a counterexample; skips when no Yosys is installed. The sources are copied into a scratch folder and
    named relative to it: the WebAssembly Yosys does not see every absolute path (a checkout under /tmp)."""
    try:
        yosys = find_yosys()
    except SynthError as exc:
        pytest.skip(str(exc))
    chparam = f"chparam {' '.join(f'-set {k} {v}' for k, v in params.items())} {top}; " if params else ""
    with tempfile.TemporaryDirectory(prefix="bitbranch-sat-") as work:
        for s in sources:
            shutil.copy(s, Path(work) / s.name)
        script = (f"read_verilog {' '.join(s.name for s in sources)}; {chparam}"
                  f"prep -top {top}; flatten; sat -prove ok 1")
        out = subprocess.run([*yosys, "-p", script], capture_output=True, text=True, timeout=600, cwd=work).stdout
    assert "SAT proof finished" in out, out[-2000:]
    return "no model found: SUCCESS!" in out
