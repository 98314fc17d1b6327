"""The project's single rounding rule and integer requantization, shared by golden model, simulator and RTL.

round_shift(v, s) = floor((v + 2^(s-1)) / 2^s) for s > 0 and v for s = 0: round half up (toward +inf),
done as an add and an arithmetic right shift, which is what the RTL implements. All arithmetic is
two's complement int64 and wraps; accumulators are int32 and wrap. These functions accept numpy
arrays (and torch tensors where noted) so the golden model and the simulator call the same code.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
MAX_SHIFT = 62


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's complement wrap to int32 (accumulator semantics)."""
    return np.asarray(x, dtype=np.int64).astype(np.int32)


def round_shift(v, shift: int):
    """Round-half-up right shift of int64 values (numpy arrays, torch int64 tensors or ints)."""
    if not 0 <= shift <= MAX_SHIFT:
        raise ValueError(f"shift {shift} outside 0..{MAX_SHIFT}")
    if shift == 0:
        return v
    return (v + (1 << (shift - 1))) >> shift


def round_half_up(x):
    """The same rule on real values, where the compiler quantizes floats: floor(x + 0.5).

    Accepts a float (returns an int), a numpy array or a torch tensor (returns the same kind, floored)."""
    if isinstance(x, (int, float, np.floating, np.integer)):
        return math.floor(x + 0.5)
    y = x + 0.5
    return y.floor() if hasattr(y, "floor") else np.floor(y)


def requantize(
    acc: np.ndarray,
    mul: np.ndarray,
    bias: np.ndarray,
    shift: int,
    residual: np.ndarray | None = None,
    rmul: np.ndarray | None = None,
) -> np.ndarray:
    """v = acc*mul + bias (+ residual*rmul), int64 wrapping, then round_shift. Lanes on the last axis."""
    with np.errstate(over="ignore"):
        v = np.asarray(acc, dtype=np.int64) * np.asarray(mul, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
        if residual is not None:
            v = v + np.asarray(residual, dtype=np.int64) * np.asarray(rmul, dtype=np.int64)
    return round_shift(v, shift)


def clamp_levels(r: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.clip(r, lo, hi)


def saturate_int32(r: np.ndarray) -> np.ndarray:
    return np.clip(r, INT32_MIN, INT32_MAX).astype(np.int32)
