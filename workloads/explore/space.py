"""Space files: which hardware points `bitbranch explore` evaluates (syntax in docs/explore.md).

```toml
base = "edge"                          # preset or file.toml[:name]: the fields not listed under [hw]
precisions = ["W1A1", "W2A2", "mixed.toml"]   # tokens (workload overrides kept) or precision files
seed = 0                               # torch seed for the models' random weights

[hw]                                   # any HwConfig field but name / description
array_rows = [8, 16, 32]               # a list of values
dram_bytes_per_cycle = { start = 16, stop = 64, step = 16 }   # arithmetic, stop included
wgt_entries = { start = 1024, stop = 8192, factor = 2 }        # geometric, stop included
array_cols = "array_rows"              # tied: the same value as another field at every point

[constraints]                          # points that break one become rows with the reason
max_buffer_bytes = 1_048_576           # total on-chip buffer bytes (HwConfig.buffer_bytes)
max_peak_bitops_per_cycle = 65536
min_fps = 100                          # checked after simulation
rtl_supported = true                   # rtlharness.params.check_supported
```

`load_space(path)` reads and checks the whole file (SpaceError: `FILE: FIELD: reason`, one line);
`Space.hw_points()` expands the grid to candidate points, each a valid HwConfig or the reason it is not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitbranch.isa.hwconfig import BUFFERS, ConfigError, HwConfig, get_config

NOT_SWEPT = ("name", "description")
MAX_POINTS = 100_000  # a grid larger than this is refused before anything runs
TOP_KEYS = ("base", "precisions", "seed", "hw", "constraints")


def hw_fields() -> dict[str, type]:
    """The HwConfig fields a space may vary, with their types (int or float)."""
    return {f.name: {"int": int, "float": float}[f.type] for f in dataclasses.fields(HwConfig)
            if f.name not in NOT_SWEPT}


def buffer_bytes(hw: HwConfig) -> int:
    """Total on-chip SRAM bytes: every buffer's entries times its entry size."""
    return sum(hw.entries(b) * hw.entry_bytes(b) for b in BUFFERS)


class SpaceError(ValueError):
    """A space file is malformed; the message is one line naming the file and the field."""


@dataclass(frozen=True)
class Constraints:
    max_buffer_bytes: int | None = None
    max_peak_bitops_per_cycle: int | None = None
    min_fps: float | None = None
    rtl_supported: bool = False

    def before(self, hw: HwConfig) -> str:
        """The reason `hw` is excluded before compiling, or ''."""
        if self.max_buffer_bytes is not None and buffer_bytes(hw) > self.max_buffer_bytes:
            return f"constraint max_buffer_bytes: {buffer_bytes(hw):,} B > {self.max_buffer_bytes:,} B"
        if self.max_peak_bitops_per_cycle is not None and hw.peak_bitops_per_cycle > self.max_peak_bitops_per_cycle:
            return (f"constraint max_peak_bitops_per_cycle: {hw.peak_bitops_per_cycle:,} > "
                    f"{self.max_peak_bitops_per_cycle:,}")
        if self.rtl_supported:
            from bitbranch.rtlharness.params import UnsupportedConfig, check_supported

            try:
                check_supported(hw)
            except UnsupportedConfig as exc:
                return "constraint rtl_supported: " + str(exc).split(": ", 1)[-1]
        return ""

    def after(self, row: dict) -> str:
        """The reason a simulated point is excluded, or ''."""
        if self.min_fps is not None and (row.get("fps") or 0.0) < self.min_fps:
            return f"constraint min_fps: {row.get('fps') or 0.0:,.1f} < {self.min_fps:,}"
        return ""


@dataclass(frozen=True)
class Candidate:
    """One grid point: the values of the varied fields, and the config (None when invalid, see `reason`)."""

    values: dict[str, Any]
    hw: HwConfig | None
    reason: str = ""


