"""Input images as the accelerator sees them: uint8 (H, W, C), the model's input size, 8-bit planes.

PNG/JPEG go through Pillow: converted to RGB (or L for one channel), center-cropped to the model's
aspect ratio and resized (bilinear). `.npy` files hold uint8 (H, W, C) or (C, H, W), loaded without
pickle; other sizes are resized the same way. The default input is scikit-learn's bundled real photo
china.jpg, so every run has a real image without a download.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Center-crop a uint8 (H, W, C) image to the target aspect ratio, then resize to (height, width)."""
    from PIL import Image

    h, w, c = img.shape
    if (h, w) == (height, width):
        return img
    scale = min(h / height, w / width)
    ch, cw = round(height * scale), round(width * scale)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = img[top : top + ch, left : left + cw]
    pil = Image.fromarray(crop[..., 0] if c == 1 else crop)
    out = np.asarray(pil.resize((width, height), Image.BILINEAR), dtype=np.uint8)
    return out[..., None] if c == 1 else out


@functools.cache
def _china() -> np.ndarray:
    from sklearn.datasets import load_sample_images

    img = load_sample_images().images[0]
    img.setflags(write=False)
    return img


def _vector_side(n: int) -> int:
    return max(1, math.isqrt(n - 1) + 1)  # the smallest square holding n values


def image_as_vector(img: np.ndarray, n: int) -> np.ndarray:
    """A vector input (an MLP's (1, N)) from an image: grey, fitted to the smallest square holding N values,
    flattened row by row, the first N (a 28x28 digit for N = 784)."""
    if img.ndim == 3 and img.shape[-1] == 3:
        img = np.round(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    img = img.reshape(img.shape[0], img.shape[1], 1) if img.ndim == 3 else img[..., None]
    side = _vector_side(n)
    return np.ascontiguousarray(fit(img, side, side).reshape(-1)[:n])


def load_vector_array(arr: np.ndarray, path: object, n: int, option: str = "input") -> np.ndarray:
    """An array of N 8-bit values, any shape (a (28, 28) digit, (784,), (1, 784)), as the (N,) vector input."""
    if arr.size != n:
        raise ValueError(f"{option} {path}: array of shape {arr.shape} has {arr.size} values; the model's input is a "
                         f"vector of {n}")
    if arr.dtype != np.uint8:
        if not _is_pixels(arr):
            raise ValueError(f"{option} {path}: values must be integers in 0..255 (8-bit), got dtype {arr.dtype}")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr.reshape(-1))


