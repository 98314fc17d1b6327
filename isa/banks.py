"""SRAM bank geometry of every on-chip buffer: the ONE place the cost model learns how buffers are built.

Energy per bit (isa.energy) and area (isa.area) depend on the size and width of the banks, not on the
buffer's total size. Until the hardware config carries its own memory map (the RTL is moving to
2-port SRAM banks), the geometry is derived here with a documented rule; replace `bank_geometry` with
the memory map's banks and every cost figure follows.

Rule (placeholder, docs/cost.md): one bank per concurrent access stream of the datapath, each bank a
1R+1W macro whose write port serves the DMA / write-back, as wide as one access:
  INP   R*P banks (BGEMM: each of R pixel rows reads one W-bit plane word per branch pair), W bits wide
  WGT   P banks (one C*W-bit weight entry per branch pair and cycle), C*W bits wide
  ACC   R banks (one C x int32 entry per pixel row), C*32 bits wide
  OUT   R banks (REQUANT/POOL write up to 8 plane words of one pixel row), W bits wide
  CONST 1 bank (one C x 128-bit record per pass), C*128 bits wide
  IMEM  1 bank of IMEM_WORDS instructions (rtl/bb_fetch.v, IMEM_AW = 16), INSN_BITS wide
A bank never has fewer entries than one: the buffer's entries are split evenly (rounded up).
"""

from __future__ import annotations

from dataclasses import dataclass

from .hwconfig import BUFFERS, HwConfig
from .spec import INSN_BITS

IMEM_WORDS = 1 << 16  # instruction memory of the RTL fetch unit (rtlharness.params.IMEM_AW = 16)
SRAMS = (*BUFFERS, "imem")


@dataclass(frozen=True)
class BankGeometry:
    """`banks` SRAM banks of `entries` words of `width_bits` each."""

    banks: int
    entries: int
    width_bits: int

    @property
    def bank_bits(self) -> int:
        return self.entries * self.width_bits

    @property
    def bank_bytes(self) -> int:
        return self.bank_bits // 8

    @property
    def total_bits(self) -> int:
        return self.banks * self.bank_bits

    @property
    def macro_bytes(self) -> float:
        """Bytes of one 64-bit-wide macro when the bank is ganged from 64-bit macros (energy per bit)."""
        return self.bank_bytes * 64 / self.width_bits


def _streams(hw: HwConfig) -> dict[str, int]:
    r, p = hw.array_rows, hw.branch_parallel
    return {"inp": r * p, "wgt": p, "acc": r, "out": r, "const": 1}


def bank_geometry(hw: HwConfig) -> dict[str, BankGeometry]:
    """Banks of every buffer (and the instruction memory) of `hw`, by name (see module docstring)."""
    geo = {}
    for buf, banks in _streams(hw).items():
        width = hw.entry_bytes(buf) * 8
        banks = max(1, min(banks, hw.entries(buf)))
        geo[buf] = BankGeometry(banks, -(-hw.entries(buf) // banks), width)
    geo["imem"] = BankGeometry(1, IMEM_WORDS, INSN_BITS)
    return geo
