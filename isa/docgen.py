"""Writes docs/isa.md, the ISA reference manual, from isa.spec, isa.encoding and the presets.

Tables (fields, offsets, widths, legal values, opcodes, flags, preset buffer sizes) and the
semantics pseudo-code come from the definitions; the prose in this module explains the machine
model and the numeric rules around them. Examples are assembled at render time, so a spec change
that breaks one fails the build instead of leaving a wrong manual.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from . import asm
from .encoding import FORMAT_VERSION, HEADER, MAGIC, Instruction, encode
from .hwconfig import ACC_BYTES_PER_LANE, BUFFERS, CONST_FIELDS, HwConfig, load_presets
from .spec import (
    HEADER_BITS,
    INSN_BITS,
    INSN_BYTES,
    NEIGHBOURS,
    OPCODE_BITS,
    OPCODE_BY_CODE,
    OPCODES,
    TOKEN_FIELDS,
    Buffer,
    Field,
    Opcode,
    PlacedField,
    Unit,
)

GENERATOR = "`bitbranch isa gen` (isa/docgen.py)"

# Entry size of each buffer as a formula of C (array_cols) and W (word_bits), checked against
# HwConfig.entry_bytes for every preset when rendering.
ENTRY_FORMULAS: dict[str, tuple[str, Callable[[HwConfig], int]]] = {
    "inp": ("W/8", lambda hw: hw.word_bits // 8),
    "wgt": ("C·W/8", lambda hw: hw.array_cols * hw.word_bits // 8),
    "acc": (f"{ACC_BYTES_PER_LANE}·C", lambda hw: ACC_BYTES_PER_LANE * hw.array_cols),
    "out": ("W/8", lambda hw: hw.word_bits // 8),
    "const": (
        f"{sum(size for _, size in CONST_FIELDS)}·C",
        lambda hw: sum(size for _, size in CONST_FIELDS) * hw.array_cols,
    ),
}

BUFFER_ROLES: dict[Buffer, tuple[str, str, str]] = {  # contents, written by, read by
    Buffer.INP: ("activation planes: one W-bit plane word per entry", "load", "bgemm, requant (residual), pool"),
    Buffer.WGT: ("weight planes: C lanes × W bits per entry", "load", "bgemm"),
    Buffer.ACC: ("accumulators: C lanes × int32 per entry", "bgemm, pool (sum), requant (dest=acc)", "requant, store"),
    Buffer.OUT: ("output activation planes: one W-bit plane word per entry", "requant (dest=out), pool (max)", "store"),
    Buffer.CONST: ("requantize constants: C lanes × (mul, rmul, bias) per entry", "load", "requant"),
}

HEADER_FIELD_NAMES = ("magic", "version", "insn_bytes", "count")

EXAMPLE_PROGRAM = """\
# 1x1 convolution on preset "small" (C=4, W=64): 4x4 pixels, 64 -> 4 channels, K=2, M=2.
# DRAM: weights at 0x0, constants at 0x100, input planes at 0x1000, output planes at 0x2000.
load buf=wgt dram=0x0 rows=1 len=2                    # 1 tile x 1x1 x 1 word x 2 planes
load buf=const dram=0x100 rows=1 len=1
load buf=inp dram=0x1000 rows=1 len=32 push_next      # 16 pixels x 1 word x 2 planes -> token
bgemm kbits=2 mbits=2 oh=4 ow=4 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1 irow=8 ipix=2 pop_prev
requant dest=out n=16 ostride=2 kout=2 shift=8 hi=3 push_next   # 16 pixels, lanes 0..3 of slice 0
store buf=out dram=0x2000 rows=1 len=32 pop_prev
finish
"""


# --- small helpers ---------------------------------------------------------------------------------
def _table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _bits(offset: int, width: int) -> str:
    return f"[{offset}]" if width == 1 else f"[{offset + width - 1}:{offset}]"


def _legal(f: Field) -> str:
    text = f.legal_values_text()
    return text if f.enum is not None else text.replace("..", "–")


def _flags_for(unit: Unit) -> list[str]:
    prev, nxt = NEIGHBOURS[unit]
    return [f.name for f in TOKEN_FIELDS if (prev if f.name.endswith("prev") else nxt) is not None]


def _example_values(op: Opcode) -> dict[str, int]:
    """A distinctive legal value per field (its 1-based position, clamped) and the unit's legal flags set."""
    values = {}
    for k, f in enumerate(op.fields, start=1):
        if f.enum is not None:
            legal = f.allowed if f.allowed is not None else tuple(int(m) for m in f.enum)
            values[f.name] = legal[-1]
        else:
            values[f.name] = min(max(k, f.lo), f.max_value)
    probe = Instruction.make(op.name, **values)
    for name in _flags_for(probe.exec_unit):
        values[name] = 1
    return values


