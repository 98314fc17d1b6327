"""Tests of isa.numeric: the {-1,+1} encoding, packing and the two product datapaths.

The reference everywhere is a plain int64 matmul of the integer codes (codes_matmul), which is
computed independently of the plane machinery.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitbranch.isa import numeric as nm

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


# --------------------------------------------------------------------------------------------------
# helpers: random operands with their independent integer reference
# --------------------------------------------------------------------------------------------------
def make_activations(rng: np.random.Generator, k: int, rows: int, n: int, extreme: str | None = None):
    """Level-index activations -> (packed planes, coefficients, codes qa [rows, n])."""
    hi = (1 << k) - 1
    if extreme == "low":
        u = np.zeros((rows, n), dtype=np.int64)
    elif extreme == "high":
        u = np.full((rows, n), hi, dtype=np.int64)
    else:
        u = rng.integers(0, hi + 1, size=(rows, n))
    qa = 2 * u - hi  # computed here, not by the module
    return nm.planes_from_levels_packed(u, k), nm.plane_coefficients(k), qa


def make_weights(rng: np.random.Generator, m: int, cols: int, n: int, ternary: bool = False, extreme=None):
    """Weights -> (packed planes [M, cols, nw], coefficients, integer operand qw [n, cols])."""
    if ternary:
        t = rng.integers(-1, 2, size=(n, cols))
        # with coefficients (1, 1) the planes carry b_1 + b_0 = 2t: the documented factor 2
        return nm.planes_from_ternary_packed(t.T), nm.plane_coefficients(2, ternary=True), 2 * t
    hi = (1 << m) - 1
    if extreme == "low":
        qw = np.full((n, cols), -hi, dtype=np.int64)
    elif extreme == "high":
        qw = np.full((n, cols), hi, dtype=np.int64)
    else:
        qw = 2 * rng.integers(0, hi + 1, size=(n, cols)) - hi
    return nm.planes_from_codes_packed(qw.T, m), nm.plane_coefficients(m), qw


def all_paths(a_words, w_words, n, ca, cw):
    return (
        nm.decomposed_matmul_bitwise(a_words, w_words, n, ca, cw),
        nm.decomposed_matmul_fast(a_words, w_words, n, ca, cw),
    )


def assert_exact(a_words, w_words, n, ca, cw, qa, qw):
    ref = nm.codes_matmul(qa, qw)
    bitwise, fast = all_paths(a_words, w_words, n, ca, cw)
    assert bitwise.dtype == np.int64 and fast.dtype == np.int64
    assert bitwise.shape == fast.shape == ref.shape
    np.testing.assert_array_equal(bitwise, ref)
    np.testing.assert_array_equal(fast, ref)


# --------------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------------
def test_two_bit_truth_table():
    # METHOD.md: -1 -> (high, low) = (-1, -1), -1/3 -> (-1, +1), 1/3 -> (+1, -1), 1 -> (+1, +1)
    q = np.array([-3, -1, 1, 3])
    planes = nm.code_to_planes(q, 2)
    assert planes.shape == (2, 4) and planes.dtype == np.uint8
    pm = 2 * planes.astype(int) - 1
    high, low = pm[1], pm[0]
    assert high.tolist() == [-1, -1, 1, 1]
    assert low.tolist() == [-1, 1, -1, 1]
    np.testing.assert_allclose(q / 3, [-1, -1 / 3, 1 / 3, 1])
    assert nm.planes_to_code(planes).tolist() == [-3, -1, 1, 3]
    assert nm.code_to_level(q, 2).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("n", range(1, 9))
def test_encoding_matches_paper_encoder_and_round_trips(n):
    lo, hi = nm.code_range(n)
    assert (lo, hi) == (-(2**n - 1), 2**n - 1)
    q = np.arange(lo, hi + 1, 2)
    u = np.arange(2**n)
    assert nm.code_to_level(q, n).tolist() == u.tolist()
    assert nm.level_to_code(u, n).tolist() == q.tolist()
    planes = nm.code_to_planes(q, n)
    assert planes.shape == (n, 2**n)
    # the paper's encoder: MSB = sign(sin((2^n-1) pi x / 2^n)), bit m < n = sign(-sin((2^n-1) pi x / 2^m))
    x = q / (2**n - 1)
    for m in range(1, n + 1):
        arg = (2**n - 1) * np.pi * x / 2**m
        expected = np.sign(np.sin(arg)) if m == n else np.sign(-np.sin(arg))
        np.testing.assert_array_equal(2 * planes[m - 1].astype(int) - 1, expected)
    # a code is the weighted sum of its +-1 planes
    np.testing.assert_array_equal((2 * planes.astype(int) - 1).T @ (2 ** np.arange(n)), q)
    np.testing.assert_array_equal(nm.planes_to_level(planes), u)
    np.testing.assert_array_equal(nm.planes_to_code(nm.level_to_planes(u, n)), q)


def test_planes_keep_array_shape():
    u = np.arange(24).reshape(2, 3, 4) % 8
    p = nm.level_to_planes(u, 3)
    assert p.shape == (3, 2, 3, 4)
    np.testing.assert_array_equal(nm.planes_to_level(p), u)


def test_ternary_planes():
    t = np.array([-1, 0, 1])
    p = nm.ternary_to_planes(t)
    # documented thermometer convention: plane 0 = [t >= 0], plane 1 = [t >= 1]
    assert p.tolist() == [[0, 1, 1], [0, 0, 1]]
    pm = 2 * p.astype(int) - 1
    np.testing.assert_array_equal((pm[0] + pm[1]) // 2, t)  # t = (b_1 + b_0) / 2
    np.testing.assert_array_equal(nm.planes_to_ternary(p), t)
    assert nm.plane_coefficients(2, ternary=True).tolist() == [1, 1]
    assert nm.plane_coefficients(5).tolist() == [1, 2, 4, 8, 16]


# --------------------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------------------
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), lead=st.lists(st.integers(1, 4), max_size=2), n=st.integers(0, 300))
def test_pack_unpack_round_trip(seed, lead, n):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(*lead, n)).astype(np.uint8)
    words = nm.pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (*lead, -(-n // 64))
    np.testing.assert_array_equal(nm.unpack_bits(words, n), bits)
    nm.check_pad_bits(words, n)  # pad bits are 0
    # layout: element k is bit k % 64 of word k // 64 (checked with Python ints, not numpy views)
    count = int(np.prod(lead))
    flat_bits, flat_words = bits.reshape(count, n), words.reshape(count, words.shape[-1])
    for row_bits, row_words in zip(flat_bits, flat_words, strict=True):
        value = sum(int(w) << (64 * i) for i, w in enumerate(row_words))
        assert value == sum(int(b) << k for k, b in enumerate(row_bits))


def test_pack_layout_explicit():
    bits = np.zeros(65, dtype=np.uint8)
    bits[[0, 3, 63, 64]] = 1
    words = nm.pack_bits(bits)
    assert words.tolist() == [(1 << 0) | (1 << 3) | (1 << 63), 1]


def test_branch_dot_is_pm1_dot_product_and_broadcasts():
    rng = np.random.default_rng(3)
    for n in (1, 63, 64, 65, 200):
        a = rng.integers(0, 2, size=(5, n)).astype(np.uint8)
        b = rng.integers(0, 2, size=(n,)).astype(np.uint8)
        got = nm.branch_dot(nm.pack_bits(a), nm.pack_bits(b), n)
        expected = (2 * a.astype(int) - 1) @ (2 * b.astype(int) - 1)
        assert got.shape == (5,)
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------------------------------
# the product: bitwise == fast == plain integer matmul of the codes
# --------------------------------------------------------------------------------------------------
@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 8),
    m=st.integers(1, 8),
    ternary=st.booleans(),
    rows=st.integers(1, 24),
    cols=st.integers(1, 12),
    n=st.one_of(st.sampled_from([1, 2, 63, 64, 65, 127, 128, 129, 576]), st.integers(1, 700)),
)
def test_product_exact_random(seed, k, m, ternary, rows, cols, n):
    rng = np.random.default_rng(seed)
    a_words, ca, qa = make_activations(rng, k, rows, n)
    w_words, cw, qw = make_weights(rng, m, cols, n, ternary=ternary)
    assert_exact(a_words, w_words, n, ca, cw, qa, qw)


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 128, 129, 1000])
@pytest.mark.parametrize(("k", "m", "ternary"), [(1, 1, False), (2, 2, False), (8, 8, False), (4, 2, True)])
def test_product_exact_boundary_lengths(n, k, m, ternary):
    rng = np.random.default_rng(n * 100 + k * 10 + m)
    a_words, ca, qa = make_activations(rng, k, 9, n)
    w_words, cw, qw = make_weights(rng, m, 7, n, ternary=ternary)
    assert_exact(a_words, w_words, n, ca, cw, qa, qw)


@pytest.mark.parametrize(("rows", "cols", "n"), [(1, 1, 1), (1, 5, 1), (6, 1, 1), (1, 1, 64), (1, 7, 65)])
@pytest.mark.parametrize("bits", [1, 7, 8])
def test_product_degenerate_shapes(rows, cols, n, bits):
    # size-1 dims produce tensors with ambiguous strides; torch._int_mm on CPU returns garbage for
    # them unless the operands are normalised (pytorch/pytorch#195066)
    rng = np.random.default_rng(rows + cols + n)
    a_words, ca, qa = make_activations(rng, bits, rows, n)
    w_words, cw, qw = make_weights(rng, bits, cols, n)
    assert_exact(a_words, w_words, n, ca, cw, qa, qw)


def test_ternary_product_has_factor_two():
    rng = np.random.default_rng(7)
    n = 100
    a_words, ca, qa = make_activations(rng, 3, 5, n)
    t = rng.integers(-1, 2, size=(n, 4))
    w_words = nm.planes_from_ternary_packed(t.T)
    cw = nm.plane_coefficients(2, ternary=True)
    for r in all_paths(a_words, w_words, n, ca, cw):
        np.testing.assert_array_equal(r, 2 * (qa @ t))


@pytest.mark.parametrize("extreme", [None, ("low", "low"), ("low", "high"), ("high", "high")])
def test_w8a8_large_n_exact(extreme):
    n = 5000
    rng = np.random.default_rng(11)
    ea, ew = extreme or (None, None)
    a_words, ca, qa = make_activations(rng, 8, 6, n, extreme=ea)
    w_words, cw, qw = make_weights(rng, 8, 5, n, extreme=ew)
    assert_exact(a_words, w_words, n, ca, cw, qa, qw)


@pytest.mark.parametrize("w_extreme", ["low", "high"])
def test_w8a8_int32_overflow_is_chunked(monkeypatch, w_extreme):
    # |R| = 255 * 255 * 140000 ~ 9.1e9, and in the halved int8 operands 128 * 127..128 * 140000 > 2^31 - 1:
    # a single int32 GEMM would wrap.  With w_extreme="high" every plane pair differs in all 140000
    # bits (popcounts beyond 16 bits).  The reference is exact int64.
    n = 140_000
    monkeypatch.setattr(nm, "_FORCE_KERNEL", "int8")  # the int32 GEMM is the kernel under test
    rng = np.random.default_rng(5)
    a_words, ca, qa = make_activations(rng, 8, 2, n, extreme="low")
    w_words, cw, qw = make_weights(rng, 8, 3, n, extreme=w_extreme)
    ref = nm.codes_matmul(qa, qw)
    assert np.abs(ref).min() > 2**32
    np.testing.assert_array_equal(nm.decomposed_matmul_fast(a_words, w_words, n, ca, cw), ref)
    np.testing.assert_array_equal(nm.decomposed_matmul_bitwise(a_words, w_words, n, ca, cw), ref)
    # the same operands without the guard do wrap: the test above is able to fail
    monkeypatch.setattr(nm, "_INT32_MAX", 2**62)
    assert not np.array_equal(nm.decomposed_matmul_fast(a_words, w_words, n, ca, cw), ref)


def test_many_int32_chunks(monkeypatch):
    # force chunks of a few elements to exercise chunk boundaries (including a ragged last chunk)
    monkeypatch.setattr(nm, "_INT32_MAX", 128 * 128 * 7)
    monkeypatch.setattr(nm, "_FORCE_KERNEL", "int8")
    rng = np.random.default_rng(8)
    n = 129
    a_words, ca, qa = make_activations(rng, 8, 4, n)
    w_words, cw, qw = make_weights(rng, 8, 3, n)
    np.testing.assert_array_equal(nm.decomposed_matmul_fast(a_words, w_words, n, ca, cw), qa @ qw)


def test_int_mm_padded_call_matches():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (5, 13), dtype=torch.int8, generator=g)
    b = torch.randint(-128, 128, (13, 3), dtype=torch.int8, generator=g)
    expected = a.long() @ b.long()
    assert torch.equal(nm._int_mm_int32(a, b, pad=True).long(), expected)
    assert torch.equal(nm._int_mm_int32(a, b).long(), expected)
    # a [1, k] operand with strides (1, 1): the case that needs normalising
    bt = torch.randint(-128, 128, (3, 1), dtype=torch.int8, generator=g).t()
    at = torch.randint(-128, 128, (4, 1), dtype=torch.int8, generator=g)
    assert bt.stride() == (1, 1)
    assert torch.equal(nm._int_mm_int32(at, bt).long(), at.long() @ bt.long())


def test_coefficients_outside_int8_use_exact_fallback():
    # not the contract's coefficient lists, but the API takes any: negative and large coefficients
    rng = np.random.default_rng(9)
    n = 150
    a_bits = rng.integers(0, 2, size=(3, 4, n)).astype(np.uint8)
    w_bits = rng.integers(0, 2, size=(2, 5, n)).astype(np.uint8)
    ca, cw = np.array([3, -5, 1000]), np.array([300, 1])
    qa = np.tensordot(ca, 2 * a_bits.astype(np.int64) - 1, axes=(0, 0))
    qw = np.tensordot(cw, 2 * w_bits.astype(np.int64) - 1, axes=(0, 0)).T
    a_words, w_words = nm.pack_bits(a_bits), nm.pack_bits(w_bits)
    np.testing.assert_array_equal(nm.codes_from_planes_packed(a_words, n, ca), qa)
    assert_exact(a_words, w_words, n, ca, cw, qa, qw)


# --------------------------------------------------------------------------------------------------
# the fast path's pieces: operand forms, kernels and their exactness bounds
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coef", [[1], [1, 2], [1, 2, 4, 8, 16, 32, 64], [1, 2, 4, 8, 16, 32, 64, 128], [1, 1],
                                  [3, 0, 5], [100, 27], [255], [127]])
def test_byte_levels_forms(coef):
    """Levels, codes and centered values from plane bytes equal the direct sums, lane by lane."""
    rng = np.random.default_rng(len(coef) * 1000 + sum(coef))
    coef = np.array(coef, dtype=np.int64)
    bits = rng.integers(0, 2, size=(coef.size, 5, 3, 72)).astype(np.uint8)
    bits[:, 0, 0, :] = 1  # extremes: every lane at L = S and at L = 0
    bits[:, 0, 1, :] = 0
    planes = np.packbits(bits, axis=-1, bitorder="little")  # [P, 5, 3, 9] bytes
    level = np.tensordot(coef, bits.astype(np.int64), axes=(0, 0))  # [5, 3, 72]
    s = int(coef.sum())
    np.testing.assert_array_equal(nm.byte_levels(planes, coef, "level"), level)
    np.testing.assert_array_equal(nm.byte_levels(planes, coef, "centered").view(np.int8), level - 128)
    if s <= 127:
        np.testing.assert_array_equal(nm.byte_levels(planes, coef, "code").view(np.int8), 2 * level - s)
        assert nm.operand_form(s) == "code"
    else:
        assert nm.operand_form(s) == "centered"
    if np.array_equal(coef, nm.plane_coefficients(coef.size)):
        np.testing.assert_array_equal(nm.byte_levels(planes), level)  # default: 2^i


def _prepared_product(rng, k, m, rows, cols, n, ternary=False):
    a_words, ca, qa = make_activations(rng, k, rows, n)
    w_words, cw, qw = make_weights(rng, m, cols, n, ternary=ternary)
    form = nm.operand_form(int(ca.sum()))
    values = np.ascontiguousarray(nm.plane_levels(a_words, ca, form)[:, :n])
    a = nm.activation_operand(values, int(ca.sum()), form)
    return a, nm.prepare_weights(w_words, n, cw), nm.codes_matmul(qa, qw)


@pytest.mark.parametrize("kernel", ["int8", "float32", "float64"])
@pytest.mark.parametrize(("k", "m", "ternary"), [(1, 1, False), (2, 2, False), (8, 2, False), (2, 8, False),
                                                 (8, 8, False), (3, 2, True)])
@pytest.mark.parametrize(("rows", "cols", "n"), [(1, 1, 1), (1, 5, 64), (6, 1, 65), (7, 9, 576), (1, 1, 200)])
def test_every_kernel_is_exact(monkeypatch, kernel, k, m, ternary, rows, cols, n):
    """Each GEMM kernel on each operand form (code / centered, with their corrections), including the
    size-1 shapes that need row-major operands for torch._int_mm, within the kernel's bound."""
    monkeypatch.setattr(nm, "_FORCE_KERNEL", kernel)
    a, w, ref = _prepared_product(np.random.default_rng(rows * 100 + cols + n + k + m), k, m, rows, cols, n, ternary)
    if kernel == "float32" and a.bound * w.gemm_bound * n > 2**24:
        pytest.skip("float32 is only chosen within its exactness bound (see the boundary test)")
    np.testing.assert_array_equal(nm.matmul_prepared(a, w), ref)
    wrapped = nm.matmul_prepared(a, w, wrap32=True)
    assert wrapped.dtype == np.int32
    np.testing.assert_array_equal(wrapped, ref.astype(np.int32))  # R mod 2^32


