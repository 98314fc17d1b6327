"""Generated files: up to date with isa/spec.py, consistent with it, and the include readable by Icarus."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bitbranch.isa import docgen, generated, verilog
from bitbranch.isa.asm import assemble
from bitbranch.isa.encoding import encode
from bitbranch.isa.hwconfig import BUFFERS, load_presets
from bitbranch.isa.spec import HEADER_BITS, INSN_BITS, INSN_BYTES, NEIGHBOURS, OPCODE_BITS, OPCODES, TOKEN_FIELDS, Unit

ROOT = Path(__file__).resolve().parent.parent
DEFINE = re.compile(r"^`define\s+(\w+)\s+(.*?)\s*(?://.*)?$")


def _defines(text: str) -> dict[str, str]:
    return {m[1]: m[2] for line in text.splitlines() if (m := DEFINE.match(line))}


def _verilog_int(literal: str) -> int:
    """Value of a plain or sized ('4'd1', '8'b0101') Verilog literal."""
    m = re.fullmatch(r"(\d+)'([db])([0-9_]+)", literal)
    if not m:
        return int(literal)
    return int(m[3], 10 if m[2] == "d" else 2)


def _expected_macros() -> dict[str, int]:
    """The numbers the include must define, computed from isa.spec independently of isa.verilog."""
    want = {"BB_INSN_BITS": INSN_BITS, "BB_INSN_BYTES": INSN_BYTES, "BB_OPCODE_W": OPCODE_BITS,
            "BB_HEADER_BITS": HEADER_BITS}
    for k, f in enumerate(TOKEN_FIELDS):
        want[f"BB_{f.name.upper()}_BIT"] = OPCODE_BITS + k
    for unit in Unit:
        want[f"BB_UNIT_{unit.name}"] = int(unit)
    for op in OPCODES:
        want[f"BB_OP_{op.name.upper()}"] = op.code
        want[f"BB_{op.name.upper()}_USED_BITS"] = op.used_bits
        for placed in op.layout[len(TOKEN_FIELDS) :]:
            base = f"BB_{op.name.upper()}_{placed.name.upper()}"
            want[f"{base}_LSB"] = placed.offset
            want[f"{base}_W"] = placed.width
            want[f"{base}_MSB"] = placed.offset + placed.width - 1
            want[f"{base}_MIN"] = placed.field.lo
            want[f"{base}_MAX"] = placed.field.max_value
            if placed.field.enum is not None:
                legal = placed.field.allowed or tuple(int(m) for m in placed.field.enum)
                want[f"{base}_ALLOWED"] = sum(1 << v for v in legal)
    return want


# --- staleness -------------------------------------------------------------------------------------
def test_checked_in_files_are_not_stale():
    assert generated.stale(ROOT) == [], "generated files are stale: run `bitbranch isa gen`"


def test_stale_detects_edits_and_regenerate_fixes_them(tmp_path):
    assert sorted(generated.stale(tmp_path)) == sorted(generated.GENERATED)  # missing files are stale
    written = generated.regenerate(tmp_path)
    assert sorted(written) == sorted(tmp_path / rel for rel in generated.GENERATED)
    assert generated.stale(tmp_path) == [] and generated.regenerate(tmp_path) == []
    doc = tmp_path / "docs/isa.md"
    doc.write_text(doc.read_text().replace("| `rows` |", "| `rowz` |", 1))
    assert generated.stale(tmp_path) == [Path("docs/isa.md")]
    assert generated.regenerate(tmp_path) == [doc]
    assert generated.stale(tmp_path) == []


def test_cmd_isa_gen_check_and_write(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    generated.add_arguments_isa_gen(parser)
    check = parser.parse_args(["gen", "--check", "--root", str(tmp_path)])
    assert generated.cmd_isa_gen(check) == 1
    assert "stale: docs/isa.md" in capsys.readouterr().err
    assert generated.cmd_isa_gen(parser.parse_args(["gen", "--root", str(tmp_path)])) == 0
    assert "wrote" in capsys.readouterr().out
    assert generated.cmd_isa_gen(check) == 0


def test_renderers_are_deterministic():
    for render in generated.GENERATED.values():
        assert render() == render()


# --- docs/isa.md content ---------------------------------------------------------------------------
def test_docs_list_every_field_at_its_position():
    text = docgen.render()
    for op in OPCODES:
        assert f"### `{op.name}` — opcode {op.code}" in text
        assert op.semantics in text
        for placed in op.layout:
            msb = placed.offset + placed.width - 1
            bits = f"[{placed.offset}]" if placed.width == 1 else f"[{msb}:{placed.offset}]"
            row = f"| `{placed.name}` | {bits} | {placed.offset} | {placed.width} |"
            assert row in text, f"{op.name}: missing field row {row}"
        assert f"| reserved | [{INSN_BITS - 1}:{op.used_bits}] |" in text or op.used_bits == INSN_BITS


def test_docs_preset_tables_come_from_presets_toml():
    text = docgen.render()
    for hw in load_presets().values():
        cells = [f"{hw.entries(b)} × {hw.entry_bytes(b)} B" for b in BUFFERS]
        assert all(cell in text for cell in cells), hw.name


def test_docs_test_vectors_encode_as_printed():
    text = docgen.render()
    for line, word in re.findall(r"^`([a-z]+ [^`]*|[a-z]+)` = `0x([0-9a-f]+)`$", text, re.MULTILINE):
        (insn,) = assemble(line)
        assert encode(insn) == int(word, 16), line
    assert len(re.findall(r"Decoder test vector", text)) == len(OPCODES)


def test_docs_token_table_matches_neighbours():
    text = docgen.render()
    for k, f in enumerate(TOKEN_FIELDS):
        units = [u.name.lower() for u in Unit if NEIGHBOURS[u][0 if f.name.endswith("prev") else 1] is not None]
        assert f"| `{f.name}` | {OPCODE_BITS + k} | {', '.join(units)} |" in text


# --- rtl/bitbranch_isa.vh --------------------------------------------------------------------------
def test_include_defines_match_spec():
    defines = _defines(verilog.render())
    want = _expected_macros()
    missing = sorted(set(want) - set(defines))
    assert not missing, f"include lacks {missing[:5]}"
    wrong = {name: (defines[name], value) for name, value in want.items() if _verilog_int(defines[name]) != value}
    assert not wrong, f"include disagrees with spec: {dict(list(wrong.items())[:5])}"


def test_include_has_guard_and_header():
    text = verilog.render()
    assert text.startswith("// Generated by `bitbranch isa gen`")
    assert "`ifndef BITBRANCH_ISA_VH\n`define BITBRANCH_ISA_VH\n" in text
    assert text.rstrip().endswith("`endif  // BITBRANCH_ISA_VH")


def _iverilog() -> str:
    path = shutil.which("iverilog")
    if path is None or shutil.which("vvp") is None:
        pytest.fail("iverilog/vvp not found; `make setup` installs Icarus Verilog")
    return path


def test_icarus_reads_include_and_sees_spec_values(tmp_path):
    """Compile a module that includes the header twice (guard) and prints every macro; compare with spec."""
    iverilog = _iverilog()
    want = _expected_macros()
    (tmp_path / "bitbranch_isa.vh").write_text(verilog.render())
    displays = "\n".join(f'    $display("{name}=%0d", `{name});' for name in want)
    (tmp_path / "tb.v").write_text(
        '`include "bitbranch_isa.vh"\n`include "bitbranch_isa.vh"\n'
        "module tb;\n  reg [`BB_INSN_BITS-1:0] insn;\n  initial begin\n"
        "    insn = 0; insn[`BB_OPCODE_W-1:0] = `BB_OP_LOAD;\n"
        "    insn[`BB_LOAD_ROWS_LSB +: `BB_LOAD_ROWS_W] = 16'hffff;\n"
        '    $display("ROWS_SLICE=%0d", insn[`BB_LOAD_ROWS_MSB:`BB_LOAD_ROWS_LSB]);\n'
        '    $display("LOAD_UNIT=%0d", `BB_OP_LOAD_UNIT);\n'
        f"{displays}\n  end\nendmodule\n"
    )
    compiled = tmp_path / "tb.vvp"
    build = subprocess.run(
        [iverilog, "-g2005", "-Wall", "-I", str(tmp_path), "-o", str(compiled), str(tmp_path / "tb.v")],
        capture_output=True, text=True, timeout=60,
    )
    assert build.returncode == 0, build.stderr
    assert "warning" not in build.stderr.lower(), build.stderr
    run = subprocess.run(["vvp", "-n", str(compiled)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    seen = dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)
    assert seen.pop("ROWS_SLICE") == "65535" and seen.pop("LOAD_UNIT") == str(int(Unit.LOAD))
    got = {name: int(value) for name, value in seen.items()}
    assert got == want
    # the same through the preprocessor alone, as pyverilog reads it
    pre = subprocess.run([iverilog, "-E", "-o", "-", str(ROOT / "rtl" / "bitbranch_isa.vh")], capture_output=True,
                         text=True, timeout=60)
    assert pre.returncode == 0 and "`define" not in pre.stdout, pre.stderr


def test_docs_example_program_is_a_valid_program():
    """The manual's example must assemble and pass the program-level checks on the preset it names."""
    from bitbranch.isa.hwconfig import get_config
    from bitbranch.isa.validate import validate_program

    program = assemble(docgen.EXAMPLE_PROGRAM)
    assert program[-1].op == "finish" and len(program) == 7
    validate_program(program, get_config("small"), dram_size=0x3000)
