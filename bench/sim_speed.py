"""Simulator throughput benchmark: a synthetic tiled 3x3 conv (64 -> 64 channels, W2A2) on "edge".

The program is what a compiler would emit for a row-tiled convolution with double-buffered INP, ACC
and OUT halves and dependency tokens on the real instructions (no sync instructions):

    per output row y:  load   3 input rows (+ zero padding) into INP half y%2   push_next  [pop_next if y>=2]
                       bgemm  1 x W pixels, 4 column tiles, 3x3 window          pop_prev   push_prev
                       requant x4 (one per 16-channel slice) into OUT half y%2  [first: pop_next if y>=2]
                                                                                [last: push_next]
                       store  the 2-plane output row                             pop_prev   push_prev

Frames repeat the layer until the program has ~10^4 instructions. The first frame's output is
checked against a direct numpy convolution, so the benchmark also proves the program is meaningful.

    .venv/bin/python bench/sim_speed.py [--frames N] [--repeat N] [--profile] [--progress]

Each program is simulated --repeat times (default 3) and the fastest run is reported: wall time,
instructions/s and simulated cycles/s, the ratio to issue 4's target of 50,000 instructions/s, and the
process CPU time (on a machine whose cores other processes share, the CPU time shows the simulator's own
cost while the wall time also counts the waiting). --progress runs the fast datapath a second time with
`bitbranch run`'s progress bar attached (drawn into a buffer) and prints both, to show what it costs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bitbranch.isa.artifact import pack_plane_tensor, unpack_plane_tensor
from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import HwConfig, get_config
from bitbranch.simulator import datapath as sim_datapath
from bitbranch.simulator import run
from bitbranch.workloads.progress import Progress

KBITS = MBITS = KOUT = 2
MUL, BIAS, SHIFT = 1, 160, 6


@dataclass
class ConvBench:
    hw: HwConfig
    program: list[Instruction]
    dram: bytes
    levels: np.ndarray  # input levels (H, W, Cin)
    weights: np.ndarray  # odd codes (Cout, Cin, 3, 3)
    out_addr: int
    shape: tuple[int, int, int]


def _pack_weights(w: np.ndarray, hw: HwConfig) -> bytes:
    """WGT entries in BGEMM order: entry ((t*kh + ky)*kw + kx)*cw + c)*mbits + j, lane l = channel t*C + l."""
    cout, cin, kh, kw = w.shape
    c, wb = hw.array_cols, hw.word_bits
    ctiles, cw = cout // c, -(-cin // wb)
    levels = (w + (1 << MBITS) - 1) // 2  # odd code -> level index
    bits = np.zeros((ctiles, kh, kw, cw, MBITS, c, cw * wb), dtype=np.uint8)
    for j in range(MBITS):
        plane = (levels >> j) & 1  # (cout, cin, kh, kw)
        per = plane.transpose(2, 3, 1, 0).reshape(kh, kw, cin, ctiles, c)  # ky, kx, cin, t, l
        bits[:, :, :, 0, j, :, :cin] = per.transpose(3, 0, 1, 4, 2)
    return np.packbits(bits.reshape(-1, wb), axis=-1, bitorder="little").tobytes()


def build(hw: HwConfig, height: int, width: int, frames: int, seed: int = 0) -> ConvBench:
    rng = np.random.default_rng(seed)
    cin = cout = 64
    c = hw.array_cols
    ctiles, slices = cout // c, hw.word_bits // c
    assert ctiles == slices, "one 64-bit output word holds the 4 column tiles of 16 channels"
    levels = rng.integers(0, 1 << KBITS, (height, width, cin))
    weights = 2 * rng.integers(0, 1 << MBITS, (cout, cin, 3, 3)) - ((1 << MBITS) - 1)
    wgt_bytes = _pack_weights(weights, hw)
    const_rec = (np.full(c, MUL, "<i4").tobytes() + np.zeros(c, "<i4").tobytes() + np.full(c, BIAS, "<i8").tobytes())
    inp_bytes = pack_plane_tensor(levels, KBITS, hw.word_bits)
    wgt_addr, const_addr = 0, len(wgt_bytes)
    in_addr = const_addr + ctiles * len(const_rec)
    out_addr = in_addr + len(inp_bytes)
    dram = bytearray(out_addr + height * width * KOUT * hw.word_bits // 8)
    dram[wgt_addr:const_addr] = wgt_bytes
    dram[const_addr:in_addr] = const_rec * ctiles
    dram[in_addr:out_addr] = inp_bytes

    e_in = hw.entry_bytes("inp")
    row_entries = width * KBITS  # one input row: W pixels x 1 word x 2 planes
    irow = row_entries + 2 * KBITS  # plus one zero pixel on each side
    inp_half = 3 * irow
    acc_half, out_half = ctiles * width, width * KOUT
    wgt_entries = len(wgt_bytes) // hw.entry_bytes("wgt")
    program = [
        Instruction.make("load", buf=1, sram=0, dram=wgt_addr, rows=1, len=wgt_entries),
        Instruction.make("load", buf=4, sram=0, dram=const_addr, rows=1, len=ctiles),
    ]
    tile = 0
    for _ in range(frames):
        for y in range(height):
            half = tile % 2
            late = tile >= 2  # from the third tile on, a buffer half must be freed before it is reused
            tile += 1
            top, bottom = int(y == 0), int(y == height - 1)
            program.append(Instruction.make(
                "load", buf=0, sram=half * inp_half, dram=in_addr + (y - 1 + top) * row_entries * e_in,
                rows=3 - top - bottom, len=row_entries, dstride=row_entries * e_in, pad_top=top, pad_bottom=bottom,
                pad_left=KBITS, pad_right=KBITS, pop_next=int(late), push_next=1))
            program.append(Instruction.make(
                "bgemm", kbits=KBITS, mbits=MBITS, acc=half * acc_half, inp=half * inp_half, wgt=0, oh=1, ow=width,
                kh=3, kw=3, stride=1, dil=1, cw=1, ctiles=ctiles, irow=irow, ipix=KBITS, pop_prev=1, push_prev=1))
            for t in range(ctiles):
                program.append(Instruction.make(
                    "requant", dest=0, acc=half * acc_half + t * width, n=width, const=t, out=half * out_half,
                    ostride=KOUT, slice=t, kout=KOUT, shift=SHIFT, lo=0, hi=(1 << KOUT) - 1,
                    pop_next=int(late and t == 0), push_next=int(t == ctiles - 1)))
            program.append(Instruction.make(
                "store", buf=3, sram=half * out_half, dram=out_addr + y * out_half * hw.word_bits // 8, rows=1,
                len=out_half, pop_prev=1, push_prev=1))
    program.append(Instruction.make("finish"))
    return ConvBench(hw, program, bytes(dram), levels, weights, out_addr, (height, width, cout))


def reference_output(b: ConvBench) -> np.ndarray:
    """Direct convolution on codes; padding is level 0 (code -(2^K-1)), exactly as the hardware sees it."""
    h, w, _ = b.shape
    q = 2 * np.pad(b.levels, ((1, 1), (1, 1), (0, 0))) - ((1 << KBITS) - 1)
    acc = np.zeros((h, w, b.weights.shape[0]), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            acc += np.einsum("hwc,oc->hwo", q[ky:ky + h, kx:kx + w], b.weights[:, :, ky, kx])
    v = acc * MUL + BIAS
    return np.clip((v + (1 << (SHIFT - 1))) >> SHIFT, 0, (1 << KOUT) - 1)


class NumericTimer:
    """Times the simulator's calls into isa.numeric for BGEMMs (operand rebuild from the planes, weight
    preparation, the exact GEMM; the bitwise path's decomposed_matmul), so the report can separate the
    numeric core's cost from the simulator's own per-instruction cost."""

    NAMES = ("decomposed_matmul", "plane_levels", "prepare_weights", "matmul_prepared")

    def __init__(self) -> None:
        self.seconds, self.calls = 0.0, 0
        self._real = {name: getattr(sim_datapath, name) for name in self.NAMES}

    def __enter__(self) -> NumericTimer:
        def timed(real, count):
            def call(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return real(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - t
                    self.calls += count
            return call

        for name, real in self._real.items():  # one BGEMM = one GEMM call (matmul_prepared or bitwise)
            setattr(sim_datapath, name, timed(real, name in ("decomposed_matmul", "matmul_prepared")))
        return self

    def __exit__(self, *exc) -> None:
        for name, real in self._real.items():
            setattr(sim_datapath, name, real)


def _progress_bar() -> Callable[[int, int], None]:
    """`bitbranch run`'s simulation progress (workloads.progress), redrawn into a buffer instead of a terminal."""
    bar = Progress(0, "simulate", stream=io.StringIO(), mode="bar")
    return lambda done, total: bar(done, total, "layer")


