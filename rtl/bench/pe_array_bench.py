"""Unit bench of bb_pe_array against the numeric core (isa/numeric.py): cocotb tests and their runner.

For random activation codes (R pixels) and weight codes (C lanes) of random bit widths K, M over cw W-bit
channel words, the bench feeds the array exactly as bb_compute does (one cycle per channel word and group of
P branch pairs, coefficient shift per branch, accumulator started from a random `init`) and compares every
accumulator with isa.numeric.decomposed_matmul_bitwise and the plain integer product codes_matmul.
"""

from __future__ import annotations

import json
import os

import numpy as np

ENV = "BITBRANCH_PE_BENCH"

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge, Timer
except ImportError:  # pragma: no cover
    cocotb = None


def _expected(qa, qw, k, m, ternary, init):
    from bitbranch.isa.numeric import (
        codes_matmul,
        decomposed_matmul_bitwise,
        plane_coefficients,
        planes_from_codes_packed,
        planes_from_ternary_packed,
    )

    n = qa.shape[1]
    a = planes_from_codes_packed(qa, k)
    w = planes_from_ternary_packed(qw) if ternary else planes_from_codes_packed(qw, m)
    r = decomposed_matmul_bitwise(a, w, n, plane_coefficients(k), plane_coefficients(m, ternary))
    if not ternary:
        assert np.array_equal(r, codes_matmul(qa, qw.T)), "numeric core disagrees with itself"
    else:
        assert np.array_equal(r, 2 * codes_matmul(qa, qw.T)), "ternary: R = 2 * sum q*t"
    return a, w, ((r + init) + 2**31) % 2**32 - 2**31


def _word(words, row, c, nw):
    """Little-endian integer of W bits made of uint64 words [row, c*nw:(c+1)*nw]."""
    v = 0
    for n in range(nw):
        v |= int(words[row, c * nw + n]) << (64 * n)
    return v


if cocotb is not None:

    @cocotb.test()
    async def pe_array_matches_numeric_core(dut):
        cfg = json.loads(os.environ[ENV])
        R, C, W, P = cfg["R"], cfg["C"], cfg["W"], cfg["P"]
        nw = W // 64
        rng = np.random.default_rng(cfg["seed"])
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
        dut.en.value = 0
        await RisingEdge(dut.clk)
        cases = 0
        for case in range(cfg["cases"]):
            ternary = case % 5 == 4
            k = int(rng.integers(1, 9)) if case % 3 else 8
            m = 2 if ternary else (int(rng.integers(1, 9)) if case % 4 else 8)
            cw = int(rng.integers(1, 4))
            n = cw * W
            qa = 2 * rng.integers(0, 1 << k, (R, n)) - ((1 << k) - 1)
            qw = rng.integers(-1, 2, (C, n)) if ternary else 2 * rng.integers(0, 1 << m, (C, n)) - ((1 << m) - 1)
            init = rng.integers(-(2**31), 2**31, (R, C)) if case % 2 else np.zeros((R, C), np.int64)
            a, w, want = _expected(qa, qw, k, m, ternary, init)
            branches = [(i, j) for i in range(k) for j in range(m)]
            groups = [branches[g : g + P] for g in range(0, len(branches), P)]
            first = True
            for c in range(cw):
                for grp in groups:
                    av = bv = sh = 0
                    valid = 0
                    for q, (i, j) in enumerate(grp):
                        for r in range(R):
                            av |= _word(a[i], r, c, nw) << ((r * P + q) * W)
                        for l in range(C):
                            bv |= _word(w[j], l, c, nw) << ((q * C + l) * W)
                        sh |= (i if ternary else i + j) << (4 * q)
                        valid |= 1 << q
                    init_v = 0
                    for r in range(R):
                        for l in range(C):
                            init_v |= (int(init[r, l]) & 0xFFFFFFFF) << ((r * C + l) * 32)
                    dut.a.value = av
                    dut.w.value = bv
                    dut.shift.value = sh
                    dut.bvalid.value = valid
                    dut.first.value = int(first)
                    dut.use_init.value = 1
                    dut.init.value = init_v
                    dut.en.value = 1
                    first = False
                    await RisingEdge(dut.clk)
            dut.en.value = 0
            await Timer(1, "ns")
            total = int(dut.sum.value)
            for r in range(R):
                for l in range(C):
                    got = (total >> ((r * C + l) * 32)) & 0xFFFFFFFF
                    got = got - (1 << 32) if got >> 31 else got
                    assert got == int(want[r, l]), (
                        f"case {case} (K={k}, M={m}, ternary={ternary}, cw={cw}): PE ({r},{l}) = {got}, "
                        f"numeric core says {int(want[r, l])}")
            cases += 1
        dut._log.info(f"{cases} random products match isa.numeric (R={R} C={C} W={W} P={P})")


def run_pe_array_bench(R: int, C: int, W: int, P: int, sim: str = "verilator", cases: int = 40, seed: int = 0,
                       workdir=None):
    """Build bb_pe_array for (R, C, W, P) (cached) and run the bench; raises SimulatorError on failure."""
    import tempfile
    from pathlib import Path

    from bitbranch.rtlharness.build import build, run

    # the PE's gate form, the one synthesis maps (the core's simulations run its word form; rtl/bb_pe.v)
    b = build(sim, "bb_pe_array", ["bb_pe", "bb_pe_array"], {"R": R, "C": C, "W": W, "P": P, "NPR": P},
              f"pe_array_{R}x{C}x{W}x{P}_gates", defines={"BB_PE_GATES": 1})
    with tempfile.TemporaryDirectory(prefix="bitbranch-pe-") as tmp:
        work = Path(workdir or tmp)
        env = {ENV: json.dumps({"R": R, "C": C, "W": W, "P": P, "seed": seed, "cases": cases})}
        run(b, "pe_array_bench", work, env=env)
    return b