def test_float32_exactness_bound(monkeypatch):
    """va @ vw runs in float32 only while max|va| * max|vw| * n <= 2^24, where every partial sum is an
    exactly representable integer; one step past the bound the product is routed to float64, and
    float32 would indeed be wrong there."""
    monkeypatch.setattr(nm, "_INT_MM_MIN_MACS", 1 << 62)  # numpy kernels only
    assert nm._choose_kernel(1, 1, 1, 2**24) == "float32"
    assert nm._choose_kernel(1, 1, 1, 2**24 + 1) == "float64"
    # 8-bit operands, centered: v = L - 128, so |v| <= 128 and the bound is 2^14 * n
    for n, kernel in ((1024, "float32"), (1025, "float64")):
        rows, cols = 3, 2
        u = np.zeros((rows, n), dtype=np.int64)  # level 0: va = -128 everywhere, qa = -255
        qw = np.full((n, cols), -255, dtype=np.int64)  # level 0: vw = -128, qw = -255
        qw[:, 1] = 255 - 2 * (np.arange(n) % 2)  # mixed: odd partial sums
        a_words, ca = nm.planes_from_levels_packed(u, 8), nm.plane_coefficients(8)
        w_words, cw = nm.planes_from_codes_packed(qw.T, 8), nm.plane_coefficients(8)
        a = nm.activation_operand(nm.plane_levels(a_words, ca, "centered")[:, :n].copy(), 255, "centered")
        w = nm.prepare_weights(w_words, n, cw)
        assert a.bound * w.gemm_bound * n == 2**14 * n
        assert nm._choose_kernel(rows, cols + w.ones, n, a.bound * w.gemm_bound * n) == kernel
        ref = nm.codes_matmul(2 * u - 255, qw)
        np.testing.assert_array_equal(nm.matmul_prepared(a, w), ref)
        np.testing.assert_array_equal(nm.decomposed_matmul_fast(a_words, w_words, n, ca, cw), ref)
    # past the bound float32 rounds: 127 * 127 * 1041 = 16,790,289 is odd and above 2^24
    n = 1041
    va = np.full((1, n), 127, dtype=np.int8)
    w = nm.PreparedWeights(np.full((1, n), 127, dtype=np.int8), 1, 0, 127)
    monkeypatch.setattr(nm, "_FORCE_KERNEL", "float32")
    assert nm._gemm(va, 127, w)[0, 0] != 127 * 127 * n
    monkeypatch.setattr(nm, "_FORCE_KERNEL", None)
    assert nm._gemm(va, 127, w)[0, 0] == 127 * 127 * n


