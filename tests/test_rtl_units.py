"""Unit benches of single RTL modules (cocotb benches in rtl/bench/, run through cocotb's Python runner).

Each parameter set is built once and cached in rtl/sim_build/. The small preset's parameter sets run on
Verilator; extra widths run on Icarus, whose builds take a second, so that both simulators are exercised.
"""

from __future__ import annotations

import shutil
import sys

import pytest

from bitbranch.rtlharness.build import RTL_DIR, verilator_bin_dir

sys.path.insert(0, str(RTL_DIR / "bench"))

from decode_bench import run_decode_bench  # noqa: E402
from dma_bench import run_dma_bench  # noqa: E402
from pe_array_bench import run_pe_array_bench  # noqa: E402
from requant_bench import run_requant_bench  # noqa: E402

HAVE_VERILATOR = (verilator_bin_dir() / "verilator").exists()
HAVE_ICARUS = shutil.which("iverilog") is not None


def case(*values):
    """A parameter set whose last value is the simulator; skipped when that simulator is missing."""
    sim = values[-1]
    ok = HAVE_VERILATOR if sim == "verilator" else HAVE_ICARUS
    return pytest.param(*values, marks=pytest.mark.skipif(not ok, reason=f"{sim} not installed"))


@pytest.mark.parametrize("R,C,W,P,sim", [
    case(2, 4, 64, 1, "verilator"),   # small preset
    case(3, 2, 128, 2, "icarus"),     # two 64-bit chunks per word, two branch pairs
    case(1, 3, 192, 4, "icarus"),     # three chunks, four branch pairs
])
def test_pe_array_matches_numeric_core(R, C, W, P, sim):
    run_pe_array_bench(R, C, W, P, sim=sim, cases=30, seed=R * 100 + W + P)


@pytest.mark.parametrize("hw,sim", [case("small", "verilator"), case("edge", "icarus")])
def test_decoder_matches_isa_on_every_opcode(hw, sim):
    counts = run_decode_bench(hw, sim=sim, cases=3000, seed=1)
    # every outcome class is exercised
    assert set(counts) == {"OK", "ILLEGAL", "RESERVED", "FIELD", "TOKEN", "BUF_RANGE", "DRAM_RANGE"}, counts
    assert min(counts.values()) >= 20, counts


@pytest.mark.parametrize("hw,cases,sim", [case("small", 120, "verilator"), case("small", 40, "icarus")])
def test_dma_padding_strides_and_hold_times(hw, cases, sim):
    stats = run_dma_bench(hw, sim=sim, cases=cases, seed=3)
    assert stats["load"] > cases // 4 and stats["store"] > cases // 4
    assert stats["padded"] > 0 and stats["strided"] > 0


@pytest.mark.parametrize("R,C,W,sim", [case(2, 4, 64, "verilator"), case(3, 8, 128, "icarus")])
def test_requant_matches_rounding_rule_at_boundaries(R, C, W, sim):
    run_requant_bench(R, C, W, sim=sim, cases=300, seed=R + C)
