"""`bitbranch demo` (what `make demo` runs): the whole ResNet-18 W2A2 run end to end, with every option `run`
has (a hand-made argument set once missed the cost model's `--energy` and crashed)."""

from __future__ import annotations

import json

from bitbranch.cli import main


def test_demo_runs_resnet18_and_writes_a_live_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    totals = report["totals"]
    assert totals["cycles"] > 100_000 and totals["energy_uj"] > 0 and report["area_mm2"] > 0
    assert "bitbranch demo" in capsys.readouterr().out
