"""`bitbranch simulate DIR [--input IMAGE]` and `bitbranch verify DIR [--input IMAGE]`: the simulator's and the
RTL harness's commands, plus running the artifact on a new input.

Why here: recomputing the golden for a new image needs the compiler (the stored graph, the input rewrite), and
neither the simulator nor the RTL harness imports the compiler. Without `--input` these are exactly
bitbranch.simulator.cli and bitbranch.rtlharness.verify.

The image goes through what `run --input` / `compile --input` do (workloads.images.batch_frames at the model's
input shape recorded in the manifest, meta["input_shape"]), then compiler.regolden.with_input.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bitbranch.simulator import cli as simcli

if TYPE_CHECKING:
    from bitbranch.isa.artifact import Artifact


def add_input_argument(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--input", metavar="IMAGE",
                        help="run the program on this image instead of its compile-time input (PNG/JPEG or .npy "
                             "uint8, fitted to the model's input size as `run --input` does; a .npy stack of B "
                             "frames for a batch): its golden outputs are recomputed from the graph the artifact "
                             "stores")
    parser.epilog = (f"example: bitbranch compile resnet18 --hw edge -o out/r18; bitbranch {command} out/r18 --input "
                     "cat.png (exit 1 if the outputs differ from the new golden)")


def add_arguments_simulate(parser: argparse.ArgumentParser) -> None:
    simcli.add_arguments_simulate(parser)
    add_input_argument(parser, "simulate")


def cmd_simulate(args: argparse.Namespace) -> int:
    if not getattr(args, "input", None):
        return simcli.cmd_simulate(args)
    return simcli.cmd_simulate(args, prepare=lambda art: new_input(art, args.input))


def add_arguments_verify(parser: argparse.ArgumentParser) -> None:
    from bitbranch.rtlharness import verify

    verify.add_arguments_verify(parser)
    add_input_argument(parser, "verify")


def cmd_verify(args: argparse.Namespace) -> int:
    from bitbranch.rtlharness import verify

    if not getattr(args, "input", None):
        return verify.cmd_verify(args)
    return verify.cmd_verify(args, prepare=lambda art: new_input(art, args.input))


def model_input_shape(art: Artifact) -> tuple[int, ...]:
    """The model's per-frame input shape (C, H, W) or (N,), as compile recorded it (meta["input_shape"], batch
    first)."""
    from bitbranch.isa.artifact import ArtifactError

    shape = art.meta.get("input_shape")
    if not (isinstance(shape, list) and len(shape) in (2, 4) and all(isinstance(s, int) and s > 0 for s in shape)):
        raise ArtifactError(f"{art.path}/manifest.json: field 'meta.input_shape'={shape!r} is not [1, C, H, W] or "
                            "[1, N]: the model's input shape is unknown")
    return tuple(shape[1:])


def new_input(art: Artifact, path: str) -> tuple[Artifact, dict]:
    """`art` on the image at `path`, with the golden recomputed; what the report adds about the input."""
    from bitbranch.compiler.regolden import frames_of, stored_ir, with_input

    from .images import batch_frames

    graph = stored_ir(art)  # an artifact without a (sound) stored graph fails here, before the image is read
    shape = model_input_shape(art)
    try:
        frames = batch_frames(path, shape, frames_of(art))
    except ValueError as exc:  # the image does not fit: say what the artifact takes
        raise ValueError(f"--input {exc} (the artifact's input is {'x'.join(map(str, shape))}"
                         f"{f', a batch of {frames_of(art)}' if frames_of(art) > 1 else ''})") from None
    frames = list(frames) if frames_of(art) > 1 else [frames]
    return with_input(art, frames, graph), {"input": {"file": str(path), "shape": list(shape), "frames": len(frames),
                                               "golden": "recomputed"}}
