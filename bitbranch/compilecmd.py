"""`bitbranch compile`: a model (registered workload or file.py:factory) -> a program artifact directory."""

from __future__ import annotations

import argparse
import sys
import time


def add_arguments_compile(parser: argparse.ArgumentParser) -> None:
    from bitbranch.workloads.cli import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="artifact directory to write")


def parse_shape(text: str) -> tuple[int, int, int]:
    """Kept for callers of the old name: `workloads.userinput.parse_shape`."""
    from bitbranch.workloads.userinput import parse_shape as parse

    return parse(text)


def cmd_compile(args: argparse.Namespace) -> int:
    from bitbranch.compiler.compile import compile_model
    from bitbranch.isa.artifact import save_artifact
    from bitbranch.workloads.cli import prepare, print_warnings
    from bitbranch.workloads.progress import Progress
    from bitbranch.workloads.userinput import check_output_dir

    out = check_output_dir(args.output, "-o")
    job = prepare(args)
    spec, hw = job.spec, job.hw
    t0 = time.perf_counter()

    with Progress(0, "compile") as bar:
        art = compile_model(spec.build(), job.precision, hw, job.image, calib_images=job.calib, progress=bar,
                            meta={"model": spec.name, "hw": hw.name})
    path = save_artifact(art, out)
    print(f"{spec.name} on {hw.name}: {len(art.layers)} layers, {len(art.program)} instructions, "
          f"{len(art.dram) / 1e6:.2f} MB DRAM image, outputs {', '.join(art.outputs)}; "
          f"compiled in {time.perf_counter() - t0:.1f} s -> {path}")
    print_warnings(art.meta)
    for h in art.host_ops:
        print(f"host op after the accelerator: {h['name']} ({h['reason']})", file=sys.stderr)
    return 0
