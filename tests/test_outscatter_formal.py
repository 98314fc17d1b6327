"""bb_outscatter places the OUT rows' planes on the banks with constant indices only (AND-OR trees, so `edge`
synthesizes); tests/formal/outscatter_spec.v states the same placement row by row with the arithmetic of its
specification (q = (k - base mod NB) mod NB, bank row (base + q) / NB, the later row winning a clash). A SAT
proof over every input shows the two equal, for bank counts that are and are not powers of two, and fails
when the specification reads the other source, so it is not vacuous."""

from __future__ import annotations

from pathlib import Path

import pytest
from yosys_sat import proves

from bitbranch.rtl import rtl_dir

SPEC = Path(__file__).parent / "formal" / "outscatter_spec.v"


def prove(**params: int) -> bool:
    return proves([rtl_dir() / "bb_outscatter.v", SPEC], "outscatter_check", **params)


@pytest.mark.parametrize("params", [
    dict(R=2, C=4, NB=16, AW=9, RAW=5, WIDTH=64),     # small's OUT
    dict(R=1, C=2, NB=8, AW=6, RAW=3, WIDTH=16),      # one row: the 8 planes reach every bank
    dict(R=3, C=1, NB=24, AW=6, RAW=2, WIDTH=8),      # 8R not a power of two
    dict(R=2, C=2, NB=32, AW=8, RAW=3, WIDTH=16),     # more banks than 8R (B / E larger)
], ids=["small", "R1", "R3", "NB32"])
def test_scatter_equals_its_specification(params):
    assert prove(**params)


def test_the_proof_fails_on_a_wrong_specification():
    assert not prove(R=2, C=4, NB=16, AW=9, RAW=5, WIDTH=64, SPEC_WSRC_FLIP=1)
