"""The instruction set, defined once.

Everything else is derived from the tables in this module: the Python encoder/decoder
(`isa.encoding`), the assembler and disassembler (`isa.asm`), the reference manual
(`docs/isa.md`, written by `isa.docgen`) and the Verilog include used by the RTL decoder
(`rtl/bitbranch_isa.vh`, written by `isa.verilog`). Change a field here and regenerate; the tests
fail while a generated file is stale.

Word layout: every instruction is INSN_BITS wide, little-endian. Bits [3:0] hold the opcode,
bits [7:4] the four dependency-token flags common to all instructions, and each opcode packs its
own fields upward from bit 8 in the order listed. All bits above an opcode's last field are
reserved and must be zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

INSN_BITS = 256
INSN_BYTES = INSN_BITS // 8
OPCODE_BITS = 4


class Unit(IntEnum):
    """The three execution units. Token queues connect neighbours: load <-> compute <-> store."""

    LOAD = 0
    COMPUTE = 1
    STORE = 2


class Buffer(IntEnum):
    """On-chip buffers (order matches isa.hwconfig.BUFFERS)."""

    INP = 0  # input activation planes, one W-bit plane word per entry
    WGT = 1  # weight planes, C lanes x W bits per entry
    ACC = 2  # accumulators, C lanes x int32 per entry
    OUT = 3  # output activation planes, one W-bit plane word per entry
    CONST = 4  # per-channel requantize constants, C lanes x (mul i32, rmul i32, bias i64) per entry


class WeightMode(IntEnum):
    POW2 = 0  # weight plane j has coefficient 2^j (an M-bit {-1,+1} code)
    EQUAL = 1  # all weight planes have coefficient 1 (ternary: t = (b1 + b0) / 2, M = 2)


class Dest(IntEnum):
    OUT = 0  # requantize to K-bit levels and write packed planes into OUT
    ACC = 1  # write the int32-saturated result back into ACC (last layer logits)


class PoolMode(IntEnum):
    MAX = 0  # per-lane max of levels over the window, written as packed planes into OUT
    SUM = 1  # per-lane sum of levels over the window, written into ACC (average = SUM then REQUANT)


@dataclass(frozen=True)
class Field:
    """One instruction field: position is assigned by the opcode's layout, not written here."""

    name: str
    width: int
    doc: str
    lo: int = 0  # legal minimum
    hi: int | None = None  # legal maximum (None: 2^width - 1)
    enum: type[IntEnum] | None = None
    allowed: tuple[int, ...] | None = None  # legal subset of enum values
    hex: bool = False  # shown in hex by the disassembler (DRAM byte addresses)

    @property
    def max_value(self) -> int:
        return (1 << self.width) - 1 if self.hi is None else self.hi

    def legal_values_text(self) -> str:
        if self.enum is not None:
            values = self.allowed if self.allowed is not None else tuple(int(m) for m in self.enum)
            return ", ".join(f"{self.enum(v).name.lower()}={v}" for v in values)
        return f"{self.lo}..{self.max_value}"


@dataclass(frozen=True)
class PlacedField:
    field: Field
    offset: int

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def width(self) -> int:
        return self.field.width

    @property
    def mask(self) -> int:
        return (1 << self.field.width) - 1


# Token flags: same bits in every instruction. "prev" / "next" are the unit's neighbours in the
# load -> compute -> store chain; a flag naming a neighbour the unit lacks is illegal.
# Machine model: an idle unit takes the head of its queue (freeing the slot), pops pop_prev then
# pop_next (each blocking while empty), executes, pushes push_prev then push_next (each blocking while
# the token queue holds token_depth tokens) and retires. isa.validate proves a program cannot deadlock.
TOKEN_FIELDS = (
    Field("pop_prev", 1, "wait for and consume a token from the previous unit before starting"),
    Field("pop_next", 1, "wait for and consume a token from the next unit before starting"),
    Field("push_prev", 1, "send a token to the previous unit when done"),
    Field("push_next", 1, "send a token to the next unit when done"),
)
HEADER_BITS = OPCODE_BITS + len(TOKEN_FIELDS)

