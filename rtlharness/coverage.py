"""`bitbranch coverage`: code coverage of the RTL under a verification suite (Verilator line, branch, toggle).

The core is built with Verilator's `--coverage-line --coverage-toggle` (a separate cached build), the suite of
`bitbranch mutate` runs on it (random programs and directed networks cross-checked against the simulator; a
failing check is an error here), and every simulation's counts are merged and reported per module of the
synthesizable core: line coverage (statement blocks), branch coverage (each arm of every if/case/?:) and toggle
coverage (every bit of every signal seen both 0->1 and 1->0), each instance of a module pooled; and the functional
coverpoints of the ISA and the timing contract the suite reached (simulator.funccov).
Reports: `coverage.md` (per module, then the uncovered lines), `coverage.info` (lcov, for genhtml or an
editor) and `coverage.json`. Verilator's own `verilator_coverage` tool is not needed: its data file is a
plain text format read here.

Waivers (rtlharness/waivers.py, `coverage_waivers.toml`) take out the points that cannot be reached in the
configurations the suite ran, each with its reason: the report gives every module's raw figure, the points
waived and the figure over the rest, lists the waivers applied, and reports a waiver that waives nothing or a
point that was hit (exit status 1: a stale waiver must not hide anything).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bitbranch.isa.cliutil import fail
from bitbranch.simulator import funccov

from . import waivers

GROUPS = tuple(funccov.all_points())

KINDS = ("line", "branch", "toggle")


@dataclass(frozen=True)
class Point:
    """One coverage point: its kind, the module and source line it belongs to, and what it is."""

    kind: str
    module: str
    file: str
    line: int
    what: str
    hier: str


def parse_dat(text: str) -> dict[Point, int]:
    """Coverage points and counts of one Verilator coverage.dat (`C '<key\\x02value\\x01...>' count` lines)."""
    out: dict[Point, int] = {}
    for m in re.finditer(r"^C '(.*)' (\d+)$", text, flags=re.M):
        fields = dict(item.split("\x02", 1) for item in m.group(1).split("\x01") if "\x02" in item)
        page = fields.get("page", "")
        kind = page.split("/")[0].removeprefix("v_")
        if kind not in KINDS:
            continue
        # a parameterised instance's module is named <module>__<parameter digest>
        module = page.split("/", 1)[1].split("__")[0] if "/" in page else "?"
        point = Point(kind, module, Path(fields.get("f", "?")).name, int(fields.get("l", 0) or 0),
                      fields.get("o", ""), fields.get("h", ""))
        out[point] = out.get(point, 0) + int(m.group(2))
    return out


def load_runs(files: Iterable[Path]) -> list[tuple[dict[str, int], dict[Point, int]]]:
    """(Verilog parameters, points) of every run: the parameters from the `runNNNNN.json` that rtlharness.build
    writes beside a run's counts ({} when it is missing)."""
    out = []
    for f in files:
        side = f.with_suffix(".json")
        meta = json.loads(side.read_text()) if side.is_file() else {}
        params = meta.get("parameters", {}) | meta.get("names", {})
        out.append((params, parse_dat(f.read_text(errors="replace"))))
    return out


def merge(files: Iterable[Path]) -> dict[Point, int]:
    return merge_runs((None, parse_dat(f.read_text(errors="replace"))) for f in files)


def merge_runs(runs: Iterable[tuple[object, dict[Point, int]]]) -> dict[Point, int]:
    total: dict[Point, int] = defaultdict(int)
    for _, points in runs:
        for p, n in points.items():
            total[p] += n
    return dict(total)


@dataclass
class ModuleCoverage:
    module: str
    hit: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    waived: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    # of `waived`, the points of the `sim-time` category (bits a run cannot reach within a simulation's length,
    # not unreachable logic): the report gives every figure with them waived and with them counted as missed
    sim_time: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    missed_lines: set[tuple[str, int]] = field(default_factory=set)

    def percent(self, kind: str) -> float | None:
        return 100.0 * self.hit[kind] / self.total[kind] if self.total[kind] else None

    def percent_waived(self, kind: str) -> float | None:
        """Over the points not waived (a waived point is never hit: waivers.apply counts a hit one as hit)."""
        rest = self.total[kind] - self.waived[kind]
        return 100.0 * self.hit[kind] / rest if rest else None

    def percent_waived_counting_sim_time(self, kind: str) -> float | None:
        """Over the points not waived by a waiver of another category than `sim-time` (its points count as
        missed: a longer simulation could hit them)."""
        rest = self.total[kind] - self.waived[kind] + self.sim_time[kind]
        return 100.0 * self.hit[kind] / rest if rest else None


