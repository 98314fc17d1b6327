"""Assembler and disassembler: a readable text form of programs, derived from isa.spec.

Syntax, one instruction per line:

    OPNAME field=value field=value ... flag flag    # comment (also ';')

`value` is a decimal or 0x-hex integer, or for enum fields the member name (`buf=inp`,
`wmode=equal`, `dest=acc`, `mode=max`, `unit=store`). Flags are the token flags `pop_prev
pop_next push_prev push_next`, written bare. Omitted fields are 0. Opcodes, field names, enum
names and flags are case-insensitive. The assembler checks field-level rules only (widths, ranges,
enums): it is a faithful text form of the binary, and program-level rules live in isa.validate.

Canonical text (what `disassemble` writes): lowercase opcode, then enum fields always (by name, so
`sync unit=load` reads unambiguously), other fields only when non-zero, in layout order,
`dram`/`dstride` in hex, then the set flags in TOKEN_FIELDS order.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .cliutil import fail, os_error_message
from .encoding import HEADER, Instruction, decode_program, encode_program
from .errors import AsmError, IsaError
from .spec import INSN_BYTES, OPCODE_BY_NAME, TOKEN_FIELDS, Field, Opcode

FLAG_NAMES = tuple(f.name for f in TOKEN_FIELDS)
_COMMENT = re.compile(r"[#;].*")
_INTEGER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|[0-9]+(?:_[0-9]+)*)")


# --- disassembler ----------------------------------------------------------------------------------
def format_value(f: Field, value: int) -> str:
    """One field value as the assembler reads it back (enum name, hex address or decimal)."""
    if f.enum is not None and value in f.enum._value2member_map_:
        return f.enum(value).name.lower()
    if f.hex:
        return f"0x{value:x}"
    return str(value)


def format_instruction(insn: Instruction) -> str:
    """Canonical text of one instruction (see module docstring)."""
    parts = [insn.op]
    flags = []
    for placed, value in zip(insn.opcode.layout, insn.values, strict=True):
        f = placed.field
        if f.name in FLAG_NAMES:
            if value:
                flags.append(f.name if value == 1 else f"{f.name}={value}")
        elif f.enum is not None or value != 0:
            parts.append(f"{f.name}={format_value(f, value)}")
    return " ".join(parts + flags)


def disassemble(program: Sequence[Instruction], numbered: bool = False) -> str:
    """Canonical text, one line per instruction; `numbered` appends `# index` to each line."""
    lines = []
    for index, insn in enumerate(program):
        text = format_instruction(insn)
        lines.append(f"{text} # {index}" if numbered else text)
    return "".join(line + "\n" for line in lines)


# --- assembler -------------------------------------------------------------------------------------
def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def parse_int(text: str) -> int | None:
    """Decimal or 0x-hex integer (underscores allowed between digits), or None if malformed."""
    if not _INTEGER.fullmatch(text):
        return None
    return int(text.replace("_", ""), 16 if "x" in text.lower() else 10)


def _parse_value(op: Opcode, f: Field, text: str) -> int:
    value = parse_int(text)
    if value is not None:
        return value
    if f.enum is not None:
        member = f.enum.__members__.get(text.upper())
        legal = f.allowed if f.allowed is not None else tuple(int(m) for m in f.enum)
        names = [f.enum(v).name.lower() for v in legal]
        if member is None:
            raise ValueError(
                f"unknown value '{text}' for field '{f.name}' of {op.name} "
                f"(expected one of {', '.join(names)}, or an integer){_suggest(text.lower(), names)}"
            )
        if int(member) not in legal:
            raise ValueError(
                f"value '{text}' not allowed for field '{f.name}' of {op.name} (expected one of {', '.join(names)})"
            )
        return int(member)
    raise ValueError(f"bad integer '{text}' for field '{f.name}' (decimal or 0x hex)")


def _bare_flag(op: Opcode, token: str) -> int:
    key = token.lower()
    if key in FLAG_NAMES:
        return 1
    if key in (p.name for p in op.layout):
        raise ValueError(f"field '{token}' needs a value ({key}=N)")
    raise ValueError(f"unknown flag '{token}' (flags: {', '.join(FLAG_NAMES)}){_suggest(key, FLAG_NAMES)}")


def _assignment(op: Opcode, token: str, name: str, text: str) -> int:
    if not name or not text or "=" in text:
        raise ValueError(f"malformed field '{token}' (expected name=value)")
    by_name = {p.name: p.field for p in op.layout}
    key = name.lower()
    if key not in by_name:
        plain = [n for n in by_name if n not in FLAG_NAMES]
        raise ValueError(
            f"unknown field '{name}' for {op.name} (fields: {', '.join(plain) or 'none'}; "
            f"flags: {', '.join(FLAG_NAMES)}){_suggest(key, list(by_name))}"
        )
    return _parse_value(op, by_name[key], text)


def _parse_token(op: Opcode, token: str, fields: dict[str, int]) -> None:
    """Add one `name=value` or bare flag token to `fields`; ValueError names the token."""
    name, eq, text = token.partition("=")
    value = _assignment(op, token, name, text) if eq else _bare_flag(op, token)
    key = name.lower()
    if key in fields:
        raise ValueError(f"duplicate {'flag' if key in FLAG_NAMES else 'field'} '{key}'")
    fields[key] = value


def parse_line(text: str) -> Instruction | None:
    """One source line to an Instruction (None for blank/comment lines). Raises ValueError/IsaError."""
    tokens = _COMMENT.sub("", text).split()
    if not tokens:
        return None
    name = tokens[0].lower()
    if name not in OPCODE_BY_NAME:
        raise ValueError(
            f"unknown opcode '{tokens[0]}' (known: {', '.join(OPCODE_BY_NAME)}){_suggest(name, list(OPCODE_BY_NAME))}"
        )
    op = OPCODE_BY_NAME[name]
    fields: dict[str, int] = {}
    for token in tokens[1:]:
        _parse_token(op, token, fields)
    return Instruction.make(op.name, **fields)


def assemble(text: str, source: str = "<asm>") -> list[Instruction]:
    """Assemble source text; the first error raises AsmError as `source:line: message`."""
    program = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        try:
            insn = parse_line(line)
        except IsaError as exc:  # FieldRangeError / IllegalInstruction from Instruction.make
            raise AsmError(exc.detail, source, lineno) from None
        except ValueError as exc:
            raise AsmError(str(exc), source, lineno) from None
        if insn is not None:
            program.append(insn)
    return program


# --- files -----------------------------------------------------------------------------------------
def assemble_file(path: str | Path) -> bytes:
    """Assemble a source file to a program binary (isa.encoding file format)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AsmError(f"not a text file (byte {exc.start} is not UTF-8)", str(path)) from None
    return encode_program(assemble(text, str(path)))


