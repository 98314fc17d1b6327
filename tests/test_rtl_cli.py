"""`bitbranch verify` and `bitbranch fuzz` (rtlharness.verify / rtlharness.fuzz): reports, JSON, exit codes,
mismatch localisation and waveforms."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.randgraph import GraphMaker
from bitbranch.isa.artifact import save_artifact
from bitbranch.isa.hwconfig import get_config
from bitbranch.rtlharness import bench_core, compare
from bitbranch.rtlharness.build import verilator_bin_dir
from bitbranch.rtlharness.fuzz import add_arguments_fuzz, cmd_fuzz
from bitbranch.rtlharness.verify import add_arguments_verify, cmd_verify

needs_verilator = pytest.mark.skipif(not (verilator_bin_dir() / "verilator").exists(),
                                     reason="verilator not installed")


def verify(*argv: str) -> int:
    p = argparse.ArgumentParser()
    add_arguments_verify(p)
    return cmd_verify(p.parse_args(list(argv)))


def fuzz(*argv: str) -> int:
    p = argparse.ArgumentParser()
    add_arguments_fuzz(p)
    return cmd_fuzz(p.parse_args(list(argv)))


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    g = GraphMaker(21, (10, 10, 3))
    a = g.conv("a", "input", 16, 3, 2, 2, pad=1)
    b = g.conv("b", a, 8, 3, 2, 2, stride=2, pad=1)
    graph, inputs = g.graph([b])
    return save_artifact(lower_graph(graph, get_config("small"), inputs), tmp_path_factory.mktemp("art") / "net")


@needs_verilator
def test_verify_json_reports_a_match(artifact, capsys):
    assert verify(str(artifact), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outputs_match"] and out["cycles_match"] and out["dram_match"] and out["ok"]
    assert out["cycles_rtl"] == out["cycles_sim"] > 0 and out["wall_seconds"] > 0
    assert out["first_divergence"] is None and out["trace_mismatches"] == 0 and out["golden_rtl"] == {"b": True}
    assert out["activity_match"] and out["activity_mismatches"] == 0 and out["first_activity_difference"] is None
    assert out["activity_rtl"] == out["activity_sim"] and out["activity_rtl"]["bitops"] > 0


@needs_verilator
def test_verify_report(artifact, capsys):
    assert verify(str(artifact)) == 0
    text = capsys.readouterr().out
    assert "outputs: all match" in text and "cycles: rtl" in text and "verify: PASS" in text
    assert "activity: 18 counts equal in total and for all" in text


@needs_verilator
def test_mismatch_names_the_first_diverging_instruction(artifact, capsys, monkeypatch):
    """A fault injected into the RTL's results (one instruction ends a cycle late) is reported at that
    instruction, with exit status 1."""
    real = bench_core.run_rtl_batch
    picked = []

    def faulty(*args, **kwargs):
        results = real(*args, **kwargs)
        r = results[0]
        k = next(t.index for t in r.trace if t.index > 5 and t.grant < 0)
        picked.append(k)
        r.trace = [t if t.index != k else bench_core.TraceLine(t.index, t.unit, t.dispatch, t.start, t.grant,
                                                                t.end + 1, t.free + 1, t.activity)
                   for t in r.trace]
        r.cycles += 1
        return results

    monkeypatch.setattr(compare, "run_rtl_batch", faulty)
    assert verify(str(artifact), "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["cycles_match"] and out["outputs_match"] and out["activity_match"]
    first = out["first_divergence"]
    assert first["index"] == picked[0] and first["fields"]["end"][1] == first["fields"]["end"][0] + 1
    assert verify(str(artifact)) == 1
    assert f"first timing difference: instruction {first['index']}" in capsys.readouterr().out


@needs_verilator
def test_verify_names_the_instruction_whose_activity_differs(artifact, capsys, monkeypatch):
    """One WGT read bit more in the RTL's report of one BGEMM (and in its total): exit 1, the instruction, the
    count and both values named; timing and data still match."""
    from bitbranch.simulator.activity import ACTIONS

    real = bench_core.run_rtl_batch
    picked = []
    w = ACTIONS.index("wgt_read")

    def faulty(*args, **kwargs):
        results = real(*args, **kwargs)
        r = results[0]
        t = next(t for t in r.trace if t.activity[w] > 0)
        picked.append((t.index, t.activity[w]))
        act = list(t.activity)
        act[w] += 1
        r.trace = [u if u.index != t.index else bench_core.TraceLine(*list(vars(u).values())[:7], tuple(act))
                   for u in r.trace]
        r.activity = {**r.activity, "wgt_read": r.activity["wgt_read"] + 1}
        return results

    monkeypatch.setattr(compare, "run_rtl_batch", faulty)
    assert verify(str(artifact), "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert out["cycles_match"] and out["outputs_match"] and out["trace_mismatches"] == 0
    assert not out["activity_match"] and out["activity_mismatches"] == 1
    k, n = picked[0]
    assert out["first_activity_difference"] == {"index": k, "op": "bgemm", "fields": {"wgt_read": [n, n + 1]}}
    assert verify(str(artifact)) == 1
    text = capsys.readouterr().out
    assert f"first activity difference (1 instructions differ): instruction {k} (bgemm): wgt_read: sim {n:,} " \
           f"rtl {n + 1:,}" in text
    assert "activity: MISMATCH (1 instructions differ, totals differ)" in text


@needs_verilator
def test_verify_names_the_store_whose_data_differs(artifact, capsys, monkeypatch):
    """A flipped DRAM byte in the RTL's result is blamed on the store that wrote it: instruction, buffer
    entry and byte, both values."""
    from bitbranch.isa.artifact import load_artifact
    from bitbranch.rtlharness import compare

    art = load_artifact(artifact)
    real = compare.run_rtl_batch
    stores = [k for k, insn in enumerate(art.program) if insn.op == "store"]
    target = art.program[stores[-1]].as_dict()
    addr = target["dram"] + 1  # the second byte of the last store's first row

    def faulty(*args, **kwargs):
        results = real(*args, **kwargs)
        dram = bytearray(results[0].dram)
        dram[addr] ^= 0x40
        results[0].dram = bytes(dram)
        return results

    monkeypatch.setattr(compare, "run_rtl_batch", faulty)
    assert verify(str(artifact), "--json") == 1
    out = json.loads(capsys.readouterr().out)
    diff = out["first_data_difference"]
    assert diff["index"] == stores[-1] and diff["dram_addr"] == addr and diff["bytes_differing"] == 1
    assert diff["entry"] == target["sram"] and diff["byte"] == 1 and diff["sim"] ^ diff["rtl"] == 0x40
    assert "first data difference: instruction" in out["explanation"]


@needs_verilator
def test_verify_writes_waves(artifact, tmp_path, capsys):
    dest = tmp_path / "run.vcd"
    assert verify(str(artifact), "--waves", str(dest)) == 0
    assert dest.is_file() and dest.read_text(errors="replace").startswith("$")  # a VCD header
    assert str(dest) in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_verify_on_icarus(artifact, capsys):
    assert verify(str(artifact), "--sim", "icarus", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["sim"] == "icarus"


def test_verify_errors(tmp_path, artifact, capsys):
    assert verify(str(tmp_path / "missing")) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert verify(str(artifact), "--hw", "edge") == 2
    assert "compiled for 'small'" in capsys.readouterr().err
    assert verify(str(artifact), "--max-cycles", "0") == 2


@needs_verilator
def test_fuzz_json_and_regression_file(tmp_path, capsys):
    reg = tmp_path / "reg.json"
    assert fuzz("--programs", "12", "--seed", "4242", "--json", "--regressions", str(reg), "--batch", "5") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["programs"] == 12 and out["mismatches"] == 0 and not reg.exists()
    assert fuzz("--programs", "0") == 2
    assert "error: --programs=0" in capsys.readouterr().err