def _header_layout() -> list[tuple[str, int, int, str]]:
    """(name, offset, size, struct code) of each program file header field, from encoding.HEADER."""
    codes = re.findall(r"\d*[a-zA-Z]", HEADER.format.lstrip("<>=!@"))
    if len(codes) != len(HEADER_FIELD_NAMES):
        raise AssertionError(f"docgen: program header {HEADER.format} changed; update HEADER_FIELD_NAMES")
    rows, offset = [], 0
    for name, code in zip(HEADER_FIELD_NAMES, codes, strict=True):
        size = struct.calcsize("<" + code)
        rows.append((name, offset, size, code))
        offset += size
    return rows


# --- sections --------------------------------------------------------------------------------------
def _intro() -> str:
    ops = ", ".join(f"`{op.name}`" for op in OPCODES)
    return f"""\
# bitbranch ISA reference

<!-- Generated by {GENERATOR} from isa/spec.py, isa/encoding.py and isa/presets.toml.
     Do not edit: change the definitions and run `bitbranch isa gen`; the tests fail while this file is stale. -->

This manual is generated from the single definition of the instruction set in `isa/spec.py`. The same
definition produces the Python encoder/decoder (`isa/encoding.py`), the assembler (`isa/asm.py`) and the
Verilog include `rtl/bitbranch_isa.vh` used by the RTL decoder. Instruction latencies are in `docs/timing.md`.

Opcodes: {ops}.

Contents: 1 Machine model · 2 Binary format · 3 Assembly syntax · 4 Numeric rules · 5 Data layouts ·
6 Instructions · 7 Idioms · 8 Example program
"""


def _machine_model() -> str:
    units = ", ".join(f"{u.name.lower()}={int(u)}" for u in Unit)
    roles = [
        (f"{b.name} ({int(b)})", ENTRY_FORMULAS[b.name.lower()][0], *BUFFER_ROLES[b])
        for b in Buffer
    ]
    return f"""\
## 1. Machine model

```
                 program (instruction stream, read in order)
                               │
                          fetch unit
          ┌────────────────────┼─────────────────────┐
          ▼                    ▼                     ▼
   load queue           compute queue           store queue        (queue_depth each)
          │                    │                     │
     load unit ◀──tokens──▶ compute unit ◀──tokens──▶ store unit
      │  writes INP/WGT/CONST  │ INP/WGT/CONST → ACC/OUT │ reads ACC/OUT
      └───────────── DRAM (one port) ────────────────────┘
```

**Units ({units}).** Three units run concurrently, each executing its own
instructions strictly in program order. The fetch unit dispatches the program in order, one
instruction at a time, into the queue of the unit that executes it (fixed per opcode; `sync` names
it in its `unit` field); each queue holds `queue_depth` instructions and fetch blocks while the
target queue is full, so a full queue also holds back instructions for the other units. An idle unit
takes the head of its queue at once, which frees that slot: a unit holds at most `queue_depth`
waiting instructions plus the one it works on.

**Buffers.** Five on-chip SRAMs, addressed in *entries* by 16-bit fields. Entry sizes follow from the array
(C = `array_cols` lanes, W = `word_bits` bits per plane word); DMA lengths count entries of the buffer named
by `buf`. Every access must stay inside the configured entry count.

{_table(("buffer (enum)", "entry bytes", "contents", "written by", "read by"), roles)}

{_preset_tables()}

**DRAM.** One byte-addressed port (32-bit addresses) shared by the load and store units; all multi-byte
values are little-endian. Transfers are whole entries of the buffer involved. Every DMA access must stay
inside the DRAM image.

**Dependency tokens.** Four token queues connect neighbouring units, each `token_depth` tokens deep:
load→compute, compute→load, compute→store, store→compute. For an instruction executing on unit U,
"prev"/"next" are U's neighbours in the chain load → compute → store. An instruction works in steps,
in flag order, each step only if its flag is set:

1. `pop_prev`, then `pop_next`: wait until the token queue from that neighbour to U is non-empty and take
   one token;
2. execute;
3. `push_prev`, then `push_next`: wait until the token queue from U to that neighbour holds fewer than
   `token_depth` tokens and add one;

then it retires and the unit takes its next instruction. The step order is part of the contract: with
bounded queues and one shared fetch, another order can turn a program that runs into one that deadlocks.
Tokens carry no data: they order a producer's writes before a consumer's reads (RAW) and a consumer's
reads before the producer overwrites the buffer (WAR). Tokens left over at the end are legal. A flag that
names a neighbour the unit lacks (e.g. `pop_prev` on a load) is illegal; a program that can wait forever
on a token or a full queue is a deadlock error. Both errors name the instruction index (`isa.validate`
proves statically that a program cannot deadlock under this model).

**End of run.** `finish` executes on the compute unit; the run completes when it retires and the load and
store units are idle. It must be the last instruction.
"""


