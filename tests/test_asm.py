"""Assembler and disassembler: round trips, syntax, error messages, files and CLI entry points."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import FLAG_NAMES, programs, valid_instructions

from bitbranch.isa.asm import (
    add_arguments_asm,
    add_arguments_disasm,
    assemble,
    assemble_file,
    cmd_asm,
    cmd_disasm,
    disassemble,
    disassemble_file,
    format_instruction,
)
from bitbranch.isa.encoding import Instruction, decode_program, encode, encode_program
from bitbranch.isa.errors import AsmError, IllegalInstruction, IsaError
from bitbranch.isa.spec import OPCODES, TOKEN_FIELDS

FUZZ: Counter[str] = Counter()


# --- round trips -----------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(program=programs(max_size=25))
def test_assemble_disassemble_round_trip(program):
    text = disassemble(program)
    assert assemble(text) == program
    assert disassemble(assemble(text)) == text  # canonical text is a fixed point
    assert assemble(disassemble(program, numbered=True)) == program


@settings(max_examples=300, deadline=None)
@given(insn=valid_instructions())
def test_single_instruction_is_one_canonical_line(insn):
    line = format_instruction(insn)
    assert "\n" not in line and line == line.lower() and line.split()[0] == insn.op
    assert assemble(line) == [insn]


@pytest.mark.parametrize(
    "canonical",
    [
        "load buf=inp sram=3 dram=0x1000 rows=2 len=4 dstride=0x40 push_next\n",
        "store buf=acc dram=0xdeadbeef rows=1 len=1 pop_prev push_prev\n",
        "bgemm accumulate=1 wmode=equal kbits=1 mbits=2 oh=1 ow=1 kh=3 kw=3 stride=1 dil=1 cw=1 ctiles=1\n",
        "requant dest=out n=16 ostride=2 kout=2 shift=8 hi=3 push_next\n",
        "pool mode=max k=2 oh=1 ow=1 kh=2 kw=2 stride=2\n",
        "sync unit=load pop_next\n",
        "finish\n",
    ],
)
def test_canonical_text_is_a_fixed_point(canonical):
    assert disassemble(assemble(canonical)) == canonical


def test_numbered_listing_appends_the_index():
    program = [Instruction.make("sync", unit=1)] * 3 + [Instruction.make("finish")]
    lines = disassemble(program, numbered=True).splitlines()
    assert lines == ["sync unit=compute # 0", "sync unit=compute # 1", "sync unit=compute # 2", "finish # 3"]
    assert disassemble([]) == ""


# --- syntax ----------------------------------------------------------------------------------------
def test_syntax_variants_assemble_to_the_same_instruction():
    want = Instruction.make("load", buf=1, sram=16, dram=0x1000, rows=2, len=4, pop_next=1, push_next=1)
    variants = [
        "load buf=wgt sram=16 dram=0x1000 rows=2 len=4 pop_next push_next",
        "LOAD BUF=WGT SRAM=0x10 DRAM=4096 ROWS=2 LEN=4 POP_NEXT PUSH_NEXT",
        "\tload   buf=1 sram=0x0010 dram=0X1000   rows=2 len=4 push_next pop_next   # comment",
        "load buf=wgt sram=16 dram=0x1000 rows=2 len=4 pop_next=1 push_next ; other comment",
        "load buf=wgt sram=16 dram=0x10_00 rows=02 len=4 pop_next push_next",
    ]
    for text in variants:
        assert assemble(text) == [want], text


def test_blank_and_comment_lines_are_ignored():
    text = "\n# header\n   ; note\nfinish\n\n"
    assert assemble(text) == [Instruction.make("finish")]


def test_omitted_fields_are_zero():
    insn = assemble("pool k=1 oh=1 ow=1 kh=1 kw=1 stride=1")[0]
    assert insn.mode == 0 and insn.inp == 0 and insn.acc == 0 and insn.pop_prev == 0


# --- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("finish\nload rows=70000 len=1\n", "prog.s:2: field 'rows'=70000 exceeds 16 bits"),
        ("\n\n\nload rows=0 len=1", "prog.s:4: field 'rows'=0 outside legal range 1..65535"),
        ("jump target=3", "prog.s:1: unknown opcode 'jump' (known: load, store, bgemm"),
        ("lod rows=1", "did you mean 'load'?"),
        ("finish\nload row=1 len=1", "prog.s:2: unknown field 'row' for load (fields: buf, sram"),
        ("load rows=1 len=1 rows=2", "prog.s:1: duplicate field 'rows'"),
        ("store pop_prev pop_prev rows=1 len=1 buf=out", "prog.s:1: duplicate flag 'pop_prev'"),
        ("store pop_prev pop_prev=1 rows=1 len=1 buf=out", "prog.s:1: duplicate flag 'pop_prev'"),
        ("load rows=1 len=1 wait", "prog.s:1: unknown flag 'wait' (flags: pop_prev, pop_next, push_prev, push_next)"),
        ("load rows=1 len=1 pushnext", "did you mean 'push_next'?"),
        ("load rows len=1", "prog.s:1: field 'rows' needs a value (rows=N)"),
        ("load rows=1x len=1", "prog.s:1: bad integer '1x' for field 'rows'"),
        ("load rows=0xg len=1", "prog.s:1: bad integer '0xg' for field 'rows'"),
        ("load rows= len=1", "prog.s:1: malformed field 'rows=' (expected name=value)"),
        ("load =1 rows=1 len=1", "prog.s:1: malformed field '=1'"),
        ("load rows=1=2 len=1", "prog.s:1: malformed field 'rows=1=2'"),
        ("load buf=acc rows=1 len=1", "prog.s:1: value 'acc' not allowed for field 'buf' of load"),
        ("load buf=2 rows=1 len=1", "prog.s:1: field 'buf'=2 is not one of inp=0, wgt=1, const=4"),
        ("load buf=disk rows=1 len=1", "prog.s:1: unknown value 'disk' for field 'buf' of load"),
        ("sync unit=dram", "prog.s:1: unknown value 'dram' for field 'unit'"),
        ("finish rows=1", "prog.s:1: unknown field 'rows' for finish (fields: none;"),
        ("requant n=1 shift=63", "prog.s:1: field 'shift'=63 outside legal range 0..62"),
    ],
)
def test_error_messages_name_file_line_and_token(source, message):
    with pytest.raises(AsmError) as info:
        assemble(source, "prog.s")
    assert message in str(info.value)
    assert info.value.file == "prog.s" and info.value.line == int(str(info.value).split(":")[1])


def test_asm_error_is_not_an_isa_error():
    """Callers catch source errors and program errors separately; the error carries the line."""
    with pytest.raises(AsmError) as info:
        assemble("finish\nfinish\nnope")
    assert not isinstance(info.value, IsaError) and info.value.line == 3
    assert str(info.value).startswith("<asm>:3: ")


# --- fuzzing the parser ----------------------------------------------------------------------------
_VOCAB = sorted(
    {op.name for op in OPCODES}
    | {p.name for op in OPCODES for p in op.layout}
    | set(FLAG_NAMES)
    | {"inp", "wgt", "acc", "out", "const", "equal", "sum", "store", "#", ";", "=", "0x", "-1", "7", "0x1f"}
)
_token = st.one_of(
    st.sampled_from(_VOCAB),
    st.builds(
        lambda k, v: f"{k}={v}", st.sampled_from(_VOCAB), st.one_of(st.integers(-5, 2**33), st.sampled_from(_VOCAB))
    ),
    st.text(max_size=6),
)


@settings(max_examples=1500, deadline=None, database=None)
@given(lines=st.lists(st.lists(_token, max_size=8).map(" ".join), max_size=5))
def _fuzz_source(lines):
    try:
        program = assemble("\n".join(lines), "fuzz.s")
    except AsmError as exc:
        assert str(exc).startswith("fuzz.s:")
        FUZZ["source.rejected"] += 1
        return
    assert assemble(disassemble(program)) == program
    FUZZ["source.assembled"] += 1


def test_fuzz_assembler_source(record_property):
    _fuzz_source()
    assert FUZZ["source.rejected"] > 0 and FUZZ["source.assembled"] > 0
    record_property("fuzz_counts", dict(FUZZ))
    print(f"\nassembler source fuzz: {dict(FUZZ)}")


# --- files -----------------------------------------------------------------------------------------
PROGRAM_TEXT = """\
load buf=inp dram=0x1000 rows=1 len=32 push_next
bgemm kbits=2 mbits=2 oh=4 ow=4 kh=1 kw=1 stride=1 dil=1 cw=1 ctiles=1 irow=8 ipix=2 pop_prev
finish
"""


def test_file_helpers_round_trip(tmp_path):
    src = tmp_path / "prog.s"
    src.write_text(PROGRAM_TEXT)
    binary = assemble_file(src)
    assert decode_program(binary) == assemble(PROGRAM_TEXT)
    out = tmp_path / "prog.bin"
    out.write_bytes(binary)
    assert disassemble_file(out) == disassemble(assemble(PROGRAM_TEXT))
    assert disassemble_file(out, numbered=True).splitlines()[2] == "finish # 2"


def test_file_errors_name_the_file(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("finish\nload rows=70000 len=1\n")
    with pytest.raises(AsmError, match=r"bad\.s:2: field 'rows'=70000 exceeds 16 bits"):
        assemble_file(src)
    src.write_bytes(b"\xff\xfe load")
    with pytest.raises(AsmError, match=r"bad\.s: not a text file"):
        assemble_file(src)
    words = encode_program([Instruction.make("finish")] * 2)
    corrupt = tmp_path / "bad.bin"
    corrupt.write_bytes(words[:-1] + b"\x80")  # sets a reserved bit of instruction 1
    with pytest.raises(IllegalInstruction) as info:
        disassemble_file(corrupt)
    assert str(info.value).startswith(f"{corrupt}: instruction 1 (finish): reserved bits")
    assert info.value.index == 1
    corrupt.write_bytes(b"BBPROG")
    with pytest.raises(IsaError, match=r"bad\.bin: 6 bytes is too short"):
        disassemble_file(corrupt)


# --- CLI entry points ------------------------------------------------------------------------------
def _parse(add_arguments, argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_asm_then_disasm(tmp_path, capsys):
    src = tmp_path / "prog.s"
    src.write_text(PROGRAM_TEXT)
    out = tmp_path / "out.bin"
    assert cmd_asm(_parse(add_arguments_asm, [str(src), "-o", str(out)])) == 0
    assert "3 instructions" in capsys.readouterr().out
    assert cmd_disasm(_parse(add_arguments_disasm, [str(out), "--numbered"])) == 0
    listing = capsys.readouterr().out
    assert listing == disassemble(assemble(PROGRAM_TEXT), numbered=True)
    assert cmd_asm(_parse(add_arguments_asm, [str(src)])) == 0  # default output: prog.bin
    assert (tmp_path / "prog.bin").read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    ("setup", "command", "message"),
    [
        (lambda d: (d / "p.s").write_text("load rows=70000 len=1\n"), "asm p.s", "p.s:1: field 'rows'=70000"),
        (lambda d: None, "asm missing.s", "missing.s: No such file or directory"),
        (lambda d: (d / "p.bin").write_text("x"), "asm p.bin", "output would overwrite the source"),
        (lambda d: (d / "p.bin").write_bytes(b"junk" * 8), "disasm p.bin", "p.bin: not a bitbranch program"),
        (lambda d: None, "disasm nothing.bin", "nothing.bin: No such file or directory"),
        (
            lambda d: (d / "p.bin").write_bytes(encode_program([])[:-4] + (1).to_bytes(4, "little") + bytes(32)),
            "disasm p.bin",
            "p.bin: instruction 0: unknown opcode 0",
        ),
    ],
)
def test_cli_errors_exit_2_without_traceback(tmp_path, capsys, monkeypatch, setup, command, message):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    name, arg = command.split()
    if name == "asm":
        status = cmd_asm(_parse(add_arguments_asm, [arg]))
    else:
        status = cmd_disasm(_parse(add_arguments_disasm, [arg]))
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_token_flags_are_written_last_in_spec_order():
    insn = Instruction.make("bgemm", kbits=1, mbits=1, oh=1, ow=1, kh=1, kw=1, stride=1, dil=1, cw=1, ctiles=1,
                            pop_prev=1, pop_next=1, push_prev=1, push_next=1)
    assert format_instruction(insn).split()[-4:] == [f.name for f in TOKEN_FIELDS]
    assert encode(assemble(format_instruction(insn))[0]) == encode(insn)
