"""Activity counts (simulator.activity) against hand-computed counts on tiny programs, on the "small"
preset: R=2 rows, C=4 cols, W=64, P=1, DRAM beats of B=8 bytes. Entry bytes: inp/out 8, acc 16, wgt 32,
const 64. The counts are what the RTL does (tests/test_rtl_activity.py checks the RTL's counters equal them):
INP is R copies, INP/WGT are read as windows (BGEMM: P INP planes, mbits WGT planes; else 8 entries), STORE reads
whole beats, the PE array and the ALU
work on all R rows of a pass.
"""

from __future__ import annotations

import pytest

from bitbranch.isa.asm import assemble
from bitbranch.isa.hwconfig import get_config
from bitbranch.simulator import run
from bitbranch.simulator.activity import ACTIONS

SMALL = get_config("small")


def counts(text: str, dram_bytes: int = 4096) -> dict[str, int]:
    r = run((assemble(text), bytes(dram_bytes), SMALL))
    total = r.activity.total()
    assert r.to_json_dict()["activity"] == total
    return total


def nonzero(c: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in c.items() if v}


def test_load_counts_padding_as_sram_writes():
    # data 2 rows x 3 entries x 8 B read from DRAM; SRAM written (1+2+1) x (1+3+2) = 24 entries x 64 bits,
    # in each of the R = 2 copies of INP
    c = counts("load buf=inp rows=2 len=3 dstride=24 pad_top=1 pad_bottom=1 pad_left=1 pad_right=2\nfinish")
    assert nonzero(c) == {"dram_read": 2 * 3 * 64, "inp_write": 2 * 24 * 64, "fetches": 2}
    c = counts("load buf=wgt rows=1 len=2\nfinish")  # one copy
    assert nonzero(c) == {"dram_read": 2 * 256, "wgt_write": 2 * 256, "fetches": 2}


def test_store_counts():
    # ACC entries are 16 bytes, beats 8: each of a row's 4 beats reads a whole 128-bit entry
    c = counts("store buf=acc rows=3 len=2 dstride=32\nfinish")
    assert nonzero(c) == {"acc_read": 3 * 4 * 128, "dram_write": 3 * 2 * 128, "fetches": 2}
    c = counts("store buf=out rows=2 len=3 dstride=32\nfinish")  # OUT entries are one beat
    assert nonzero(c) == {"out_read": 2 * 3 * 64, "dram_write": 2 * 3 * 64, "fetches": 2}


def test_bgemm_counts():
    # pixels 3x3 = 9, passes ceil(9/2) = 5; steps/pass = ctiles 2 * kh 3 * kw 2 * cw 2 = 24; pairs 2*3 = 6 in
    # groups of P = 1: 144 issues per pass, 720 in all
    c = counts("bgemm kbits=2 mbits=3 oh=3 ow=3 kh=3 kw=2 stride=1 dil=1 cw=2 ctiles=2 irow=8 ipix=4 accumulate=1\n"
               "finish")
    assert nonzero(c) == {
        "inp_read": 9 * 144 * 1 * 64,  # every valid row, every issue: a window of P = 1 W-bit words
        "wgt_read": 720 * 3 * 4 * 64,  # every issue: mbits = 3 C*W-bit entries (rows don't matter)
        "acc_read": 9 * 2 * 4 * 32,  # accumulate=1: each (pixel, tile) entry once
        "acc_write": 9 * 2 * 4 * 32,
        "bitops": 720 * 2 * 4 * 1 * 64,  # the whole array (R x C PEs x P branches) every issue
        "accumulates": 720 * 2 * 4 * 1,
        "fetches": 2,
    }


def test_bgemm_overwrite_reads_no_acc():
    c = counts("bgemm kbits=1 mbits=1 oh=1 ow=3 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1 irow=3 ipix=1\nfinish")
    assert c["acc_read"] == 0 and c["acc_write"] == 3 * 128
    assert c["wgt_read"] == 2 * 1 * 4 * 64  # two passes (rows 2 + 1), one window of mbits = 1 entries each


def test_requant_counts():
    # n=5 -> 3 passes: CONST record (4 lanes x 128 bits) per pass; residual: an 8-entry INP window per pixel;
    # out 3 planes masked to C; lanes: R x C per pass
    c = counts("requant dest=out res=1 n=5 ostride=3 kout=3 hi=7 rk=2 rstride=2\nfinish")
    assert nonzero(c) == {
        "const_read": 3 * 4 * 128, "acc_read": 5 * 128, "inp_read": 5 * 8 * 64, "out_write": 5 * 3 * 4,
        "requant_lanes": 3 * 2 * 4, "residual_lanes": 3 * 2 * 4, "fetches": 2,
    }
    c = counts("requant dest=acc n=2\nfinish")
    assert nonzero(c) == {"const_read": 4 * 128, "acc_read": 2 * 128, "acc_write": 2 * 128,
                          "requant_lanes": 8, "fetches": 2}


@pytest.mark.parametrize("mode", ["max", "sum"])
def test_pool_counts(mode):
    # 3x1 outputs (2 passes of R = 2 rows), 3x3 window, k=2 planes
    c = counts(f"pool mode={mode} k=2 oh=3 ow=1 kh=3 kw=3 stride=1 irow=8 ipix=2 ostride=2\nfinish")
    expect = {"inp_read": 3 * 9 * 8 * 64, "pool_lanes": 2 * 9 * 2 * 4, "fetches": 2}
    expect.update({"out_write": 3 * 2 * 4} if mode == "max" else {"acc_write": 3 * 128})
    assert nonzero(c) == expect


def test_sync_counts_only_a_fetch():
    c = counts("sync unit=load\nfinish")
    assert nonzero(c) == {"fetches": 2}


def test_dram_bits_equal_the_datapath_bytes_on_random_programs():
    """The activity's DRAM bits agree with the bytes the datapath really moved."""
    import numpy as np

    from bitbranch.simulator.randprog import random_program

    for seed in range(6):
        program, dram = random_program(SMALL, np.random.default_rng(seed), 40)
        r = run((program, dram, SMALL))
        total = r.activity.total()
        assert total["dram_read"] == 8 * r.dram_read and total["dram_write"] == 8 * r.dram_written
        assert total["fetches"] == r.instructions and total["bitops"] >= r.stats.bitops
        assert r.activity.counts.shape == (r.instructions, len(ACTIONS))
