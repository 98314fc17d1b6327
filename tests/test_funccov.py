"""Functional coverpoints (simulator.funccov): defined from the ISA tables, observed from timestamps, and the
directed programs of rtlharness.directed plus the random programs reach every one of them."""

from __future__ import annotations

import numpy as np
import pytest

from bitbranch.isa.asm import assemble
from bitbranch.isa.hwconfig import get_config
from bitbranch.rtlharness.directed import DRAM_BYTES, RULE_DRAM_BYTES, timing_rules, token_programs
from bitbranch.simulator import funccov, run
from bitbranch.simulator.randprog import random_program

SMALL = get_config("small")


def _cover(texts, hw=SMALL) -> funccov.FunctionalCoverage:
    """Coverage of programs given as text or (text, DRAM bytes) (default DRAM_BYTES)."""
    cov = funccov.FunctionalCoverage()
    for item in texts:
        text, size = (item, DRAM_BYTES) if isinstance(item, str) else item
        program = assemble(text)
        cov.add_run(program, run((program, bytes(size), hw)).timestamps, hw)
    return cov


def test_a_plain_program_hits_only_what_it_does():
    cov = _cover(["load buf=inp rows=1 len=1 push_next\nsync unit=compute pop_prev\nfinish"])
    hits = cov.hits["small"]
    assert hits["tokens/load:push_next"] == 1 and hits["tokens/sync[compute]:pop_prev"] == 1
    assert hits["dram/load lone request"] == 1 and hits["queue/token load->compute: popped in the cycle it was pushed"]
    assert not hits["queue/insn queue full: compute"] and not hits["dram/same-cycle requests: load first"]
    table = cov.table()["small"]
    assert 0 < table["tokens"]["hit"] < table["tokens"]["total"]


def test_each_timing_rule_reaches_its_coverpoint():
    rules = timing_rules(SMALL)
    expect = {
        "full instruction queue blocks fetch": "queue/insn queue full: compute",
        "same-cycle requests: load wins": "dram/same-cycle requests: load first",
        "earlier store request wins": "dram/earlier store served first",
        "a store waits for a long load": "dram/earlier load served first",
        "pop from a full token queue frees a push": "queue/token load->compute: pop made room for a push in-cycle",
        "compute pushes back on a full queue to load": "queue/token compute->load: push waited (full)",
        "ACC stall": f"bank/{funccov.BANK_POINTS[0]}",
        "OUT write groups": f"bank/{funccov.BANK_POINTS[2]}",
    }
    for rule, point in expect.items():
        assert _cover([rules[rule]]).hits["small"][point], (rule, point)


@pytest.mark.parametrize("preset", ["small", "edge"])
def test_directed_and_random_programs_reach_every_timing_coverpoint(preset):
    hw = get_config(preset)
    rules = [(text, RULE_DRAM_BYTES.get(name, DRAM_BYTES)) for name, text in timing_rules(hw).items()]
    cov = _cover([*rules, *token_programs()], hw)
    for seed in range(24):
        program, dram = random_program(hw, np.random.default_rng(seed), 40)
        cov.add_run(program, run((program, dram, hw)).timestamps, hw)
    table = cov.table()[preset]
    for group in ("field", "tokens", "queue", "dram", "bank"):
        assert table[group]["hit"] == table[group]["total"], (group, table[group]["missed"])


def test_coverage_survives_a_json_round_trip():
    cov = _cover([timing_rules(SMALL)["one dispatch per cycle"]])
    again = funccov.FunctionalCoverage.from_json(cov.to_json())
    assert again.table() == cov.table()
