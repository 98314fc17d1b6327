"""`bitbranch compile`: a model (registered workload or file.py:factory) -> a program artifact directory."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments_compile(parser: argparse.ArgumentParser) -> None:
    from bitbranch.workloads.cli import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--input-shape", metavar="1,C,H,W", help="input shape (default: the model's)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="artifact directory to write")


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise ValueError(f"--input-shape '{text}' is not a comma-separated list of integers") from None
    if len(dims) != 4 or dims[0] != 1 or min(dims) < 1:
        raise ValueError(f"--input-shape '{text}' must be 1,C,H,W (batch 1)")
    return dims[1:]


def cmd_compile(args: argparse.Namespace) -> int:
    import dataclasses

    from bitbranch.compiler.compile import compile_model
    from bitbranch.isa.artifact import save_artifact
    from bitbranch.isa.hwconfig import get_config
    from bitbranch.workloads import get
    from bitbranch.workloads.cli import resolve_precision
    from bitbranch.workloads.images import default_image, load_image
    from bitbranch.workloads.progress import Progress

    hw = get_config(args.hw)
    spec = get(args.model)
    if args.input_shape:
        spec = dataclasses.replace(spec, input_shape=parse_shape(args.input_shape))
    precision = resolve_precision(spec, args.bits, args.precision)
    image = load_image(args.input, spec.input_shape) if args.input else default_image(spec.input_shape)
    t0 = time.perf_counter()

    with Progress(0, "compile") as bar:
        art = compile_model(spec.build(), precision, hw, image, progress=bar, meta={"model": spec.name, "hw": hw.name})
    path = save_artifact(art, Path(args.output))
    print(f"{spec.name} on {hw.name}: {len(art.layers)} layers, {len(art.program)} instructions, "
          f"{len(art.dram) / 1e6:.2f} MB DRAM image, outputs {', '.join(art.outputs)}; "
          f"compiled in {time.perf_counter() - t0:.1f} s -> {path}")
    for h in art.host_ops:
        print(f"host op after the accelerator: {h['name']} ({h['reason']})")
    return 0