def test_prepared_weights_form_and_corrections():
    rng = np.random.default_rng(21)
    a, w, ref = _prepared_product(rng, 2, 2, 4, 3, 128)
    assert (a.scale, a.offset, w.scale, w.offset, w.ones) == (1, 0, 1, 0, False)  # W2A2: no corrections
    a, w, ref = _prepared_product(rng, 8, 8, 4, 3, 128)
    assert (a.scale, a.offset, w.scale, w.offset, w.ones) == (2, 1, 2, 1, True)  # 8-bit: centered forms
    np.testing.assert_array_equal(nm.matmul_prepared(a, w), ref)


def test_gemm_threads_restores_torch_setting():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with nm.gemm_threads(1):
        nm._torch()
        assert torch.get_num_threads() == 1
        with nm.gemm_threads(1):
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_bitwise_blocking_and_threads(monkeypatch):
    # tiny blocks (split over rows and cols) on the thread pool give the same integers
    monkeypatch.setattr(nm, "_BITWISE_BLOCK_BYTES", 8 * 4 * 3 * 5)
    monkeypatch.setattr(nm, "_BITWISE_THREAD_MIN", 0)
    rng = np.random.default_rng(10)
    n = 130
    a_words, ca, qa = make_activations(rng, 4, 23, n)
    w_words, cw, qw = make_weights(rng, 3, 11, n)
    np.testing.assert_array_equal(nm.decomposed_matmul_bitwise(a_words, w_words, n, ca, cw), qa @ qw)


