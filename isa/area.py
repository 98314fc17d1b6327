"""Chip area model: logic as NAND2-equivalents -> mm², SRAM banks from a density model (docs/cost.md).

Logic comes from one of two sources. Analytic (`logic_nand2`), from the hardware config: any config, instantly,
so sweeps and exploration use it. Synthesized (`synthesized_entry`: isa/synth_area.json, written by `bitbranch
synth --hw P --per-module --save`; rtlharness/synth_area.py): the whole core mapped per module, stored for the
presets users run; `report_area` (what `bitbranch run`, `simulate` and `sweep` report) uses it where stored.
`bench/cost.py` also synthesizes the PE arrays with Yosys and converts the cells with the same NAND2 figures
(`nand2_equivalents`).

Figures (45 nm) and where they come from:
* NAND2 area 0.798 µm²: NAND2_X1 of the NanGate FreePDK45 Open Cell Library (v1.3).
* Gate sizes in NAND2-equivalents by transistor count / 4 (a NAND2 has 4 transistors): XNOR2/XOR2 12 T
  -> 3, mirror full adder 28 T -> 7 (Weste & Harris, CMOS VLSI Design, 4th ed.), AND2/OR2 6 T -> 1.5,
  MUX2 12 T -> 3 (transmission-gate mux with inverters).
* Flip-flop 6 NAND2-eq: an ASSUMPTION (no source cited here); override `AreaConstants.dff`.
* SRAM bit cell 0.346 µm²: Intel 45 nm 6T cell (Mistry et al., IEDM 2007).
* Array efficiency 0.7 and periphery 20 NAND2-eq per bit of width + 1000 per macro: ASSUMPTIONS
  standing in for a memory compiler's figures; override `AreaConstants`. The macros are the RTL's memory
  map (isa.banks: every copy and bank, banks wider than 64 bits ganged from 64-bit macros).

Logic per module (gate counts from the datapath the RTL implements, rtl/bb_*.v):
* PE array: R*C PEs, each P branches of W xnor + a W-input popcount tree (~W full adders) + a 4-level
  barrel shift (32 x 4 MUX2) + a 32-bit add (32 FA), and a 32-bit accumulator register. (Yosys on
  rtl/bb_pe_array.v gives ~1.3x this count: bench/cost.py reports both.)
* requant/pool: R*C lanes, each a 32x32 array multiplier (acc x mul: 32*32 AND + 32*32 FA), an 8x32 one
  (residual level x rmul), two 64-bit adders, a clamp (2 x 8-bit compare) and an 8-bit pool compare/add with a
  16-bit register.
* fetch/decode: 3 instruction queues of queue_depth x INSN_BITS registers plus the decode register.
* DMA: 2 units, each 4 x 32-bit address adders and 8 x 32-bit registers.
* token queues: 4 queues of token_depth x 1 bit (negligible; counted).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .banks import BankGeometry, bank_geometry
from .hwconfig import HwConfig
from .spec import INSN_BITS


@dataclass(frozen=True)
class AreaConstants:
    nand2_um2: float = 0.798
    xnor2: float = 3.0
    fa: float = 7.0
    and2: float = 1.5
    mux2: float = 3.0
    dff: float = 6.0
    sram_bitcell_um2: float = 0.346
    sram_array_efficiency: float = 0.7
    sram_column_nand2: float = 20.0
    sram_bank_nand2: float = 1000.0


DEFAULT = AreaConstants()


def nand2_equivalents(cells: dict[str, int], k: AreaConstants = DEFAULT) -> float:
    """NAND2-equivalents of a Yosys generic netlist (`stat` cell counts after `abc -g` to simple gates)."""
    size = {"NOT": 0.5, "BUF": 0.5, "NAND": 1.0, "NOR": 1.0, "AND": k.and2, "OR": k.and2, "XOR": k.xnor2,
            "XNOR": k.xnor2, "ANDNOT": k.and2, "ORNOT": k.and2, "MUX": k.mux2, "AOI3": 1.5, "OAI3": 1.5,
            "AOI4": 2.0, "OAI4": 2.0}
    total = 0.0
    for cell, n in cells.items():
        name = cell.strip("$_").split("_")[0]
        if name.startswith(("DFF", "SDFF", "DLATCH", "ALDFF")) or cell.startswith(("$_DFF", "$_SDFF", "$_DLATCH")):
            total += n * k.dff
        elif name in size:
            total += n * size[name]
        else:
            raise ValueError(f"no NAND2 size for cell type '{cell}'")
    return total


@dataclass(frozen=True)
class AreaReport:
    """mm² per module (logic and SRAM), and the NAND2-equivalents behind the logic figures."""

    modules_mm2: dict[str, float]
    logic_nand2: dict[str, float]
    sram_mm2: dict[str, float]
    node_nm: float = 45.0
    # where the logic figures come from: "analytic" (logic_nand2) or "synthesized ..." (report_area)
    logic_source: str = "analytic"

    @property
    def total_mm2(self) -> float:
        return sum(self.modules_mm2.values())

    @property
    def sram_total_mm2(self) -> float:
        """All SRAM macros (every buffer's banks and the instruction memory)."""
        return sum(self.sram_mm2.values())

    @property
    def logic_total_mm2(self) -> float:
        """Everything else: the logic modules (NAND2-equivalents)."""
        return self.total_mm2 - self.sram_total_mm2

    def to_dict(self) -> dict:
        return {"total_mm2": self.total_mm2, "modules_mm2": self.modules_mm2, "logic_nand2": self.logic_nand2,
                "sram_mm2": self.sram_mm2, "node_nm": self.node_nm, "logic_source": self.logic_source}


def logic_nand2(hw: HwConfig, k: AreaConstants = DEFAULT) -> dict[str, float]:
    """NAND2-equivalents of each logic module (module docstring)."""
    r, c, w, p = hw.array_rows, hw.array_cols, hw.word_bits, hw.branch_parallel
    pe = p * (w * k.xnor2 + w * k.fa + 32 * k.fa + 32 * 4 * k.mux2) + 32 * k.dff
    mult32 = 32 * 32 * (k.and2 + k.fa)  # int32 acc x int32 mul
    mult8 = 8 * 32 * (k.and2 + k.fa)  # residual level (<= 8 bits) x int32 rmul
    lane = mult32 + mult8 + 2 * 64 * k.fa + 2 * 8 * k.fa + 8 * k.fa + 16 * k.dff
    fetch = (3 * hw.queue_depth + 1) * INSN_BITS * k.dff
    dma = 2 * (4 * 32 * k.fa + 8 * 32 * k.dff)
    tokens = 4 * hw.token_depth * k.dff
    return {"pe_array": r * c * pe, "requant_pool": r * c * lane, "fetch_decode": fetch + tokens, "dma": dma}


def sram_macro_mm2(geo: BankGeometry, k: AreaConstants = DEFAULT) -> float:
    """One physical macro (entries x column_bits): bit cells / array efficiency + column and macro periphery
    (module docstring)."""
    cells = geo.entries * geo.column_bits * k.sram_bitcell_um2 / k.sram_array_efficiency
    periphery = (geo.column_bits * k.sram_column_nand2 + k.sram_bank_nand2) * k.nand2_um2
    return (cells + periphery) * 1e-6


def sram_bank_mm2(geo: BankGeometry, k: AreaConstants = DEFAULT) -> float:
    """One bank: its ganged macros."""
    return geo.columns * sram_macro_mm2(geo, k)


def chip_area(hw: HwConfig, k: AreaConstants = DEFAULT, logic: dict[str, float] | None = None,
              logic_source: str = "analytic") -> AreaReport:
    """Area of `hw`; `logic` replaces the analytic NAND2 counts of the modules it names (e.g. synthesized)."""
    gates = {**logic_nand2(hw, k), **(logic or {})}
    sram = {name: g.macros * sram_macro_mm2(g, k) for name, g in bank_geometry(hw).items()}
    modules = {name: n * k.nand2_um2 * 1e-6 for name, n in gates.items()}
    modules.update({f"sram_{name}": mm2 for name, mm2 in sram.items()})
    return AreaReport(modules, gates, sram, logic_source=logic_source)


def report_area(hw: HwConfig, path: Path | None = None) -> AreaReport:
    """The area a run's report gives: the logic synthesized per module where isa/synth_area.json holds it for
    exactly this config (the analytic model undercounts logic several times: no bank routing, no sequencer),
    else the analytic model. `bitbranch run`, `simulate` and `sweep` report this; `explore`'s generated configs are
    never stored, so its points all use the analytic model and compare on one footing."""
    entry = synthesized_entry(hw, path or SYNTH_FILE)
    if entry is None:
        return chip_area(hw)
    tools = re.sub(r" \(git sha1 \w+\)", "", entry["yosys"])  # "Yosys 0.70[, ABC in Yosys 0.23]"
    source = f"synthesized per module ({tools}, ABC script {entry['abc']}, {entry['date']})"
    return chip_area(hw, logic=_entry_logic(entry), logic_source=source)


SYNTH_FILE = Path(__file__).with_name("synth_area.json")


def synthesized_entry(hw: HwConfig, path: Path = SYNTH_FILE) -> dict | None:
    """The stored per-module synthesis of `hw`'s preset (nand2 per module group: pe_array, buffers, dma,
    fetch_decode, requant_pool, other; the Yosys, ABC script and date), as checked in by `bitbranch synth --hw P
    --per-module --save` (rtlharness/synth_area.py); None for a preset that was not synthesized or whose
    parameters changed since."""
    if not path.is_file():
        return None
    entry = json.loads(path.read_text()).get(hw.name)
    if not entry or entry.get("hw") != _hw_key(hw):
        return None
    return entry


def synthesized_logic(hw: HwConfig, path: Path = SYNTH_FILE) -> dict[str, float] | None:
    """synthesized_entry's NAND2-equivalents per module group, for `chip_area(hw, logic=...)`."""
    entry = synthesized_entry(hw, path)
    return None if entry is None else _entry_logic(entry)


def _entry_logic(entry: dict) -> dict[str, float]:
    return {g: float(n) for g, n in entry["nand2"].items()}


def _hw_key(hw: HwConfig) -> dict:
    """The config fields a stored synthesis was made with (a preset edited since makes its figures stale)."""
    skip = ("name", "description", "clock_mhz")
    return {f.name: getattr(hw, f.name) for f in dataclasses.fields(hw) if f.name not in skip}


def with_constants(**changes: float) -> AreaConstants:
    return dataclasses.replace(DEFAULT, **changes)
