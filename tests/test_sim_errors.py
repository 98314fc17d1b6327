"""Run-time failures: deadlock (static check skipped), cycle limit, illegal programs; trace files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bitbranch.isa.asm import assemble
from bitbranch.isa.errors import (
    BufferOverrun,
    DeadlockError,
    DramOverrun,
    FieldRangeError,
    IllegalInstruction,
    TokenError,
)
from bitbranch.isa.hwconfig import get_config
from bitbranch.simulator import CycleLimitError, run
from bitbranch.simulator.randprog import random_program

SMALL = get_config("small")
LONG_BGEMM = "bgemm kbits=2 mbits=3 oh=3 ow=3 kh=3 kw=2 stride=1 dil=1 cw=2 ctiles=2 irow=16 ipix=4"  # 1..724


def simulate(text: str, dram_bytes: int = 256, **kwargs):
    return run((assemble(text), bytes(dram_bytes), SMALL), **kwargs)


# --- deadlock -------------------------------------------------------------------------------------
def test_runtime_deadlock_names_the_blocked_unit():
    text = "sync unit=compute pop_prev\nfinish"
    with pytest.raises(DeadlockError) as info:
        simulate(text, check_deadlock=False)
    message = str(info.value)
    assert "runtime deadlock" in message
    assert "compute unit waits to pop a token from load for instruction 0 (sync)" in message
    assert info.value.index == 0


def test_runtime_deadlock_is_reported_as_such_under_a_cycle_limit():
    with pytest.raises(DeadlockError, match="runtime deadlock from cycle 1: compute unit waits"):
        simulate("sync unit=compute pop_prev\nfinish", check_deadlock=False, max_cycles=1000)


def test_runtime_deadlock_between_two_units():
    text = "sync unit=load pop_next push_next\nsync unit=compute pop_prev push_prev\nload buf=inp rows=1 len=1\nfinish"
    with pytest.raises(DeadlockError) as info:
        simulate(text, check_deadlock=False)
    message = str(info.value)
    assert "load unit waits to pop a token from compute for instruction 0" in message
    assert "compute unit waits to pop a token from load for instruction 1" in message
    assert "store" not in message  # the store unit had nothing to do: not blocked


def test_runtime_deadlock_with_fetch_blocked_on_a_full_queue():
    # compute waits for a token the load unit would push only from its 6th instruction, which fetch
    # cannot dispatch: the compute queue (depth 4) is full of instructions dispatched before it.
    lines = ["sync unit=compute pop_prev"] + ["sync unit=compute"] * 5 + ["sync unit=load push_next", "finish"]
    with pytest.raises(DeadlockError) as info:
        simulate("\n".join(lines), check_deadlock=False)
    assert "fetch waits for a slot in the compute queue to dispatch instruction 5 (sync)" in str(info.value)


def test_static_check_catches_the_same_deadlock_first():
    with pytest.raises(DeadlockError) as info:
        simulate("sync unit=compute pop_prev\nfinish")
    assert "runtime" not in str(info.value)


# --- cycle limit ----------------------------------------------------------------------------------
def test_max_cycles_stops_a_long_program():
    with pytest.raises(CycleLimitError, match=r"did not finish within --max-cycles=100 \(0 of 2 instructions"):
        simulate(LONG_BGEMM + "\nfinish", max_cycles=100)


def test_max_cycles_boundary_is_inclusive():
    assert simulate(LONG_BGEMM + "\nfinish", max_cycles=725).cycles == 725
    with pytest.raises(CycleLimitError):
        simulate(LONG_BGEMM + "\nfinish", max_cycles=724)


# --- illegal programs -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "error", "index"),
    [
        ("sync unit=load\nload buf=inp sram=1020 rows=1 len=8\nfinish", BufferOverrun, 1),
        ("sync unit=load\nsync unit=load\nload buf=inp dram=250 rows=1 len=1\nfinish", DramOverrun, 2),
        ("load buf=inp rows=1 len=1 pop_prev\nfinish", TokenError, 0),
        ("requant dest=out n=1 kout=2 lo=3 hi=1\nfinish", FieldRangeError, 0),
        ("finish\nsync unit=load", IllegalInstruction, 0),
        ("sync unit=load", IllegalInstruction, 0),
    ],
)
def test_illegal_program_raises_isa_error_with_index(text, error, index):
    with pytest.raises(error) as info:
        simulate(text)
    assert info.value.index == index
    assert f"instruction {index}" in str(info.value)


def test_unknown_datapath_is_refused():
    with pytest.raises(ValueError, match="unknown datapath 'magic'"):
        simulate("finish", datapath="magic")


# --- traces ---------------------------------------------------------------------------------------
def test_trace_jsonl_has_one_record_per_instruction(tmp_path):
    program, dram = random_program(SMALL, np.random.default_rng(4), 30)
    result = run((program, dram, SMALL), trace=True)
    path = tmp_path / "t.jsonl"
    result.write_trace_jsonl(path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(len(program)))
    assert [r["op"] for r in records] == [insn.op for insn in program]
    for r in records:
        assert r["dispatch"] < r["start"] < r["end"] <= result.cycles
        assert (r["grant"] > r["start"]) == (r["op"] in ("load", "store"))
    stores = [r for r in records if r["op"] == "store"]
    assert stores and all(w[0] == "dram" for r in stores for w in r["writes"])
    loads = [r for r in records if r["op"] == "load"]
    assert all(r["writes"][0][0] in ("inp", "wgt", "const") for r in loads)


def test_chrome_trace_has_one_track_per_unit(tmp_path):
    program, dram = random_program(SMALL, np.random.default_rng(5), 30)
    result = run((program, dram, SMALL))
    path = tmp_path / "t.json"
    result.write_chrome_trace(path)
    trace = json.loads(path.read_text())
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "thread_name"}
    assert sorted(names.values()) == ["compute", "dram port", "load", "store"]
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    by_track = {names[e["tid"]] for e in spans}
    assert by_track == {"load", "compute", "store", "dram port"}
    unit_spans = [e for e in spans if names[e["tid"]] != "dram port"]
    assert len(unit_spans) == len(program)
    for e in unit_spans:
        assert names[e["tid"]] == program[e["args"]["index"]].exec_unit.name.lower()
    dma = [e for e in spans if names[e["tid"]] == "dram port"]
    assert len(dma) == sum(insn.op in ("load", "store") for insn in program)
    dma.sort(key=lambda e: e["ts"])
    for a, b in zip(dma, dma[1:], strict=False):
        assert a["ts"] + a["dur"] <= b["ts"]  # one transfer at a time
