"""The Verilog of the accelerator core (`*.v`, `*.vh`), shipped as package data of `bitbranch.rtl`.

Nothing here is Python but this locator: the harness builds from `rtl_dir()`, which is this folder in a
source checkout and the installed package's folder in a wheel install.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def rtl_dir() -> Path:
    """The folder holding the Verilog sources (a real directory: simulators and Yosys need file paths)."""
    path = Path(str(files(__name__)))
    if not (path / "bb_core.v").is_file():
        raise FileNotFoundError(f"bitbranch's Verilog sources are missing from {path} (a broken install?)")
    return path