@dataclass
class Space:
    path: Path | None
    base: HwConfig
    fields: dict[str, list]  # varied field -> values (ties excluded)
    ties: dict[str, str] = field(default_factory=dict)  # field -> the field whose value it takes
    precisions: list[str] = field(default_factory=list)  # tokens, or precision files (resolved paths)
    seed: int = 0
    constraints: Constraints = field(default_factory=Constraints)

    @property
    def varied(self) -> list[str]:
        """Fields that change across the grid (including tied ones), in HwConfig order."""
        return [f for f in hw_fields() if f in self.fields or f in self.ties]

    def size(self) -> int:
        return math.prod(len(v) for v in self.fields.values())

    def hw_points(self) -> Iterator[Candidate]:
        names = list(self.fields)
        for combo in itertools.product(*(self.fields[n] for n in names)):
            values = dict(zip(names, combo, strict=True))
            for f, src in self.ties.items():
                values[f] = values[src] if src in values else getattr(self.base, src)
            values = {f: values[f] for f in hw_fields() if f in values}
            desc = ",".join(f"{k}={v}" for k, v in values.items())
            try:
                hw = dataclasses.replace(self.base, name=f"{self.base.name}*", description=desc or self.base.name,
                                         **values)
            except ConfigError as exc:
                yield Candidate(values, None, "invalid config: " + str(exc).split(": ", 1)[-1])
                continue
            yield Candidate(values, hw, self.constraints.before(hw))

    def digest(self) -> str:
        doc = {"base": dataclasses.asdict(self.base), "fields": self.fields, "ties": self.ties,
               "precisions": self.precisions, "seed": self.seed}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def _expand(where: str, name: str, spec: Any, kind: type) -> list:
    def typed(v: Any, what: str) -> int | float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise SpaceError(f"{where}: {name}: {what} {v!r} is not a number")
        if kind is int:
            if isinstance(v, float) and not v.is_integer():
                raise SpaceError(f"{where}: {name}: {what} {v!r} must be an integer")
            return int(v)
        return float(v)

    if isinstance(spec, list):
        values = [typed(v, "value") for v in spec]
    elif isinstance(spec, dict):
        unknown = sorted(set(spec) - {"start", "stop", "step", "factor"})
        if unknown:
            raise SpaceError(f"{where}: {name}: unknown range key(s) {', '.join(unknown)} "
                             "(a range is {start, stop, step} or {start, stop, factor})")
        if "start" not in spec or "stop" not in spec:
            raise SpaceError(f"{where}: {name}: a range needs start and stop")
        if ("step" in spec) == ("factor" in spec):
            raise SpaceError(f"{where}: {name}: a range needs exactly one of step or factor")
        start, stop = typed(spec["start"], "start"), typed(spec["stop"], "stop")
        if stop < start:
            raise SpaceError(f"{where}: {name}: stop {stop} < start {start}")
        values = []
        if "step" in spec:
            step = typed(spec["step"], "step")
            if not step > 0:
                raise SpaceError(f"{where}: {name}: step must be > 0")
            n = math.floor((stop - start) / step + 1e-9) + 1
            values = [kind(start + k * step) for k in range(n)]
        else:
            factor = typed(spec["factor"], "factor")
            if not factor > 1 or not start > 0:
                raise SpaceError(f"{where}: {name}: a geometric range needs factor > 1 and start > 0")
            v = start
            while v <= stop * (1 + 1e-9):
                values.append(kind(round(v) if kind is int else v))
                v *= factor
    else:
        raise SpaceError(f"{where}: {name}: expected a list, a range table or a field name to tie to, "
                         f"got {spec!r}")
    values = list(dict.fromkeys(values))
    if not values:
        raise SpaceError(f"{where}: {name}: no values")
    if any(not v > 0 for v in values):
        raise SpaceError(f"{where}: {name}: every value must be > 0")
    return values


