"""Numeric core of bitbranch: the {-1,+1} bit-plane encoding and the multi-branch binary product.

Everything here implements the "Numeric contract" of DESIGN.md and nothing else, so that the golden
model, the compiler, the simulator and the RTL testbenches share one definition of the arithmetic.

Encoding.  An n-bit code (n = 1..8) is ``q = sum_{i<n} 2^i * b_i`` with ``b_i`` in {-1,+1}: the odd
integers in ``[-(2^n-1), 2^n-1]``.  Its *level index* is ``u = (q + 2^n - 1) / 2`` in ``[0, 2^n-1]``
and bit-plane ``i`` is bit ``i`` of ``u`` (LSB first), stored as 1 for +1 and 0 for -1.

Ternary weights ``t`` in {-1,0,+1} are ``(b_1 + b_0) / 2``: two planes with equal coefficients
(1, 1).  This module stores them as a thermometer code, ``plane 0 = [t >= 0]``, ``plane 1 = [t >= 1]``
(so t = 0 is b_0 = +1, b_1 = -1).  NOTE: with coefficients (1, 1) the decomposed product yields
``sum qa * (b_1 + b_0) = 2 * sum qa * t``: the factor 2 is part of the contract and is absorbed by
the requantization scale.

Packing.  Planes are packed along the reduction axis into uint64 words: element k goes to word
k // 64, bit k % 64 (LSB first).  Pad bits past the true length N are 0 in every operand, so they
xor to 0 and ``N - 2 * popcount(a ^ b)`` with the true N is exact.

Products.  ``decomposed_matmul_bitwise`` is the model of the hardware datapath (xor + popcount on
packed words, one branch per plane pair, shift-and-add with the plane coefficients).
``decomposed_matmul_fast`` computes the same integers with an int8 GEMM (``torch._int_mm``) on codes
rebuilt from the planes; it is exact by construction (operand range argument + int32 overflow
chunking) and is checked against the bitwise path and against ``codes_matmul`` in the tests.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import Any

import numpy as np

__all__ = [
    "MAX_BITS",
    "WORD_BITS",
    "branch_dot",
    "check_bits",
    "check_pad_bits",
    "code_range",
    "code_to_level",
    "code_to_planes",
    "codes_from_planes_packed",
    "codes_matmul",
    "decomposed_matmul",
    "decomposed_matmul_bitwise",
    "decomposed_matmul_fast",
    "level_to_code",
    "level_to_planes",
    "num_words",
    "pack_bits",
    "plane_coefficients",
    "planes_from_codes_packed",
    "planes_from_levels_packed",
    "planes_from_ternary_packed",
    "planes_to_code",
    "planes_to_level",
    "planes_to_ternary",
    "ternary_to_planes",
    "unpack_bits",
    "unsigned_correction",
]

MAX_BITS = 8
WORD_BITS = 64

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_FLOAT64_EXACT = 2**53
# Budget for the big temporaries of the bitwise datapath (bytes).  Small blocks stay in cache, which
# is what makes the xor/popcount loop fast (the hard ceiling is ~256 MB).
_BITWISE_BLOCK_BYTES = 1 << 21
# Below this many word-pair operations the thread pool costs more than it saves.
_BITWISE_THREAD_MIN = 1 << 22
# Rows of rebuilt int8 activations per block of the fast datapath are sized from this (bytes).
_FAST_BLOCK_BYTES = 64 << 20
_DATAPATHS = ("fast", "bitwise")


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------
def _fmt_values(values: np.ndarray, noun: str, limit: int = 5) -> str:
    """'level 9' or 'levels -1, 9, 12 (and 3 more)': error messages name the offending values."""
    uniq = np.unique(np.asarray(values).ravel())
    shown = ", ".join(str(int(v)) for v in uniq[:limit])
    more = f" (and {uniq.size - limit} more)" if uniq.size > limit else ""
    return f"{noun}{'s' if uniq.size > 1 else ''} {shown}{more}"


def _int_array(x: Any, what: str) -> np.ndarray:
    """Integer ndarray view of x; floats/bools are rejected so that 2.5 never silently becomes 2."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got dtype {a.dtype}")
    return a


