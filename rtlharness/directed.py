"""Directed programs for the core: one per rule of the timing contract, one per error status of every
instruction class, the empty program. Shared by the tests (tests/test_rtl_core.py), the mutation and
coverage suites (`bitbranch mutate`, `bitbranch coverage`) and the functional coverage they report.

A rule program is cross-checked against the simulator like any program (outputs, cycles, traces). An error
program must stop the RTL with the status whose isa.errors class the simulator raises, at the same
instruction index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bitbranch.isa import errors
from bitbranch.isa.asm import assemble
from bitbranch.isa.banks import bank_count
from bitbranch.isa.encoding import decode, encode
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.isa.spec import INSN_BITS
from bitbranch.isa.validate import validate_program

RESIDUAL_SHIFT = 32  # `buffer ends`' residual REQUANT: CONST's int64 bias and int32 products brought into int32
LONG_BGEMM = "bgemm kbits=1 mbits=1 oh=4 ow=4 kh=3 kw=3 stride=1 dil=1 cw=1 ctiles=1 irow=6 ipix=1"


def timing_rules(hw: HwConfig) -> dict[str, str]:
    """One program per rule of docs/timing.md (sections 2-5), sized by the config's queue depths."""
    q, t = hw.queue_depth + 1, hw.token_depth + 2  # one more than fits
    e_acc = hw.entry_bytes("acc")

    def end(buf: str) -> int:
        return hw.entries(buf) - 1
    long_bgemm = LONG_BGEMM.replace("oh=4 ow=4", f"oh={2 * hw.array_rows} ow=4").replace("irow=6", "irow=6")
    return {
        "one dispatch per cycle": "sync unit=load\nsync unit=store\nsync unit=load\nsync unit=store\nfinish",
        "full instruction queue blocks fetch": "\n".join(
            [long_bgemm] + ["sync unit=compute"] * q + ["sync unit=load", "finish"]),
        "full load and store queues block fetch": "\n".join(
            [long_bgemm, "sync unit=compute push_prev push_next"]
            + ["load buf=inp rows=1 len=1 pop_next"] + ["sync unit=load"] * q
            + ["store buf=acc rows=1 len=1 pop_prev"] + ["sync unit=store"] * q + ["finish"]),
        "token pushed at t is popped at t": "load buf=inp rows=1 len=1 push_next\nsync unit=compute pop_prev\nfinish",
        "pop from a full token queue frees a push": "\n".join(
            [long_bgemm] + ["sync unit=load push_next"] * t + ["sync unit=compute pop_prev"] * t + ["finish"]),
        "compute pushes back on a full queue to load": "\n".join(
            ["sync unit=compute push_prev"] * t + ["sync unit=load pop_next"] * t + [long_bgemm, "finish"]),
        "same-cycle requests: load wins": "\n".join(
            [long_bgemm, "sync unit=compute push_prev push_next", "load buf=inp rows=1 len=1 pop_next",
             "store buf=acc rows=1 len=1 pop_prev", "finish"]),
        "earlier store request wins": "\n".join(
            [long_bgemm, "sync unit=compute push_next", "sync unit=compute push_prev",
             "load buf=inp rows=1 len=1 pop_next", "store buf=acc rows=1 len=1 pop_prev", "finish"]),
        "a store waits for a long load": "load buf=inp rows=8 len=8\nstore buf=acc rows=1 len=1\nfinish",
        "back-to-back DMA pays the request cycle":
            "load buf=inp rows=1 len=1\nload buf=inp sram=1 rows=1 len=1\nfinish",
        "both pops and both pushes in one cycle": "\n".join(
            ["sync unit=load push_next", "sync unit=store push_prev",
             "sync unit=compute pop_prev pop_next push_prev push_next",
             "sync unit=load pop_next", "sync unit=store pop_prev", "finish"]),
        "pushes block on full queues in both directions": "\n".join(
            ["sync unit=compute push_prev push_next"] * t + ["sync unit=load pop_next"] * t
            + ["sync unit=store pop_prev"] * t + [long_bgemm, "finish"]),
        "load and store push back, compute pops late": "\n".join(
            ["sync unit=load push_next"] * t + ["sync unit=store push_prev"] * t + [long_bgemm]
            + ["sync unit=compute pop_prev pop_next"] * t + ["finish"]),
        # a compute that waits on both tokens and gets them in different cycles: the load's first (pop_prev
        # fires, done is remembered while pop_next waits: bb_sched's ppd), then the longer store's
        "compute gets its two tokens in two cycles": "\n".join([
            "load buf=inp rows=2 len=4 push_next",
            f"store buf=acc rows=4 len=4 dram=2048 dstride={4 * e_acc} push_prev",
            "sync unit=compute pop_prev pop_next", "finish"]),
        # DMA counters and addresses across whole buffers (their high bits toggle): a LOAD row as wide as each
        # of INP, WGT and CONST (zero padding, one entry of data), a LOAD of ~1,000 rows, and STOREs of
        # the whole DRAM image from OUT and from ACC, after the loads (tokens: no DRAM race)
        "whole buffers": "\n".join([
            f"load buf=inp rows=1 len=1 pad_left={end('inp')}", f"load buf=wgt rows=1 len=1 pad_right={end('wgt')}",
            f"load buf=const rows=1 len=1 pad_left={end('const')}",
            f"load buf=inp rows={min(DRAM_BYTES // hw.entry_bytes('inp'), hw.entries('inp') - 510)} len=1 "
            f"dstride={hw.entry_bytes('inp')} pad_top=255 pad_bottom=255 push_next",
            "sync unit=compute pop_prev push_next",
            f"store buf=out rows=1 len={min(DRAM_BYTES // hw.entry_bytes('out'), hw.entries('out'))} pop_prev",
            f"store buf=acc rows={min(DRAM_BYTES // e_acc, hw.entries('acc'))} len=1 dstride={e_acc}", "finish"]),
        "load with padding on every side": "load buf=inp rows=2 len=3 dstride=24 pad_top=1 pad_bottom=2 pad_left=1 "
                                           "pad_right=2\nfinish",
        "strided store": f"store buf=acc rows=3 len=2 dstride={2 * e_acc + 8} sstride=3\nfinish",
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
                                   "accumulate=1 ctiles=4 acc=5"]
                                # the delayed write-backs land where they should, also in ACC's upper half
                                + ["bgemm kbits=1 mbits=1 oh=4 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 irow=1 ipix=1 "
                                   f"accumulate=1 ctiles=4 acc={hw.entries('acc') // 2 + 3} push_next",
                                   "store buf=acc sram=5 rows=1 len=4 pop_prev",
                                   f"store buf=acc sram={hw.entries('acc') // 2 + 3} rows=1 len=4 dram={4 * e_acc}",
                                   "finish"]),
        "OUT write groups": "\n".join([
            "requant dest=out n=5 ostride=9 kout=2 hi=3", "requant dest=out n=3 ostride=20 kout=8 hi=255",
            f"requant dest=out n={hw.array_rows} ostride=20 kout=8 hi=255",
            "pool mode=max k=1 oh=3 ow=2 kh=2 kw=3 stride=1 irow=4 ipix=1 ostride=9",
            f"pool mode=max k=1 oh={hw.array_rows} ow=2 kh=2 kw=3 stride=1 irow=4 ipix=1 ostride=20", "finish"]),
        # a LOAD whose row ends inside a DRAM beat (its first or a later one) must leave the rest of the beat's
        # entries alone (beats wider than entries: 64-byte beats, 8-byte entries); a pool copies them to OUT
        "partial beat": "\n".join([
            "load buf=inp rows=1 len=24", "load buf=inp dram=256 rows=1 len=3",
            "load buf=inp dram=512 rows=1 len=9 push_next",
            "pool mode=max k=1 oh=1 ow=24 kh=1 kw=1 stride=1 irow=24 ipix=1 ostride=1 pop_prev push_next",
            "store buf=out dram=1024 rows=1 len=24 pop_prev", "finish"]),
        # every class touching exactly the last entry of each buffer it addresses (an extent check off by one
        # flags these valid accesses)
        "buffer ends": "\n".join([
            # sources above the stores' DRAM bytes (LOAD and STORE run at once: a load of bytes a store writes
            # would read that store's zeros)
            f"load buf=inp sram={end('inp')} rows=1 len=1 dram=2048",
            f"load buf=inp sram={end('inp') - 2} rows=2 len=1 sstride=2 dram=2056",
            f"load buf=wgt sram={end('wgt')} rows=1 len=1 dram=2112",
            f"load buf=const sram={end('const')} rows=1 len=1 dram=2560 push_next",
            f"store buf=out sram={end('out')} rows=1 len=1", f"store buf=acc sram={end('acc') - 3} rows=2 len=1 "
            f"sstride=3 dstride={hw.entry_bytes('acc')}", f"store buf=out sram={end('out') - 3} rows=2 len=2 "
            f"dstride={2 * hw.entry_bytes('out')}",
            # the results written at the ends are stored too: a last entry the banks do not hold reads back wrong
            f"bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1 inp={end('inp')} "
            f"wgt={end('wgt')} acc={end('acc')} pop_prev push_next",
            f"store buf=acc sram={end('acc')} rows=1 len=1 dram={4 * e_acc} pop_prev push_prev",
            f"requant dest=out n=1 kout=1 hi=1 acc={end('acc')} const={end('const')} out={end('out')} pop_next",
            f"pool mode=max k=1 oh=1 ow=1 kh=1 kw=1 stride=1 irow=1 ipix=1 inp={end('inp')} out={end('out')} push_next",
            f"store buf=out sram={end('out')} rows=1 len=1 dram={8 * e_acc} pop_prev",
            f"pool mode=sum k=1 oh=1 ow=1 kh=1 kw=1 stride=1 irow=1 ipix=1 inp={end('inp')} acc={end('acc')}",
            # a residual REQUANT (all 8 planes) whose last plane is INP's last entry, on ACC's last two entries (the
            # pool sum's level in the last) and the CONST entry loaded above; its two results stored
            f"requant dest=acc res=1 n=2 rk=8 rstride=1 rinp={end('inp') - 8} acc={end('acc') - 1} "
            f"const={end('const')} shift={RESIDUAL_SHIFT} push_next",
            f"store buf=acc sram={end('acc') - 1} rows=1 len=2 dram={12 * e_acc} pop_prev",
            "finish"]),
        "field extremes": "\n".join([
            "load buf=inp rows=1 len=1 pad_top=255 pad_bottom=255", "store buf=acc rows=1 len=1",
            "bgemm kbits=8 mbits=8 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1",
            "bgemm kbits=1 mbits=1 oh=1 ow=1 kh=15 kw=15 stride=1 dil=1 cw=1 ctiles=1 irow=15 ipix=1",
            "bgemm kbits=1 mbits=1 oh=1 ow=2 kh=1 kw=2 stride=15 dil=15 cw=1 ctiles=1 irow=64 ipix=1",
            "bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=255",
            # level 255 in all 8 planes, stored before the pool below rewrites plane 0 (a level's top bit
            # dropped, e.g. 255 -> 127, shows in plane 7)
            f"requant dest=out n=1 kout=8 lo=255 hi=255 shift=62 slice={hw.slices_per_word - 1} push_next",
            "store buf=out rows=1 len=8 dram=1024 pop_prev push_prev",
            f"pool mode=max k=1 oh=1 ow=1 kh=15 kw=15 stride=15 irow=15 ipix=1 slice={hw.slices_per_word - 1} "
            "pop_next",
            "pool mode=sum k=1 oh=1 ow=1 kh=1 kw=1 stride=1", "finish"]),
        # strides at their field maxima where one pixel or one row makes any stride legal, then back to 0: every
        # bit of compute's per-row OUT/INP offsets (ostride * r, rstride * r) and of the DMA stride registers
        # toggles both ways (their bits above the field maxima are waived as range)
        "stride field maxima": "\n".join([
            "requant dest=out n=1 kout=1 hi=1 ostride=65535",
            "requant dest=acc res=1 n=1 rk=1 rstride=65535 shift=3",
            "pool mode=max k=1 oh=1 ow=1 kh=1 kw=1 stride=1 ostride=65535",
            "requant dest=out n=1 kout=1 hi=1",
            "load buf=inp rows=1 len=1 dstride=4294967295 sstride=65535", "load buf=inp rows=1 len=1",
            "store buf=acc rows=1 len=1 dstride=4294967295 sstride=65535", "store buf=acc rows=1 len=1",
            f"store buf=out rows=1 len=1 sram={end('out')} dstride=4294967295 sstride=65535",
            "store buf=out rows=1 len=1", "finish"]),
        # sum pools over 15 x 15 windows of 8-plane levels: window sums above 2^10 in every lane (bb_pool's
        # accumulators and compute's pl_acc bits 10-15); the others read one pixel kh x kw times (kh x kw x level),
        # the last brings the final values back down
        "pool sums over whole windows": "\n".join([
            "load buf=inp rows=1 len=256 push_next",
            "pool mode=sum k=8 oh=1 ow=4 kh=15 kw=15 stride=1 irow=8 ipix=8 pop_prev",
            "pool mode=sum k=8 oh=1 ow=2 kh=15 kw=15 stride=1 irow=0 ipix=0 inp=8",
            "pool mode=sum k=8 oh=1 ow=1 kh=8 kw=8 stride=1 irow=0 ipix=0 inp=16",
            "pool mode=sum k=8 oh=1 ow=1 kh=4 kw=8 stride=1 irow=0 ipix=0 inp=24",
            "pool mode=sum k=8 oh=1 ow=1 kh=15 kw=9 stride=1 irow=0 ipix=0 inp=32",
            "pool mode=sum k=1 oh=1 ow=1 kh=1 kw=1 stride=1", "finish"]),
        "OUT scatter: every start bank, plane and row": out_scatter_program(hw),
        "compute loops at their bounds": compute_bounds_program(hw),
        "compute fields the checks leave free": compute_free_fields_program(hw),
        "store rows and lengths at their bounds": store_bounds_program(hw),
    }


