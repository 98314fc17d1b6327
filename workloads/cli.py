"""`bitbranch run` and `bitbranch sweep`: the throughput commands (wired up by bitbranch/cli.py).

Exit status of `run`: 0 when the simulated outputs equal the golden model's (or there is none), 1
when they differ, 2 on any error (`error: <message>`, no traceback).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

from bitbranch.isa.cliutil import fail

DEFAULT_SWEEP_BITS = "W1A1,W2A2,W4A4,W8A8"
DEFAULT_SWEEP_HW = "edge,cloud"


def model_help() -> str:
    """MODEL's help, listing the registry's networks (the registry is the one list of them)."""
    from .registry import names

    return (f"a registered network ({', '.join(names())}), torchvision:NAME or timm:NAME (the library's classifier "
            "unchanged, random weights; needs the zoo extra), or path/to/file.py:factory (imports and runs that file)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """What `compile` and `run` both take: MODEL, its precision, the hardware preset and the input image."""
    from bitbranch.isa.hwconfig import DEFAULT_PRESET

    parser.add_argument("model", metavar="MODEL", help=model_help())
    bits = parser.add_mutually_exclusive_group()
    bits.add_argument("--bits", metavar="WmAk",
                      help="default precision (e.g. W2A2, WTA2 for ternary weights); the workload's per-layer "
                           "overrides (8-bit weights in the first conv and the classifier) are kept")
    bits.add_argument("--precision", metavar="FILE",
                      help='complete precision spec, JSON or TOML (compiler format): '
                           '{"default": "W2A2", "layers": {"conv1": {"w": 8}}}')
    parser.add_argument("--hw", default=DEFAULT_PRESET, metavar="PRESET",
                        help=f"hardware preset or file.toml[:name] (default {DEFAULT_PRESET})")
    parser.add_argument("--input", metavar="IMAGE", help="PNG/JPEG image or .npy uint8 array, fitted to the model's "
                        "input size (default: scikit-learn's china.jpg)")
    parser.add_argument("--input-shape", metavar="B,C,H,W", help="input shape (default: the model's; B,N for a "
                        "vector input; B > 1 runs a batch of B frames in one program)")
    parser.add_argument("--batch", type=int, metavar="B", help="frames per run (default 1): each layer runs all B "
                        "frames with its weights loaded once; --input may then be a .npy stack of B frames")
    parser.add_argument("--calib", metavar="DIR|FILE", help="calibration images for the activation ranges: a directory "
                        "of PNG/JPEG/.npy, a .npy stack (N,H,W,C) or one image (default: the input image)")
    parser.add_argument("--weights", metavar="FILE", help="a state dict (.pt, loaded with weights_only=True) for the "
                        "model instead of its random initialisation")


@dataclass
class Prepared:
    """A model command's inputs, checked: the workload, its precision, hardware, input image and calibration set."""

    spec: object
    precision: object
    hw: object
    image: object
    calib: list | None


def prepare(args: argparse.Namespace, clock_mhz: float | None = None) -> Prepared:
    """Resolve and check what `compile` and `run` take, cheapest checks first, before anything big is allocated."""
    from .images import batch_frames
    from .registry import get
    from .userinput import (
        calibration_images,
        check_clock,
        check_input_size,
        input_batch,
        with_input_shape,
        with_weights,
    )

    check_clock(clock_mhz)
    hw = resolve_hw(args.hw, clock_mhz)
    spec = with_weights(with_input_shape(get(args.model), getattr(args, "input_shape", None)),
                        getattr(args, "weights", None))
    precision = resolve_precision(spec, args.bits, args.precision)
    batch = input_batch(getattr(args, "batch", None), getattr(args, "input_shape", None))
    check_input_size(spec.input_shape)
    image = batch_frames(args.input, spec.input_shape, batch)
    calib = calibration_images(getattr(args, "calib", None), spec.input_shape)
    return Prepared(spec, precision, hw, image, calib)


def print_warnings(meta: dict) -> None:
    """The compiler's notes (e.g. BatchNorm statistics estimated for an untrained model, compiler.bnstats) and
    liveness warnings of a compiled artifact (compiler.liveness) on stderr: stdout stays the report."""
    import sys

    for n in meta.get("notes") or []:
        print(f"note: {n}", file=sys.stderr)
    for w in (meta.get("liveness") or {}).get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)


def _safe(name: str) -> str:
    """A folder name unique per model spec: `resnet18`, `torchvision_resnet18`, `mine_build` (file.py:factory)."""
    if ":" in name and name.split(":", 1)[0].endswith(".py"):
        path, _, func = name.rpartition(":")
        name = f"{Path(path).stem}_{func}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# --- run ----------------------------------------------------------------------------------------------


