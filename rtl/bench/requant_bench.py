"""Unit bench of bb_requant against the golden rounding rule (isa/rounding.py): cocotb tests and their runner.

Each cycle presents R pixels x C lanes; values are drawn from boundary sets (int32 and int64 extremes, 0, +-1),
exact ties of the round-half-up shift, shifts 0, 1, 31, 32, 61 and 62, clamp bounds at both ends, residual
levels of every width, and random values. Expected: isa.rounding.requantize (int64, wrapping), then
min(max(r, lo), hi) for the plane outputs and saturate_int32 for the ACC output.
"""

from __future__ import annotations

import json
import os

import numpy as np

ENV = "BITBRANCH_REQUANT_BENCH"
I32 = (-(2**31), 2**31 - 1)
I64 = (-(2**63), 2**63 - 1)

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge, Timer
except ImportError:  # pragma: no cover
    cocotb = None


def _pick(rng, extremes, bits, size):
    """Values mixing extremes, small numbers and uniform draws over the signed range."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    special = np.array([lo, hi, 0, 1, -1, lo + 1, hi - 1, *extremes], dtype=object)
    out = np.empty(size, dtype=object)
    for idx in np.ndindex(size):
        r = rng.random()
        if r < 0.3:
            out[idx] = int(special[rng.integers(0, len(special))])
        elif r < 0.6:
            out[idx] = int(rng.integers(-300, 301))
        else:
            out[idx] = int(rng.integers(lo, hi, endpoint=True, dtype=np.int64))
    return out.astype(np.int64)


def make_case(rng, R, C, W):
    """One cycle's operands and the expected outputs."""
    from bitbranch.isa.rounding import clamp_levels, requantize, saturate_int32

    acc = _pick(rng, (12345, -12345), 32, (R, C))
    mul = _pick(rng, (1, 3), 32, (C,))
    rmul = _pick(rng, (2, -2), 32, (C,))
    bias = _pick(rng, (2**40, -(2**40)), 64, (C,))
    shift = int(rng.choice([0, 1, 2, 31, 32, 61, 62, int(rng.integers(0, 63))]))
    res = bool(rng.random() < 0.5)
    rk = int(rng.integers(1, 9)) if res else int(rng.integers(0, 9))
    slices = W // C
    slc = int(rng.integers(0, slices))
    words = rng.integers(0, 2**63, (R, 8, W // 64), dtype=np.int64).astype(np.uint64) * 2 + rng.integers(
        0, 2, (R, 8, W // 64)).astype(np.uint64)
    levels = np.zeros((R, C), dtype=np.int64)
    for r in range(R):
        for lane in range(C):
            b = slc * C + lane
            for i in range(rk):
                levels[r, lane] |= int((int(words[r, i, b // 64]) >> (b % 64)) & 1) << i
    if shift and rng.random() < 0.3:  # make lane 0 of row 0 an exact tie of the rounding shift
        with np.errstate(over="ignore"):
            base = np.int64(acc[0, 0]) * np.int64(mul[0]) + (levels[0, 0] * np.int64(rmul[0]) if res else 0)
            target = np.int64(int(rng.integers(-1000, 1000)) << shift if shift < 52 else 0) + np.int64(
                1 << (shift - 1))
            bias[0] = np.int64(target - base)
    lo = int(rng.integers(0, 256))
    hi = int(rng.integers(lo, 256))
    with np.errstate(over="ignore"):
        v = requantize(acc, mul[None, :], bias[None, :], shift, levels if res else None,
                       rmul[None, :] if res else None)
    return dict(acc=acc, mul=mul, rmul=rmul, bias=bias, shift=shift, res=res, rk=rk, slice=slc, words=words,
                lo=lo, hi=hi, out=clamp_levels(v, lo, hi), acc_out=saturate_int32(v))


def _pack(values, bits):
    v = 0
    for k, x in enumerate(np.asarray(values).reshape(-1)):
        v |= (int(x) & ((1 << bits) - 1)) << (k * bits)
    return v


if cocotb is not None:

    @cocotb.test()
    async def requant_matches_rounding_rule(dut):
        cfg = json.loads(os.environ[ENV])
        R, C, W = cfg["R"], cfg["C"], cfg["W"]
        rng = np.random.default_rng(cfg["seed"])
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
        dut.en.value = 0
        await RisingEdge(dut.clk)
        for n in range(cfg["cases"]):
            c = make_case(rng, R, C, W)
            dut.acc.value = _pack(c["acc"], 32)
            dut.mul.value = _pack(c["mul"], 32)
            dut.rmul.value = _pack(c["rmul"], 32)
            dut.bias.value = _pack(c["bias"], 64)
            dut.res.value = int(c["res"])
            dut.rk.value = c["rk"]
            dut.res_words.value = _pack(c["words"], 64)
            dut.slice.value = c["slice"]
            dut.shift.value = c["shift"]
            dut.lo.value = c["lo"]
            dut.hi.value = c["hi"]
            dut.en.value = 1
            await RisingEdge(dut.clk)
            dut.en.value = 0
            await Timer(1, "ns")
            out_bits = int(dut.out_bits.value)  # bit (r*8 + i)*C + lane; bb_outbuf places the slice
            acc_out = int(dut.acc_out.value)
            for r in range(R):
                for lane in range(C):
                    got = (acc_out >> ((r * C + lane) * 32)) & 0xFFFFFFFF
                    got -= (got >> 31) << 32
                    want = int(c["acc_out"][r, lane])
                    assert got == want, f"case {n} row {r} lane {lane}: ACC result {got} != {want} ({c})"
                    u = sum(((out_bits >> ((r * 8 + i) * C + lane)) & 1) << i for i in range(8))
                    assert u == int(c["out"][r, lane]), (
                        f"case {n} row {r} lane {lane}: level {u} != {int(c['out'][r, lane])} ({c})")
        dut._log.info(f"{cfg['cases']} cycles of {R}x{C} lanes match isa.rounding")


def run_requant_bench(R: int, C: int, W: int, sim: str = "verilator", cases: int = 300, seed: int = 0):
    import tempfile
    from pathlib import Path

    from bitbranch.rtlharness.build import build, run

    b = build(sim, "bb_requant", ["bb_requant_row", "bb_requant"], {"R": R, "C": C, "W": W},
              f"requant_{R}x{C}x{W}")
    with tempfile.TemporaryDirectory(prefix="bitbranch-requant-") as tmp:
        env = {ENV: json.dumps({"R": R, "C": C, "W": W, "seed": seed, "cases": cases})}
        run(b, "requant_bench", Path(tmp), env=env)
    return b