@pytest.mark.parametrize(("k", "m"), [(8, 8), (3, 8), (8, 2)])
def test_fast_row_blocks(monkeypatch, k, m):
    # blocks of 2 activation rows (a ragged last block): per-block operands and corrections agree
    rng = np.random.default_rng(14)
    n = 70
    monkeypatch.setattr(nm, "_FAST_BLOCK_BYTES", 2 * 3 * 64 * 2)
    a_words, ca, qa = make_activations(rng, k, 7, n)
    w_words, cw, qw = make_weights(rng, m, 5, n)
    np.testing.assert_array_equal(nm.decomposed_matmul_fast(a_words, w_words, n, ca, cw), qa @ qw)


def test_dispatch():
    rng = np.random.default_rng(12)
    a_words, ca, qa = make_activations(rng, 2, 3, 70)
    w_words, cw, qw = make_weights(rng, 2, 4, 70)
    for datapath in ("fast", "bitwise"):
        r = nm.decomposed_matmul(a_words, w_words, 70, ca, cw, datapath=datapath)
        np.testing.assert_array_equal(r, qa @ qw)
    with pytest.raises(ValueError, match="unknown datapath 'gpu'"):
        nm.decomposed_matmul(a_words, w_words, 70, ca, cw, datapath="gpu")