def _preset_tables() -> str:
    presets = load_presets()
    for hw in presets.values():
        for buf in BUFFERS:
            formula, fn = ENTRY_FORMULAS[buf]
            if fn(hw) != hw.entry_bytes(buf):
                raise AssertionError(f"docgen: entry size formula {formula} of {buf} disagrees with HwConfig")
    arrays = [
        (f"`{hw.name}`", f"{hw.array_rows}×{hw.array_cols}", hw.word_bits, hw.branch_parallel, hw.queue_depth,
         hw.token_depth, hw.dram_bytes_per_cycle, hw.dram_latency, f"{hw.clock_mhz:g}")
        for hw in presets.values()
    ]
    sizes = []
    for hw in presets.values():
        cells = []
        for buf in BUFFERS:
            n, e = hw.entries(buf), hw.entry_bytes(buf)
            cells.append(f"{n} × {e} B = {n * e / 1024:g} KiB")
        sizes.append((f"`{hw.name}`", *cells))
    return f"""\
Presets (`isa/presets.toml`; R×C array, W word bits, P branch pairs per PE, queue and token depths,
DRAM bytes/cycle and latency, clock MHz):

{_table(("preset", "R×C", "W", "P", "queue", "tokens", "DRAM B/cycle", "DRAM latency", "MHz"), arrays)}

Buffer sizes per preset (entries × entry bytes):

{_table(("preset", *(b.upper() for b in BUFFERS)), sizes)}"""


def _binary_format() -> str:
    header_rows = [(f"`{name}`", offset, size, f"`{code}`") for name, offset, size, code in _header_layout()]
    flag_rows = []
    for k, f in enumerate(TOKEN_FIELDS):
        units = [u.name.lower() for u in Unit if f.name in _flags_for(u)]
        flag_rows.append((f"`{f.name}`", OPCODE_BITS + k, ", ".join(units), f.doc))
    op_rows = [
        (op.code, f"`{op.name}`", op.unit.name.lower() if op.unit is not None else "`unit` field",
         op.used_bits, op.summary)
        for op in OPCODES
    ]
    illegal = ", ".join(str(c) for c in range(1 << OPCODE_BITS) if c not in OPCODE_BY_CODE)
    return f"""\
## 2. Binary format

**Instruction word.** Every instruction is {INSN_BITS} bits ({INSN_BYTES} bytes), stored little-endian:
bit b of the word is bit b mod 8 of byte b div 8. Bits [{OPCODE_BITS - 1}:0] hold the opcode,
bits [{HEADER_BITS - 1}:{OPCODE_BITS}] the four token flags (same position in every instruction), and each
opcode packs its fields upward from bit {HEADER_BITS} in the order listed in section 6, without gaps. A field
of width w at offset o holds an unsigned value in bits [o+w-1:o]. Bits from the opcode's *used bits*
up to bit {INSN_BITS - 1} are reserved.

**Decoding rules.** A word is an illegal instruction, reported with its index, when

1. the opcode is not assigned (unassigned codes: {illegal});
2. any reserved bit (bit ≥ used bits of the opcode) is 1;
3. a field is below its legal minimum or above its legal maximum (column "legal" in section 6: counts
   such as `rows` start at 1, some fields have a maximum below 2^width - 1);
4. an enum field holds a value outside its legal set (e.g. `load buf=acc`).

Rules relating fields to each other, to a hardware config or to the DRAM image (buffer bounds, DRAM
bounds, token flags naming a missing neighbour, deadlocks) are program-level checks (`isa.validate`);
they are errors too, also naming the instruction index.

**Token flags** (bit positions in every instruction):

{_table(("flag", "bit", "legal on", "meaning"), flag_rows)}

**Opcodes:**

{_table(("code", "name", "unit", "used bits", "summary"), op_rows)}

**Program file** (`program.bin`): a {HEADER.size}-byte header, then `count` instructions of `insn_bytes`
bytes each, in program order. The magic is `{MAGIC.decode()}`, the version {FORMAT_VERSION},
`insn_bytes` = {INSN_BYTES}; the file size must equal {HEADER.size} + count × {INSN_BYTES}.

{_table(("field", "offset", "bytes", "struct (little-endian)"), header_rows)}
"""