def parse_space(raw: dict, where: str = "<space>", path: Path | None = None) -> Space:
    """A Space from the parsed TOML document `raw`; `where` names the file in errors."""
    from .. import precision as wprec

    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise SpaceError(f"{where}: {unknown[0]}: unknown key (known: {', '.join(TOP_KEYS)})")
    base_name = raw.get("base", "edge")
    if not isinstance(base_name, str):
        raise SpaceError(f"{where}: base: expected a preset name or file.toml[:name], got {base_name!r}")
    if path is not None and ".toml" in base_name and not Path(base_name.partition(":")[0]).is_absolute():
        base_name = str(path.parent / base_name)
    try:
        base = get_config(base_name)
    except (ConfigError, OSError) as exc:
        raise SpaceError(f"{where}: base: {exc}") from None

    hw = raw.get("hw", {})
    if not isinstance(hw, dict):
        raise SpaceError(f"{where}: hw: expected a table of fields")
    known = hw_fields()
    fields, ties = {}, {}
    for name, spec in hw.items():
        if name not in known:
            hint = " (fixed by the base config)" if name in NOT_SWEPT else f" (fields: {', '.join(known)})"
            raise SpaceError(f"{where}: hw.{name}: not a hardware field{hint}")
        if isinstance(spec, str):
            if spec not in known or spec == name:
                raise SpaceError(f"{where}: hw.{name}: tie {spec!r} is not another hardware field")
            if known[spec] is not known[name]:
                raise SpaceError(f"{where}: hw.{name}: cannot tie to {spec} (different types)")
            ties[name] = spec
        else:
            fields[name] = _expand(f"{where}", f"hw.{name}", spec, known[name])
    for name, src in ties.items():
        if src in ties:
            raise SpaceError(f"{where}: hw.{name}: ties to {src}, which is itself tied")

    precs = raw.get("precisions", [])
    if isinstance(precs, str):
        precs = [precs]
    if not isinstance(precs, list) or not all(isinstance(p, str) for p in precs):
        raise SpaceError(f"{where}: precisions: expected a list of strings (W2A2, or precision files)")
    resolved = []
    for p in precs:
        if p.lower().endswith((".toml", ".json")):
            file = Path(p) if Path(p).is_absolute() or path is None else path.parent / p
            try:
                wprec.parse_bits(str(file))
            except (OSError, ValueError) as exc:
                raise SpaceError(f"{where}: precisions: {p}: {exc}") from None
            resolved.append(str(file))
        else:
            try:
                wprec.parse_bits(p, wprec.spec())
            except ValueError as exc:
                raise SpaceError(f"{where}: precisions: {p}: {exc}") from None
            resolved.append(p)

    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpaceError(f"{where}: seed: expected an integer, got {seed!r}")

    cons = raw.get("constraints", {})
    if not isinstance(cons, dict):
        raise SpaceError(f"{where}: constraints: expected a table")
    kinds = {"max_buffer_bytes": int, "max_peak_bitops_per_cycle": int, "min_fps": float, "rtl_supported": bool}
    values = {}
    for key, v in cons.items():
        if key not in kinds:
            raise SpaceError(f"{where}: constraints.{key}: unknown constraint (known: {', '.join(kinds)})")
        want = kinds[key]
        ok = isinstance(v, bool) if want is bool else (isinstance(v, int | float) and not isinstance(v, bool))
        if not ok or (want is int and isinstance(v, float) and not v.is_integer()):
            raise SpaceError(f"{where}: constraints.{key}: expected {want.__name__}, got {v!r}")
        values[key] = want(v)
    space = Space(path, base, fields, ties, resolved, seed, Constraints(**values))
    if space.size() > MAX_POINTS:
        raise SpaceError(f"{where}: hw: {space.size():,} points per model and precision (at most {MAX_POINTS:,})")
    return space


def load_space(path: str | Path) -> Space:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SpaceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{path}: not valid TOML: {exc}") from None
    return parse_space(raw, str(path), path)
