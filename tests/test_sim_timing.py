"""Timing contract (docs/timing.md): hand-computed cycle counts for every instruction class and every
machine rule (fetch/decode, queue back-pressure, tokens, DRAM arbitration), on the "small" preset:

    R=2 rows, C=4 cols, W=64, P=1; L=dram_latency=8, B=8 bytes/cycle, dma_row_overhead=1;
    gemm_pipeline=3, alu_pipeline=2; queue_depth=4, token_depth=4.
    Entry bytes: inp/out 8, acc 16, wgt 32, const 64.

Each program's arithmetic is written next to it. Records are (dispatch, start, end) per instruction.
"""

from __future__ import annotations

import pytest
from worked_example import WORKED_EXAMPLE

from bitbranch.isa.asm import assemble
from bitbranch.isa.hwconfig import get_config
from bitbranch.simulator import run
from bitbranch.simulator.timing import instruction_timing

SMALL = get_config("small")

# A medium BGEMM used to keep the compute unit busy: 3 + ceil(4*4/2) * 1*3*3*1 * ceil(1*1/1) = 3 + 72 = 75.
LONG_BGEMM = "bgemm kbits=1 mbits=1 oh=4 ow=4 kh=3 kw=3 stride=1 dil=1 cw=1 ctiles=1 irow=6 ipix=1"
LONG = 75


def simulate(text: str, dram_bytes: int = 256, **kwargs):
    return run((assemble(text), bytes(dram_bytes), SMALL), **kwargs)


def times(result) -> list[tuple[int, int, int]]:
    ts = result.timestamps
    return list(zip(ts.dispatch, ts.start, ts.end, strict=True))


# --- one instruction of each class -------------------------------------------------------------------
def test_load_with_padding():
    # width = 1 + 3 + 2 = 6 entries of 8 bytes -> ceil(48 / 8) = 6 beats; rows = 1 + 2 + 1 = 4
    # hold = 8 + 4 * (6 + 1) = 36. Dispatch 0, decode -> start 1, request at 1, grant 2, end 2 + 36 = 38.
    # finish: dispatch 1, start 2, end 3. Total = 38.
    r = simulate("load buf=inp rows=2 len=3 dstride=24 pad_top=1 pad_bottom=1 pad_left=1 pad_right=2\nfinish")
    assert times(r) == [(0, 1, 38), (1, 2, 3)]
    assert r.timestamps.grant[0] == 2
    assert r.cycles == 38
    assert r.dram_read == 2 * 3 * 8  # data rows only: padding is generated, not read
    assert r.units["load"].busy == 36 and r.units["load"].stalled_on_dram == 1


def test_store():
    # acc entries are 16 bytes: ceil(2 * 16 / 8) = 4 beats per row; hold = 8 + 3 * (4 + 1) = 23.
    # start 1, grant 2, end 25. Total 25.
    r = simulate("store buf=acc rows=3 len=2 dstride=32\nfinish")
    assert times(r) == [(0, 1, 25), (1, 2, 3)]
    assert r.cycles == 25 and r.dram_written == 3 * 2 * 16


def test_bgemm_latency_and_bitops():
    # passes = ceil(3*3 / 2) = 5; branch groups = ceil(2*3 / 1) = 6
    # latency = 3 + 5 * ctiles 2 * kh 3 * kw 2 * cw 2 * 6 = 3 + 720 = 723: start 1, end 724.
    # finish: dispatch 1, waits for the compute unit: start 724, end 725.
    text = "bgemm kbits=2 mbits=3 oh=3 ow=3 kh=3 kw=2 stride=1 dil=1 cw=2 ctiles=2 irow=16 ipix=4\nfinish"
    r = simulate(text)
    assert times(r) == [(0, 1, 724), (1, 724, 725)]
    # bit-ops = oh*ow*ctiles*C*kh*kw*cw*W*kbits*mbits = 9*2*4*3*2*2*64*2*3 = 331776
    assert r.stats.bitops == 331776
    assert r.utilization == pytest.approx(331776 / (2 * 4 * 64 * 1 * 725))


def test_requant():
    # 2 + ceil(5 / 2) = 5: start 1, end 6; finish 6..7.
    r = simulate("requant dest=out n=5 ostride=2 kout=2 hi=3\nfinish")
    assert times(r) == [(0, 1, 6), (1, 6, 7)]


def test_pool():
    # 2 + ceil(3*2 / 2) * 2 * 3 = 2 + 18 = 20: start 1, end 21; finish 21..22.
    r = simulate("pool mode=max k=1 oh=3 ow=2 kh=2 kw=3 stride=1 irow=4 ipix=1 ostride=1\nfinish")
    assert times(r) == [(0, 1, 21), (1, 21, 22)]