def _assembly_syntax() -> str:
    hexf = ", ".join(f"`{name}`" for name in sorted({p.name for op in OPCODES for p in op.layout if p.field.hex}))
    return f"""\
## 3. Assembly syntax

`bitbranch asm prog.s -o prog.bin` assembles and `bitbranch disasm prog.bin [--numbered]` disassembles.
One instruction per line:

```
OPNAME field=value field=value ... flag flag     # comment (also ';')
```

Values are decimal or `0x` hex integers; enum fields also take their member names in lowercase
(`buf=inp`, `wmode=equal`, `dest=acc`, `mode=max`, `unit=store`). Flags are the token flags written bare.
Omitted fields are 0. Opcodes, names and flags are case-insensitive. The disassembler writes the canonical
form: lowercase, enum fields always, other fields only when non-zero, in layout order, {hexf} in hex, then
the flags; assembling it gives back the same words.
"""


def _numeric_rules() -> str:
    const_sizes = ", ".join(f"{name} int{8 * size}" for name, size in CONST_FIELDS)
    return f"""\
## 4. Numeric rules

**Codes and levels.** An n-bit code (1 ≤ n ≤ 8) is q = Σ_(i<n) 2^i·b_i with b_i ∈ {{-1, +1}}: the odd
integers in [-(2^n - 1), 2^n - 1]. Its *level index* is u = (q + 2^n - 1)/2 ∈ [0, 2^n - 1], and
*plane* i is bit i of u, stored as **1 for +1 and 0 for -1**. Example, n = 2:

| q | -3 | -1 | +1 | +3 |
|---|---|---|---|---|
| u | 0 | 1 | 2 | 3 |
| planes (b1, b0) | (0, 0) | (0, 1) | (1, 0) | (1, 1) |

**Activations** are stored as level indices u with K planes (K = `kbits`, `kout`, `rk`, `k`); `bgemm` reads
them as codes q = 2u - (2^K - 1), i.e. plane i has coefficient coef_a(i) = 2^i. **Zero fill is level 0**: all
planes 0 (DMA padding, `pad_*`).

**Weights** are M-bit codes w (odd, never 0) with coef_w(j) = 2^j (`wmode=pow2`). Ternary weights
t ∈ {{-1, 0, +1}} use `wmode=equal`, `mbits=2`: two planes with coefficient 1 each, b1 + b0 = 2t, stored as
plane 0 = [t ≥ 0], plane 1 = [t ≥ 1]. The array then yields 2·Σ q·t; the factor 2 is absorbed by the
requantize scale.

**Binary branch.** For W-bit plane words a and w, Σ_bits (±1)·(±1) = W - 2·popcount(a XOR w).
`bgemm` sums coef_a(i)·coef_w(j)·(W - 2·popcount(a_i XOR w_j)) over planes i < K, j < M, channel words and
window positions, which equals Σ q·w over every bit position of the words read.

**Channel padding.** When the channel count is not a multiple of W, the bits past the last channel
must be **0 in both operands** (activations and weights). A padded bit is then -1 in every plane of both,
so each plane pair contributes +coef_a(i)·coef_w(j) and the bit as a whole contributes
(2^K - 1)·S_w, S_w = Σ_j coef_w(j). With P padded bits per window (P = kh·kw·(cw·W - C_in)) the array
result is R + P·(2^K - 1)·S_w: a per-layer constant the compiler folds into the bias.

**Unsigned activations.** With R = Σ q·w over the window, Σ u·w = (R + (2^K - 1)·Σ w)/2, where Σ w runs
over the full window; the second term is a per-output-channel constant folded into the bias. Zero-filled
positions (level 0) therefore need no special case; this is exact when real zero is level 0 (zero point 0).

**Accumulators** are int32 two's complement. `bgemm` with `accumulate=1` adds to ACC with int32
wrap-around; the compiler proves no overflow can happen. `pool mode=sum` writes int32 sums of levels.

**Requantization** (`requant`) computes per lane, in int64 two's complement with wrap-around:

```
v = acc·mul + bias (+ u_r·rmul if res=1)          # int64, wrapping; u_r is the residual's level index
r = round_shift(v, shift)
round_shift(v, s) = (v + 2^(s-1)) >> s  for s ≥ 1 (>> is an arithmetic shift; the add wraps in int64)
round_shift(v, 0) = v
dest=out: u = min(max(r, lo), hi); bits 0..kout-1 of u become planes 0..kout-1 of the output
dest=acc: ACC = min(max(r, -2^31), 2^31 - 1)     # saturates, unlike the accumulation
```

This rounds halves up (toward +∞): round_shift(5, 1) = 3, round_shift(-5, 1) = -2,
round_shift(6, 2) = 2, round_shift(-6, 2) = -1. `lo`, `hi` are unsigned levels (hi ≤ 2^kout - 1 for the
result to be meaningful). The constants come from CONST ({const_sizes} per lane, section 5).

**Pooling** works on level indices: `mode=max` writes the per-lane maximum as planes, `mode=sum` writes the
int32 sum to ACC (average pooling = sum + `requant`, section 7).
"""


