"""Unit benches of the core's Verilator memory models against the banks they stand for.

bb_winstore (one store for a window buffer's identical copies) runs beside bb_winbuf, bb_accstore (the ACC banks
as one store) beside bb_accbuf and bb_outstore beside bb_outbuf: rtl/bench/bb_*store_tb.v drive both forms with
the same seeded random legal accesses and compare outputs and activity counters in every cycle. This module
clocks any of those tops and reads its counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "BITBRANCH_STOREMODEL_BENCH"
COUNTS = ("mismatches", "reads", "live", "unknown", "last_unknown")
# top -> the modules it is built from
TOPS = {
    "bb_winstore_tb": ["bb_sram_2p", "bb_banks", "bb_winbuf", "bb_winstore", "bench/bb_winstore_tb"],
    "bb_accstore_tb": ["bb_sram_2p", "bb_banks", "bb_accbuf", "bb_accstore", "bench/bb_accstore_tb"],
    "bb_outstore_tb": ["bb_sram_2p", "bb_banks", "bb_outscatter", "bb_outbuf", "bb_outstore", "bench/bb_outstore_tb"],
}

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge
except ImportError:  # pragma: no cover
    cocotb = None


if cocotb is not None:
    @cocotb.test()
    async def model_matches_banks(dut):
        out = Path(os.environ[ENV])
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        await RisingEdge(dut.clk)
        while not int(dut.done.value):
            await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        out.write_text(json.dumps({k: int(getattr(dut, k).value) for k in COUNTS}))


def buffer_params(nb: int, depth: int, ebytes: int, beat: int) -> dict[str, int]:
    """A buffer's address widths, derived as bb_core derives them."""
    aw = max(1, (depth - 1).bit_length())
    return {"NB": nb, "DEPTH": depth, "EBYTES": ebytes, "B": beat, "FAW": aw + (ebytes - 1).bit_length(), "AW": aw,
            "RAW": max(1, (-(-depth // nb) - 1).bit_length())}


def run_store_bench(top: str, params: dict[str, int], sim: str = "verilator") -> dict[str, int]:
    """Build and run one parameter set of `top` (a key of TOPS); returns its COUNTS."""
    import tempfile

    from bitbranch.rtlharness.build import build, run

    name = top.removeprefix("bb_").removesuffix("_tb") + "_" + "_".join(
        f"{v}" for k, v in params.items() if k not in ("CYCLES", "SEED"))
    b = build(sim, top, TOPS[top], params, name)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = work / "result.json"
        run(b, "storemodel_bench", work, env={ENV: str(result)})
        return json.loads(result.read_text())
