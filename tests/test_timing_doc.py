"""docs/timing.md's latency table (section 4) is the contract users read; simulator/timing.py is the one
implementation. This test evaluates every formula as written in the document and compares it with the code
on random field values and every preset, so the two cannot drift apart. The bank-conflict terms the table
names (s, gw) are transcribed here from section 4.1's definitions, not taken from the code."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bitbranch.isa.hwconfig import BUFFERS, load_presets
from bitbranch.isa.spec import OPCODE_BY_NAME
from bitbranch.simulator.timing import timing_of

DOC = Path(__file__).resolve().parents[1] / "docs" / "timing.md"


def latency_table() -> dict[str, list[tuple[str, str]]]:
    """{opcode: [(condition, formula), ...]} from the table of section 4; condition "" or "field=value"."""
    text = DOC.read_text()
    section = text[text.index("## 4. Latencies"):text.index("### 4.1")]
    rows = re.findall(r"^\| `(\w+)`(?: \(([^)]*)\))? \| [^|]+ \| [^`]*`([^`]+)`[^|]* \|$", section, flags=re.M)
    table: dict[str, list[tuple[str, str]]] = {}
    for op, cond, formula in rows:
        table.setdefault(op, []).append((cond, formula))
    return table


def applies(op: str, cond: str, fields: dict[str, int]) -> bool:
    if not cond:
        return True
    name, _, value = cond.partition("=")
    f = OPCODE_BY_NAME[op].field(name).field
    return fields[name] == int(f.enum[value.upper()])


def acc_stall(f: dict[str, int], hw) -> bool:
    """Section 4.1: an accumulating BGEMM with kh·kw·cw·ceil(kbits·mbits/P) = 1 and ctiles >= 3."""
    one_step = f["kh"] * f["kw"] * f["cw"] * math.ceil(Fraction(f["kbits"] * f["mbits"], hw.branch_parallel)) == 1
    return bool(f["accumulate"]) and one_step and f["ctiles"] >= 3


def gw(ostride, pixels, hw) -> int:
    """Section 4.1: g = max(1, min(R, floor(8R / ostride))) (R when ostride = 0 or <= 8);
    gw = ceil(min(R, pixels) / g)."""
    r = hw.array_rows
    g = r if ostride == 0 or ostride <= 8 else max(1, min(r, math.floor(Fraction(8 * r, ostride))))
    return math.ceil(Fraction(min(r, int(pixels)), g))


def evaluate(formula: str, fields: dict[str, int], hw) -> int:
    expr = formula.replace("`", "").replace("·", "*").replace("−", "-").strip()
    names = {k: Fraction(v) for k, v in fields.items()}
    names |= {"L": hw.dram_latency, "B": hw.dram_bytes_per_cycle, "O": hw.dma_row_overhead, "G": hw.gemm_pipeline,
              "A": hw.alu_pipeline, "R": hw.array_rows, "C": hw.array_cols, "W": hw.word_bits,
              "P": hw.branch_parallel, "Q": hw.queue_depth, "T": hw.token_depth, "ceil": math.ceil,
              "gw": lambda ostride, pixels: gw(ostride, pixels, hw)}
    if "accumulate" in fields:
        names["s"] = 2 if acc_stall(fields, hw) else 1
    if "buf" in fields:
        names["E"] = lambda _buf: Fraction(hw.entry_bytes(BUFFERS[fields["buf"]]))
        names["buf"] = fields["buf"]
    return int(eval(expr, {"__builtins__": {}}, {k: Fraction(v) if isinstance(v, int) else v
                                                 for k, v in names.items()}))


def random_fields(op: str, rng: np.random.Generator) -> dict[str, int]:
    out = {}
    for placed in OPCODE_BY_NAME[op].layout:
        f = placed.field
        hi = min(f.max_value, 40)
        out[f.name] = int(rng.integers(f.lo, max(f.lo, hi) + 1))
    if "buf" in out:
        out["buf"] = int(rng.integers(0, len(BUFFERS)))
    return out


def test_every_opcode_has_a_row():
    assert set(latency_table()) == set(OPCODE_BY_NAME)


@pytest.mark.parametrize("preset", sorted(load_presets()))
def test_the_documented_formulas_are_the_simulators(preset):
    hw = load_presets()[preset]
    rng = np.random.default_rng(4)
    for op, rows in latency_table().items():
        for _ in range(300):
            fields = random_fields(op, rng)
            [formula] = [f for cond, f in rows if applies(op, cond, fields)]  # exactly one row applies
            t = timing_of(op, fields, hw)
            code = t.dram_hold if op in ("load", "store") else t.latency
            assert evaluate(formula, fields, hw) == code, (op, formula, fields)
