"""The whole RTL core on directed programs (small preset): the timing contract cycle by cycle, every
same-cycle rule of docs/timing.md, the error/status register, run-time deadlock, the cycle limit, and
that runs batched in one simulation are independent. All RTL runs of a test share one simulation."""

from __future__ import annotations

import pytest
from worked_example import WORKED_EXAMPLE

from bitbranch.isa import errors
from bitbranch.isa.asm import assemble
from bitbranch.isa.hwconfig import get_config
from bitbranch.isa.spec import OPCODES
from bitbranch.isa.validate import validate_program
from bitbranch.rtlharness.bench_core import run_rtl, run_rtl_batch
from bitbranch.rtlharness.build import verilator_bin_dir
from bitbranch.rtlharness.compare import cross_check as _cross_check
from bitbranch.rtlharness.directed import (
    DRAM_BYTES,
    ERROR_CASES,
    LONG_BGEMM,
    RULE_DRAM_BYTES,
    error_problems,
    expected_error,
    rule_problems,
    timing_rules,
)
from bitbranch.rtlharness.status import status_codes
from bitbranch.simulator import funccov

pytestmark = pytest.mark.skipif(not (verilator_bin_dir() / "verilator").exists(), reason="verilator not installed")

SMALL = get_config("small")
ST = status_codes()
OPCODE_NAMES = {o.code: o.name for o in OPCODES}

# docs/timing.md section 8 (WORKED_EXAMPLE): expected (start, grant, end) per instruction
WORKED_TABLE = [(1, 2, 19), (2, 19, 30), (19, 30, 52), (52, -1, 63), (63, -1, 67), (67, 68, 81), (67, -1, 68)]

def test_worked_example_cycle_by_cycle():
    program = assemble(WORKED_EXAMPLE)
    r = run_rtl(program, bytes(1024), SMALL)
    assert r.ok and r.cycles == 81
    assert [(t.start, t.grant, t.end) for t in r.trace] == WORKED_TABLE
    assert [t.unit for t in r.trace] == [0, 2, 0, 1, 1, 2, 1]


def test_timing_rules_and_token_flags_match_the_simulator():
    assert not rule_problems(SMALL)


def test_buffer_ends_read_back_what_was_written_at_the_last_entries():
    """The buffer-ends rule stores the results it computed into the last ACC and OUT entries, and they carry data:
    banks that do not hold the last rows read back zeros. R = 3 puts ACC on 12 banks, which do not divide its
    2048 entries (the RTL had floor(2048 / 12) rows per bank until fuzzing found it)."""
    from bitbranch.rtlharness.directed import PATTERN
    from bitbranch.rtlharness.randconfig import resolve
    from bitbranch.simulator import run as sim_run

    hw = resolve("random:9")
    program = assemble(timing_rules(hw)["buffer ends"])
    dram = bytes(sim_run((program, PATTERN, hw), trace=False).dram)
    e_acc, e_out = hw.entry_bytes("acc"), hw.entry_bytes("out")
    assert any(dram[4 * e_acc:5 * e_acc]) and any(dram[8 * e_acc:8 * e_acc + e_out])
    # the residual REQUANT reading INP's last entries: its two results are stored and the residual shows in them
    residual = dram[12 * e_acc:14 * e_acc]
    no_residual = assemble(timing_rules(hw)["buffer ends"].replace("res=1 n=2 rk=8", "res=0 n=2 rk=8"))
    assert any(residual) and residual != bytes(sim_run((no_residual, PATTERN, hw), trace=False).dram)[
        12 * e_acc:14 * e_acc]
    check = _cross_check((program, PATTERN, hw), sim="icarus")
    assert check.ok, check.explain()