def _data_layouts() -> str:
    const_rows, offset = [], 0
    for name, size in CONST_FIELDS:
        const_rows.append((f"`{name}`[l]", f"{offset}·C + {size}·l" if offset else f"{size}·l", size,
                           f"int{8 * size}"))
        offset += size
    return f"""\
## 5. Data layouts

All multi-byte values are little-endian; within a W-bit word, bit b is bit b mod 8 of byte b div 8.

**Activations in INP, OUT and DRAM** — a tensor of H × X pixels and C_h channels with K planes is stored
`[pixel][channel word][plane]`, one W-bit word per entry, CW = ceil(C_h / W) words per pixel:

```
entry(y, x, c, i) = base + ((y·X + x)·CW + c)·K + i        # channel word c, plane i
channel ch is bit ch mod W of channel word ch div W; bits past C_h are 0 (level 0)
```

`bgemm` and `pool` address an input pixel as `inp + row·irow + col·ipix`; for a dense tile ipix = CW·K and
irow = X·ipix. `requant` writes output pixel p at `out + p·ostride` (ostride = CW·K for a dense tensor),
output channel ch at bit ch mod W of word ch div W, i.e. in C-lane slice (ch mod W) div C: point `out` at the
channel word and set `slice`. `requant` and `pool` write only the C lanes of their slice and leave the
other bits of the word unchanged, so padding lanes of an output word must be written as level 0 (for
example mul = rmul = bias = 0 with lo = 0) or already hold 0 before the word is stored.

**Weights in WGT** — one entry is C lanes of one W-bit word; lane l occupies bits [(l+1)·W - 1 : l·W]. A
layer's weights are stored `[ctile][ky][kx][cw][plane]`:

```
entry(t, ky, kx, c, j) = wgt + (((t·kh + ky)·kw + kx)·cw + c)·M + j
lane l of that entry: output channel t·C + l;  bit b of the lane: input channel c·W + b;  plane j of the weight
```

**Accumulators in ACC** — one entry is C lanes of int32, lane l at bytes [4l, 4l + 4). `bgemm` writes output
pixel (y, x) of column tile t to entry `acc + t·oh·ow + y·ow + x`, lane l = output channel t·C + l.

**Constants in CONST** — one entry holds, for C lanes, all `mul` values, then all `rmul`, then all `bias`:

{_table(("value", "byte offset in the entry", "bytes", "type"), const_rows)}

Lane l of an entry applies to lane l of the ACC entries being requantized (output channel t·C + l).
"""


def _field_rows(op: Opcode) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = [("opcode", _bits(0, OPCODE_BITS), 0, OPCODE_BITS, op.code, "opcode")]
    legal_flags = _flags_for(op.unit) if op.unit is not None else None
    for placed in op.layout:
        f: Field = placed.field
        legal = _legal(f)
        if f.name in asm.FLAG_NAMES and legal_flags is None:
            legal = "0–1 if `unit` has that neighbour"
        elif f.name in asm.FLAG_NAMES and f.name not in legal_flags:
            legal = "0 (no such neighbour; 1 is a TokenError)"
        rows.append((f"`{f.name}`", _bits(placed.offset, f.width), placed.offset, f.width, legal, f.doc))
    if op.used_bits < INSN_BITS:
        rows.append(("reserved", _bits(op.used_bits, INSN_BITS - op.used_bits), op.used_bits,
                     INSN_BITS - op.used_bits, "0", "must be zero"))
    return rows


