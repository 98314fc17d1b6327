"""`bitbranch mutate`: mutation testing of the RTL — how many deliberately planted bugs does the harness catch?

Mutants are source-level edits of the synthesizable core (every `rtl/bb_*.v` of the core but the testbench and
the behavioural DRAM), one edit per mutant, drawn with a seeded RNG from every place an operator applies:

    relational   <  <=  >  >=  ==  !=   swapped with a neighbour (comparisons inside parentheses only, so a
                                        non-blocking assignment `<=` is never taken for one)
    arithmetic   binary + and - swapped
    logical      && <-> ||, binary & <-> |
    constant     a number +1 or -1 (sized literals keep their width)
    slice        a constant bit-slice bound [h:l] moved by one
    condition    if (c) -> if (!(c))
    stuck        assign x = e;  ->  assign x = 0;  or  -1 (all ones)
    signed       $signed(e) -> (e): a dropped sign extension

Each mutant is built (Icarus by default: a build takes seconds) and run against the simulator by the chosen
suite, check by check, the quickest and most effective first; the first check that fails kills it. A mutant
that does not build is replaced by another draw and not counted. Survivors are tried for equivalence with
Yosys (`equiv_make` / `equiv_induct` on the core); only a proof makes a mutant "equivalent".
score = killed / (killed + survived). Survivors read by hand and argued equivalent are listed with the argument in
mutants_equivalent.toml; the summary also gives the score without them (score_argued), never in place of the tool's.

With --log, outcomes are kept per RTL, suite and simulator, so a campaign resumes; a full-suite campaign whose
log holds the quick campaign of the same mutants reuses its kills (_quick_reuse) and runs the full suite on the
quick survivors only.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bitbranch.isa.cliutil import fail

from .build import VERILATOR_DEFINES

SUITES = ("quick", "full")
OPERATORS = ("relational", "arithmetic", "logical", "constant", "slice", "condition", "stuck", "signed")


@dataclass(frozen=True)
class Mutation:
    """One edit: replace `original` at character offset `start` of `file` (under rtl/) by `replacement`."""

    file: str
    line: int
    start: int
    original: str
    replacement: str
    operator: str

    def describe(self) -> str:
        # the character offset tells apart two identical points on one line (e.g. two `$signed`)
        return f"{self.file}:{self.line}: {self.operator}: '{self.original}' -> '{self.replacement}' @{self.start}"

    def apply(self, text: str) -> str:
        assert text[self.start:self.start + len(self.original)] == self.original, self.describe()
        return text[:self.start] + self.replacement + text[self.start + len(self.original):]


# --- finding mutation points ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<num>\d+'[sS]?[dDhHbBoO][0-9a-fA-F_xXzZ]+ | \d+)
  | (?P<id>\$?[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op>===|!==|<<<|>>>|<<|>>|<=|>=|==|!=|&&|\|\||~&|~\||~\^|\^~|\+:|-:|[-+*/%<>!~&|^?:=(){}\[\];,.@#`'])
  | (?P<ws>\s+)
  | (?P<other>.)
""", re.VERBOSE)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    start: int
    paren: int  # parenthesis depth at the token
    bracket: int  # bracket depth at the token


def _blank_comments_and_sim_only(text: str) -> str:
    """Comments, preprocessor lines, declarations of parameters, system tasks and `ifdef` blocks become spaces
    (offsets are kept), so no mutation lands in them."""
    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    text = re.sub(r"/\*.*?\*/", blank, text, flags=re.S)
    text = re.sub(r"//[^\n]*", blank, text)
    # a Verilator memory model's switch (build.VERILATOR_DEFINES): the model branch is not the design, the
    # `else branch (the banks) is what Icarus builds and Yosys synthesizes, so it stays mutable
    models = "|".join(VERILATOR_DEFINES)
    text = re.sub(rf"`ifdef\s+({models})\b.*?`else\b", blank, text, flags=re.S)
    text = re.sub(r"`if(n?)def\b.*?`endif\b", blank, text, flags=re.S)
    text = re.sub(r"^[ \t]*`[^\n]*", blank, text, flags=re.M)
    text = _blank_parameters(text)
    text = re.sub(r"\binitial\b.*?\bend\b", blank, text, flags=re.S)
    text = re.sub(r"\$(display|fwrite|write|finish|fatal|error|readmemh|fopen|fclose|value\$plusargs)\b[^;]*;",
                  blank, text)
    return text


def _blank_parameters(text: str) -> str:
    """Blank each `parameter`/`localparam` declaration up to the `,` `;` or `)` that ends it (nested parentheses
    in its value included), keeping the parentheses around it balanced."""
    out = list(text)
    for m in re.finditer(r"\b(parameter|localparam)\b", text):
        depth, j = 0, m.start()
        while j < len(text):
            c = text[j]
            if c in ",;" and depth == 0 or c == ")" and depth == 0:
                break
            depth += (c == "(") - (c == ")")
            if c != "\n":
                out[j] = " "
            j += 1
    return "".join(out)