def disassemble_file(path: str | Path, numbered: bool = False) -> str:
    """Disassemble a program binary; every error names the file."""
    return disassemble(decode_program(Path(path).read_bytes(), str(path)), numbered=numbered)


# --- CLI (wired up by bitbranch.cli) ---------------------------------------------------------------
def add_arguments_asm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="assembly source file (.s)")
    parser.add_argument("-o", "--output", help="program binary to write (default: SOURCE with suffix .bin)")


def add_arguments_disasm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("binary", help="program binary (program.bin of an artifact, or `bitbranch asm` output)")
    parser.add_argument("--numbered", action="store_true", help="append '# index' to every line")


def cmd_asm(args: argparse.Namespace) -> int:
    source = Path(args.source)
    output = Path(args.output) if args.output else source.with_suffix(".bin")
    if output.resolve() == source.resolve():
        return fail(f"{source}: output would overwrite the source; pass -o")
    try:
        binary = assemble_file(source)
        output.write_bytes(binary)
    except (AsmError, IsaError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(os_error_message(exc))
    count = (len(binary) - HEADER.size) // INSN_BYTES
    print(f"{source}: {count} instructions -> {output}")
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    try:
        text = disassemble_file(args.binary, numbered=bool(getattr(args, "numbered", False)))
    except IsaError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(os_error_message(exc))
    sys.stdout.write(text)
    return 0
