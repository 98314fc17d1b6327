"""What users hand `bitbranch run` / `compile` besides the model name, checked before any heavy work.

Every check here turns a bad input into one ValueError line naming the option, the file and what is
wrong, so the CLI prints `error: ...` instead of a traceback (or, for a huge input shape, instead of
being killed by the kernel minutes later). The options themselves are declared once, in
`workloads.cli.add_model_arguments`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
from torch import nn

from .registry import WorkloadSpec

MAX_CALIB_IMAGES = 64  # calibration observes every quantizer on each image; more adds time, not range
CALIB_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".npy"}


MAX_BATCH = 64  # frames in one program (each frame's activations get their own DRAM copy)


def parse_batch_shape(text: str) -> tuple[int, tuple[int, ...]]:
    """`--input-shape B,C,H,W` (or C,H,W) -> (B, (C, H, W)); `B,N` (a vector: an MLP whose first layer is a Linear)
    -> (B, (N,)). B frames run in one program (the batch)."""
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"--input-shape '{text}' is not a comma-separated list of integers") from None
    if len(dims) == 3:
        dims = (1, *dims)
    if len(dims) not in (2, 4) or min(dims) < 1:
        raise ValueError(f"--input-shape '{text}' must be B,C,H,W (images) or B,N (vectors) with every dimension "
                         ">= 1")
    if dims[0] > MAX_BATCH:
        raise ValueError(f"--input-shape '{text}': batch {dims[0]} is more than {MAX_BATCH} frames")
    return dims[0], dims[1:]


def parse_shape(text: str) -> tuple[int, ...]:
    """The per-frame shape of `--input-shape` (parse_batch_shape)."""
    return parse_batch_shape(text)[1]


def input_batch(args_batch: int | None, shape_text: str | None) -> int:
    """Frames per run from `--batch` and `--input-shape B,...` (which must agree when both are given)."""
    from_shape = parse_batch_shape(shape_text)[0] if shape_text else None
    if args_batch is not None and not 1 <= args_batch <= MAX_BATCH:
        raise ValueError(f"--batch {args_batch} must be 1..{MAX_BATCH}")
    if args_batch is not None and from_shape not in (None, 1, args_batch):
        raise ValueError(f"--batch {args_batch} disagrees with --input-shape '{shape_text}' (batch {from_shape})")
    return args_batch or from_shape or 1


def available_memory() -> int:
    """Bytes this process can still allocate without swapping (MemAvailable; physical memory if unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def memory_estimate(shape: tuple[int, ...], model: nn.Module | None = None) -> int:
    """A lower bound of the bytes compiling a (C, H, W) input needs: the uint8 image, its float tensor and int64
    levels (1 + 4 + 8 bytes per value), and the first convolution's output (float, fake-quantized and golden
    copies, 4·3 + 8 bytes per value). Real use is higher; a shape over this bound can never fit."""
    c, h, w = shape if len(shape) == 3 else (math.prod(shape), 1, 1)
    inp = c * h * w
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None) if model is not None else None
    out_c, stride = (first.out_channels, first.stride[0] * first.stride[1]) if first is not None else (c, 1)
    return inp * 13 + (out_c * h * w // max(stride, 1)) * 20


def check_input_size(shape: tuple[int, ...], model: nn.Module | None = None, where: str = "input shape") -> None:
    """Refuse an input whose buffers cannot fit in memory before anything is allocated."""
    need, have = memory_estimate(shape, model), available_memory()
    if need > have:
        raise ValueError(f"{where} {'x'.join(map(str, shape))} needs at least {need / 2**30:.1f} GiB to compile "
                         f"(the input and first layer alone), more than the {have / 2**30:.1f} GiB available; "
                         "use a smaller --input-shape")


def with_input_shape(spec: WorkloadSpec, text: str | None) -> WorkloadSpec:
    return dataclasses.replace(spec, input_shape=parse_shape(text)) if text else spec


def with_weights(spec: WorkloadSpec, path: str | None) -> WorkloadSpec:
    """The spec whose factory loads `path` (a state dict; torch.load(weights_only=True): never runs code)."""
    if not path:
        return spec
    state = load_state_dict(path)
    factory = spec.factory

    def build() -> nn.Module:
        model = factory()
        if isinstance(model, nn.Module):
            apply_state_dict(model, state, path)
        return model

    return dataclasses.replace(spec, factory=build, description=f"{spec.description} + weights {path}")


def load_state_dict(path: str) -> dict:
    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--weights {p} does not exist")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ... on bad files
        raise ValueError(f"--weights {p}: not a readable state dict ({_first_line(exc)})") from None
    if isinstance(state, dict) and len(state) == 1 and isinstance(next(iter(state.values())), dict):
        state = next(iter(state.values()))  # {"model": sd} / {"state_dict": sd}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--weights {p}: expected a state dict (parameter name -> tensor), got {type(state).__name__}")
    return state


def apply_state_dict(model: nn.Module, state: dict, path: str) -> None:
    """load_state_dict(strict=True), with a mismatch named in one line (missing / unexpected / wrong shapes)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing ({_few(missing)})"] if missing else []
        parts += [f"{len(unexpected)} unexpected ({_few(unexpected)})"] if unexpected else []
        parts += [f"shape mismatch {_few(shapes, 1)}"] if shapes else []
        raise ValueError(f"--weights {path} does not match the model: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)


def calibration_images(path: str | None, shape: tuple[int, ...]) -> list[np.ndarray] | None:
    """`--calib DIR|FILE.npy|IMAGE`: images fitted to the input shape (uint8 H, W, C); None when not given.

    A .npy file holds one image (H, W, C) / (C, H, W) or a stack (N, H, W, C) / (N, C, H, W); a directory is
    read in name order (images and .npy files). At most MAX_CALIB_IMAGES are used."""
    from .images import fit, load_image

    if not path:
        return None
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--calib {p} does not exist")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in CALIB_SUFFIXES and f.is_file())
        if not files:
            raise ValueError(f"--calib {p}: no images (.png/.jpg/.npy) in the directory")
        images: list[np.ndarray] = []
        for f in files:
            images += _images_of(f, shape, load_image, fit)
            if len(images) >= MAX_CALIB_IMAGES:
                break
    else:
        images = _images_of(p, shape, load_image, fit)
    return images[:MAX_CALIB_IMAGES]


def _images_of(f: Path, shape: tuple[int, ...], load_image, fit) -> list[np.ndarray]:
    if f.suffix.lower() == ".npy":
        with open(f, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise ValueError(f"--calib {f}: not a .npy file (no NumPy header)")
        try:
            arr = np.load(f, allow_pickle=False, mmap_mode="r")
        except ValueError as exc:
            raise ValueError(f"--calib {f}: not a readable .npy array ({_first_line(exc)})") from None
        if len(shape) == 1 and arr.ndim >= 2 and arr.size != shape[0] and arr[0].size == shape[0]:
            # a stack of M vectors: (M, N), or (M, 28, 28) digits for N = 784
            from .images import load_vector_array

            return [load_vector_array(np.asarray(a), f, shape[0], "--calib") for a in arr[:MAX_CALIB_IMAGES]]
        if arr.ndim == 4 and len(shape) == 3:
            c, h, w = shape
            stack = [np.asarray(a) for a in arr[:MAX_CALIB_IMAGES]]
            return [_fit_one(a, f, shape, fit) for a in stack]
    return [load_image(f, shape)]


def _fit_one(a: np.ndarray, f: Path, shape: tuple[int, int, int], fit) -> np.ndarray:
    c, h, w = shape
    if a.shape[-1] != c and a.shape[0] == c:
        a = np.moveaxis(a, 0, -1)
    if a.shape[-1] != c:
        raise ValueError(f"--calib {f}: images of shape {a.shape} have no axis of {c} channels")
    if a.dtype != np.uint8:
        if not (np.issubdtype(a.dtype, np.number) and a.min() >= 0 and a.max() <= 255 and np.all(a == np.round(a))):
            raise ValueError(f"--calib {f}: values must be 8-bit pixels (integers 0..255), got {a.dtype}")
        a = a.astype(np.uint8)
    return fit(np.ascontiguousarray(a), h, w)


def check_output_dir(path: str | Path, option: str) -> Path:
    """An output directory option must not name an existing file (the write would fail half-way)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{option} {p} is an existing file, not a directory")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{option} {p}: {parent} is a file, not a directory")
    return p


def check_clock(clock_mhz: float | None) -> None:
    if clock_mhz is not None and not (math.isfinite(clock_mhz) and clock_mhz > 0):
        raise ValueError(f"--clock-mhz={clock_mhz} must be a finite number > 0")


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f", ... {len(items) - n} more" if len(items) > n else "")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