# Which neighbours each unit has (prev, next).
NEIGHBOURS: dict[Unit, tuple[Unit | None, Unit | None]] = {
    Unit.LOAD: (None, Unit.COMPUTE),
    Unit.COMPUTE: (Unit.LOAD, Unit.STORE),
    Unit.STORE: (Unit.COMPUTE, None),
}


def _sram(name: str, doc: str) -> Field:
    return Field(name, 16, doc)


def _count(name: str, width: int, doc: str, hi: int | None = None) -> Field:
    return Field(name, width, doc, lo=1, hi=hi)


@dataclass(frozen=True)
class Opcode:
    name: str
    code: int
    unit: Unit | None  # None: chosen by the instruction's `unit` field (SYNC)
    summary: str
    semantics: str  # pseudo-code, rendered into docs/isa.md
    fields: tuple[Field, ...] = field(default_factory=tuple)

    @property
    def layout(self) -> tuple[PlacedField, ...]:
        return _LAYOUTS[self.name]

    @property
    def used_bits(self) -> int:
        placed = self.layout
        return placed[-1].offset + placed[-1].width if placed else HEADER_BITS

    def field(self, name: str) -> PlacedField:
        for placed in self.layout:
            if placed.name == name:
                return placed
        raise KeyError(name)


OPCODES: tuple[Opcode, ...] = (
    Opcode(
        "load",
        1,
        Unit.LOAD,
        "2-D strided DMA from DRAM into an on-chip buffer, with zero fill on each side.",
        """\
E = entry_bytes(buf); width = pad_left + len + pad_right
S = sstride if sstride != 0 else width
for r in range(pad_top + rows + pad_bottom):          # SRAM row r
    row = sram + r * S
    if r < pad_top or r >= pad_top + rows:
        BUF[row : row + width] = 0                     # zero fill = level 0, all planes 0
    else:
        d = dram + (r - pad_top) * dstride             # DRAM byte address of the data row
        BUF[row : row + pad_left] = 0
        BUF[row + pad_left : row + pad_left + len] = DRAM[d : d + len * E]
        BUF[row + pad_left + len : row + width] = 0""",
        (
            Field("buf", 3, "destination buffer", enum=Buffer, allowed=(Buffer.INP, Buffer.WGT, Buffer.CONST)),
            _sram("sram", "first destination entry"),
            Field("dram", 32, "DRAM byte address of the first data row", hex=True),
            _count("rows", 16, "data rows"),
            _count("len", 16, "entries per data row"),
            Field("dstride", 32, "DRAM bytes between consecutive data rows", hex=True),
            Field("sstride", 16, "SRAM entries between rows (0: dense = pad_left+len+pad_right; else at least that)"),
            Field("pad_top", 8, "zero rows before the data rows"),
            Field("pad_bottom", 8, "zero rows after the data rows"),
            Field("pad_left", 16, "zero entries before each row"),
            Field("pad_right", 16, "zero entries after each row"),
        ),
    ),
    Opcode(
        "store",
        2,
        Unit.STORE,
        "2-D strided DMA from an on-chip buffer to DRAM.",
        """\
E = entry_bytes(buf); S = sstride if sstride != 0 else len
for r in range(rows):
    DRAM[dram + r * dstride : ... + len * E] = BUF[sram + r * S : sram + r * S + len]""",
        (
            Field("buf", 3, "source buffer", enum=Buffer, allowed=(Buffer.ACC, Buffer.OUT)),
            _sram("sram", "first source entry"),
            Field("dram", 32, "DRAM byte address of the first row", hex=True),
            _count("rows", 16, "rows"),
            _count("len", 16, "entries per row"),
            Field("dstride", 32, "DRAM bytes between consecutive rows", hex=True),
            Field("sstride", 16, "SRAM entries between consecutive rows (0: dense = len; else at least len)"),
        ),
    ),
    Opcode(
        "bgemm",
        3,
        Unit.COMPUTE,
        "Binary GEMM over plane pairs: one instruction covers a convolution or matmul tile.",
        """\
# K = kbits activation planes, M = mbits weight planes, C lanes = output channels of one column tile
# coef_a(i) = 2^i;  coef_w(j) = 2^j (wmode=pow2) or 1 (wmode=equal)
for t in range(ctiles):                                 # column tile: C output channels
  for y in range(oh):
    for x in range(ow):
      s[0:C] = 0
      for ky in range(kh):
        for kx in range(kw):
          for c in range(cw):                           # W-bit channel words
            for i in range(kbits):
              a = INP[inp + (y*stride + ky*dil) * irow + (x*stride + kx*dil) * ipix + c*kbits + i]
              for j in range(mbits):
                w = WGT[wgt + (((t*kh + ky)*kw + kx)*cw + c)*mbits + j]     # C lanes of W bits
                for l in range(C):
                  s[l] += coef_a(i) * coef_w(j) * (W - 2 * popcount(a XOR w[l]))
      e = acc + t*oh*ow + y*ow + x
      ACC[e] = s if accumulate == 0 else ACC[e] + s     # int32 two's complement, wrapping""",
        (
            Field("accumulate", 1, "0: overwrite ACC with the result; 1: add to ACC"),
            Field("wmode", 1, "weight plane coefficients", enum=WeightMode),
            Field("kbits", 4, "activation planes K", lo=1, hi=8),
            Field("mbits", 4, "weight planes M", lo=1, hi=8),
            _sram("acc", "first ACC entry"),
            _sram("inp", "INP entry of input pixel (0, 0), plane 0 of word 0"),
            _sram("wgt", "first WGT entry"),
            _count("oh", 12, "output tile height (pixels)"),
            _count("ow", 12, "output tile width (pixels)"),
            _count("kh", 4, "kernel height"),
            _count("kw", 4, "kernel width"),
            _count("stride", 4, "convolution stride"),
            _count("dil", 4, "convolution dilation"),
            _count("cw", 12, "W-bit channel words reduced per window position"),
            _count("ctiles", 8, "column tiles of C output channels"),
            Field("irow", 16, "INP entries between input tile rows"),
            Field("ipix", 16, "INP entries between adjacent input pixels"),
        ),
    ),
    Opcode(
        "requant",
        4,
        Unit.COMPUTE,
        "Per-channel integer requantization of accumulators (affine, residual add, round, clamp).",
        """\
# lanes l = 0..C-1 are channels slice*C + l of a W-bit plane word; mul, rmul, bias from CONST[const]
for p in range(n):
    for l in range(C):
        v = int64(ACC[acc + p][l]) * mul[l] + bias[l]                    # int64, wrapping
        if res:
            u_r = sum(bit(INP[rinp + p*rstride + i], slice*C + l) << i for i in range(rk))
            v += u_r * rmul[l]
        r = round_shift(v, shift)               # (v + 2^(shift-1)) >> shift, arithmetic; v if shift == 0
        if dest == out:
            u = min(max(r, lo), hi)
            for i in range(kout):               # other bits of the word keep their value
                set_bit(OUT[out + p*ostride + i], slice*C + l, (u >> i) & 1)
        else:
            ACC[acc + p][l] = min(max(r, -2^31), 2^31 - 1)""",
        (
            Field("dest", 1, "where the result goes", enum=Dest),
            Field("res", 1, "1: add a residual operand read from INP"),
            _sram("acc", "first ACC entry (one pixel, C lanes, per entry)"),
            _count("n", 16, "pixels"),
            _sram("const", "CONST entry holding mul, rmul, bias for the C lanes"),
            _sram("out", "OUT entry of pixel 0, plane 0 (dest=out)"),
            Field("ostride", 16, "OUT entries between consecutive pixels (at least kout when n > 1)"),
            Field("slice", 4, "C-lane slice of the W-bit word the lanes map to"),
            Field("kout", 4, "output planes (dest=out)", hi=8),
            Field("shift", 6, "right shift with round-half-up", hi=62),
            Field("lo", 8, "lowest output level (clamp)"),
            Field("hi", 8, "highest output level (clamp)"),
            _sram("rinp", "INP entry of the residual's pixel 0, plane 0 (res=1)"),
            Field("rstride", 16, "INP entries between residual pixels"),
            Field("rk", 4, "residual planes (res=1)", hi=8),
        ),
    ),
    Opcode(
        "pool",
        5,
        Unit.COMPUTE,
        "Max or sum pooling of K-bit levels over windows, C lanes of one slice at a time.",
        """\
for y in range(oh):
    for x in range(ow):
        for l in range(C):
            vals = [level(y*stride + ky, x*stride + kx, l) for ky in range(kh) for kx in range(kw)]
            # level(r, c, l) = sum(bit(INP[inp + r*irow + c*ipix + i], slice*C + l) << i for i in range(k))
            if mode == max:
                for i in range(k):
                    set_bit(OUT[out + (y*ow + x)*ostride + i], slice*C + l, (max(vals) >> i) & 1)
            else:
                ACC[acc + y*ow + x][l] = sum(vals)""",
        (
            Field("mode", 1, "pooling function", enum=PoolMode),
            Field("k", 4, "planes of the input levels (and of the max output)", lo=1, hi=8),
            Field("slice", 4, "C-lane slice of the W-bit word"),
            _sram("inp", "INP entry of input pixel (0, 0), plane 0"),
            _count("oh", 12, "output tile height"),
            _count("ow", 12, "output tile width"),
            _count("kh", 4, "window height"),
            _count("kw", 4, "window width"),
            _count("stride", 4, "window stride"),
            Field("irow", 16, "INP entries between input rows"),
            Field("ipix", 16, "INP entries between adjacent input pixels"),
            _sram("out", "OUT entry of output pixel 0, plane 0 (mode=max)"),
            Field("ostride", 16, "OUT entries between output pixels (mode=max; at least k when oh*ow > 1)"),
            _sram("acc", "first ACC entry (mode=sum)"),
        ),
    ),
    Opcode(
        "sync",
        6,
        None,
        "No operation on the chosen unit; carries dependency tokens only.",
        """\
# executes on `unit`: pops the flagged tokens, then pushes the flagged tokens""",
        (Field("unit", 2, "unit that executes it", enum=Unit),),
    ),
    Opcode(
        "finish",
        7,
        Unit.COMPUTE,
        "End of program: the run completes when this retires and the load and store units are idle.",
        """\
# must be the last instruction; no fields besides the token flags""",
    ),
)

OPCODE_BY_NAME: dict[str, Opcode] = {op.name: op for op in OPCODES}
OPCODE_BY_CODE: dict[int, Opcode] = {op.code: op for op in OPCODES}


def _place(op: Opcode) -> tuple[PlacedField, ...]:
    placed: list[PlacedField] = []
    offset = OPCODE_BITS
    for f in (*TOKEN_FIELDS, *op.fields):
        placed.append(PlacedField(f, offset))
        offset += f.width
    if offset > INSN_BITS:
        raise AssertionError(f"opcode {op.name}: fields need {offset} bits > {INSN_BITS}")
    return tuple(placed)


_LAYOUTS: dict[str, tuple[PlacedField, ...]] = {op.name: _place(op) for op in OPCODES}


def unit_of(op: Opcode, values: dict[str, int]) -> Unit:
    """The unit that executes an instruction (SYNC names it in a field)."""
    return op.unit if op.unit is not None else Unit(values["unit"])