def pool(points: dict[Point, int], modules: Iterable[str]) -> dict[tuple, int]:
    """Counts per (kind, module, file, line, what): every instance (and every run) of a module summed."""
    wanted = set(modules)
    pooled: dict[tuple, int] = defaultdict(int)
    for p, n in points.items():
        if p.module in wanted:
            pooled[(p.kind, p.module, p.file, p.line, p.what)] += n
    return dict(pooled)


def per_module(points: dict[Point, int], modules: Iterable[str],
               waived: dict[tuple, str] | None = None, sim_time: Iterable[str] = ()) -> dict[str, ModuleCoverage]:
    """Coverage per module (points of every instance of a module pooled: a point counts as hit when any
    instance hit it); `waived` (waivers.apply) holds the pooled points taken out, never hit ones, with the id of
    the waiver; `sim_time`, the ids of the waivers of the `sim-time` category."""
    waived = waived or {}
    sim_time = set(sim_time)
    out = {m: ModuleCoverage(m) for m in sorted(set(modules))}
    for key, n in pool(points, modules).items():
        kind, module, file, line, _what = key
        mc = out[module]
        mc.total[kind] += 1
        mc.hit[kind] += n > 0
        if n == 0 and key in waived:
            mc.waived[kind] += 1
            mc.sim_time[kind] += waived[key] in sim_time
        elif n == 0 and kind in ("line", "branch"):
            mc.missed_lines.add((file, line))
    return out


