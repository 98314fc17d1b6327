"""The whole RTL core on directed programs (small preset): the timing contract cycle by cycle, every
same-cycle rule of docs/timing.md, the error/status register, run-time deadlock, the cycle limit, and
that runs batched in one simulation are independent. All RTL runs of a test share one simulation."""

from __future__ import annotations

import pytest
from worked_example import WORKED_EXAMPLE

from bitbranch.isa import errors
from bitbranch.isa.asm import assemble
from bitbranch.isa.encoding import encode
from bitbranch.isa.hwconfig import get_config
from bitbranch.isa.validate import validate_program
from bitbranch.rtlharness.bench_core import run_rtl, run_rtl_batch
from bitbranch.rtlharness.build import verilator_bin_dir
from bitbranch.rtlharness.compare import cross_check_batch
from bitbranch.rtlharness.status import error_class, status_codes

pytestmark = pytest.mark.skipif(not (verilator_bin_dir() / "verilator").exists(), reason="verilator not installed")

SMALL = get_config("small")
ST = status_codes()

# docs/timing.md section 8 (WORKED_EXAMPLE): expected (start, grant, end) per instruction
WORKED_TABLE = [(1, 2, 19), (2, 19, 30), (19, 30, 52), (52, -1, 63), (63, -1, 67), (67, 68, 81), (67, -1, 68)]

LONG_BGEMM = "bgemm kbits=1 mbits=1 oh=4 ow=4 kh=3 kw=3 stride=1 dil=1 cw=1 ctiles=1 irow=6 ipix=1"

# One program per rule of docs/timing.md (sections 2-5), cross-checked against the simulator.
RULES = {
    "one dispatch per cycle": "sync unit=load\nsync unit=store\nsync unit=load\nsync unit=store\nfinish",
    "full instruction queue blocks fetch": "\n".join(
        [LONG_BGEMM] + ["sync unit=compute"] * 5 + ["sync unit=load", "finish"]),
    "token pushed at t is popped at t": "load buf=inp rows=1 len=1 push_next\nsync unit=compute pop_prev\nfinish",
    "pop from a full token queue frees a push": "\n".join(
        [LONG_BGEMM] + ["sync unit=load push_next"] * 5 + ["sync unit=compute pop_prev"] * 5 + ["finish"]),
    "same-cycle requests: load wins": "\n".join(
        [LONG_BGEMM, "sync unit=compute push_prev push_next", "load buf=inp rows=1 len=1 pop_next",
         "store buf=acc rows=1 len=1 pop_prev", "finish"]),
    "earlier store request wins": "\n".join(
        [LONG_BGEMM, "sync unit=compute push_next", "sync unit=compute push_prev", "load buf=inp rows=1 len=1 pop_next",
         "store buf=acc rows=1 len=1 pop_prev", "finish"]),
    "back-to-back DMA pays the request cycle": "load buf=inp rows=1 len=1\nload buf=inp sram=1 rows=1 len=1\nfinish",
    "both pops and both pushes in one cycle": "\n".join(
        ["sync unit=load push_next", "sync unit=store push_prev",
         "sync unit=compute pop_prev pop_next push_prev push_next",
         "sync unit=load pop_next", "sync unit=store pop_prev", "finish"]),
    "pushes block on full queues in both directions": "\n".join(
        ["sync unit=compute push_prev push_next"] * 6 + ["sync unit=load pop_next"] * 6
        + ["sync unit=store pop_prev"] * 6 + [LONG_BGEMM, "finish"]),
    "load with padding on every side": "load buf=inp rows=2 len=3 dstride=24 pad_top=1 pad_bottom=2 pad_left=1 "
                                       "pad_right=2\nfinish",
    "strided store": "store buf=acc rows=3 len=2 dstride=40 sstride=3\nfinish",
    "every compute latency": "\n".join([
        "bgemm kbits=2 mbits=3 oh=3 ow=3 kh=3 kw=2 stride=1 dil=1 cw=2 ctiles=2 irow=16 ipix=4",
        "requant dest=out n=5 ostride=2 kout=2 hi=3", "requant dest=acc res=1 n=3 rk=2 rstride=2 shift=3",
        "pool mode=max k=1 oh=3 ow=2 kh=2 kw=3 stride=1 irow=4 ipix=1 ostride=1",
        "pool mode=sum k=3 oh=2 ow=2 kh=2 kw=2 stride=2 irow=12 ipix=3", "finish"]),
    # bank conflicts (docs/timing.md 4.1): the ACC stall, back to back so the first one's last write-back
    # meets the second one's first read; OUT write groups of requant and max pool
    "ACC stall": "\n".join(["load buf=inp rows=1 len=8", "load buf=wgt rows=1 len=4 push_next"]
                           + ["bgemm kbits=1 mbits=1 oh=5 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 irow=1 ipix=1 "
                              "accumulate=1 ctiles=3 pop_prev"]
                           + ["bgemm kbits=1 mbits=1 oh=4 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 irow=1 ipix=1 "
                              "accumulate=1 ctiles=4 acc=5"] + ["finish"]),
    "OUT write groups": "\n".join(["requant dest=out n=5 ostride=9 kout=2 hi=3",
                                   "requant dest=out n=3 ostride=20 kout=8 hi=255",
                                   "pool mode=max k=1 oh=3 ow=2 kh=2 kw=3 stride=1 irow=4 ipix=1 ostride=9",
                                   "finish"]),
}