def default_image(shape: tuple[int, ...]) -> np.ndarray:
    """scikit-learn's china.jpg (427x640 real photo) fitted to a (C, H, W) input shape; for a vector input (N,),
    the grey photo as a flattened square (image_as_vector)."""
    if len(shape) == 1:
        return image_as_vector(_china(), shape[0])
    c, h, w = shape
    img = _china()
    if c == 1:
        img = np.round(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    elif c != 3:
        raise ValueError(f"the default image has 3 channels; the model wants {c}: pass --input")
    return fit(img, h, w).copy()


def _npy_array(path: Path) -> np.ndarray:
    """An .npy file's one array, loaded without pickle; a clear ValueError otherwise."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError(f"{path}: not a .npy file (no NumPy header)")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({_reason(exc)})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path}: holds an archive, not one array")
    return arr


def _from_npy(path: Path, c: int) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError(f"{path}: not a .npy file (no NumPy header)")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:  # not an .npy file, or an object array (which would need pickle)
        raise ValueError(f"{path}: not a readable .npy array ({_reason(exc)})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path}: holds an archive, not one array")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"{path}: array of shape {arr.shape}; expected (H, W, C) or (C, H, W)")
    return _channels_last_pixels(arr, c, path, "shape")


def _channels_last_pixels(arr: np.ndarray, c: int, path, what: str) -> np.ndarray:
    """An (H, W, C) or (C, H, W) array as (H, W, C) uint8; `what` names the array in errors."""
    if arr.shape[-1] != c and arr.shape[0] == c:
        arr = np.moveaxis(arr, 0, -1)
    if arr.shape[-1] != c:
        raise ValueError(f"{path}: {what} {arr.shape} has no axis of {c} channels")
    if arr.dtype != np.uint8:
        if not _is_pixels(arr):
            raise ValueError(f"{path}: values must be integers in 0..255 (8-bit pixels), got dtype {arr.dtype}")
        arr = arr.astype(np.uint8)
    return arr


def _is_pixels(arr: np.ndarray) -> bool:
    """Integer-valued numbers in 0..255 (an 8-bit image saved with a wider dtype)."""
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        return False
    return bool(arr.size == 0 or (arr.min() >= 0 and arr.max() <= 255 and np.all(arr == np.round(arr))))


def load_image(path: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """An image file (PNG/JPEG/...) or .npy array as uint8 (H, W, C) fitted to the (C, H, W) input shape; for a
    vector input (N,) an .npy of N values (any shape) or an image made a vector (image_as_vector)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input image {path} {'is not a file' if path.exists() else 'does not exist'}")
    if len(shape) == 1:
        if path.suffix.lower() == ".npy":
            return load_vector_array(_npy_array(path), path, shape[0])
        return image_as_vector(_picture(path, 1), shape[0])
    c, h, w = shape
    if path.suffix.lower() == ".npy":
        try:
            arr = _from_npy(path, c)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({_reason(exc)})") from None
        return fit(arr, h, w)
    return fit(_picture(path, c), h, w)


def _picture(path: Path, c: int) -> np.ndarray:
    """An image file as uint8 (H, W, C), C = 1 (grey) or 3 (RGB), not resized."""
    from PIL import Image

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unknown input kind (give a PNG/JPEG image or a .npy array)")
    try:  # Pillow raises UnidentifiedImageError (not an image), OSError (truncated), SyntaxError/ValueError (corrupt)
        with Image.open(path) as im:
            img = np.asarray(im.convert("L" if c == 1 else "RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({_reason(exc)})") from None
    if img.ndim < 2 or min(img.shape[:2]) < 1:
        raise ValueError(f"{path}: image of size {img.shape[:2]} is empty")
    return img[..., None] if c == 1 else img


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def batch_frames(path: str | Path | None, shape: tuple[int, ...], batch: int) -> np.ndarray:
    """The input of a run: one frame (`load_image` / `default_image`), or for `batch` > 1 a stack of frames —
    from a .npy stack of exactly `batch` images (B, H, W, C) / (B, C, H, W) or vectors (B, N), else the one
    input repeated; without `--input`, scikit-learn's two photos alternating, every second pair mirrored."""
    if batch == 1:
        return load_image(path, shape) if path else default_image(shape)
    if path is None:
        from sklearn.datasets import load_sample_images

        photos = load_sample_images().images
        frames = []
        for k in range(batch):
            img = photos[k % 2][:, ::-1] if (k // 2) % 2 else photos[k % 2]
            if len(shape) == 1:
                frames.append(image_as_vector(np.ascontiguousarray(img), shape[0]))
            else:
                c, h, w = shape
                if c == 1:
                    img = np.round(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
                elif c != 3:
                    raise ValueError(f"the default images have 3 channels; the model wants {c}: pass --input")
                frames.append(fit(np.ascontiguousarray(img), h, w))
        return np.stack(frames)
    p = Path(path)
    if p.suffix.lower() == ".npy" and p.is_file():
        arr = _npy_array(p)
        if arr.ndim == len(shape) + 1:  # (B, H, W, C) / (B, C, H, W) images, (B, N) vectors
            if arr.shape[0] != batch:
                raise ValueError(f"{p}: a stack of {arr.shape[0]} frames, the batch is {batch}")
            if len(shape) == 1:
                return np.stack([load_vector_array(a, p, shape[0]) for a in arr])
            c, h, w = shape
            frames = []
            for a in arr:
                a = _channels_last_pixels(a, c, p, "a frame of shape")
                frames.append(fit(np.ascontiguousarray(a), h, w))
            return np.stack(frames)
    one = load_image(p, shape)
    return np.stack([one] * batch)
