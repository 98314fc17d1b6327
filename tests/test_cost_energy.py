"""Energy table, energy of runs, area model and their place in `bitbranch run` (docs/cost.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bitbranch.isa.area import chip_area, nand2_equivalents, report_area
from bitbranch.isa.asm import assemble
from bitbranch.isa.banks import BankGeometry, bank_geometry
from bitbranch.isa.energy import ENERGY_FILE, EnergyTableError, load_energy_table
from bitbranch.isa.hwconfig import get_config
from bitbranch.simulator import run
from bitbranch.simulator.energy import BREAKDOWN_KEYS, ActionPrices, summarize

SMALL = get_config("small")
EDGE = get_config("edge")
TINY = f"{Path(__file__).with_name('workload_fixtures.py')}:tiny_cnn"


# --- the table ----------------------------------------------------------------------------------------


def test_defaults_are_the_cited_figures():
    t = load_energy_table()
    assert t.node_nm == 45.0
    # Horowitz ISSCC 2014: SRAM 64-bit read 10 / 20 / 100 pJ at 8 kB / 32 kB / 1 MB, DRAM 1.3 nJ per 64 bits
    assert t.sram_sizes_bytes == (8192, 32768, 1048576) and t.sram_read64_pj == (10.0, 20.0, 100.0)
    assert t.dram_bit_pj == pytest.approx(1300 / 64)
    assert t.accumulate_pj == 0.1  # 32-bit add
    assert t.bitop_pj == pytest.approx(0.03 / 8 * (1 + 12 / 28), rel=1e-3)  # derivation in energy.toml
    text = ENERGY_FILE.read_text()
    assert "Horowitz" in text and "derived" in text


def test_sram_interpolation_is_log_log_and_hits_the_cited_points():
    t = load_energy_table()
    assert t.sram_read64(8192) == pytest.approx(10.0)
    assert t.sram_read64(32768) == pytest.approx(20.0)
    assert t.sram_read64(1 << 20) == pytest.approx(100.0)
    assert t.sram_read64(16384) == pytest.approx(10 * math.sqrt(2))  # geometric midpoint
    assert t.sram_read64(2048) == pytest.approx(5.0)  # first segment's slope (E ~ sqrt(size)) extended
    # a 1024-bit-wide bank is 16 ganged 64-bit macros: energy per bit from the macro's size
    wide = BankGeometry(1, 1024, 1024)  # 128 kB bank -> 8 kB macros
    assert t.sram_read_bit_pj(wide) == pytest.approx(10.0 / 64)


def test_override_replaces_only_named_fields(tmp_path):
    f = tmp_path / "e.toml"
    f.write_text("[dram]\nbit_pj = 8.0\n")
    t = load_energy_table(f)
    assert t.dram_bit_pj == 8.0 and t.bitop_pj == load_energy_table().bitop_pj
    assert str(f) in t.source


@pytest.mark.parametrize(("text", "needle"), [
    ("[dram]\nbit_pj = 'x'\n", "field 'dram.bit_pj'='x' must be a number"),
    ("[dram]\nbit_pj = -1.0\n", "field 'dram.bit_pj'=-1.0 must be >= 0"),
    ("[dram]\nbits_pj = 1.0\n", "unknown field 'dram.bits_pj'"),
    ("[sdram]\nbit_pj = 1.0\n", "unknown section [sdram]"),
    ("[sram]\nread64_pj = [1.0, 2.0]\n", "'sram.read64_pj' has 2"),
    ("[sram]\nsizes_bytes = [10, 5, 20]\n", "strictly increasing"),
    ("node_nm = 0\n", "field 'node_nm'=0 must be > 0"),
    ("[dram\n", "not valid TOML"),
])
def test_bad_override_names_file_and_field(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(EnergyTableError) as exc:
        load_energy_table(f)
    assert str(f) in str(exc.value) and needle in str(exc.value)


def test_missing_override_file(tmp_path):
    with pytest.raises(EnergyTableError, match="not found"):
        load_energy_table(tmp_path / "nope.toml")


def test_node_scaling_scales_logic_and_sram_not_dram():
    t = load_energy_table()
    s = t.at_node(22.5)
    assert s.bitop_pj == pytest.approx(t.bitop_pj / 2) and s.sram_read64_pj[0] == pytest.approx(5.0)
    assert s.dram_bit_pj == t.dram_bit_pj


# --- energy of runs -------------------------------------------------------------------------------------


def test_energy_of_a_tiny_program_by_hand():
    prog = "load buf=inp rows=2 len=3 dstride=24\nstore buf=acc rows=1 len=2 dstride=32\nfinish"
    r = run((assemble(prog), bytes(256), SMALL))
    t = load_energy_table()
    geo = bank_geometry(SMALL)
    s = summarize(r.activity.total(), SMALL, t, r.cycles, SMALL.clock_mhz, useful_bitops=0)
    dram = (6 * 64 + 2 * 128) * t.dram_bit_pj
    inp = 2 * 6 * 64 * t.sram_write_bit_pj(geo["inp"])  # both INP copies (R = 2) are written
    acc = 4 * 128 * t.sram_read_bit_pj(geo["acc"])  # 4 beats of 8 bytes, each reading a whole 16-byte entry
    fetch = 3 * 256 * t.sram_read_bit_pj(geo["imem"])
    assert s.breakdown_uj["dram"] == pytest.approx(dram * 1e-6)
    assert s.breakdown_uj["inp"] == pytest.approx(inp * 1e-6)
    assert s.breakdown_uj["acc"] == pytest.approx(acc * 1e-6)
    assert s.breakdown_uj["fetch"] == pytest.approx(fetch * 1e-6)
    assert s.energy_uj == pytest.approx((dram + inp + acc + fetch) * 1e-6)
    assert s.power_w == pytest.approx(s.energy_uj * 1e-6 / (r.cycles / (SMALL.clock_mhz * 1e6)))


def test_default_leakage_is_the_cited_45nm_figures():
    """isa/energy.toml [static]: NanGate FreePDK45 NAND2_X1 (17.393360 nW / 0.798 um2, typical 1.1 V 25 C) and
    the CACTI-generated fakeram45_512x64 (823237 nW / 17301.438 um2), 1 nW/um2 = 1 mW/mm2."""
    t = load_energy_table()
    assert t.leakage_logic_mw_per_mm2 == pytest.approx(17.393360 / 0.798, rel=1e-4)
    assert t.leakage_sram_mw_per_mm2 == pytest.approx(823237.0 / 17301.438, rel=1e-4)
    text = ENERGY_FILE.read_text()
    assert "NAND2_X1" in text and "17.393360" in text and "fakeram45_512x64" in text and "823237" in text
    # one NAND2-equivalent of the area model leaks one NAND2_X1's figure
    assert t.leakage_mw(0.798e-6, 0.0) * 1e6 == pytest.approx(17.393360, rel=1e-4)


def test_default_leakage_in_a_run_uses_logic_and_sram_area_and_sums():
    prog = "load buf=inp rows=2 len=3 dstride=24\nfinish"
    r = run((assemble(prog), bytes(256), SMALL))
    t, a = load_energy_table(), chip_area(SMALL)
    assert 0 < a.sram_total_mm2 < a.total_mm2 and a.logic_total_mm2 == pytest.approx(a.total_mm2 - a.sram_total_mm2)
    s = summarize(r.activity.total(), SMALL, t, r.cycles, SMALL.clock_mhz, useful_bitops=0,
                  area_mm2=a.total_mm2, sram_mm2=a.sram_total_mm2)
    seconds = r.cycles / (SMALL.clock_mhz * 1e6)
    mw = t.leakage_logic_mw_per_mm2 * a.logic_total_mm2 + t.leakage_sram_mw_per_mm2 * a.sram_total_mm2
    assert s.breakdown_uj["leakage"] == pytest.approx(mw * 1e-3 * seconds * 1e6) and s.breakdown_uj["leakage"] > 0
    assert sum(s.breakdown_uj.values()) == pytest.approx(s.energy_uj, rel=1e-12)
    dynamic = summarize(r.activity.total(), SMALL, t, r.cycles, SMALL.clock_mhz, useful_bitops=0)
    assert s.energy_uj == pytest.approx(dynamic.energy_uj + s.breakdown_uj["leakage"])


def test_leakage_scales_with_area_and_time():
    t = load_energy_table()

    def leak(cycles, logic, sram):
        return summarize({"fetches": 0}, SMALL, t, cycles=cycles, clock_mhz=100.0, useful_bitops=0,
                         area_mm2=logic + sram, sram_mm2=sram).breakdown_uj["leakage"]

    base = leak(1000, 1.0, 1.0)
    # 1 mm2 of each for 10 us: (21.796 + 47.582) mW x 10 us = 0.69378 uJ
    assert base == pytest.approx((t.leakage_logic_mw_per_mm2 + t.leakage_sram_mw_per_mm2) * 1e-3 * 10e-6 * 1e6)
    assert leak(3000, 1.0, 1.0) == pytest.approx(3 * base)  # time
    assert leak(1000, 2.0, 2.0) == pytest.approx(2 * base)  # area
    # the split matters: SRAM leaks more per mm2 than logic, so moving area from logic to SRAM raises it
    assert leak(1000, 0.0, 2.0) == pytest.approx(2 * t.leakage_sram_mw_per_mm2 * 1e-2)
    assert leak(1000, 2.0, 0.0) == pytest.approx(2 * t.leakage_logic_mw_per_mm2 * 1e-2)
    assert leak(1000, 0.0, 2.0) > base > leak(1000, 2.0, 0.0)
    with pytest.raises(ValueError, match="sram_mm2"):
        summarize({"fetches": 0}, SMALL, t, cycles=1, clock_mhz=1.0, useful_bitops=0, area_mm2=1.0, sram_mm2=2.0)


def test_leakage_override_one_figure_replaces_both(tmp_path):
    f = tmp_path / "leak.toml"
    f.write_text("[static]\nmw_per_mm2 = 10.0\n")  # the pre-split key: one figure for the whole chip
    t = load_energy_table(f)
    assert t.leakage_logic_mw_per_mm2 == t.leakage_sram_mw_per_mm2 == 10.0
    for sram in (0.0, 0.5, 2.0):
        s = summarize({"fetches": 0}, SMALL, t, cycles=1000, clock_mhz=100.0, useful_bitops=0, area_mm2=2.0,
                      sram_mm2=sram)
        assert s.breakdown_uj["leakage"] == pytest.approx(10e-3 * 2.0 * 1000 / 100e6 * 1e6)
    f.write_text("[static]\nsram_mw_per_mm2 = 0.0\n")  # only SRAM off; logic keeps the default
    t = load_energy_table(f)
    assert t.leakage_sram_mw_per_mm2 == 0.0
    assert t.leakage_logic_mw_per_mm2 == load_energy_table().leakage_logic_mw_per_mm2
    f.write_text("[static]\nmw_per_mm2 = 0.0\n")
    s = summarize({"fetches": 0}, SMALL, load_energy_table(f), cycles=1000, clock_mhz=100.0, useful_bitops=0,
                  area_mm2=2.0, sram_mm2=1.0)
    assert s.breakdown_uj["leakage"] == 0.0
    f.write_text("[static]\nmw_per_mm2 = 1.0\nlogic_mw_per_mm2 = 2.0\n")
    with pytest.raises(EnergyTableError) as exc:
        load_energy_table(f)
    assert str(f) in str(exc.value) and "static.mw_per_mm2" in str(exc.value)
    f.write_text("[static]\nsram_mw_per_mm2 = -1.0\n")
    with pytest.raises(EnergyTableError, match="'static.sram_mw_per_mm2'=-1.0 must be >= 0"):
        load_energy_table(f)


def test_node_scaling_leaves_leakage_alone():
    t = load_energy_table()
    s = t.at_node(22.5)
    assert (s.leakage_logic_mw_per_mm2, s.leakage_sram_mw_per_mm2) == (t.leakage_logic_mw_per_mm2,
                                                                      t.leakage_sram_mw_per_mm2)


def test_prices_depend_on_bank_size():
    t = load_energy_table()
    small, edge = ActionPrices.build(SMALL, t), ActionPrices.build(EDGE, t)
    assert set(small.per_action) >= {"inp_read", "wgt_read", "dram_read", "bitops"}
    assert small.per_action["inp_read"] < edge.per_action["inp_read"]  # 1 KiB vs 32 KiB banks


@pytest.mark.parametrize(("preset", "expected"), [
    # docs/rtl.md "Memory system": (copies, banks per copy, depth, width) of the RTL's memory map
    ("edge", {"inp": (16, 8, 4096, 64), "wgt": (1, 8, 512, 1024), "acc": (1, 64, 64, 512),
              "out": (1, 128, 128, 64), "const": (1, 1, 256, 2048), "imem": (1, 1, 65536, 256)}),
    ("small", {"inp": (2, 8, 128, 64), "wgt": (1, 8, 128, 256), "acc": (1, 8, 128, 128),
               "out": (1, 16, 32, 64), "const": (1, 1, 64, 512), "imem": (1, 1, 65536, 256)}),
])
def test_bank_geometry_is_the_rtl_memory_map(preset, expected):
    geo = bank_geometry(get_config(preset))
    assert {n: (g.copies, g.banks, g.entries, g.width_bits) for n, g in geo.items()} == expected
    # every bank at least holds its share; INP is R copies of the whole buffer (tests/test_synth.py checks the
    # synthesized core's memories against the same geometry)
    hw = get_config(preset)
    for name, g in geo.items():
        if name != "imem":
            assert g.total_bits == g.copies * hw.entries(name) * hw.entry_bytes(name) * 8
    assert geo["wgt"].column_bits == 64 and geo["wgt"].columns == geo["wgt"].width_bits // 64
    assert geo["inp"].macros == geo["inp"].copies * geo["inp"].banks  # 64-bit banks: one macro each


# --- area -----------------------------------------------------------------------------------------------


def test_area_grows_with_the_array_and_has_every_module():
    a, b = chip_area(EDGE), chip_area(get_config("cloud"))
    assert {"pe_array", "requant_pool", "fetch_decode", "dma", "sram_inp", "sram_wgt", "sram_acc", "sram_out",
            "sram_const", "sram_imem"} == set(a.modules_mm2)
    assert a.total_mm2 == pytest.approx(sum(a.modules_mm2.values()))
    ratio = b.modules_mm2["pe_array"] / a.modules_mm2["pe_array"]
    assert 4 * 1.8 < ratio < 8  # 4x PEs, 2x branches per PE (the accumulator register is per PE, not per branch)
    # SRAM bits: 6T cell 0.346 µm² / efficiency 0.7 is a floor for every buffer
    for name, g in bank_geometry(EDGE).items():
        assert a.modules_mm2[f"sram_{name}"] > g.total_bits * 0.346e-6 / 0.7
    # INP is R = 16 copies of 256 KiB (docs/rtl.md): 4 MiB of bit cells, the largest SRAM of the chip
    assert a.modules_mm2["sram_inp"] > 16 * 256 * 1024 * 8 * 0.346e-6 / 0.7
    assert max(a.sram_mm2, key=a.sram_mm2.get) == "inp"


def test_nand2_equivalents_of_yosys_cells():
    assert nand2_equivalents({"$_NAND_": 4, "$_XOR_": 2, "$_DFF_P_": 1}) == pytest.approx(4 + 6 + 6)
    with pytest.raises(ValueError, match="no NAND2 size"):
        nand2_equivalents({"$_WEIRD_": 1})


# --- in `bitbranch run` ---------------------------------------------------------------------------------


def test_bitbranch_run_reports_energy_and_area(tmp_path, capsys):
    from bitbranch.cli import main

    out = tmp_path / "r"
    assert main(["run", TINY, "--bits", "W2A2", "--hw", "small", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    t = data["totals"]
    assert t["energy_uj"] > 0 and set(t["energy_breakdown_uj"]) == set(BREAKDOWN_KEYS)
    assert sum(t["energy_breakdown_uj"].values()) == pytest.approx(t["energy_uj"], rel=1e-12)
    seconds = t["cycles"] / (data["clock_mhz"] * 1e6)
    assert t["power_w"] == pytest.approx(t["energy_uj"] * 1e-6 / seconds)
    assert t["tops_per_w"] == pytest.approx(2 * t["bitops"] / (t["energy_uj"] * 1e-6) / 1e12)
    assert t["mac_tops_per_w"] == pytest.approx(2 * t["macs"] / (t["energy_uj"] * 1e-6) / 1e12)
    # small's logic is stored synthesized (isa/synth_area.json): the report uses it and says so
    assert data["area_mm2"] == pytest.approx(report_area(SMALL).total_mm2) != pytest.approx(chip_area(SMALL).total_mm2)
    assert data["area"]["logic_source"].startswith("synthesized per module")
    a, table = report_area(SMALL), load_energy_table()  # leakage: the default densities x logic/SRAM mm² x run time
    assert t["energy_breakdown_uj"]["leakage"] > 0
    assert t["energy_breakdown_uj"]["leakage"] == pytest.approx(
        table.leakage_mw(a.logic_total_mm2, a.sram_total_mm2) * 1e-3 * seconds * 1e6)
    assert t["fps_per_mm2"] == pytest.approx(t["fps"] / data["area_mm2"])
    assert t["fps_per_w"] == pytest.approx(t["fps"] / t["power_w"])
    layer_sum = sum(layer["energy_uj"] for layer in data["layers"])
    assert 0 < layer_sum <= t["energy_uj"] * (1 + 1e-12)
    assert "energy.png" in {p.name for p in out.iterdir()}
    assert "energy_uj" in (out / "layers.csv").read_text().splitlines()[0]

    f = tmp_path / "e.toml"
    f.write_text("[dram]\nbit_pj = 0.0\n")
    assert main(["run", TINY, "--bits", "W2A2", "--hw", "small", "--out", str(out), "--json", "--no-plots",
                 "--energy", str(f)]) == 0
    t0 = json.loads(capsys.readouterr().out)["totals"]
    assert t0["energy_breakdown_uj"]["dram"] == 0.0
    assert t0["energy_uj"] == pytest.approx(t["energy_uj"] - t["energy_breakdown_uj"]["dram"])

    f.write_text("[dram]\nbit_pj = 'lots'\n")
    assert main(["run", TINY, "--hw", "small", "--out", str(out), "--energy", str(f)]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "dram.bit_pj" in err


# --- bench/cost.py arithmetic (no Yosys: synthesized gate counts given) ---------------------------------


def test_bench_cost_per_mac_rows():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_cost", Path(__file__).parents[1] / "bench" / "cost.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = load_energy_table()
    rows = {r["precision"]: r for r in mod.per_mac_rows(EDGE, bb_nand2=3200.0, i8_nand2=8000.0, table=t)}
    # edge: W=64, P=2 -> 128 bit-ops per PE cycle; int8 PE: N=8 MACs per cycle
    assert rows["W2A2"]["macs_per_pe_cycle"] == 32 and rows["W8A8"]["macs_per_pe_cycle"] == 2
    assert rows["W2A2"]["nand2_per_mac"] == pytest.approx(100.0)
    assert rows["W2A2"]["area_vs_int8"] == pytest.approx(100.0 / 1000.0)
    assert rows["W2A2"]["pj_per_mac"] == pytest.approx(4 * (t.bitop_pj + t.accumulate_pj / 64))
    assert rows["W2A2"]["energy_vs_int8"] == pytest.approx(rows["W2A2"]["pj_per_mac"] / 0.3)
    assert rows["WTA2 (ternary)"]["pj_per_mac"] == rows["W2A2"]["pj_per_mac"]  # ternary = 2 weight planes
    doc = (Path(__file__).parents[1] / "docs" / "cost.md").read_text()
    assert mod.BEGIN in doc and mod.END in doc