def _tokens(clean: str) -> list[_Tok]:
    out, paren, bracket = [], 0, 0
    for m in _TOKEN.finditer(clean):
        kind = m.lastgroup
        if kind == "ws":
            continue
        s = m.group(0)
        if s == ")":
            paren -= 1
        if s == "]":
            bracket -= 1
        out.append(_Tok(kind, s, m.start(), paren, bracket))
        if s == "(":
            paren += 1
        if s == "[":
            bracket += 1
    return out


def _operand_end(t: _Tok) -> bool:
    return t.kind in ("id", "num") or t.text in (")", "]", "}")


_SWAPS = {"relational": {"<": ["<="], "<=": ["<"], ">": [">="], ">=": [">"], "==": ["!="], "!=": ["=="]},
          "logical": {"&&": ["||"], "||": ["&&"], "&": ["|"], "|": ["&"]},
          "arithmetic": {"+": ["-"], "-": ["+"]}}


def _number_variants(s: str) -> list[str]:
    m = re.fullmatch(r"(\d+)'([sS]?)([dDhHbBoO])([0-9a-fA-F_]+)", s)
    if m is None:
        if not s.isdigit():
            return []
        v = int(s)
        return [str(v + 1)] + ([str(v - 1)] if v > 0 else [])
    width, signed, base, digits = int(m[1]), m[2], m[3].lower(), m[4].replace("_", "")
    radix = {"d": 10, "h": 16, "b": 2, "o": 8}[base]
    v = int(digits, radix)
    fmt = {"d": "d", "h": "x", "b": "b", "o": "o"}[base]
    return [f"{width}'{signed}{m[3]}{w:{fmt}}" for w in (v + 1, v - 1) if 0 <= w < (1 << width)]


def _matching(toks: list[_Tok], i: int) -> int:
    """Index of the ')' closing the '(' at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        depth += toks[j].text == "("
        depth -= toks[j].text == ")"
        if depth == 0:
            return j
    return -1


def mutation_points(file: str, text: str) -> list[Mutation]:
    """Every mutation the operators can make in one Verilog file."""
    clean = _blank_comments_and_sim_only(text)
    toks = _tokens(clean)
    line_of = _line_index(text)
    out: list[Mutation] = []

    def add(start: int, original: str, replacement: str, op: str) -> None:
        out.append(Mutation(file, line_of(start), start, original, replacement, op))

    skip = _declaration_ranges(toks)
    for i, t in enumerate(toks):
        prev = toks[i - 1] if i else None
        if i in skip:
            continue
        if t.kind == "op":
            for op, table in _SWAPS.items():
                if t.text not in table:
                    continue
                if op == "relational" and t.paren == 0:
                    continue  # outside parentheses `<=` is an assignment; other comparisons are rare there
                if t.text in ("&", "|", "+", "-") and (prev is None or not _operand_end(prev)):
                    continue  # unary (reduction, sign), not binary
                if t.bracket > 0 and op == "arithmetic":
                    continue  # index arithmetic is the slice operator's business
                for rep in table[t.text]:
                    add(t.start, t.text, rep, op)
        elif t.kind == "num":
            if t.bracket > 0 and prev is not None and prev.text in ("[", ":") and "'" not in t.text:
                for rep in _number_variants(t.text):
                    add(t.start, t.text, rep, "slice")
            elif "'" in t.text or prev is None or prev.text not in ("'",):
                for rep in _number_variants(t.text):
                    add(t.start, t.text, rep, "constant")
        elif t.kind == "id" and t.text == "if" and i + 1 < len(toks) and toks[i + 1].text == "(":
            j = _matching(toks, i + 1)
            if j > 0:
                a, b = toks[i + 1].start, toks[j].start + 1
                add(a, text[a:b], f"(!{text[a:b]})", "condition")
        elif t.kind == "id" and t.text == "assign" and i + 2 < len(toks):
            eq = next((k for k in range(i + 1, min(i + 40, len(toks))) if toks[k].text == "="), None)
            end = next((k for k in range(i + 1, len(toks)) if toks[k].text == ";"), None)
            if eq is not None and end is not None and end > eq + 1:
                a, b = toks[eq + 1].start, toks[end].start
                rhs = [tk for tk in toks[eq + 1:end] if tk.kind != "ws"]
                if not (len(rhs) == 1 and rhs[0].kind == "num"):  # a constant is already stuck: no new design
                    add(a, text[a:b], "0", "stuck")
                    add(a, text[a:b], "-1", "stuck")
        elif t.kind == "id" and t.text == "$signed" and i + 1 < len(toks) and toks[i + 1].text == "(":
            add(t.start, "$signed", "", "signed")
    return out


_DECLARATIONS = {"input", "output", "inout", "wire", "reg", "signed", "integer", "genvar"}


def _declaration_ranges(toks: list[_Tok]) -> set[int]:
    """Token indices inside the [msb:lsb] range of a declaration: changing a width is a different design, not a
    bug a test could be expected to catch, and mostly does not build."""
    skip: set[int] = set()
    for i, t in enumerate(toks):
        if t.text == "[" and i and toks[i - 1].text in _DECLARATIONS:
            depth, j = 0, i
            while j < len(toks):
                depth += toks[j].text == "["
                depth -= toks[j].text == "]"
                skip.add(j)
                if depth == 0:
                    break
                j += 1
    return skip


def _line_index(text: str) -> Callable[[int], int]:
    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line(offset: int) -> int:
        lo, hi = 0, len(starts)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if starts[mid] <= offset else (lo, mid)
        return lo + 1

    return line


def core_files() -> list[str]:
    """The synthesizable core's files: what is mutated (the bench and the DRAM model are not the design)."""
    from .build import SYNTH_MODULES

    return [f"{m}.v" for m in SYNTH_MODULES]


