"""Encoding properties of the ISA: layouts, round trips, and fuzzing of the decoder.

The fuzz tests feed the decoder random and corrupted words and program files: each input must either
decode to an instruction that re-encodes to the same bits, or be rejected with an IsaError subclass.
Counts of fuzzed inputs are kept in FUZZ and printed (run `pytest -s` to see them).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import any_words, programs, valid_instructions, valid_words

from bitbranch.isa.asm import assemble, format_instruction
from bitbranch.isa.encoding import (
    HEADER,
    Instruction,
    decode,
    decode_program,
    encode,
    encode_program,
)
from bitbranch.isa.errors import FieldRangeError, IllegalInstruction, IsaError, ProgramFormatError
from bitbranch.isa.spec import HEADER_BITS, INSN_BITS, INSN_BYTES, OPCODE_BITS, OPCODES, TOKEN_FIELDS

WORD_EXAMPLES = int(os.environ.get("BITBRANCH_FUZZ_EXAMPLES", "2000"))
FUZZ: Counter[str] = Counter()
FUZZ_SETTINGS = settings(
    max_examples=WORD_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _report(name: str, record_property) -> None:
    counts = {key: n for key, n in sorted(FUZZ.items()) if key.startswith(name + ".")}
    record_property("fuzz_counts", counts)
    print(f"\n{name}: {counts}")


def _check_word(word: int, kind: str) -> None:
    """A word decodes to something that re-encodes identically, or is rejected with an IsaError."""
    try:
        insn = decode(word, index=7)
    except IsaError as exc:
        assert exc.index == 7, "decode errors must name the instruction index"
        FUZZ[f"{kind}.rejected.{type(exc).__name__}"] += 1
        return
    assert encode(insn) == word
    assert assemble(format_instruction(insn)) == [insn]
    FUZZ[f"{kind}.decoded"] += 1


# --- layout ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", OPCODES, ids=lambda op: op.name)
def test_layout_is_contiguous_and_fits(op):
    offset = OPCODE_BITS
    for placed in op.layout:
        assert placed.offset == offset, f"{op.name}.{placed.name} not packed after the previous field"
        offset += placed.width
    assert op.used_bits == offset <= INSN_BITS
    assert [p.name for p in op.layout[: len(TOKEN_FIELDS)]] == [f.name for f in TOKEN_FIELDS]
    assert op.layout[len(TOKEN_FIELDS) - 1].offset + 1 == HEADER_BITS


def test_opcodes_unique_and_fit():
    codes = [op.code for op in OPCODES]
    assert len(set(codes)) == len(codes)
    assert all(0 < code < 1 << OPCODE_BITS for code in codes)
    assert len({op.name for op in OPCODES}) == len(OPCODES)


# --- round trips -----------------------------------------------------------------------------------
@pytest.mark.parametrize("op", OPCODES, ids=lambda op: op.name)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_encode_decode_round_trip_per_opcode(op, data):
    insn = data.draw(valid_instructions([op.name]))
    word = encode(insn)
    assert 0 <= word < 1 << INSN_BITS
    assert word & ((1 << OPCODE_BITS) - 1) == op.code
    assert word >> op.used_bits == 0
    assert decode(word) == insn


@settings(max_examples=200, deadline=None)
@given(insn=valid_instructions())
def test_fields_land_at_their_offsets(insn):
    word = encode(insn)
    for placed, value in zip(insn.opcode.layout, insn.values, strict=True):
        assert (word >> placed.offset) & placed.mask == value, placed.name


@settings(max_examples=200, deadline=None)
@given(program=programs(max_size=30))
def test_program_file_round_trip(program):
    data = encode_program(program)
    assert len(data) == HEADER.size + len(program) * INSN_BYTES
    assert decode_program(data, "p.bin") == program


def test_make_rejects_bad_values():
    with pytest.raises(FieldRangeError, match="field 'rows'=70000 exceeds 16 bits"):
        Instruction.make("load", rows=70000, len=1)
    with pytest.raises(FieldRangeError, match="field 'rows'=0 outside legal range 1..65535"):
        Instruction.make("load", rows=0, len=1)
    with pytest.raises(FieldRangeError, match="field 'buf'=2 is not one of"):
        Instruction.make("load", buf=2, rows=1, len=1)
    with pytest.raises(IllegalInstruction, match="unknown opcode 'jump'"):
        Instruction.make("jump")


def test_decode_rejects_each_illegal_form():
    good = encode(Instruction.make("load", rows=1, len=1))
    load = OPCODES[0]
    with pytest.raises(IllegalInstruction, match="unknown opcode 0"):
        decode(good & ~0xF)
    with pytest.raises(IllegalInstruction, match="reserved bits"):
        decode(good | 1 << load.used_bits)
    with pytest.raises(FieldRangeError, match="'rows'=0"):
        decode(good & ~(load.field("rows").mask << load.field("rows").offset))
    with pytest.raises(FieldRangeError, match="'buf'=7"):
        decode(good | 7 << load.field("buf").offset)
    with pytest.raises(IllegalInstruction, match="does not fit"):
        decode(1 << INSN_BITS)


def test_program_format_errors_name_the_file():
    data = encode_program([Instruction.make("finish")])
    cases = {
        data[:10]: "too short",
        b"XXPROG" + data[6:]: "not a bitbranch program",
        data[:6] + b"\x02\x00" + data[8:]: "format version 2",
        data[:8] + (16).to_bytes(4, "little") + data[12:]: "instruction size 16",
        data + b"\0": "header says 1 instructions",
    }
    for bad, message in cases.items():
        with pytest.raises(ProgramFormatError, match=message) as info:
            decode_program(bad, "prog.bin")
        assert str(info.value).startswith("prog.bin: ")


# --- fuzzing ---------------------------------------------------------------------------------------
@FUZZ_SETTINGS
@given(word=any_words())
def _fuzz_random_words(word):
    _check_word(word, "random")


def test_fuzz_random_words(record_property):
    before = sum(n for k, n in FUZZ.items() if k.startswith("random."))
    _fuzz_random_words()
    ran = sum(n for k, n in FUZZ.items() if k.startswith("random.")) - before
    assert ran >= WORD_EXAMPLES // 2, f"only {ran} random words fuzzed"
    _report("random", record_property)


@FUZZ_SETTINGS
@given(word=valid_words(), flips=st.lists(st.integers(0, INSN_BITS - 1), min_size=1, max_size=4))
def _fuzz_bit_flips(word, flips):
    for bit in flips:
        word ^= 1 << bit
    _check_word(word, "flips")


def test_fuzz_bit_flips(record_property):
    _fuzz_bit_flips()
    assert FUZZ["flips.decoded"] > 0, "no bit-flipped word decoded: the fuzzer does not reach valid words"
    assert any(k.startswith("flips.rejected.") for k in FUZZ), "no bit-flipped word rejected"
    _report("flips", record_property)


@st.composite
def _structured_words(draw):
    """Known opcode, random bits only below its used bits: exercises the per-field range checks."""
    op = draw(st.sampled_from(OPCODES))
    body = draw(st.integers(0, (1 << (op.used_bits - OPCODE_BITS)) - 1))
    return body << OPCODE_BITS | op.code


@FUZZ_SETTINGS
@given(word=_structured_words())
def _fuzz_structured_words(word):
    _check_word(word, "structured")


def test_fuzz_structured_words(record_property):
    _fuzz_structured_words()
    assert FUZZ["structured.decoded"] > 0
    assert FUZZ["structured.rejected.FieldRangeError"] > 0, "field range checks never exercised"
    _report("structured", record_property)


@st.composite
def _corrupted_files(draw):
    data = bytearray(encode_program(draw(programs(max_size=6))))
    kind = draw(st.sampled_from(["truncate", "append", "overwrite", "count"]))
    if kind == "truncate":
        del data[draw(st.integers(0, max(len(data) - 1, 0))) :]
    elif kind == "append":
        data += draw(st.binary(min_size=1, max_size=64))
    elif kind == "overwrite":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    else:
        data[12:16] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little")
    return kind, bytes(data)


@settings(max_examples=WORD_EXAMPLES // 2, deadline=None, database=None)
@given(case=_corrupted_files())
def _fuzz_program_files(case):
    kind, data = case
    try:
        program = decode_program(data, "fuzz.bin")
    except IsaError as exc:
        assert "fuzz.bin" in str(exc) or exc.index is not None
        FUZZ[f"files.{kind}.rejected"] += 1
        return
    assert encode_program(program) == data
    FUZZ[f"files.{kind}.decoded"] += 1


def test_fuzz_program_files(record_property):
    _fuzz_program_files()
    assert sum(n for k, n in FUZZ.items() if k.startswith("files.") and k.endswith(".rejected")) > 0
    assert sum(n for k, n in FUZZ.items() if k.startswith("files.")) >= WORD_EXAMPLES // 4
    _report("files", record_property)
