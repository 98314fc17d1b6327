"""The simulator's fast paths against their plain definitions.

* BGEMM weight operands are cached per WGT range: a LOAD into an overlapping WGT range must drop them;
* REQUANT constants are cached per CONST entry: a LOAD into CONST must drop them;
* runs of REQUANTs are applied as one vectorised batch: the same buffers as one at a time;
* timing and results are pinned by fingerprints recorded with the original (pre-optimisation)
  simulator: cycles, per-unit statistics, every timestamp and the final DRAM image of seeded random
  programs and of a row-tiled convolution, on hardware configs defined here (not the presets, which
  may change).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sim_reference import run_reference

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import HwConfig, get_config
from bitbranch.isa.spec import Buffer, Dest
from bitbranch.simulator import datapath as sim_datapath
from bitbranch.simulator import run
from bitbranch.simulator.datapath import Datapath
from bitbranch.simulator.randprog import RandomProgramConfig, random_program

EDGE = get_config("edge")
SMALL = get_config("small")
ROOT = Path(__file__).resolve().parents[1]


def differences(result, ref) -> list[str]:
    bad = [] if result.dram == bytes(ref.dram) else ["dram"]
    want = ref.buffers()
    return bad + [name for name, got in result.buffers.items() if not np.array_equal(got, want[name])]


# --- the weight-operand cache ---------------------------------------------------------------------
def _reload_program(hw: HwConfig, second_sram: int) -> tuple[list[Instruction], bytes]:
    """Two identical BGEMMs; between them a LOAD writes WGT entries starting at second_sram."""
    c, e_wgt = hw.array_cols, hw.entry_bytes("wgt")
    rng = np.random.default_rng(second_sram)
    dram = bytearray(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    bgemm = dict(kbits=2, mbits=2, acc=0, inp=0, wgt=0, oh=2, ow=2, kh=1, kw=1, stride=1, dil=1, cw=1, ctiles=1,
                 irow=4, ipix=2)  # reads WGT entries 0..1
    store = dict(buf=Buffer.ACC, sram=0, rows=1, len=4)
    program = [
        Instruction.make("load", buf=Buffer.WGT, sram=0, dram=0, rows=1, len=2),
        Instruction.make("load", buf=Buffer.INP, sram=0, dram=1024, rows=1, len=8, push_next=1),
        Instruction.make("bgemm", **bgemm, pop_prev=1, push_prev=1, push_next=1),
        Instruction.make("store", **store, dram=2048, pop_prev=1, push_prev=1),
        Instruction.make("load", buf=Buffer.WGT, sram=second_sram, dram=512, rows=1, len=1, pop_next=1,
                         push_next=1),
        Instruction.make("bgemm", **bgemm, pop_prev=1, pop_next=1, push_next=1),
        Instruction.make("store", **store, dram=2048 + 4 * c * 4, pop_prev=1),
        Instruction.make("finish"),
    ]
    assert e_wgt * 3 <= 1024
    return program, bytes(dram)


@pytest.mark.parametrize("second_sram", [0, 1, 2, 7])
def test_weight_cache_follows_wgt_loads(monkeypatch, second_sram):
    """Overlapping reloads (entries 0 or 1) must be seen by the second BGEMM; others keep the cache."""
    prepared = []
    real = sim_datapath.prepare_weights
    monkeypatch.setattr(sim_datapath, "prepare_weights", lambda *a: prepared.append(1) or real(*a))
    program, dram = _reload_program(EDGE, second_sram)
    result = run((program, dram, EDGE))
    assert differences(result, run_reference(program, dram, EDGE)) == []
    assert len(prepared) == (2 if second_sram <= 1 else 1)
    outputs = np.frombuffer(result.dram[2048 : 2048 + 2 * 4 * EDGE.array_cols * 4], dtype="<i4").reshape(2, -1)
    assert (second_sram > 1) == np.array_equal(outputs[0], outputs[1])


def test_caches_under_random_reloads():
    """Random programs with few, small BGEMM shapes on a narrow WGT/CONST window: cached operands are
    reused often and reloads hit them."""
    cfg = RandomProgramConfig(max_dim=1, max_planes=2, p_wide=0.0, window={"inp": 32, "wgt": 6, "acc": 16,
                              "out": 16, "const": 2}, weights={"load": 3, "store": 1, "bgemm": 3, "requant": 3,
                                                               "pool": 0.3, "sync": 0.5})
    for hw in (SMALL, EDGE):
        for seed in range(12):
            program, dram = random_program(hw, np.random.default_rng(4000 + seed), 80, cfg)
            result = run((program, dram, hw))
            assert differences(result, run_reference(program, dram, hw)) == [], (hw.name, seed)


# --- REQUANT batches ------------------------------------------------------------------------------
def _random_requants(dp: Datapath, rng: np.random.Generator, count: int, residual: bool) -> list:
    """Mostly batchable REQUANTs (n = 4, kout = 2, with or without a 2-plane residual) with varying
    slices, shifts, clamps, constants and addresses (overlapping OUT writes included); a few others
    (dest=acc, other n, kout or residual) break runs."""
    hw = dp.hw
    effects = []
    for _ in range(count):
        odd = rng.random() < 0.15
        n = int(rng.choice([3, 5])) if odd and rng.random() < 0.5 else 4
        kout = int(rng.choice([1, 3])) if odd and rng.random() < 0.5 else 2
        dest = Dest.ACC if odd and rng.random() < 0.3 else Dest.OUT
        res = int(residual != (odd and rng.random() < 0.3))
        out = dest == Dest.OUT
        f = dict(pop_prev=0, pop_next=0, push_prev=0, push_next=0, dest=dest, res=res,
                 acc=int(rng.choice([0, 4, 8, 12, 30])), n=n, const=int(rng.integers(0, 4)),
                 out=int(rng.integers(0, 30)) if out else 0, ostride=kout + int(rng.integers(0, 2)) if out else 0,
                 slice=int(rng.integers(0, hw.slices_per_word)), kout=kout if out else 0,
                 shift=int(rng.choice([0, 1, 2, 3])), lo=int(rng.integers(0, 2)) if out else 0,
                 hi=(1 << kout) - 1 - int(kout > 1 and rng.random() < 0.5) if out else 0,
                 rinp=int(rng.integers(0, 20)) if res else 0, rstride=2 if res else 0, rk=2 if res else 0)
        effects.append(dp.plan("requant", f))
    return effects


@pytest.mark.parametrize("large", [False, True], ids=["small-batches", "large-batches"])
@pytest.mark.parametrize("hw", [EDGE, get_config("cloud")], ids=lambda h: h.name)
def test_requant_batches_equal_one_at_a_time(monkeypatch, hw, large):
    if large:  # the paths of batches too large to cache or to repeat the constants per row
        monkeypatch.setattr(sim_datapath, "_REPEAT_ROWS", 0)
        monkeypatch.setattr(sim_datapath, "_BATCH_CACHE_ELEMENTS", 0)
    built = []
    real = sim_datapath._RequantBatch
    monkeypatch.setattr(sim_datapath, "_RequantBatch", lambda *a: built.append(len(a[1])) or real(*a))
    c = hw.array_cols
    for seed in range(30):
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 256, 8192, dtype=np.uint8).tobytes()
        acc = rng.integers(-40, 40, (hw.acc_entries, c))
        const = np.concatenate([rng.integers(-3, 4, (hw.const_entries, c)).astype("<i4").view(np.uint8),
                                rng.integers(-2, 3, (hw.const_entries, c)).astype("<i4").view(np.uint8),
                                rng.integers(-30, 30, (hw.const_entries, c)).astype("<i8").view(np.uint8)], axis=1)
        out = rng.integers(0, 256, (hw.out_entries, hw.entry_bytes("out")), dtype=np.uint8)
        inp = rng.integers(0, 256, (hw.inp_entries, hw.entry_bytes("inp")), dtype=np.uint8)
        one, many = Datapath(hw, image), Datapath(hw, image)
        for dp in (one, many):
            dp.acc[:] = acc
            dp.const[:] = const
            dp.raw["out"][:] = out
            dp.raw["inp"][:] = inp
        for effect in _random_requants(one, np.random.default_rng(seed), 60, residual=seed % 2 == 1):
            effect()
        many.run_effects(_random_requants(many, np.random.default_rng(seed), 60, residual=seed % 2 == 1))
        for name in ("acc", "out"):
            np.testing.assert_array_equal(one.buffers()[name], many.buffers()[name], err_msg=f"{name} seed {seed}")
    assert len(built) > 100 and sum(built) > 2 * len(built)  # the batch path really ran


# --- golden fingerprints of the original simulator --------------------------------------------------
def _hw(name: str, **overrides: int) -> HwConfig:
    base = dict(name=name, description="test", array_rows=2, array_cols=4, word_bits=64, branch_parallel=1,
                inp_entries=1024, wgt_entries=256, acc_entries=256, out_entries=512, const_entries=64,
                dram_latency=8, dram_bytes_per_cycle=8, dma_row_overhead=1, gemm_pipeline=3, alu_pipeline=2,
                queue_depth=4, token_depth=4, clock_mhz=100.0)
    base.update(overrides)
    return HwConfig.from_dict(base)


GOLDEN_HW = {
    "tiny": _hw("tiny"),
    "lanes16": _hw("lanes16", array_rows=16, array_cols=16, branch_parallel=2, inp_entries=32768, wgt_entries=4096,
                   acc_entries=4096, out_entries=16384, const_entries=256, dram_latency=32, dram_bytes_per_cycle=16,
                   gemm_pipeline=4, alu_pipeline=3, queue_depth=16, token_depth=8),
    "lanes32": _hw("lanes32", array_rows=32, array_cols=32, branch_parallel=4, inp_entries=65536, wgt_entries=8192,
                   acc_entries=8192, out_entries=32768, const_entries=512, dram_latency=48, dram_bytes_per_cycle=64,
                   gemm_pipeline=5, alu_pipeline=3, queue_depth=32, token_depth=16),
}


def fingerprint(result) -> str:
    ts = result.timestamps
    record = [result.cycles, result.stats.to_dict(), [ts.dispatch, ts.ready, ts.start, ts.grant, ts.end, ts.free],
              hashlib.sha256(result.dram).hexdigest()]
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]


# (hw, seed, length, datapath) -> fingerprint, recorded with the simulator before its optimisation
# (seed 0 = bench/sim_speed.py's row-tiled 3x3 conv, 12x12 maps, 2 frames)
GOLDEN = {
    ("lanes16", 0, 0, "fast"): "eab5940d3e0e13f881c442cd",
    ("lanes16", 0, 0, "bitwise"): "eab5940d3e0e13f881c442cd",
    ("lanes16", 4, 80, "fast"): "1af6ca21d27bcc3a758d42d2",
    ("lanes16", 5, 300, "fast"): "c8bc8ef0f9b77c65ff1c7d80",
    ("lanes32", 6, 150, "fast"): "21429bf26e613e2518c97b48",
    ("lanes32", 7, 60, "bitwise"): "5c8a81bf12b078213f2f8a32",
    ("tiny", 1, 60, "fast"): "45e40970a09baf83470d21f8",
    ("tiny", 2, 300, "fast"): "30d3312658b831c8ba26be62",
    ("tiny", 3, 120, "bitwise"): "fa0736529342a448e840d869",  # re-recorded: OUT write groups (timing.md 4.1)
}


def golden_program(name: str, seed: int, length: int) -> tuple[list[Instruction], bytes, HwConfig]:
    hw = GOLDEN_HW[name]
    if seed == 0:
        spec = importlib.util.spec_from_file_location("bench_simulator", ROOT / "bench" / "sim_speed.py")
        bench = importlib.util.module_from_spec(spec)
        sys.modules.setdefault("bench_simulator", bench)
        spec.loader.exec_module(bench)
        conv = bench.build(hw, 12, 12, 2)
        return conv.program, conv.dram, hw
    # the generator's bank-conflict cases (p_onestep, p_wide_stride) came later: off, so the programs stay
    # the ones the fingerprints were recorded on
    cfg = RandomProgramConfig(p_onestep=0.0, p_wide_stride=0.0)
    program, dram = random_program(hw, np.random.default_rng(seed), length, cfg)
    return program, dram, hw


@pytest.mark.parametrize("case", sorted(GOLDEN), ids=lambda c: "-".join(map(str, c)))
def test_golden_fingerprints(case):
    program, dram, hw = golden_program(*case[:3])
    assert fingerprint(run((program, dram, hw), datapath=case[3])) == GOLDEN[case]


def test_progress_hook_reports_finished_prefixes():
    program, dram, hw = golden_program("lanes16", 5, 300)
    calls: list[tuple[int, int]] = []
    result = run((program, dram, hw), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(program), len(program))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and 20 < len(calls) <= 102
    assert fingerprint(result) == GOLDEN[("lanes16", 5, 300, "fast")]


def test_generic_paths_match_reference(monkeypatch):
    """The word-level paths used where the byte-lane ones do not apply (slices of C % 8 != 0 lanes,
    big-endian hosts), forced on 16- and 32-lane configs."""
    monkeypatch.setattr(sim_datapath, "_LITTLE", False)
    for hw in (EDGE, get_config("cloud")):
        for seed in range(4):
            program, dram = random_program(hw, np.random.default_rng(700 + seed), 60)
            result = run((program, dram, hw))
            assert differences(result, run_reference(program, dram, hw)) == [], (hw.name, seed)
