"""Program validation, shared by everyone who loads a program (simulator, RTL bench, compiler self-check).

`isa.encoding` checks each field on its own (width, legal range, enum). This module checks what only
makes sense with several fields, a hardware config or a DRAM image at hand, so that every program
that passes has exactly one meaning under the pseudo-code in `isa.spec`:

* `validate_instruction` — cross-field rules, token flags, on-chip buffer and DRAM extents;
* `validate_program` — every instruction, the position of `finish`, then the static token check;
* `check_tokens` — proves the program cannot stall forever on tokens or full queues;
* `access_ranges` — the exact [first, last] entry range each instruction reads and writes per buffer
  (also used by the simulator's trace and the RTL cross-check).

Machine model used by `check_tokens` (the simulator and the RTL must implement the same):

* One fetch unit dispatches instructions in program order, one at a time, into the instruction queue
  of the unit that executes it (load, compute or store; `sync` names its unit). Each queue holds
  `hw.queue_depth` instructions; fetch blocks while the target queue is full.
* An idle unit takes the head of its queue at once, which frees that slot (as in VTA and the SimPy
  machine), so a unit holds at most queue_depth waiting instructions plus the one it works on. It
  works in four steps, in TOKEN_FIELDS order: pop_prev, pop_next (each blocks while that token queue
  is empty), execute, push_prev, push_next (each blocks while that token queue holds
  `hw.token_depth` tokens), then retires and takes the next. The step order matters: with bounded
  queues and one shared fetch, popping (or pushing) in another order can turn a program that runs
  into one that deadlocks (tests/test_validate.py pins both orders).
* Four token queues, one producer and one consumer each: load->compute, compute->load,
  compute->store, store->compute.

Every step is a blocking read or a blocking bounded write on a channel with one reader and one
writer, and no step can disable another process's enabled step, so the network is deterministic:
whether it deadlocks does not depend on timing, and running any enabled step until none is left is
an exact check. Leftover tokens at the end are legal (as in VTA) and reported in `TokenSummary`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .encoding import Instruction, check_fields
from .errors import BufferOverrun, DeadlockError, DramOverrun, FieldRangeError, IllegalInstruction, TokenError
from .hwconfig import HwConfig
from .spec import (
    NEIGHBOURS,
    OPCODE_BY_NAME,
    TOKEN_FIELDS,
    Buffer,
    Dest,
    Field,
    PoolMode,
    Unit,
    WeightMode,
)

DRAM = "dram"
DRAM_ADDRESS_SPACE = 1 << 32  # DMA addresses are 32-bit; an access may not wrap around

Kind = Literal["read", "write"]


@dataclass(frozen=True)
class Access:
    """A contiguous hull of entries one instruction reads or writes.

    `buffer` is a lower-case buffer name from isa.hwconfig.BUFFERS, or "dram" (then first/last are byte
    addresses). `last` is inclusive. Strided accesses may skip entries inside the hull; the hull is
    what bounds checks and hazard tracking need. Partial writes (requant/pool set one C-lane slice of
    a word and keep the other bits) are listed as writes.
    """

    buffer: str
    kind: Kind
    first: int
    last: int

    @property
    def label(self) -> str:
        return self.buffer.upper()

    def __str__(self) -> str:
        unit = "bytes" if self.buffer == DRAM else "entries"
        return f"{self.kind} {self.label} {unit} {self.first}..{self.last}"


# ---------------------------------------------------------------------------------------------------
# Field access without Instruction.__getattr__ (which scans the layout on every call).

_NAMES: dict[str, tuple[str, ...]] = {
    op.name: tuple(p.name for p in op.layout) for op in OPCODE_BY_NAME.values()
}
_FLAG_NAMES = tuple(f.name for f in TOKEN_FIELDS)  # pop_prev, pop_next, push_prev, push_next


def _legal_set(f: Field) -> frozenset[int] | None:
    if f.enum is None:
        return None
    return frozenset(f.allowed if f.allowed is not None else (int(m) for m in f.enum))


# Per opcode: (lo, hi, legal enum values or None) of every field, to check many instructions fast;
# on a failure isa.encoding.check_fields (the one definition of the field rules) raises the error.
_BOUNDS: dict[str, tuple[tuple[int, int, frozenset[int] | None], ...]] = {
    op.name: tuple((p.field.lo, p.field.max_value, _legal_set(p.field)) for p in op.layout)
    for op in OPCODE_BY_NAME.values()
}


def _fields(insn: Instruction) -> dict[str, int]:
    return dict(zip(_NAMES[insn.op], insn.values, strict=True))


def _check_fields(insn: Instruction, index: int | None) -> None:
    bounds = _BOUNDS[insn.op]
    for (lo, hi, legal), v in zip(bounds, insn.values, strict=True):
        if not lo <= v <= hi or (legal is not None and v not in legal):
            check_fields(insn, index)
            raise AssertionError(f"isa.validate field bounds disagree with check_fields on {insn}")


def _exec_unit(op: str, f: dict[str, int], index: int | None) -> Unit:
    unit = OPCODE_BY_NAME[op].unit
    if unit is not None:
        return unit
    if f["unit"] not in tuple(Unit):
        raise FieldRangeError(f"field 'unit'={f['unit']} names no unit", index, op)
    return Unit(f["unit"])


def _buf_name(code: int) -> str:
    return Buffer(code).name.lower()


# ---------------------------------------------------------------------------------------------------
# Access ranges: closed forms of the loop bounds in the isa.spec pseudo-code. Every index expression
# there is a sum of non-negative coefficients times loop variables, so the minimum is at all-zero and
# the maximum at every loop variable's last value.


def _load_accesses(f: dict[str, int], hw: HwConfig) -> list[Access]:
    buf = _buf_name(f["buf"])
    width = f["pad_left"] + f["len"] + f["pad_right"]
    stride = f["sstride"] or width
    sram_rows = f["pad_top"] + f["rows"] + f["pad_bottom"]
    dram_last = f["dram"] + (f["rows"] - 1) * f["dstride"] + f["len"] * hw.entry_bytes(buf) - 1
    return [
        Access(DRAM, "read", f["dram"], dram_last),
        Access(buf, "write", f["sram"], f["sram"] + (sram_rows - 1) * stride + width - 1),
    ]


def _store_accesses(f: dict[str, int], hw: HwConfig) -> list[Access]:
    buf = _buf_name(f["buf"])
    stride = f["sstride"] or f["len"]
    dram_last = f["dram"] + (f["rows"] - 1) * f["dstride"] + f["len"] * hw.entry_bytes(buf) - 1
    return [
        Access(buf, "read", f["sram"], f["sram"] + (f["rows"] - 1) * stride + f["len"] - 1),
        Access(DRAM, "write", f["dram"], dram_last),
    ]


def _bgemm_accesses(f: dict[str, int], hw: HwConfig) -> list[Access]:
    rows = (f["oh"] - 1) * f["stride"] + (f["kh"] - 1) * f["dil"]
    cols = (f["ow"] - 1) * f["stride"] + (f["kw"] - 1) * f["dil"]
    inp_last = f["inp"] + rows * f["irow"] + cols * f["ipix"] + f["cw"] * f["kbits"] - 1
    wgt_last = f["wgt"] + f["ctiles"] * f["kh"] * f["kw"] * f["cw"] * f["mbits"] - 1
    acc = Access("acc", "write", f["acc"], f["acc"] + f["ctiles"] * f["oh"] * f["ow"] - 1)
    out = [Access("inp", "read", f["inp"], inp_last), Access("wgt", "read", f["wgt"], wgt_last)]
    if f["accumulate"]:
        out.append(Access("acc", "read", acc.first, acc.last))
    out.append(acc)
    return out


def _requant_accesses(f: dict[str, int], hw: HwConfig) -> list[Access]:
    n = f["n"]
    acc_last = f["acc"] + n - 1
    out = [Access("acc", "read", f["acc"], acc_last), Access("const", "read", f["const"], f["const"])]
    if f["res"] and f["rk"]:
        out.append(Access("inp", "read", f["rinp"], f["rinp"] + (n - 1) * f["rstride"] + f["rk"] - 1))
    if f["dest"] == Dest.ACC:
        out.append(Access("acc", "write", f["acc"], acc_last))
    elif f["kout"]:
        out.append(Access("out", "write", f["out"], f["out"] + (n - 1) * f["ostride"] + f["kout"] - 1))
    return out


def _pool_accesses(f: dict[str, int], hw: HwConfig) -> list[Access]:
    rows = (f["oh"] - 1) * f["stride"] + f["kh"] - 1
    cols = (f["ow"] - 1) * f["stride"] + f["kw"] - 1
    pixels = f["oh"] * f["ow"]
    out = [Access("inp", "read", f["inp"], f["inp"] + rows * f["irow"] + cols * f["ipix"] + f["k"] - 1)]
    if f["mode"] == PoolMode.MAX:
        out.append(Access("out", "write", f["out"], f["out"] + (pixels - 1) * f["ostride"] + f["k"] - 1))
    else:
        out.append(Access("acc", "write", f["acc"], f["acc"] + pixels - 1))
    return out


_ACCESSES: dict[str, Callable[[dict[str, int], HwConfig], list[Access]]] = {
    "load": _load_accesses,
    "store": _store_accesses,
    "bgemm": _bgemm_accesses,
    "requant": _requant_accesses,
    "pool": _pool_accesses,
}


def access_ranges(insn: Instruction, hw: HwConfig) -> list[Access]:
    """Every buffer/DRAM range `insn` reads and writes, reads first; [] for sync and finish.

    Assumes field-level validity (run validate_instruction first for untrusted input). A read and a
    write of the same buffer (bgemm accumulate, requant dest=acc) are listed separately.
    """
    fn = _ACCESSES.get(insn.op)
    return fn(_fields(insn), hw) if fn else []


# ---------------------------------------------------------------------------------------------------
# Cross-field rules. Each raises FieldRangeError naming the offending field(s).


def _require(ok: bool, message: str, index: int | None, op: str) -> None:
    if not ok:
        raise FieldRangeError(message, index, op)


def _rules_load(f: dict[str, int], hw: HwConfig, index: int | None) -> None:
    # Rows written by one load must not overlap, or the result would depend on the DMA's write order.
    width = f["pad_left"] + f["len"] + f["pad_right"]
    _require(
        f["sstride"] == 0 or f["sstride"] >= width,
        f"sstride={f['sstride']} is less than the row width pad_left+len+pad_right={width} "
        "(SRAM rows overlap)",
        index,
        "load",
    )


def _rules_store(f: dict[str, int], hw: HwConfig, index: int | None) -> None:
    _require(
        f["sstride"] == 0 or f["sstride"] >= f["len"],
        f"sstride={f['sstride']} is less than len={f['len']} (SRAM rows overlap)",
        index,
        "store",
    )
    # DRAM rows written by one store must not overlap (same reason as load's sstride rule).
    row_bytes = f["len"] * hw.entry_bytes(_buf_name(f["buf"]))
    _require(
        f["rows"] == 1 or f["dstride"] >= row_bytes,
        f"dstride={f['dstride']} is less than the row size len*entry_bytes={row_bytes} bytes with "
        f"rows={f['rows']} (DRAM rows overlap)",
        index,
        "store",
    )


def _rules_bgemm(f: dict[str, int], hw: HwConfig, index: int | None) -> None:
    _require(
        f["wmode"] != WeightMode.EQUAL or f["mbits"] == 2,
        f"wmode=equal (ternary) needs mbits=2, got mbits={f['mbits']}",
        index,
        "bgemm",
    )


def _require_slice(f: dict[str, int], hw: HwConfig, index: int | None, op: str) -> None:
    # Checked even when the slice is unused (requant dest=acc, res=0): the RTL decoder checks it always.
    _require(
        f["slice"] < hw.slices_per_word,
        f"slice={f['slice']} but a {hw.word_bits}-bit word has {hw.slices_per_word} slices of "
        f"{hw.array_cols} lanes (slice must be < {hw.slices_per_word})",
        index,
        op,
    )


def _rules_requant(f: dict[str, int], hw: HwConfig, index: int | None) -> None:
    _require_slice(f, hw, index, "requant")
    if f["res"]:
        _require(f["rk"] >= 1, "res=1 needs rk >= 1 residual planes, got rk=0", index, "requant")
    if f["dest"] != Dest.OUT:
        return
    kout, lo, hi = f["kout"], f["lo"], f["hi"]
    _require(kout >= 1, "dest=out needs kout >= 1 output planes, got kout=0", index, "requant")
    _require(lo <= hi, f"clamp range is empty: lo={lo} > hi={hi}", index, "requant")
    top = (1 << kout) - 1
    _require(hi <= top, f"hi={hi} does not fit kout={kout} planes (max level {top})", index, "requant")
    # Pixels must not share OUT entries, or the result would depend on the write order.
    _require(
        f["n"] == 1 or f["ostride"] >= kout,
        f"ostride={f['ostride']} is less than kout={kout} with n={f['n']} pixels (output pixels overlap)",
        index,
        "requant",
    )


def _rules_pool(f: dict[str, int], hw: HwConfig, index: int | None) -> None:
    _require_slice(f, hw, index, "pool")
    pixels = f["oh"] * f["ow"]
    _require(
        f["mode"] != PoolMode.MAX or pixels == 1 or f["ostride"] >= f["k"],
        f"ostride={f['ostride']} is less than k={f['k']} with {pixels} output pixels (output pixels overlap)",
        index,
        "pool",
    )


_RULES: dict[str, Callable[[dict[str, int], HwConfig, int | None], None]] = {
    "load": _rules_load,
    "store": _rules_store,
    "bgemm": _rules_bgemm,
    "requant": _rules_requant,
    "pool": _rules_pool,
}


def check_token_flags(insn: Instruction, index: int | None = None) -> None:
    """TokenError if a flag names a neighbour the executing unit lacks (see spec.NEIGHBOURS)."""
    _check_flags(insn.op, _fields(insn), index)


def _check_flags(op: str, f: dict[str, int], index: int | None) -> None:
    unit = _exec_unit(op, f, index)
    prev, nxt = NEIGHBOURS[unit]
    for name in _FLAG_NAMES:
        side = "prev" if name.endswith("prev") else "next"
        if f[name] and (prev if side == "prev" else nxt) is None:
            where = (
                f"sync on the {unit.name.lower()} unit" if op == "sync" else f"the {unit.name.lower()} unit"
            )
            raise TokenError(
                f"{name}=1 but {where} has no {'previous' if side == 'prev' else 'next'} unit "
                "(token queues: load <-> compute <-> store)",
                index,
                op,
            )


def _check_extent(access: Access, hw: HwConfig, dram_size: int | None, index: int | None, op: str) -> None:
    verb = "reads" if access.kind == "read" else "writes"
    span = f"{access.first}..{access.last}"
    if access.buffer == DRAM:
        if access.last >= DRAM_ADDRESS_SPACE:
            raise DramOverrun(
                f"{op} {verb} DRAM bytes {span}, beyond the 32-bit DRAM address space", index, op
            )
        if dram_size is not None and access.last >= dram_size:
            raise DramOverrun(f"{op} {verb} DRAM bytes {span} but DRAM has {dram_size} bytes", index, op)
        return
    size = hw.entries(access.buffer)
    if access.last >= size:
        raise BufferOverrun(
            f"{op} {verb} {access.label} entries {span} but {access.label} has {size} entries", index, op
        )


def validate_instruction(
    insn: Instruction, index: int | None, hw: HwConfig, dram_size: int | None = None
) -> None:
    """Raise the specific isa.errors type if `insn` is not well defined on `hw` (and a DRAM image).

    Checks, in order (the first failure is raised, with `index`):

    * IllegalInstruction / FieldRangeError: unknown opcode, wrong value count, field-level ranges.
    * TokenError: a token flag naming a neighbour the executing unit lacks (load: no prev; store: no
      next; sync: the unit in its `unit` field).
    * FieldRangeError, cross-field rules:
      - load: sstride, if non-zero, >= pad_left+len+pad_right (rows of one load never overlap);
      - store: sstride, if non-zero, >= len; with rows > 1, dstride >= len*entry_bytes (DRAM rows
        written by one store never overlap, so the result does not depend on DMA write order);
      - bgemm: wmode=equal (ternary) requires mbits == 2;
      - requant: slice < hw.slices_per_word (always, even if unused); res=1 requires rk >= 1;
        dest=out requires kout >= 1, lo <= hi <= 2^kout - 1, and ostride >= kout when n > 1 (pixels
        write disjoint OUT entries);
      - pool: slice < hw.slices_per_word; mode=max with more than one output pixel requires
        ostride >= k (disjoint OUT entries).
    * BufferOverrun: an access_ranges() hull reaches past hw.entries(buffer). Addresses never wrap.
    * DramOverrun: a DMA reaches past 2^32 (always) or past `dram_size` bytes (when given).
    """
    opcode = OPCODE_BY_NAME.get(insn.op)
    if opcode is None:
        raise IllegalInstruction(f"unknown opcode '{insn.op}'", index)
    if len(insn.values) != len(opcode.layout):
        raise IllegalInstruction(
            f"{len(insn.values)} field values, {insn.op} has {len(opcode.layout)} fields", index, insn.op
        )
    _check_fields(insn, index)
    f = _fields(insn)
    _check_flags(insn.op, f, index)
    rules = _RULES.get(insn.op)
    if rules is None:
        return
    rules(f, hw, index)
    for access in _ACCESSES[insn.op](f, hw):
        _check_extent(access, hw, dram_size, index, insn.op)


def validate_program(
    program: Sequence[Instruction], hw: HwConfig, dram_size: int | None = None, check_deadlock: bool = True
) -> TokenSummary | None:
    """Validate every instruction, then `finish` placement, then (optionally) the token check.

    `finish` must appear exactly once, as the last instruction; otherwise IllegalInstruction (an
    instruction illegal at its position) at the first misplaced `finish`, or at the last instruction
    when `finish` is missing. Errors are raised in program order, so the reported index is the
    lowest one with a per-instruction problem. Returns check_tokens' summary (None if skipped).
    """
    if not program:
        raise IllegalInstruction("empty program: it must end with finish")
    last = len(program) - 1
    screened = _screen(program, hw, dram_size)
    # Instructions the vectorised screen passes are valid (it implements the same checks); the others
    # get the full per-instruction check in program order, so the first error raised is the same.
    suspects = range(len(program)) if screened is None else screened[0]
    for index in suspects:
        insn = program[index]
        validate_instruction(insn, index, hw, dram_size)
        if insn.op == "finish" and index != last:
            raise IllegalInstruction(
                f"finish must be the last instruction (and appear once), but {last - index} follow it",
                index,
                "finish",
            )
    if program[last].op != "finish":
        raise IllegalInstruction("the program must end with finish", last, program[last].op)
    if not check_deadlock:
        return None
    if screened is None:
        return check_tokens(program, hw)
    return _check_decoded_tokens(program, hw, screened[1], screened[2])


# ---------------------------------------------------------------------------------------------------
# Vectorised screen: the checks of validate_instruction, per opcode over all its instructions at once.
# It only decides "certainly valid" or "look closer"; errors (and their messages) always come from
# validate_instruction, so the two cannot disagree on what is reported.


def _lookup(table: dict[int, int], size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.int64)
    for k, v in table.items():
        out[k] = v
    return out


def _screen(
    program: Sequence[Instruction], hw: HwConfig, dram_size: int | None
) -> tuple[list[int], list[int], list[int]] | None:
    """(suspect indices, executing unit, token-flag mask) of every instruction, or None if the program
    cannot be screened (unknown opcodes, malformed values): then everything gets the full check."""
    n = len(program)
    groups: dict[str, list[int]] = {}
    for index, insn in enumerate(program):
        groups.setdefault(insn.op, []).append(index)
    units = np.zeros(n, dtype=np.int64)
    masks = np.zeros(n, dtype=np.int64)
    ok = np.ones(n, dtype=bool)
    dram_limit = DRAM_ADDRESS_SPACE if dram_size is None else min(dram_size, DRAM_ADDRESS_SPACE)
    entries = {name: hw.entries(name) for name in ("inp", "wgt", "acc", "out", "const")}
    buf_entries = _lookup({int(b): hw.entries(b.name.lower()) for b in Buffer}, 8)
    buf_bytes = _lookup({int(b): hw.entry_bytes(b.name.lower()) for b in Buffer}, 8)
    for op, idx in groups.items():
        opcode = OPCODE_BY_NAME.get(op)
        if opcode is None:
            return None
        width = len(opcode.layout)
        try:
            v = np.array([program[i].values for i in idx], dtype=np.int64)
        except (ValueError, TypeError, OverflowError):
            return None
        if v.shape != (len(idx), width):
            return None
        col = {name: v[:, j] for j, name in enumerate(_NAMES[op])}
        good = np.ones(len(idx), dtype=bool)
        for j, (lo, hi, legal) in enumerate(_BOUNDS[op]):
            good &= (v[:, j] >= lo) & (v[:, j] <= hi)
            if legal is not None:
                good &= np.isin(v[:, j], sorted(legal))
        flags = col["pop_prev"] | col["pop_next"] << 1 | col["push_prev"] << 2 | col["push_next"] << 3
        unit = col["unit"] if opcode.unit is None else np.full(len(idx), int(opcode.unit), dtype=np.int64)
        illegal = np.array(_ILLEGAL_MASK + (15,) * 5, dtype=np.int64)[np.clip(unit, 0, 7)]
        good &= (flags & illegal) == 0
        good &= _SCREENS[op](col, hw, entries, buf_entries, buf_bytes, dram_limit) if op in _SCREENS else True
        ia = np.array(idx)
        ok[ia] = good
        units[ia] = unit
        masks[ia] = flags
    suspects = np.flatnonzero(~ok).tolist()
    for index in groups.get("finish", ()):  # finish anywhere but last
        if index != n - 1:
            suspects.append(index)
    return sorted(set(suspects)), units.tolist(), masks.tolist()


def _screen_load(c, hw, entries, buf_entries, buf_bytes, dram_limit) -> np.ndarray:
    width = c["pad_left"] + c["len"] + c["pad_right"]
    stride = np.where(c["sstride"] == 0, width, c["sstride"])
    sram_rows = c["pad_top"] + c["rows"] + c["pad_bottom"]
    dram_last = c["dram"] + (c["rows"] - 1) * c["dstride"] + c["len"] * buf_bytes[c["buf"] & 7] - 1
    sram_last = c["sram"] + (sram_rows - 1) * stride + width - 1
    return (((c["sstride"] == 0) | (c["sstride"] >= width)) & (dram_last < dram_limit)
            & (sram_last < buf_entries[c["buf"] & 7]))


def _screen_store(c, hw, entries, buf_entries, buf_bytes, dram_limit) -> np.ndarray:
    e = buf_bytes[c["buf"] & 7]
    stride = np.where(c["sstride"] == 0, c["len"], c["sstride"])
    dram_last = c["dram"] + (c["rows"] - 1) * c["dstride"] + c["len"] * e - 1
    sram_last = c["sram"] + (c["rows"] - 1) * stride + c["len"] - 1
    return (((c["sstride"] == 0) | (c["sstride"] >= c["len"])) & ((c["rows"] == 1) | (c["dstride"] >= c["len"] * e))
            & (sram_last < buf_entries[c["buf"] & 7]) & (dram_last < dram_limit))


def _screen_bgemm(c, hw, entries, buf_entries, buf_bytes, dram_limit) -> np.ndarray:
    rows = (c["oh"] - 1) * c["stride"] + (c["kh"] - 1) * c["dil"]
    cols = (c["ow"] - 1) * c["stride"] + (c["kw"] - 1) * c["dil"]
    inp_last = c["inp"] + rows * c["irow"] + cols * c["ipix"] + c["cw"] * c["kbits"] - 1
    wgt_last = c["wgt"] + c["ctiles"] * c["kh"] * c["kw"] * c["cw"] * c["mbits"] - 1
    acc_last = c["acc"] + c["ctiles"] * c["oh"] * c["ow"] - 1
    return (((c["wmode"] != WeightMode.EQUAL) | (c["mbits"] == 2)) & (inp_last < entries["inp"])
            & (wgt_last < entries["wgt"]) & (acc_last < entries["acc"]))


def _screen_requant(c, hw, entries, buf_entries, buf_bytes, dram_limit) -> np.ndarray:
    n = c["n"]
    to_out = c["dest"] == Dest.OUT
    kout = c["kout"]
    good = (c["slice"] < hw.slices_per_word) & ((c["res"] == 0) | (c["rk"] >= 1))
    good &= ~to_out | ((kout >= 1) & (c["lo"] <= c["hi"]) & (c["hi"] <= (1 << kout) - 1)
                       & ((n == 1) | (c["ostride"] >= kout)))
    good &= (c["acc"] + n - 1 < entries["acc"]) & (c["const"] < entries["const"])
    good &= (c["res"] == 0) | (c["rk"] == 0) | (c["rinp"] + (n - 1) * c["rstride"] + c["rk"] - 1 < entries["inp"])
    good &= ~to_out | (kout == 0) | (c["out"] + (n - 1) * c["ostride"] + kout - 1 < entries["out"])
    return good


def _screen_pool(c, hw, entries, buf_entries, buf_bytes, dram_limit) -> np.ndarray:
    rows = (c["oh"] - 1) * c["stride"] + c["kh"] - 1
    cols = (c["ow"] - 1) * c["stride"] + c["kw"] - 1
    pixels = c["oh"] * c["ow"]
    is_max = c["mode"] == PoolMode.MAX
    good = (c["slice"] < hw.slices_per_word) & (~is_max | (pixels == 1) | (c["ostride"] >= c["k"]))
    good &= c["inp"] + rows * c["irow"] + cols * c["ipix"] + c["k"] - 1 < entries["inp"]
    good &= np.where(is_max, c["out"] + (pixels - 1) * c["ostride"] + c["k"] - 1 < entries["out"],
                     c["acc"] + pixels - 1 < entries["acc"])
    return good


_SCREENS = {
    "load": _screen_load,
    "store": _screen_store,
    "bgemm": _screen_bgemm,
    "requant": _screen_requant,
    "pool": _screen_pool,
}


# ---------------------------------------------------------------------------------------------------
# Static token / queue checker.

_UNITS = (Unit.LOAD, Unit.COMPUTE, Unit.STORE)
# Token queues as (producer, consumer); the summary lists them in this order.
TOKEN_QUEUES: tuple[tuple[Unit, Unit], ...] = (
    (Unit.LOAD, Unit.COMPUTE),
    (Unit.COMPUTE, Unit.LOAD),
    (Unit.COMPUTE, Unit.STORE),
    (Unit.STORE, Unit.COMPUTE),
)
_CHANNEL = {pair: k for k, pair in enumerate(TOKEN_QUEUES)}


def _step_channels(unit: Unit) -> tuple[int | None, ...]:
    """Token queue used by each step (pop_prev, pop_next, push_prev, push_next) of `unit`, or None."""
    prev, nxt = NEIGHBOURS[unit]
    return (
        _CHANNEL[(prev, unit)] if prev is not None else None,
        _CHANNEL[(nxt, unit)] if nxt is not None else None,
        _CHANNEL[(unit, prev)] if prev is not None else None,
        _CHANNEL[(unit, nxt)] if nxt is not None else None,
    )


_STEPS = tuple(_step_channels(u) for u in _UNITS)
_ILLEGAL_MASK = tuple(sum(1 << s for s, ch in enumerate(steps) if ch is None) for steps in _STEPS)
_FLAG_POS = {op: tuple(_NAMES[op].index(name) for name in _FLAG_NAMES) for op in _NAMES}
_UNIT_POS = {op: _NAMES[op].index("unit") for op in _NAMES if "unit" in _NAMES[op]}


def _unit_name(unit: int) -> str:
    return Unit(unit).name.lower()


@dataclass(frozen=True)
class TokenQueueStats:
    producer: str
    consumer: str
    pushes: int
    pops: int

    @property
    def name(self) -> str:
        return f"{self.producer}->{self.consumer}"

    @property
    def leftover(self) -> int:
        """Tokens pushed but never popped: legal, but often a sign of a missing pop."""
        return self.pushes - self.pops


@dataclass(frozen=True)
class TokenSummary:
    """Result of a successful check_tokens run: token traffic per queue."""

    instructions: int
    queues: tuple[TokenQueueStats, ...]

    @property
    def leftover(self) -> int:
        return sum(q.leftover for q in self.queues)

    def queue(self, producer: str, consumer: str) -> TokenQueueStats:
        for q in self.queues:
            if (q.producer, q.consumer) == (producer, consumer):
                return q
        raise KeyError(f"{producer}->{consumer}")

    def __str__(self) -> str:
        parts = [f"{q.name} {q.pushes} pushed/{q.pops} popped" for q in self.queues]
        text = f"tokens over {self.instructions} instructions: " + ", ".join(parts)
        if self.leftover:
            left = ", ".join(f"{q.leftover} on {q.name}" for q in self.queues if q.leftover)
            text += f"; left unconsumed at the end (legal): {left}"
        return text


@dataclass
class _Machine:
    """State of the abstract execution; see the module docstring for the model."""

    units: list[int]
    masks: list[int]
    queue_depth: int
    token_depth: int
    fetch: int = 0  # next instruction to dispatch
    # Dispatched, unretired instructions per unit: the one the unit has taken (the head) + those waiting.
    queues: list[deque[int]] = field(default_factory=lambda: [deque(), deque(), deque()])
    stage: list[int] = field(default_factory=lambda: [0, 0, 0])  # next step (0..3) of each head
    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # per TOKEN_QUEUES entry

    def __post_init__(self) -> None:
        self.slots = self.queue_depth + 1  # queue_depth waiting + the one taken

    def run(self) -> None:
        """Make enabled moves until none is left. Each move is O(1) and each step of each instruction
        happens once, so the total is O(n) plus O(1) per sweep, and every sweep but the last moves."""
        progress = True
        while progress:
            progress = self._dispatch()
            for unit in range(3):
                progress = self._advance(unit) or progress

    def _dispatch(self) -> bool:
        units, queues, slots, n, start = self.units, self.queues, self.slots, len(self.units), self.fetch
        f = start
        while f < n:
            q = queues[units[f]]
            if len(q) >= slots:
                break
            q.append(f)
            f += 1
        self.fetch = f
        return f != start

    def _advance(self, unit: int) -> bool:
        q, masks, tokens, steps = self.queues[unit], self.masks, self.tokens, _STEPS[unit]
        cap, s, moved = self.token_depth, self.stage[unit], False
        units, n = self.units, len(self.units)
        while q:
            mask = masks[q[0]]
            if not mask >> s:  # no token steps left: retire at once
                s = 4
            while s < 4:
                if mask >> s & 1:
                    ch = steps[s]
                    if s < 2:
                        if tokens[ch] == 0:
                            break
                        tokens[ch] -= 1
                    else:
                        if tokens[ch] >= cap:
                            break
                        tokens[ch] += 1
                    moved = True
                s += 1
            if s < 4:
                break
            q.popleft()
            s, moved = 0, True
            # refill at once (keeps sweeps O(1) per retirement burst); only this queue gained room, so
            # fetch can move only if it waits for it
            if self.fetch < n and units[self.fetch] == unit:
                self._dispatch()
        self.stage[unit] = s
        return moved

    @property
    def done(self) -> bool:
        return self.fetch == len(self.units) and not any(self.queues)


def _decode_tokens(program: Sequence[Instruction]) -> tuple[list[int], list[int]]:
    """Executing unit and token-flag bitmask (bit s = step s) of every instruction."""
    units: list[int] = []
    masks: list[int] = []
    for index, insn in enumerate(program):
        pos = _FLAG_POS.get(insn.op)
        if pos is None:
            raise IllegalInstruction(f"unknown opcode '{insn.op}'", index)
        v = insn.values
        if len(v) != len(_NAMES[insn.op]):
            raise IllegalInstruction(f"{len(v)} field values, {insn.op} has {len(_NAMES[insn.op])}", index)
        a, b, c, d = v[pos[0]], v[pos[1]], v[pos[2]], v[pos[3]]
        fixed = OPCODE_BY_NAME[insn.op].unit
        unit = int(fixed) if fixed is not None else v[_UNIT_POS[insn.op]]
        mask = a | b << 1 | c << 2 | d << 3
        if (a | b | c | d) >> 1 or not 0 <= unit <= 2 or mask & _ILLEGAL_MASK[unit]:
            _check_fields(insn, index)  # raises FieldRangeError for a bad flag or unit value
            check_token_flags(insn, index)  # raises TokenError for a missing neighbour
        units.append(unit)
        masks.append(mask)
    return units, masks


def _blocked_reason(m: _Machine, unit: int, program: Sequence[Instruction]) -> str:
    name = _unit_name(unit)
    i, s = m.queues[unit][0], m.stage[unit]
    producer, consumer = TOKEN_QUEUES[_STEPS[unit][s]]
    head = f"{name} unit blocked at instruction {i} ({program[i].op})"
    if s < 2:
        other = _unit_name(producer)
        return f"{head}: waiting for a token from {other} ({other}->{name} queue empty)"
    other = _unit_name(consumer)
    return f"{head}: token queue to {other} full ({m.token_depth} tokens)"


def _deadlock(m: _Machine, program: Sequence[Instruction]) -> DeadlockError:
    busy = sorted((u for u in range(3) if m.queues[u]), key=lambda u: m.queues[u][0])
    reasons = [_blocked_reason(m, u, program) for u in busy]
    if m.fetch < len(program):
        k = m.fetch
        target = _unit_name(m.units[k])
        fetch = f"fetch blocked at instruction {k} ({program[k].op}) on the full {target} queue "
        fetch += f"({m.queue_depth} waiting instructions)"
        idle = [_unit_name(u) for u in range(3) if not m.queues[u]]
        if idle:
            plural = "s" if len(idle) > 1 else ""
            fetch += (
                f", so the {' and '.join(idle)} unit{plural} sit{'' if plural else 's'} with an empty queue"
            )
        reasons.append(fetch)
    first = m.queues[busy[0]][0]
    return DeadlockError("program deadlocks: " + "; ".join(reasons), first, program[first].op)


def check_tokens(program: Sequence[Instruction], hw: HwConfig) -> TokenSummary:
    """Prove `program` runs to completion under the token/queue model; else raise DeadlockError.

    The error's message names every blocked unit, the instruction it is stuck on and why; its index
    is the lowest such instruction. Also raises TokenError for a flag naming a missing neighbour.
    Runs in O(len(program)) time.
    """
    units, masks = _decode_tokens(program)
    return _check_decoded_tokens(program, hw, units, masks)


def _check_decoded_tokens(
    program: Sequence[Instruction], hw: HwConfig, units: list[int], masks: list[int]
) -> TokenSummary:
    machine = _Machine(units, masks, hw.queue_depth, hw.token_depth)
    machine.run()
    if not machine.done:
        raise _deadlock(machine, program)
    pushes, pops = [0, 0, 0, 0], [0, 0, 0, 0]
    for (unit, mask), count in Counter(zip(units, masks, strict=True)).items():
        steps = _STEPS[unit]
        for s in range(4):
            if mask >> s & 1:
                (pops if s < 2 else pushes)[steps[s]] += count
    stats = tuple(
        TokenQueueStats(_unit_name(p), _unit_name(c), pushes[k], pops[k])
        for k, (p, c) in enumerate(TOKEN_QUEUES)
    )
    return TokenSummary(len(program), stats)
