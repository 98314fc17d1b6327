"""The single rounding rule: round half up via add + arithmetic shift, int64 wrapping."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitbranch.isa.rounding import requantize, round_shift


@given(st.integers(-(2**40), 2**40), st.integers(1, 20))
def test_round_shift_is_round_half_up(v, s):
    exact = v / 2**s
    assert round_shift(v, s) == int(np.floor(exact + 0.5))


def test_ties_go_up_for_both_signs():
    assert round_shift(np.array([5, -5, 3, -3, 1, -1]), 1).tolist() == [3, -2, 2, -1, 1, 0]
    assert round_shift(7, 0) == 7


def test_shift_range_is_checked():
    with pytest.raises(ValueError, match="shift 63"):
        round_shift(1, 63)


def test_requantize_with_residual_is_exact_int64():
    acc = np.array([[1000, -1000]], dtype=np.int32)
    out = requantize(acc, np.array([3, 5]), np.array([7, -7]), 2, residual=np.array([[2, 3]]), rmul=np.array([4, 4]))
    assert out.tolist() == [[(3000 + 7 + 8 + 2) >> 2, (-5000 - 7 + 12 + 2) >> 2]]