def _check_int(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise ValueError(f"{what} must be an int, got {n!r}")
    return int(n)


def check_bits(n: int) -> None:
    """Raise ValueError unless n is a supported bit width (1..MAX_BITS): the hardware has 8 planes."""
    n = _check_int(n, "bit width")
    if not 1 <= n <= MAX_BITS:
        raise ValueError(f"bit width {n} out of range (1..{MAX_BITS})")


def num_words(n: int) -> int:
    """Number of uint64 words that hold a plane of length n (ceil(n / 64))."""
    n = _check_int(n, "plane length")
    if n < 0:
        raise ValueError(f"plane length {n} must be >= 0")
    return -(-n // WORD_BITS)


# --------------------------------------------------------------------------------------------------
# encoding: codes <-> levels <-> planes
# --------------------------------------------------------------------------------------------------
def code_range(n: int) -> tuple[int, int]:
    """(min, max) code of an n-bit {-1,+1} code: (-(2^n-1), 2^n-1)."""
    check_bits(n)
    hi = (1 << n) - 1
    return -hi, hi


def _check_levels(u: Any, n: int) -> np.ndarray:
    check_bits(n)
    a = _int_array(u, "levels")
    hi = (1 << n) - 1
    bad = (a < 0) | (a > hi)
    if bad.any():
        raise ValueError(f"{_fmt_values(a[bad], 'level')} out of range for {n}-bit code (0..{hi})")
    return a.astype(np.int64, copy=False)


def _check_codes(q: Any, n: int) -> np.ndarray:
    check_bits(n)
    a = _int_array(q, "codes")
    hi = (1 << n) - 1
    bad = (a < -hi) | (a > hi)
    if bad.any():
        raise ValueError(
            f"{_fmt_values(a[bad], 'code')} out of range for {n}-bit code (odd values {-hi}..{hi})"
        )
    a = a.astype(np.int64, copy=False)
    even = (a & 1) == 0
    if even.any():
        raise ValueError(
            f"{_fmt_values(a[even], 'code')} even: not a valid {n}-bit code (odd values {-hi}..{hi})"
        )
    return a


def level_to_code(u: Any, n: int) -> np.ndarray:
    """Level index -> odd code, q = 2u - (2^n - 1): how the hardware reads stored activations."""
    a = _check_levels(u, n)
    return 2 * a - ((1 << n) - 1)


def code_to_level(q: Any, n: int) -> np.ndarray:
    """Odd code -> level index, u = (q + 2^n - 1) / 2; even or out-of-range codes are rejected."""
    a = _check_codes(q, n)
    return (a + ((1 << n) - 1)) >> 1


def level_to_planes(u: Any, n: int) -> np.ndarray:
    """Level index -> bit-planes, uint8 of shape (n, *u.shape); plane i is bit i of u (1 = +1)."""
    a = _check_levels(u, n)
    shifts = np.arange(n, dtype=np.int64).reshape((n,) + (1,) * a.ndim)
    return ((a[None] >> shifts) & 1).astype(np.uint8)


def _check_planes(planes: Any) -> np.ndarray:
    p = np.asarray(planes)
    if p.dtype.kind not in "iub":
        raise ValueError(f"planes must be integers or bools, got dtype {p.dtype}")
    if p.ndim < 1:
        raise ValueError("planes need a leading plane axis, got a scalar")
    n = p.shape[0]
    if not 1 <= n <= MAX_BITS:
        raise ValueError(f"plane count (bit width) {n} out of range (1..{MAX_BITS})")
    if p.dtype.kind != "b":
        bad = (p != 0) & (p != 1)
        if bad.any():
            raise ValueError(f"{_fmt_values(p[bad], 'plane value')} not 0/1 in {n}-bit planes")
    return p


def planes_to_level(planes: Any) -> np.ndarray:
    """Bit-planes (n, ...) -> level index (int64); the inverse of level_to_planes."""
    p = _check_planes(planes)
    n = p.shape[0]
    shifts = np.arange(n, dtype=np.int64).reshape((n,) + (1,) * (p.ndim - 1))
    return (p.astype(np.int64) << shifts).sum(axis=0)


def code_to_planes(q: Any, n: int) -> np.ndarray:
    """Odd code -> bit-planes, uint8 (n, *q.shape)."""
    return level_to_planes(code_to_level(q, n), n)


def planes_to_code(planes: Any) -> np.ndarray:
    """Bit-planes (n, ...) -> odd code (int64): sum_i 2^i * (2 * plane_i - 1)."""
    p = _check_planes(planes)
    return level_to_code(planes_to_level(p), p.shape[0])


def ternary_to_planes(t: Any) -> np.ndarray:
    """Ternary weights {-1,0,+1} -> 2 planes (thermometer: plane0 = [t>=0], plane1 = [t>=1]).

    With coefficients (1, 1): (b_1 + b_0) / 2 = t, i.e. the planes carry 2t.
    """
    a = _int_array(t, "ternary weights")
    bad = (a < -1) | (a > 1)
    if bad.any():
        raise ValueError(f"{_fmt_values(a[bad], 'ternary weight')} not in {{-1, 0, 1}}")
    return np.stack([a >= 0, a >= 1]).astype(np.uint8)


def planes_to_ternary(planes: Any) -> np.ndarray:
    """2 planes -> ternary weight t = (b_1 + b_0) / 2 (int64); either order of the two planes works."""
    p = _check_planes(planes)
    if p.shape[0] != 2:
        raise ValueError(f"ternary weights need exactly 2 planes, got {p.shape[0]}")
    return p.astype(np.int64).sum(axis=0) - 1


def plane_coefficients(n: int, ternary: bool = False) -> np.ndarray:
    """Per-plane shift-and-add coefficients: (1, 2, .., 2^(n-1)) for an n-bit code, (1, 1) for ternary."""
    check_bits(n)
    if ternary:
        if n != 2:
            raise ValueError(f"ternary weights use exactly 2 planes, got bit width {n}")
        return np.ones(2, dtype=np.int64)
    return np.int64(1) << np.arange(n, dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------------------
def pack_bits(bits: Any) -> np.ndarray:
    """Pack 0/1 values along the last axis into uint64 words (element k -> word k//64, bit k%64)."""
    b = np.asarray(bits)
    if b.dtype.kind not in "iub":
        raise ValueError(f"bits must be integers or bools, got dtype {b.dtype}")
    if b.ndim < 1:
        raise ValueError("bits need at least one axis (the packed reduction axis)")
    if b.dtype.kind != "b":
        bad = (b != 0) & (b != 1)
        if bad.any():
            raise ValueError(f"{_fmt_values(b[bad], 'bit value')} not 0/1")
    n = b.shape[-1]
    nw = num_words(n)
    by = np.packbits(b.astype(np.bool_, copy=False), axis=-1, bitorder="little")
    if by.shape[-1] != nw * 8:
        pad = [(0, 0)] * (by.ndim - 1) + [(0, nw * 8 - by.shape[-1])]
        by = np.pad(by, pad)
    by = np.ascontiguousarray(by)
    return by.view("<u8").astype(np.uint64, copy=False).reshape(b.shape[:-1] + (nw,))


def _le_words(words: Any, what: str = "words") -> np.ndarray:
    w = np.asarray(words)
    if w.dtype != np.uint64:
        raise ValueError(f"{what} must be uint64, got dtype {w.dtype}")
    if w.ndim < 1:
        raise ValueError(f"{what} need at least one axis (the word axis)")
    return np.ascontiguousarray(w, dtype="<u8")


def unpack_bits(words: Any, n: int) -> np.ndarray:
    """Unpack uint64 words [..., nw] into n bits per row, uint8 [..., n] (the inverse of pack_bits)."""
    w = _le_words(words)
    n = _check_int(n, "plane length")
    nw = w.shape[-1]
    if not 0 <= n <= nw * WORD_BITS:
        raise ValueError(f"plane length {n} does not fit {nw} words (0..{nw * WORD_BITS})")
    by = w.view(np.uint8).reshape(w.shape[:-1] + (nw * 8,))
    return np.unpackbits(by, axis=-1, count=n, bitorder="little")


def check_pad_bits(words: Any, n: int, what: str = "words") -> None:
    """Raise unless words has exactly num_words(n) words per plane and every pad bit is 0.

    Exactness of N - 2*popcount(a ^ b) relies on pad bits being 0 in both operands.
    """
    w = np.asarray(words)
    nw = num_words(n)
    if w.shape[-1] != nw:
        raise ValueError(f"{what}: {w.shape[-1]} words per plane, expected {nw} for length {n}")
    rem = n % WORD_BITS
    if nw and rem:
        mask = np.uint64(((1 << WORD_BITS) - 1) ^ ((1 << rem) - 1))
        if (w[..., -1] & mask).any():
            raise ValueError(f"{what}: pad bits past length {n} are not 0")


def planes_from_levels_packed(u: Any, n: int) -> np.ndarray:
    """Level matrix [..., N] -> packed planes uint64 [n, ..., ceil(N/64)] (reduction axis last)."""
    a = _check_levels(u, n)
    if a.ndim < 1:
        raise ValueError("levels need at least one axis (the reduction axis)")
    return np.stack([pack_bits(((a >> i) & 1).astype(np.uint8)) for i in range(n)])


def planes_from_codes_packed(q: Any, n: int) -> np.ndarray:
    """Code matrix [..., N] -> packed planes uint64 [n, ..., nw].  For weights pass W^T, shape (cols, N)."""
    return planes_from_levels_packed(code_to_level(q, n), n)


def planes_from_ternary_packed(t: Any) -> np.ndarray:
    """Ternary matrix [..., N] -> packed planes uint64 [2, ..., nw] (use with plane_coefficients(2, True))."""
    p = ternary_to_planes(t)
    if p.ndim < 2:
        raise ValueError("ternary weights need at least one axis (the reduction axis)")
    return pack_bits(p)


def _check_coefs(coef: Any, planes: int, what: str) -> np.ndarray:
    c = _int_array(coef, f"{what} coefficients")
    if c.ndim != 1 or c.size != planes:
        raise ValueError(
            f"{what} coefficients: expected {planes} values (one per plane), got shape {c.shape}"
        )
    return c.astype(np.int64)


def codes_from_planes_packed(words: Any, n: int, coef: Any) -> np.ndarray:
    """Packed planes [P, ..., nw] -> integer operand sum_i coef[i] * (2*plane_i - 1), int64 [..., n]."""
    w = _le_words(words)
    if w.ndim < 2 or not 1 <= w.shape[0] <= MAX_BITS:
        raise ValueError(f"planes must have shape [planes (1..{MAX_BITS}), ..., words], got {w.shape}")
    c = _check_coefs(coef, w.shape[0], "plane")
    check_pad_bits(w, n)
    bits = unpack_bits(w, n).astype(np.int64)
    return np.tensordot(c, 2 * bits - 1, axes=(0, 0))


# --------------------------------------------------------------------------------------------------
# binary branch and the bitwise (hardware-model) datapath
# --------------------------------------------------------------------------------------------------
def branch_dot(a_words: Any, b_words: Any, n: int) -> np.ndarray:
    """One binary branch: dot of two packed +-1 planes of length n = n - 2*popcount(a ^ b); broadcasts."""
    a = _le_words(a_words, "a_words")
    b = _le_words(b_words, "b_words")
    check_pad_bits(a, n, "a_words")
    check_pad_bits(b, n, "b_words")
    pc = np.bitwise_count(a ^ b).sum(axis=-1, dtype=np.int64)
    return np.int64(n) - 2 * pc


def _check_operands(
    a_words: Any, w_words: Any, n: int, a_coef: Any, w_coef: Any
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    a = _le_words(a_words, "a_words")
    w = _le_words(w_words, "w_words")
    n = _check_int(n, "reduction length")
    if n < 1:
        raise ValueError(f"reduction length {n} must be >= 1")
    for name, x, shape in (("a_words", a, "[K, rows, nw]"), ("w_words", w, "[M, cols, nw]")):
        if x.ndim != 3:
            raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
        if not 1 <= x.shape[0] <= MAX_BITS:
            raise ValueError(f"{name}: plane count {x.shape[0]} out of range (1..{MAX_BITS})")
    check_pad_bits(a, n, "a_words")
    check_pad_bits(w, n, "w_words")
    ca = _check_coefs(a_coef, a.shape[0], "activation")
    cw = _check_coefs(w_coef, w.shape[0], "weight")
    bound = int(np.abs(ca).sum()) * int(np.abs(cw).sum()) * n
    if bound > _INT64_MAX:
        raise ValueError(f"product bound {bound} exceeds int64 (coefficients too large for length {n})")
    return a, w, n, ca, cw


def _bitwise_block(
    at: np.ndarray,
    wt: np.ndarray,
    rs: slice,
    cs: slice,
    n: int,
    ca: np.ndarray,
    cw: np.ndarray,
    out: np.ndarray,
) -> None:
    """One [rows, cols] block of the bitwise datapath: all K x M branches, word by word."""
    nw, K, _ = at.shape
    M = wt.shape[1]
    rb, cb = rs.stop - rs.start, cs.stop - cs.start
    ablk = np.ascontiguousarray(at[:, :, rs]).reshape(nw, K * rb, 1)
    wblk = np.ascontiguousarray(wt[:, :, cs]).reshape(nw, 1, M * cb)
    x = np.empty((K * rb, M * cb), dtype=np.uint64)
    cnt = np.empty(x.shape, dtype=np.uint8)
    acc = np.zeros(x.shape, dtype=np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32)
    for k in range(nw):  # popcount(a_i[r] ^ w_j[c]) summed over words, for every (i, r, j, c)
        np.bitwise_xor(ablk[k], wblk[k], out=x)
        np.bitwise_count(x, out=cnt)
        np.add(acc, cnt, out=acc)
    p = acc.reshape(K, rb, M, cb).astype(np.int64)
    s = np.tensordot(np.tensordot(ca, p, axes=(0, 0)), cw, axes=(1, 0))  # sum_ij ca_i cw_j pop_ij
    out[rs, cs] = np.int64(n) * ca.sum() * cw.sum() - 2 * s


def _worker_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def decomposed_matmul_bitwise(a_words: Any, w_words: Any, n: int, a_coef: Any, w_coef: Any) -> np.ndarray:
    """Multi-branch product by xor + popcount on packed words: the model of the hardware datapath.

    a_words [K, rows, nw], w_words [M, cols, nw] (planes packed along the reduction axis of length n).
    R[r, c] = sum_ij a_coef[i] * w_coef[j] * (n - 2 * popcount(a_i[r] ^ w_j[c])), int64 [rows, cols].
    Work is cut into [rows, cols] blocks whose temporaries are ~2 MB (cache resident, far below the
    memory budget); blocks run on a thread per core (numpy releases the GIL in ufuncs).
    """
    a, w, n, ca, cw = _check_operands(a_words, w_words, n, a_coef, w_coef)
    K, rows, nw = a.shape
    M, cols, _ = w.shape
    out = np.empty((rows, cols), dtype=np.int64)
    if rows == 0 or cols == 0:
        return out
    # word-major layouts: word k of every plane row is one contiguous [planes, rows] slice
    at = np.ascontiguousarray(a.transpose(2, 0, 1)).astype(np.uint64, copy=False)  # [nw, K, rows]
    wt = np.ascontiguousarray(w.transpose(2, 0, 1)).astype(np.uint64, copy=False)  # [nw, M, cols]
    elems = max(1, _BITWISE_BLOCK_BYTES // 8)  # uint64 xor temporary per block
    cb = min(cols, max(1, elems // (K * M)))
    rb = min(rows, max(1, elems // (K * M * cb)))
    blocks = [
        (slice(r0, min(rows, r0 + rb)), slice(c0, min(cols, c0 + cb)))
        for c0 in range(0, cols, cb)
        for r0 in range(0, rows, rb)
    ]
    workers = min(_worker_count(), len(blocks))
    if workers == 1 or K * M * rows * cols * nw < _BITWISE_THREAD_MIN:
        for rs, cs in blocks:
            _bitwise_block(at, wt, rs, cs, n, ca, cw, out)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for f in [pool.submit(_bitwise_block, at, wt, rs, cs, n, ca, cw, out) for rs, cs in blocks]:
                f.result()
    return out


# --------------------------------------------------------------------------------------------------
# fast exact datapath: int8 GEMM on codes rebuilt from the planes
# --------------------------------------------------------------------------------------------------
@functools.cache
def _torch() -> Any:
    """torch imported lazily (slow import; the encoders and the bitwise model do not need it)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of the package
        return None
    return torch


def _int_mm_fn() -> Callable[[Any, Any], Any] | None:
    torch = _torch()
    return getattr(torch, "_int_mm", None) if torch is not None else None


def _row_major(t: Any) -> Any:
    """t with canonical row-major strides (k, 1).

    The CPU _int_mm takes its leading dimensions from the strides; a size-1 dim may carry any stride
    (torch and numpy both call such tensors contiguous), oneDNN then rejects lda < k silently and the
    output is left uninitialised (pytorch/pytorch#195066).  A [1, k] slice of a transposed tensor
    has strides (1, 1) and triggers it, so every operand is normalised here.
    """
    torch = _torch()
    if t.stride() == (t.shape[1], 1):
        return t
    return torch.empty(tuple(t.shape), dtype=t.dtype).copy_(t)


def _int_mm_int32(a: Any, b: Any, pad: bool = False) -> Any:
    """int8 [m, k] @ int8 [k, n] -> int32 torch tensor via torch._int_mm (wraps on overflow).

    The CPU kernel of torch 2.13 accepts any shape; the CUDA kernel needs m > 16 and k, n multiples
    of 8.  If the plain call is refused (or pad=True, used by the tests) the operands are zero-padded
    to such a shape: zero rows/columns add nothing to the dot products and are sliced off.
    """
    torch = _torch()
    mm = _int_mm_fn()
    assert torch is not None and mm is not None
    m, k = a.shape
    n = b.shape[1]
    a, b = _row_major(a), _row_major(b)
    if not pad:
        try:
            return mm(a, b)
        except RuntimeError:
            pass
    mp, kp, np_ = max(17, -(-m // 8) * 8), max(8, -(-k // 8) * 8), max(8, -(-n // 8) * 8)
    ap = torch.zeros((mp, kp), dtype=torch.int8)
    bp = torch.zeros((kp, np_), dtype=torch.int8)
    ap[:m, :k] = a
    bp[:k, :n] = b
    return mm(ap, bp)[:m, :n]


class _Int8Operand:
    """An operand q [rows, n] written as q = scale * v + offset, v an int8 torch tensor (exact).

    All entries of q = sum_i c_i (2 b_i - 1) = 2 L - S (L = sum_i c_i b_i, S = sum c) have the parity of
    S.  If S <= 127, v = q fits int8 (scale 1, offset 0).  If S <= 255 (8-bit codes: S = 255) the
    operand is halved: v = L - ceil(S/2) in [-128, 127] and q = 2 v + (S mod 2).  The GEMM runs on v
    and the offsets become rank-1 corrections; bound is max |v|, used for the int32 chunking.
    """

    __slots__ = ("bound", "offset", "scale", "v")

    def __init__(self, v: Any, scale: int, offset: int, bound: int):
        self.v, self.scale, self.offset, self.bound = v, scale, offset, bound


_DELTA_SWAPS = ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))


def _plane_bytes(words: np.ndarray, n: int) -> Any:
    """Packed planes [P, rows, nw] -> uint8 tensor [rows, n] whose bit i is plane i of that element.

    Bytes of the P planes are interleaved into uint64 lanes (byte i = plane i, bit j = element j of
    an 8-element group) and each lane is bit-transposed (8x8) with three delta swaps (Hacker's
    Delight 7-3): afterwards byte j holds element j's bits across planes.  Little-endian hosts only.
    """
    torch = _torch()
    P, rows, nw = words.shape
    if not words.flags.writeable:
        words = words.copy()
    by = torch.from_numpy(words.view(np.uint8).reshape(P, rows, nw * 8))
    lanes = torch.zeros((rows, nw * 8, 8), dtype=torch.uint8)
    lanes[:, :, :P] = by.permute(1, 2, 0)
    x = lanes.view(torch.int64).reshape(rows, nw * 8)
    t = torch.empty_like(x)
    for s, m in _DELTA_SWAPS:  # arithmetic >> is harmless: the masks clear the sign-filled bits
        torch.bitwise_right_shift(x, s, out=t)
        t ^= x
        t &= m
        x ^= t
        x ^= t << s
    return x.view(torch.uint8).reshape(rows, nw * 64)[:, :n]


def _int8_operand(words: np.ndarray, n: int, coef: np.ndarray) -> _Int8Operand | None:
    """Rebuild q = sum_i coef_i (2 plane_i - 1) from packed planes straight into int8 (or None)."""
    torch = _torch()
    if torch is None or sys.byteorder != "little" or (coef < 0).any():
        return None
    s = int(coef.sum())
    if s > 255:
        return None
    xb = _plane_bytes(words, n)  # uint8 [rows, n], bit i = plane i
    pow2 = np.array_equal(coef, np.int64(1) << np.arange(coef.size, dtype=np.int64))
    if s <= 127:
        scale, offset, mul, sub = 1, 0, 2, s  # v = q = 2L - S
    else:
        scale, offset, mul, sub = 2, s & 1, 1, (s + 1) // 2  # v = L - ceil(S/2)
    # all arithmetic is mod 256 in uint8; the true v lies in [-128, 127], so viewing as int8 is exact
    if pow2:  # L is the byte itself
        v = torch.sub(xb * mul if mul != 1 else xb, sub)
    else:  # L through a 256-entry table
        bits = (np.arange(256)[:, None] >> np.arange(coef.size)) & 1
        table = ((mul * (bits @ coef) - sub) % 256).astype(np.uint8)
        v = torch.from_numpy(np.take(table, xb.numpy()))
    bound = max(sub, mul * s - sub)
    return _Int8Operand(v.view(torch.int8), scale, offset, bound)


def _exact_gemm_float64(qa: np.ndarray, qw: np.ndarray) -> np.ndarray:
    """Exact integer GEMM via float64 BLAS: every partial sum is an integer < 2^53 (chunked along N)."""
    torch = _torch()
    rows, n = qa.shape
    cols = qw.shape[1]
    ba = int(np.abs(qa).max(initial=0))
    bw = int(np.abs(qw).max(initial=0))
    if ba * bw == 0:
        return np.zeros((rows, cols), dtype=np.int64)
    step = (_FLOAT64_EXACT - 1) // (ba * bw)
    if step < 1 or torch is None:
        return codes_matmul(qa, qw)
    out = np.zeros((rows, cols), dtype=np.int64)
    for k0 in range(0, n, step):
        ta = torch.from_numpy(np.ascontiguousarray(qa[:, k0 : k0 + step], dtype=np.float64))
        tw = torch.from_numpy(np.ascontiguousarray(qw[k0 : k0 + step], dtype=np.float64))
        out += (ta @ tw).numpy().astype(np.int64)
    return out


def decomposed_matmul_fast(a_words: Any, w_words: Any, n: int, a_coef: Any, w_coef: Any) -> np.ndarray:
    """Same integers as decomposed_matmul_bitwise, computed with an exact int8 GEMM (torch._int_mm).

    Operands are rebuilt from the planes as q = scale * v + offset with v int8 (see _Int8Operand):
        R = sa*sw * (va @ vw) + sa*pw * rowsum(va) + pa*sw * colsum(vw) + pa*pw * n.
    rowsum(va) comes out of the same GEMM (an extra all-ones weight column).  va @ vw runs in int32
    and is split along n into chunks with max|va| * max|vw| * chunk <= 2^31 - 1, so it never wraps.
    Operands that do not fit int8 (coefficients outside the contract) use an exact float64 GEMM.
    """
    a, w, n, ca, cw = _check_operands(a_words, w_words, n, a_coef, w_coef)
    rows, cols = a.shape[1], w.shape[1]
    if rows == 0 or cols == 0:
        return np.zeros((rows, cols), dtype=np.int64)
    ow = _int8_operand(w, n, cw) if _int_mm_fn() is not None else None
    # activation rows are processed in blocks so that the rebuilt operand stays ~64 MB
    rb = min(rows, max(1, _FAST_BLOCK_BYTES // (3 * a.shape[2] * 64)))
    blocks = [slice(r0, min(rows, r0 + rb)) for r0 in range(0, rows, rb)]
    oas = [_int8_operand(a[:, rs], n, ca) for rs in blocks[:1]] if ow is not None else [None]
    if oas[0] is None or ow is None:
        qa = codes_from_planes_packed(a, n, ca)
        qw = codes_from_planes_packed(w, n, cw)
        return _exact_gemm_float64(qa, qw.T)
    torch = _torch()
    vw = ow.v.t()  # [n, cols]
    if ow.offset:  # extra column of ones: G[:, cols] = rowsum(va)
        vw = torch.cat([vw, torch.ones((n, 1), dtype=torch.int8)], dim=1)
    vw = vw.contiguous()
    colsum = ow.v.sum(dim=1, dtype=torch.int64).numpy()
    out = np.empty((rows, cols), dtype=np.int64)
    for i, rs in enumerate(blocks):
        oa = oas[0] if i == 0 else _int8_operand(a[:, rs], n, ca)
        assert oa is not None  # same coefficients as the first block
        out[rs] = _fast_block(oa, ow, vw, colsum, n, cols)
    return out


def _fast_block(
    oa: _Int8Operand, ow: _Int8Operand, vw: Any, colsum: np.ndarray, n: int, cols: int
) -> np.ndarray:
    """R for one block of activation rows from the int8 operands (see decomposed_matmul_fast)."""
    va = oa.v  # [rows, n]
    step = max(1, _INT32_MAX // max(1, oa.bound * max(1, ow.bound)))
    if step >= n:
        g = _int_mm_int32(va, vw).numpy().astype(np.int64)
    else:
        g = np.zeros((va.shape[0], vw.shape[1]), dtype=np.int64)
        for k0 in range(0, n, step):
            g += _int_mm_int32(va[:, k0 : k0 + step].contiguous(), vw[k0 : k0 + step]).numpy()
    r = g[:, :cols] * (oa.scale * ow.scale) if oa.scale * ow.scale != 1 else g[:, :cols].copy()
    if ow.offset:
        r += (oa.scale * ow.offset) * g[:, cols : cols + 1]
    if oa.offset:
        r += (oa.offset * ow.scale) * colsum[None, :]
        if ow.offset:
            r += oa.offset * ow.offset * n
    return r


def decomposed_matmul(
    a_words: Any, w_words: Any, n: int, a_coef: Any, w_coef: Any, datapath: str = "fast"
) -> np.ndarray:
    """Multi-branch product R = sum_ij a_coef[i] w_coef[j] (a_i . w_j); datapath 'fast' or 'bitwise'."""
    if datapath == "fast":
        return decomposed_matmul_fast(a_words, w_words, n, a_coef, w_coef)
    if datapath == "bitwise":
        return decomposed_matmul_bitwise(a_words, w_words, n, a_coef, w_coef)
    raise ValueError(f"unknown datapath {datapath!r} (expected one of {', '.join(_DATAPATHS)})")


# --------------------------------------------------------------------------------------------------
# references and the unsigned-activation correction
# --------------------------------------------------------------------------------------------------
def codes_matmul(qa: Any, qw: Any) -> np.ndarray:
    """Plain exact integer matmul qa [rows, N] @ qw [N, cols] in int64: the reference for the tests."""
    a = _int_array(qa, "qa").astype(np.int64, copy=False)
    b = _int_array(qw, "qw").astype(np.int64, copy=False)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"codes_matmul needs [rows, N] @ [N, cols], got {a.shape} @ {b.shape}")
    return a @ b


def unsigned_correction(r: Any, k_bits: int, w_sum: Any) -> np.ndarray:
    """sum_n u_n w_n = (R + (2^K - 1) * sum_n w_n) / 2 for K-bit level-index activations u.

    w_sum must be taken over the full (padded) window: padded positions are level 0, code -(2^K-1),
    and contribute exactly 0 to the result.  An odd numerator means R and w_sum do not belong
    together (contract violation) and raises.
    """
    check_bits(k_bits)
    rr = _int_array(r, "r").astype(np.int64, copy=False)
    ws = _int_array(w_sum, "w_sum").astype(np.int64, copy=False)
    num = rr + ((1 << k_bits) - 1) * ws
    odd = (num & 1) != 0
    if np.any(odd):
        bad = _fmt_values(np.broadcast_to(num, odd.shape)[odd], "value")
        raise ValueError(
            f"R + (2^{k_bits}-1)*w_sum is odd ({bad}): "
            f"R and w_sum are inconsistent for {k_bits}-bit activations"
        )
    return num >> 1
