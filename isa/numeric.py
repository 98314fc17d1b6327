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
``decomposed_matmul_fast`` computes the same integers with a GEMM on int8 operands rebuilt from the
planes (numpy float32/float64 or ``torch._int_mm``, whichever is fastest for the shape); it is exact
by construction (operand range argument, float exactness bounds, int32 overflow chunking) and is
checked against the bitwise path and against ``codes_matmul`` in the tests.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import Any

import numpy as np

__all__ = [
    "MAX_BITS",
    "WORD_BITS",
    "Operand",
    "PreparedWeights",
    "activation_operand",
    "branch_dot",
    "byte_levels",
    "check_bits",
    "check_pad_bits",
    "code_range",
    "code_to_level",
    "code_to_planes",
    "codes_from_planes_packed",
    "codes_matmul",
    "contract_coefficients",
    "decomposed_matmul",
    "decomposed_matmul_bitwise",
    "decomposed_matmul_fast",
    "gemm_threads",
    "level_to_code",
    "level_to_planes",
    "matmul_prepared",
    "operand_form",
    "num_words",
    "pack_bits",
    "plane_coefficients",
    "plane_levels",
    "planes_from_codes_packed",
    "planes_from_levels_packed",
    "planes_from_ternary_packed",
    "planes_to_code",
    "planes_to_level",
    "planes_to_ternary",
    "prepare_weights",
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


_BLOCK = 1 << 18  # elements per block when validating large code arrays


def _codes_invalid(a: np.ndarray, hi: int) -> bool:
    """Whether any code is out of -hi..hi or even, a block at a time (no full-size temporaries: a VGG fc6 is
    100 M codes); the caller then builds the error message from the whole array."""
    flat = a.reshape(-1)
    for i in range(0, flat.size, _BLOCK):
        c = flat[i : i + _BLOCK]
        if ((c < -hi) | (c > hi) | ((c & 1) == 0)).any():
            return True
    return False


def _check_codes(q: Any, n: int) -> np.ndarray:
    check_bits(n)
    a = _int_array(q, "codes")
    hi = (1 << n) - 1
    if not _codes_invalid(a, hi):
        return a.astype(np.int64, copy=False)
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
# fast exact datapath: exact GEMMs on int8 operands rebuilt from the planes
# --------------------------------------------------------------------------------------------------
@functools.cache
def _torch() -> Any:
    """torch imported lazily (slow import; the encoders and the bitwise model do not need it)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of the package
        return None
    if _THREADS[0] is not None:  # imported inside gemm_threads(): apply its limit now
        _THREADS[1] = torch.get_num_threads()
        torch.set_num_threads(_THREADS[0])
    return torch


# [limit inside gemm_threads() or None, torch's own setting to restore (None: untouched)]
_THREADS: list[int | None] = [None, None]


@contextlib.contextmanager
def gemm_threads(n: int = 1) -> Iterator[None]:
    """Run torch's GEMM kernels on n threads inside the block (restored afterwards).

    The simulator computes many small products, one after the other: there one thread is as fast as
    two, and far faster when the cores are shared (parallel sweeps, test runners), where a
    multi-threaded kernel spends its time waiting for its helper threads. torch's setting is global,
    so the limit applies to the whole process while the block runs. Not re-entrant across threads.
    """
    if _THREADS[0] is not None:  # nested: the outer block's limit stays
        yield
        return
    _THREADS[0] = n
    torch = sys.modules.get("torch")
    if torch is not None and _torch.cache_info().currsize:
        _THREADS[1] = torch.get_num_threads()
        if _THREADS[1] != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        if _THREADS[1] is not None and _THREADS[1] != n:
            sys.modules["torch"].set_num_threads(_THREADS[1])
        _THREADS[0] = _THREADS[1] = None


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


# --- operands: q = scale * v + offset with v int8 -----------------------------------------------
#
# Every operand of the contract is q = sum_i c_i (2 b_i - 1) = 2 L - S with L = sum_i c_i b_i (the
# "level" of the element) and S = sum_i c_i.  For non-negative coefficients with S <= 255 (every
# activation and weight coefficient list of the contract: 2^i for up to 8 planes, (1, 1) for ternary)
# an operand is rebuilt as an int8 matrix v plus an affine map, in one of two forms:
#     "code"      S <= 127:  v = q = 2 L - S  (-S..S)       q = v
#     "centered"  S <= 255:  v = L - 128      (-128..127)   q = 2 v + (256 - S)
# The GEMM runs on the v's and the affine parts become exact rank-1 corrections:
#     R = sa sw (va @ vw) + sa pw rowsum(va) + pa sw colsum(vw) + pa pw n
# (nothing to correct when both operands are in code form, e.g. W2A2).

# _SPREAD[b] is a uint64 whose byte j is bit j of b (0 or 1).  For 8 consecutive elements of a row,
# sum_i c_i _SPREAD[byte of plane i] holds in byte lane j element j's L <= S <= 255: no addition
# carries from one lane into the next, so the lanes are exactly the levels (little-endian hosts:
# byte j of the uint64 is element 8b + j).  The code form adds 128 - S to every lane of
# sum_i 2 c_i _SPREAD[...]: lanes 2L + 128 - S stay in 1..255 (S <= 127), and xor 0x80 turns each
# into 2L - S = q as an int8.  The centered form is L xor 0x80 = L - 128 as an int8.
_SPREAD = np.zeros(256, dtype=np.uint64)
for _j in range(8):
    _SPREAD |= ((np.arange(256, dtype=np.uint64) >> np.uint64(_j)) & np.uint64(1)) << np.uint64(8 * _j)
del _j
_LANES = 0x0101010101010101  # 1 in every byte lane
_CENTER = np.uint64(0x80 * _LANES)  # xor 0x80 in every byte lane: x -> x - 128 as int8
_LITTLE = sys.byteorder == "little"
FORMS = ("level", "code", "centered")

# Exactness bounds of the GEMM kernels.  Every partial sum of va @ vw, in whatever order a kernel adds
# the products, is an integer of magnitude <= max|va| * max|vw| * n (a sum of a subset of the n
# products).  float32 represents every integer of magnitude <= 2^24 exactly, float64 every one
# <= 2^53, so a float GEMM whose bound is below these limits performs only exact additions (and exact
# products: |va * vw| <= 2^14) and returns the integer result.  The int8 GEMM accumulates in int32:
# it is split along n into chunks whose bound is <= _INT32_MAX.
_FLOAT32_EXACT = 2**24
# Products with fewer multiply-accumulates than this use numpy (float32/float64 BLAS), at or above it
# torch._int_mm: below it the torch call overhead outweighs the faster int8 kernel (measured on the
# 2-core reference machine), and OpenBLAS computes such small products on one thread (its GEMMs
# start threads from m*n*k = 2^18), so they do not suffer from shared cores either.
_INT_MM_MIN_MACS = 1 << 18
# Tests force a kernel ("int8", "float32", "float64") to pin each path and its bound; None = by shape.
_FORCE_KERNEL: str | None = None


def contract_coefficients(coef: np.ndarray) -> bool:
    """True if plane coefficients allow the int8 operand form: non-negative with sum <= 255."""
    return _LITTLE and bool((coef >= 0).all()) and int(coef.sum()) <= 255


def operand_form(coef_sum: int) -> str:
    """The int8 form of an operand whose coefficients sum to coef_sum (<= 255): "code" if it fits."""
    return "code" if coef_sum <= 127 else "centered"


@functools.lru_cache(maxsize=64)
def _spread_tables(coef: tuple[int, ...], form: str) -> tuple[tuple[np.ndarray, ...], bool]:
    """Per plane, _SPREAD times that plane's multiplier (the form's constant folded into the first),
    and whether the lanes end with xor 0x80: byte_levels is then one lookup per plane, the additions and
    at most one xor."""
    mult = [2 * c for c in coef] if form == "code" else list(coef)
    tables = [_SPREAD * np.uint64(c) for c in mult]
    if form == "code":
        tables[0] = tables[0] + np.uint64((128 - sum(coef)) * _LANES)
    for t in tables:
        t.flags.writeable = False
    return tuple(tables), form != "level"


def byte_levels(plane_bytes: np.ndarray, coef: Sequence[int] | np.ndarray | None = None,
                form: str = "level") -> np.ndarray:
    """Plane bytes [P, ..., nb] (uint8; bit j of byte b = element 8b + j) -> uint8 [..., nb*8]: element e
    holds L_e = sum_i coef[i] * bit_i(e) (coef None: 2^i), or for form "code" / "centered" the int8
    bits of 2 L_e - S / L_e - 128 (see _SPREAD).

    Trusted inputs (see contract_coefficients; "code" needs S <= 127): one table lookup per plane
    byte plus lane-wise uint64 arithmetic, so 8 elements are combined per operation.
    """
    planes = plane_bytes.shape[0]
    key = tuple(1 << i for i in range(planes)) if coef is None else tuple(int(c) for c in coef)
    tables, center = _spread_tables(key, form)
    acc = tables[0].take(plane_bytes[0])
    for i in range(1, planes):
        acc += tables[i].take(plane_bytes[i])
    if center:
        acc ^= _CENTER
    return acc.view(np.uint8).reshape(acc.shape[:-1] + (acc.shape[-1] * 8,))


def plane_levels(words: np.ndarray, coef: np.ndarray | None = None, form: str = "level") -> np.ndarray:
    """Packed planes [P, rows, nw] (native uint64, last axis contiguous) -> uint8 [rows, nw*64] levels
    or int8 operand values (see byte_levels)."""
    return byte_levels(words.view(np.uint8), coef, form)


class Operand:
    """An activation operand q = scale * v + offset, v int8 [rows, n] with |v| <= bound."""

    __slots__ = ("bound", "offset", "scale", "v")

    def __init__(self, v: np.ndarray, scale: int, offset: int, bound: int) -> None:
        self.v, self.scale, self.offset, self.bound = v, scale, offset, bound


def activation_operand(values: np.ndarray, coef_sum: int, form: str) -> Operand:
    """Operand from plane_levels(..., form) output (uint8 [rows, n], C-contiguous), form "code" or
    "centered" (see operand_form)."""
    if form == "code":
        return Operand(values.view(np.int8), 1, 0, coef_sum)
    return Operand(values.view(np.int8), 2, 256 - coef_sum, 128)


class PreparedWeights:
    """The weight operand of a product, rebuilt once from its planes: q = scale * v + offset, v int8
    [cols, n].  The simulator keeps these across BGEMMs while the WGT entries they came from are
    unchanged.  GEMM layouts are built on first use and kept."""

    def __init__(self, v: np.ndarray, scale: int, offset: int, bound: int) -> None:
        self.v, self.scale, self.offset, self.bound = v, scale, offset, bound
        self.cols, self.n = v.shape
        self.colsum = v.sum(axis=1, dtype=np.int64)
        self.colsum32 = self.colsum.astype(np.int32)  # mod 2^32, for wrapping results
        # offset != 0: an extra all-ones column makes the same GEMM return rowsum(va)
        self.ones = offset != 0
        self.gemm_bound = max(bound, 1) if self.ones else bound
        self._layouts: dict[str, Any] = {}

    def layout(self, kind: str) -> Any:
        """[n, cols (+1)] matrix for a kernel: 'float32', 'float64' (numpy) or 'int8' (torch)."""
        m = self._layouts.get(kind)
        if m is None:
            vt = self.v.T
            if self.ones:
                vt = np.concatenate([vt, np.ones((self.n, 1), dtype=np.int8)], axis=1)
            if kind == "int8":
                m = _torch().from_numpy(np.ascontiguousarray(vt))
            else:
                m = np.ascontiguousarray(vt, dtype=np.float32 if kind == "float32" else np.float64)
            self._layouts[kind] = m
        return m


def prepare_weights(w_words: np.ndarray, n: int, w_coef: np.ndarray) -> PreparedWeights | None:
    """Weight planes [M, cols, nw] (native uint64) -> PreparedWeights, or None if the coefficients
    are outside the int8 form (then use the exact fallback)."""
    if not contract_coefficients(w_coef):
        return None
    s = int(w_coef.sum())
    form = operand_form(s)
    v = plane_levels(np.ascontiguousarray(w_words), w_coef, form).view(np.int8)
    if v.shape[1] != n:  # pad elements past n are dropped
        v = np.ascontiguousarray(v[:, :n])
    if form == "code":
        return PreparedWeights(v, 1, 0, s)
    return PreparedWeights(v, 2, 256 - s, 128)


def _choose_kernel(rows: int, cols: int, n: int, bound: int) -> str:
    """The fastest exact kernel for va [rows, n] @ vw [n, cols] whose partial sums are <= bound."""
    if _FORCE_KERNEL is not None:
        return _FORCE_KERNEL
    if rows * cols * n >= _INT_MM_MIN_MACS and _int_mm_fn() is not None:
        return "int8"
    return "float32" if bound <= _FLOAT32_EXACT else "float64"


def _gemm(va: np.ndarray, ba: int, w: PreparedWeights) -> np.ndarray:
    """G = va @ vw^T (+ the ones column), exactly: int32 [rows, cols (+1)] when no partial sum can
    exceed int32 (|va| <= ba, |vw| <= w.gemm_bound), else int64."""
    rows, n = va.shape
    bound = ba * w.gemm_bound * n
    kernel = _choose_kernel(rows, w.cols + w.ones, n, bound)
    if kernel == "int8":
        ta, tw = _torch().from_numpy(va), w.layout("int8")
        step = max(1, _INT32_MAX // max(1, ba * w.gemm_bound))  # chunks of n whose int32 sums cannot wrap
        if step >= n:
            return _int_mm_rowmajor(ta, tw).numpy()
        g = np.zeros((rows, tw.shape[1]), dtype=np.int64)
        for k0 in range(0, n, step):
            g += _int_mm_rowmajor(ta[:, k0 : k0 + step].contiguous(), tw[k0 : k0 + step]).numpy()
        return g
    wm = w.layout(kernel)
    out = np.int32 if bound <= _INT32_MAX else np.int64
    if kernel == "float32":  # chosen only when bound <= 2^24 (or forced by a test)
        return (va.astype(np.float32) @ wm).astype(out)
    step = max(1, _FLOAT64_EXACT // max(1, ba * w.gemm_bound))  # chunks beyond 2^53 (unreachable with ISA fields)
    if step >= n:
        return (va.astype(np.float64) @ wm).astype(out)
    g = np.zeros((rows, wm.shape[1]), dtype=np.int64)
    for k0 in range(0, n, step):
        g += (va[:, k0 : k0 + step].astype(np.float64) @ wm[k0 : k0 + step]).astype(np.int64)
    return g


def _int_mm_rowmajor(a: Any, b: Any) -> Any:
    """torch._int_mm on operands that already have canonical row-major strides (see _row_major: an
    operand from numpy or a prepared layout, or a .contiguous() copy, always has), padded on refusal."""
    try:
        return _torch()._int_mm(a, b)
    except RuntimeError:
        return _int_mm_int32(a, b, pad=True)


def _wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def matmul_prepared(a: Operand, w: PreparedWeights, wrap32: bool = False) -> np.ndarray:
    """R = qa @ qw^T [rows, cols] from an activation operand and prepared weights (see above): exact
    int64, or with wrap32 int32 holding R mod 2^32 (two's complement; what a wrapping int32
    accumulator stores). The affine corrections are linear, so evaluating them in wrapping int32
    arithmetic on the exact G yields exactly R mod 2^32."""
    dt = np.int32 if wrap32 else np.int64
    g = _gemm(a.v, a.bound, w)
    if g.dtype != dt:
        g = g.astype(dt)  # int64 -> int32 keeps the value mod 2^32; int32 -> int64 is exact
    cols = w.cols
    sc = a.scale * w.scale
    r = g[:, :cols] * sc if sc != 1 else g[:, :cols].copy()
    if w.ones:
        r += (a.scale * w.offset) * g[:, cols:]
    if a.offset:
        r += (a.offset * w.scale) * (w.colsum32 if wrap32 else w.colsum)
        if w.offset:
            const = a.offset * w.offset * w.n
            r += _wrap32(const) if wrap32 else const
    return r


def _exact_gemm_float64(qa: np.ndarray, qw: np.ndarray) -> np.ndarray:
    """Exact integer GEMM via float64 BLAS: every partial sum is an integer < 2^53 (chunked along N)."""
    rows, n = qa.shape
    cols = qw.shape[1]
    ba = int(np.abs(qa).max(initial=0))
    bw = int(np.abs(qw).max(initial=0))
    if ba * bw == 0:
        return np.zeros((rows, cols), dtype=np.int64)
    step = (_FLOAT64_EXACT - 1) // (ba * bw)
    if step < 1:
        return codes_matmul(qa, qw)
    out = np.zeros((rows, cols), dtype=np.int64)
    for k0 in range(0, n, step):
        ta = np.ascontiguousarray(qa[:, k0 : k0 + step], dtype=np.float64)
        tw = np.ascontiguousarray(qw[k0 : k0 + step], dtype=np.float64)
        out += (ta @ tw).astype(np.int64)
    return out


def decomposed_matmul_fast(a_words: Any, w_words: Any, n: int, a_coef: Any, w_coef: Any) -> np.ndarray:
    """Same integers as decomposed_matmul_bitwise, computed with an exact GEMM on rebuilt operands.

    Operands are rebuilt from the planes as q = scale * v + offset with v int8 (see Operand): the GEMM
    va @ vw runs on the fastest exact kernel for its shape (_choose_kernel: numpy float32/float64
    below their exactness bounds, torch._int_mm in int32 chunks that cannot wrap) and the affine parts
    are added as int64 rank-1 corrections.  Operands outside the int8 form (coefficients outside the
    contract) use an exact float64 GEMM on the codes.
    """
    a, w, n, ca, cw = _check_operands(a_words, w_words, n, a_coef, w_coef)
    rows, cols = a.shape[1], w.shape[1]
    if rows == 0 or cols == 0:
        return np.zeros((rows, cols), dtype=np.int64)
    pw = prepare_weights(w, n, cw) if contract_coefficients(ca) else None
    if pw is None:
        qa = codes_from_planes_packed(a, n, ca)
        qw = codes_from_planes_packed(w, n, cw)
        return _exact_gemm_float64(qa, qw.T)
    s = int(ca.sum())
    form = operand_form(s)
    # activation rows in blocks, so that the rebuilt operand and its temporaries stay ~64 MB
    rb = min(rows, max(1, _FAST_BLOCK_BYTES // (3 * a.shape[2] * 64)))
    out = np.empty((rows, cols), dtype=np.int64)
    for r0 in range(0, rows, rb):
        values = plane_levels(a[:, r0 : r0 + rb], ca, form)
        if values.shape[1] != n:  # pad elements past n are dropped
            values = np.ascontiguousarray(values[:, :n])
        out[r0 : r0 + rb] = matmul_prepared(activation_operand(values, s, form), pw)
    return out


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