def _opcode_section(op: Opcode) -> str:
    unit = op.unit.name.lower() if op.unit is not None else "chosen by the `unit` field"
    values = _example_values(op)
    vector = Instruction.make(op.name, **values)
    table = _table(("field", "bits", "offset", "width", "legal", "meaning"), _field_rows(op))
    return f"""\
### `{op.name}` — opcode {op.code}

{op.summary}

Unit: {unit}. Used bits: {op.used_bits}.

{table}

```python
{op.semantics}
```

Decoder test vector (fields set to distinct legal values where the range allows, legal flags set):
`{asm.format_instruction(vector)}` = `0x{encode(vector):0{INSN_BITS // 4}x}`
"""


def _instructions() -> str:
    body = "\n".join(_opcode_section(op) for op in OPCODES)
    placed: list[PlacedField] = []
    for op in OPCODES:
        placed.extend(op.layout)
    return f"""\
## 6. Instructions

Pseudo-code conventions: `BUF[a : b]` are entries a..b-1 of a buffer; `bit(word, b)` / `set_bit` read and
write one bit of a W-bit word; C = `array_cols`, W = `word_bits`; all index arithmetic is exact (no
wrapping) and must stay within the buffer.

{body}"""


def _idioms() -> str:
    return """\
## 7. Idioms

**Nearest upsample by DMA.** Every layer's output goes OUT → DRAM (`store`) → INP (`load`), so the
upsample is done by the load. With P = CW·K entries per pixel and E = INP entry bytes, upsampling source row
y of X pixels by s writes each output pixel as one DMA row: `sstride` spreads the pixels s apart, and the
s·s loads of a row fill the gaps (a DMA row writes only its own entries):

```
for dy in range(s):
    for dx in range(s):
        load buf=inp sram=base + ((s*y + dy)*s*X + dx)*P  dram=src + y*X*P*E
             rows=X len=P dstride=P*E sstride=s*P
```

Repeated rows: `dstride=0` reads the same DRAM row again, so `rows=s len=P dstride=0 sstride=P` writes one
pixel s times side by side, and `rows=s dstride=0` with a whole (already widened) row as `len` copies it onto
s SRAM rows, `sstride` apart.

**Concat by addressing.** Tensors concatenated along channels share one pixel layout: with CW_a and CW_b
channel words (same K), the producer of the first part stores with `len=CW_a·K`, `dstride=(CW_a+CW_b)·K·E`
at `dram=base`, the second at `dram=base + CW_a·K·E`. Padding bits inside the concatenated word list are 0,
which the consumer's weights treat as padded channels (section 4). Along height or width, concat is just
adjacent DRAM rows or pixels.

**Average pooling = pool sum + requant.** `pool mode=sum` writes window sums of levels to ACC; a
`requant` with mul/2^shift ≈ 1/(kh·kw) times the rescale to the next layer's levels turns them into that
layer's levels; the golden model uses the same constants, so the result is bit exact by construction.
Windows are at most 15×15 (4-bit `kh`/`kw`).

**Residual add.** `requant res=1` adds rmul·u_r, the level of the skip tensor read from INP, before
rounding: a residual add and the next layer's quantizer in one instruction.

**Deep reductions and wide layers.** A reduction longer than one `bgemm` (INP/WGT capacity) is split into
several `bgemm`s over channel-word ranges, the first with `accumulate=0`, the rest with `accumulate=1`.
Output channels beyond one column tile use `ctiles`; a requant covers the C lanes of one tile and one
`slice`.

**Double buffering.** The load unit fills one half of INP/WGT while the compute unit works on the other:
each load of a half ends with `push_next` and the bgemm using it starts with `pop_prev`; when the bgemm
is done reading it `push_prev`s so the next load into that half can `pop_next` first. The same pattern with
the store unit protects OUT and ACC.
"""


def _example() -> str:
    program = asm.assemble(EXAMPLE_PROGRAM, "docs example")
    listing = asm.disassemble(program, numbered=True)
    return f"""\
## 8. Example program

Source (`bitbranch asm` input):

```
{EXAMPLE_PROGRAM.rstrip()}
```

Canonical disassembly (`bitbranch disasm --numbered`):

```
{listing.rstrip()}
```
"""


def render() -> str:
    """The full text of docs/isa.md."""
    sections = (
        _intro(), _machine_model(), _binary_format(), _assembly_syntax(), _numeric_rules(),
        _data_layouts(), _instructions(), _idioms(), _example(),
    )
    return "\n".join(sections)


