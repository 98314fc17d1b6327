"""Differential fuzzing of the RTL against the simulator (simulator.randprog random programs).

Every program is cross-checked on the final DRAM image, the total cycle count, every instruction's
unit, dispatch, start, grant, end and free cycles, and every activity count (per instruction and in total:
simulator.activity against the RTL's counters). Default run: 300 programs on `small` (Verilator), 40 on
`edge` (16x16 PEs, two branch pairs, 64-byte DRAM beats) and 30 on Icarus, plus the recorded regressions
(tests/rtl_regressions.json, written by `bitbranch fuzz`). `make test-slow` runs a large campaign.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from bitbranch.rtlharness.build import verilator_bin_dir
from bitbranch.rtlharness.fuzz import fuzz_batch
from bitbranch.rtlharness.randconfig import resolve

REGRESSIONS = Path(__file__).with_name("rtl_regressions.json")
HAVE_VERILATOR = (verilator_bin_dir() / "verilator").exists()
needs_verilator = pytest.mark.skipif(not HAVE_VERILATOR, reason="verilator not installed")
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")


def check(hw_name: str, seeds, instructions: int, sim: str, record_property=None) -> Counter:
    ops: Counter[str] = Counter()
    bad = []
    for seed, program, c in fuzz_batch(resolve(hw_name), list(seeds), instructions, sim):
        ops.update(insn.op for insn in program)
        if not c.ok:
            bad.append((seed, c.explain()))
    assert not bad, f"{len(bad)} mismatches on {hw_name}/{sim}: {bad[:5]}"
    if record_property is not None:
        record_property("programs_cross_checked", len(seeds))
    return ops


@needs_verilator
@pytest.mark.parametrize("batch", range(3))
def test_random_programs_small(batch, record_property):
    ops = check("small", range(batch * 100, (batch + 1) * 100), 40, "verilator", record_property)
    assert set(ops) == {"load", "store", "bgemm", "requant", "pool", "sync", "finish"}


@needs_verilator
def test_random_programs_edge(record_property):
    check("edge", range(50_000, 50_040), 30, "verilator", record_property)


@needs_icarus
def test_random_programs_icarus(record_property):
    check("small", range(90_000, 90_030), 40, "icarus", record_property)


@needs_icarus
@pytest.mark.parametrize("config_seed", range(3))
def test_random_programs_on_random_configs(config_seed, record_property):
    """A generated config per run (rtlharness.randconfig): array shapes, pipelines, queue depths and DRAM
    beats the presets never use."""
    check(f"random:{config_seed}", range(20), 40, "icarus", record_property)


@needs_verilator
def test_recorded_regressions_pass():
    records = json.loads(REGRESSIONS.read_text())
    by_key: dict[tuple, list[int]] = {}
    for r in records:
        by_key.setdefault((r["hw"], r["instructions"], r.get("sim", "verilator")), []).append(r["seed"])
    for (hw, n, sim), seeds in by_key.items():
        check(hw, seeds, n, sim)


@pytest.mark.slow
@needs_verilator
@pytest.mark.parametrize("hw,count,instructions", [("small", 5000, 60), ("edge", 1000, 40), ("cloud", 200, 30)])
def test_fuzz_campaign(hw, count, instructions, record_property):
    for b0 in range(0, count, 250):
        check(hw, range(1_000_000 + b0, 1_000_000 + min(count, b0 + 250)), instructions, "verilator")
    record_property("programs_cross_checked", count)


def test_random_config_build_directory_has_no_colon():
    """`--hw random:S` on Verilator: the build directory name must be a path make accepts (no ':')."""
    from bitbranch.rtlharness.bench_core import build_name

    name = build_name(resolve("random:21"), 24, "verilator")
    assert name.startswith("random_21-") and ":" not in name
