"""Verilog parameters of the core, derived from a hardware config (never copied by hand).

Every numeric HwConfig field except the clock becomes the bb_core/bb_tb parameter of the same name in upper
case; `build_parameters` adds the simulation-only sizes (instruction memory, DRAM model). `check_supported`
refuses configs whose timing the RTL cannot realise exactly.
"""

from __future__ import annotations

import dataclasses
import math
import re

from bitbranch.isa.hwconfig import BUFFERS, HwConfig
from bitbranch.rtl import rtl_dir

NOT_PARAMETERS = ("name", "description", "clock_mhz")  # HwConfig fields that are not Verilog parameters
IMEM_AW = 16  # instruction memory: 65536 instructions
MIN_DRAM_AW = {"verilator": 24, "icarus": 16}  # DRAM model bytes = 2^DRAM_AW (at least the image)


class UnsupportedConfig(ValueError):
    """The RTL cannot run this hardware config cycle-exactly."""


def hw_parameters(hw: HwConfig) -> dict[str, int]:
    """{VERILOG_NAME: value} for every structural field of the config, in field order."""
    return {f.name.upper(): int(getattr(hw, f.name)) for f in dataclasses.fields(hw) if f.name not in NOT_PARAMETERS}


def module_parameters(module: str, hw: HwConfig) -> dict[str, int]:
    """The config's parameters that Verilog module `module` (rtl/<module>.v) declares: what a unit bench passes
    when it builds one module alone, read from the module's own parameter list instead of copied by hand."""
    text = (rtl_dir() / f"{module}.v").read_text()
    declared = set(re.findall(r"\bparameter\s+(?:integer\s+)?([A-Z_][A-Z0-9_]*)\s*=", text))
    return {name: value for name, value in hw_parameters(hw).items() if name in declared}


def dram_aw(dram_bytes: int, sim: str) -> int:
    """Address bits of the DRAM model for an image of `dram_bytes` bytes."""
    need = max(1, math.ceil(math.log2(max(dram_bytes, 1))))
    return max(MIN_DRAM_AW.get(sim, 16), need)


def build_parameters(hw: HwConfig, dram_bytes: int, sim: str) -> dict[str, int]:
    return {**hw_parameters(hw), "IMEM_AW": IMEM_AW, "DRAM_AW": dram_aw(dram_bytes, sim)}


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_supported(hw: HwConfig) -> None:
    """UnsupportedConfig when the RTL's pipelines or byte-lane DMA cannot realise this config exactly."""
    problems = []
    if hw.gemm_pipeline < 2:
        problems.append(f"gemm_pipeline={hw.gemm_pipeline} (the array needs >= 2: issue, then write-back)")
    if hw.alu_pipeline < 2:
        problems.append(f"alu_pipeline={hw.alu_pipeline} (requant/pool need >= 2: issue, then write-back)")
    if not _pow2(hw.dram_bytes_per_cycle):
        problems.append(f"dram_bytes_per_cycle={hw.dram_bytes_per_cycle} is not a power of two")
    for buf in BUFFERS:
        if not _pow2(hw.entry_bytes(buf)):
            problems.append(f"{buf} entries are {hw.entry_bytes(buf)} bytes, not a power of two")
    if problems:
        raise UnsupportedConfig(f"hardware config '{hw.name}' is not supported by the RTL: " + "; ".join(problems))
