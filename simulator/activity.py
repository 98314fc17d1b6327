"""Exact activity counts of every instruction: what the energy model multiplies by energy per action.

Counts are a closed-form function of an instruction's fields and the hardware config, like its latency
(simulator.timing), and are what the buildable machine does: the RTL counts the same actions at its SRAM
bank ports, its DRAM port and its datapaths (rtl/bb_tb.v `activity`), and the harness checks the two are
equal on every cross-checked program (rtlharness.compare), per instruction and in total. Reads move a
bank's whole width; writes count the bits their write mask enables.

* LOAD: DRAM read rows*len*E*8 bits (the beat lanes that carry data); the buffer is written for every entry
  of the padded block, zero fill included ((pad_top+rows+pad_bottom) * (pad_left+len+pad_right) * E*8
  bits), in every copy of the buffer: INP is built as R identical copies (one per array row, rtl/bb_winbuf.v),
  so a LOAD into INP writes R times that.
* STORE: DRAM written rows*len*E*8 bits; the buffer is read a whole DMA beat at a time:
  rows * ceil(len*E/B) beats of max(B, E)*8 bits (B >= E: the beat's B/E entries; B < E: the whole entry
  each beat takes B bytes of).
* BGEMM issues, per pass of R pixel rows, column tile, window position and channel word, one cycle per
  group of P branch pairs (ceil(kbits*mbits/P) groups). Each issue reads a window of min(P, 8) consecutive
  entries from INP for every valid pixel row (W-bit words from the group's first plane: the planes its pairs
  pick from) and a window of mbits C*W-bit words (the weight word's planes) from WGT; the whole PE array works (R*C
  PEs x P branches: C*W xnor+popcount bits and one accumulate
  per PE and branch, valid rows and branches or not). At the first step of a (pass, tile) with accumulate=1
  each valid row reads its ACC entry (C x 32 bits), at the last one it writes it.
* REQUANT: per pass (R pixels) one CONST record (C*128 bits) and R*C requantize lane-ops (+ R*C residual
  lane-ops when res=1); per valid pixel one ACC read (C*32 bits), an 8-entry INP window when res=1, and
  either kout OUT words written under the C-bit write mask (C bits each) or one ACC entry written.
* POOL: per pass and window position R*C lane-ops and, per valid pixel, an 8-entry INP window; per output
  pixel k OUT words written under the C-bit mask (max) or one ACC entry (sum).
* Every instruction is one fetch (an INSN_BITS read of the instruction memory into the decode register)
  and one decode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bitbranch.isa.hwconfig import ACC_BYTES_PER_LANE, BUFFERS, CONST_BYTES_PER_LANE, HwConfig
from bitbranch.isa.spec import Dest, PoolMode

from .timing import ceil_div

Fields = Mapping[str, int]

SRAM_ACTIONS = tuple(f"{b}_{rw}" for b in BUFFERS for rw in ("read", "write"))
ACTIONS = (*SRAM_ACTIONS, "dram_read", "dram_write", "bitops", "accumulates", "requant_lanes",
           "residual_lanes", "pool_lanes", "fetches")
"""Count names: `<buf>_read`/`<buf>_write` and `dram_read`/`dram_write` in bits, the rest in operations."""
INDEX = {name: i for i, name in enumerate(ACTIONS)}


def _vec(**counts: int) -> tuple[int, ...]:
    v = [0] * len(ACTIONS)
    v[INDEX["fetches"]] = 1
    for k, n in counts.items():
        v[INDEX[k]] += int(n)
    return tuple(v)


COUNTING_RULES = 3
"""Revision of the counting rules below: bumped when they change, so stored results that depend on them
(`bitbranch explore`'s point store) are recomputed. 3: a BGEMM issue reads only the window entries its pairs
use (INP min(P, 8) planes per valid row, WGT mbits planes); 2: counted as the RTL does (INP copies, window
reads, whole STORE beats, whole-array issues); 1: the first, per branch pair."""

WINDOW = 8
"""Entries of an INP/WGT window read (rtl/bb_core.v, bb_winbuf NWIN): the most planes of a pixel or weight word."""


def _load(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    name = BUFFERS[f["buf"]]
    e_bits = hw.entry_bytes(name) * 8
    copies = hw.array_rows if name == "inp" else 1
    written = (f["pad_top"] + f["rows"] + f["pad_bottom"]) * (f["pad_left"] + f["len"] + f["pad_right"])
    return _vec(dram_read=f["rows"] * f["len"] * e_bits, **{f"{name}_write": copies * written * e_bits})


def _store(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    name = BUFFERS[f["buf"]]
    e, b = hw.entry_bytes(name), hw.dram_bytes_per_cycle
    beats = f["rows"] * ceil_div(f["len"] * e, b)
    return _vec(dram_write=f["rows"] * f["len"] * e * 8, **{f"{name}_read": beats * max(b, e) * 8})


def _bgemm(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    r, c, w, p = hw.array_rows, hw.array_cols, hw.word_bits, hw.branch_parallel
    pixels = f["oh"] * f["ow"]
    groups = f["ctiles"] * f["kh"] * f["kw"] * f["cw"] * ceil_div(f["kbits"] * f["mbits"], p)  # per pass
    issues = ceil_div(pixels, r) * groups
    acc_entry = c * ACC_BYTES_PER_LANE * 8
    return _vec(
        inp_read=pixels * groups * min(p, WINDOW) * w,
        wgt_read=issues * f["mbits"] * c * w,
        acc_read=pixels * f["ctiles"] * acc_entry if f["accumulate"] else 0,
        acc_write=pixels * f["ctiles"] * acc_entry,
        bitops=issues * r * c * p * w,
        accumulates=issues * r * c * p,
    )


def _requant(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    r, c, w, n = hw.array_rows, hw.array_cols, hw.word_bits, f["n"]
    passes = ceil_div(n, r)
    acc_entry = c * ACC_BYTES_PER_LANE * 8
    to_out = f["dest"] == Dest.OUT
    return _vec(
        const_read=passes * c * CONST_BYTES_PER_LANE * 8,
        acc_read=n * acc_entry,
        inp_read=n * WINDOW * w if f["res"] else 0,
        out_write=n * f["kout"] * c if to_out else 0,
        acc_write=0 if to_out else n * acc_entry,
        requant_lanes=passes * r * c,
        residual_lanes=passes * r * c if f["res"] else 0,
    )


def _pool(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    r, c, w = hw.array_rows, hw.array_cols, hw.word_bits
    pixels, window = f["oh"] * f["ow"], f["kh"] * f["kw"]
    is_max = f["mode"] == PoolMode.MAX
    return _vec(
        inp_read=pixels * window * WINDOW * w,
        out_write=pixels * f["k"] * c if is_max else 0,
        acc_write=0 if is_max else pixels * c * ACC_BYTES_PER_LANE * 8,
        pool_lanes=ceil_div(pixels, r) * window * r * c,
    )


_RULES = {
    "load": _load,
    "store": _store,
    "bgemm": _bgemm,
    "requant": _requant,
    "pool": _pool,
    "sync": lambda f, hw: _vec(),
    "finish": lambda f, hw: _vec(),
}


def activity_of(op: str, f: Fields, hw: HwConfig) -> tuple[int, ...]:
    """Counts of one instruction (opcode name + decoded fields), in the order of ACTIONS."""
    return _RULES[op](f, hw)


@dataclass
class Activity:
    """Per-instruction counts: `counts[k, a]` is action ACTIONS[a] of instruction k."""

    counts: np.ndarray  # int64 [instructions, len(ACTIONS)]

    @classmethod
    def from_vectors(cls, vectors: Sequence[tuple[int, ...]]) -> Activity:
        arr = np.array(vectors, dtype=np.int64) if len(vectors) else np.zeros((0, len(ACTIONS)), np.int64)
        return cls(arr.reshape(-1, len(ACTIONS)))

    def total(self, first: int = 0, end: int | None = None) -> dict[str, int]:
        """Counts summed over instructions [first, end), by action name."""
        s = self.counts[first:end].sum(axis=0)
        return {name: int(s[i]) for i, name in enumerate(ACTIONS)}

    def of(self, k: int) -> dict[str, int]:
        return {name: int(v) for name, v in zip(ACTIONS, self.counts[k], strict=True)}
