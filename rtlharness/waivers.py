"""Coverage waivers: points of the core that cannot be reached in the configurations a suite runs, each with why.

The waivers are checked in (`rtlharness/coverage_waivers.toml`). Each names a module, the kind of point
(`line`, `branch`, `toggle`), which points (toggle: a glob on the signal name, an optional bit range and
direction; line/branch: the text of the source line and an optional glob on the branch arm), the reason, and
optionally
* `when`: a condition on the Verilog parameters of a run (upper-case names, as rtlharness.params derives them
  from the hardware config in `isa/presets.toml`); the waiver applies only to runs where it holds;
* `bits = [lo, hi]`: expressions over the same parameters and the ISA's field widths, legal maxima and
  positions (`<OPCODE>_<FIELD>_W`, `<OPCODE>_<FIELD>_MAX`, `<OPCODE>_<FIELD>_LSB`, from isa/spec.py as
  bitbranch_isa.vh names them without the `BB_` prefix) and the sizes the config derives (`E_INP`: bytes of
  an INP entry, `BYTES_INP`: of the whole buffer; isa.hwconfig) with `clog2`, `max`, `min`, + - * // % **, so the
  unreachable high bits of an address follow the config instead of a hand-copied number (`hi` may be omitted:
  up to the signal's top bit); with `lane = N` the range applies to the bit's index within each N-bit lane
  of a packed vector (bit % N), e.g. the high half of every 32-bit lane;
* `evidence`: `{file, contains}` pairs, text that must be in the RTL for the reason to hold (a tie-off in the
  bench, a constant assignment); when the text is gone the waiver is reported, not applied.

Each simulation's Verilog parameters are written beside its counts (`runNNNNN.json`, rtlharness.build), and a
waiver is evaluated per run: a point of the pooled report is waived only when it was waived in every run
that has it. A waiver never hides a point that was hit: a waived point with a non-zero count is reported as a
problem and counted as hit, and so is a waiver that matches nothing (stale), a source text that is not found
or an evidence text that is gone.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import operator
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

WAIVERS_FILE = Path(__file__).with_name("coverage_waivers.toml")
CATEGORIES = ("tied-off", "range", "constant", "sim-only", "unreachable", "sim-time")
KINDS = ("line", "branch", "toggle")

TOGGLE = re.compile(r"^(?P<sig>.*?)(?:\[(?P<bit>\d+)\])?:(?P<dir>0->1|1->0)$")


class WaiverError(ValueError):
    """The waiver file is malformed."""


# --- expressions over the Verilog parameters ----------------------------------------------------------------

@functools.cache
def isa_names() -> dict[str, int]:
    """Every field's width, legal maximum and first bit in the instruction word, named as in bitbranch_isa.vh
    without `BB_`: BGEMM_KH_W, BGEMM_KH_MAX, BGEMM_KH_LSB, ..."""
    from bitbranch.isa.spec import OPCODES

    out: dict[str, int] = {}
    for op in OPCODES:
        for f in op.fields:
            out[f"{op.name.upper()}_{f.name.upper()}_W"] = f.width
            out[f"{op.name.upper()}_{f.name.upper()}_MAX"] = f.max_value
            out[f"{op.name.upper()}_{f.name.upper()}_LSB"] = op.field(f.name).offset
    return out


def config_names(params: dict[str, int]) -> dict[str, int]:
    """Sizes the hardware config derives (isa.hwconfig, the one definition): E_<BUF> (bytes of one entry) and
    BYTES_<BUF> (the whole buffer) of every buffer; {} when the parameters do not make a config."""
    import dataclasses

    from bitbranch.isa.hwconfig import BUFFERS, HwConfig

    fields = {f.name for f in dataclasses.fields(HwConfig)} - {"name", "description", "clock_mhz"}
    try:
        hw = HwConfig(name="run", description="", clock_mhz=100.0, **{f: params[f.upper()] for f in fields})
    except (KeyError, TypeError, ValueError):
        return {}
    out = {}
    for buf in BUFFERS:
        out[f"E_{buf.upper()}"] = hw.entry_bytes(buf)
        out[f"BYTES_{buf.upper()}"] = hw.entry_bytes(buf) * hw.entries(buf)
    return out


def clog2(n: int) -> int:
    """Verilog's $clog2: bits to address n things (0 for n <= 1)."""
    return 0 if n <= 1 else math.ceil(math.log2(n))


_FUNCS = {"clog2": clog2, "max": max, "min": min}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
        ast.Mod: operator.mod, ast.Pow: operator.pow}
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Eq: operator.eq,
        ast.NotEq: operator.ne}