def test_field_extremes_store_a_level_with_its_top_bit():
    """The requantized level 255 (lo = hi = 255) is stored in all eight planes before a pool rewrites plane 0: a
    datapath that drops a level's bit 7 stores 127 (the mutant bb_requant_row.v:54 `cl[7:0]` -> `cl[6:0]`)."""
    from bitbranch.rtlharness.directed import PATTERN
    from bitbranch.simulator import run as sim_run

    hw = SMALL
    program = assemble(timing_rules(hw)["field extremes"])
    dram = bytes(sim_run((program, PATTERN, hw), trace=False).dram)
    e_out, c = hw.entry_bytes("out"), hw.array_cols
    lanes = ((1 << c) - 1) << ((hw.slices_per_word - 1) * c)  # the last slice's C lanes
    planes = [int.from_bytes(dram[1024 + i * e_out:1024 + (i + 1) * e_out], "little") for i in range(8)]
    assert all(p & lanes == lanes for p in planes), [hex(p) for p in planes]


def test_the_last_instruction_memory_word_is_decoded():
    """65,535 SYNCs and an unknown opcode in the instruction memory's last word (65,536 words): the RTL stops with
    ILLEGAL at index 65,535 (an instruction memory one word short never gets there: bb_fetch.v:46 mutant)."""
    from bitbranch.rtlharness.directed import imem_end_problem, imem_end_words

    assert len(imem_end_words(SMALL)) == 1 << 16
    assert imem_end_problem(SMALL) is None


def test_timing_rules_fit_every_preset():
    for name in ("small", "edge", "cloud"):
        hw = get_config(name)
        for rule, text in timing_rules(hw).items():
            try:
                validate_program(assemble(text), hw, RULE_DRAM_BYTES.get(rule, DRAM_BYTES))
            except errors.IsaError as exc:
                pytest.fail(f"{name}: rule '{rule}': {exc}")


def test_every_error_program_is_an_error_of_its_class():
    """Each directed error case really fails in the simulator, where its class says (an error case that
    passes would check nothing)."""
    for name, (klass, make) in ERROR_CASES.items():
        words = make(SMALL)
        want = expected_error(words, SMALL)
        if klass != "program":
            assert OPCODE_NAMES.get(words[want.index] & 0xF) == klass, name


def test_error_status_names_the_first_failing_instruction():
    with funccov.collecting() as cov:
        assert not error_problems(SMALL)
    status = cov.table()["small"]["status"]
    assert status["hit"] == status["total"], status["missed"]


def test_runtime_deadlock_is_reported():
    from bitbranch.simulator import run

    program = assemble("sync unit=load\nsync unit=compute pop_prev\nsync unit=store\nfinish")
    with pytest.raises(errors.DeadlockError) as exc:
        run((program, bytes(64), SMALL), check_deadlock=False)
    r = run_rtl(program, bytes(64), SMALL)
    assert r.finished and r.status == ST["DEADLOCK"] and r.err_index == exc.value.index == 1


def cross_check(program, **kwargs):
    return _cross_check((program, bytes(64), SMALL), **kwargs)


def test_cycle_limit_stops_a_run():
    program = assemble("\n".join([LONG_BGEMM] * 4 + ["finish"]))
    r = run_rtl(program, bytes(64), SMALL, max_cycles=100)
    assert not r.finished
    check = cross_check(program, max_cycles=100)
    assert not check.ok and check.hang is not None
    # four long BGEMMs: the compute unit is on the second one at cycle 100; load and store have nothing to do
    assert check.hang[1].startswith("compute unit stuck on instruction 1 (bgemm)"), check.hang
    assert "retired all its 0 instructions" in check.hang[0]
    assert "cycle limit" in check.explain() and "compute unit stuck on instruction 1" in check.explain()


def test_batched_runs_are_independent():
    """A program leaves buffers and DRAM behind; the next run in the same simulation must not see them."""
    import numpy as np

    from bitbranch.simulator.randprog import random_program

    a = random_program(SMALL, np.random.default_rng(11), 40)
    b = random_program(SMALL, np.random.default_rng(12), 40)
    alone = run_rtl(*b, SMALL)
    after = run_rtl_batch([a, b, b], SMALL)
    for r in after[1:]:
        assert (r.cycles, r.dram, r.trace) == (alone.cycles, alone.dram, alone.trace)
