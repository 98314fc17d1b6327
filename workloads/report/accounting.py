"""Per-instruction and per-layer cycle accounting derived from the simulator's timestamps.

The simulator reports busy/stall cycles per unit for the whole run (simulator.stats); a report needs
them per layer. This module applies the same definitions to every instruction, so summing the
per-instruction numbers over all instructions gives the simulator's per-unit totals exactly:
    queue  = ready - (free of the unit's previous instruction)   waiting for the instruction to arrive
    token  = (start - ready) + (free - end)                       waiting to pop / push a token
    dram   = grant - start (DMA only)                             waiting for the DRAM port
    busy   = end - grant (DMA) or end - start                     executing
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import BUFFERS, HwConfig
from bitbranch.simulator import SimResult
from bitbranch.simulator.timing import instruction_timing

UNIT_NAMES = ("load", "compute", "store")
STATES = ("busy", "queue", "token", "dram")


@dataclass(frozen=True)
class _Static:
    """What an instruction costs regardless of when it runs."""

    unit: int
    bitops: int
    dram_read: int
    dram_written: int


def _static(insn: Instruction, hw: HwConfig) -> _Static:
    f = insn.as_dict()
    nbytes = f["rows"] * f["len"] * hw.entry_bytes(BUFFERS[f["buf"]]) if insn.op in ("load", "store") else 0
    return _Static(int(insn.exec_unit), instruction_timing(insn, hw).bitops,
                   nbytes if insn.op == "load" else 0, nbytes if insn.op == "store" else 0)


@dataclass
class Accounting:
    """Per-instruction arrays (length = program length); `states[s]` holds cycles in state s."""

    unit: np.ndarray
    start: np.ndarray
    end: np.ndarray
    grant: np.ndarray
    bitops: np.ndarray
    dram_read: np.ndarray
    dram_written: np.ndarray
    states: dict[str, np.ndarray]

    def unit_states(self, first: int = 0, end: int | None = None) -> dict[str, dict[str, int]]:
        """{unit: {state: cycles}} summed over instructions [first, end)."""
        sl = slice(first, end)
        return {name: {s: int(self.states[s][sl][self.unit[sl] == u].sum()) for s in STATES}
                for u, name in enumerate(UNIT_NAMES)}


def account(result: SimResult) -> Accounting:
    """Accounting of every instruction of a finished run."""
    hw, ts = result.hw, result.timestamps
    cache: dict[Instruction, _Static] = {}
    static = [cache.get(i) or cache.setdefault(i, _static(i, hw)) for i in result.program]
    unit = np.array([s.unit for s in static], dtype=np.int64)
    ready, start, end, free, grant = (np.asarray(a, dtype=np.int64) for a in (ts.ready, ts.start, ts.end, ts.free,
                                                                               ts.grant))
    prev_free = np.zeros_like(free)
    for u in range(len(UNIT_NAMES)):
        idx = np.flatnonzero(unit == u)
        prev_free[idx[1:]] = free[idx[:-1]]
    dma = grant >= 0
    states = {
        "queue": ready - prev_free,
        "token": (start - ready) + (free - end),
        "dram": np.where(dma, grant - start, 0),
        "busy": np.where(dma, end - grant, end - start),
    }
    return Accounting(unit, start, end, grant, np.array([s.bitops for s in static], dtype=np.int64),
                      np.array([s.dram_read for s in static], dtype=np.int64),
                      np.array([s.dram_written for s in static], dtype=np.int64), states)
