"""RTL simulation speed: simulated cycles per wall second, and the simulator-versus-RTL wall-time ratio.

    .venv/bin/python bench/rtl.py [--models resnet18] [--hw edge] [--sim verilator] [--repeat 3]

For each model (compiled at its default precision, as bench/networks.py does) the same artifact runs on the
SimPy simulator and on the RTL core (Verilator by default; the Verilog DRAM model, no Python per cycle).
Reported: RTL cycles, the RTL's wall time for the run itself (reset release to the `finished` edge) and its
cycles/s, the wall time with simulator start-up, DRAM image load and dump, the simulator's wall time and
the ratio simulator / RTL. Best of --repeat runs; the build is done (and timed) first. Every run is also
cross-checked (outputs and cycles). Target from the RTL issue: >= 500k cycles/s on the default preset, judged
on the wall figure and on the per-CPU-second figure (the machine is shared, so the 1-minute load average is
printed before and after).
"""

from __future__ import annotations

import argparse
import os
import time

TARGET = 500_000


def compile_artifact(name: str, hw):
    import torch

    from bitbranch.compiler.compile import compile_model
    from bitbranch.workloads import get
    from bitbranch.workloads.images import default_image

    torch.set_num_threads(2)
    spec = get(name)
    return compile_model(spec.factory().eval(), spec.precision, hw, default_image(spec.input_shape))


def bench(name: str, hw, sim: str, repeat: int) -> dict:
    from bitbranch.rtlharness.bench_core import build_core
    from bitbranch.rtlharness.compare import cross_check

    t0 = time.perf_counter()
    art = compile_artifact(name, hw)
    compile_s = time.perf_counter() - t0
    b = build_core(hw, sim, len(art.dram))
    checks = [cross_check(art, sim=sim) for _ in range(repeat)]
    assert all(c.ok for c in checks), [c.to_json_dict() for c in checks if not c.ok][:1]
    rtl = min(c.wall_rtl for c in checks)
    cpu = min(c.cpu_rtl for c in checks)
    total = min(c.wall_rtl_total for c in checks)
    simw = min(c.wall_sim for c in checks)
    cycles = checks[0].cycles_rtl
    return {"model": name, "instructions": len(art.program), "dram_bytes": len(art.dram), "compile_s": compile_s,
            "build_s": b.seconds, "cycles": cycles, "rtl_s": rtl, "rtl_total_s": total, "sim_s": simw,
            "rate": cycles / rtl, "cpu_rate": cycles / cpu, "rate_total": cycles / total, "ratio": simw / rtl}


def main() -> None:
    from bitbranch.isa.hwconfig import DEFAULT_PRESET, get_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18")
    parser.add_argument("--hw", default=DEFAULT_PRESET)
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    hw = get_config(args.hw)
    print(f"hardware: {hw.name} — {hw.description}; RTL simulator: {args.sim}")
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'model':<12} {'insns':>6} {'cycles':>10} {'build s':>7} {'RTL s':>7} {'cycles/s':>10} {'target':>7} "
          f"{'/CPU s':>10} {'target':>7} {'+startup s':>10} {'cycles/s':>10} {'sim s':>7} {'sim/RTL':>7}")
    for name in args.models.split(","):
        r = bench(name, hw, args.sim, args.repeat)
        ok = "ok" if r["rate"] >= TARGET else "MISS"
        cpu_ok = "ok" if r["cpu_rate"] >= TARGET else "MISS"
        print(f"{name:<12} {r['instructions']:>6,} {r['cycles']:>10,} {r['build_s']:>7.1f} {r['rtl_s']:>7.2f} "
              f"{r['rate']:>10,.0f} {ok:>7} {r['cpu_rate']:>10,.0f} {cpu_ok:>7} {r['rtl_total_s']:>10.2f} "
              f"{r['rate_total']:>10,.0f} {r['sim_s']:>7.2f} {r['ratio']:>7.2f}", flush=True)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")
    print("(RTL s: reset release to the finished edge, wall; /CPU s: cycles per CPU second of the simulator process "
          "in that interval, which a busy machine distorts much less than the wall figure (shared caches still slow "
          "it); +startup: with simulator start-up, DRAM image load and dump; every run cross-checked: outputs and "
          "cycles equal)")


if __name__ == "__main__":
    main()
