"""Run statistics derived from the per-instruction timestamps (never sampled per clock).

Per unit the cycles 0..total split exactly into busy + stalled_on_queue + stalled_on_token +
stalled_on_dram + idle (after its last instruction), so the columns of the report always add up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from bitbranch.isa.hwconfig import HwConfig

from .machine import UNITS, Decoded, Timestamps


@dataclass
class UnitStats:
    """Cycle accounting of one unit (see module docstring)."""

    instructions: int = 0
    busy: int = 0
    stalled_on_queue: int = 0  # waiting for its next instruction to be dispatched and decoded
    stalled_on_token: int = 0  # waiting to pop a token, or to push one into a full token queue
    stalled_on_dram: int = 0  # DMA waiting for the port grant
    idle: int = 0  # after its last instruction


@dataclass
class RunStats:
    cycles: int
    instructions: int
    units: dict[str, UnitStats]
    dram_bytes_read: int
    dram_bytes_written: int
    bitops: int
    utilization: float
    instruction_mix: dict[str, int]
    fetch_stalled: int  # cycles fetch waited for a full instruction queue
    dram_busy: int  # cycles the DRAM port was held

    def to_dict(self) -> dict:
        return asdict(self)


def compute_stats(decoded: list[Decoded], ts: Timestamps, hw: HwConfig, bytes_read: int,
                  bytes_written: int) -> RunStats:
    n = len(decoded)
    cycles = max(ts.end, default=0)
    units = {u.name.lower(): UnitStats() for u in UNITS}
    unit = np.fromiter((d.unit for d in decoded), dtype=np.int64, count=n)
    hold = np.fromiter((d.dram_hold for d in decoded), dtype=np.int64, count=n)
    dispatch, ready, start, grant, end, free = (np.asarray(x, dtype=np.int64) for x in (
        ts.dispatch, ts.ready, ts.start, ts.grant, ts.end, ts.free))
    dma = hold != 0
    for u in UNITS:
        mine = unit == u
        s = units[u.name.lower()]
        s.instructions = int(mine.sum())
        free_u = free[mine]
        last_free = np.concatenate(([0], free_u[:-1]))  # the unit's previous instruction's free cycle
        s.stalled_on_queue = int((ready[mine] - last_free).sum())
        s.stalled_on_token = int((start[mine] - ready[mine]).sum() + (free_u - end[mine]).sum())
        s.stalled_on_dram = int((grant - start)[mine & dma].sum())
        s.busy = int((end - grant)[mine & dma].sum() + (end - start)[mine & ~dma].sum())
        s.idle = max(0, cycles - (int(free_u[-1]) if free_u.size else 0))
    bitops = sum(d.bitops for d in decoded)
    fetch_stalled = int((dispatch[1:] - dispatch[:-1] - 1).sum() + dispatch[0]) if n else 0
    return RunStats(
        cycles=cycles,
        instructions=n,
        units=units,
        dram_bytes_read=bytes_read,
        dram_bytes_written=bytes_written,
        bitops=bitops,
        utilization=bitops / (hw.peak_bitops_per_cycle * cycles) if cycles else 0.0,
        instruction_mix=dict(Counter(d.op for d in decoded)),
        fetch_stalled=fetch_stalled,
        dram_busy=int(hold.sum()),
    )