def test_worked_example_cycle_by_cycle():
    program = assemble(WORKED_EXAMPLE)
    r = run_rtl(program, bytes(1024), SMALL)
    assert r.ok and r.cycles == 81
    assert [(t.start, t.grant, t.end) for t in r.trace] == WORKED_TABLE
    assert [t.unit for t in r.trace] == [0, 2, 0, 1, 1, 2, 1]


def test_timing_rules_match_the_simulator():
    programs = {name: assemble(text) for name, text in RULES.items()}
    checks = cross_check_batch([(p, bytes(4096), SMALL) for p in programs.values()])
    bad = {name: c.first.describe() if c.first else (c.cycles_rtl, c.cycles_sim)
           for name, c in zip(programs, checks, strict=True) if not c.ok}
    assert not bad, bad


# --- errors ----------------------------------------------------------------------------------------
def _words(text: str) -> list[int]:
    return [encode(i) for i in assemble(text)]


def expected_error(words: list[int], dram_size: int) -> tuple[type, int]:
    """The isa error class and index the simulator side reports for a program of raw words."""
    from bitbranch.isa.encoding import decode

    program = []
    for k, w in enumerate(words):
        try:
            program.append(decode(w, k))
        except errors.IsaError as exc:
            return type(exc), k
    try:
        validate_program(program, SMALL, dram_size, check_deadlock=False)
    except errors.IsaError as exc:
        return type(exc), exc.index
    raise AssertionError("program is valid")


ERROR_CASES = {
    "unknown opcode": lambda: _words("sync unit=load") + [0xF, encode(assemble("finish")[0])],
    "reserved bit": lambda: [encode(assemble("sync unit=load")[0]) | 1 << 200] + _words("finish"),
    "field out of range": lambda: [encode(assemble("sync unit=load")[0]) | 3 << 8] + _words("finish"),
    "token flag without neighbour": lambda: _words("sync unit=load\nload buf=inp rows=1 len=1 pop_prev\nfinish"),
    "buffer overrun": lambda: _words("load buf=inp sram=1023 rows=1 len=2\nfinish"),
    "DRAM overrun": lambda: _words("load buf=inp dram=4090 rows=1 len=1\nfinish"),
    "cross-field rule": lambda: _words("bgemm wmode=equal kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 "
                                       "ctiles=1\nfinish"),
    "finish not last": lambda: _words("finish\nsync unit=load\nfinish"),
    "missing finish": lambda: _words("sync unit=load\nsync unit=store"),
}


def test_error_status_names_the_first_failing_instruction():
    programs = {name: make() for name, make in ERROR_CASES.items()}
    results = run_rtl_batch([(words, bytes(4096)) for words in programs.values()], SMALL)
    for (name, words), r in zip(programs.items(), results, strict=True):
        cls, index = expected_error(words, 4096)
        assert r.finished, name
        assert issubclass(cls, error_class(r.status)) and r.err_index == index, (name, r.status_name, r.err_index,
                                                                                  cls.__name__, index)


def test_runtime_deadlock_is_reported():
    from bitbranch.simulator import run

    program = assemble("sync unit=load\nsync unit=compute pop_prev\nsync unit=store\nfinish")
    with pytest.raises(errors.DeadlockError) as exc:
        run((program, bytes(64), SMALL), check_deadlock=False)
    r = run_rtl(program, bytes(64), SMALL)
    assert r.finished and r.status == ST["DEADLOCK"] and r.err_index == exc.value.index == 1


def test_cycle_limit_stops_a_run():
    program = assemble("\n".join([LONG_BGEMM] * 4 + ["finish"]))
    r = run_rtl(program, bytes(64), SMALL, max_cycles=100)
    assert not r.finished


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
