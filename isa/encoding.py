"""Instructions as Python values, and their fixed-width binary encoding (derived from isa.spec).

`Instruction` holds decoded field values; `encode`/`decode` convert to and from INSN_BITS-wide
integers, and `encode_program`/`decode_program` to and from the program binary file format:

    offset 0  magic   b"BBPROG"          6 bytes
    offset 6  version uint16 LE (= 1)
    offset 8  insn_bytes uint32 LE (= INSN_BYTES)
    offset 12 count   uint32 LE
    offset 16 count instructions, INSN_BYTES each, little-endian

Only field-level rules live here (widths, legal ranges, enums, reserved bits). Rules that relate
fields to each other, to a hardware config or to a DRAM image are in isa.validate.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import FieldRangeError, IllegalInstruction, IsaError, ProgramFormatError
from .spec import INSN_BITS, INSN_BYTES, OPCODE_BITS, OPCODE_BY_CODE, OPCODE_BY_NAME, Opcode, Unit, unit_of

MAGIC = b"BBPROG"
FORMAT_VERSION = 1
HEADER = struct.Struct("<6sHII")


@dataclass(frozen=True)
class Instruction:
    """A decoded instruction: opcode name and every field value in layout order."""

    op: str
    values: tuple[int, ...]

    @classmethod
    def make(cls, op: str, index: int | None = None, **fields: int) -> Instruction:
        """Build an instruction; unspecified fields are 0. Raises FieldRangeError on bad values."""
        opcode = opcode_named(op, index)
        names = [p.name for p in opcode.layout]
        unknown = sorted(set(fields) - set(names))
        if unknown:
            raise FieldRangeError(f"unknown field(s) {', '.join(unknown)}; {op} has: {', '.join(names)}", index, op)
        values = tuple(int(fields.get(name, 0)) for name in names)
        insn = cls(op, values)
        check_fields(insn, index)
        return insn

    @property
    def opcode(self) -> Opcode:
        return OPCODE_BY_NAME[self.op]

    @property
    def exec_unit(self) -> Unit:
        return unit_of(self.opcode, self.as_dict())

    def as_dict(self) -> dict[str, int]:
        return {p.name: v for p, v in zip(self.opcode.layout, self.values, strict=True)}

    def replace(self, **changes: int) -> Instruction:
        return Instruction.make(self.op, **{**self.as_dict(), **changes})

    def __getattr__(self, name: str) -> int:
        # Only reached for names that are not dataclass attributes: the instruction's fields.
        if name.startswith("__"):
            raise AttributeError(name)
        for placed, value in zip(OPCODE_BY_NAME[self.op].layout, self.values, strict=True):
            if placed.name == name:
                return value
        raise AttributeError(f"{self.op} instruction has no field '{name}'")


def opcode_named(op: str, index: int | None = None) -> Opcode:
    if op not in OPCODE_BY_NAME:
        raise IllegalInstruction(f"unknown opcode '{op}' (known: {', '.join(OPCODE_BY_NAME)})", index)
    return OPCODE_BY_NAME[op]


def check_fields(insn: Instruction, index: int | None = None) -> None:
    """Every field within its width, legal range and enum subset."""
    for placed, value in zip(insn.opcode.layout, insn.values, strict=True):
        f = placed.field
        if value < 0 or value >= 1 << f.width:
            raise FieldRangeError(f"field '{f.name}'={value} exceeds {f.width} bits", index, insn.op)
        if value < f.lo or value > f.max_value:
            raise FieldRangeError(
                f"field '{f.name}'={value} outside legal range {f.lo}..{f.max_value}", index, insn.op
            )
        if f.enum is not None:
            legal = f.allowed if f.allowed is not None else tuple(int(m) for m in f.enum)
            if value not in legal:
                raise FieldRangeError(
                    f"field '{f.name}'={value} is not one of {f.legal_values_text()}", index, insn.op
                )


def encode(insn: Instruction) -> int:
    word = insn.opcode.code
    for placed, value in zip(insn.opcode.layout, insn.values, strict=True):
        word |= (value & placed.mask) << placed.offset
    return word


def decode(word: int, index: int | None = None) -> Instruction:
    """Decode one INSN_BITS-wide word; raises IllegalInstruction or FieldRangeError."""
    if word < 0 or word >> INSN_BITS:
        raise IllegalInstruction(f"word does not fit in {INSN_BITS} bits", index)
    code = word & ((1 << OPCODE_BITS) - 1)
    if code not in OPCODE_BY_CODE:
        raise IllegalInstruction(f"unknown opcode {code}", index)
    opcode = OPCODE_BY_CODE[code]
    if word >> opcode.used_bits:
        raise IllegalInstruction(
            f"reserved bits set above bit {opcode.used_bits - 1} (word 0x{word:064x})", index, opcode.name
        )
    values = tuple((word >> p.offset) & p.mask for p in opcode.layout)
    insn = Instruction(opcode.name, values)
    check_fields(insn, index)
    return insn


def encode_program(program: Iterable[Instruction]) -> bytes:
    body = b"".join(encode(insn).to_bytes(INSN_BYTES, "little") for insn in program)
    return HEADER.pack(MAGIC, FORMAT_VERSION, INSN_BYTES, len(body) // INSN_BYTES) + body


def decode_program(data: bytes, source: str = "program") -> list[Instruction]:
    """Parse a program binary; every error names the file and, for instructions, the index."""
    if len(data) < HEADER.size:
        raise ProgramFormatError(f"{source}: {len(data)} bytes is too short for the {HEADER.size}-byte header")
    magic, version, insn_bytes, count = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProgramFormatError(f"{source}: not a bitbranch program (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise ProgramFormatError(f"{source}: format version {version}, this bitbranch reads {FORMAT_VERSION}")
    if insn_bytes != INSN_BYTES:
        raise ProgramFormatError(f"{source}: instruction size {insn_bytes} bytes, expected {INSN_BYTES}")
    expected = HEADER.size + count * INSN_BYTES
    if len(data) != expected:
        raise ProgramFormatError(f"{source}: header says {count} instructions ({expected} bytes), file has {len(data)}")
    program = []
    for k in range(count):
        start = HEADER.size + k * INSN_BYTES
        try:
            program.append(decode(int.from_bytes(data[start : start + INSN_BYTES], "little"), k))
        except IsaError as exc:
            exc.args = (f"{source}: {exc}",)
            raise
    return program


