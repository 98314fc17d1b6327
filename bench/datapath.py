"""Benchmark of the two datapaths of isa.numeric on a conv-sized product.

    .venv/bin/python bench/datapath.py [--reps N]

Product: rows = 3136 (56 x 56 output pixels), cols = 64 output channels, N = 576 (3 x 3 x 64), at W2A2
and W8A8.  Effective bit-ops/s counts every binary branch: rows * cols * N * K * M per product.
The reference kernel is torch._int_mm on +-1 int8 operands (3136 x 576 @ 576 x 64, rows * cols * N
bit-ops), measured in the same run.  Every time is the median of --reps repetitions after a warm-up;
fast paths are timed in batches of calls so that one sample lasts >= ~20 ms.  Before timing, the
fast result is compared with the bitwise result on the benchmarked operands.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROWS, COLS, N = 3136, 64, 576
CONFIGS = ((2, 2), (8, 8))  # (weight bits M, activation bits K)
MIN_SAMPLE_S = 0.02


def _numeric() -> Any:
    from bitbranch.isa import numeric

    return numeric


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cpu_busy(interval: float = 0.5) -> float | None:
    """Fraction of all CPU time used by anything over `interval` seconds (Linux /proc/stat), or None."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total > 0 else None


def median_time(fn: Callable[[], object], reps: int) -> float:
    """Median seconds per call over reps samples, after one warm-up call."""
    t0 = time.perf_counter()
    fn()  # warm-up (also sizes the batch)
    once = time.perf_counter() - t0
    batch = max(1, int(MIN_SAMPLE_S / max(once, 1e-9)))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t0) / batch)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per entry (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be >= 1")

    nm = _numeric()
    cores = _cores()
    torch.set_num_threads(cores)
    rng = np.random.default_rng(args.seed)
    busy = _cpu_busy()
    if busy is not None and busy > 0.1:
        print(
            f"warning: the CPUs are {busy:.0%} busy before the run; other processes compete for the "
            f"{cores} cores and torch's thread pool is very sensitive to that (numbers will be low)"
        )
    print(
        f"bitbranch datapath benchmark: rows={ROWS} cols={COLS} N={N}, reps={args.reps} (median), "
        f"torch {torch.__version__} threads={torch.get_num_threads()}, numpy {np.__version__}, "
        f"{platform.machine()} {cores} cores"
    )

    # reference kernel: torch._int_mm on +-1 int8, one bit-op per multiply-accumulate
    a_pm1 = torch.from_numpy((2 * rng.integers(0, 2, size=(ROWS, N)) - 1).astype(np.int8))
    w_pm1 = torch.from_numpy((2 * rng.integers(0, 2, size=(N, COLS)) - 1).astype(np.int8))
    t_ref = median_time(lambda: torch._int_mm(a_pm1, w_pm1), args.reps)
    ref_rate = ROWS * COLS * N / t_ref

    table = []
    all_exact = True
    for m, k in CONFIGS:
        u = rng.integers(0, 2**k, size=(ROWS, N))  # activations: level indices
        qw = 2 * rng.integers(0, 2**m, size=(N, COLS)) - (2**m - 1)  # weights: odd codes
        a_words = nm.planes_from_levels_packed(u, k)
        w_words = nm.planes_from_codes_packed(qw.T, m)
        ca, cw = nm.plane_coefficients(k), nm.plane_coefficients(m)
        bitwise = nm.decomposed_matmul_bitwise(a_words, w_words, N, ca, cw)
        fast = nm.decomposed_matmul_fast(a_words, w_words, N, ca, cw)
        exact = bool(np.array_equal(bitwise, fast))
        all_exact &= exact
        print(f"W{m}A{k} exact: {'yes' if exact else 'NO'} (fast == bitwise on the benchmarked operands)")
        bitops = ROWS * COLS * N * k * m
        for name, fn in (
            (
                "bitwise",
                lambda a=a_words, w=w_words, ca=ca, cw=cw: nm.decomposed_matmul_bitwise(a, w, N, ca, cw),
            ),
            ("fast", lambda a=a_words, w=w_words, ca=ca, cw=cw: nm.decomposed_matmul_fast(a, w, N, ca, cw)),
        ):
            t = median_time(fn, args.reps)
            table.append((f"W{m}A{k}", name, t, bitops, bitops / t))
    table.append(("+-1 int8", "torch._int_mm", t_ref, ROWS * COLS * N, ref_rate))

    print()
    header = f"{'case':<9} {'path':<14} {'time ms':>9} {'bit-ops':>12} {'bit-ops/s':>11} {'vs _int_mm':>10}"
    print(header)
    print("-" * len(header))
    for case, name, t, bitops, rate in table:
        ratio = f"{rate / ref_rate:.2f}x" if name != "torch._int_mm" else "1.00x"
        print(f"{case:<9} {name:<14} {t * 1e3:>9.3f} {bitops:>12.3e} {_si(rate):>11} {ratio:>10}")
    print()
    print(f"exact: {'yes' if all_exact else 'NO'}")
    return 0 if all_exact else 1


def _si(rate: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if rate >= scale:
            return f"{rate / scale:.2f} {unit}/s"
    return f"{rate:.0f} /s"


if __name__ == "__main__":
    sys.exit(main())