def missed_toggles(pooled: dict[tuple, int], waived: dict[tuple, str]) -> dict[str, dict[str, dict[int, set[str]]]]:
    """Toggle points neither hit nor waived, {module: {signal: {bit: directions}}}: what a next round of
    stimulus or waivers has to read, signal by signal."""
    out: dict[str, dict[str, dict[int, set[str]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    for key, n in pooled.items():
        kind, module, _file, _line, what = key
        m = waivers.TOGGLE.match(what) if kind == "toggle" and n == 0 and key not in waived else None
        if m:
            out[module][m.group("sig")][int(m.group("bit") or 0)].add(m.group("dir"))
    return out


def bit_ranges(bits: dict[int, set[str]]) -> str:
    """'0, 10-31, 43(1->0)': runs of consecutive bits missed in the same directions; one direction is named."""
    runs: list[list[int]] = []
    for b in sorted(bits):
        if runs and b == runs[-1][1] + 1 and bits[b] == bits[runs[-1][0]]:
            runs[-1][1] = b
        else:
            runs.append([b, b])
    return ", ".join((f"{lo}" if lo == hi else f"{lo}-{hi}")
                     + ("" if len(bits[lo]) == 2 else f"({next(iter(bits[lo]))})") for lo, hi in runs)


def _left_markdown(left: dict[str, dict[str, dict[int, set[str]]]]) -> list[str]:
    lines = ["", "## Toggle points left (neither hit nor waived)", "",
             "Per module, each signal's missed bits (both directions unless one is named) and their count, largest "
             "first.", ""]
    for module in sorted(left):
        sigs = sorted(left[module].items(), key=lambda kv: (-sum(map(len, kv[1].values())), kv[0]))
        total = sum(sum(map(len, bits.values())) for _, bits in sigs)
        lines.append(f"- {module} ({total}): " + "; ".join(
            f"`{sig}` {bit_ranges(bits)} ({sum(map(len, bits.values()))})" for sig, bits in sigs))
    return lines


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} %"


def markdown(cov: dict[str, ModuleCoverage], suite: str, seconds: float, applied=None, waivers=(),
             left: dict | None = None) -> str:
    """The per-module table: each kind's raw figure (hit / points), the points waived and the figure over the
    rest; then the lines never reached (waived ones left out), the toggle points left (`left`, missed_toggles),
    the waivers applied and the waiver problems."""
    lines = [f"# RTL code coverage ({suite} suite, Verilator line, branch and toggle; {seconds:.0f} s)", "",
             "| module | " + " | ".join(f"{k} raw | {k} hit / points | {k} waived | {k} after waivers"
                                       for k in KINDS) + " |",
             "|---|" + "---|---|---|---|" * len(KINDS)]

    def row(name: str, hit: dict[str, int], total: dict[str, int], waived: dict[str, int]) -> str:
        return f"| {name} | " + " | ".join(
            f"{_pct(100 * hit[k] / total[k] if total[k] else None)} | {hit[k]} / {total[k]} | {waived[k]} | "
            f"{_pct(100 * hit[k] / (total[k] - waived[k]) if total[k] - waived[k] else None)}" for k in KINDS) + " |"

    for m, c in cov.items():
        lines.append(row(m, c.hit, c.total, c.waived))
    lines.append(row("**all**", *({k: sum(getattr(c, a)[k] for c in cov.values()) for k in KINDS}
                                  for a in ("hit", "total", "waived"))))
    lines += ["", "## Lines and branch arms never reached (not waived)", ""]
    for m, c in cov.items():
        if c.missed_lines:
            where = ", ".join(f"{f}:{ln}" for f, ln in sorted(c.missed_lines))
            lines.append(f"- {m}: {where}")
    if left:
        lines += _left_markdown(left)
    if any(c.sim_time[k] for c in cov.values() for k in KINDS):
        lines += ["", "## With and without the sim-time waivers", "",
                  "`sim-time` waives bits that no run can reach within the simulation's length (the bound is in each "
                  "waiver's reason), not unreachable logic: a longer run reaches them. Each figure is given with "
                  "them waived and with them counted as missed.", "",
                  "| module | " + " | ".join(f"{k} sim-time waived | {k} after waivers | {k} after waivers, "
                                           "sim-time counted" for k in KINDS) + " |",
                  "|---|" + "---|---|---|" * len(KINDS)]
        tot = {a: {k: sum(getattr(c, a)[k] for c in cov.values()) for k in KINDS}
               for a in ("hit", "total", "waived", "sim_time")}
        for name, c in [*cov.items(), ("**all**", None)]:
            h, t, w, st = ((getattr(c, a) for a in ("hit", "total", "waived", "sim_time")) if c is not None
                           else (tot[a] for a in ("hit", "total", "waived", "sim_time")))
            lines.append(f"| {name} | " + " | ".join(
                f"{st[k]} | {_pct(100 * h[k] / (t[k] - w[k]) if t[k] - w[k] else None)} | "
                f"{_pct(100 * h[k] / (t[k] - w[k] + st[k]) if t[k] - w[k] + st[k] else None)}" for k in KINDS) + " |")
    if applied is not None:
        lines += ["", "## Waivers applied", "", "| waiver | module | kind | category | points | reason |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {w.id} | {w.module} | {w.kind} | {w.category} | {applied.count.get(w.id, 0)} | {w.reason} |"
                  for w in waivers]
        lines += ["", "## Waiver problems", ""]
        lines += [f"- {p}" for p in applied.problems] or ["None: every waiver waived at least one point, none "
                                                          "that was hit."]
    return "\n".join(lines) + "\n"


def functional_markdown(table: dict[str, dict[str, dict]]) -> str:
    """The functional coverpoints (simulator.funccov) per preset and group, then every point missed."""
    lines = ["## Functional coverage (ISA and timing contract coverpoints)", "",
             "| preset | " + " | ".join(GROUPS) + " | all |", "|---|" + "---|" * (len(GROUPS) + 1)]
    for preset, groups in table.items():
        hit = sum(g["hit"] for g in groups.values())
        total = sum(g["total"] for g in groups.values())
        lines.append(f"| {preset} | " + " | ".join(f"{groups[g]['hit']} / {groups[g]['total']}" for g in GROUPS)
                     + f" | {hit} / {total} ({_pct(100 * hit / total)}) |")
    missed = [f"- {preset} {g}: {', '.join(v['missed'])}" for preset, groups in table.items()
              for g, v in groups.items() if v["missed"]]
    lines += ["", "Coverpoints never hit:" if missed else "Every coverpoint was hit.", "", *missed]
    return "\n".join(lines) + "\n"


def lcov(points: dict[Point, int], rtl: Path, modules: Iterable[str]) -> str:
    """Line coverage in lcov's tracefile format (genhtml renders it)."""
    wanted = set(modules)
    by_file: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for p, n in points.items():
        if p.kind == "line" and p.module in wanted:
            by_file[p.file][p.line] += n
    out = []
    for f, lines in sorted(by_file.items()):
        out.append(f"SF:{rtl / f}")
        out += [f"DA:{ln},{n}" for ln, n in sorted(lines.items())]
        out += [f"LH:{sum(n > 0 for n in lines.values())}", f"LF:{len(lines)}", "end_of_record"]
    return "\n".join(out) + "\n"


def add_arguments_coverage(parser: argparse.ArgumentParser) -> None:
    from .mutate import SUITES

    parser.add_argument("--suite", choices=SUITES, default="quick", help="the checks to run (default quick)")
    parser.add_argument("--out", default="out/coverage", metavar="DIR", help="report directory (default out/coverage)")
    parser.add_argument("--json", action="store_true", help="print the per-module figures as one JSON object")
    parser.add_argument("--waivers", default=None, metavar="TOML",
                        help="waiver file (default: rtlharness/coverage_waivers.toml; 'none' for raw figures only)")


def cmd_coverage(args: argparse.Namespace) -> int:
    from bitbranch.rtl import rtl_dir

    from .build import SimulatorError, coverage_runs
    from .mutate import core_files, suite

    try:
        waiver_list = [] if args.waivers == "none" else waivers.load(Path(args.waivers or waivers.WAIVERS_FILE))
    except (OSError, waivers.WaiverError) as exc:
        return fail(f"waivers: {exc}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return fail(f"--out {out} exists and is not a directory")
    data = out / "data"
    for old in [*data.glob("run*.dat"), *data.glob("run*.json")] if data.is_dir() else ():
        old.unlink()
    modules = [f.removesuffix(".v") for f in core_files()]
    t0 = time.perf_counter()
    try:
        with coverage_runs(data), funccov.collecting() as functional:
            for check in suite(args.suite):
                print(f"coverage: {check.name} ...", file=sys.stderr)
                problem = check.run("verilator")
                if problem is not None:
                    return fail(f"check {check.name} failed on the unmutated RTL: {problem}")
    except SimulatorError as exc:
        return fail(str(exc))
    seconds = time.perf_counter() - t0
    runs = load_runs(sorted(data.glob("run*.dat")))
    points = merge_runs(runs)
    if not points:
        return fail(f"no coverage data was written under {data}")
    applied = waivers.apply(waiver_list, runs, pool(points, modules), rtl_dir())
    cov = per_module(points, modules, applied.waived, [w.id for w in waiver_list if w.category == "sim-time"])
    left = missed_toggles(pool(points, modules), applied.waived)
    table = functional.table()
    (out / "coverage.md").write_text(markdown(cov, args.suite, seconds, applied, waiver_list, left) + "\n"
                                     + functional_markdown(table))
    (out / "coverage.info").write_text(lcov(points, rtl_dir(), modules))
    summary = {m: {k: c.percent(k) for k in KINDS} | {f"{k}_points": c.total[k] for k in KINDS}
               | {f"{k}_waived": c.waived[k] for k in KINDS}
               | {f"{k}_after_waivers": c.percent_waived(k) for k in KINDS}
               | {f"{k}_waived_sim_time": c.sim_time[k] for k in KINDS}
               | {f"{k}_after_waivers_counting_sim_time": c.percent_waived_counting_sim_time(k) for k in KINDS}
               for m, c in cov.items()}
    functional_summary = {preset: {g: {"hit": v["hit"], "total": v["total"], "missed": v["missed"]}
                                   for g, v in groups.items()} for preset, groups in table.items()}
    waiver_summary = {"applied": {w.id: {"module": w.module, "kind": w.kind, "category": w.category,
                                         "points": applied.count.get(w.id, 0)} for w in waiver_list},
                      "problems": applied.problems}
    toggle_left = {m: {sig: bit_ranges(bits) for sig, bits in sigs.items()} for m, sigs in sorted(left.items())}
    (out / "coverage.json").write_text(json.dumps({"modules": summary, "functional": functional_summary,
                                                   "waivers": waiver_summary, "toggle_left": toggle_left}, indent=1))
    if args.json:
        print(json.dumps({"suite": args.suite, "seconds": round(seconds, 1), "modules": summary,
                          "functional": functional_summary, "waivers": waiver_summary}))
    else:
        print((out / "coverage.md").read_text().split("\n## ")[0])
        print(functional_markdown(table).split("\nCoverpoints")[0])
        print(f"reports: {out / 'coverage.md'}, {out / 'coverage.info'} (lcov), {out / 'coverage.json'}")
    for problem in applied.problems:
        print(f"coverage: {problem}", file=sys.stderr)
    if applied.problems:
        print(f"error: {len(applied.problems)} waiver problem(s) (listed in {out / 'coverage.md'})", file=sys.stderr)
        return 1
    return 0
