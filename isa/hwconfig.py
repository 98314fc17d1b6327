"""Hardware configuration: the one description of the accelerator shared by compiler, simulator and RTL.

Presets live in `presets.toml` beside this file; a user may also pass a TOML file of their own with
the same keys. Every derived quantity (entry sizes, peak throughput) is computed here so no other
module repeats the arithmetic.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .spec import OPCODE_BY_NAME

PRESETS_FILE = Path(__file__).with_name("presets.toml")
DEFAULT_PRESET = "edge"

# Buffer names in the order their ISA enum values are assigned (see isa.spec.Buffer).
BUFFERS = ("inp", "wgt", "acc", "out", "const")

# Widths of the per-channel constant record in the CONST buffer (bytes): mul int32, rmul int32, bias int64.
CONST_FIELDS = (("mul", 4), ("rmul", 4), ("bias", 8))
CONST_BYTES_PER_LANE = sum(size for _, size in CONST_FIELDS)


def const_field_bytes(name: str, lanes: int) -> slice:
    """Bytes of CONST field `name` in an entry of `lanes` lanes: the fields follow each other in
    CONST_FIELDS order, each holding all lanes (little-endian). The one statement of the record layout
    (the compiler packs it, the simulator reads it, the RTL slices it with the BB_CONST_* macros of
    rtl/bitbranch_isa.vh)."""
    off = 0
    for field, size in CONST_FIELDS:
        if field == name:
            return slice(off * lanes, (off + size) * lanes)
        off += size
    raise KeyError(f"no CONST field {name!r}; fields: {[f for f, _ in CONST_FIELDS]}")
ACC_BYTES_PER_LANE = 4


class ConfigError(ValueError):
    """A hardware configuration file or preset is malformed."""


@dataclass(frozen=True)
class HwConfig:
    """Parameters of one accelerator instance. Buffer sizes are in entries of that buffer."""

    name: str
    description: str
    array_rows: int  # R: output pixels processed per array pass
    array_cols: int  # C: output channels processed per array pass (lanes of ACC, CONST, ALU)
    word_bits: int  # W: bits of one plane word (reduction width per PE per pass)
    branch_parallel: int  # P: branch pairs (i, j) processed per PE per pass
    inp_entries: int
    wgt_entries: int
    acc_entries: int
    out_entries: int
    const_entries: int
    dram_latency: int  # cycles from grant to first data
    dram_bytes_per_cycle: int
    dma_row_overhead: int  # extra cycles per DMA row (address generation / burst setup)
    gemm_pipeline: int  # fill + drain cycles of the PE array, paid once per BGEMM
    alu_pipeline: int  # fill + drain cycles of the requantize/pool unit, paid once per instruction
    queue_depth: int  # instruction queue depth of each unit
    token_depth: int  # capacity of each dependency-token queue
    clock_mhz: float

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float") and not value > 0:
                raise ConfigError(f"hardware config '{self.name}': field '{f.name}'={value} must be > 0")
        if self.word_bits % 64:
            raise ConfigError(f"hardware config '{self.name}': word_bits={self.word_bits} must be a multiple of 64")
        if self.word_bits % self.array_cols:
            raise ConfigError(
                f"hardware config '{self.name}': word_bits={self.word_bits} must be a multiple of "
                f"array_cols={self.array_cols} (ALU results fill C-lane slices of a word)"
            )
        slice_bits = OPCODE_BY_NAME["requant"].field("slice").width
        if self.slices_per_word > 1 << slice_bits:
            raise ConfigError(
                f"hardware config '{self.name}': word_bits/array_cols={self.slices_per_word} slices per word exceed "
                f"the {slice_bits}-bit `slice` field of requant/pool (at most {1 << slice_bits})"
            )
        for buf in BUFFERS:
            n = self.entries(buf)
            if n > 1 << 16:
                raise ConfigError(f"hardware config '{self.name}': {buf}_entries={n} exceeds the 16-bit SRAM address")

    # --- derived quantities -------------------------------------------------------------------
    @property
    def words_per_entry(self) -> int:
        """uint64 words in one plane word (W / 64)."""
        return self.word_bits // 64

    @property
    def slices_per_word(self) -> int:
        """C-lane slices in one W-bit plane word."""
        return self.word_bits // self.array_cols

    def entries(self, buf: str) -> int:
        return getattr(self, f"{buf}_entries")

    def entry_bytes(self, buf: str) -> int:
        """Bytes of one entry of a buffer; DMA lengths are counted in these entries."""
        sizes = {
            "inp": self.word_bits // 8,
            "out": self.word_bits // 8,
            "wgt": self.array_cols * self.word_bits // 8,
            "acc": self.array_cols * ACC_BYTES_PER_LANE,
            "const": self.array_cols * CONST_BYTES_PER_LANE,
        }
        if buf not in sizes:
            raise ConfigError(f"unknown buffer '{buf}' (known: {', '.join(BUFFERS)})")
        return sizes[buf]

    @property
    def peak_bitops_per_cycle(self) -> int:
        """Binary multiply-accumulates (one xnor + popcount bit) the array can do per cycle."""
        return self.array_rows * self.array_cols * self.word_bits * self.branch_parallel

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, name: str | None = None, source: str = "<dict>") -> HwConfig:
        data = dict(data)
        if name is not None:
            data.setdefault("name", name)
        data.setdefault("description", "")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown hardware config field(s): {', '.join(unknown)}")
        missing = sorted(set(known) - set(data))
        if missing:
            raise ConfigError(f"{source}: missing hardware config field(s): {', '.join(missing)}")
        converted = {}
        for key, f in known.items():
            value = data[key]
            want = {"int": int, "float": float, "str": str}[f.type]
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, want) or isinstance(value, bool):
                raise ConfigError(f"{source}: field '{key}'={value!r} must be {want.__name__}")
            converted[key] = value
        return cls(**converted)


def load_presets(path: Path = PRESETS_FILE) -> dict[str, HwConfig]:
    """All presets of a TOML file, keyed by name."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return {name: HwConfig.from_dict(table, name=name, source=f"{path} [{name}]") for name, table in raw.items()}


def get_config(spec: str | None = None) -> HwConfig:
    """Resolve a preset name, or `file.toml` / `file.toml:name`, to a config (default: 'edge')."""
    spec = spec or DEFAULT_PRESET
    path_part, _, table = spec.partition(":")
    if path_part.endswith(".toml"):
        presets = load_presets(Path(path_part))
        if not table:
            if len(presets) != 1:
                raise ConfigError(f"{path_part}: holds {len(presets)} configs; pick one as {path_part}:NAME")
            return next(iter(presets.values()))
        if table not in presets:
            raise ConfigError(f"{path_part}: no config '{table}' (has: {', '.join(presets)})")
        return presets[table]
    presets = load_presets()
    if spec not in presets:
        raise ConfigError(f"unknown hardware preset '{spec}' (presets: {', '.join(presets)})")
    return presets[spec]