# --- bank conflicts (docs/timing.md 4.1) -------------------------------------------------------------
def test_acc_stall_one_step_accumulating_bgemm_over_three_tiles():
    # kh = kw = cw = 1, kbits*mbits = 1 (one issue per tile), accumulate, ctiles 3: every issue is followed by
    # a gap cycle. passes = ceil(3*1 / 2) = 2: 3 + 2 * 3 * 1 * 2 = 15: start 1, end 16.
    one = "bgemm kbits=1 mbits=1 oh=3 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 irow=1 ipix=1 accumulate={a} ctiles={t}"
    assert times(simulate(one.format(a=1, t=3) + "\nfinish"))[0] == (0, 1, 16)
    # no stall without accumulate, with 2 tiles, or with two issues per tile (kw = 2)
    assert times(simulate(one.format(a=0, t=3) + "\nfinish"))[0] == (0, 1, 1 + 3 + 2 * 3)
    assert times(simulate(one.format(a=1, t=2) + "\nfinish"))[0] == (0, 1, 1 + 3 + 2 * 2)
    two = one.replace("kw=1", "kw=2").replace("irow=1", "irow=2")
    assert times(simulate(two.format(a=1, t=3) + "\nfinish"))[0] == (0, 1, 1 + 3 + 2 * 3 * 2)


def test_out_write_groups():
    # small: 8R = 16 OUT banks. ostride 9 > 8: g = min(2, 16 // 9) = 1 row per group, 2 groups per pass:
    # requant 2 + ceil(5 / 2) * 2 = 8: start 1, end 9. ostride 8: one group, 2 + 3 = 5.
    assert times(simulate("requant dest=out n=5 ostride=9 kout=2 hi=3\nfinish"))[0] == (0, 1, 9)
    assert times(simulate("requant dest=out n=5 ostride=8 kout=2 hi=3\nfinish"))[0] == (0, 1, 6)
    assert times(simulate("requant dest=out n=1 ostride=0 kout=2 hi=3\nfinish"))[0] == (0, 1, 4)
    # max pool: one gap cycle after each pass's last window position: 2 + ceil(6 / 2) * (2*3 + 1) = 23
    r = simulate("pool mode=max k=1 oh=3 ow=2 kh=2 kw=3 stride=1 irow=4 ipix=1 ostride=9\nfinish", dram_bytes=256)
    assert times(r)[0] == (0, 1, 24)


def test_sync_and_finish():
    # sync on load: start 1, end 2; finish dispatched at 1, start 2, end 3.
    assert times(simulate("sync unit=load\nfinish")) == [(0, 1, 2), (1, 2, 3)]
    assert times(simulate("finish")) == [(0, 1, 2)]


def test_timing_module_is_the_single_formula_source():
    insn = assemble("load buf=wgt rows=2 len=1 pad_top=1")[0]
    # wgt entry 32 bytes -> 4 beats; rows 3: 8 + 3 * (4 + 1) = 23
    assert instruction_timing(insn, SMALL).dram_hold == 23


# --- fetch, decode, queues ------------------------------------------------------------------------
def test_fetch_dispatches_one_per_cycle_and_decode_adds_one():
    # load/store syncs alternate: dispatch k at cycle k, each starts at k + 1 and ends at k + 2.
    r = simulate("sync unit=load\nsync unit=store\nsync unit=load\nsync unit=store\nfinish")
    assert times(r) == [(0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 6)]


def test_instruction_queue_full_blocks_fetch():
    # bgemm (75 cycles) is taken out of the compute queue at dispatch (cycle 0) and runs 1..76.
    # c1..c4 fill the 4-entry queue at cycles 1..4; c5 waits for a free slot: c1 is taken when the
    # unit frees at 76, so c5 is dispatched at 76. The load sync behind it: dispatch 77, runs 78..79.
    # Compute: c1 76..77, c2 77..78, c3 78..79, c4 79..80, c5 80..81; finish dispatched 78 -> 81..82.
    text = "\n".join([LONG_BGEMM] + ["sync unit=compute"] * 5 + ["sync unit=load", "finish"])
    r = simulate(text)
    e = 1 + LONG
    assert times(r) == [
        (0, 1, e),
        (1, e, e + 1), (2, e + 1, e + 2), (3, e + 2, e + 3), (4, e + 3, e + 4),
        (e, e + 4, e + 5),
        (e + 1, e + 2, e + 3),
        (e + 2, e + 5, e + 6),
    ]
    assert r.stats.fetch_stalled == e - 5  # fetch wanted to dispatch c5 at cycle 5


# --- tokens ---------------------------------------------------------------------------------------
def test_token_wait():
    # load inp 1 row x 1 entry: hold = 8 + 1 * (1 + 1) = 10; start 1, grant 2, end 12, pushes at 12.
    # The compute sync (dispatch 1, ready 2) pops that token at 12 -> runs 12..13; finish 13..14.
    r = simulate("load buf=inp rows=1 len=1 push_next\nsync unit=compute pop_prev\nfinish")
    assert times(r) == [(0, 1, 12), (1, 12, 13), (2, 13, 14)]
    assert r.units["compute"].stalled_on_token == 10