def evaluate(expr: str | int, params: dict[str, int]) -> int | bool:
    """An integer expression or condition over `params` (no other names, no attribute access, no calls but
    clog2/max/min). KeyError for a parameter the run does not have; WaiverError for anything else."""
    if isinstance(expr, int):
        return expr

    def ev(node: ast.AST):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return params[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            return _BIN[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not ev(node.operand)
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = ev(right_node)
                if type(op) not in _CMP or not _CMP[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS \
                and not node.keywords:
            return _FUNCS[node.func.id](*(ev(a) for a in node.args))
        raise WaiverError(f"expression '{expr}': {ast.dump(node)[:60]} is not allowed")

    try:
        tree = ast.parse(str(expr), mode="eval")
    except SyntaxError as exc:
        raise WaiverError(f"expression '{expr}': {exc.msg}") from None
    return ev(tree)


# --- the waiver file ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Waiver:
    id: str
    kind: str
    module: str
    category: str
    reason: str
    signal: tuple[str, ...] = ()
    bits: tuple[str | int, str | int | None] | None = None
    lane: str | int | None = None
    direction: str | None = None
    source: str | None = None
    arm: str | None = None
    when: str | None = None
    evidence: tuple[tuple[str, str], ...] = ()


def load(path: Path = WAIVERS_FILE) -> list[Waiver]:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise WaiverError(f"{path}: {exc}") from None
    return parse(raw.get("waiver", []), str(path))


def parse(entries: list[dict], where: str = "waivers") -> list[Waiver]:
    out: list[Waiver] = []
    seen: set[str] = set()
    allowed = {"id", "kind", "module", "category", "reason", "signal", "bits", "lane", "direction", "source", "arm",
               "when", "evidence"}
    for n, e in enumerate(entries):
        name = e.get("id", f"#{n}")
        bad = sorted(set(e) - allowed)
        if bad:
            raise WaiverError(f"{where}: waiver {name}: unknown field(s) {', '.join(bad)}")
        for req in ("id", "kind", "module", "category", "reason"):
            if not e.get(req):
                raise WaiverError(f"{where}: waiver {name}: '{req}' is required")
        if name in seen:
            raise WaiverError(f"{where}: waiver id {name} appears twice")
        seen.add(name)
        if e["kind"] not in KINDS:
            raise WaiverError(f"{where}: waiver {name}: kind must be one of {', '.join(KINDS)}")
        if e["category"] not in CATEGORIES:
            raise WaiverError(f"{where}: waiver {name}: category must be one of {', '.join(CATEGORIES)}")
        if e["kind"] == "toggle" and not e.get("signal"):
            raise WaiverError(f"{where}: waiver {name}: a toggle waiver needs 'signal'")
        if e["kind"] != "toggle" and not e.get("source"):
            raise WaiverError(f"{where}: waiver {name}: a line/branch waiver needs 'source' (the line's text)")
        if e.get("direction") not in (None, "0->1", "1->0"):
            raise WaiverError(f"{where}: waiver {name}: direction must be '0->1' or '1->0'")
        bits = e.get("bits")
        if bits is not None and not (isinstance(bits, list) and 1 <= len(bits) <= 2):
            raise WaiverError(f"{where}: waiver {name}: bits must be [lo] or [lo, hi]")
        signal = e.get("signal", ())
        evidence = tuple((ev["file"], ev["contains"]) for ev in e.get("evidence", ()))
        out.append(Waiver(
            id=name, kind=e["kind"], module=e["module"], category=e["category"], reason=" ".join(e["reason"].split()),
            signal=(signal,) if isinstance(signal, str) else tuple(signal),
            bits=None if bits is None else (bits[0], bits[1] if len(bits) > 1 else None), lane=e.get("lane"),
            direction=e.get("direction"), source=e.get("source"), arm=e.get("arm"), when=e.get("when"),
            evidence=evidence))
    return out


# --- applying them ------------------------------------------------------------------------------------------

Key = tuple  # (kind, module, file, line, what): a point of the pooled report


@dataclass
class Applied:
    """The outcome of the waivers on a coverage run set."""

    waived: dict[Key, str]                 # pooled point -> id of the waiver that waived it
    count: dict[str, int]                  # waiver id -> points it waived
    problems: list[str]                    # stale waivers, waived points that were hit, broken evidence


@functools.cache
def _glob(pattern: str) -> re.Pattern:
    """A glob where only `*` (any text) and `?` (one character) are special: `bank[3].j` is literal."""
    return re.compile("".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern) + r"\Z")


def _match(name: str, pattern: str) -> bool:
    return _glob(pattern).match(name) is not None


def _norm(text: str) -> str:
    return " ".join(text.split())


def _source_lines(w: Waiver, rtl: Path) -> set[int] | str:
    """The lines of the module's file whose text contains `w.source` (whitespace-insensitive), or a problem."""
    f = rtl / f"{w.module}.v"
    if not f.is_file():
        return f"{f.name} does not exist"
    lines = {n for n, text in enumerate(f.read_text().splitlines(), 1) if _norm(w.source) in _norm(text)}
    return lines or f"no line of {f.name} contains '{w.source}'"


def _evidence_problem(w: Waiver, rtl: Path) -> str | None:
    for file, text in w.evidence:
        f = rtl / file
        if not f.is_file() or _norm(text) not in _norm(f.read_text()):
            return f"its evidence is gone: {file} no longer contains '{text}'"
    return None


def apply(waivers: list[Waiver], runs: list[tuple[dict[str, int], dict]], pooled: dict[Key, int],
          rtl: Path) -> Applied:
    """Apply `waivers` to the points of `runs` ((parameters, {Point: count}) per simulation); `pooled` holds the
    summed count of every point of the report (the modules it covers). A point is waived when, in every run that
    has it, some waiver's condition held and matched it, and it was never hit."""
    problems: list[str] = []
    live: list[Waiver] = []
    lines: dict[str, set[int]] = {}
    for w in waivers:
        problem = _evidence_problem(w, rtl)
        if problem is None and w.source is not None:
            found = _source_lines(w, rtl)
            if isinstance(found, str):
                problem = found
            else:
                lines[w.id] = found
        if problem is not None:
            problems.append(f"waiver {w.id} ({w.module}) not applied: {problem}")
        else:
            live.append(w)
    by_module: dict[tuple[str, str], list[Waiver]] = defaultdict(list)
    for w in live:
        by_module[(w.kind, w.module)].append(w)

    cache: dict[tuple, list[tuple[Waiver, int, int | None, int]]] = {}

    def candidates(params_key: str, params: dict[str, int], kind: str, module: str, sig: str):
        ck = (params_key, kind, module, sig)
        if ck not in cache:
            found = []
            for w in by_module.get((kind, module), ()):
                if w.signal and not any(_match(sig, g) for g in w.signal):
                    continue
                try:
                    if w.when is not None and not evaluate(w.when, params):
                        continue
                    lo, hi = (0, None) if w.bits is None else (
                        evaluate(w.bits[0], params), None if w.bits[1] is None else evaluate(w.bits[1], params))
                    lane = 0 if w.lane is None else int(evaluate(w.lane, params))
                except KeyError as exc:  # a run without this parameter: the waiver cannot hold there
                    problems.append(f"waiver {w.id}: parameter {exc} unknown in a run")
                    continue
                found.append((w, int(lo), None if hi is None else int(hi), lane))
            cache[ck] = found
        return cache[ck]

    per_run: dict[Key, str | None] = {}   # None once some run has the point unwaived
    for run_params, points in runs:
        params_key = json.dumps(run_params, sort_keys=True)
        params = isa_names() | config_names(run_params) | run_params
        for p in points:
            key = (p.kind, p.module, p.file, p.line, p.what)
            if key not in pooled or per_run.get(key, "") is None:
                continue
            who = None
            if p.kind == "toggle":
                m = TOGGLE.match(p.what)
                if m:
                    bit = int(m.group("bit")) if m.group("bit") is not None else 0
                    for w, lo, hi, lane in candidates(params_key, params, "toggle", p.module, m.group("sig")):
                        b = bit % lane if lane else bit
                        if lo <= b and (hi is None or b <= hi) and w.direction in (None, m.group("dir")):
                            who = w.id
                            break
            else:
                for w, _, _, _ in candidates(params_key, params, p.kind, p.module, ""):
                    if p.line in lines[w.id] and (w.arm is None or _match(p.what, w.arm)):
                        who = w.id
                        break
            per_run[key] = who

    waived: dict[Key, str] = {}
    hit_by: dict[str, list[Key]] = defaultdict(list)
    for key, who in per_run.items():
        if who is None:
            continue
        if pooled[key] > 0:
            hit_by[who].append(key)
        else:
            waived[key] = who
    count = dict.fromkeys((w.id for w in waivers), 0)
    for who in waived.values():
        count[who] += 1
    for w in live:
        if hit_by[w.id]:
            some = ", ".join(f"{k[4]}" if k[0] == "toggle" else f"{k[2]}:{k[3]} {k[4]}" for k in hit_by[w.id][:4])
            problems.append(f"waiver {w.id} ({w.module}) matches {len(hit_by[w.id])} point(s) that were hit "
                            f"(counted as hit, not waived): {some}{' ...' if len(hit_by[w.id]) > 4 else ''}")
        elif count[w.id] == 0:
            problems.append(f"waiver {w.id} ({w.module}) waives no point: stale, or its condition fails in a run "
                            "that has its points")
    return Applied(waived, count, list(dict.fromkeys(problems)))  # each problem once
