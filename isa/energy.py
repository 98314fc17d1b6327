"""The energy table: energy per action at a process node, loaded from `energy.toml` (cited defaults) and
optionally a user file that overrides any subset of its keys (`bitbranch run --energy FILE`).

Errors name the file and the field. The table turns bank geometry (isa.banks) into pJ per bit.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .banks import BankGeometry

ENERGY_FILE = Path(__file__).with_name("energy.toml")


class EnergyTableError(ValueError):
    """An energy table file is malformed (the message names the file and the field)."""


@dataclass(frozen=True)
class EnergyTable:
    """Energies in pJ per action (see energy.toml for each figure's source)."""

    node_nm: float
    scaling_exponent: float
    bitop_pj: float
    accumulate_pj: float
    requant_lane_pj: float
    residual_lane_pj: float
    pool_lane_pj: float
    int8_mac_pj: float
    decode_pj: float
    sram_sizes_bytes: tuple[float, ...]
    sram_read64_pj: tuple[float, ...]
    sram_write_factor: float
    dram_bit_pj: float
    leakage_logic_mw_per_mm2: float  # static power per mm² of logic (standard cells)
    leakage_sram_mw_per_mm2: float  # static power per mm² of SRAM macros
    source: str = str(ENERGY_FILE)

    # --- static power ---------------------------------------------------------------------------
    def leakage_mw(self, logic_mm2: float, sram_mm2: float) -> float:
        """Static power (mW) of a chip with `logic_mm2` of logic and `sram_mm2` of SRAM (energy.toml [static])."""
        return self.leakage_logic_mw_per_mm2 * logic_mm2 + self.leakage_sram_mw_per_mm2 * sram_mm2

    # --- SRAM -----------------------------------------------------------------------------------
    def sram_read64(self, macro_bytes: float) -> float:
        """pJ of one 64-bit read from a macro of `macro_bytes`: log-log interpolation between the cited
        sizes, the nearest segment's slope extended outside them."""
        xs = [math.log(s) for s in self.sram_sizes_bytes]
        ys = [math.log(e) for e in self.sram_read64_pj]
        x = math.log(max(macro_bytes, 1.0))
        if len(xs) == 1:
            return self.sram_read64_pj[0]
        i = 0
        while i < len(xs) - 2 and x > xs[i + 1]:
            i += 1
        t = (x - xs[i]) / (xs[i + 1] - xs[i])
        return math.exp(ys[i] + t * (ys[i + 1] - ys[i]))

    def sram_read_bit_pj(self, geo: BankGeometry) -> float:
        return self.sram_read64(geo.macro_bytes) / 64

    def sram_write_bit_pj(self, geo: BankGeometry) -> float:
        return self.sram_read_bit_pj(geo) * self.sram_write_factor

    # --- nodes ----------------------------------------------------------------------------------
    def at_node(self, target_nm: float) -> EnergyTable:
        """Logic and SRAM energies scaled by (target/node)^exponent; DRAM and the leakage densities unchanged
        (energy.toml: static power does not follow the dynamic-energy rule)."""
        if not target_nm > 0:
            raise EnergyTableError(f"target node {target_nm} nm must be > 0")
        k = (target_nm / self.node_nm) ** self.scaling_exponent
        return dataclasses.replace(
            self, node_nm=float(target_nm), bitop_pj=self.bitop_pj * k, accumulate_pj=self.accumulate_pj * k,
            requant_lane_pj=self.requant_lane_pj * k, residual_lane_pj=self.residual_lane_pj * k,
            pool_lane_pj=self.pool_lane_pj * k, int8_mac_pj=self.int8_mac_pj * k, decode_pj=self.decode_pj * k,
            sram_read64_pj=tuple(e * k for e in self.sram_read64_pj))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# TOML layout: (section, key) -> dataclass field
_ONE_DENSITY = "leakage_mw_per_mm2"
_KEYS: dict[tuple[str, str], str] = {
    ("", "node_nm"): "node_nm",
    ("", "scaling_exponent"): "scaling_exponent",
    ("logic", "bitop_pj"): "bitop_pj",
    ("logic", "accumulate_pj"): "accumulate_pj",
    ("logic", "requant_lane_pj"): "requant_lane_pj",
    ("logic", "residual_lane_pj"): "residual_lane_pj",
    ("logic", "pool_lane_pj"): "pool_lane_pj",
    ("logic", "decode_pj"): "decode_pj",
    ("logic", "int8_mac_pj"): "int8_mac_pj",
    ("sram", "sizes_bytes"): "sram_sizes_bytes",
    ("sram", "read64_pj"): "sram_read64_pj",
    ("sram", "write_factor"): "sram_write_factor",
    ("dram", "bit_pj"): "dram_bit_pj",
    ("static", "logic_mw_per_mm2"): "leakage_logic_mw_per_mm2",
    ("static", "sram_mw_per_mm2"): "leakage_sram_mw_per_mm2",
    ("static", "mw_per_mm2"): _ONE_DENSITY,  # one figure for the whole chip: sets both of the above
}
_LISTS = {"sram_sizes_bytes", "sram_read64_pj"}
_POSITIVE = {"node_nm", "sram_sizes_bytes"}


def _flatten(raw: dict, path: Path) -> dict[str, object]:
    """TOML tables -> {field: value}; unknown sections or keys are errors."""
    out: dict[str, object] = {}
    sections = {s for s, _ in _KEYS if s}
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in sections:
                raise EnergyTableError(f"{path}: unknown section [{key}] (known: {', '.join(sorted(sections))})")
            for sub, v in value.items():
                if (key, sub) not in _KEYS:
                    known = ", ".join(k for s, k in _KEYS if s == key)
                    raise EnergyTableError(f"{path}: unknown field '{key}.{sub}' (known in [{key}]: {known})")
                out[_KEYS[key, sub]] = (f"{key}.{sub}", v)
        elif ("", key) in _KEYS:
            out[_KEYS["", key]] = (key, value)
        else:
            raise EnergyTableError(f"{path}: unknown field '{key}'")
    return out


def _number(path: Path, name: str, v: object, positive: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise EnergyTableError(f"{path}: field '{name}'={v!r} must be a number")
    if v < 0 or (positive and v == 0):
        raise EnergyTableError(f"{path}: field '{name}'={v!r} must be {'> 0' if positive else '>= 0'}")
    return float(v)


def _read(path: Path) -> dict[str, object]:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EnergyTableError(f"{path}: energy table file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise EnergyTableError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, object] = {}
    for fld, (name, v) in _flatten(raw, path).items():
        if fld in _LISTS:
            if not isinstance(v, list) or not v:
                raise EnergyTableError(f"{path}: field '{name}'={v!r} must be a non-empty list of numbers")
            values[fld] = tuple(_number(path, name, x, positive=True) for x in v)
        else:
            values[fld] = _number(path, name, v, positive=fld in _POSITIVE)
    if _ONE_DENSITY in values:
        both = [k for k in ("logic_mw_per_mm2", "sram_mw_per_mm2") if _KEYS["static", k] in values]
        if both:
            raise EnergyTableError(f"{path}: field 'static.mw_per_mm2' (one figure for the whole chip) and "
                                   f"'static.{both[0]}' are both set: set one or the other")
        density = values.pop(_ONE_DENSITY)
        values["leakage_logic_mw_per_mm2"] = values["leakage_sram_mw_per_mm2"] = density
    return values


def load_energy_table(override: str | Path | None = None) -> EnergyTable:
    """The default table (energy.toml), with the fields of `override` (a TOML file) replacing its own."""
    values = _read(ENERGY_FILE)
    source = str(ENERGY_FILE)
    if override is not None:
        values.update(_read(Path(override)))
        source = f"{ENERGY_FILE} + {override}"
    missing = [f.name for f in dataclasses.fields(EnergyTable) if f.name != "source" and f.name not in values]
    if missing:
        raise EnergyTableError(f"{ENERGY_FILE}: missing field(s) {', '.join(missing)}")
    sizes, energies = values["sram_sizes_bytes"], values["sram_read64_pj"]
    where = override or ENERGY_FILE
    if len(sizes) != len(energies):
        raise EnergyTableError(f"{where}: field 'sram.sizes_bytes' has {len(sizes)} entries but "
                               f"'sram.read64_pj' has {len(energies)}")
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise EnergyTableError(f"{where}: field 'sram.sizes_bytes' must be strictly increasing")
    if any(e <= 0 for e in energies):
        raise EnergyTableError(f"{where}: field 'sram.read64_pj' entries must be > 0")
    return EnergyTable(**values, source=source)