def add_arguments_run(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--clock-mhz", type=float, metavar="F", help="clock for ms, frames/s and the roofline "
                        "(default: the preset's)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    parser.add_argument("--out", metavar="DIR", help="report directory (default out/run/MODEL-PRECISION-PRESET)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_energy_argument(parser)


def add_energy_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--energy", metavar="FILE", help="energy table overriding any subset of the cited defaults "
                        "(TOML, keys of bitbranch/isa/energy.toml; see docs/cost.md)")


def resolve_energy(path: str | None):
    from bitbranch.isa.energy import load_energy_table

    return load_energy_table(path)


def resolve_precision(spec, bits: str | None, precision_file: str | None):
    """--precision FILE replaces everything; --bits replaces the default, keeping per-layer overrides."""
    from bitbranch.compiler.precision import load_precision_file

    from .precision import with_default

    if precision_file:
        return load_precision_file(precision_file)
    return with_default(spec.precision, bits) if bits else spec.precision


def resolve_hw(preset: str, clock_mhz: float | None):
    import dataclasses

    from bitbranch.isa.hwconfig import get_config

    from .userinput import check_clock

    check_clock(clock_mhz)
    hw = get_config(preset)
    if clock_mhz is not None:
        hw = dataclasses.replace(hw, clock_mhz=float(clock_mhz))
    return hw


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run_workload
    from .progress import Progress
    from .report.summary import format_console, write_report
    from .userinput import check_output_dir

    job = prepare(args, args.clock_mhz)
    spec, precision, hw, image = job.spec, job.precision, job.hw, job.image
    energy = resolve_energy(args.energy)  # a bad table fails before compiling
    out = check_output_dir(args.out or f"out/run/{_safe(spec.name)}-W{precision.weight}A{precision.act_bits}-{hw.name}",
                           "--out")
    compile_bar, sim_bar = Progress(0, "compile "), Progress(0, "simulate")
    try:
        outcome = run_workload(spec, precision, hw, image, clock_mhz=hw.clock_mhz, compile_progress=compile_bar,
                               sim_progress=sim_bar, energy_table=energy, calib_images=job.calib)
    finally:
        compile_bar.close()
        sim_bar.close()
    report = outcome.report
    print_warnings(outcome.artifact.meta)
    report.input = str(args.input or "sklearn china.jpg")
    paths = write_report(report, out, plots=not args.no_plots)
    if args.json:
        print(json.dumps({**report.to_dict(), "files": {k: str(p) for k, p in paths.items()}}))
    else:
        print(format_console(report))
        print(f"\nreport: {paths['md']} (+ report.json, layers.csv{', plots' if not args.no_plots else ''})")
    return 1 if report.golden_ok is False else 0


# --- sweep --------------------------------------------------------------------------------------------


def add_arguments_sweep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help=model_help())
    parser.add_argument("--bits", default=DEFAULT_SWEEP_BITS, metavar="LIST",
                        help=f"comma-separated default precisions (default {DEFAULT_SWEEP_BITS}); the workload's "
                             "per-layer overrides are kept")
    parser.add_argument("--hw", default=DEFAULT_SWEEP_HW, metavar="LIST",
                        help=f"comma-separated presets or file.toml:name (default {DEFAULT_SWEEP_HW})")
    parser.add_argument("--clock-mhz", type=float, metavar="F", help="one clock for every preset (default: each "
                        "preset's own)")
    parser.add_argument("--jobs", "-j", type=int, metavar="N", help="worker processes (default: CPU count)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default out/sweep/MODEL)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")
    add_energy_argument(parser)


def cmd_sweep(args: argparse.Namespace) -> int:
    from bitbranch.isa.hwconfig import get_config

    from .explore.executors import ProcessExecutor
    from .explore.sweep import format_markdown, sweep, write_sweep
    from .progress import Progress
    from .registry import get

    spec = get(args.model)  # fail on an unknown model before starting workers
    precisions = [p.strip() for p in args.bits.split(",") if p.strip()]
    presets = [p.strip() for p in args.hw.split(",") if p.strip()]
    if not precisions or not presets:
        return fail("--bits and --hw each need at least one entry")
    if args.jobs is not None and args.jobs < 1:
        return fail(f"--jobs={args.jobs} must be >= 1")
    from .userinput import check_clock, check_output_dir

    check_clock(args.clock_mhz)
    if args.out:
        check_output_dir(args.out, "--out")
    for p in presets:
        get_config(p)
    resolve_energy(args.energy)  # a bad table fails before starting workers
    with Progress(len(precisions) * len(presets), "sweep") as bar:
        res = sweep(args.model, precisions, presets, ProcessExecutor(args.jobs), clock_mhz=args.clock_mhz,
                    progress=bar, energy=args.energy)
    files = write_sweep(res, Path(args.out or f"out/sweep/{_safe(spec.name)}"))
    if args.json:
        print(json.dumps({"rows": res.rows, "files": {k: str(p) for k, p in files.items()}}))
    else:
        print(format_markdown(res))
        print(f"{len(res.rows)} points in {res.wall_seconds:.1f} s; table and plots in {files['md'].parent}")
    return 1 if any(r.get("error") for r in res.rows) else 0
