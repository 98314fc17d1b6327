"""Energy of a run: activity counts (simulator.activity) x energy per action (isa.energy), with breakdown.

Breakdown keys (µJ): `array` (xnor+popcount bits and branch accumulates), one per SRAM buffer (`inp`,
`wgt`, `acc`, `out`, `const`: reads + writes at the bank's energy per bit), `dram`, `alu` (requantize,
residual and pool lane-ops), `fetch` (instruction-memory reads + decode) and `leakage` (static power x
run time: the table's logic and SRAM densities x the chip's logic and SRAM mm², isa/energy.toml [static]).
The values sum to the total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bitbranch.isa.banks import bank_geometry
from bitbranch.isa.energy import EnergyTable
from bitbranch.isa.hwconfig import BUFFERS, HwConfig
from bitbranch.isa.spec import INSN_BITS

BREAKDOWN_KEYS = ("array", *BUFFERS, "dram", "alu", "fetch", "leakage")


@dataclass(frozen=True)
class ActionPrices:
    """pJ per counted action for one hardware config (bank sizes fixed by the config)."""

    per_action: dict[str, float]
    fetch_pj: float

    @classmethod
    def build(cls, hw: HwConfig, table: EnergyTable) -> ActionPrices:
        geo = bank_geometry(hw)
        price = {
            "bitops": table.bitop_pj, "accumulates": table.accumulate_pj,
            "requant_lanes": table.requant_lane_pj, "residual_lanes": table.residual_lane_pj,
            "pool_lanes": table.pool_lane_pj, "dram_read": table.dram_bit_pj, "dram_write": table.dram_bit_pj,
        }
        for b in BUFFERS:
            price[f"{b}_read"] = table.sram_read_bit_pj(geo[b])
            price[f"{b}_write"] = table.sram_write_bit_pj(geo[b])
        fetch = INSN_BITS * table.sram_read_bit_pj(geo["imem"]) + table.decode_pj
        return cls(price, fetch)


_GROUP = {"bitops": "array", "accumulates": "array", "requant_lanes": "alu", "residual_lanes": "alu",
          "pool_lanes": "alu", "dram_read": "dram", "dram_write": "dram",
          **{f"{b}_{rw}": b for b in BUFFERS for rw in ("read", "write")}}


def energy_breakdown_uj(counts: Mapping[str, int], prices: ActionPrices, leakage_uj: float = 0.0) -> dict[str, float]:
    """µJ per breakdown key for a set of counts (a run's or a layer's)."""
    out = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    for action, n in counts.items():
        if action == "fetches":
            out["fetch"] += n * prices.fetch_pj * 1e-6
        else:
            out[_GROUP[action]] += n * prices.per_action[action] * 1e-6
    out["leakage"] = leakage_uj
    return out


@dataclass(frozen=True)
class EnergySummary:
    """Whole-run energy and the figures derived from it."""

    energy_uj: float
    breakdown_uj: dict[str, float]
    power_w: float  # average over the run at the clock
    tops_per_w: float  # useful binary ops (2 per bit-op: multiply + add) per second per watt
    table_source: str
    mac_tops_per_w: float = 0.0  # the same with 2 ops per useful MAC (multi-bit), comparable across precisions

    def to_dict(self) -> dict:
        return {"energy_uj": self.energy_uj, "energy_breakdown_uj": self.breakdown_uj, "power_w": self.power_w,
                "tops_per_w": self.tops_per_w, "mac_tops_per_w": self.mac_tops_per_w,
                "energy_table": self.table_source}


def summarize(counts: Mapping[str, int], hw: HwConfig, table: EnergyTable, cycles: int, clock_mhz: float,
              useful_bitops: int, area_mm2: float = 0.0, useful_macs: int = 0, sram_mm2: float = 0.0) -> EnergySummary:
    """Energy of a run with `counts` lasting `cycles` at `clock_mhz`; TOPS/W from `useful_bitops`
    (bit-ops of the network, channel padding excluded), counted as 2 ops each (TOPS convention).
    Leakage: `area_mm2` is the whole chip, `sram_mm2` the part of it that is SRAM (isa.area.AreaReport's
    sram_total_mm2), the rest logic; each at its density from the table, for the run's time."""
    if not 0 <= sram_mm2 <= area_mm2 * (1 + 1e-12):
        raise ValueError(f"sram_mm2={sram_mm2} must be within the chip's area_mm2={area_mm2}")
    seconds = cycles / (clock_mhz * 1e6) if cycles else 0.0
    leakage_mw = table.leakage_mw(max(area_mm2 - sram_mm2, 0.0), sram_mm2)
    leakage_uj = leakage_mw * 1e-3 * seconds * 1e6
    parts = energy_breakdown_uj(counts, ActionPrices.build(hw, table), leakage_uj)
    total = sum(parts.values())
    power = total * 1e-6 / seconds if seconds else 0.0
    tops_per_w = (2 * useful_bitops / (total * 1e-6)) / 1e12 if total else 0.0
    mac_tops_per_w = (2 * useful_macs / (total * 1e-6)) / 1e12 if total else 0.0
    return EnergySummary(total, parts, power, tops_per_w, table.source, mac_tops_per_w)