# --------------------------------------------------------------------------------------------------
# unsigned activations and zero padding
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "m"), [(1, 1), (2, 2), (4, 3), (8, 8)])
def test_zero_padding_is_level_zero(k, m):
    """1-D conv, kernel 5, padding 2: padded taps are level 0 and need no special case."""
    rng = np.random.default_rng(k * 10 + m)
    length, width, pad, cin, cout = 17, 5, 2, 3, 4
    u = rng.integers(0, 2**k, size=(length, cin))  # unsigned activations (level indices)
    w = 2 * rng.integers(0, 2**m, size=(width, cin, cout)) - (2**m - 1)  # odd weight codes
    # reference: sum over the valid taps only, on the unsigned values
    expected = np.zeros((length, cout), dtype=np.int64)
    for o in range(length):
        for tap in range(width):
            pos = o + tap - pad
            if 0 <= pos < length:
                expected[o] += u[pos] @ w[tap]
    # accelerator view: padded windows (level 0 at the border), codes q = 2u - (2^K - 1)
    up = np.concatenate([np.zeros((pad, cin), np.int64), u, np.zeros((pad, cin), np.int64)])
    windows = np.stack([up[o : o + width].reshape(-1) for o in range(length)])  # [length, width*cin]
    n = width * cin
    wmat = w.reshape(n, cout)
    a_words = nm.planes_from_levels_packed(windows, k)
    w_words = nm.planes_from_codes_packed(wmat.T, m)
    ca, cw = nm.plane_coefficients(k), nm.plane_coefficients(m)
    r = nm.decomposed_matmul_fast(a_words, w_words, n, ca, cw)
    np.testing.assert_array_equal(r, nm.decomposed_matmul_bitwise(a_words, w_words, n, ca, cw))
    # padded taps do contribute -(2^K - 1) * w to R ...
    np.testing.assert_array_equal(r, nm.level_to_code(windows, k) @ wmat)
    # ... and exactly 0 to sum u*w once the full-window constant is used
    got = nm.unsigned_correction(r, k, wmat.sum(axis=0))
    np.testing.assert_array_equal(got, expected)