def all_mutations(rtl: Path, files: list[str] | None = None) -> list[Mutation]:
    """Every mutation point of the core, or of only `files` (names as in core_files(): a campaign on the modules
    that changed). ValueError for a name that is not a core file."""
    core = core_files()
    unknown = [f for f in files or [] if f not in core]
    if unknown:
        raise ValueError(f"--file {unknown[0]}: not a file of the synthesizable core ({', '.join(core)})")
    return [m for f in core if not files or f in files for m in mutation_points(f, (rtl / f).read_text())]


def select(mutations: list[Mutation], specs: list[str]) -> list[Mutation]:
    """The mutations named by `specs`, each a description as `describe()` prints it, with or without its ` @offset`
    (needed only when one line holds two identical points). ValueError for a spec that names none or several."""
    out = []
    for spec in specs:
        found = [m for m in mutations if spec in (m.describe(), m.describe().rsplit(" @", 1)[0])]
        if len(found) != 1:
            some = "; ".join(m.describe() for m in found) or "no mutation point"
            raise ValueError(f"--only '{spec}' names {len(found)} mutations ({some})")
        out.append(found[0])
    return out


def draw(mutations: list[Mutation], seed: int) -> Iterator[Mutation]:
    """Mutations in a seeded random order, round-robin over operators so every operator is represented."""
    import numpy as np

    rng = np.random.default_rng(seed)
    by_op: dict[str, list[Mutation]] = {}
    for m in mutations:
        by_op.setdefault(m.operator, []).append(m)
    queues = {op: [ms[k] for k in rng.permutation(len(ms))] for op, ms in sorted(by_op.items())}
    while any(queues.values()):
        for op in list(queues):
            if queues[op]:
                yield queues[op].pop()


# --- the suites --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check of a suite: a name and a callable that returns None (passed) or what differed."""

    name: str
    run: Callable[[str], str | None]


def _random_programs(preset: str, seeds: range, instructions: int) -> Check:
    def run(sim: str) -> str | None:
        from .fuzz import fuzz_batch
        from .randconfig import resolve

        for seed, _, check in fuzz_batch(resolve(preset), seeds, instructions, sim):
            if not check.ok:
                return f"random program seed {seed}: {check.explain()}"
        return None

    return Check(f"random:{preset}:{len(seeds)}", run)


@functools.cache
def _networks(preset: str) -> tuple:
    """The directed networks of the suites, lowered once per campaign: two convolutions with padding and stride
    2; a residual block with a downsample branch, average pool and int32 head; max pool, add, upsample, concat."""
    import numpy as np

    from bitbranch.compiler.lower import lower_graph
    from bitbranch.compiler.randgraph import GraphMaker, pool_add_upsample_concat, residual_block
    from bitbranch.isa.hwconfig import get_config

    g = GraphMaker(21, (10, 10, 3))
    a = g.conv("a", "input", 16, 3, 2, 2, pad=1)
    b = g.conv("b", a, 8, 3, 2, 2, stride=2, pad=1)
    hw = get_config(preset)
    arts = tuple(lower_graph(graph, hw, inputs)
                 for graph, inputs in (g.graph([b]), residual_block(), pool_add_upsample_concat()))
    for art in arts:  # a check on constant outputs would prove nothing
        assert all(len(np.unique(v)) > 1 for v in art.golden.values()), "a check network's outputs are constant"
    return arts


def _network(preset: str) -> Check:
    def run(sim: str) -> str | None:
        from .compare import cross_check_batch

        for k, check in enumerate(cross_check_batch(list(_networks(preset)), sim=sim)):
            if not check.ok:
                return f"network {k} on {preset}: {check.explain()}"
        return None

    return Check(f"networks:{preset}", run)


def _directed(preset: str) -> Check:
    def run(sim: str) -> str | None:
        from .directed import error_problems, rule_problems
        from .randconfig import resolve

        hw = resolve(preset)
        problems = rule_problems(hw, sim) | error_problems(hw, sim)
        return "; ".join(f"{k}: {v}" for k, v in problems.items()) or None

    return Check(f"directed:{preset}", run)