def measure(b: ConvBench, datapath: str, profile: bool = False, repeat: int = 1, progress: bool = False) -> dict:
    """One simulation of the program (the fastest of `repeat`, by wall time)."""
    best = None
    for _ in range(repeat):
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        with NumericTimer() as numeric:
            t0, c0 = time.perf_counter(), time.process_time()
            result = run((b.program, b.dram, b.hw), datapath=datapath, progress=_progress_bar() if progress else None)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            profile = False
        if best is None or wall < best[0]:
            best = (wall, cpu, result, numeric)
    wall, cpu, result, numeric = best
    h, w, cout = b.shape
    got = unpack_plane_tensor(result.dram[b.out_addr : b.out_addr + h * w * KOUT * b.hw.word_bits // 8],
                              (h, w, cout), KOUT, b.hw.word_bits)
    want = reference_output(b)
    return {
        "datapath": datapath + (" +progress" if progress else ""),
        "instructions": len(b.program),
        "wall_s": wall,
        "cpu_s": cpu,
        "insn_per_s": len(b.program) / wall,
        "cycles": result.cycles,
        "cycles_per_s": result.cycles / wall,
        "utilization": result.utilization,
        "numeric_s": numeric.seconds,
        "numeric_calls": numeric.calls,
        "own_insn_per_s": len(b.program) / (wall - numeric.seconds),
        "output_ok": bool(np.array_equal(got, want)) and len(np.unique(want)) > 1,
    }


TARGET_INSN_PER_S = 50_000  # issue 4


def report(m: dict, hw: HwConfig) -> str:
    text = (f"{m['datapath']:>8}: {m['instructions']:>6,} instructions in {m['wall_s']:.3f} s = "
            f"{m['insn_per_s']:>9,.0f} instructions/s; {m['cycles']:>10,} cycles "
            f"({m['cycles'] / (hw.clock_mhz * 1e3):.2f} ms at {hw.clock_mhz:g} MHz) = "
            f"{m['cycles_per_s'] / 1e6:.2f} M simulated cycles/s; utilization {m['utilization']:.1%}; "
            f"output vs numpy conv: {'ok' if m['output_ok'] else 'WRONG'}\n"
            f"{'':>10}isa.numeric (BGEMM operands + GEMM): {m['numeric_s']:.3f} s "
            f"({m['numeric_s'] / m['wall_s']:.0%}) in {m['numeric_calls']:,} BGEMMs = "
            f"{m['numeric_s'] / max(1, m['numeric_calls']) * 1e6:.0f} us each; "
            f"everything else: {m['own_insn_per_s']:,.0f} instructions/s")
    if m["datapath"].startswith("fast"):
        text += (f"\n{'':>10}vs the target of {TARGET_INSN_PER_S:,} instructions/s: "
                 f"{m['insn_per_s'] / TARGET_INSN_PER_S:.2f}x; process CPU time {m['cpu_s']:.3f} s = "
                 f"{m['instructions'] / m['cpu_s']:,.0f} instructions per CPU second "
                 f"(differs from wall time when other processes share the cores)")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hw", default="edge")
    parser.add_argument("--size", type=int, default=56, help="feature map height = width")
    parser.add_argument("--frames", type=int, default=26, help="layer repetitions (26 x 56 rows ~ 10^4 instructions)")
    parser.add_argument("--bitwise-frames", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="cProfile the (first) fast run")
    parser.add_argument("--progress", action="store_true", help="also time the fast run with the progress bar on")
    parser.add_argument("--repeat", type=int, default=3,
                        help="simulate each program this many times and report the fastest (default 3)")
    args = parser.parse_args(argv)
    hw = get_config(args.hw)
    print(f"hardware: {hw.name} — {hw.description}")
    print(f"workload: 3x3 conv 64->64 channels, W{MBITS}A{KBITS}, {args.size}x{args.size} maps, row tiles, "
          "double-buffered INP/ACC/OUT, tokens on the instructions")
    warm = build(hw, 4, 8, 1)
    run((warm.program, warm.dram, hw))  # first-call imports (torch) are not part of the measurement
    ok = True
    runs = [("fast", args.frames, args.profile, False)] + [("fast", args.frames, False, True)] * args.progress
    for datapath, frames, profile, progress in runs + [("bitwise", args.bitwise_frames, False, False)]:
        m = measure(build(hw, args.size, args.size, frames), datapath, profile, max(1, args.repeat), progress)
        print(report(m, hw))
        ok &= m["output_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
