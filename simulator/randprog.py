"""Random valid programs for cross-checking the simulator (and later the RTL) against references.

`random_program(hw, rng, n)` emits every instruction class with legal fields, in-bounds SRAM and DRAM
extents (isa.validate rules), and dependency tokens such that the program is

* deadlock-free: a pop is only emitted when an earlier (program-order) push on that token queue is
  still unconsumed, and a push only while fewer than token_depth tokens are outstanding, so every
  wait of every instruction points at an earlier instruction;
* race-free: any two accesses from different units to overlapping ranges (one a write; hulls from
  isa.validate.access_ranges, DRAM included) are ordered by tokens *in program order*. The generator
  tracks a vector clock per unit and per token in flight and inserts `sync` fences (or sets pop flags on
  the instruction itself) where an ordering is missing; load <-> store goes through compute.

Race freedom is what makes the result timing-independent, so a sequential interpreter that executes
the program in order (tests/sim_reference.py) must reproduce the simulator bit for bit. Addresses are
drawn from small windows of each buffer, and reads prefer ranges that recent instructions wrote, so
computes consume what loads produced and stores write back what computes produced.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import BUFFERS, HwConfig
from bitbranch.isa.spec import NEIGHBOURS, Buffer, Dest, PoolMode, Unit, WeightMode
from bitbranch.isa.validate import access_ranges

LOAD, COMPUTE, STORE = int(Unit.LOAD), int(Unit.COMPUTE), int(Unit.STORE)
FLAG_OF = {(LOAD, COMPUTE): ("push_next", "pop_prev"), (COMPUTE, LOAD): ("push_prev", "pop_next"),
           (COMPUTE, STORE): ("push_next", "pop_prev"), (STORE, COMPUTE): ("push_prev", "pop_next")}
CONST_RECORDS = 16  # well-scaled CONST records at the start of the DRAM image


@dataclass(frozen=True)
class RandomProgramConfig:
    """Knobs. Sizes are small by default so an element-by-element reference stays fast."""

    dram_bytes: int = 8192
    weights: dict[str, float] = field(default_factory=lambda: {
        "load": 3.0, "store": 1.5, "bgemm": 2.0, "requant": 1.5, "pool": 1.0, "sync": 0.6})
    window: dict[str, int] = field(default_factory=lambda: {
        "inp": 96, "wgt": 96, "acc": 40, "out": 48, "const": 8})
    max_dim: int = 3  # oh, ow, kh, kw of bgemm and pool
    max_planes: int = 3  # activation / weight / output planes, except with probability p_wide (then 8)
    p_wide: float = 0.08
    p_edge: float = 0.06  # address window at the top end of a buffer (bounds corner cases)
    p_recent: float = 0.6  # a read starts inside a range that a recent write covered
    p_flag: float = 0.2  # probability of each optional token flag
    p_unaligned: float = 0.2  # DRAM addresses / strides not a multiple of the entry size
    prologue: bool = True  # start by loading the INP, WGT and CONST windows so computes see data
    max_bgemm_work: int = 4000  # ctiles*oh*ow*kh*kw*cw*kbits*mbits*C upper bound (reference cost)
    # bank-conflict cases of docs/timing.md section 4.1: one-step BGEMMs over 3-4 column tiles (the ACC
    # stall when accumulating) and output strides beyond 8 (OUT write groups); 0 draws nothing (the
    # programs of earlier versions of this generator)
    p_onestep: float = 0.12
    p_wide_stride: float = 0.12


@dataclass
class _Access:
    index: int
    unit: int
    space: str
    write: bool
    first: int
    last: int


class _Generator:
    """Builds one program instruction by instruction, keeping the invariants of the module docstring."""

    def __init__(self, hw: HwConfig, rng: np.random.Generator, cfg: RandomProgramConfig) -> None:
        self.hw, self.rng, self.cfg = hw, rng, cfg
        self.program: list[Instruction] = []
        self.clock = [[-1, -1, -1] for _ in range(3)]  # clock[u][v]: last v instruction that happens-before u
        self.fifo: dict[tuple[int, int], deque[list[int]]] = {ch: deque() for ch in FLAG_OF}
        self.history: list[_Access] = []
        self.recent: dict[str, deque[tuple[int, int]]] = {b: deque(maxlen=8) for b in BUFFERS}
        self.dram = self._dram_image()
        ops = list(cfg.weights)
        p = np.array([cfg.weights[o] for o in ops], dtype=float)
        self.ops, self.op_p = ops, p / p.sum()

    # --- DRAM image -----------------------------------------------------------------------------
    def _dram_image(self) -> bytes:
        c, rng = self.hw.array_cols, self.rng
        image = bytearray(rng.integers(0, 256, self.cfg.dram_bytes, dtype=np.uint8).tobytes())
        records = []
        for _ in range(CONST_RECORDS):
            mul = np.where(rng.random(c) < 0.8, rng.integers(1, 9, c), rng.integers(-8, 1, c)).astype("<i4")
            rmul = rng.integers(-4, 5, c).astype("<i4")
            bias = rng.integers(-32, 97, c).astype("<i8")
            records.append(mul.tobytes() + rmul.tobytes() + bias.tobytes())
        blob = b"".join(records)
        image[: len(blob)] = blob
        return bytes(image)

    # --- random helpers -------------------------------------------------------------------------
    def _int(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi + 1))

    def _chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def _planes(self) -> int:
        return 8 if self._chance(self.cfg.p_wide) else self._int(1, self.cfg.max_planes)

    def _window(self, buf: str) -> tuple[int, int]:
        size = self.hw.entries(buf)
        w = min(size, self.cfg.window[buf])
        return (size - w, size) if self._chance(self.cfg.p_edge) else (0, w)

    def _base(self, buf: str, extent: int, read: bool) -> int | None:
        """A first entry so that [first, first + extent) fits the window; None if it cannot."""
        lo, hi = self._window(buf)
        if extent > hi - lo:
            return None
        if read and self.recent[buf] and self._chance(self.cfg.p_recent):
            first, last = self.recent[buf][self._int(0, len(self.recent[buf]) - 1)]
            start = self._int(first, last)
            if lo <= start <= hi - extent:
                return start
        return self._int(lo, hi - extent)

    def _dram_span(self, row_bytes: int, rows: int, dstride: int, align: int) -> int | None:
        """A DRAM byte address for `rows` rows of `row_bytes`, `dstride` apart, inside the image."""
        extent = (rows - 1) * dstride + row_bytes
        if extent > len(self.dram):
            return None
        base = self._int(0, len(self.dram) - extent)
        return base if self._chance(self.cfg.p_unaligned) else base - base % align

    # --- instruction fields (without token flags); None = draw again ------------------------------
    def _load(self) -> dict[str, int] | None:
        name = str(self.rng.choice(["inp", "wgt", "const"], p=[0.55, 0.3, 0.15]))
        e = self.hw.entry_bytes(name)
        rows = self._int(1, 4)
        ln = self._int(1, 6 if name == "inp" else 3)
        pads = [self._int(0, 2) if self._chance(0.3) else 0 for _ in range(4)]
        width = pads[2] + ln + pads[3]
        sstride = 0 if self._chance(0.5) else width + self._int(0, 2)
        extent = (pads[0] + rows + pads[1] - 1) * (sstride or width) + width
        sram = self._base(name, extent, read=False)
        if name == "const" and self._chance(0.8):  # well-scaled records: requant outputs spread out
            rows, pads, sstride, width = 1, [0, 0, 0, 0], 0, ln
            sram = self._base(name, ln, read=False)
            dram, dstride = self._int(0, CONST_RECORDS - ln) * e, 0
        else:
            dstride = self._dstride(ln * e, e, allow_overlap=True)
            dram = self._dram_span(ln * e, rows, dstride, e)
        if sram is None or dram is None:
            return None
        return dict(buf=Buffer[name.upper()], sram=sram, dram=dram, rows=rows, len=ln, dstride=dstride,
                    sstride=sstride, pad_top=pads[0], pad_bottom=pads[1], pad_left=pads[2], pad_right=pads[3])

    def _dstride(self, row_bytes: int, e: int, allow_overlap: bool) -> int:
        if allow_overlap and self._chance(0.1):
            return self._int(0, row_bytes)  # rows re-read (overlapping or repeated) DRAM bytes
        extra = self._int(0, 2 * e) if self._chance(self.cfg.p_unaligned) else self._int(0, 2) * e
        return row_bytes + extra

    def _store(self) -> dict[str, int] | None:
        name = str(self.rng.choice(["acc", "out"]))
        e = self.hw.entry_bytes(name)
        rows, ln = self._int(1, 3), self._int(1, 4)
        sstride = 0 if self._chance(0.5) else ln + self._int(0, 2)
        sram = self._base(name, (rows - 1) * (sstride or ln) + ln, read=True)
        dstride = self._dstride(ln * e, e, allow_overlap=False) if rows > 1 else self._int(0, 3 * ln * e)
        dram = self._dram_span(ln * e, rows, dstride, e)
        if sram is None or dram is None:
            return None
        return dict(buf=Buffer[name.upper()], sram=sram, dram=dram, rows=rows, len=ln, dstride=dstride,
                    sstride=sstride)

    def _bgemm(self) -> dict[str, int] | None:
        d = self.cfg.max_dim
        k, m = self._planes(), self._planes()
        wmode = WeightMode.EQUAL if self._chance(0.2) else WeightMode.POW2
        if wmode == WeightMode.EQUAL:
            m = 2
        oh, ow, kh, kw = (self._int(1, d) for _ in range(4))
        stride, dil, cw, ctiles = self._int(1, 2), self._int(1, 2), self._int(1, 2), self._int(1, 2)
        # one issue per column tile: kh = kw = cw = 1, one branch group
        if self.cfg.p_onestep and self._chance(self.cfg.p_onestep):
            wmode, k, m = WeightMode.POW2, 1, self._int(1, min(2, self.hw.branch_parallel))
            kh = kw = cw = 1
            ctiles = self._int(3, 4)
        work = ctiles * oh * ow * kh * kw * cw * k * m * self.hw.array_cols
        if work > self.cfg.max_bgemm_work:
            return None
        rows = (oh - 1) * stride + (kh - 1) * dil
        cols = (ow - 1) * stride + (kw - 1) * dil
        ipix = cw * k + (self._int(0, 2) if self._chance(0.3) else 0)
        if self._chance(0.05):
            ipix = self._int(0, cw * k)  # pixels sharing words: legal, if unusual
        irow = ipix * (cols + 1) + (self._int(0, 3) if self._chance(0.3) else 0)
        inp = self._base("inp", rows * irow + cols * ipix + cw * k, read=True)
        wgt = self._base("wgt", ctiles * kh * kw * cw * m, read=True)
        acc = self._base("acc", ctiles * oh * ow, read=False)
        if inp is None or wgt is None or acc is None:
            return None
        return dict(accumulate=int(self._chance(0.4)), wmode=wmode, kbits=k, mbits=m, acc=acc, inp=inp, wgt=wgt,
                    oh=oh, ow=ow, kh=kh, kw=kw, stride=stride, dil=dil, cw=cw, ctiles=ctiles, irow=irow, ipix=ipix)

    def _requant(self) -> dict[str, int] | None:
        n = self._int(1, 6)
        dest = Dest.ACC if self._chance(0.25) else Dest.OUT
        res = int(self._chance(0.3))
        kout = self._planes()
        top = (1 << kout) - 1
        lo = self._int(0, top // 2) if self._chance(0.3) else 0
        hi = self._int(lo, top) if self._chance(0.3) else top
        ostride = kout + (self._int(0, 2) if self._chance(0.4) else 0)
        if self.cfg.p_wide_stride and self._chance(self.cfg.p_wide_stride):
            ostride = kout + self._int(0, 12)
        rk = self._planes() if res else 0
        rstride = rk + self._int(0, 2) if res else 0
        shift = self._int(0, 62) if self._chance(0.1) else self._int(0, 8)
        acc = self._base("acc", n, read=True)
        const = self._base("const", 1, read=True)
        out = self._base("out", (n - 1) * ostride + kout, read=False) if dest == Dest.OUT else 0
        rinp = self._base("inp", (n - 1) * rstride + rk, read=True) if res else 0
        if None in (acc, const, out, rinp):
            return None
        if dest == Dest.ACC:
            kout = lo = hi = ostride = 0
        return dict(dest=dest, res=res, acc=acc, n=n, const=const, out=out, ostride=ostride,
                    slice=self._int(0, self.hw.slices_per_word - 1), kout=kout, shift=shift, lo=lo, hi=hi,
                    rinp=rinp, rstride=rstride, rk=rk)

    def _pool(self) -> dict[str, int] | None:
        d = self.cfg.max_dim
        mode = PoolMode.SUM if self._chance(0.4) else PoolMode.MAX
        k = self._planes()
        oh, ow, kh, kw = (self._int(1, d) for _ in range(4))
        stride = self._int(1, 2)
        rows, cols = (oh - 1) * stride + kh - 1, (ow - 1) * stride + kw - 1
        ipix = k + (self._int(0, 2) if self._chance(0.3) else 0)
        irow = ipix * (cols + 1) + (self._int(0, 2) if self._chance(0.3) else 0)
        ostride = k + (self._int(0, 2) if self._chance(0.3) else 0)
        if self.cfg.p_wide_stride and self._chance(self.cfg.p_wide_stride):
            ostride = k + self._int(0, 12)
        inp = self._base("inp", rows * irow + cols * ipix + k, read=True)
        if mode == PoolMode.MAX:
            out, acc = self._base("out", (oh * ow - 1) * ostride + k, read=False), 0
        else:
            out, acc, ostride = 0, self._base("acc", oh * ow, read=False), 0
        if None in (inp, out, acc):
            return None
        return dict(mode=mode, k=k, slice=self._int(0, self.hw.slices_per_word - 1), inp=inp, oh=oh, ow=ow,
                    kh=kh, kw=kw, stride=stride, irow=irow, ipix=ipix, out=out, ostride=ostride, acc=acc)

    def _sync(self) -> dict[str, int]:
        return dict(unit=self._int(0, 2))

    # --- tokens and ordering --------------------------------------------------------------------
    def _emit(self, op: str, fields: dict[str, int], pops: set[tuple[int, int]], pushes: set[tuple[int, int]]
              ) -> Instruction:
        """Append an instruction; pops/pushes are token channels (producer, consumer)."""
        flags = {}
        for ch in pops:
            flags[FLAG_OF[ch][1]] = 1
        for ch in pushes:
            flags[FLAG_OF[ch][0]] = 1
        insn = Instruction.make(op, **fields, **flags)
        index, u = len(self.program), int(insn.exec_unit)
        clock = self.clock[u]
        for ch in pops:
            clock = [max(a, b) for a, b in zip(clock, self.fifo[ch].popleft(), strict=True)]
        clock[u] = index
        for ch in pushes:
            self.fifo[ch].append(list(clock))
        self.clock[u] = clock
        self.program.append(insn)
        for a in access_ranges(insn, self.hw):
            self.history.append(_Access(index, u, a.buffer, a.kind == "write", a.first, a.last))
            if a.kind == "write" and a.buffer != "dram":
                self.recent[a.buffer].append((a.first, a.last))
        return insn

    def _sync_insn(self, unit: int, pops: set, pushes: set) -> None:
        self._emit("sync", {"unit": unit}, pops, pushes)

    def _needs(self, insn: Instruction, unit: int) -> dict[int, int]:
        """For each other unit, the latest of its instructions `insn` conflicts with."""
        need: dict[int, int] = {}
        for a in access_ranges(insn, self.hw):
            write = a.kind == "write"
            for h in self.history:
                if (h.unit != unit and h.space == a.buffer and (write or h.write)
                        and h.first <= a.last and a.first <= h.last):
                    need[h.unit] = max(need.get(h.unit, -1), h.index)
        return need

    def _order(self, unit: int, other: int, need: int, pops: set | None) -> None:
        """Make instruction `need` of neighbour `other` happen before the next instruction on `unit`.

        Stale tokens are drained by syncs on `unit`, a fresh token is pushed by a sync on `other` if
        none in flight carries the knowledge, and the final pop goes either on a sync or (pops given)
        on the instruction about to be emitted.
        """
        if self.clock[unit][other] >= need:
            return
        ch = (other, unit)
        fifo = self.fifo[ch]
        while fifo and fifo[0][other] < need:
            self._sync_insn(unit, {ch}, set())
        if not fifo:
            self._sync_insn(other, set(), {ch})
        if pops is not None and self._chance(0.5):
            pops.add(ch)
        else:
            self._sync_insn(unit, {ch}, set())

    def _fence(self, insn: Instruction, unit: int, pops: set) -> None:
        need = self._needs(insn, unit)
        far = STORE if unit == LOAD else LOAD if unit == STORE else None
        if far is not None and far in need and self.clock[unit][far] < need[far]:
            self._order(COMPUTE, far, need[far], None)  # relay through compute
            need[COMPUTE] = max(need.get(COMPUTE, -1), self.clock[COMPUTE][COMPUTE])
        for other, index in need.items():
            if other != far:
                self._order(unit, other, index, pops)

    def _random_flags(self, unit: int, pops: set, pushes: set) -> None:
        prev, nxt = NEIGHBOURS[Unit(unit)]
        for other in (prev, nxt):
            if other is None:
                continue
            inbound, outbound = (int(other), unit), (unit, int(other))
            if inbound not in pops and self.fifo[inbound] and self._chance(self.cfg.p_flag):
                pops.add(inbound)
            if len(self.fifo[outbound]) < self.hw.token_depth and self._chance(self.cfg.p_flag):
                pushes.add(outbound)

    def _prune(self) -> None:
        """Forget accesses every other unit already knows about (they can no longer race)."""
        def known(h: _Access) -> bool:
            return all(self.clock[u][h.unit] >= h.index for u in range(3) if u != h.unit)
        self.history = [h for h in self.history if not known(h)]

    # --- driver ---------------------------------------------------------------------------------
    def prologue(self) -> None:
        """Fill the low address window of INP, WGT and CONST, one load each."""
        for name in ("inp", "wgt", "const"):
            e, size = self.hw.entry_bytes(name), self.hw.entries(name)
            ln = min(size, 16 if name != "const" else CONST_RECORDS)
            rows = max(1, min(size, self.cfg.window[name]) // ln)
            if name == "const":
                dram, dstride = 0, 0
            else:
                dstride = min(ln * e, (len(self.dram) - ln * e) // max(1, rows - 1))
                dram = self._int(0, len(self.dram) - (rows - 1) * dstride - ln * e)
            fields = dict(buf=Buffer[name.upper()], sram=0, dram=dram, rows=rows, len=ln, dstride=dstride)
            pushes: set[tuple[int, int]] = set()
            self._random_flags(LOAD, set(), pushes)
            self._emit("load", fields, set(), pushes)

    def step(self) -> None:
        op = str(self.rng.choice(self.ops, p=self.op_p))
        fields = self._sync() if op == "sync" else getattr(self, f"_{op}")()
        if fields is None:
            return
        probe = Instruction.make(op, **fields)
        unit = int(probe.exec_unit)
        pops: set[tuple[int, int]] = set()
        pushes: set[tuple[int, int]] = set()
        self._fence(probe, unit, pops)
        self._random_flags(unit, pops, pushes)
        self._emit(op, fields, pops, pushes)
        if len(self.program) % 32 == 0:
            self._prune()

    def finish(self) -> None:
        pops: set[tuple[int, int]] = set()
        pushes: set[tuple[int, int]] = set()
        self._random_flags(COMPUTE, pops, pushes)
        self._emit("finish", {}, pops, pushes)


def random_program(hw: HwConfig, rng: np.random.Generator, n_instructions: int,
                   config: RandomProgramConfig | None = None) -> tuple[list[Instruction], bytes]:
    """A random valid, deadlock-free, race-free program of about n_instructions (>= that many, fences
    included) ending in finish, and the DRAM image it runs on."""
    gen = _Generator(hw, rng, config or RandomProgramConfig())
    if gen.cfg.prologue:
        gen.prologue()
    while len(gen.program) < n_instructions - 1:
        gen.step()
    gen.finish()
    return gen.program, gen.dram