def _rules(preset: str, names: tuple[str, ...]) -> Check:
    """Some directed timing rules on a config whose shape the rest of the suite runs only random programs on."""
    def run(sim: str) -> str | None:
        from .directed import rule_problems
        from .randconfig import resolve

        problems = rule_problems(resolve(preset), sim, only=names)
        return "; ".join(f"{k}: {v}" for k, v in problems.items()) or None

    return Check(f"rules:{preset}", run)


def _imem_end(preset: str) -> Check:
    def run(sim: str) -> str | None:
        from .directed import imem_end_problem
        from .randconfig import resolve

        problem = imem_end_problem(resolve(preset), sim)
        return f"last instruction-memory word: {problem}" if problem is not None else None

    return Check(f"imem end:{preset}", run)


def suite(name: str, checks: list[str] | None = None) -> list[Check]:
    """The checks in the order they run: the directed programs first (every rule and error status, cheap),
    then random programs and networks. With `checks`, only the checks of those names (ValueError for a name the
    suite does not have)."""
    if checks:
        every = suite(name)
        unknown = sorted(set(checks) - {c.name for c in every})
        if unknown:
            raise ValueError(f"the {name} suite has no check {', '.join(unknown)} (it has: "
                             f"{', '.join(c.name for c in every)})")
        return [c for c in every if c.name in checks]
    if name == "quick":
        # random:0 is small's shape with 64-byte DRAM beats: partial beats, which small (beat = entry) never has;
        # random:9 has R = 3 rows, so bank counts (ACC 4R = 12) and row arithmetic that are not powers of two;
        # its OUT write groups rule writes a pass in three groups (bb_compute's multi-cycle gap, needs R >= 3),
        # its token depth 8 takes a fourth count bit, and its field extremes run on R = 3 rows; its OUT scatter
        # sweep reaches banks 16-23 of OUT's 24 from every row
        return [_directed("small"), _random_programs("small", range(0, 16), 30), _network("small"),
                _random_programs("small", range(16, 64), 40), _directed("random:0"),
                _random_programs("random:0", range(0, 16), 30), _random_programs("random:9", range(0, 16), 30),
                _rules("random:9", ("OUT write groups", "compute gets its two tokens in two cycles",
                                    "pop from a full token queue frees a push",
                                    "pushes block on full queues in both directions", "field extremes",
                                    "whole buffers", "stride field maxima",
                                    "pool sums over whole windows", "compute loops at their bounds",
                                    "compute fields the checks leave free",
                                    "store rows and lengths at their bounds",
                                    "OUT scatter: every start bank, plane and row"))]
    # imem end: a program filling the 65,536-word instruction memory, ~26 s on Icarus (quick takes ~2 min)
    return [*suite("quick"), _imem_end("small"), _random_programs("small", range(1000, 1300), 60), _directed("edge"),
            _network("edge"),
            _random_programs("random:1", range(0, 20), 40), _random_programs("random:2", range(0, 20), 40),
            _random_programs("edge", range(2000, 2030), 40)]


# --- running mutants ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    mutation: Mutation
    status: str  # killed | survived | equivalent | unbuildable
    check: str | None = None
    detail: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self.mutation), "description": self.mutation.describe(), "status": self.status,
                "check": self.check, "detail": self.detail, "seconds": round(self.seconds, 2)}


def _mutant_dir(rtl: Path, work: Path, m: Mutation) -> Path:
    d = work / "rtl"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for p in list(rtl.glob("*.v")) + list(rtl.glob("*.vh")):
        shutil.copy(p, d / p.name)
    (d / m.file).write_text(m.apply((rtl / m.file).read_text()))
    return d


def run_mutant(m: Mutation, checks: list[Check], sim: str, rtl: Path, work: Path) -> Outcome:
    """Build the mutant and run the checks in order in this process (`campaign` runs it in a child process)."""
    from .build import SimulatorError, alternate_sources

    t0 = time.perf_counter()
    src = _mutant_dir(rtl, work, m)
    with alternate_sources(src, work / "sim_build"):
        for i, check in enumerate(checks):
            try:
                detail = check.run(sim)
            except SimulatorError as exc:
                if i == 0 and ("build of" in str(exc)):
                    return Outcome(m, "unbuildable", detail=str(exc).splitlines()[0])
                detail = f"simulation failed: {str(exc).splitlines()[0]}"
            except Exception as exc:  # noqa: BLE001 - a mutant may break the bench in any way; that kills it
                detail = f"{type(exc).__name__}: {exc}"
            if detail is not None:
                return Outcome(m, "killed", check.name, detail, time.perf_counter() - t0)
    return Outcome(m, "survived", seconds=time.perf_counter() - t0)


