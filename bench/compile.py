"""Compile-time benchmark: registry models through compiler.compile.compile_model, per phase.

    .venv/bin/python bench/compile.py [MODEL ...] [--hw edge] [--bits W2A2]

Prints, per model, the wall seconds of each compile phase (from compile_model's own progress
messages), the whole compile's wall and CPU seconds (CPU: this process only, which is what the
compiler costs when other jobs share the cores), the program size and DRAM image, or the error (a
layer that does not fit the preset's buffers, say). Weights are random with a fixed seed, so the
artifacts are reproducible. Default: every registered network.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from bitbranch.compiler.compile import compile_model
from bitbranch.isa.hwconfig import get_config
from bitbranch.workloads import get, names
from bitbranch.workloads.images import default_image
from bitbranch.workloads.precision import with_default

DONE = " done in "


def compile_one(name: str, hw_name: str, bits: str | None) -> str:
    spec = get(name)
    precision = with_default(spec.precision, bits) if bits else spec.precision
    phases: dict[str, float] = {}

    def progress(done: int, total: int, text: str) -> None:
        if DONE in text:
            phase, _, rest = text.partition(DONE)
            phases[phase] = float(rest.split()[0])

    torch.manual_seed(0)
    model, image = spec.build(), default_image(spec.input_shape)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with torch.no_grad():
            art = compile_model(model, precision, get_config(hw_name), image, progress=progress)
    except Exception as exc:  # report and go on with the next model
        return f"{name}: FAILED after {time.perf_counter() - t0:.1f} s: {type(exc).__name__}: {exc}"
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    per_phase = ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
    return (f"{name}: {wall:.1f} s wall, {cpu:.1f} s CPU ({per_phase} s); {len(art.layers)} layers, "
            f"{len(art.program)} instructions, {len(art.dram) / 1e6:.2f} MB DRAM image")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", metavar="MODEL", help="default: every registered network")
    parser.add_argument("--hw", default="edge")
    parser.add_argument("--bits", help="default precision (the workloads' per-layer overrides are kept)")
    args = parser.parse_args(argv)
    lines = [compile_one(m, args.hw, args.bits) for m in (args.models or names())]
    print("\n".join(lines))
    return 1 if any("FAILED" in ln for ln in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
