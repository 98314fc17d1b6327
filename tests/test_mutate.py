"""`bitbranch mutate` (rtlharness.mutate): where mutation operators apply, and that real mutants of the RTL are
built and killed by the harness."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from bitbranch.rtl import rtl_dir
from bitbranch.rtlharness import mutate

SNIPPET = """
module m #(parameter W = 8) (input wire clk, input wire [W-1:0] a, output reg [3:0] q, output wire z);
    // if (a < 3) q <= 1;   a comment: no mutation here
    assign z = (a >= 4'd2) && a[1];
    always @(posedge clk) begin
        if (a < 3) q <= q + 1;
        else q <= $signed(a[3:0]);
    end
endmodule
"""


def points(text: str = SNIPPET) -> list[mutate.Mutation]:
    return mutate.mutation_points("m.v", text)


def test_operators_find_their_places_and_nothing_else():
    found = {(m.operator, m.original, m.replacement) for m in points()}
    assert ("relational", "<", "<=") in found and ("relational", ">=", ">") in found
    assert ("logical", "&&", "||") in found and ("arithmetic", "+", "-") in found
    assert ("constant", "4'd2", "4'd3") in found and ("constant", "4'd2", "4'd1") in found
    assert ("condition", "(a < 3)", "(!(a < 3))") in found and ("signed", "$signed", "") in found
    assert ("stuck", "(a >= 4'd2) && a[1]", "0") in found and ("slice", "3", "4") in found
    # the non-blocking assignments, the comment, the parameter and the declaration ranges are left alone
    assert all(m.original != "<=" for m in points())
    assert all(m.line != 3 for m in points())
    assert not [m for m in points() if m.line == 2]


def test_a_memory_model_switch_mutates_the_banks_not_the_model():
    """`ifdef BB_ACC_SHARED (a Verilator memory model) ... `else (the banks Icarus runs) ... `endif"""
    text = ("module m (input wire a, b, output wire y, z);\n`ifdef BB_ACC_SHARED\n    assign y = a && b;\n`else\n"
            "    assign y = a || b;\n`ifndef SYNTHESIS\n    assign z = a && b;\n`endif\n`endif\nendmodule\n")
    lines = {m.line for m in mutate.mutation_points("m.v", text)}
    assert 5 in lines                       # the banks' form
    assert not lines & {3, 7}               # neither the model nor simulation-only code


def test_a_mutation_applies_exactly_once():
    m = next(m for m in points() if m.operator == "arithmetic")
    text = m.apply(SNIPPET)
    assert "q <= q - 1;" in text and text.replace("q - 1", "q + 1") == SNIPPET
    with pytest.raises(AssertionError):
        m.apply(SNIPPET.replace("q + 1", "q * 1"))


def test_every_operator_has_points_in_the_core_and_draw_is_seeded():
    ms = mutate.all_mutations(rtl_dir())
    assert {m.operator for m in ms} == set(mutate.OPERATORS)
    first = [m.describe() for m, _ in zip(mutate.draw(ms, 3), range(20), strict=False)]
    again = [m.describe() for m, _ in zip(mutate.draw(ms, 3), range(20), strict=False)]
    assert first == again and len(set(first)) == 20
    assert len({m.split(": ")[1] for m in first}) >= 6  # round-robin over operators
    for m in ms[:200]:  # every point really is where it says
        assert (rtl_dir() / m.file).read_text()[m.start:m.start + len(m.original)] == m.original


def test_file_restricts_the_draw_to_named_core_files():
    ms = mutate.all_mutations(rtl_dir())
    mine = mutate.all_mutations(rtl_dir(), ["bb_outscatter.v", "bb_fifo.v"])
    assert mine == [m for m in ms if m.file in ("bb_outscatter.v", "bb_fifo.v")] and mine
    with pytest.raises(ValueError, match="--file bb_tb.v: not a file of the synthesizable core"):
        mutate.all_mutations(rtl_dir(), ["bb_tb.v"])


def test_only_names_single_mutants():
    ms = mutate.all_mutations(rtl_dir())
    one = next(m for m in ms if m.file == "bb_fetch.v" and m.operator == "stuck")
    assert mutate.select(ms, [one.describe()]) == [one]
    assert mutate.select(ms, [one.describe().rsplit(" @", 1)[0]]) == [one]  # the offset may be left out ...
    twins = [m for m in ms if m.describe().startswith("bb_fetch.v:46: constant: '1' -> '2'")]
    assert len(twins) == 2  # ... but not where two identical points share a line
    with pytest.raises(ValueError, match="names 2 mutations"):
        mutate.select(ms, ["bb_fetch.v:46: constant: '1' -> '2'"])
    with pytest.raises(ValueError, match="names 0 mutations"):
        mutate.select(ms, ["bb_fetch.v:1: constant: '1' -> '2'"])
    # the instruction-memory fill (about 65,536 cycles) is in the full suite only
    assert "imem end:small" in [c.name for c in mutate.suite("full")]
    assert all(not c.name.startswith("imem") for c in mutate.suite("quick"))
    # --check: one check of a suite, by name; a name the suite lacks is refused, not silently skipped
    assert [c.name for c in mutate.suite("full", ["imem end:small"])] == ["imem end:small"]
    with pytest.raises(ValueError, match="no check imem end:small"):
        mutate.suite("quick", ["imem end:small"])


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_campaign_builds_and_kills_real_mutants(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    mutate.add_arguments_mutate(parser)
    log = tmp_path / "mutants.jsonl"
    assert mutate.cmd_mutate(parser.parse_args(["--mutants", "2", "--seed", "1", "--json", "--log", str(log)])) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mutants"] == 2 and out["killed"] + out["survived"] + out["equivalent"] == 2
    assert out["killed"] >= 1 and out["score"] is not None and out["median_kill_seconds"] > 0
    assert sum(out["killed_by"].values()) == out["killed"]
    # cmd_mutate returned 0: every check passed on the unmutated core first (a check that failed there would
    # "kill" every mutant; the campaign refuses to start then, exit status 2)
    assert out["baseline_seconds"] > 0 and out["watchdog_seconds"] >= 3 * out["baseline_seconds"] - 0.5  # both rounded
    # the log holds every outcome under this RTL's key (a resumed campaign reuses them), and only under it
    key = mutate._campaign_key(rtl_dir(), "quick", "icarus", "small")
    logged = mutate._read_log(log, key)
    assert len(logged) == 2 + out["unbuildable_replaced"] and out["reused"] == 0
    assert sorted(o.status for o in logged.values() if o.status != "unbuildable") == sorted(
        ["killed"] * out["killed"] + ["survived"] * out["survived"] + ["equivalent"] * out["equivalent"])
    assert mutate._read_log(log, mutate._campaign_key(rtl_dir(), "full", "icarus", "small")) == {}
    log.write_text(log.read_text() + "not json\n")
    with pytest.raises(ValueError, match=r"mutants.jsonl:\d+: not a mutation log line"):
        mutate._read_log(log, key)


def test_watchdog_kills_a_mutant_that_runs_past_its_limit(tmp_path):
    m = next(iter(mutate.draw(mutate.all_mutations(rtl_dir()), 0)))
    o = mutate.run_mutant_isolated(m, "quick", "icarus", tmp_path, timeout=0.5)
    assert (o.status, o.check) == ("killed", "watchdog") and "0 s" in o.detail


def test_argued_equivalents_name_mutants_of_todays_rtl_and_count_apart():
    """Every hand-argued equivalent names a mutation point of today's RTL (an edit of its file makes the entry
    stale: this fails until it is re-read), and the summary keeps the tool's score beside the one without them."""
    argued = mutate.argued_equivalent()
    assert argued and all(len(reason) > 40 for reason in argued.values())
    points = {m.describe(): m for m in mutate.all_mutations(rtl_dir())}
    assert sorted(set(argued) - set(points)) == []
    m1, m2, m3 = (points[d] for d in sorted(argued)[:3])
    outcomes = [mutate.Outcome(m1, "killed", "directed:small", "x", 2.0), mutate.Outcome(m2, "survived"),
                mutate.Outcome(m3, "survived"), mutate.Outcome(m3, "unbuildable")]
    s = mutate.summary(outcomes, 1.0, {m2.describe(): "because"})
    assert (s["mutants"], s["killed"], s["survived"], s["argued_equivalent"]) == (3, 1, 2, 1)
    assert s["score"] == pytest.approx(1 / 3) and s["score_argued"] == pytest.approx(1 / 2)
    assert [o["argued"] for o in s["survivors"]] == ["because", None]


def test_bad_argued_file_is_named(tmp_path):
    bad = tmp_path / "eq.toml"
    bad.write_text("[[equivalent]]\nmutant = 'x'\n")
    with pytest.raises(ValueError, match="eq.toml: not a list of"):
        mutate.argued_equivalent(bad)


def test_full_campaign_reuses_the_quick_campaign_of_the_same_mutants(tmp_path):
    """A quick kill is the full suite's kill (the full suite runs the quick checks first, in order, and checks
    only gain programs); a quick survivor runs the whole full suite; and only when the log covers every mutant
    the campaign counts."""
    rtl = rtl_dir()
    log = tmp_path / "log.jsonl"
    drawn = list(zip(range(4), mutate.draw(mutate.all_mutations(rtl), 5), strict=False))
    quick_key = mutate._campaign_key(rtl, "quick", "icarus", "small")
    for _, m in drawn[:3]:
        mutate._append_log(log, quick_key, mutate.Outcome(m, "killed", "directed:small", "differs", 3.0))
    mutants = [m for _, m in drawn]
    quick = mutate._quick_reuse(rtl, "full", "icarus", "small", log, None, 3, iter(mutants))
    assert len(quick) == 3
    # a fourth counted mutant has no quick outcome: no reuse (the whole full suite runs)
    assert mutate._quick_reuse(rtl, "full", "icarus", "small", log, None, 4, iter(mutants)) == {}
    assert mutate._quick_reuse(rtl, "quick", "icarus", "small", log, None, 3, iter(mutants)) == {}
    o = mutate._after_quick(quick[mutants[0].describe()], "full", "icarus", tmp_path, 10.0)
    assert (o.status, o.check, o.seconds) == ("killed", "directed:small", 3.0) and "quick suite" in o.detail


def test_verification_doc_lists_every_argued_equivalent():
    """docs/verification.md carries bench/mutants.py's table of the argued equivalents as the file has them."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_mutants", root / "bench" / "mutants.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    doc = (root / "docs" / "verification.md").read_text()
    assert bench.BEGIN + "\n" + bench.markdown() + "\n" + bench.END in doc, "run .venv/bin/python bench/mutants.py"
