"""Instruction latencies: the closed-form formulas of docs/timing.md, implemented here and nowhere else.

The RTL state machines realise exactly these numbers; the simulator computes them once per
instruction before the run (see `instruction_timing`), so the event loop never re-derives them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import BUFFERS, HwConfig
from bitbranch.isa.spec import OPCODE_BY_NAME, Dest, PoolMode

Fields = Mapping[str, int]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def load_hold(f: Fields, hw: HwConfig) -> int:
    """Cycles a LOAD holds the DRAM port after its grant (zero-fill rows and columns cost like data)."""
    e = hw.entry_bytes(BUFFERS[f["buf"]])
    rows = f["pad_top"] + f["rows"] + f["pad_bottom"]
    width = f["pad_left"] + f["len"] + f["pad_right"]
    return hw.dram_latency + rows * (ceil_div(width * e, hw.dram_bytes_per_cycle) + hw.dma_row_overhead)


def store_hold(f: Fields, hw: HwConfig) -> int:
    """Cycles a STORE holds the DRAM port after its grant."""
    e = hw.entry_bytes(BUFFERS[f["buf"]])
    return hw.dram_latency + f["rows"] * (ceil_div(f["len"] * e, hw.dram_bytes_per_cycle) + hw.dma_row_overhead)


def acc_stall(f: Fields, hw: HwConfig) -> bool:
    """The ACC bank conflict of docs/timing.md section 4.1: an accumulating BGEMM whose column tiles each take
    one issue (kh = kw = cw = 1 and one branch group) over 3 or more tiles would read ACC rows in the cycle
    it writes back rows of the same banks, so it issues every other cycle."""
    steps = f["kh"] * f["kw"] * f["cw"] * ceil_div(f["kbits"] * f["mbits"], hw.branch_parallel)
    return bool(f["accumulate"]) and steps == 1 and f["ctiles"] >= 3


def bgemm_latency(f: Fields, hw: HwConfig) -> int:
    """R output pixels per pass; each pass walks ctiles x window x channel words x branch groups of P."""
    passes = ceil_div(f["oh"] * f["ow"], hw.array_rows)
    branch_groups = ceil_div(f["kbits"] * f["mbits"], hw.branch_parallel)
    issue = 2 if acc_stall(f, hw) else 1
    return hw.gemm_pipeline + passes * f["ctiles"] * f["kh"] * f["kw"] * f["cw"] * branch_groups * issue


def out_write_groups(ostride: int, pixels: int, hw: HwConfig) -> int:
    """Cycles to write one pass's results into OUT (docs/timing.md section 4.1). OUT has 8R banks (entry e in
    bank e % 8R); row r writes its pixel's planes at out + r * ostride + q, q < 8, so rows whose entries span
    at most 8R consecutive entries write together: g = min(R, 8R // ostride) rows per group (all R when
    ostride <= 8)."""
    r = hw.array_rows
    rows = min(r, pixels)
    per_group = r if ostride == 0 else max(1, min(r, 8 * r // ostride))
    return ceil_div(rows, per_group)


def requant_latency(f: Fields, hw: HwConfig) -> int:
    passes = ceil_div(f["n"], hw.array_rows)
    if f["dest"] == Dest.OUT:
        return hw.alu_pipeline + passes * out_write_groups(f["ostride"], f["n"], hw)
    return hw.alu_pipeline + passes


def pool_latency(f: Fields, hw: HwConfig) -> int:
    pixels = f["oh"] * f["ow"]
    extra = out_write_groups(f["ostride"], pixels, hw) - 1 if f["mode"] == PoolMode.MAX else 0
    return hw.alu_pipeline + ceil_div(pixels, hw.array_rows) * (f["kh"] * f["kw"] + extra)


def bgemm_bitops(f: Fields, hw: HwConfig) -> int:
    """Binary multiply-accumulates issued by a BGEMM (channel-padding bits included: the array computes them)."""
    return (f["oh"] * f["ow"] * f["ctiles"] * hw.array_cols * f["kh"] * f["kw"] * f["cw"] * hw.word_bits
            * f["kbits"] * f["mbits"])


@dataclass(frozen=True)
class InsnTiming:
    """Per-instruction timing facts: `dram_hold` > 0 for DMA (duration after the port grant), else `latency`."""

    latency: int
    dram_hold: int
    bitops: int


_RULES: dict[str, Callable[[Fields, HwConfig], InsnTiming]] = {
    "load": lambda f, hw: InsnTiming(0, load_hold(f, hw), 0),
    "store": lambda f, hw: InsnTiming(0, store_hold(f, hw), 0),
    "bgemm": lambda f, hw: InsnTiming(bgemm_latency(f, hw), 0, bgemm_bitops(f, hw)),
    "requant": lambda f, hw: InsnTiming(requant_latency(f, hw), 0, 0),
    "pool": lambda f, hw: InsnTiming(pool_latency(f, hw), 0, 0),
    "sync": lambda f, hw: InsnTiming(1, 0, 0),
    "finish": lambda f, hw: InsnTiming(1, 0, 0),
}
assert set(_RULES) == set(OPCODE_BY_NAME), "every opcode needs a timing rule"


def timing_of(op: str, f: Fields, hw: HwConfig) -> InsnTiming:
    """Timing of an instruction given as opcode name + decoded fields (the simulator's hot path)."""
    return _RULES[op](f, hw)


def instruction_timing(insn: Instruction, hw: HwConfig) -> InsnTiming:
    return timing_of(insn.op, insn.as_dict(), hw)
