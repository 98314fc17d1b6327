"""The core's Verilator memory models against the banks they stand for (the form Icarus, coverage and synthesis
use): bb_winstore (one store for INP's per-row copies) against bb_winbuf, bb_accstore (ACC's banks as one store)
against bb_accbuf, bb_outstore against bb_outbuf; same outputs and activity counters in every cycle of random
legal traffic."""

from __future__ import annotations

import shutil
import sys

import pytest

from bitbranch.rtlharness.build import RTL_DIR, verilator_bin_dir

sys.path.insert(0, str(RTL_DIR / "bench"))

from storemodel_bench import buffer_params, run_store_bench  # noqa: E402

VERILATOR = pytest.mark.skipif(not (verilator_bin_dir() / "verilator").exists(), reason="verilator not installed")
ICARUS = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")


def configs(*sets: tuple) -> list:
    """Every parameter set on Icarus (builds in a second), the first also on Verilator (the simulator the core's
    models run in; ~15 s per build)."""
    return ([pytest.param(*sets[0], "verilator", marks=VERILATOR)]
            + [pytest.param(*v, "icarus", marks=ICARUS) for v in sets])


def check(r: dict[str, int]) -> None:
    assert r["mismatches"] == 0, r
    assert r["reads"] > 1000, r               # the model was read, at random addresses
    assert r["live"] > 1000, r                # and what was compared carried data, not zeros
    assert r["last_unknown"] < 300, r         # X (Icarus) only until every bank was first read, at the start


@pytest.mark.parametrize("copies,nb,depth,ebytes,beat,sim", configs(
    (2, 8, 200, 8, 64),      # edge's INP beat (8 entries), depth not a multiple of the banks
    (3, 8, 256, 8, 16),      # R = 3, two entries per beat
    (2, 8, 128, 16, 8),      # a beat narrower than an entry (WGT-like): byte offsets inside entries
))
def test_winstore_matches_replicated_banks(copies, nb, depth, ebytes, beat, sim):
    params = {"COPIES": copies, "NWIN": 8, **buffer_params(nb, depth, ebytes, beat), "CYCLES": 3000,
              "SEED": 7 + depth}
    check(run_store_bench("bb_winstore_tb", params, sim=sim))


@pytest.mark.parametrize("rows,depth,ebytes,beat,sim", configs(
    (4, 256, 64, 64),        # edge-like: one 512-bit entry per beat
    (2, 256, 16, 8),         # small's ACC: a STORE beat narrower than an entry
    (3, 240, 16, 64),        # R = 3 (12 banks), four entries per beat
))
def test_accstore_matches_banks(rows, depth, ebytes, beat, sim):
    params = {"R": rows, **buffer_params(4 * rows, depth, ebytes, beat), "CYCLES": 3000, "SEED": 11 + depth}
    check(run_store_bench("bb_accstore_tb", params, sim=sim))


@pytest.mark.parametrize("rows,lanes,depth,ebytes,beat,sim", configs(
    (2, 16, 256, 8, 4),      # a beat narrower than an entry, 16-lane slices (edge's C)
    (2, 4, 256, 8, 8),       # small's OUT: one entry per beat, 16 four-lane slices
    (3, 2, 240, 8, 64),      # R = 3 (24 banks), eight entries per beat
))
def test_outstore_matches_banks(rows, lanes, depth, ebytes, beat, sim):
    params = {"R": rows, "C": lanes, **buffer_params(8 * rows, depth, ebytes, beat), "CYCLES": 3000,
              "SEED": 13 + depth}
    check(run_store_bench("bb_outstore_tb", params, sim=sim))
