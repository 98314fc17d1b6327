"""`bitbranch demo` (what `make demo` runs): ResNet-18 at W2A2 on a real photo, end to end.

The torch model is quantized (8-bit input planes, 8-bit first conv and classifier weights, W2A2
elsewhere), calibrated on one of scikit-learn's bundled photos, integerized into the golden model,
lowered to an accelerator program for the default `edge` preset, simulated cycle by cycle, and every
output integer is compared with the golden model. The report (console summary, report.md/json, CSV,
plots) is `bitbranch run resnet18`'s.
"""

from __future__ import annotations

import argparse

from bitbranch.isa.hwconfig import DEFAULT_PRESET


def add_arguments_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hw", default=DEFAULT_PRESET, help=f"hardware preset (default {DEFAULT_PRESET})")
    parser.add_argument("--out", default="out/demo", help="report directory (default out/demo)")


def cmd_demo(args: argparse.Namespace) -> int:
    from bitbranch.workloads.cli import add_arguments_run, cmd_run

    print("bitbranch demo: ResNet-18 (ImageNet shapes, 224x224) at W2A2 on a real photo from scikit-learn")
    # `run`'s own parser: every option it has gets its default (a hand-made Namespace missed new ones)
    run_parser = argparse.ArgumentParser(prog="bitbranch run")
    add_arguments_run(run_parser)
    argv = ["resnet18", "--bits", "W2A2", "--hw", args.hw] + (["--out", str(args.out)] if args.out else [])
    return cmd_run(run_parser.parse_args(argv))
