"""`bitbranch simulate`: summary, --json, --trace, golden verdicts and error reporting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sim_reference import run_reference

from bitbranch.cli import main
from bitbranch.isa.artifact import Artifact, TensorSpec, save_artifact
from bitbranch.isa.hwconfig import get_config
from bitbranch.simulator.randprog import random_program

SMALL = get_config("small")


def make_artifact(tmp_path, golden: bool = True, corrupt: bool = False):
    program, dram = random_program(SMALL, np.random.default_rng(11), 40)
    want = np.frombuffer(bytes(run_reference(program, dram, SMALL).dram), dtype=np.uint8).copy()
    if corrupt:
        want[want.size // 2] ^= 1
    spec = TensorSpec("image", 0, "raw", (len(dram),))
    art = Artifact(SMALL, program, dram, {"image": spec}, inputs=[], outputs=["image"],
                   golden={"image": want} if golden else {})
    return save_artifact(art, tmp_path / "art"), len(program)


def test_summary(tmp_path, capsys):
    path, n = make_artifact(tmp_path)
    assert main(["simulate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hardware: small" in out
    assert f"instructions: {n}" in out
    assert "ms at 100 MHz" in out and "array utilization" in out
    for unit in ("load", "compute", "store"):
        assert f"\n{unit} " in out
    assert "golden: all outputs match (image: ok)" in out


def test_json(tmp_path, capsys):
    path, n = make_artifact(tmp_path)
    assert main(["simulate", str(path), "--json", "--datapath", "bitwise"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["instructions"] == n
    assert report["cycles"] > 0 and 0 <= report["utilization"] <= 1
    assert report["dram_bytes"]["read"] > 0 and report["dram_bytes"]["written"] > 0
    assert report["outputs_match_golden"] == {"image": True}
    assert report["datapath"] == "bitwise" and report["wall_seconds"] > 0
    e = report["energy"]  # docs/cost.md
    assert e["energy_uj"] > 0 and sum(e["energy_breakdown_uj"].values()) == pytest.approx(e["energy_uj"])
    assert report["activity"]["fetches"] == n and report["area_mm2"] > 0


def test_bad_energy_table_names_file_and_field(tmp_path, capsys):
    path, _ = make_artifact(tmp_path)
    bad = tmp_path / "e.toml"
    bad.write_text("[logic]\nbitop_pj = -2\n")
    assert main(["simulate", str(path), "--energy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "logic.bitop_pj" in err


def test_json_without_golden_reports_null(tmp_path, capsys):
    path, _ = make_artifact(tmp_path, golden=False)
    assert main(["simulate", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outputs_match_golden"] is None


def test_golden_mismatch_exits_1(tmp_path, capsys):
    path, _ = make_artifact(tmp_path, corrupt=True)
    assert main(["simulate", str(path)]) == 1
    assert "golden: MISMATCH (image: DIFFERS)" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_trace_file(tmp_path, capsys, suffix):
    path, n = make_artifact(tmp_path)
    trace = tmp_path / f"trace{suffix}"
    assert main(["simulate", str(path), "--trace", str(trace)]) == 0
    text = trace.read_text()
    if suffix == ".json":
        assert any(e["ph"] == "X" for e in json.loads(text)["traceEvents"])
    else:
        assert len(text.splitlines()) == n


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-cycles", "10"], "did not finish within --max-cycles=10"),
        (["--max-cycles", "-1"], "--max-cycles=-1 must be >= 0"),
        (["--hw", "edge"], "compiled for 'small' (C=4, W=64); 'edge' has C=16, W=64"),
        (["--hw", "nosuch"], "unknown hardware preset 'nosuch'"),
    ],
)
def test_errors_exit_2_without_traceback(tmp_path, capsys, args, message):
    path, _ = make_artifact(tmp_path)
    assert main(["simulate", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_missing_artifact(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nothing")]) == 2
    assert "not an artifact directory" in capsys.readouterr().err


def test_hw_override_with_the_same_layout_changes_timing_only(tmp_path, capsys):
    path, _ = make_artifact(tmp_path)
    assert main(["simulate", str(path), "--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    slow = dict(SMALL.to_dict(), name="slowdram", dram_latency=100)
    del slow["name"]
    toml = tmp_path / "hw.toml"
    toml.write_text("[slowdram]\n" + "".join(
        f"{k} = {v!r}\n".replace("'", '"') for k, v in slow.items()))
    assert main(["simulate", str(path), "--json", "--hw", str(toml)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hw"] == "slowdram"
    assert report["cycles"] > base["cycles"]
    assert report["outputs_match_golden"] == {"image": True}
