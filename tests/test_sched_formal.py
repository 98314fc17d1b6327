"""bb_sched reads `spf` from the last evaluation of the step network (NIT = 3) only when the unit neither starts,
takes nor retires; the mutant that reads evaluation NIT-2 instead (bb_sched.v:102, a survivor of the mutation
campaign, docs/verification.md) is equivalent: a SAT proof over every input of three chained bb_stepnet,
given the core's two invariants (a full token queue is not empty; a STORE never holds push_next, which the
decoder refuses). The proof fails without the STORE invariant and for evaluation 0, so it is not vacuous."""

from __future__ import annotations

from pathlib import Path

from yosys_sat import proves

from bitbranch.rtl import rtl_dir

WRAPPER = Path(__file__).parent / "formal" / "stepnet_nit.v"


def prove(**params: int) -> bool:
    return proves([rtl_dir() / "bb_stepnet.v", WRAPPER], "nit_check", **params)


def test_spf_of_evaluation_nit_minus_2_is_read_the_same():
    assert prove(LO=1)


def test_the_proof_needs_the_store_invariant_and_a_late_evaluation():
    assert not prove(LO=1, STORE_NO_PUSH_NEXT=0)  # a STORE with push_next: push_prev fires late, it does not retire
    assert not prove(LO=0)  # evaluation 0 misses same-cycle pops of the other units
