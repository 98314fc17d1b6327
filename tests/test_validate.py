"""Tests for isa.validate: cross-field rules, token flags, buffer/DRAM extents, finish, deadlocks."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.errors import (
    BufferOverrun,
    DeadlockError,
    DramOverrun,
    FieldRangeError,
    IllegalInstruction,
    IsaError,
    TokenError,
)
from bitbranch.isa.hwconfig import HwConfig, get_config
from bitbranch.isa.spec import NEIGHBOURS, OPCODE_BY_NAME, Unit
from bitbranch.isa.validate import (
    Access,
    TokenSummary,
    access_ranges,
    check_tokens,
    validate_instruction,
    validate_program,
)

EDGE = get_config("edge")
SMALL = get_config("small")
FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")
LOAD, COMPUTE, STORE = int(Unit.LOAD), int(Unit.COMPUTE), int(Unit.STORE)

# --- instruction builders: each default is valid on EDGE and touches more than one entry ----------

DEFAULTS: dict[str, dict[str, int]] = {
    "load": dict(buf=0, sram=10, dram=64, rows=3, len=4, dstride=100, sstride=0, pad_top=1, pad_left=1),
    "store": dict(buf=3, sram=5, dram=0, rows=2, len=3, dstride=64, sstride=4),
    "bgemm": dict(
        kbits=2,
        mbits=2,
        acc=3,
        inp=7,
        wgt=2,
        oh=2,
        ow=3,
        kh=3,
        kw=2,
        stride=2,
        dil=1,
        cw=2,
        ctiles=2,
        irow=40,
        ipix=4,
    ),
    "requant": dict(dest=0, acc=4, n=5, const=1, out=8, ostride=3, slice=1, kout=2, lo=0, hi=3),
    "pool": dict(
        mode=0, k=2, slice=1, inp=6, oh=2, ow=2, kh=2, kw=2, stride=2, irow=20, ipix=2, out=9, ostride=2
    ),
}


def make(op: str, **overrides: int) -> Instruction:
    return Instruction.make(op, **{**DEFAULTS.get(op, {}), **overrides})


def sync(unit: int, *flags: str) -> Instruction:
    return Instruction.make("sync", unit=unit, **dict.fromkeys(flags, 1))


FINISH = Instruction.make("finish")


def raw(op: str, **fields: int) -> Instruction:
    """An instruction built without field-level checks (as a buggy producer might)."""
    names = [p.name for p in OPCODE_BY_NAME[op].layout]
    return Instruction(op, tuple(fields.get(n, 0) for n in names))


def error_of(exc_type: type[IsaError], fn: Callable[[], object]) -> IsaError:
    with pytest.raises(exc_type) as info:
        fn()
    return info.value


# --- valid instructions and access ranges ---------------------------------------------------------


@pytest.mark.parametrize("op", sorted(DEFAULTS))
def test_default_instructions_are_valid(op: str) -> None:
    validate_instruction(make(op), 0, EDGE, dram_size=1 << 20)


def test_access_ranges_closed_forms() -> None:
    """Hand-computed from the pseudo-code for the default instructions (E = 8 bytes for INP/OUT)."""
    # bgemm: INP last = 7 + ((2-1)*2 + (3-1)*1)*40 + ((3-1)*2 + (2-1)*1)*4 + 2*2 - 1 = 7+160+20+3
    assert access_ranges(make("bgemm"), EDGE) == [
        Access("inp", "read", 7, 190),
        Access("wgt", "read", 2, 2 + 2 * 3 * 2 * 2 * 2 - 1),
        Access("acc", "write", 3, 3 + 2 * 2 * 3 - 1),
    ]
    assert access_ranges(make("bgemm", accumulate=1), EDGE)[2] == Access("acc", "read", 3, 14)
    # load: 4 SRAM rows (pad_top 1 + 3) of width 5 (pad_left 1 + 4); DRAM last = 64 + 2*100 + 4*8 - 1
    assert access_ranges(make("load"), EDGE) == [
        Access("dram", "read", 64, 295),
        Access("inp", "write", 10, 10 + 3 * 5 + 5 - 1),
    ]
    assert access_ranges(make("store"), EDGE) == [
        Access("out", "read", 5, 11),
        Access("dram", "write", 0, 87),
    ]
    assert access_ranges(make("requant", res=1, rinp=2, rstride=3, rk=2), EDGE) == [
        Access("acc", "read", 4, 8),
        Access("const", "read", 1, 1),
        Access("inp", "read", 2, 2 + 4 * 3 + 1),
        Access("out", "write", 8, 8 + 4 * 3 + 1),
    ]
    assert access_ranges(make("requant", dest=1), EDGE)[-1] == Access("acc", "write", 4, 8)
    # pool: INP last = 6 + ((2-1)*2 + 1)*20 + ((2-1)*2 + 1)*2 + 2 - 1
    assert access_ranges(make("pool"), EDGE) == [Access("inp", "read", 6, 73), Access("out", "write", 9, 16)]
    assert access_ranges(make("pool", mode=1, acc=5), EDGE)[-1] == Access("acc", "write", 5, 8)
    assert access_ranges(sync(COMPUTE), EDGE) == []
    assert access_ranges(FINISH, EDGE) == []


# Literal transcriptions of the isa.spec pseudo-code loops, to check the closed forms.


def _touch(seen: dict[tuple[str, str], list[int]], buf: str, kind: str, addrs: range | list[int]) -> None:
    for a in addrs:
        lo_hi = seen.setdefault((buf, kind), [a, a])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], a), max(lo_hi[1], a)


def enumerate_accesses(insn: Instruction, hw: HwConfig) -> dict[tuple[str, str], tuple[int, int]]:
    f = insn.as_dict()
    seen: dict[tuple[str, str], list[int]] = {}
    if insn.op == "load":
        buf = ("inp", "wgt", "acc", "out", "const")[f["buf"]]
        e, width = hw.entry_bytes(buf), f["pad_left"] + f["len"] + f["pad_right"]
        s = f["sstride"] or width
        for r in range(f["pad_top"] + f["rows"] + f["pad_bottom"]):
            _touch(seen, buf, "write", range(f["sram"] + r * s, f["sram"] + r * s + width))
            if f["pad_top"] <= r < f["pad_top"] + f["rows"]:
                d = f["dram"] + (r - f["pad_top"]) * f["dstride"]
                _touch(seen, "dram", "read", range(d, d + f["len"] * e))
    elif insn.op == "store":
        buf = ("inp", "wgt", "acc", "out", "const")[f["buf"]]
        e, s = hw.entry_bytes(buf), f["sstride"] or f["len"]
        for r in range(f["rows"]):
            _touch(
                seen,
                "dram",
                "write",
                range(f["dram"] + r * f["dstride"], f["dram"] + r * f["dstride"] + f["len"] * e),
            )
            _touch(seen, buf, "read", range(f["sram"] + r * s, f["sram"] + r * s + f["len"]))
    elif insn.op == "bgemm":
        oh, ow, kh, kw, cw = f["oh"], f["ow"], f["kh"], f["kw"], f["cw"]
        for t in range(f["ctiles"]):
            for y in range(oh):
                for x in range(ow):
                    for ky in range(kh):
                        for kx in range(kw):
                            for c in range(cw):
                                for i in range(f["kbits"]):
                                    a = (
                                        f["inp"]
                                        + (y * f["stride"] + ky * f["dil"]) * f["irow"]
                                        + (x * f["stride"] + kx * f["dil"]) * f["ipix"]
                                        + c * f["kbits"]
                                        + i
                                    )
                                    _touch(seen, "inp", "read", [a])
                                for j in range(f["mbits"]):
                                    w = f["wgt"] + (((t * kh + ky) * kw + kx) * cw + c) * f["mbits"] + j
                                    _touch(seen, "wgt", "read", [w])
                    e = f["acc"] + t * oh * ow + y * ow + x
                    if f["accumulate"]:
                        _touch(seen, "acc", "read", [e])
                    _touch(seen, "acc", "write", [e])
    elif insn.op == "requant":
        _touch(seen, "const", "read", [f["const"]])
        for p in range(f["n"]):
            _touch(seen, "acc", "read", [f["acc"] + p])
            if f["res"]:
                _touch(seen, "inp", "read", [f["rinp"] + p * f["rstride"] + i for i in range(f["rk"])])
            if f["dest"] == 0:
                _touch(seen, "out", "write", [f["out"] + p * f["ostride"] + i for i in range(f["kout"])])
            else:
                _touch(seen, "acc", "write", [f["acc"] + p])
    elif insn.op == "pool":
        for y in range(f["oh"]):
            for x in range(f["ow"]):
                for ky in range(f["kh"]):
                    for kx in range(f["kw"]):
                        r, c = y * f["stride"] + ky, x * f["stride"] + kx
                        _touch(
                            seen,
                            "inp",
                            "read",
                            [f["inp"] + r * f["irow"] + c * f["ipix"] + i for i in range(f["k"])],
                        )
                if f["mode"] == 0:
                    _touch(
                        seen,
                        "out",
                        "write",
                        [f["out"] + (y * f["ow"] + x) * f["ostride"] + i for i in range(f["k"])],
                    )
                else:
                    _touch(seen, "acc", "write", [f["acc"] + y * f["ow"] + x])
    return {key: (lo, hi) for key, (lo, hi) in seen.items()}


def _small(hi: int, lo: int = 0) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


SMALL_FIELDS: dict[str, dict[str, st.SearchStrategy[int]]] = {
    "load": dict(
        buf=st.sampled_from([0, 1, 4]),
        sram=_small(50),
        dram=_small(100),
        rows=_small(3, 1),
        len=_small(3, 1),
        dstride=_small(40),
        sstride=_small(12),
        pad_top=_small(2),
        pad_bottom=_small(2),
        pad_left=_small(2),
        pad_right=_small(2),
    ),
    "store": dict(
        buf=st.sampled_from([2, 3]),
        sram=_small(50),
        dram=_small(100),
        rows=_small(3, 1),
        len=_small(3, 1),
        dstride=_small(200),
        sstride=_small(6),
    ),
    "bgemm": dict(
        accumulate=_small(1),
        kbits=_small(3, 1),
        mbits=_small(3, 1),
        acc=_small(20),
        inp=_small(20),
        wgt=_small(20),
        oh=_small(3, 1),
        ow=_small(3, 1),
        kh=_small(3, 1),
        kw=_small(2, 1),
        stride=_small(2, 1),
        dil=_small(2, 1),
        cw=_small(2, 1),
        ctiles=_small(2, 1),
        irow=_small(30),
        ipix=_small(8),
    ),
    "requant": dict(
        dest=_small(1),
        res=_small(1),
        acc=_small(20),
        n=_small(4, 1),
        const=_small(9),
        out=_small(20),
        ostride=_small(5),
        kout=_small(3),
        rinp=_small(20),
        rstride=_small(5),
        rk=_small(3),
    ),
    "pool": dict(
        mode=_small(1),
        k=_small(3, 1),
        inp=_small(20),
        oh=_small(3, 1),
        ow=_small(3, 1),
        kh=_small(3, 1),
        kw=_small(3, 1),
        stride=_small(2, 1),
        irow=_small(30),
        ipix=_small(6),
        out=_small(20),
        ostride=_small(5),
        acc=_small(20),
    ),
}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), op=st.sampled_from(sorted(SMALL_FIELDS)))
def test_access_ranges_match_pseudo_code(data: st.DataObject, op: str) -> None:
    insn = Instruction.make(op, **data.draw(st.fixed_dictionaries(SMALL_FIELDS[op])))
    got = {(a.buffer, a.kind): (a.first, a.last) for a in access_ranges(insn, SMALL)}
    assert len(got) == len(access_ranges(insn, SMALL))  # one hull per (buffer, kind)
    assert got == enumerate_accesses(insn, SMALL)


# --- cross-field rules ----------------------------------------------------------------------------

S_EDGE = EDGE.slices_per_word  # 64-bit words / 16 lanes = 4
OUT_BYTES = EDGE.entry_bytes("out")

# (op, overrides that break a rule, nearest overrides that satisfy it, text the message must contain)
CROSS_FIELD = {
    "requant-kout0": ("requant", dict(kout=0, hi=0), dict(kout=1, hi=0), "kout"),
    "requant-lo-gt-hi": ("requant", dict(lo=3, hi=2), dict(lo=2, hi=2), "lo=3 > hi=2"),
    "requant-hi-over-kout": ("requant", dict(kout=2, hi=4), dict(kout=2, hi=3), "hi=4"),
    "requant-rk0": ("requant", dict(res=1, rk=0), dict(res=1, rk=1), "rk"),
    "requant-slice": ("requant", dict(slice=S_EDGE), dict(slice=S_EDGE - 1), "slice=4"),
    "requant-slice-dest-acc": ("requant", dict(dest=1, slice=S_EDGE), dict(dest=1, slice=0), "slice"),
    "requant-ostride": ("requant", dict(kout=2, ostride=1), dict(kout=2, ostride=2), "ostride=1"),
    "requant-ostride-zero": ("requant", dict(ostride=0), dict(ostride=0, n=1), "ostride=0"),
    "pool-slice": ("pool", dict(slice=S_EDGE), dict(slice=S_EDGE - 1), "slice=4"),
    "pool-ostride": ("pool", dict(k=3, ostride=2), dict(k=3, ostride=3), "ostride=2"),
    "bgemm-ternary-mbits": ("bgemm", dict(wmode=1, mbits=3), dict(wmode=1, mbits=2), "mbits=3"),
    "load-sstride": ("load", dict(pad_right=2, sstride=6), dict(pad_right=2, sstride=7), "sstride=6"),
    "store-sstride": ("store", dict(sstride=2), dict(sstride=3), "sstride=2"),
    "store-dstride": ("store", dict(dstride=3 * OUT_BYTES - 1), dict(dstride=3 * OUT_BYTES), "dstride=23"),
}


@pytest.mark.parametrize("case", sorted(CROSS_FIELD))
def test_cross_field_rule(case: str) -> None:
    op, bad, good, text = CROSS_FIELD[case]
    validate_instruction(make(op, **good), 7, EDGE)
    err = error_of(FieldRangeError, lambda: validate_instruction(make(op, **bad), 7, EDGE))
    assert (err.index, err.op) == (7, op)
    assert text in str(err) and str(err).startswith(f"instruction 7 ({op}): ")


def test_overlap_rules_do_not_apply_to_single_rows_or_pixels() -> None:
    validate_instruction(make("requant", n=1, ostride=0), 0, EDGE)
    validate_instruction(make("pool", oh=1, ow=1, ostride=0), 0, EDGE)
    validate_instruction(make("pool", mode=1, ostride=0), 0, EDGE)  # sum pooling writes ACC
    validate_instruction(make("store", rows=1, dstride=0), 0, EDGE)
    validate_instruction(make("requant", dest=1, kout=0, lo=5, hi=1), 0, EDGE)  # clamp unused for ACC


@pytest.mark.parametrize(
    ("insn", "exc", "text"),
    [
        (raw("load", rows=0, len=1), FieldRangeError, "rows"),
        (raw("store", buf=3, rows=1, len=0), FieldRangeError, "len"),
        (raw("store", buf=1, rows=1, len=1), FieldRangeError, "buf"),
        (raw("sync", unit=3), FieldRangeError, "unit"),
        (Instruction("nop", ()), IllegalInstruction, "nop"),
        (Instruction("finish", (0,)), IllegalInstruction, "field values"),
    ],
)
def test_field_level_errors_are_caught(insn: Instruction, exc: type[IsaError], text: str) -> None:
    err = error_of(exc, lambda: validate_instruction(insn, 3, EDGE))
    assert err.index == 3 and text in str(err)


# --- token flags ----------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", [LOAD, COMPUTE, STORE])
@pytest.mark.parametrize("flag", FLAGS)
def test_sync_token_flags_follow_neighbours(unit: int, flag: str) -> None:
    prev, nxt = NEIGHBOURS[Unit(unit)]
    legal = (prev if flag.endswith("prev") else nxt) is not None
    insn = sync(unit, flag)
    if legal:
        validate_instruction(insn, 2, EDGE)
        return
    err = error_of(TokenError, lambda: validate_instruction(insn, 2, EDGE))
    assert err.index == 2 and flag in str(err) and Unit(unit).name.lower() in str(err)


@pytest.mark.parametrize(
    ("op", "flag"),
    [("load", "pop_prev"), ("load", "push_prev"), ("store", "pop_next"), ("store", "push_next")],
)
def test_dma_token_flags_without_neighbour(op: str, flag: str) -> None:
    insn = make(op, **{flag: 1})
    err = error_of(TokenError, lambda: validate_instruction(insn, 4, EDGE))
    assert (err.index, err.op) == (4, op) and flag in str(err)
    assert not isinstance(err, DeadlockError)
    # check_tokens on its own rejects it too
    err = error_of(TokenError, lambda: check_tokens([make("load"), insn], EDGE))
    assert err.index == 1


def test_all_flags_legal_on_compute() -> None:
    for op in ("bgemm", "requant", "pool"):
        validate_instruction(make(op, pop_prev=1, pop_next=1, push_prev=1, push_next=1), 0, EDGE)
    validate_instruction(Instruction.make("finish", pop_prev=1, push_next=1), 0, EDGE)


# --- finish ---------------------------------------------------------------------------------------


def test_finish_missing() -> None:
    err = error_of(IllegalInstruction, lambda: validate_program([sync(LOAD), sync(STORE)], EDGE))
    assert err.index == 1 and "finish" in str(err)


def test_finish_not_last_or_twice() -> None:
    err = error_of(
        IllegalInstruction, lambda: validate_program([sync(LOAD), FINISH, sync(STORE), FINISH], EDGE)
    )
    assert (err.index, err.op) == (1, "finish") and "last" in str(err)
    err = error_of(IllegalInstruction, lambda: validate_program([FINISH, FINISH], EDGE))
    assert err.index == 0


def test_empty_program() -> None:
    err = error_of(IllegalInstruction, lambda: validate_program([], EDGE))
    assert err.index is None and "finish" in str(err)


def test_lowest_failing_index_is_reported() -> None:
    program = [sync(LOAD), make("load"), make("bgemm", wmode=1, mbits=1), make("store", sstride=1), FINISH]
    err = error_of(FieldRangeError, lambda: validate_program(program, EDGE))
    assert err.index == 2


# --- buffer extents -------------------------------------------------------------------------------

# (op, overrides, field holding the first entry, buffer, verb of the first access of that buffer)
EXTENTS = {
    "bgemm-inp": ("bgemm", {}, "inp", "inp", "reads"),
    "bgemm-wgt": ("bgemm", {}, "wgt", "wgt", "reads"),
    "bgemm-acc": ("bgemm", {}, "acc", "acc", "writes"),
    "bgemm-acc-accumulate": ("bgemm", dict(accumulate=1), "acc", "acc", "reads"),
    "requant-acc": ("requant", {}, "acc", "acc", "reads"),
    "requant-const": ("requant", {}, "const", "const", "reads"),
    "requant-rinp": ("requant", dict(res=1, rk=3, rstride=4), "rinp", "inp", "reads"),
    "requant-out": ("requant", {}, "out", "out", "writes"),
    "pool-inp": ("pool", {}, "inp", "inp", "reads"),
    "pool-out": ("pool", {}, "out", "out", "writes"),
    "pool-acc": ("pool", dict(mode=1), "acc", "acc", "writes"),
    "load-inp": ("load", {}, "sram", "inp", "writes"),
    "load-wgt": ("load", dict(buf=1), "sram", "wgt", "writes"),
    "load-const": ("load", dict(buf=4, pad_top=0), "sram", "const", "writes"),
    "store-out": ("store", {}, "sram", "out", "reads"),
    "store-acc": ("store", dict(buf=2, dstride=3 * EDGE.entry_bytes("acc")), "sram", "acc", "reads"),
}


@pytest.mark.parametrize("case", sorted(EXTENTS))
def test_buffer_extent_boundary(case: str) -> None:
    op, overrides, base, buf, verb = EXTENTS[case]
    probe = make(op, **overrides)
    span = next(a.last - a.first for a in access_ranges(probe, EDGE) if a.buffer == buf)
    size = EDGE.entries(buf)
    assert span > 0 or buf == "const"  # several entries touched, so the closed form matters
    validate_instruction(make(op, **{**overrides, base: size - 1 - span}), 5, EDGE)
    bad = make(op, **{**overrides, base: size - span})
    err = error_of(BufferOverrun, lambda: validate_instruction(bad, 5, EDGE))
    label = buf.upper()
    assert (err.index, err.op) == (5, op)
    assert f"{op} {verb} {label} entries {size - span}..{size} but {label} has {size} entries" in str(err)


def test_buffer_overrun_message_example() -> None:
    insn = make(
        "bgemm", kbits=3, mbits=1, inp=0, oh=2, ow=1, kh=1, kw=1, stride=1, cw=1, ctiles=1, irow=39998
    )
    err = error_of(BufferOverrun, lambda: validate_instruction(insn, 12, EDGE))
    assert str(err) == "instruction 12 (bgemm): bgemm reads INP entries 0..40000 but INP has 32768 entries"


def test_buffer_sizes_come_from_the_config() -> None:
    insn = make("load", sram=1010)  # INP entries 1010..1029: fine on edge, past the end on small
    validate_instruction(insn, 0, EDGE)
    err = error_of(BufferOverrun, lambda: validate_instruction(insn, 0, SMALL))
    assert "INP has 1024 entries" in str(err)


# --- DRAM extents ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "buf", "verb"), [("load", "inp", "reads"), ("load", "wgt", "reads"), ("store", "acc", "writes")]
)
def test_dram_extent_boundary(op: str, buf: str, verb: str) -> None:
    code = ("inp", "wgt", "acc", "out", "const").index(buf)
    insn = make(op, buf=code, dram=1000, rows=3, len=2, dstride=500, sstride=0)
    end = 1000 + 2 * 500 + 2 * EDGE.entry_bytes(buf)  # one past the last byte
    validate_instruction(insn, 9, EDGE, dram_size=end)
    validate_instruction(insn, 9, EDGE, dram_size=None)
    err = error_of(DramOverrun, lambda: validate_instruction(insn, 9, EDGE, dram_size=end - 1))
    assert (err.index, err.op) == (9, op)
    assert f"{op} {verb} DRAM bytes 1000..{end - 1} but DRAM has {end - 1} bytes" in str(err)


def test_dram_32_bit_address_space() -> None:
    e = EDGE.entry_bytes("inp")
    validate_instruction(make("load", dram=(1 << 32) - e, rows=1, len=1), 0, EDGE)
    err = error_of(
        DramOverrun,
        lambda: validate_instruction(make("load", dram=(1 << 32) - e + 1, rows=1, len=1), 0, EDGE),
    )
    assert "32-bit" in str(err)


# --- token checker: valid pipelines ---------------------------------------------------------------


def double_buffered_pipeline(tiles: int) -> tuple[list[Instruction], int]:
    """load -> bgemm/requant -> store over `tiles` tiles on SMALL, INP/WGT/OUT double-buffered."""
    e_inp, e_wgt, e_out = (SMALL.entry_bytes(b) for b in ("inp", "wgt", "out"))
    inp_dram, wgt_dram = 64, 64 + tiles * 8 * e_inp
    out_dram = wgt_dram + tiles * 2 * e_wgt
    program = [make("load", buf=4, sram=0, dram=0, rows=1, len=1, dstride=0, pad_top=0, pad_left=0)]
    for t in range(tiles):
        half = t % 2
        wait = dict(pop_next=1) if t >= 2 else {}
        program += [
            make(
                "load",
                buf=0,
                sram=512 * half,
                dram=inp_dram + t * 8 * e_inp,
                rows=1,
                len=8,
                pad_top=0,
                pad_left=0,
                **wait,
            ),
            make(
                "load",
                buf=1,
                sram=128 * half,
                dram=wgt_dram + t * 2 * e_wgt,
                rows=1,
                len=2,
                pad_top=0,
                pad_left=0,
                push_next=1,
            ),
            make(
                "bgemm",
                kbits=2,
                mbits=2,
                acc=0,
                inp=512 * half,
                wgt=128 * half,
                oh=2,
                ow=2,
                kh=1,
                kw=1,
                stride=1,
                cw=1,
                ctiles=1,
                irow=4,
                ipix=2,
                pop_prev=1,
            ),
            make(
                "requant",
                acc=0,
                n=4,
                const=0,
                out=256 * half,
                ostride=2,
                slice=0,
                kout=2,
                lo=0,
                hi=3,
                push_prev=1,
                push_next=1,
                **wait,
            ),
            make(
                "store",
                buf=3,
                sram=256 * half,
                dram=out_dram + t * 8 * e_out,
                rows=1,
                len=8,
                sstride=0,
                pop_prev=1,
                push_prev=1,
            ),
        ]
    return [*program, FINISH], out_dram + tiles * 8 * e_out


def test_double_buffered_pipeline_passes() -> None:
    program, dram_size = double_buffered_pipeline(6)
    summary = validate_program(program, SMALL, dram_size=dram_size)
    assert isinstance(summary, TokenSummary)
    assert summary.instructions == len(program)
    counts = {q.name: (q.pushes, q.pops, q.leftover) for q in summary.queues}
    assert counts == {
        "load->compute": (6, 6, 0),
        "compute->load": (6, 4, 2),
        "compute->store": (6, 6, 0),
        "store->compute": (6, 4, 2),
    }
    assert summary.leftover == 4 and "left unconsumed" in str(summary)
    # the DRAM image must hold the last store
    err = error_of(DramOverrun, lambda: validate_program(program, SMALL, dram_size=dram_size - 1))
    assert err.index == len(program) - 2


def test_pipeline_needs_two_tokens_of_room() -> None:
    """The 2 leftover compute->load tokens plus one in flight need token_depth >= 2."""
    program, _ = double_buffered_pipeline(6)
    check_tokens(program, dataclasses.replace(SMALL, token_depth=2, queue_depth=1))
    err = error_of(DeadlockError, lambda: check_tokens(program, dataclasses.replace(SMALL, token_depth=1)))
    assert "full" in str(err)


def test_check_deadlock_false_skips_token_check() -> None:
    program = [sync(COMPUTE, "pop_prev"), FINISH]
    assert validate_program(program, EDGE, check_deadlock=False) is None
    error_of(DeadlockError, lambda: validate_program(program, EDGE))


# --- token checker: deadlocks ---------------------------------------------------------------------


def test_pop_without_push() -> None:
    program = [sync(LOAD, "push_next"), sync(COMPUTE, "pop_prev"), sync(COMPUTE, "pop_prev"), FINISH]
    err = error_of(DeadlockError, lambda: validate_program(program, EDGE))
    assert (err.index, err.op) == (2, "sync")
    assert "compute unit blocked at instruction 2 (sync): waiting for a token from load" in str(err)


def test_cycle_of_waits() -> None:
    program = [
        make("bgemm", pop_next=1, push_next=1),  # waits for store
        make("store", pop_prev=1, push_prev=1),  # waits for compute
        FINISH,
    ]
    err = error_of(DeadlockError, lambda: validate_program(program, EDGE))
    assert (err.index, err.op) == (0, "bgemm")
    text = str(err)
    assert "compute unit blocked at instruction 0 (bgemm): waiting for a token from store" in text
    assert "store unit blocked at instruction 1 (store): waiting for a token from compute" in text
    assert "load" not in text.split("program deadlocks:")[1]  # the idle load unit is not blamed


def overflow_program(hw: HwConfig, pushes: int) -> list[Instruction]:
    """Load pushes `pushes` tokens while compute first waits for a store token that fetch cannot reach."""
    return [
        sync(COMPUTE, "pop_next"),
        *[sync(LOAD, "push_next")] * pushes,
        *[sync(LOAD)] * (hw.queue_depth + 1),  # fill the load queue behind the blocked push: fetch stalls
        sync(STORE, "push_prev"),
        *[sync(COMPUTE, "pop_prev")] * pushes,
        FINISH,
    ]


def test_token_queue_overflow() -> None:
    hw = SMALL
    check_tokens(overflow_program(hw, hw.token_depth), hw)
    check_tokens(
        overflow_program(hw, hw.token_depth + 1), dataclasses.replace(hw, token_depth=hw.token_depth + 1)
    )
    program = overflow_program(hw, hw.token_depth + 1)
    err = error_of(DeadlockError, lambda: check_tokens(program, hw))
    k = 1 + hw.token_depth + 1 + hw.queue_depth  # first load that does not fit the load queue
    assert err.index == 0
    text = str(err)
    assert "compute unit blocked at instruction 0 (sync): waiting for a token from store" in text
    assert (
        f"load unit blocked at instruction {hw.token_depth + 1} (sync): token queue to compute full" in text
    )
    assert f"fetch blocked at instruction {k} (sync) on the full load queue" in text
    assert "store unit sits with an empty queue" in text


def fetch_program(n: int) -> list[Instruction]:
    """n compute instructions each waiting on a token that one of n later store instructions pushes."""
    return [*[make("bgemm", pop_next=1)] * n, *[make("store", push_prev=1)] * n, FINISH]


def test_fetch_blocked_behind_full_queue() -> None:
    """The compute unit holds the instruction it works on plus queue_depth waiting ones."""
    q = EDGE.queue_depth
    validate_program(fetch_program(q + 1), EDGE)
    err = error_of(DeadlockError, lambda: validate_program(fetch_program(q + 2), EDGE))
    assert (err.index, err.op) == (0, "bgemm")
    text = str(err)
    assert "compute unit blocked at instruction 0 (bgemm): waiting for a token from store" in text
    assert f"fetch blocked at instruction {q + 1} (bgemm) on the full compute queue ({q} waiting" in text
    assert "load and store units sit with an empty queue" in text


def test_pops_prev_before_next() -> None:
    """Compute pops load's token first, which unblocks load, which lets fetch reach the store's push.
    Popping next first would deadlock: the order is part of the machine model."""
    hw = SMALL
    program = [
        sync(COMPUTE, "pop_prev", "pop_next"),
        *[sync(LOAD, "push_next")] * (hw.token_depth + 1),
        *[sync(LOAD)] * (hw.queue_depth + 1),
        sync(STORE, "push_prev"),
        *[sync(COMPUTE, "pop_prev")] * hw.token_depth,
        FINISH,
    ]
    summary = check_tokens(program, hw)
    assert summary.leftover == 0


def test_pushes_prev_before_next() -> None:
    """Compute's push to a full compute->load queue comes before its push to store, so the store
    waiting for it keeps fetch from reaching the loads that would drain that queue."""
    hw = SMALL
    program = [
        *[sync(COMPUTE, "push_prev")] * hw.token_depth,
        sync(COMPUTE, "push_prev", "push_next"),
        sync(STORE, "pop_prev"),
        *[sync(STORE)] * (hw.queue_depth + 1),
        *[sync(LOAD, "pop_next")] * (hw.token_depth + 1),
        FINISH,
    ]
    err = error_of(DeadlockError, lambda: check_tokens(program, hw))
    assert err.index == hw.token_depth
    assert f"compute unit blocked at instruction {hw.token_depth} (sync): token queue to load full" in str(
        err
    )
    check_tokens(program, dataclasses.replace(hw, queue_depth=hw.queue_depth + 1))


def test_unit_blocked_on_push_reports_lowest_index() -> None:
    d = SMALL.token_depth
    program = [*[sync(STORE, "push_prev")] * (d + 1), sync(LOAD, "pop_next"), FINISH]
    err = error_of(DeadlockError, lambda: check_tokens(program, SMALL))
    assert err.index == d  # the store that cannot push; the load waiting on compute has a higher index
    assert f"store unit blocked at instruction {d} (sync): token queue to compute full" in str(err)
    assert f"load unit blocked at instruction {d + 1} (sync): waiting for a token from compute" in str(err)


# --- token checker: random programs ---------------------------------------------------------------

IN_CHANNELS = {  # unit -> {pop flag: (producer, consumer)}
    u: {
        flag: (nb, u)
        for flag, nb in (("pop_prev", NEIGHBOURS[Unit(u)][0]), ("pop_next", NEIGHBOURS[Unit(u)][1]))
        if nb is not None
    }
    for u in (LOAD, COMPUTE, STORE)
}
OUT_CHANNELS = {
    u: {
        flag: (u, nb)
        for flag, nb in (("push_prev", NEIGHBOURS[Unit(u)][0]), ("push_next", NEIGHBOURS[Unit(u)][1]))
        if nb is not None
    }
    for u in (LOAD, COMPUTE, STORE)
}


@st.composite
def matched_programs(draw: st.DrawFn, token_depth: int, drain: bool) -> tuple[list[Instruction], dict]:
    """Every pop follows (in program order) a push it matches; at most token_depth outstanding per queue."""
    pending: dict[tuple, int] = {ch: 0 for u in OUT_CHANNELS for ch in OUT_CHANNELS[u].values()}
    program = []
    for _ in range(draw(st.integers(0, 40))):
        unit = draw(st.sampled_from([LOAD, COMPUTE, STORE]))
        flags = []
        for flag, ch in IN_CHANNELS[unit].items():
            if pending[ch] and draw(st.booleans()):
                pending[ch] -= 1
                flags.append(flag)
        for flag, ch in OUT_CHANNELS[unit].items():
            if pending[ch] < token_depth and draw(st.booleans()):
                pending[ch] += 1
                flags.append(flag)
        program.append(sync(unit, *flags))
    if drain:
        for channel, count in pending.items():
            consumer = channel[1]
            flag = next(f for f, ch in IN_CHANNELS[consumer].items() if ch == channel)
            program += [sync(consumer, flag)] * count
        pending = dict.fromkeys(pending, 0)
    return program, pending


@settings(max_examples=150, deadline=None)
@given(data=st.data(), queue_depth=st.integers(1, 4), token_depth=st.integers(1, 4))
def test_matched_programs_pass(data: st.DataObject, queue_depth: int, token_depth: int) -> None:
    program, pending = data.draw(matched_programs(token_depth, drain=False))
    hw = dataclasses.replace(SMALL, queue_depth=queue_depth, token_depth=token_depth)
    summary = check_tokens([*program, FINISH], hw)
    for (producer, consumer), left in pending.items():
        q = summary.queue(Unit(producer).name.lower(), Unit(consumer).name.lower())
        assert q.leftover == left and q.pushes >= q.pops


@settings(max_examples=150, deadline=None)
@given(data=st.data(), queue_depth=st.integers(1, 4), token_depth=st.integers(1, 4))
def test_unmatched_pop_deadlocks_at_or_after_it(
    data: st.DataObject, queue_depth: int, token_depth: int
) -> None:
    """Everything before an extra pop still retires (each pop there has its token), so the lowest blocked
    instruction is the extra pop or a later one; exactly the extra pop when no later pop shares its queue."""
    program, _ = data.draw(matched_programs(token_depth, drain=True))
    unit = data.draw(st.sampled_from([LOAD, COMPUTE, STORE]))
    flag = data.draw(st.sampled_from(sorted(IN_CHANNELS[unit])))
    same_queue = [i for i, insn in enumerate(program) if insn.unit == unit and insn.as_dict()[flag]]
    last_only = data.draw(st.booleans())
    lowest = same_queue[-1] + 1 if last_only and same_queue else 0
    at = data.draw(st.integers(lowest, len(program)))
    bad = [*program[:at], sync(unit, flag), *program[at:], FINISH]
    hw = dataclasses.replace(SMALL, queue_depth=queue_depth, token_depth=token_depth)
    check_tokens([*program, FINISH], hw)
    err = error_of(DeadlockError, lambda: check_tokens(bad, hw))
    assert err.index >= at
    if last_only:
        assert err.index == at and "waiting for a token" in str(err)


def reference_run(program: list[tuple[int, tuple[str, ...]]], qd: int, td: int, rng: random.Random) -> dict:
    """One move at a time, a random enabled move each time: the slow, obvious model. A unit takes
    the head of its queue (freeing the slot) into `current`, then does its token steps in order."""
    steps = []
    for unit, flags in program:
        seq = [("pop", IN_CHANNELS[unit][f]) for f in ("pop_prev", "pop_next") if f in flags]
        seq += [("push", OUT_CHANNELS[unit][f]) for f in ("push_prev", "push_next") if f in flags]
        steps.append(seq)
    tokens: dict[tuple, int] = {}
    waiting: dict[int, list[int]] = {LOAD: [], COMPUTE: [], STORE: []}
    current: dict[int, int | None] = dict.fromkeys(waiting)
    done = dict.fromkeys(waiting, 0)  # steps done by each unit's current instruction
    fetch = 0
    while True:
        moves = []
        if fetch < len(program) and len(waiting[program[fetch][0]]) < qd:
            moves.append(("fetch", None))
        for u, k in current.items():
            if k is None:
                if waiting[u]:
                    moves.append(("take", u))
            elif done[u] == len(steps[k]):
                moves.append(("retire", u))
            else:
                kind, ch = steps[k][done[u]]
                if (kind == "pop" and tokens.get(ch, 0) > 0) or (kind == "push" and tokens.get(ch, 0) < td):
                    moves.append(("step", u))
        if not moves:
            break
        move, u = rng.choice(moves)
        if move == "fetch":
            waiting[program[fetch][0]].append(fetch)
            fetch += 1
        elif move == "take":
            current[u] = waiting[u].pop(0)
        elif move == "retire":
            current[u], done[u] = None, 0
        else:
            kind, ch = steps[current[u]][done[u]]
            tokens[ch] = tokens.get(ch, 0) + (1 if kind == "push" else -1)
            done[u] += 1
    stuck = [k for k in current.values() if k is not None]
    return {
        "deadlock": bool(stuck) or fetch < len(program),
        "index": min(stuck, default=None),
        "tokens": tokens,
    }


@st.composite
def any_programs(draw: st.DrawFn) -> list[tuple[int, tuple[str, ...]]]:
    program = []
    for _ in range(draw(st.integers(0, 30))):
        unit = draw(st.sampled_from([LOAD, COMPUTE, STORE]))
        legal = sorted([*IN_CHANNELS[unit], *OUT_CHANNELS[unit]])
        program.append((unit, tuple(f for f in legal if draw(st.integers(0, 3)) == 0)))
    return program


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=any_programs(), qd=st.integers(1, 3), td=st.integers(1, 3), seed=st.integers(0, 2**32))
def test_checker_agrees_with_reference_model(program: list, qd: int, td: int, seed: int) -> None:
    ref = reference_run(program, qd, td, random.Random(seed))
    insns = [sync(unit, *flags) for unit, flags in program]
    hw = dataclasses.replace(SMALL, queue_depth=qd, token_depth=td)
    if ref["deadlock"]:
        err = error_of(DeadlockError, lambda: check_tokens(insns, hw))
        assert err.index == ref["index"]
    else:
        summary = check_tokens(insns, hw)
        for q in summary.queues:
            ch = (int(Unit[q.producer.upper()]), int(Unit[q.consumer.upper()]))
            assert q.leftover == ref["tokens"].get(ch, 0)


# --- speed ----------------------------------------------------------------------------------------


def sync_pipeline(tiles: int) -> list[Instruction]:
    program = []
    for t in range(tiles):
        wait = ("pop_next",) if t >= 2 else ()
        program += [
            sync(LOAD, "push_next", *wait),
            sync(COMPUTE, "pop_prev", "push_prev", "push_next", *wait),
            sync(STORE, "pop_prev", "push_prev"),
        ]
    return [*program, FINISH]


def test_checker_on_100k_instructions() -> None:
    """The checker's answers on a long program (its speed is measured by bench/validate_speed.py)."""
    program = sync_pipeline(34_000)  # 102 001 instructions
    for hw in (EDGE, dataclasses.replace(EDGE, queue_depth=1, token_depth=2)):
        summary = check_tokens(program, hw)
        assert summary.queue("compute", "store").pops == 34_000
    bad = [*program[:-1], sync(STORE, "pop_prev"), FINISH]
    err = error_of(DeadlockError, lambda: check_tokens(bad, EDGE))
    assert err.index == len(program) - 1


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_instructions_raise_only_isa_errors(data: st.DataObject) -> None:
    """With legal token flags, validation either passes (and then every access is in bounds) or
    raises one of the field/extent errors; nothing else escapes."""
    strategies = pytest.importorskip("strategies")
    insn = data.draw(strategies.valid_instructions(legal_tokens=True))
    dram_size = 1 << 24
    try:
        validate_instruction(insn, 0, EDGE, dram_size=dram_size)
    except (FieldRangeError, BufferOverrun, DramOverrun):
        return
    for a in access_ranges(insn, EDGE):
        limit = dram_size if a.buffer == "dram" else EDGE.entries(a.buffer)
        assert 0 <= a.first <= a.last < limit


