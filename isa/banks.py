"""SRAM bank geometry of every on-chip buffer: the ONE place the cost model learns how buffers are built.

Energy per bit (isa.energy) and area (isa.area) depend on the size and width of the physical memories, not on
the buffer's total size. `bank_geometry` gives, for a hardware config, the memory map the RTL builds
(rtl/bb_core.v, docs/rtl.md "Memory system"); tests/test_synth.py checks it against the memories Yosys infers
for the synthesized core, so when the RTL's memory map changes, this function changes with it.

With B the DRAM beat (bytes), E a buffer's entry bytes and R the array rows, every buffer is `copies` copies of
`banks` two-port banks (bb_banks: entry e in bank e mod banks, at row e / banks), each `entries` deep and one
entry (8E bits) wide:
  INP   R copies (one per array row, bb_winbuf) x max(8, B/E) banks
  WGT   1 copy x max(8, B/E) banks
  CONST 1 copy x max(1, B/E) banks
  ACC   1 copy x max(4R, B/E) banks (bb_accbuf)
  OUT   1 copy x max(8R, B/E) banks (bb_outbuf)
  IMEM  one memory of IMEM_WORDS instructions (rtl/bb_fetch.v, IMEM_AW = 16), INSN_BITS wide
A bank wider than 64 bits is ganged from 64-bit macros (columns), as an SRAM compiler builds it and as
bb_sram_2p's 64-bit columns do (when its write granules fit 64-bit columns; else the bank is one macro): `column_bits`
is the width of one physical macro, `macro_bytes` its size (the
size the energy per bit is read at), `macros` how many there are.
"""

from __future__ import annotations

from dataclasses import dataclass

from .hwconfig import BUFFERS, HwConfig
from .spec import INSN_BITS

IMEM_WORDS = 1 << 16  # instruction memory of the RTL fetch unit (rtlharness.params.IMEM_AW = 16)
SRAMS = (*BUFFERS, "imem")
MACRO_BITS = 64  # widest physical SRAM macro: wider banks are ganged 64-bit columns
BANK_RULES = 2
"""Revision of the geometry rule below: bumped when it changes, so stored results that depend on it
(`bitbranch explore`'s point store: energy and area) are recomputed. 2: the RTL's memory map; 1: one bank
per access stream (INP R*P, WGT P, ACC R, OUT R, CONST 1; one INP copy)."""


def column_bits(width_bits: int, port_b_granule: int | None = None) -> int:
    """Width of one physical macro of a bank `width_bits` wide (rtl/bb_sram_2p.v CW): 64-bit columns when the
    width is a multiple of 64 above it and the write granules fit them (port A: bytes; port B:
    `port_b_granule` bits, default the whole width), else the bank is one macro."""
    gb = width_bits if port_b_granule is None else port_b_granule
    if (width_bits > MACRO_BITS and width_bits % MACRO_BITS == 0 and MACRO_BITS % 8 == 0
            and (MACRO_BITS % gb == 0 or gb % MACRO_BITS == 0)):
        return MACRO_BITS
    return width_bits


@dataclass(frozen=True)
class BankGeometry:
    """`copies` x `banks` SRAM banks of `entries` words of `width_bits` each, every bank ganged from
    width_bits / column_bits macros."""

    banks: int  # banks per copy
    entries: int  # depth of a bank (rows)
    width_bits: int  # width of a bank (one buffer entry)
    copies: int = 1  # identical copies of the whole buffer (INP: one per array row)
    port_b_granule: int | None = None  # compute-side write granule (bits; None: whole entries)

    @property
    def column_bits(self) -> int:
        return column_bits(self.width_bits, self.port_b_granule)

    @property
    def columns(self) -> int:
        """Macros per bank."""
        return self.width_bits // self.column_bits

    @property
    def total_banks(self) -> int:
        return self.copies * self.banks

    @property
    def macros(self) -> int:
        """Physical macros of the whole buffer."""
        return self.total_banks * self.columns

    @property
    def bank_bits(self) -> int:
        return self.entries * self.width_bits

    @property
    def bank_bytes(self) -> int:
        return self.bank_bits // 8

    @property
    def total_bits(self) -> int:
        """Bits of SRAM built (all copies)."""
        return self.total_banks * self.bank_bits

    @property
    def macro_bytes(self) -> float:
        """Bytes of one physical macro (entries x column_bits): the size energy per bit is read at."""
        return self.entries * self.column_bits / 8


def bank_count(hw: HwConfig, buf: str) -> int:
    """Banks per copy of buffer `buf` (rtl/bb_core.v NB_*): enough for the compute side's accesses of one
    cycle and for the B/E entries of one DMA beat."""
    per_beat = hw.dram_bytes_per_cycle // hw.entry_bytes(buf)
    compute = {"inp": 8, "wgt": 8, "const": 1, "acc": 4 * hw.array_rows, "out": 8 * hw.array_rows}[buf]
    return max(compute, per_beat)


def copies(hw: HwConfig, buf: str) -> int:
    """Copies of buffer `buf`: INP has one per array row (bb_winbuf COPIES = R), the others one."""
    return hw.array_rows if buf == "inp" else 1


def port_b_granule(hw: HwConfig, buf: str) -> int | None:
    """Write granule of the compute-side port (bb_sram_2p GB): ACC lanes (32 bits), OUT C-lane slices (C
    bits), none for the buffers the compute unit only reads (INP, WGT, CONST: whole entries)."""
    return {"acc": 32, "out": hw.array_cols}.get(buf)


def bank_geometry(hw: HwConfig) -> dict[str, BankGeometry]:
    """Banks of every buffer (and the instruction memory) of `hw`, by name (see module docstring)."""
    geo = {}
    for buf in BUFFERS:
        nb = bank_count(hw, buf)
        geo[buf] = BankGeometry(nb, -(-hw.entries(buf) // nb), hw.entry_bytes(buf) * 8, copies(hw, buf),
                                port_b_granule(hw, buf))
    geo["imem"] = BankGeometry(1, IMEM_WORDS, INSN_BITS)
    return geo