def test_token_queue_full_stalls_the_push():
    # Load syncs L1..L5 (dispatch 1..5) run 2..3, 3..4, 4..5, 5..6, 6..7 and push a token each; the
    # 4-entry token queue is full after L4, so L5's push waits until compute pops the first token.
    # Compute runs the bgemm 1..76, then C1 (dispatch 6) pops at 76 -> L5 frees at 76.
    # C1..C4 dispatched 6..9; C5 waits for a compute queue slot: dispatched at 76 (C1 taken);
    # finish dispatched 77. Compute: C1 76..77 .. C5 80..81, finish 81..82.
    text = "\n".join([LONG_BGEMM] + ["sync unit=load push_next"] * 5 + ["sync unit=compute pop_prev"] * 5
                     + ["finish"])
    r = simulate(text, trace=True)
    e = 1 + LONG
    l5 = r.trace[5]
    assert (l5.start, l5.end, l5.free) == (6, 7, e)
    assert r.units["load"].stalled_on_token == e - 7
    assert [rec.start for rec in r.trace[6:]] == [e, e + 1, e + 2, e + 3, e + 4, e + 5]
    assert r.cycles == e + 6


# --- DRAM arbitration -----------------------------------------------------------------------------
# load inp 1x1: hold 10. store out 1x1: 8 + 1 * (1 + 1) = 10. store acc 1x1 (16 bytes): 8 + (2 + 1) = 11.
def test_same_cycle_requests_load_wins():
    # bgemm 1..76; sync C (dispatch 1, ready 2, waits for the unit) runs 76..77 and pushes to both
    # neighbours at 77. load (dispatch 2) and store (dispatch 3) pop at 77 and request the port at 77.
    # Grant at 78: load wins -> 78..88; store granted at 88 -> 88..99.
    text = "\n".join([LONG_BGEMM, "sync unit=compute push_prev push_next", "load buf=inp rows=1 len=1 pop_next",
                      "store buf=acc rows=1 len=1 pop_prev", "finish"])
    r = simulate(text)
    e = 1 + LONG
    assert r.timestamps.start[2:4] == [e + 1, e + 1]
    assert r.timestamps.grant[2:4] == [e + 2, e + 12]
    assert r.timestamps.end[2:4] == [e + 12, e + 23]
    assert r.cycles == e + 23
    assert r.units["store"].stalled_on_dram == 11


def test_earlier_store_request_wins():
    # sync C1 runs 76..77 and pushes to store at 77; sync C2 runs 77..78 and pushes to load at 78.
    # store requests at 77, load at 78. Decision at 78 considers requests raised before 78: the
    # store only -> store 78..89 (acc, hold 11); load granted at 89 -> 89..99.
    text = "\n".join([LONG_BGEMM, "sync unit=compute push_next", "sync unit=compute push_prev",
                      "load buf=inp rows=1 len=1 pop_next", "store buf=acc rows=1 len=1 pop_prev", "finish"])
    r = simulate(text)
    e = 1 + LONG
    assert r.timestamps.start[3:5] == [e + 2, e + 1]
    assert r.timestamps.grant[3:5] == [e + 13, e + 2]
    assert r.timestamps.end[3:5] == [e + 23, e + 13]


def test_back_to_back_dma_on_one_unit():
    # load A: start 1, grant 2, end 12. load B (dispatch 1, ready 2) starts when the unit frees at 12,
    # requests at 12, granted 13, ends 23: the one-cycle request latency is paid per DMA.
    r = simulate("load buf=inp rows=1 len=1\nload buf=inp sram=1 rows=1 len=1\nfinish")
    assert times(r)[:2] == [(0, 1, 12), (1, 12, 23)]
    assert r.units["load"].stalled_on_dram == 2


# --- accounting -----------------------------------------------------------------------------------
def test_unit_cycles_add_up():
    text = "\n".join([LONG_BGEMM, "sync unit=compute push_prev push_next", "load buf=inp rows=1 len=1 pop_next",
                      "store buf=acc rows=1 len=1 pop_prev", "finish"])
    r = simulate(text)
    for name, u in r.units.items():
        total = u.busy + u.stalled_on_queue + u.stalled_on_token + u.stalled_on_dram + u.idle
        assert total == r.cycles, name
    assert r.units["compute"].busy == LONG + 1 + 1
    assert r.instruction_mix == {"bgemm": 1, "sync": 1, "load": 1, "store": 1, "finish": 1}


# --- the worked example of docs/timing.md --------------------------------------------------------


def test_worked_example_from_docs():
    # Every number below is derived by hand in docs/timing.md section 8.
    r = simulate(WORKED_EXAMPLE, dram_bytes=1024)
    ts = r.timestamps
    assert ts.dispatch == [0, 1, 2, 3, 4, 5, 6]
    assert ts.start == [1, 2, 19, 52, 63, 67, 67]
    assert ts.grant == [2, 19, 30, -1, -1, 68, -1]
    assert ts.end == [19, 30, 52, 63, 67, 81, 68]
    assert r.cycles == 81
    u = r.units
    assert (u["load"].busy, u["load"].stalled_on_dram, u["load"].stalled_on_queue, u["load"].idle) == (39, 12, 1, 29)
    assert (u["store"].busy, u["store"].stalled_on_dram, u["store"].stalled_on_token, u["store"].stalled_on_queue) \
        == (24, 18, 37, 2)
    assert (u["compute"].busy, u["compute"].stalled_on_token, u["compute"].stalled_on_queue, u["compute"].idle) \
        == (16, 48, 4, 13)
