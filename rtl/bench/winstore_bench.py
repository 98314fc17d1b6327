"""Unit bench: bb_winstore (one store, the core's Verilator model of INP's copies) against bb_winbuf as built.

rtl/bench/bb_winstore_tb.v drives both with the same seeded random LOAD beats, window reads and clears and
compares every copy's window and activity counters in every cycle; this module clocks it and reads the counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "BITBRANCH_WINSTORE_BENCH"

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge
except ImportError:  # pragma: no cover
    cocotb = None


if cocotb is not None:
    @cocotb.test()
    async def winstore_matches_banks(dut):
        out = Path(os.environ[ENV])
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        await RisingEdge(dut.clk)
        while not int(dut.done.value):
            await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        out.write_text(json.dumps({k: int(getattr(dut, k).value) for k in ("mismatches", "reads", "live", "unknown")}))


def params_for(copies: int, nb: int, depth: int, ebytes: int, beat: int, cycles: int, seed: int) -> dict[str, int]:
    """The tb's parameters; address widths derived as bb_core derives them."""
    aw = max(1, (depth - 1).bit_length())
    return {"COPIES": copies, "NB": nb, "NWIN": 8, "DEPTH": depth, "EBYTES": ebytes, "B": beat,
            "FAW": aw + (ebytes - 1).bit_length(), "AW": aw, "RAW": max(1, (-(-depth // nb) - 1).bit_length()),
            "CYCLES": cycles, "SEED": seed}


def run_winstore_bench(params: dict[str, int], sim: str = "verilator") -> dict[str, int]:
    """Build and run one parameter set; returns {mismatches, reads, live, unknown}."""
    import tempfile

    from bitbranch.rtlharness.build import build, run

    modules = ["bb_sram_2p", "bb_banks", "bb_winbuf", "bb_winstore", "bench/bb_winstore_tb"]
    name = "winstore_" + "_".join(f"{v}" for k, v in params.items() if k not in ("CYCLES", "SEED"))
    b = build(sim, "bb_winstore_tb", modules, params, name)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = work / "result.json"
        run(b, "winstore_bench", work, env={ENV: str(result)})
        return json.loads(result.read_text())
