"""The `bitbranch` command: one CLI for the whole product.

Each subcommand lives with the part of the product it drives; this module only wires them up.
A subcommand module provides `add_arguments_<name>(parser)` and `cmd_<name>(args) -> int`, and keeps
heavy imports (torch) inside `cmd_<name>` so that `bitbranch asm` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass

from bitbranch import __version__
from bitbranch.isa.cliutil import fail, os_error_message
from bitbranch.isa.errors import IsaError


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str
    func: str = ""  # suffix of add_arguments_/cmd_ (default: name)


COMMANDS = (
    Command("asm", "bitbranch.isa.asm", "assemble a text program into a program binary"),
    Command("disasm", "bitbranch.isa.asm", "disassemble a program binary into text"),
    Command("isa", "bitbranch.isa.generated", "regenerate (or --check) docs/isa.md and the Verilog include", "isa_gen"),
    Command("hw", "bitbranch.hwcmd", "list hardware presets or show one"),
    Command("compile", "bitbranch.compilecmd", "compile a model into a program artifact (program, DRAM image, golden)"),
    Command("simulate", "bitbranch.workloads.newinput",
            "run a program artifact on the cycle-accurate simulator (--input: on a new image, golden recomputed)"),
    Command("verify", "bitbranch.workloads.newinput",
            "run an artifact on the Verilog RTL and compare outputs and cycles (--input: on a new image)"),
    Command("synth", "bitbranch.rtlharness.synth",
            "synthesize the core with Yosys: cells, flip-flops, inferred memories and their ports"),
    Command("fuzz", "bitbranch.rtlharness.fuzz", "differential fuzzing: random programs on the RTL vs the simulator"),
    Command("mutate", "bitbranch.rtlharness.mutate",
            "mutation testing: plant bugs in the RTL and count how many the harness catches"),
    Command("coverage", "bitbranch.rtlharness.coverage",
            "code coverage (line, branch, toggle) of the RTL under the verification suite"),
    Command("run", "bitbranch.workloads.cli", "compile + simulate + report a model in one command"),
    Command("sweep", "bitbranch.workloads.cli", "run a model over a grid of precisions x hardware presets"),
    Command("explore", "bitbranch.workloads.explore.cli",
            "design-space exploration: hardware grids x precisions x models on Dask, Pareto fronts"),
    Command("train", "bitbranch.workloads.training.traincmd",
            "quantization-aware training (and Smart Quantization) on MNIST / digits"),
    Command("demo", "bitbranch.demo", "the end-to-end demo that `make demo` runs"),
)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only the `selected` subcommand's module is imported (all when None)."""
    parser = argparse.ArgumentParser(
        prog="bitbranch",
        description="Simulator, compiler and RTL harness for a multi-branch binary neural-network accelerator.",
    )
    parser.add_argument("--version", action="version", version=f"bitbranch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.set_defaults(_command=cmd)
        if selected in (None, cmd.name):
            getattr(importlib.import_module(cmd.module), f"add_arguments_{cmd.func or cmd.name}")(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    selected = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    if not getattr(args, "_command", None):
        parser.print_help()
        return 2
    cmd: Command = args._command
    try:
        return int(getattr(importlib.import_module(cmd.module), f"cmd_{cmd.func or cmd.name}")(args) or 0)
    except (IsaError, ValueError, FileNotFoundError) as exc:
        return fail(one_line(str(exc)))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        return fail("out of memory (the model, its input shape or the hardware preset is too large for this machine)")
    except OSError as exc:
        return fail(one_line(os_error_message(exc)))
    except Exception as exc:  # noqa: BLE001 - the user never sees a traceback; BITBRANCH_TRACEBACK=1 shows it
        if os.environ.get("BITBRANCH_TRACEBACK"):
            raise
        return fail(f"internal error in '{cmd.name}': {type(exc).__name__}: {one_line(str(exc))} "
                    "(set BITBRANCH_TRACEBACK=1 to see where)")


def one_line(message: str) -> str:
    """The first non-empty line of an error message: torch and fx append multi-line context (graph dumps,
    'While executing ...') that buries what went wrong; every error is one line on stderr."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return lines[0] if lines else message.strip() or "unknown error"


if __name__ == "__main__":
    sys.exit(main())
