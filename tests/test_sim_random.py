"""Random valid programs: the simulator (both datapaths) against the independent sequential interpreter.

The final DRAM image and every on-chip buffer must be identical. 200 programs on the "small" preset run
by default (in batches, so a failure names its seed), plus a few on "edge" (16 lanes, P=2).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sim_reference import Reference, run_reference

from bitbranch.isa.hwconfig import get_config
from bitbranch.isa.validate import check_tokens
from bitbranch.simulator import run
from bitbranch.simulator.randprog import RandomProgramConfig, random_program
from bitbranch.simulator.timing import instruction_timing

SMALL = get_config("small")
EDGE = get_config("edge")
CLOUD = get_config("cloud")
BATCHES, PER_BATCH, LENGTH = 10, 20, 60  # 200 programs of ~60 instructions
# Batches cycle through generator settings: defaults, wide operands and bigger shapes, token-heavy, unaligned DRAM.
CONFIGS = (
    RandomProgramConfig(),
    RandomProgramConfig(p_wide=0.3, max_dim=4, max_bgemm_work=12000),
    RandomProgramConfig(p_flag=0.5, weights={"load": 2, "store": 2, "bgemm": 1, "requant": 1, "pool": 1, "sync": 2}),
    RandomProgramConfig(p_unaligned=0.8, p_edge=0.3),
)
CHECKED: Counter[str] = Counter()


def differences(result, ref: Reference) -> list[str]:
    bad = [] if result.dram == bytes(ref.dram) else ["dram"]
    want = ref.buffers()
    return bad + [name for name, got in result.buffers.items() if not np.array_equal(got, want[name])]


@pytest.mark.parametrize("batch", range(BATCHES))
def test_random_programs_match_reference(batch, record_property):
    ops: Counter[str] = Counter()
    cfg = CONFIGS[batch % len(CONFIGS)]
    for seed in range(batch * PER_BATCH, (batch + 1) * PER_BATCH):
        program, dram = random_program(SMALL, np.random.default_rng(seed), LENGTH, cfg)
        ops.update(insn.op for insn in program)
        ref = run_reference(program, dram, SMALL)
        for datapath in ("fast", "bitwise"):
            result = run((program, dram, SMALL), datapath=datapath)
            assert differences(result, ref) == [], f"seed {seed}, datapath {datapath}"
        check_timing(program, result, SMALL)
        CHECKED["small"] += 1
    record_property("programs_cross_checked", PER_BATCH)
    print(f"batch {batch}: {PER_BATCH} random programs match the reference ({sum(CHECKED.values())} so far)")
    assert set(ops) == {"load", "store", "bgemm", "requant", "pool", "sync", "finish"}


@pytest.mark.parametrize(("hw", "seed"), [(EDGE, s) for s in range(10)] + [(CLOUD, s) for s in range(4)],
                         ids=[f"edge{s}" for s in range(10)] + [f"cloud{s}" for s in range(4)])
def test_random_programs_match_reference_on_larger_presets(hw, seed):
    """16 and 32 lanes (whole-byte slices), P = 2 and 4, deeper queues."""
    program, dram = random_program(hw, np.random.default_rng(1000 + seed), 40)
    ref = run_reference(program, dram, hw)
    result = run((program, dram, hw))
    assert differences(result, ref) == []
    check_timing(program, result, hw)
    CHECKED[hw.name] += 1


def check_timing(program, result, hw) -> None:
    """Invariants of docs/timing.md that hold for any program, checked on the recorded cycles."""
    ts = result.timestamps
    n = len(program)
    units = [int(insn.exec_unit) for insn in program]
    timing = [instruction_timing(insn, hw) for insn in program]
    free_prev = {0: 0, 1: 0, 2: 0}
    take = [0] * n
    for k in range(n):
        assert ts.dispatch[k] >= (ts.dispatch[k - 1] + 1 if k else 0), k
        take[k] = max(ts.dispatch[k], free_prev[units[k]])
        assert ts.ready[k] == max(ts.dispatch[k] + 1, free_prev[units[k]]), k
        assert ts.start[k] >= ts.ready[k] and ts.free[k] >= ts.end[k], k
        if timing[k].dram_hold:
            assert ts.grant[k] > ts.start[k] and ts.end[k] == ts.grant[k] + timing[k].dram_hold, k
        else:
            assert ts.grant[k] == -1 and ts.end[k] == ts.start[k] + timing[k].latency, k
        free_prev[units[k]] = ts.free[k]
    assert result.cycles == max(ts.end)
    # Instruction queues never exceed Q, and fetch only stalls on a queue that is full the cycle before.
    for u in range(3):
        mine = [k for k in range(n) if units[k] == u]
        for k in mine:
            t = ts.dispatch[k]
            occupancy = sum(ts.dispatch[j] <= t for j in mine) - sum(take[j] <= t for j in mine)
            assert occupancy <= hw.queue_depth, k
            if k and t > ts.dispatch[k - 1] + 1:
                full = sum(ts.dispatch[j] <= t - 1 for j in mine) - sum(take[j] <= t - 1 for j in mine)
                assert full == hw.queue_depth, k
    # The DRAM port: one transfer at a time; no idle cycle while a request waits; load wins ties.
    dma = sorted((ts.grant[k], ts.end[k], ts.start[k], units[k]) for k in range(n) if ts.grant[k] >= 0)
    for (_, e0, _, _), (g1, _, _, _) in zip(dma, dma[1:], strict=False):
        assert g1 >= e0
    busy = set()
    for g, e, _, _ in dma:
        busy.update(range(g, e))
    for g, _, s, u in dma:
        assert all(c in busy for c in range(s + 1, g)), "port idle while a request waited"
        if u == 2:  # a store won at g: no load request raised before g was waiting
            assert not any(u2 == 0 and s2 < g < g2 for g2, _, s2, u2 in dma), "store granted over a waiting load"
    # Tokens: the n-th pop on a queue starts no earlier than the end of the n-th push into it.
    flags = {"pop_prev": -1, "pop_next": 1, "push_prev": -1, "push_next": 1}
    pushes: dict[tuple[int, int], list[int]] = {}
    pops: dict[tuple[int, int], list[int]] = {}
    for k, insn in enumerate(program):
        f = insn.as_dict()
        for name, side in flags.items():
            if f[name]:
                other = units[k] + side
                key = (units[k], other) if name.startswith("push") else (other, units[k])
                (pushes if name.startswith("push") else pops).setdefault(key, []).append(k)
    for key, consumers in pops.items():
        for producer, consumer in zip(pushes[key], consumers, strict=False):
            assert ts.start[consumer] >= ts.end[producer], (key, producer, consumer)


def test_random_programs_are_not_vacuous():
    """The cross-check means something only if programs move real data: results differ from the
    initial state, computes consume loaded data, stores write it back, and the units overlap."""
    changed_dram = nonzero_out = distinct_acc = overlapped = 0
    for seed in range(20):
        program, dram = random_program(SMALL, np.random.default_rng(seed), 40)
        result = run((program, dram, SMALL))
        changed_dram += sum(a != b for a, b in zip(result.dram, dram, strict=True))
        nonzero_out += int(np.count_nonzero(result.buffers["out"]))
        distinct_acc += len(np.unique(result.buffers["acc"]))
        busy = sum(u.busy for u in result.units.values())
        overlapped += busy > result.cycles  # two units busy at once somewhere
    assert changed_dram > 20 * 50
    assert nonzero_out > 20 * 5
    assert distinct_acc > 20 * 10
    assert overlapped >= 10


def test_reference_comparison_detects_a_wrong_result():
    """Dropping one data-moving instruction from the reference's program is caught."""
    program, dram = random_program(SMALL, np.random.default_rng(3), 40)
    result = run((program, dram, SMALL))
    caught = 0
    for k, insn in enumerate(program):
        if insn.op in ("bgemm", "requant", "store", "load"):
            ref = run_reference(program[:k] + program[k + 1:], dram, SMALL)
            caught += bool(differences(result, ref))
    assert caught >= 5


def test_datapaths_agree_on_wide_programs():
    """fast (int8 GEMM) and bitwise (xor + popcount) give identical buffers, including 8-plane operands."""
    cfg = RandomProgramConfig(p_wide=0.5, max_dim=4, max_bgemm_work=40000)
    for seed in range(12):
        program, dram = random_program(SMALL, np.random.default_rng(500 + seed), 40, cfg)
        fast = run((program, dram, SMALL), datapath="fast")
        bitwise = run((program, dram, SMALL), datapath="bitwise")
        assert fast.dram == bitwise.dram, seed
        for name in fast.buffers:
            assert np.array_equal(fast.buffers[name], bitwise.buffers[name]), (seed, name)
        assert fast.cycles == bitwise.cycles


def test_random_programs_are_deterministic_and_token_safe():
    a = random_program(SMALL, np.random.default_rng(9), 60)
    b = random_program(SMALL, np.random.default_rng(9), 60)
    assert a == b
    program, _ = a
    assert len(program) >= 60 and program[-1].op == "finish"
    summary = check_tokens(program, SMALL)  # raises DeadlockError if the token protocol can hang
    assert summary.instructions == len(program)
