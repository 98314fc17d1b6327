"""Files generated from the ISA definition, and the `bitbranch isa gen [--check]` command.

The generated files are checked in so readers and the RTL need no Python; `stale` lets the tests
(and CI via `--check`) fail when isa/spec.py changed without regenerating them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from . import docgen, verilog
from .cliutil import fail

GENERATED: dict[Path, Callable[[], str]] = {
    Path("docs/isa.md"): docgen.render,
    Path("rtl/bitbranch_isa.vh"): verilog.render,
}

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _current(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def stale(root: str | Path) -> list[Path]:
    """Generated files (relative to root) that are missing or differ from what the generators produce."""
    root = Path(root)
    return [rel for rel, render in GENERATED.items() if _current(root / rel) != render()]


def regenerate(root: str | Path) -> list[Path]:
    """Write every generated file whose content changed; returns the paths written (under root)."""
    root = Path(root)
    written = []
    for rel, render in GENERATED.items():
        text = render()
        path = root / rel
        if _current(path) != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written


def _default_root() -> Path:
    """The source checkout this module lives in (generated files belong to the repository)."""
    if not (SOURCE_ROOT / "isa" / "spec.py").is_file() or not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise ValueError(f"{SOURCE_ROOT} is not a bitbranch source checkout; pass --root")
    return SOURCE_ROOT


def add_arguments_isa_gen(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="isa_command", metavar="ACTION", required=True)
    gen = sub.add_parser("gen", help="write docs/isa.md and rtl/bitbranch_isa.vh from isa/spec.py")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    gen.add_argument("--root", help="repository root (default: the checkout holding this isa package)")


def cmd_isa_gen(args: argparse.Namespace) -> int:
    try:
        root = Path(args.root) if getattr(args, "root", None) else _default_root()
    except ValueError as exc:
        return fail(str(exc))
    if getattr(args, "check", False):
        out_of_date = stale(root)
        for rel in out_of_date:
            print(f"stale: {rel} (run `bitbranch isa gen`)", file=sys.stderr)
        return 1 if out_of_date else 0
    for path in regenerate(root):
        print(f"wrote {path}")
    return 0
