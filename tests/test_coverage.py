"""`bitbranch coverage` (rtlharness.coverage): reading Verilator's coverage data and reporting it per module."""

from __future__ import annotations

import argparse
import json

import pytest

from bitbranch.rtlharness import coverage
from bitbranch.rtlharness.build import verilator_bin_dir


def dat_line(kind: str, module: str, line: int, what: str, hier: str, count: int) -> str:
    fields = {"f": f"/x/rtl/{module}.v", "l": str(line), "n": "3", "t": kind, "page": f"v_{kind}/{module}__P1",
              "o": what, "h": hier}
    return "C '" + "".join(f"\x01{k}\x02{v}" for k, v in fields.items()) + f"' {count}"


DAT = "\n".join(["# SystemC::Coverage-3",
                 dat_line("line", "bb_fifo", 10, "block", "bb_tb.core.f0", 5),
                 dat_line("line", "bb_fifo", 10, "block", "bb_tb.core.f1", 0),  # same point, another instance
                 dat_line("branch", "bb_fifo", 12, "if", "bb_tb.core.f0", 0),
                 dat_line("branch", "bb_fifo", 12, "else", "bb_tb.core.f0", 2),
                 dat_line("toggle", "bb_fifo", 3, "q[0]:0->1", "bb_tb.core.f0", 1),
                 dat_line("toggle", "bb_tb", 3, "clk", "bb_tb", 9),
                 dat_line("expr", "bb_fifo", 3, "(a&b)", "bb_tb.core.f0", 9)]) + "\n"


def test_parse_pools_instances_and_ignores_other_modules(tmp_path):
    (tmp_path / "a.dat").write_text(DAT)
    (tmp_path / "b.dat").write_text(DAT.replace("' 0", "' 1"))
    one = coverage.per_module(coverage.merge([tmp_path / "a.dat"]), ["bb_fifo"])["bb_fifo"]
    assert (one.hit, one.total) == ({"line": 1, "branch": 1, "toggle": 1}, {"line": 1, "branch": 2, "toggle": 1})
    assert one.missed_lines == {("bb_fifo.v", 12)} and one.percent("branch") == 50.0
    both = coverage.per_module(coverage.merge([tmp_path / "a.dat", tmp_path / "b.dat"]), ["bb_fifo"])["bb_fifo"]
    assert both.hit["branch"] == 2 and not both.missed_lines
    text = coverage.markdown({"bb_fifo": one}, "quick", 1.0)
    assert "| bb_fifo | 100.0 % | 1 / 1 | 50.0 % | 1 / 2 | 100.0 % | 1 / 1 |" in text and "bb_fifo.v:12" in text
    info = coverage.lcov(coverage.merge([tmp_path / "a.dat"]), tmp_path, ["bb_fifo"])
    assert "DA:10,5" in info and "LF:1" in info


@pytest.mark.slow
@pytest.mark.skipif(not (verilator_bin_dir() / "verilator").exists(), reason="verilator not installed")
def test_coverage_of_the_quick_suite(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    coverage.add_arguments_coverage(parser)
    assert coverage.cmd_coverage(parser.parse_args(["--out", str(tmp_path), "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    modules = out["modules"]
    assert set(modules) >= {"bb_core", "bb_compute", "bb_decode"}
    functional = out["functional"]["small"]
    assert all(g["hit"] == g["total"] for g in functional.values()), functional
    assert all(m["line"] is not None and m["line"] > 50 for m in modules.values())
    assert (tmp_path / "coverage.md").is_file() and (tmp_path / "coverage.info").read_text().startswith("SF:")
