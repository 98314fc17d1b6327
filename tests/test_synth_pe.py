"""bb_pe's two forms and its LUT budget (issue 14; docs/rtl.md sections 5 and 7, docs/cost.md).

rtl/bb_pe.v computes the popcount two ways: the word form (the bit-slice adder tree with the 0x0101..
multiply, which GCC turns into `popcnt` and Icarus evaluates as a few word operations), which every
simulation of the core runs, and the gate form (full adders over lane triples and a tree of carry-chain
adders, which maps to few LUTs), which synthesis maps. Here Yosys proves them equal: the file is read twice,
with and without BB_PE_WORDS, and a miter of the two accumulators (tests/synth_rtl/pe_miter.v) is proved zero
by SAT after one clock cycle from any state where the two accumulators are equal, every input free (an
induction step; ~30 s). Proved for W = 64 (one 64-bit word, the width of every preset) and P = 1. P = 2 (edge:
the same per-branch code, summed) did not finish within 15 minutes and W = 128 was not tried to the end: those
are checked by simulation only (tests/test_rtl_units.py: the bb_pe_array bench builds the gate form
(BB_PE_GATES) and checks it against the numeric core, P = 1, 2 and 4, W = 64, 128 and 192, on Icarus and
Verilator).

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
        f"read_verilog -DSYNTHESIS -DBB_PE_WORDS -I{inc} {pe}",
        "rename bb_pe pe_gold",
        f"read_verilog -DSYNTHESIS -I{inc} {pe}",
        "rename bb_pe pe_gate",
        # the two reads really are the two forms (a define leaking from one read into the other would make the
        # proof trivial): the word form's popcount multiply is in pe_gold only
        "select -assert-min 1 pe_gold/t:$mul",
        "select -assert-none pe_gate/t:$mul",
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


def test_pe_word_and_gate_forms_are_equal(tmp_path):
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
