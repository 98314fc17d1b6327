"""Run statistics derived from the per-instruction timestamps (never sampled per clock).

Per unit the cycles 0..total split exactly into busy + stalled_on_queue + stalled_on_token +
stalled_on_dram + idle (after its last instruction), so the columns of the report always add up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from isa.hwconfig import HwConfig

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
    cycles = max(ts.end, default=0)
    units = {u.name.lower(): UnitStats() for u in UNITS}
    last_free = {u: 0 for u in UNITS}
    for k, d in enumerate(decoded):
        s = units[UNITS[d.unit].name.lower()]
        s.instructions += 1
        s.stalled_on_queue += ts.ready[k] - last_free[d.unit]
        s.stalled_on_token += (ts.start[k] - ts.ready[k]) + (ts.free[k] - ts.end[k])
        if d.dram_hold:
            s.stalled_on_dram += ts.grant[k] - ts.start[k]
            s.busy += ts.end[k] - ts.grant[k]
        else:
            s.busy += ts.end[k] - ts.start[k]
        last_free[d.unit] = ts.free[k]
    for u in UNITS:
        units[u.name.lower()].idle = max(0, cycles - last_free[u])
    bitops = sum(d.bitops for d in decoded)
    fetch_stalled = sum(ts.dispatch[k] - (ts.dispatch[k - 1] + 1 if k else 0) for k in range(len(decoded)))
    return RunStats(
        cycles=cycles,
        instructions=len(decoded),
        units=units,
        dram_bytes_read=bytes_read,
        dram_bytes_written=bytes_written,
        bitops=bitops,
        utilization=bitops / (hw.peak_bitops_per_cycle * cycles) if cycles else 0.0,
        instruction_mix=dict(Counter(d.op for d in decoded)),
        fetch_stalled=fetch_stalled,
        dram_busy=sum(d.dram_hold for d in decoded),
    )
