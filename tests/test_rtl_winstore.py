"""bb_winstore, the one-store model of INP's replicated copies that the core's Verilator builds simulate, against
bb_winbuf as built (the form Icarus, coverage and synthesis use): same windows and counters in every cycle."""

from __future__ import annotations

import shutil
import sys

import pytest

from bitbranch.rtlharness.build import RTL_DIR, verilator_bin_dir

sys.path.insert(0, str(RTL_DIR / "bench"))

from winstore_bench import params_for, run_winstore_bench  # noqa: E402

SIMS = [pytest.param("verilator", marks=pytest.mark.skipif(not (verilator_bin_dir() / "verilator").exists(),
                                                            reason="verilator not installed")),
        pytest.param("icarus", marks=pytest.mark.skipif(shutil.which("iverilog") is None,
                                                         reason="iverilog not installed"))]


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("copies,nb,depth,ebytes,beat", [
    (3, 8, 256, 8, 16),      # R = 3, two entries per beat
    (2, 8, 200, 8, 64),      # edge's INP beat (8 entries), depth not a multiple of the banks
    (2, 8, 128, 16, 8),      # a beat narrower than an entry (WGT-like): byte offsets inside entries
])
def test_winstore_matches_replicated_banks(sim, copies, nb, depth, ebytes, beat):
    r = run_winstore_bench(params_for(copies, nb, depth, ebytes, beat, cycles=3000, seed=7 + depth), sim=sim)
    assert r["mismatches"] == 0, r
    assert r["reads"] > 1000, r               # the copies were read, at random addresses
    assert r["live"] > 1000, r                # and the windows compared carried data, not zeros
    assert r["unknown"] <= 10, r              # only the first cycles have unread banks (X, Icarus)
