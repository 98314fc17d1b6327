"""RTL activity counters (rtl/bb_tb.v `activity`, bb_banks/bb_compute counters) against simulator.activity.

The RTL counts bits at its SRAM bank ports, DRAM bits at its DRAM port, the datapaths' bit-ops, accumulates and
lane-ops where they are enabled, and fetches; the harness (rtlharness.compare) requires every count equal to
the simulator's, per instruction (from the trace) and in total. Here: the hand-counted programs of
tests/test_cost_activity.py on the RTL (so the hand counts hold for the hardware too), random programs, and
the check itself: a deliberately wrong count in the model, or in the RTL's report, is found and located.
The random-program campaigns (tests/test_rtl_fuzz.py) check the counts too, through CrossCheck.ok.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from bitbranch.isa.asm import assemble
from bitbranch.isa.hwconfig import get_config
from bitbranch.rtlharness.build import verilator_bin_dir
from bitbranch.rtlharness.compare import activity_differences, cross_check, cross_check_batch
from bitbranch.simulator import activity as activity_model
from bitbranch.simulator import run as sim_run
from bitbranch.simulator.activity import ACTIONS

SMALL = get_config("small")
needs_verilator = pytest.mark.skipif(not (verilator_bin_dir() / "verilator").exists(),
                                     reason="verilator not installed")
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")

# One program per instruction class (small: R=2, C=4, W=64, P=1, B=8) with its hand-computed counts (besides
# the fetches): the same numbers tests/test_cost_activity.py checks the model against.
DIRECTED = {
    "load_inp": ("load buf=inp rows=2 len=3 dstride=24 pad_top=1 pad_bottom=1 pad_left=1 pad_right=2\nfinish",
                 {"dram_read": 2 * 3 * 64, "inp_write": 2 * 24 * 64}),
    "load_wgt": ("load buf=wgt rows=1 len=2\nfinish", {"dram_read": 2 * 256, "wgt_write": 2 * 256}),
    "store_acc": ("store buf=acc rows=3 len=2 dstride=32\nfinish",
                  {"acc_read": 3 * 4 * 128, "dram_write": 3 * 2 * 128}),
    "store_out": ("store buf=out rows=2 len=3 dstride=32\nfinish", {"out_read": 2 * 3 * 64, "dram_write": 2 * 3 * 64}),
    "bgemm": ("bgemm kbits=2 mbits=3 oh=3 ow=3 kh=3 kw=2 stride=1 dil=1 cw=2 ctiles=2 irow=8 ipix=4 accumulate=1\n"
              "finish",
              {"inp_read": 9 * 144 * 1 * 64, "wgt_read": 720 * 3 * 4 * 64, "acc_read": 9 * 2 * 128,
               "acc_write": 9 * 2 * 128, "bitops": 720 * 2 * 4 * 64, "accumulates": 720 * 2 * 4}),
    "requant_out": ("requant dest=out res=1 n=5 ostride=3 kout=3 hi=7 rk=2 rstride=2\nfinish",
                    {"const_read": 3 * 4 * 128, "acc_read": 5 * 128, "inp_read": 5 * 8 * 64, "out_write": 5 * 3 * 4,
                     "requant_lanes": 3 * 2 * 4, "residual_lanes": 3 * 2 * 4}),
    "requant_acc": ("requant dest=acc n=2\nfinish",
                    {"const_read": 4 * 128, "acc_read": 2 * 128, "acc_write": 2 * 128, "requant_lanes": 8}),
    "pool_max": ("pool mode=max k=2 oh=3 ow=1 kh=3 kw=3 stride=1 irow=8 ipix=2 ostride=2\nfinish",
                 {"inp_read": 3 * 9 * 8 * 64, "pool_lanes": 2 * 9 * 2 * 4, "out_write": 3 * 2 * 4}),
    "pool_sum": ("pool mode=sum k=2 oh=3 ow=1 kh=3 kw=3 stride=1 irow=8 ipix=2 ostride=2\nfinish",
                 {"inp_read": 3 * 9 * 8 * 64, "pool_lanes": 2 * 9 * 2 * 4, "acc_write": 3 * 128}),
    "sync": ("sync unit=load\nfinish", {}),
}


def _sources():
    return [(assemble(text), bytes(4096), SMALL) for text, _ in DIRECTED.values()]


def _run_directed(sim: str):
    checks = cross_check_batch(_sources(), sim=sim)
    for (name, (_, want)), c in zip(DIRECTED.items(), checks, strict=True):
        assert c.ok, f"{name}: {c.explain()}"
        got = {k: v for k, v in c.activity_rtl.items() if v}
        assert got == {**want, "fetches": 2}, name


@needs_verilator
def test_directed_programs_rtl_counts_are_the_hand_counts():
    _run_directed("verilator")


@needs_icarus
def test_directed_programs_rtl_counts_on_icarus():
    _run_directed("icarus")


@needs_verilator
def test_random_programs_activity_per_instruction():
    from bitbranch.simulator.randprog import random_program

    programs = [random_program(SMALL, np.random.default_rng(seed), 40) for seed in range(7000, 7010)]
    checks = cross_check_batch([(p, d, SMALL) for p, d in programs], sim="verilator")
    for c in checks:
        assert c.ok and c.activity_match, c.explain()
        assert set(c.activity_rtl) == set(ACTIONS) and c.activity_rtl == c.activity_sim
    assert sum(c.activity_rtl["bitops"] > 0 and c.activity_rtl["dram_write"] > 0 for c in checks) >= 5


@needs_verilator
def test_a_wrong_model_count_is_located(monkeypatch):
    """One bit too many in the model's WGT reads of every BGEMM: the check names the first BGEMM, the count and
    both values, and the totals."""
    text, _ = DIRECTED["bgemm"]
    program = assemble("load buf=wgt rows=1 len=2\n" + text)
    rule = activity_model._RULES["bgemm"]

    def wrong(f, hw):
        v = list(rule(f, hw))
        v[activity_model.INDEX["wgt_read"]] += 1
        return tuple(v)

    monkeypatch.setitem(activity_model._RULES, "bgemm", wrong)
    c = cross_check((program, bytes(4096), SMALL))
    assert c.outputs_match and c.cycles_match and not c.divergences  # everything else agrees
    assert not c.activity_match and not c.ok
    first = c.activity_differences[0]
    right = 720 * 3 * 4 * 64
    assert (first.index, first.op, first.fields) == (1, "bgemm", {"wgt_read": (right + 1, right)})
    assert c.activity_differences[-1].index is None  # and the whole-run totals
    assert "instruction 1 (bgemm): wgt_read: sim 552,961 rtl 552,960" in c.explain()
    assert c.to_json_dict()["first_activity_difference"]["fields"] == {"wgt_read": [right + 1, right]}


def test_a_wrong_rtl_count_is_located():
    """The comparison itself, on a made-up RTL report: a per-instruction count and a total that differ."""
    from bitbranch.rtlharness.bench_core import TraceLine

    program = assemble(DIRECTED["requant_out"][0])
    sim = sim_run((program, bytes(4096), SMALL)).activity
    trace = [TraceLine(k, 1, 0, 0, -1, 0, 0, tuple(int(x) for x in sim.counts[k][:-1])) for k in range(len(program))]
    total = sim.total()
    assert activity_differences(program, sim, total, trace) == []
    bad = list(trace[0].activity)
    bad[ACTIONS.index("inp_read")] -= 64
    trace[0] = dataclasses.replace(trace[0], activity=tuple(bad))
    diffs = activity_differences(program, sim, {**total, "fetches": 3}, trace)
    assert [(d.index, d.fields) for d in diffs] == [(0, {"inp_read": (5 * 8 * 64, 5 * 8 * 64 - 64)}),
                                                     (None, {"fetches": (2, 3)})]
    assert diffs[0].describe() == "instruction 0 (requant): inp_read: sim 2,560 rtl 2,496"