def run_mutant_isolated(m: Mutation, suite_name: str, sim: str, work: Path, timeout: float,
                        checks: list[str] | None = None) -> Outcome:
    """run_mutant in a child process with a wall-clock limit: a mutant can hang the HDL simulator inside one time
    step (a loop that never ends), which no cycle limit sees. Running past the limit is detected — it kills the
    mutant ("watchdog") — and the child's whole process group is stopped."""
    import os
    import signal

    t0 = time.perf_counter()
    job = json.dumps({"mutation": asdict(m), "suite": suite_name, "checks": checks, "sim": sim, "work": str(work)})
    proc = subprocess.Popen([sys.executable, "-m", "bitbranch.rtlharness.mutate", "--worker", job],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Outcome(m, "killed", "watchdog", f"no result after {timeout:.0f} s (the simulation hung)",
                       time.perf_counter() - t0)
    if proc.returncode != 0 or not out.strip():
        return Outcome(m, "killed", "bench", f"the bench process failed: {err.strip().splitlines()[-1:]}",
                       time.perf_counter() - t0)
    d = json.loads(out.strip().splitlines()[-1])
    return Outcome(m, d["status"], d["check"], d["detail"], d["seconds"])


def _worker(job: str) -> int:
    from bitbranch.rtl import rtl_dir

    d = json.loads(job)
    o = run_mutant(Mutation(**d["mutation"]), suite(d["suite"], d.get("checks")), d["sim"], rtl_dir(),
                   Path(d["work"]))
    print(json.dumps({"status": o.status, "check": o.check, "detail": o.detail, "seconds": o.seconds}))
    return 0


def _read_core(folder: str, chparam: str) -> str:
    """Yosys commands that read the core's files from `folder` and elaborate bb_core with the preset's parameters
    (-defer: only with those; elaborating the defaults first takes minutes)."""
    sources = " ".join(f"{folder}/{f}" for f in core_files())
    return f"read_verilog -defer -I{folder} {sources}; hierarchy -top bb_core {chparam}; "


def _derived_modules(yosys: list[str], root: Path, chparam: str, names: set[str], timeout: float) -> list[str]:
    """The modules of the core as elaborated for the preset (parameters resolved, e.g. `$paramod$...\\bb_sram_2p`)
    whose source module is one of `names`."""
    script = _read_core("gold", chparam) + "tee -q -o mods.txt ls"
    subprocess.run([*yosys, "-q", "-p", script], cwd=root, capture_output=True, text=True, timeout=timeout)
    mods = []
    for line in (root / "mods.txt").read_text().splitlines() if (root / "mods.txt").exists() else []:
        name = line.strip()
        base = name.rsplit("\\", 1)[-1]
        if name and base in names and (name == base or name.startswith("$paramod")):
            mods.append(name)
    return mods


def prove_equivalent(m: Mutation, rtl: Path, work: Path, hw_name: str, timeout: float = 300.0) -> bool:
    """True when Yosys proves every elaborated instance of the mutated module (with the parameters the preset
    gives it, its own submodules flattened in) equivalent to the original (equiv_make + equiv_induct).

    A module equal to its original makes the whole core equal, and proving one module is small enough to finish
    (the flattened core is not: equiv_induct did not finish on it in 10 minutes even with Debian's Yosys).
    Both copies sit under one folder and are named relative to it: the WebAssembly Yosys sees only its
    working directory."""
    from bitbranch.isa.hwconfig import get_config

    from .params import hw_parameters
    from .synth import SynthError, find_yosys

    try:
        yosys = find_yosys()
    except SynthError:
        return False
    root = work / "equiv"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(rtl, root / "gold", ignore=shutil.ignore_patterns("sim_build", "__pycache__", "bench"))
    shutil.copytree(_mutant_dir(rtl, work, m), root / "gate")
    chparam = " ".join(f"-chparam {k} {v}" for k, v in hw_parameters(get_config(hw_name)).items())
    defined = set(re.findall(r"^\s*module\s+(\w+)", (rtl / m.file).read_text(), re.M))
    deadline = time.perf_counter() + timeout
    try:
        modules = _derived_modules(yosys, root, chparam, defined, timeout)
    except subprocess.TimeoutExpired:
        return False
    if not modules:
        return False

    def load(name: str, module: str) -> str:
        return (_read_core(name, chparam) + f"hierarchy -top {module}; proc; flatten; opt_clean; "
                f"rename {module} {name}; design -stash {name}; design -reset; ")

    for module in modules:
        script = (load("gold", module) + load("gate", module) + "design -copy-from gold -as gold gold; "
                  "design -copy-from gate -as gate gate; equiv_make gold gate equiv; hierarchy -top equiv; "
                  "async2sync; equiv_simple -seq 4; equiv_induct -seq 4; equiv_status -assert")
        left = deadline - time.perf_counter()
        if left <= 0:
            return False
        try:
            out = subprocess.run([*yosys, "-q", "-p", script], cwd=root, capture_output=True, text=True,
                                 timeout=left)
        except subprocess.TimeoutExpired:
            return False
        if out.returncode != 0:
            return False
    return True


BASELINE_LIMIT_S = 1800.0  # the unmutated design's suite run may take this long
WATCHDOG_FACTOR = 3.0  # a mutant is hung when it runs this many times the unmutated suite's time


class BaselineFailed(RuntimeError):
    """The suite does not pass on the RTL as it is."""


def campaign(n: int, seed: int, suite_name: str, sim: str, hw_name: str, progress=None,
             timeout: float = 240.0, jobs: int = 1, prove_seconds: float = 60.0,
             log: Path | None = None, only: list[str] | None = None,
             checks: list[str] | None = None, files: list[str] | None = None) -> tuple[list[Outcome], dict]:
    """The first n buildable mutants of the seeded draw from `files` (default every core file) or the mutants
    `only` names (see `select`), each run through the suite (or only its `checks`). `jobs` mutants run at once
    (each in its own process and folder); the result is the same set, in draw order, whatever `jobs` is.
    With `log`, every outcome is appended to that JSON-lines file as it arrives, and outcomes already there for
    the same RTL sources, suite and simulator are reused, so a stopped campaign resumes where it was.
    Returns the outcomes and {baseline_seconds, watchdog_seconds, reused}."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from bitbranch.rtl import rtl_dir

    rtl = rtl_dir()
    done: dict[int, Outcome] = {}
    lock = threading.Lock()
    key = _campaign_key(rtl, suite_name, sim, hw_name, checks)
    logged = _read_log(log, key)
    points = all_mutations(rtl, files)
    chosen = select(points, only) if only else None
    quick = _quick_reuse(rtl, suite_name, sim, hw_name, log, checks, n,
                         chosen if chosen is not None else draw(points, seed))
    with tempfile.TemporaryDirectory(prefix="bitbranch-mutate-") as tmp:
        # The unmutated design must pass the suite, or every mutant would count as killed.
        base = run_mutant_isolated(Mutation(core_files()[0], 0, 0, "", "", "none"), suite_name, sim,
                                   Path(tmp) / "baseline", max(timeout, BASELINE_LIMIT_S), checks)
        if base.status != "survived":
            raise BaselineFailed(f"the {suite_name} suite fails on the unmutated RTL ({base.check}: {base.detail}); "
                                 "a mutation score would mean nothing")
        # A mutant only counts as hung when it runs well past what the whole suite takes on the real design
        # (a survivor runs every check): otherwise a slow machine would turn survivors into watchdog kills.
        timeout = max(timeout, WATCHDOG_FACTOR * base.seconds)
        if progress is not None:
            progress([], base.seconds, timeout)
        todo = enumerate(chosen if chosen is not None else draw(points, seed))

        def counted() -> int:
            return sum(o.status != "unbuildable" for o in done.values())

        def worker(slot: int) -> None:
            work = Path(tmp) / f"job{slot}"
            while True:
                with lock:
                    if counted() >= n:
                        return
                    item = next(todo, None)
                if item is None:
                    return
                k, m = item
                o = logged.get(m.describe())
                if o is None and quick:
                    if m.describe() not in quick:  # beyond the n counted mutants (jobs > 1 run ahead)
                        return
                    o = _after_quick(quick[m.describe()], suite_name, sim, work, timeout)
                    _append_log(log, key, o)
                elif o is None:
                    o = run_mutant_isolated(m, suite_name, sim, work, timeout, checks)
                    if o.status == "survived" and prove_seconds > 0 and prove_equivalent(m, rtl, work, hw_name,
                                                                                         prove_seconds):
                        o.status, o.detail = "equivalent", "yosys equiv_induct proves the mutant equal to the design"
                    _append_log(log, key, o)
                with lock:
                    done[k] = o
                    if progress is not None:
                        progress(list(done.values()))

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(worker, range(jobs)))
    out, n_counted = [], 0
    for o in (done[k] for k in sorted(done)):  # in draw order; jobs > 1 may have run a few more
        if n_counted >= n:
            break
        out.append(o)
        n_counted += o.status != "unbuildable"
    reused = sum(o.mutation.describe() in logged for o in out)
    return out, {"baseline_seconds": round(base.seconds, 1), "watchdog_seconds": round(timeout, 1), "reused": reused,
                 "reused_quick_kills": sum(o.status == "killed" and o.mutation.describe() in quick
                                           and quick[o.mutation.describe()].status == "killed" for o in out)}


def _quick_reuse(rtl: Path, suite_name: str, sim: str, hw_name: str, log: Path | None, checks: list[str] | None,
                 n: int, mutants) -> dict[str, Outcome]:
    """A full campaign whose log holds the quick campaign of the same RTL, simulator and mutants (the first n
    counted of the draw, or every `--only` one) reuses its kills: the full suite runs the quick suite's checks
    first, in the same order, and checks only gain programs, so a quick kill is the full suite's kill. A quick
    survivor runs the whole full suite (the quick checks may have grown since). Returns the quick outcomes by
    description, or {} (no reuse)."""
    if suite_name != "full" or checks or log is None:
        return {}
    quick = _read_log(log, _campaign_key(rtl, "quick", sim, hw_name))
    counted = 0
    for m in mutants:
        o = quick.get(m.describe())
        if o is None:
            return {}
        counted += o.status != "unbuildable"
        if counted >= n:
            break
    return quick


def _after_quick(q: Outcome, suite_name: str, sim: str, work: Path, timeout: float) -> Outcome:
    """The full suite's outcome of a mutant from its quick outcome `q` (_quick_reuse)."""
    if q.status in ("killed", "unbuildable"):
        return Outcome(q.mutation, q.status, q.check, f"by the quick suite (reused): {q.detail}", q.seconds)
    o = run_mutant_isolated(q.mutation, suite_name, sim, work, timeout)
    if o.status == "survived" and q.status == "equivalent":  # proved in the quick campaign; no check killed it
        o.status, o.detail = q.status, q.detail
    return o


def _campaign_key(rtl: Path, suite_name: str, sim: str, hw_name: str, only_checks: list[str] | None = None) -> str:
    """What an outcome depends on: the core's sources, the suite, the simulator and the preset of the proof."""
    import hashlib

    checks = ",".join(c.name for c in suite(suite_name, only_checks))
    h = hashlib.sha256(f"{suite_name}[{checks}]|{sim}|{hw_name}".encode())
    for f in sorted(p.name for p in list(rtl.glob("*.v")) + list(rtl.glob("*.vh"))):
        h.update(f.encode() + b"\0" + (rtl / f).read_bytes())
    return h.hexdigest()[:16]


def _read_log(log: Path | None, key: str) -> dict[str, Outcome]:
    if log is None or not log.exists():
        return {}
    out = {}
    for n, line in enumerate(log.read_text().splitlines(), 1):
        try:
            d = json.loads(line)
            if d["key"] == key:
                m = Mutation(**{f: d[f] for f in ("file", "line", "start", "original", "replacement", "operator")})
                out[m.describe()] = Outcome(m, d["status"], d["check"], d["detail"], d["seconds"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{log}:{n}: not a mutation log line ({exc})") from None
    return out


def _append_log(log: Path | None, key: str, o: Outcome) -> None:
    if log is not None:
        with open(log, "a") as fh:
            fh.write(json.dumps({"key": key, **o.to_dict()}) + "\n")


ARGUED_FILE = Path(__file__).with_name("mutants_equivalent.toml")


def argued_equivalent(path: Path = ARGUED_FILE) -> dict[str, str]:
    """Survivors read by hand and argued equivalent: {mutant description: the argument}. The description carries
    the character offset, so an entry stops matching when its file changes and the mutant counts as a survivor
    again until someone re-reads it."""
    import tomllib

    if not path.is_file():
        return {}
    try:
        entries = tomllib.loads(path.read_text()).get("equivalent", [])
        return {e["mutant"]: e["reason"] for e in entries}
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a list of [[equivalent]] mutant/reason entries ({exc})") from None


def summary(outcomes: list[Outcome], seconds: float, argued: dict[str, str] | None = None) -> dict:
    """The campaign's figures. score is the tool's (killed / (killed + survived)); score_argued also leaves out
    the survivors `argued` (argued_equivalent) explains, as the issue's target counts them."""
    counted = [o for o in outcomes if o.status != "unbuildable"]
    c = Counter(o.status for o in counted)
    killed, survived = c["killed"], c["survived"]
    kill_times = [o.seconds for o in counted if o.status == "killed"]
    argued = argued or {}
    n_argued = sum(o.status == "survived" and o.mutation.describe() in argued for o in counted)
    return {
        "mutants": len(counted), "killed": killed, "survived": survived, "equivalent": c["equivalent"],
        "unbuildable_replaced": sum(o.status == "unbuildable" for o in outcomes),
        "score": killed / (killed + survived) if killed + survived else None,
        "argued_equivalent": n_argued,
        "score_argued": killed / (killed + survived - n_argued) if killed + survived - n_argued else None,
        "median_kill_seconds": statistics.median(kill_times) if kill_times else None,
        "killed_by": dict(Counter(o.check for o in counted if o.status == "killed")),
        "by_operator": {op: dict(Counter(o.status for o in counted if o.mutation.operator == op))
                        for op in OPERATORS if any(o.mutation.operator == op for o in counted)},
        "survivors": [{**o.to_dict(), "argued": argued.get(o.mutation.describe())}
                      for o in counted if o.status == "survived"],
        "equivalents": [o.to_dict() for o in counted if o.status == "equivalent"],
        "seconds": round(seconds, 1),
    }


# --- command line ------------------------------------------------------------------------------------------


def add_arguments_mutate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mutants", type=int, default=20, metavar="N", help="mutants to classify (default 20)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the draw (default 0)")
    parser.add_argument("--suite", choices=SUITES, default="quick", help="checks run on each mutant (default quick)")
    parser.add_argument("--sim", choices=("icarus", "verilator"), default="icarus",
                        help="HDL simulator (default icarus: a mutant builds in seconds)")
    parser.add_argument("--hw", default="small", metavar="PRESET",
                        help="preset for the equivalence proof of survivors (default small)")
    parser.add_argument("--timeout", type=float, default=240.0, metavar="S",
                        help="least wall-clock limit per mutant (default 240); the limit is at least 3x the time the "
                             "unmutated RTL takes for the whole suite, and a mutant past it is killed by the watchdog")
    parser.add_argument("--jobs", type=int, default=1, metavar="J",
                        help="mutants run at once, each in its own process (default 1; same result for any J)")
    parser.add_argument("--prove-timeout", type=float, default=60.0, metavar="S",
                        help="seconds Yosys may try to prove a survivor equivalent (default 60; 0: do not try)")
    parser.add_argument("--log", type=Path, metavar="FILE",
                        help="append each outcome to this JSON-lines file and reuse the ones already there for the "
                             "same RTL, suite and simulator (resume a stopped campaign)")
    parser.add_argument("--only", action="append", metavar="MUTANT",
                        help="run this mutant instead of a draw (its description as the log or --json prints it, "
                             "e.g. \"bb_fetch.v:46: constant: '1' -> '2' @2233\"; the ' @offset' may be left out "
                             "when the line has one such point); repeatable; --mutants is then the number given")
    parser.add_argument("--check", action="append", metavar="NAME",
                        help="run only this check of the suite (a name as `killed by` prints it, e.g. "
                             "'imem end:small'); repeatable: re-run a survivor against the check meant to kill it")
    parser.add_argument("--file", action="append", dest="files", metavar="FILE.v",
                        help="draw only from this file of the core (e.g. bb_outscatter.v: a campaign on a module "
                             "that changed); repeatable")
    parser.add_argument("--list", action="store_true", help="only count the mutation points per operator and file")
    parser.add_argument("--json", action="store_true", help="print one JSON summary on stdout")


def cmd_mutate(args: argparse.Namespace) -> int:
    from bitbranch.rtl import rtl_dir

    from .build import SimulatorError

    if args.mutants < 1:
        return fail(f"--mutants={args.mutants} must be >= 1")
    if args.jobs < 1:
        return fail(f"--jobs={args.jobs} must be >= 1")
    if not args.prove_timeout >= 0:
        return fail(f"--prove-timeout={args.prove_timeout} must be >= 0 seconds")
    if not args.timeout > 0:
        return fail(f"--timeout={args.timeout} must be > 0 seconds")
    if args.list:
        try:
            points = all_mutations(rtl_dir(), args.files)
        except ValueError as exc:
            return fail(str(exc))
        table = Counter((m.file, m.operator) for m in points)
        for (f, op), n in sorted(table.items()):
            print(f"{f:20s} {op:12s} {n:5d}")
        print(f"{len(points)} mutation points in {len(args.files or core_files())} files")
        return 0
    t0 = time.perf_counter()

    def progress(outcomes: list[Outcome], baseline: float | None = None, watchdog: float | None = None) -> None:
        if not outcomes:
            only = f" (only {', '.join(args.check)})" if args.check else ""
            print(f"unmutated RTL passes the {args.suite} suite{only} in {baseline:.1f} s; watchdog {watchdog:.0f} s",
                  file=sys.stderr)
            return
        o = outcomes[-1]
        done = sum(x.status != "unbuildable" for x in outcomes)
        print(f"[{done}/{args.mutants}] {o.status:11s} {o.seconds:5.1f} s  {o.mutation.describe()}"
              + (f"  <- {o.check}" if o.check else ""), file=sys.stderr)

    try:
        if args.only:
            args.mutants = len(args.only)
        outcomes, calibration = campaign(args.mutants, args.seed, args.suite, args.sim, args.hw, progress,
                                         args.timeout, args.jobs, args.prove_timeout, args.log, args.only,
                                         args.check, args.files)
    except (SimulatorError, BaselineFailed, ValueError) as exc:
        return fail(str(exc))
    try:
        argued = argued_equivalent()
    except ValueError as exc:
        return fail(str(exc))
    s = summary(outcomes, time.perf_counter() - t0, argued) | calibration
    if args.json:
        print(json.dumps(s))
        return 0

    def pct(x: float | None) -> str:
        return f"{x:.1%}" if x is not None else "n/a"

    print(f"mutate: {s['mutants']} mutants ({args.suite} suite, {args.sim}): {s['killed']} killed, {s['survived']} "
          f"survived, {s['equivalent']} proved equivalent; score {pct(s['score'])}; {s['argued_equivalent']} survivors "
          f"argued equivalent ({ARGUED_FILE.name}), score without them {pct(s['score_argued'])}; "
          f"{s['unbuildable_replaced']} unbuildable replaced; {s['seconds']} s")
    for check, n in sorted(s["killed_by"].items(), key=lambda kv: -kv[1]):
        print(f"  killed by {check}: {n}")
    for o in s["survivors"]:
        print(f"  SURVIVED {o['description']}" + ("  (argued equivalent)" if o["argued"] else ""))
    return 0


if __name__ == "__main__":  # the child process of run_mutant_isolated
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker(sys.argv[2]))
    sys.exit(fail("usage: python -m bitbranch.rtlharness.mutate --worker JOB (use `bitbranch mutate`)"))
