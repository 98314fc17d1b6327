"""Hypothesis strategies for ISA values, shared by every test that needs random instructions.

Import as `from strategies import valid_instructions` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import strategies as st

from bitbranch.isa.encoding import Instruction, encode
from bitbranch.isa.spec import INSN_BITS, NEIGHBOURS, OPCODE_BY_NAME, OPCODES, TOKEN_FIELDS, Field, Opcode, Unit

FLAG_NAMES = tuple(f.name for f in TOKEN_FIELDS)


def field_values(f: Field) -> st.SearchStrategy[int]:
    """Every legal value of one field: its enum subset, or lo..max_value."""
    if f.enum is not None:
        legal = f.allowed if f.allowed is not None else tuple(int(m) for m in f.enum)
        return st.sampled_from(sorted(int(v) for v in legal))
    return st.integers(min_value=f.lo, max_value=f.max_value)


def _legal_flags(unit: Unit) -> set[str]:
    prev, nxt = NEIGHBOURS[unit]
    return {name for name in FLAG_NAMES if (prev if name.endswith("_prev") else nxt) is not None}


@st.composite
def _instruction(draw: st.DrawFn, op: Opcode, legal_tokens: bool) -> Instruction:
    values = {p.name: draw(field_values(p.field)) for p in op.layout}
    if legal_tokens:
        unit = op.unit if op.unit is not None else Unit(values["unit"])
        allowed = _legal_flags(unit)
        values.update({name: 0 for name in FLAG_NAMES if name not in allowed})
    return Instruction.make(op.name, **values)


def valid_instructions(
    opcodes: Iterable[str] | None = None, legal_tokens: bool = False
) -> st.SearchStrategy[Instruction]:
    """Random instructions that pass field-level checks, of every opcode (or the named ones).

    legal_tokens=True also clears token flags naming a neighbour the executing unit lacks.
    """
    ops = [OPCODE_BY_NAME[name] for name in opcodes] if opcodes is not None else list(OPCODES)
    return st.one_of(*(_instruction(op, legal_tokens) for op in ops))


def programs(max_size: int = 20, **kwargs) -> st.SearchStrategy[list[Instruction]]:
    """Lists of valid instructions (field-level only; no program-level rules)."""
    return st.lists(valid_instructions(**kwargs), max_size=max_size)


def valid_words() -> st.SearchStrategy[int]:
    return valid_instructions().map(encode)


def any_words() -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=(1 << INSN_BITS) - 1)
