"""Exact activity counts of every instruction: what the energy model multiplies by energy per action.

Counts are a closed-form function of an instruction's fields and the hardware config, like its latency
(simulator.timing, whose bit-op count is reused here), and follow the access pattern of the datapath
the timing contract describes (rtl/bb_compute.v issues exactly these reads and writes):

* LOAD: DRAM read rows*len*E*8 bits; the buffer is written for every entry of the padded block,
  zero fill included ((pad_top+rows+pad_bottom) * (pad_left+len+pad_right) * E*8 bits).
* STORE: the buffer is read and DRAM written rows*len*E*8 bits.
* BGEMM, per pass of R pixel rows, column tile, window position, channel word and branch pair (i, j):
  every valid pixel row reads one W-bit INP plane word, and one C*W-bit WGT entry is read (whatever
  the number of valid rows); at the first step of a (pass, tile) with accumulate=1 each valid row
  reads its ACC entry (C x 32 bits), at the last one it writes it. Each pair and valid row adds C
  popcounts into C accumulators (`accumulates`), and computes C*W xnor+popcount bits (`bitops`).
* REQUANT: per pass one CONST record (C*128 bits); per pixel one ACC read (C*32 bits), rk residual
  W-bit INP words when res=1, and either kout OUT words written under a C-bit write mask (C bits
  each) or one ACC entry written; C requantize lane-ops (+ C residual lane-ops when res=1).
* POOL: per output pixel and window element k W-bit INP words read and C lane-ops; per output pixel
  k OUT words written under the C-bit mask (max) or one ACC entry (sum).
* Every instruction is one fetch (an INSN_BITS read of the instruction memory) and one decode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bitbranch.isa.hwconfig import ACC_BYTES_PER_LANE, BUFFERS, CONST_BYTES_PER_LANE, HwConfig
from bitbranch.isa.spec import Dest, PoolMode

from .timing import bgemm_bitops, ceil_div

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


def _load(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    name = BUFFERS[f["buf"]]
    e_bits = hw.entry_bytes(name) * 8
    written = (f["pad_top"] + f["rows"] + f["pad_bottom"]) * (f["pad_left"] + f["len"] + f["pad_right"])
    return _vec(dram_read=f["rows"] * f["len"] * e_bits, **{f"{name}_write": written * e_bits})


def _store(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    name = BUFFERS[f["buf"]]
    bits = f["rows"] * f["len"] * hw.entry_bytes(name) * 8
    return _vec(dram_write=bits, **{f"{name}_read": bits})


def _bgemm(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    r, c, w = hw.array_rows, hw.array_cols, hw.word_bits
    pixels = f["oh"] * f["ow"]
    steps = f["ctiles"] * f["kh"] * f["kw"] * f["cw"]  # per pass
    pairs = f["kbits"] * f["mbits"]
    acc_entry = c * ACC_BYTES_PER_LANE * 8
    return _vec(
        inp_read=pixels * steps * pairs * w,
        wgt_read=ceil_div(pixels, r) * steps * pairs * c * w,
        acc_read=pixels * f["ctiles"] * acc_entry if f["accumulate"] else 0,
        acc_write=pixels * f["ctiles"] * acc_entry,
        bitops=bgemm_bitops(f, hw),
        accumulates=pixels * steps * pairs * c,
    )


def _requant(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    r, c, w, n = hw.array_rows, hw.array_cols, hw.word_bits, f["n"]
    acc_entry = c * ACC_BYTES_PER_LANE * 8
    to_out = f["dest"] == Dest.OUT
    return _vec(
        const_read=ceil_div(n, r) * c * CONST_BYTES_PER_LANE * 8,
        acc_read=n * acc_entry,
        inp_read=n * f["rk"] * w if f["res"] else 0,
        out_write=n * f["kout"] * c if to_out else 0,
        acc_write=0 if to_out else n * acc_entry,
        requant_lanes=n * c,
        residual_lanes=n * c if f["res"] else 0,
    )


def _pool(f: Fields, hw: HwConfig) -> tuple[int, ...]:
    c, w = hw.array_cols, hw.word_bits
    pixels, window = f["oh"] * f["ow"], f["kh"] * f["kw"]
    is_max = f["mode"] == PoolMode.MAX
    return _vec(
        inp_read=pixels * window * f["k"] * w,
        out_write=pixels * f["k"] * c if is_max else 0,
        acc_write=0 if is_max else pixels * c * ACC_BYTES_PER_LANE * 8,
        pool_lanes=pixels * window * c,
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