# --- the vectorised screen of validate_program --------------------------------------------------------


def _mutants(rng: random.Random, hw: HwConfig, count: int, dram_size: int) -> list[Instruction]:
    """Random instructions near the edges of validity: valid random-program instructions with one to
    three fields set to a boundary or random value (in or out of their legal range)."""
    import numpy as np

    from bitbranch.simulator.randprog import RandomProgramConfig, random_program

    program, _ = random_program(hw, np.random.default_rng(rng.randrange(1 << 30)), 80,
                                RandomProgramConfig(p_edge=0.5, p_wide=0.3))
    out = []
    addresses = {"sram", "dram", "acc", "inp", "wgt", "out", "const", "rinp"}
    for _ in range(count):
        insn = rng.choice(program)
        layout = OPCODE_BY_NAME[insn.op].layout
        values = list(insn.values)
        accesses = access_ranges(insn, hw)
        if accesses and rng.random() < 0.3:  # move one access so that it ends just inside / outside
            a = rng.choice(accesses)
            size = dram_size if a.buffer == "dram" else hw.entries(a.buffer)
            names = [j for j, p in enumerate(layout) if p.name in addresses and values[j] == a.first]
            if names:
                values[rng.choice(names)] = max(0, size - 1 - (a.last - a.first) + rng.choice([0, 1]))
                out.append(Instruction(insn.op, tuple(values)))
                continue
        for _ in range(rng.randint(1, 3)):
            j = rng.randrange(len(layout))
            f = layout[j].field
            top = (1 << f.width) - 1
            choices = [0, 1, f.lo, f.max_value, f.max_value + 1, top, values[j] + 1, values[j] - 1,
                       rng.randint(0, top), rng.randint(0, min(top, 64)), hw.entries("inp") - 1, 4096, 65535]
            values[j] = max(0, rng.choice(choices))
        out.append(Instruction(insn.op, tuple(values)))
    return out


@pytest.mark.parametrize("hw", [SMALL, EDGE, get_config("cloud")], ids=lambda h: h.name)
def test_screen_agrees_with_validate_instruction(hw):
    """validate_program trusts its vectorised screen for instructions it passes: it must pass exactly
    the instructions validate_instruction accepts (soundness; and no needless slow checks)."""
    from bitbranch.isa.validate import _screen

    rng = random.Random(hw.name)
    dram_size = 6000
    program = _mutants(rng, hw, 6000, dram_size)
    suspects, units, masks = _screen(program, hw, dram_size)
    accepted = []
    for index, insn in enumerate(program):
        try:
            validate_instruction(insn, index, hw, dram_size)
            accepted.append(True)
        except IsaError:
            accepted.append(False)
        if accepted[-1]:
            assert units[index] == int(insn.exec_unit)
    screened = [True] * len(program)
    for index in suspects:
        if program[index].op != "finish":
            screened[index] = False
    bad = [(i, program[i]) for i in range(len(program)) if screened[i] != accepted[i] and program[i].op != "finish"]
    assert not bad, bad[:5]
    assert 0.2 < sum(accepted) / len(accepted) < 0.8  # both kinds are well represented