def out_scatter_program(hw: HwConfig) -> str:
    """Max pools of 8-plane levels onto OUT at a pixel stride of 9 entries: pixel p of a pool starts at
    out + 9p and the R rows of a pass take pixels pass*R + r, so with out = b for b < R every row starts a run
    in every bank (9Rj + 9r + b covers every residue mod NB = 8R over j < 8, b < R) and every plane q reaches
    every bank from every row: each of bb_outscatter's row/plane/bank selects fires. The same pools near
    OUT's end set the bank rows' high bits, and one more at the start clears them; the results are stored."""
    r = hw.array_rows
    n = max(1, min(bank_count(hw, "out"), hw.entries("inp") // 8, (hw.entries("out") // 2 - 8 - r) // 9 + 1))
    span = 9 * (n - 1) + 8 + r  # the entries the pools at out = b, b < R, write
    low, high = 0, hw.entries("out") - span
    dram = 8 * n * hw.entry_bytes("inp")  # the stores go after the levels' bytes

    def pool(out: int) -> str:
        return f"pool mode=max k=8 oh=1 ow={n} kh=1 kw=1 stride=1 irow=0 ipix=8 ostride=9 out={out}"

    return "\n".join([f"load buf=inp rows=1 len={8 * n} push_next", "sync unit=compute pop_prev",
                      *[pool(low + b) for b in range(r)], *[pool(high + b) for b in range(r)], pool(low),
                      "sync unit=compute push_next", f"store buf=out sram={low} rows=1 len={span} dram={dram} pop_prev",
                      f"store buf=out sram={high} rows=1 len={span} dram={dram + span * hw.entry_bytes('out')}",
                      "finish"])


def _all_ones_upto(n: int) -> int:
    """The largest 2^k - 1 <= n: a count whose bits below its top one are all set."""
    return (1 << (n + 1).bit_length() - 1) - 1


def _field_max(op: str, name: str) -> int:
    """The largest value field `name` of opcode `op` holds (isa/spec.py)."""
    from bitbranch.isa.spec import OPCODES

    return next(f.max_value for o in OPCODES if o.name == op for f in o.fields if f.name == name)


def compute_bounds_program(hw: HwConfig) -> str:
    """bb_compute's loop counters up to what the buffers allow, then back down (their bits rise and fall): a
    channel loop as long as INP and WGT permit (cw, and one less: every lower bit), rows of as many pixels as
    ACC and OUT hold (ow, the passes), a 15 x 15 dilated window whose row offsets cover INP, the most branch
    groups (kbits x mbits), the one-step accumulating BGEMM (ACC write-back delayed) at ACC's last entries."""
    acc, out, e_inp = hw.entries("acc"), hw.entries("out"), hw.entries("inp")
    ow_max = _field_max("bgemm", "ow")
    one = "kbits=1 mbits=1 oh=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1"
    cw = min(e_inp, hw.entries("wgt"), _field_max("bgemm", "cw"))
    passes = _all_ones_upto(min(acc, ow_max) // hw.array_rows)  # a pass count with every bit below its top set
    return "\n".join([
        *(f"bgemm kbits=1 mbits=1 oh=1 ow=2 kh=1 kw=1 stride=1 dil=1 cw={n} ctiles=1 irow=0 ipix=0"
          for n in (cw - 1, cw)),
        f"bgemm {one} ow=1",
        *(f"bgemm {one} ow={n} irow=0 ipix=0" for n in (min(acc, ow_max) - 1, passes * hw.array_rows)),
        f"pool mode=max k=1 oh=1 ow={min(out, ow_max)} kh=1 kw=1 stride=1 irow=0 ipix=0 ostride=1",
        f"bgemm {one} ow=1",
        f"bgemm kbits=1 mbits=1 oh=1 ow=1 kh=15 kw=1 stride=1 dil=15 cw=1 ctiles=1 irow={(e_inp - 1) // (14 * 15)} "
        "ipix=1",
        "bgemm kbits=8 mbits=5 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1",
        "bgemm kbits=8 mbits=4 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1",
        f"bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=3 accumulate=1 acc={acc - 3}",
        "bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=3 accumulate=1",
        "requant dest=acc res=1 n=1 rk=5 shift=3", "requant dest=acc res=1 n=1 rk=1 shift=3", "finish"])


def compute_free_fields_program(hw: HwConfig) -> str:
    """Fields isa.validate leaves unchecked in a mode, at their maxima, then at 0: a REQUANT to ACC has no OUT
    destination (out, ostride) and without a residual no INP source (rinp, rstride), a max POOL no ACC
    destination (acc); one output row (oh = kh = 1) or column (ow = kw = 1) leaves irow / ipix free, so
    the window steps (dil x irow, stride x ipix) reach 15 x 65,535. Over as many pixels as the buffers
    hold, the per-pass OUT / INP bases (out + pass x R x ostride) and ACC bases climb far above 2^16."""
    acc, out, ow_max = hw.entries("acc"), hw.entries("out"), _field_max("pool", "ow")
    return "\n".join([
        f"requant dest=acc n={acc} out=65535 ostride=65535 rinp=65535 rstride=65535 shift=3",
        "requant dest=acc n=1 shift=3",
        f"pool mode=max k=1 oh=1 ow={min(out, ow_max)} kh=1 kw=1 stride=1 irow=0 ipix=0 ostride=1 acc=65535",
        "pool mode=max k=1 oh=1 ow=1 kh=1 kw=1 stride=1",
        f"pool mode=sum k=1 oh=1 ow={min(acc, ow_max)} kh=1 kw=1 stride=1 irow=0 ipix=0 out=65535 ostride=65535",
        "pool mode=sum k=1 oh=1 ow=1 kh=1 kw=1 stride=1",
        *(f"bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride={k} dil={k} cw=1 ctiles=1 irow=65535 ipix=65535"
          for k in (15, 2)),
        *(f"pool mode=max k=1 oh=1 ow=1 kh=1 kw=1 stride={k} irow=65535 ipix=65535" for k in (15, 2)),
        "bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1",
        "pool mode=max k=1 oh=1 ow=1 kh=1 kw=1 stride=1", "finish"])


def store_bounds_program(hw: HwConfig) -> str:
    """STOREs (and a LOAD) over whole buffers into a DRAM image of RULE_DRAM_BYTES: a row as long as ACC, as
    many rows as ACC and OUT have, and the DRAM image's last entry, then small ones (row counts, row bytes,
    beat offsets, DRAM addresses: their bits rise and fall)."""
    acc, out = hw.entries("acc"), hw.entries("out")
    e_acc, e_out, e_inp = hw.entry_bytes("acc"), hw.entry_bytes("out"), hw.entry_bytes("inp")
    size = RULE_DRAM_BYTES["store rows and lengths at their bounds"]
    acc, out = min(acc, size // e_acc), min(out, size // e_out)  # presets larger than the quick suite's
    return "\n".join([
        f"store buf=acc rows=1 len={acc}", f"store buf=acc rows=1 len={acc - 1}",
        f"store buf=acc rows={acc - 1} len=1 sram=1 dstride={e_acc}",
        f"store buf=acc rows={acc} len=1 dstride={e_acc}", f"store buf=out rows={out} len=1 dstride={e_out}",
        f"store buf=acc rows=1 len=1 dram={size - e_acc}", "store buf=acc rows=1 len=1",
        f"load buf=inp rows=1 len=1 dram={size - e_inp}", "load buf=inp rows=1 len=1", "finish"])


# Every combination of token flags on every instruction class, each made safe by the neighbours' syncs:
# a pop is preceded by the neighbour's push, a push followed by the neighbour's pop.
TOKEN_TEMPLATES = {
    "load": "load buf=inp rows=1 len=1", "store": "store buf=acc rows=1 len=1",
    "bgemm": "bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1",
    "requant": "requant dest=out n=1 kout=1 hi=1", "pool": "pool mode=max k=1 oh=1 ow=1 kh=1 kw=1 stride=1",
    "sync[load]": "sync unit=load", "sync[compute]": "sync unit=compute", "sync[store]": "sync unit=store",
    "finish": "finish",
}
_FEEDERS = {  # (unit of the instruction, flag) -> the neighbour's sync that pairs with it
    ("load", "pop_next"): ("before", "sync unit=compute push_prev"),
    ("load", "push_next"): ("after", "sync unit=compute pop_prev"),
    ("compute", "pop_prev"): ("before", "sync unit=load push_next"),
    ("compute", "pop_next"): ("before", "sync unit=store push_prev"),
    ("compute", "push_prev"): ("after", "sync unit=load pop_next"),
    ("compute", "push_next"): ("after", "sync unit=store pop_prev"),
    ("store", "pop_prev"): ("before", "sync unit=compute push_next"),
    ("store", "push_prev"): ("after", "sync unit=compute pop_next"),
}


def token_programs() -> list[str]:
    """Programs walking every instruction class through every legal token-flag combination: one for all
    but `finish`, then one per combination of `finish`'s flags (it must be last, so its pushes stay queued)."""
    from bitbranch.isa.spec import Unit
    from bitbranch.simulator.funccov import TOKEN_NAMES, _token_combos

    units = {"load": Unit.LOAD, "store": Unit.STORE, "sync[load]": Unit.LOAD, "sync[store]": Unit.STORE}

    def block(label: str, combo) -> tuple[list[str], str, list[str]]:
        unit = units.get(label, Unit.COMPUTE)
        flags = [n for n, v in zip(TOKEN_NAMES, combo, strict=True) if v]
        pairs = [_FEEDERS[(unit.name.lower(), f)] for f in flags]
        return ([p for w, p in pairs if w == "before"], " ".join([TOKEN_TEMPLATES[label], *flags]),
                [p for w, p in pairs if w == "after"])

    body: list[str] = []
    for label in TOKEN_TEMPLATES:
        if label != "finish":
            for combo in _token_combos(units.get(label, Unit.COMPUTE)):
                before, insn, after = block(label, combo)
                body += [*before, insn, *after]
    programs = ["\n".join([*body, "finish"])]
    for combo in _token_combos(Unit.COMPUTE):
        before, insn, _ = block("finish", combo)
        programs.append("\n".join([*before, insn]))
    return programs


def _words(text: str) -> list[int]:
    return [encode(i) for i in assemble(text)]


def _reserved_top(text: str) -> list[int]:
    """`text`'s one instruction with the word's top bit set (reserved in every class), then finish."""
    return [encode(assemble(text)[0]) | 1 << (INSN_BITS - 1)] + _words("finish")


def _below_min(text: str, name: str) -> list[int]:
    """`text` with field `name` set to 0, below its legal minimum: caught when the word is decoded."""
    insn = assemble(text)[0]
    placed = insn.opcode.field(name)
    return [encode(insn) & ~(placed.mask << placed.offset)] + _words("finish")


def _sram_end(hw: HwConfig, buf: str) -> int:
    return hw.entries(buf) - 1


# DRAM image sizes other than DRAM_BYTES (the bench's dram_size input: an odd size toggles its low bits); the
# program named does no DMA, so its expected error does not depend on the size.
ERROR_DRAM_BYTES = {"unknown opcode at index 4095": 32767}

# Each error program: (instruction class it exercises, how to build it for a config). The class names the
# coverpoint (simulator.funccov.STATUS_POINTS): the opcode of the failing instruction, or "program".
ERROR_CASES: dict[str, tuple[str, Callable[[HwConfig], list[int]]]] = {
    "empty program": ("program", lambda hw: []),
    "unknown opcode": ("program", lambda hw: _words("sync unit=load") + [0xF, encode(assemble("finish")[0])]),
    # the first bad word far into the program: instruction indices (pc, queued indices, err_index) up to bit 11
    "unknown opcode at index 4095": ("program", lambda hw: _words(
        "sync unit=load\nsync unit=compute\nsync unit=store") * 1365 + [0xF] + _words("finish")),
    "reserved bit": ("program", lambda hw: [encode(assemble("sync unit=load")[0]) | 1 << 200] + _words("finish")),
    # the top reserved bit of each instruction class (the decoder checks each class's reserved bits on its own)
    **{f"reserved bit of {text.split()[0]}": ("program", lambda hw, text=text: _reserved_top(text))
       for text in ("load buf=inp rows=1 len=1", "store buf=acc rows=1 len=1",
                    "bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1 irow=1 ipix=1",
                    "requant dest=out n=1 ostride=1 kout=1 hi=1",
                    "pool mode=max k=1 oh=1 ow=1 kh=1 kw=1 stride=1 irow=1 ipix=1 ostride=1", "finish")},
    "missing finish": ("program", lambda hw: _words("sync unit=load\nsync unit=store")),
    "field out of range": ("sync", lambda hw: [encode(assemble("sync unit=load")[0]) | 3 << 8] + _words("finish")),
    "finish not last": ("finish", lambda hw: _words("finish\nsync unit=load\nfinish")),
    "token flag without neighbour": ("load", lambda hw: _words("sync unit=load\nload buf=inp rows=1 len=1 pop_prev\n"
                                                               "finish")),
    "store token flag without neighbour": ("store", lambda hw: _words("store buf=out rows=1 len=1 push_next\n"
                                                                      "finish")),
    "sync token flag without neighbour": ("sync", lambda hw: _words("sync unit=store pop_next\nfinish")),
    "load buffer overrun": ("load", lambda hw: _words(f"load buf=inp sram={_sram_end(hw, 'inp')} rows=1 len=2\n"
                                                      "finish")),
    "load DRAM overrun": ("load", lambda hw: _words("load buf=inp dram=4090 rows=1 len=1\nfinish")),
    "load field rule": ("load", lambda hw: _words("load buf=inp rows=1 len=1 pad_left=1 dstride=0 sstride=1\n"
                                                  "finish")),
    "store buffer overrun": ("store", lambda hw: _words(f"store buf=out sram={_sram_end(hw, 'out')} rows=1 len=2\n"
                                                        "finish")),
    "store DRAM overrun": ("store", lambda hw: _words("store buf=acc dram=4090 rows=1 len=1\nfinish")),
    "store field rule": ("store", lambda hw: _words("store buf=out rows=2 len=4 dstride=1\nfinish")),
    "bgemm INP overrun": ("bgemm", lambda hw: _words(f"bgemm kbits=1 mbits=1 oh=1 ow=2 kh=1 kw=1 stride=1 dil=1 cw=1 "
                                                     f"ctiles=1 inp={_sram_end(hw, 'inp')} irow=2 ipix=1\nfinish")),
    "bgemm ACC overrun": ("bgemm", lambda hw: _words(f"bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 "
                                                     f"ctiles=2 acc={_sram_end(hw, 'acc')}\nfinish")),
    "bgemm cross-field rule": ("bgemm", lambda hw: _words("bgemm wmode=equal kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 "
                                                          "stride=1 dil=1 cw=1 ctiles=1\nfinish")),
    "requant ACC overrun": ("requant", lambda hw: _words(f"requant dest=out n=2 ostride=1 "
                                                         f"acc={_sram_end(hw, 'acc')} kout=1 hi=1\nfinish")),
    "requant field rule": ("requant", lambda hw: _words("requant dest=out n=1 kout=0\nfinish")),
    "pool OUT overrun": ("pool", lambda hw: _words(f"pool mode=max k=1 oh=1 ow=2 kh=1 kw=1 stride=1 irow=2 ipix=1 "
                                                   f"out={_sram_end(hw, 'out')} ostride=1\nfinish")),
    "load field below minimum": ("load", lambda hw: _below_min("load buf=inp rows=1 len=1", "rows")),
    "store field below minimum": ("store", lambda hw: _below_min("store buf=out rows=1 len=1", "len")),
    "bgemm field below minimum": ("bgemm", lambda hw: _below_min(LONG_BGEMM, "kbits")),
    "requant field below minimum": ("requant", lambda hw: _below_min("requant dest=out n=1 kout=1 hi=1", "n")),
    "pool field below minimum": ("pool", lambda hw: _below_min("pool mode=max k=1 oh=1 ow=1 kh=1 kw=1 stride=1",
                                                               "k")),
    # multi-row transfers whose last row runs past the end (the extent check must use the row step)
    "load strided overrun": ("load", lambda hw: _words(f"load buf=inp sram={_sram_end(hw, 'inp') - 2} rows=2 len=1 "
                                                       "sstride=3\nfinish")),
    "store rows overrun": ("store", lambda hw: _words(f"store buf=out sram={_sram_end(hw, 'out') - 2} rows=2 len=2 "
                                                      f"dstride={2 * hw.entry_bytes('out')}\nfinish")),
    "store strided overrun": ("store", lambda hw: _words(f"store buf=out sram={_sram_end(hw, 'out') - 3} rows=2 len=1 "
                                                         f"sstride=4 dstride={hw.entry_bytes('out')}\nfinish")),
    # every buffer each class addresses, one past its end
    "load WGT overrun": ("load", lambda hw: _words(f"load buf=wgt sram={_sram_end(hw, 'wgt')} rows=1 len=2\nfinish")),
    "load CONST overrun": ("load", lambda hw: _words(f"load buf=const sram={_sram_end(hw, 'const')} rows=1 len=2\n"
                                                     "finish")),
    "store ACC overrun": ("store", lambda hw: _words(f"store buf=acc sram={_sram_end(hw, 'acc')} rows=1 len=2\n"
                                                     "finish")),
    "bgemm WGT overrun": ("bgemm", lambda hw: _words("bgemm kbits=1 mbits=1 oh=1 ow=1 kh=1 kw=1 stride=1 dil=1 cw=1 "
                                                     f"ctiles=2 wgt={_sram_end(hw, 'wgt')}\nfinish")),
    "requant residual INP overrun": ("requant", lambda hw: _words(
        f"requant dest=acc res=1 n=2 rk=1 rstride=1 rinp={_sram_end(hw, 'inp')} shift=3\nfinish")),
    "requant OUT overrun": ("requant", lambda hw: _words(
        f"requant dest=out n=2 ostride=1 out={_sram_end(hw, 'out')} kout=1 hi=1\nfinish")),
    "requant CONST overrun": ("requant", lambda hw: _words(
        f"requant dest=out n=1 kout=1 hi=1 const={_sram_end(hw, 'const') + 1}\nfinish")),
    "requant residual without planes": ("requant", lambda hw: _words(
        "requant dest=acc res=1 n=2 rk=0 rstride=1 shift=3\nfinish")),
    "pool INP overrun": ("pool", lambda hw: _words(f"pool mode=max k=1 oh=1 ow=2 kh=1 kw=1 stride=1 irow=2 ipix=1 "
                                                   f"inp={_sram_end(hw, 'inp')} ostride=1\nfinish")),
    "pool ACC overrun": ("pool", lambda hw: _words(f"pool mode=sum k=1 oh=1 ow=2 kh=1 kw=1 stride=1 irow=2 ipix=1 "
                                                   f"acc={_sram_end(hw, 'acc')}\nfinish")),
    "runtime deadlock": ("sync", lambda hw: _words("sync unit=load\nsync unit=compute pop_prev\nsync unit=store\n"
                                                   "finish")),
    # the deadlock is reported while fetch waits for room in the compute queue (full behind the blocked sync):
    # the blame is the blocked instruction, below fetch's
    "runtime deadlock, fetch stalled": ("sync", lambda hw: _words("\n".join(
        ["sync unit=compute pop_prev"] + ["sync unit=compute"] * (hw.queue_depth + 1) + ["finish"]))),
    # only the store unit waits (its pop from compute never comes): the blame is the store's instruction, which
    # bb_sched reaches when neither the load nor the compute unit waits
    "runtime deadlock in the store unit": ("sync", lambda hw: _words("sync unit=load\nsync unit=compute\n"
                                                                     "sync unit=store pop_prev\nfinish")),
    # only the load unit waits: on a pop that never comes, and in a push to a full queue that no one pops
    "runtime deadlock in the load unit": ("sync", lambda hw: _words("sync unit=compute\nsync unit=load pop_next\n"
                                                                    "finish")),
    "runtime deadlock, load pushes to a full queue": ("sync", lambda hw: _words("\n".join(
        ["sync unit=compute"] + ["sync unit=load push_next"] * (hw.token_depth + 1) + ["finish"]))),
    # store and compute wait on each other, the store's instruction first: the blame is the lower index
    "runtime deadlock, store first": ("sync", lambda hw: _words("sync unit=store pop_prev\n"
                                                                "sync unit=compute pop_next\nfinish")),
    # transfers whose last DRAM byte is exactly one past the image (the overruns above go further)
    "load DRAM one byte past the end": ("load", lambda hw: _words(
        f"load buf=inp dram={DRAM_BYTES - hw.entry_bytes('inp') + 1} rows=1 len=1\nfinish")),
    "store DRAM one byte past the end": ("store", lambda hw: _words(
        f"store buf=acc dram={DRAM_BYTES - hw.entry_bytes('acc') + 1} rows=1 len=1\nfinish")),
}
DRAM_BYTES = 4096
# rules that need a larger DRAM image than DRAM_BYTES (at most 2^16 bytes: Icarus' smallest DRAM model holds it)
RULE_DRAM_BYTES = {"store rows and lengths at their bounds": 1 << 16,
                   "OUT scatter: every start bank, plane and row": 1 << 16}


def pattern(size: int = DRAM_BYTES) -> bytes:
    """A DRAM image of `size` bytes whose data shows when moved."""
    return bytes((i * 37 + 11) & 0xFF for i in range(size))


PATTERN = pattern()  # rule programs move data that shows


@dataclass(frozen=True)
class ExpectedError:
    """What the simulator side reports for an error program: the isa.errors class, the index (None for
    the empty program) and the coverpoint's instruction class and status name."""

    cls: type
    index: int | None


def expected_error(words: list[int], hw: HwConfig, dram_size: int = DRAM_BYTES) -> ExpectedError:
    """The isa error class and index the simulator side reports for a program of raw words (static
    checks first, as the RTL does them; a program that passes them must deadlock at run time)."""
    from bitbranch.simulator import run

    program = []
    for k, w in enumerate(words):
        try:
            program.append(decode(w, k))
        except errors.IsaError as exc:
            return ExpectedError(type(exc), k)
    try:
        validate_program(program, hw, dram_size, check_deadlock=False)
    except errors.IsaError as exc:
        return ExpectedError(type(exc), exc.index)
    try:
        run((program, bytes(dram_size), hw), check_deadlock=False)
    except errors.DeadlockError as exc:
        return ExpectedError(errors.DeadlockError, exc.index)
    raise ValueError("the program is valid and runs: not an error case")


def error_cycle_limit(words: list[int]) -> int:
    """The RTL's cycle limit for an error program, like a cross-check's (4 x the simulator's cycles + 10,000):
    fetch stops at a bad word after at most a few cycles per instruction before it, and a deadlock is seen
    once every unit waits, so 4 per word + 10,000 is ample. (The bench's default, 10,000,000, only made a hang
    slower to see and the run's sim-time bound, SIM_CYCLES, 2^24 instead of 2^15.)"""
    return 4 * len(words) + 10_000


def error_problems(hw: HwConfig, sim: str = "verilator") -> dict[str, str]:
    """Run every error program on the RTL (one simulation); {case: what is wrong} for each case whose status
    or index differs from the simulator's. Adds the statuses seen to the active functional coverage."""
    from bitbranch.simulator import funccov

    from .bench_core import run_rtl_batch

    programs = {name: (klass, make(hw)) for name, (klass, make) in ERROR_CASES.items()}
    results = run_rtl_batch([(words, bytes(ERROR_DRAM_BYTES.get(name, DRAM_BYTES)))
                             for name, (_, words) in programs.items()], hw, sim=sim,
                            max_cycles=[error_cycle_limit(words) for _, words in programs.values()])
    problems = {}
    cov = funccov.active()
    for (name, (klass, words)), r in zip(programs.items(), results, strict=True):
        problem = _error_problem(words, r, hw)
        if problem is not None:
            problems[name] = problem
        elif cov is not None:
            status = "EMPTY" if not words else "NO_FINISH" if name == "missing finish" else r.status_name
            cov.add_status(klass, status, hw.name)
    return problems


def _error_problem(words: list[int], r, hw: HwConfig) -> str | None:
    """What is wrong with the RTL's result `r` of error program `words` (None: the simulator's status and index)."""
    from .status import error_class

    want = expected_error(words, hw)
    got_cls = error_class(r.status) if r.finished else None
    if not r.finished:
        return f"the RTL did not stop (limit hit after {r.cycles} cycles)"
    if got_cls is None or not issubclass(want.cls, got_cls):
        return f"RTL status {r.status_name}, simulator raises {want.cls.__name__}"
    if want.index is not None and r.err_index != want.index:
        return f"RTL blames instruction {r.err_index}, simulator {want.index}"
    return None


def imem_end_words(hw: HwConfig) -> list[int]:
    """A program filling the whole instruction memory (params.IMEM_AW: 65,536 words): SYNCs, then an unknown
    opcode in the last word. Fetch must read that word and stop with ILLEGAL at index 65,535; a memory one word
    short has nothing there. One instruction per cycle, so about 65,536 cycles: too slow for the quick suite on
    Icarus (12-26 s here), run by the full suite and the tests (Verilator)."""
    from .params import IMEM_AW

    return _words("sync unit=load") * ((1 << IMEM_AW) - 1) + [0xF]


def imem_end_problem(hw: HwConfig, sim: str = "verilator") -> str | None:
    """Run imem_end_words on the RTL; what differs from the simulator's error (None: nothing). The cycle limit is
    twice the program's length, so a fetch that never reaches the word is caught in seconds."""
    from .bench_core import run_rtl

    words = imem_end_words(hw)
    r = run_rtl(words, bytes(DRAM_BYTES), hw, sim=sim, max_cycles=2 * len(words), trace=False)
    return _error_problem(words, r, hw)


def rule_problems(hw: HwConfig, sim: str = "verilator", only: tuple[str, ...] = ()) -> dict[str, str]:
    """Cross-check every timing-rule and token-flag program (with `only`, just the rules of those names);
    {rule: first difference} for each that differs."""
    from .compare import cross_check_batch

    texts = timing_rules(hw) | {f"token flags {k}": t for k, t in enumerate(token_programs())}
    if only:
        unknown = sorted(set(only) - set(texts))
        if unknown:
            raise ValueError(f"no directed rule {', '.join(unknown)}")
        texts = {name: texts[name] for name in only}
    programs = {name: assemble(text) for name, text in texts.items()}
    checks = cross_check_batch([(p, pattern(RULE_DRAM_BYTES.get(name, DRAM_BYTES)), hw)
                                for name, p in programs.items()], sim=sim)
    return {name: c.explain() for name, c in zip(programs, checks, strict=True) if not c.ok}
