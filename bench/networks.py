"""Whole-network benchmark: compile and simulation wall time, cycles and array utilization.

    .venv/bin/python bench/networks.py [--models resnet18,resnet50,ssd300_resnet18,yolov3_tiny] [--hw edge]

For each model at its default precision (W2A2 inside, 8-bit input planes): compile time (quantize,
calibrate, integerize, lower) and simulation wall time are reported separately, with the simulated
cycles, latency and frames/s at the preset's clock, and the array utilization of the 3x3 convolutions
next to their compute-bound ideal cycles (useful bit-ops / peak bit-ops per cycle). Targets from the
workloads issue: simulation of ResNet-18 <= 5 s, the others <= 30 s; 3x3 utilization >= 85 %.
"""

from __future__ import annotations

import argparse
import time

import torch

DEFAULT_MODELS = "resnet18,resnet50,ssd300_resnet18,yolov3_tiny"
SIM_TARGET_S = {"resnet18": 5.0}
OTHER_TARGET_S = 30.0


def layer_cycles(art, result) -> list[int]:
    """Cycles each layer adds to the compute unit's timeline: from the previous layer's last compute
    instruction to this layer's last one. These partition the run (prefetches overlap, spans would not)."""
    from bitbranch.isa.spec import Unit

    ends, previous = [], 0
    for layer in art.layers:
        first, end = layer.instructions
        compute = [k for k in range(first, end) if art.program[k].exec_unit == Unit.COMPUTE]
        last = max(result.timestamps.end[k] for k in compute)
        ends.append(last - previous)
        previous = last
    return ends


def conv3x3_utilization(art, result) -> tuple[int, float, float]:
    """(layers, ideal compute-bound cycles, simulated cycles) summed over the 3x3 convolutions."""
    peak = art.hw.peak_bitops_per_cycle
    ideal = simulated = 0.0
    count = 0
    for layer, cycles in zip(art.layers, layer_cycles(art, result), strict=True):
        if layer.kind != "conv" or layer.detail.get("kernel") != [3, 3]:
            continue
        ideal += layer.macs * layer.bits.w * layer.bits.a_in / peak
        simulated += cycles
        count += 1
    return count, ideal, simulated


def bench(name: str, hw) -> dict:
    from bitbranch.compiler.compile import compile_model
    from bitbranch.simulator import run
    from bitbranch.workloads import get
    from bitbranch.workloads.images import default_image

    spec = get(name)
    image = default_image(spec.input_shape)
    t0 = time.perf_counter()
    art = compile_model(spec.factory().eval(), spec.precision, hw, image)
    compile_s = time.perf_counter() - t0
    result = run(art)
    n, ideal, simulated = conv3x3_utilization(art, result)
    return {
        "model": name,
        "instructions": len(art.program),
        "compile_s": compile_s,
        "sim_s": result.wall_seconds,
        "cycles": result.cycles,
        "ms": result.cycles / (hw.clock_mhz * 1e3),
        "utilization": result.utilization,
        "conv3x3": n,
        "conv3x3_ideal": ideal,
        "conv3x3_cycles": simulated,
        "golden": result.golden_ok,
    }


def main() -> None:
    from bitbranch.isa.hwconfig import get_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--hw", default="edge")
    args = parser.parse_args()
    torch.set_num_threads(2)
    hw = get_config(args.hw)
    print(f"hardware: {hw.name} — {hw.description}")
    print(f"{'model':<18} {'insns':>7} {'compile s':>9} {'sim s':>7} {'target':>7} {'cycles':>11} {'ms':>8} "
          f"{'FPS':>7} {'util':>6} {'3x3 ideal':>10} {'3x3 sim':>10} {'3x3 util':>8} golden")
    for name in args.models.split(","):
        r = bench(name, hw)
        target = SIM_TARGET_S.get(name, OTHER_TARGET_S)
        ok = "ok" if r["sim_s"] <= target else "MISS"
        util3 = r["conv3x3_ideal"] / r["conv3x3_cycles"] if r["conv3x3_cycles"] else 0.0
        print(f"{name:<18} {r['instructions']:>7,} {r['compile_s']:>9.1f} {r['sim_s']:>7.2f} {ok:>4}<{target:<2.0f} "
              f"{r['cycles']:>11,} {r['ms']:>8.3f} {1e3 / r['ms']:>7.1f} {r['utilization']:>6.1%} "
              f"{r['conv3x3_ideal']:>10,.0f} {r['conv3x3_cycles']:>10,.0f} {util3:>8.1%} "
              f"{'yes' if r['golden'] else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
