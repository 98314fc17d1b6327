"""bb_pe's two forms and its LUT budget (issue 14; docs/rtl.md sections 5 and 7, docs/cost.md).

rtl/bb_pe.v computes the popcount one way under Verilator (the bit-slice adder tree with the 0x0101..
multiply, which GCC turns into `popcnt`) and another way everywhere else (full adders over lane triples and a
tree of carry-chain adders, which maps to few LUTs). Icarus runs, and the cocotb benches check against the
simulator, the second; Verilator the first. Here Yosys proves them equal: the file is read twice, with and
without VERILATOR defined, and a miter of the two accumulators (tests/synth_rtl/pe_miter.v) is proved zero by
SAT after one clock cycle from any state where the two accumulators are equal, every input free (an induction
step; ~30 s). Proved for W = 64 (one 64-bit word, the width of every preset) and P = 1. P = 2 (edge: the same
per-branch code, summed) did not finish within 15 minutes and W = 128 was not tried to the end: those are
checked by simulation only (tests/test_rtl_units.py: P = 2 and 4, W = 128 and 192 on Icarus against the
numeric core; the fuzz campaigns on Icarus and Verilator).

And the synthesized PE array (bench/cost.py's `synth_pe`, edge: W = 64, P = 2) stays within 3 LUTs per binary
lane on the xilinx target, with no DSP blocks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bitbranch.isa.hwconfig import get_config
from bitbranch.rtlharness import synth
from bitbranch.rtlharness.build import RTL_DIR

ROOT = Path(__file__).resolve().parents[1]
MITER = Path(__file__).parent / "synth_rtl" / "pe_miter.v"


def _prove(workdir: Path, w: int, p: int) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    pe, inc, miter = (synth._rel(x, workdir) for x in (RTL_DIR / "bb_pe.v", RTL_DIR, MITER))
    script = "\n".join([
        f"read_verilog -DVERILATOR -DSYNTHESIS -I{inc} {pe}",
        "rename bb_pe pe_gold",
        f"read_verilog -DSYNTHESIS -I{inc} {pe}",
        "rename bb_pe pe_gate",
        f"read_verilog {miter}",
        f"hierarchy -check -top pe_miter -chparam W {w} -chparam P {p}",
        "proc",
        "flatten",
        "opt",
        # one cycle from any state where the two accumulators are equal, every input free: equal after it
        # (an induction step; -verify makes a counterexample a Yosys error)
        "sat -seq 2 -prove-skip 1 -prove diff 0 -set-at 1 ug.acc uh.acc -verify -show-ports",
    ]) + "\n"
    synth.run_yosys(script, workdir, timeout=1800)
    return (workdir / "yosys.log").read_text()


def test_pe_verilator_and_synthesis_forms_are_equal(tmp_path):
    log = _prove(tmp_path, 64, 1)
    assert "SAT proof finished - no model found: SUCCESS!" in log


def test_pe_array_is_at_most_3_luts_per_lane_on_xilinx():
    spec = importlib.util.spec_from_file_location("bench_cost", ROOT / "bench" / "cost.py")
    cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cost)
    hw = get_config("edge")
    rep = cost.synth_pe(hw, "xilinx")["binary"]
    lanes = hw.word_bits * hw.branch_parallel
    assert rep["luts"] <= 3 * lanes, (rep["luts"], lanes, rep["cells"])
    assert not any(c.startswith("DSP") for c in rep["cells"]), rep["cells"]
    assert rep["flip_flops"] == 32  # the accumulator only