def test_unsigned_correction_rejects_odd_numerator():
    assert nm.unsigned_correction(np.array([5]), 2, np.array([1])).tolist() == [4]  # (5 + 3) / 2
    with pytest.raises(ValueError, match=r"is odd \(value 9\).*2-bit"):
        nm.unsigned_correction(np.array([6]), 2, np.array([1]))


# --------------------------------------------------------------------------------------------------
# errors name the offending value and the bit width
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: nm.code_to_level(9, 3), "code 9 out of range for 3-bit code (odd values -7..7)"),
        (lambda: nm.code_to_level(-9, 3), "code -9 out of range for 3-bit code"),
        (lambda: nm.code_to_level(np.array([1, 4, 3]), 3), "code 4 even: not a valid 3-bit code"),
        (lambda: nm.code_to_planes(0, 1), "code 0 even: not a valid 1-bit code (odd values -1..1)"),
        (lambda: nm.planes_from_codes_packed([[257]], 8), "code 257 out of range for 8-bit code"),
        (lambda: nm.level_to_code(9, 3), "level 9 out of range for 3-bit code (0..7)"),
        (lambda: nm.level_to_planes(np.array([-1, 2]), 2), "level -1 out of range for 2-bit code (0..3)"),
        (lambda: nm.planes_from_levels_packed([[0, 16, 20]], 4), "levels 16, 20 out of range for 4-bit"),
        (lambda: nm.check_bits(0), "bit width 0 out of range (1..8)"),
        (lambda: nm.check_bits(9), "bit width 9 out of range (1..8)"),
        (lambda: nm.level_to_code(1, 9), "bit width 9 out of range (1..8)"),
        (lambda: nm.code_range(0), "bit width 0 out of range (1..8)"),
        (lambda: nm.check_bits(2.0), "bit width must be an int, got 2.0"),
        (lambda: nm.level_to_code(np.array([1.5]), 2), "levels must be integers, got dtype float64"),
        (
            lambda: nm.plane_coefficients(3, ternary=True),
            "ternary weights use exactly 2 planes, got bit width 3",
        ),
        (lambda: nm.ternary_to_planes([2]), "ternary weight 2 not in {-1, 0, 1}"),
        (lambda: nm.pack_bits([0, 2]), "bit value 2 not 0/1"),
    ],
)
def test_errors_name_value_and_width(call, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        call()


def test_operand_errors():
    rng = np.random.default_rng(13)
    a_words, ca, _ = make_activations(rng, 2, 3, 70)
    w_words, cw, _ = make_weights(rng, 2, 4, 70)
    with pytest.raises(ValueError, match=re.escape("w_words: 2 words per plane, expected 1 for length 64")):
        nm.decomposed_matmul_bitwise(a_words[..., :1], w_words, 64, ca, cw)
    with pytest.raises(ValueError, match=re.escape("a_words: pad bits past length 69 are not 0")):
        nm.decomposed_matmul_fast(a_words, w_words, 69, ca, cw)
    with pytest.raises(ValueError, match=re.escape("weight coefficients: expected 2 values")):
        nm.decomposed_matmul_fast(a_words, w_words, 70, ca, [1, 2, 4])
    with pytest.raises(ValueError, match=re.escape("a_words must be uint64, got dtype int64")):
        nm.decomposed_matmul_fast(a_words.astype(np.int64), w_words, 70, ca, cw)


def test_code_checks_in_blocks_match_whole_array():
    """Arrays over one validation block (VGG-sized layers) give the same levels and the same error messages."""
    rng = np.random.default_rng(3)
    q = 2 * rng.integers(0, 8, size=nm._BLOCK * 2 + 5, dtype=np.int64) - 7
    assert np.array_equal(nm.code_to_level(q, 3), (q + 7) >> 1)
    q[-1] = 4  # an even code in the last, partial block
    with pytest.raises(ValueError, match="code 4 even: not a valid 3-bit code"):
        nm.code_to_level(q, 3)
    q[nm._BLOCK] = 9  # out of range in the second block: reported first, as for a small array
    with pytest.raises(ValueError, match="code 9 out of range for 3-bit code"):
        nm.code_to_level(q, 3)
