"""On-chip buffers, the DRAM image and the bit-exact data effect of every instruction.

Each buffer is one zero-initialised byte array [entries, entry_bytes] (what DMA copies) with a typed
view of the same memory (what compute reads): INP/OUT uint64 [entries, W/64], WGT uint64
[entries, C, W/64] (lane l is the l-th W-bit word of the entry), ACC int32 [entries, C] and CONST
bytes [entries, 16*C] = C x int32 mul, C x int32 rmul, C x int64 bias, all little-endian.

Every effect implements the pseudo-code of isa.spec with vectorised index arithmetic. That is exact
because isa.validate guarantees that no instruction writes one entry (or DRAM byte) twice: DMA rows
never overlap, REQUANT/POOL output pixels never share an OUT entry. Bounds are checked there too; the
run validates the program before executing anything.

`Datapath.plan(op, fields)` turns one instruction into a ready-to-run effect (a closure over its
decoded fields, index arrays and buffer views), once per distinct instruction word, so executing an
instruction is a few numpy calls. Two caches carry state between effects, both invalidated by the
only instruction that writes their source buffer (LOAD):

* BGEMM weight operands (isa.numeric.PreparedWeights), per WGT range and shape: a LOAD into WGT drops
  every entry whose range it overlaps;
* REQUANT constants (mul, rmul as int64 and bias + rounding offset), per CONST entry: a LOAD into
  CONST drops them all.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import BUFFERS, HwConfig, const_field_bytes
from bitbranch.isa.numeric import (
    activation_operand,
    byte_levels,
    decomposed_matmul,
    matmul_prepared,
    operand_form,
    plane_coefficients,
    plane_levels,
    prepare_weights,
)
from bitbranch.isa.rounding import INT32_MAX, INT32_MIN, wrap_int32
from bitbranch.isa.spec import Buffer, Dest, PoolMode, WeightMode

DATAPATHS = ("fast", "bitwise")
_U64 = np.dtype("<u8")
_WEIGHT_CACHE_ENTRIES = 16  # weight operands kept (oldest dropped first) ...
_WEIGHT_CACHE_BYTES = 64 << 20  # ... and their int8 bytes (each has about as much again in GEMM layouts)
_BATCH_CACHE_ELEMENTS = 1 << 16  # REQUANT batches up to this many OUT bytes are kept for reuse
_REPEAT_ROWS = 4096  # REQUANT batches of up to this many pixels use per-row constants (no broadcasting)
Effect = Callable[[], None]
_LITTLE = sys.byteorder == "little"  # the byte-lane fast paths view 8 little-endian bytes as a uint64


class Datapath:
    """Machine state (buffers + DRAM) and the data effect of every instruction (`plan`, `execute`)."""

    def __init__(self, hw: HwConfig, dram: bytes, mode: str = "fast") -> None:
        if mode not in DATAPATHS:
            raise ValueError(f"unknown datapath '{mode}' (expected one of {', '.join(DATAPATHS)})")
        self.hw = hw
        self.mode = mode
        self.dram = np.frombuffer(bytearray(dram), dtype=np.uint8)
        self.raw = {b: np.zeros((hw.entries(b), hw.entry_bytes(b)), dtype=np.uint8) for b in BUFFERS}
        nw, c = hw.words_per_entry, hw.array_cols
        self.inp = self.raw["inp"].view(_U64)
        self.out = self.raw["out"].view(_U64)
        self.wgt = self.raw["wgt"].view(_U64).reshape(-1, c, nw)
        self.acc = self.raw["acc"].view(np.dtype("<i4"))
        self.const = self.raw["const"]
        self.bytes_read = 0
        self.bytes_written = 0
        self._lanes = [_SliceLanes(hw, s) for s in range(hw.slices_per_word)]
        # (wgt, ctiles, red, mbits, wmode) -> (first entry, last entry, PreparedWeights)
        self._weights: dict[tuple[int, ...], tuple[int, int, object]] = {}
        # (const entry, rounding offset) -> (mul, rmul, bias + offset) as int64 [C]
        self._consts: dict[tuple, tuple[np.ndarray, ...]] = {}
        self._batches: dict[tuple[_Requant, ...], _RequantBatch] = {}
        self._planners: dict[str, Callable[[dict[str, int]], Effect]] = {
            "load": self._plan_load,
            "store": self._plan_store,
            "bgemm": self._plan_bgemm,
            "requant": self._plan_requant,
            "pool": self._plan_pool,
            "sync": _no_effect,
            "finish": _no_effect,
        }

    def plan(self, op: str, f: dict[str, int]) -> Effect:
        """The data effect of one instruction (opcode name + decoded fields), ready to run."""
        return self._planners[op](f)

    def execute(self, insn: Instruction) -> None:
        self.plan(insn.op, insn.as_dict())()

    def buffers(self) -> dict[str, np.ndarray]:
        """Copies of the typed buffer contents, by buffer name."""
        return {"inp": self.inp.copy(), "wgt": self.wgt.copy(), "acc": self.acc.copy(),
                "out": self.out.copy(), "const": self.const.copy()}

    # --- DMA ------------------------------------------------------------------------------------
    def _plan_load(self, f: dict[str, int]) -> Effect:
        buf = f["buf"]
        name = BUFFERS[buf]
        e = self.hw.entry_bytes(name)
        flat = self.raw[name].reshape(-1)
        ln, rows, pt, pb, pl, pr = f["len"], f["rows"], f["pad_top"], f["pad_bottom"], f["pad_left"], f["pad_right"]
        width = pl + ln + pr
        stride = f["sstride"] or width
        nrows = pt + rows + pb
        row_bytes = ln * e
        nbytes = rows * row_bytes
        d0, dstride, s0 = f["dram"], f["dstride"], f["sram"] * e
        dram = self.dram
        first, last = f["sram"], f["sram"] + (nrows - 1) * stride + width - 1  # written hull (entries)
        invalidate = (self._drop_weights if buf == Buffer.WGT else self._drop_consts if buf == Buffer.CONST
                      else None)

        if pt == pb == pl == pr == 0 and (stride == width or rows == 1) and (dstride == row_bytes or rows == 1):
            def load() -> None:  # one contiguous copy
                flat[s0 : s0 + nbytes] = dram[d0 : d0 + nbytes]
                self.bytes_read += nbytes
                if invalidate is not None:
                    invalidate(first, last)
            return load

        # views made once: the buffers and the DRAM image are never reallocated
        src = _rows(dram, d0, rows, row_bytes, dstride)
        dst = _rows(flat, s0, nrows, width * e, stride * e, writeable=True)  # rows never overlap
        data = dst[pt : pt + rows, pl * e : (pl + ln) * e]
        padded = bool(pt or pb or pl or pr)

        def load_strided() -> None:
            if padded:
                dst[...] = 0  # zero fill (the data part is overwritten next)
            data[...] = src
            self.bytes_read += nbytes
            if invalidate is not None:
                invalidate(first, last)
        return load_strided

    def _plan_store(self, f: dict[str, int]) -> Effect:
        name = BUFFERS[f["buf"]]
        e = self.hw.entry_bytes(name)
        flat = self.raw[name].reshape(-1)
        ln, rows = f["len"], f["rows"]
        row_bytes = ln * e
        nbytes = rows * row_bytes
        s0, sstride, d0, dstride = f["sram"] * e, (f["sstride"] or ln) * e, f["dram"], f["dstride"]
        dram = self.dram
        if rows == 1 or (sstride == row_bytes and dstride == row_bytes):
            def store() -> None:  # one contiguous copy
                dram[d0 : d0 + nbytes] = flat[s0 : s0 + nbytes]
                self.bytes_written += nbytes
            return store

        src = _rows(flat, s0, rows, row_bytes, sstride)
        dst = _rows(dram, d0, rows, row_bytes, dstride, writeable=True)  # rows never overlap

        def store_strided() -> None:
            dst[...] = src
            self.bytes_written += nbytes
        return store_strided

    def _drop_weights(self, first: int, last: int) -> None:
        """A LOAD wrote WGT entries first..last: forget every weight operand read from them."""
        stale = [key for key, (a, b, _) in self._weights.items() if a <= last and first <= b]
        for key in stale:
            del self._weights[key]

    def _drop_consts(self, first: int, last: int) -> None:
        self._consts.clear()

    # --- compute --------------------------------------------------------------------------------
    def _plan_bgemm(self, f: dict[str, int]) -> Effect:
        k, m, ctiles, c = f["kbits"], f["mbits"], f["ctiles"], self.hw.array_cols
        pixels = f["oh"] * f["ow"]
        red = f["kh"] * f["kw"] * f["cw"]
        nw = self.hw.words_per_entry
        n = red * nw * 64
        geometry = (k, f["oh"], f["ow"], f["kh"], f["kw"], f["stride"], f["dil"], f["cw"], f["irow"], f["ipix"])
        inp0, wgt0, acc0, wmode = f["inp"], f["wgt"], f["acc"], f["wmode"]
        wgt1 = wgt0 + ctiles * red * m
        ca, cw = _coefficients(k, WeightMode.POW2), _coefficients(m, wmode)
        ca_key = tuple(int(x) for x in ca)
        dst = self.acc[acc0 : acc0 + ctiles * pixels].reshape(ctiles, pixels, c)
        accumulate = bool(f["accumulate"])

        def weights_words() -> np.ndarray:
            """WGT entries -> weight planes [M, ctiles*C, red*nw] (column = output channel t*C + l)."""
            wgt = self.wgt[wgt0:wgt1]
            return wgt.reshape(ctiles, red, m, c, nw).transpose(2, 0, 3, 1, 4).reshape(m, ctiles * c, red * nw)

        def write(r: np.ndarray) -> None:
            """R [pixels, ctiles*C] (int32 or int64) -> ACC entry t*pixels + p, lane l (int32, wrapping:
            int32 arithmetic and int64 -> int32 casts both keep the value mod 2^32)."""
            s = r.reshape(pixels, ctiles, c).transpose(1, 0, 2)
            if accumulate:
                np.add(dst, s, out=dst, casting="unsafe")
            else:
                np.copyto(dst, s, casting="unsafe")

        if self.mode == "bitwise" or not _LITTLE:  # bitwise: the hardware model, xor + popcount on the words
            rel = _bgemm_inp_offsets(*geometry)
            mode = self.mode

            def bgemm_words() -> None:
                a = self.inp[rel + inp0].reshape(k, pixels, red * nw)
                write(decomposed_matmul(a, weights_words(), n, ca, cw, datapath=mode))
            return bgemm_words

        idx, inv = _bgemm_unique_offsets(*geometry)
        s_a = (1 << k) - 1  # sum of the activation coefficients
        form = operand_form(s_a)
        wkey = (wgt0, ctiles, red, m, wmode)
        cache = self._weights
        inp = self.inp

        absolute = idx + inp0 if idx.size <= 1 << 14 else None  # small: kept with the plan
        view = inp[inp0:]

        def bgemm() -> None:
            # operand values of every distinct input word the windows read, then one row per window
            words = np.take(inp, absolute, axis=0) if absolute is not None else np.take(view, idx, axis=0)
            values = plane_levels(words, ca_key, form)  # [U, nw*64]
            if inv is not None:
                values = np.take(values, inv, axis=0)
            a = activation_operand(values.reshape(pixels, n), s_a, form)
            hit = cache.get(wkey)
            if hit is None:
                hit = cache[wkey] = (wgt0, wgt1 - 1, prepare_weights(weights_words(), n, cw))
                while len(cache) > _WEIGHT_CACHE_ENTRIES or (
                        len(cache) > 1 and sum(e[2].v.nbytes for e in cache.values()) > _WEIGHT_CACHE_BYTES):
                    del cache[next(iter(cache))]  # the oldest
            write(matmul_prepared(a, hit[2], wrap32=True))  # ACC keeps R mod 2^32
        return bgemm

    def _const_record(self, entry: int, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mul, rmul, bias + offset) of a CONST entry as int64 [C] (the addition wraps like the ALU's)."""
        key = (entry, offset)
        rec = self._consts.get(key)
        if rec is None:
            c = self.hw.array_cols
            raw = self.const[entry]
            mul = raw[const_field_bytes("mul", c)].view("<i4").astype(np.int64)
            rmul = raw[const_field_bytes("rmul", c)].view("<i4").astype(np.int64)
            bias = raw[const_field_bytes("bias", c)].view("<i8").astype(np.int64)
            with np.errstate(over="ignore"):
                bias += offset
            rec = self._consts[key] = (mul, rmul, bias)
        return rec

    def _plan_requant(self, f: dict[str, int]) -> Effect:
        return _Requant(self, f)

    def _const_rows(self, members: tuple[tuple[int, int], ...], n: int) -> tuple[np.ndarray, ...]:
        """(mul, bias + offset, rmul) of several (CONST entry, offset) pairs for a batch's [m*n, C] values:
        each row repeated n times (small batches: then the arithmetic needs no broadcasting), or
        [m, 1, C] to broadcast over [m, n, C]."""
        key = ("rows", members, n)
        rec = self._consts.get(key)
        if rec is None:
            recs = [self._const_record(entry, offset) for entry, offset in members]
            stacked = [np.stack([r[i] for r in recs]) for i in (0, 2, 1)]  # mul, bias + offset, rmul
            if len(members) * n <= _REPEAT_ROWS:
                rec = tuple(np.repeat(x, n, axis=0) for x in stacked)
            else:
                rec = tuple(x[:, None, :] for x in stacked)
            self._consts[key] = rec
        return rec

    def run_effects(self, effects: list[Effect]) -> None:
        """Apply effects in order. Runs of consecutive REQUANTs that cannot see each other's writes
        (see _Requant.batch_key) are applied as one vectorised batch, which is the same as one by one."""
        batch: list[_Requant] = []
        key = None
        written: dict[int, list[tuple[int, int]]] = {}  # slice -> OUT hulls the batch writes
        for effect in effects:
            k = effect.batch_key if type(effect) is _Requant else None
            if k is not None and k == key and not _overlaps(written, effect):
                batch.append(effect)
                written.setdefault(effect.slice, []).append(effect.hull)
                continue
            if batch:
                self._run_batch(batch)
            if k is None:
                batch, key = [], None
                effect()
            else:
                batch, key = [effect], k
                written = {effect.slice: [effect.hull]}
        if batch:
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Requant]) -> None:
        if len(batch) == 1:
            batch[0]()
            return
        members = tuple(batch)
        plan = self._batches.get(members)
        if plan is None:
            plan = _RequantBatch(self, members)
            if plan.index.size <= _BATCH_CACHE_ELEMENTS:  # programs repeat small batches; big ones pay off alone
                if len(self._batches) >= 4096:
                    self._batches.clear()
                self._batches[members] = plan
        plan()

    def _plan_pool(self, f: dict[str, int]) -> Effect:
        k = f["k"]
        lanes = self._lanes[f["slice"]]
        pixels = f["oh"] * f["ow"]
        rel = _pool_inp_offsets(k, f["oh"], f["ow"], f["kh"], f["kw"], f["stride"], f["irow"], f["ipix"])
        read = lanes.window_reader(self, rel + f["inp"])  # -> levels [pixels, kh*kw, C]
        if f["mode"] == PoolMode.SUM:
            dst = self.acc[f["acc"] : f["acc"] + pixels]

            def pool_sum() -> None:
                np.copyto(dst, wrap_int32(read().sum(axis=1, dtype=np.int64)), casting="unsafe")
            return pool_sum
        writer = lanes.level_writer(self, f["out"], pixels, f["ostride"], k)

        def pool_max() -> None:
            writer(read().max(axis=1))
        return pool_max


def _no_effect(_f: dict[str, int] | None = None) -> Effect:
    """SYNC and FINISH carry tokens only."""
    return _nothing


def _nothing() -> None:
    pass


def _rows(a: np.ndarray, base: int, rows: int, length: int, stride: int, writeable: bool = False) -> np.ndarray:
    """[rows, length] strided view of a flat byte array starting at `base` (bounds checked statically)."""
    if stride == length or rows == 1:  # contiguous: a plain slice, no stride tricks needed
        return a[base : base + rows * length].reshape(rows, length)
    if stride > length and base + rows * stride <= a.size:  # whole strides fit: slice, reshape, crop
        return a[base : base + rows * stride].reshape(rows, stride)[:, :length]
    return as_strided(a[base:], shape=(rows, length), strides=(stride, 1), writeable=writeable)


def _levels(bits: np.ndarray) -> np.ndarray:
    """bits [..., planes, C] (0/1) -> levels [..., C]: plane i weighs 2^i."""
    weights = (np.int64(1) << np.arange(bits.shape[-2], dtype=np.int64))[:, None]
    return (bits.astype(np.int64) * weights).sum(axis=-2)


@functools.lru_cache(maxsize=32)
def _coefficients(planes: int, wmode: int) -> np.ndarray:
    """Plane coefficients: 2^i (activations, pow2 weights) or 1 (wmode=equal, ternary weights)."""
    coef = plane_coefficients(planes) if wmode == WeightMode.POW2 else np.ones(planes, dtype=np.int64)
    coef.flags.writeable = False
    return coef


@functools.lru_cache(maxsize=256)
def _bgemm_inp_offsets(k: int, oh: int, ow: int, kh: int, kw: int, stride: int, dil: int, cw: int,
                       irow: int, ipix: int) -> np.ndarray:
    """INP entry offsets [K, oh*ow, kh*kw*cw] of every activation word a BGEMM reads, relative to `inp`."""
    pix = (np.arange(oh)[:, None] * (stride * irow) + np.arange(ow)[None, :] * (stride * ipix)).reshape(-1)
    win = (np.arange(kh)[:, None] * (dil * irow) + np.arange(kw)[None, :] * (dil * ipix)).reshape(-1)
    red = (win[:, None] + np.arange(cw)[None, :] * k).reshape(-1)
    rel = np.arange(k)[:, None, None] + pix[None, :, None] + red[None, None, :]
    rel.flags.writeable = False
    return rel


@functools.lru_cache(maxsize=256)
def _bgemm_unique_offsets(k: int, oh: int, ow: int, kh: int, kw: int, stride: int, dil: int, cw: int,
                          irow: int, ipix: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The distinct plane-0 words a BGEMM reads, and where each (pixel, window word) finds its own.

    Returns idx [K, U] (INP offsets of the K planes of the U distinct words, relative to `inp`) and inv
    [oh*ow * kh*kw*cw] (index into U per pixel and reduction word, pixel-major), or None when every
    word is read once, in order. Overlapping windows read each input word kh*kw times; converting
    the distinct words once and then copying rows of levels is cheaper than converting every copy.
    """
    base = _bgemm_inp_offsets(k, oh, ow, kh, kw, stride, dil, cw, irow, ipix)[0].reshape(-1)
    uniq, inv = np.unique(base, return_inverse=True)
    idx = uniq[None, :] + np.arange(k)[:, None]
    if uniq.size == base.size and np.array_equal(uniq, base):
        inv = None
    else:
        inv = inv.reshape(-1)
        inv.flags.writeable = False
    idx.flags.writeable = False
    return idx, inv


@functools.lru_cache(maxsize=256)
def _pool_inp_offsets(k: int, oh: int, ow: int, kh: int, kw: int, stride: int, irow: int, ipix: int) -> np.ndarray:
    """INP entry offsets [oh*ow, kh*kw, k] a POOL reads, relative to `inp`."""
    pix = (np.arange(oh)[:, None] * (stride * irow) + np.arange(ow)[None, :] * (stride * ipix)).reshape(-1)
    win = (np.arange(kh)[:, None] * irow + np.arange(kw)[None, :] * ipix).reshape(-1)
    rel = pix[:, None, None] + win[None, :, None] + np.arange(k)[None, None, :]
    rel.flags.writeable = False
    return rel


@functools.lru_cache(maxsize=256)
def _plane_entries(pixels: int, stride: int, planes: int) -> np.ndarray:
    """Entry offsets p*stride + i, pixel-major, flattened."""
    rel = (np.arange(pixels)[:, None] * stride + np.arange(planes)[None, :]).reshape(-1)
    rel.flags.writeable = False
    return rel


@functools.lru_cache(maxsize=16)
def _plane_shifts(planes: int) -> np.ndarray:
    shifts = np.arange(planes, dtype=np.int64)[None, :, None]
    shifts.flags.writeable = False
    return shifts


# Bit i of each of the 8 bytes of a uint64 -> one byte (bit j = bit i of byte j): mask bit i of every
# byte (bits 8j + i), multiply by _GATHER >> i = sum_t 2^(56 - 7t - i): the 64 partial products land on
# the distinct bit positions 8j + 56 - 7t (unique per (j, t)), so nothing carries, and the top byte
# (t = j: bits 56 + j) holds the 8 bits in lane order.
_BYTE_LSBS = 0x0101010101010101
_GATHER = 0x0102040810204080
_TOP = np.uint64(56)


_PLANE_MASKS = np.array([_BYTE_LSBS << i for i in range(8)], dtype=np.uint64)[:, None]
_PLANE_GATHERS = np.array([_GATHER >> i for i in range(8)], dtype=np.uint64)[:, None]


def _plane_bytes(x: np.ndarray, planes: int) -> np.ndarray:
    """x uint64 [k] (byte j = level of lane j) -> uint64 [planes, k]: bit j of [i, w] = bit i of lane j."""
    out = x[None, :] & _PLANE_MASKS[:planes]
    out *= _PLANE_GATHERS[:planes]
    out >>= _TOP
    return out


class _SliceLanes:
    """Bit positions of the C lanes of one slice inside a W-bit word, grouped by uint64 word."""

    def __init__(self, hw: HwConfig, slice_: int) -> None:
        c = hw.array_cols
        pos = slice_ * c + np.arange(c)
        self.word = pos // 64
        self.shift = (pos % 64).astype(np.uint64)
        # (word index, first lane, end lane, mask of the slice's bits in that word)
        self.groups: list[tuple[int, int, int, np.uint64]] = []
        for w in np.unique(self.word):
            lanes = np.nonzero(self.word == w)[0]
            mask = 0
            for s in self.shift[lanes]:
                mask |= 1 << int(s)
            self.groups.append((int(w), int(lanes[0]), int(lanes[-1]) + 1, np.uint64(mask)))
        # little-endian words: bit b of the W-bit word is bit b % 8 of byte b // 8 (the byte paths also
        # view 8 bytes as a native uint64, hence little-endian hosts only)
        self.byte_range = (slice_ * c // 8, (slice_ + 1) * c // 8) if c % 8 == 0 and _LITTLE else None

    def bits(self, words: np.ndarray) -> np.ndarray:
        """words [..., W/64] -> the slice's lane bits [..., C] as int64 0/1."""
        return ((words[..., self.word] >> self.shift) & np.uint64(1)).astype(np.int64)

    # --- reading levels -------------------------------------------------------------------------
    def level_reader(self, dp: Datapath, base: int, pixels: int, stride: int, planes: int
                     ) -> Callable[[], np.ndarray]:
        """() -> levels [pixels, C] of planes entries base + p*stride + i (i < planes)."""
        entries = _plane_entries(pixels, stride, planes).reshape(pixels, planes) + base
        read = self.window_reader(dp, entries[:, None, :])
        return lambda: read()[:, 0]

    def window_reader(self, dp: Datapath, entries: np.ndarray) -> Callable[[], np.ndarray]:
        """entries [..., planes] (plane i of a level at entries[..., i]) -> () -> levels [..., C]."""
        if self.byte_range is not None:  # whole bytes: table lookups, 8 lanes per uint64 operation
            b0, b1 = self.byte_range
            raw = dp.raw["inp"]
            by_plane = np.moveaxis(entries, -1, 0).copy()  # [planes, ...]
            return lambda: byte_levels(raw[by_plane, b0:b1])
        inp = dp.inp
        return lambda: _levels(self.bits(inp[entries]))

    # --- writing levels -------------------------------------------------------------------------
    def level_writer(self, dp: Datapath, base: int, pixels: int, stride: int, planes: int
                     ) -> Callable[[np.ndarray], None]:
        """-> levels [pixels, C] (0..255) -> plane i of levels[p, l] into lane l of this slice in OUT
        entry base + p*stride + i; other bits kept.

        Entries never repeat (isa.validate requires stride >= planes when pixels > 1), so the order of
        the writes does not matter: one vectorised write per word (or per byte range, when the slice is
        whole bytes).
        """
        if planes == 0:
            return _ignore
        words, raw = dp.out, dp.raw["out"]
        dense = stride == planes or pixels == 1
        entries = None if dense else _plane_entries(pixels, stride, planes) + base
        if self.byte_range is not None:  # C lanes = whole bytes: gather each plane's bits, overwrite bytes
            b0, b1 = self.byte_range
            nb = b1 - b0
            if dense:  # [planes, pixels, nb] view of the bytes to overwrite
                target = raw[base : base + pixels * planes, b0:b1].reshape(pixels, planes, nb).transpose(1, 0, 2)
            else:
                target = None
                rows = entries.reshape(pixels, planes).T  # [planes, pixels]

            def write_bytes(levels: np.ndarray) -> None:
                x = levels.astype(np.uint8).view(np.uint64).reshape(-1)  # 8 lanes' levels per uint64
                planes_bytes = _plane_bytes(x, planes).reshape(planes, pixels, nb)
                if target is not None:
                    target[...] = planes_bytes
                else:
                    raw[rows, b0:b1] = planes_bytes
            return write_bytes
        shifts = _plane_shifts(planes)
        groups, lane_shift = self.groups, self.shift

        def write_words(levels: np.ndarray) -> None:
            bits = (levels[:, None, :] >> shifts).astype(np.uint64) & np.uint64(1)  # [p, i, C]
            shifted = (bits << lane_shift).reshape(pixels * planes, -1)
            for w, l0, l1, mask in groups:
                field = shifted[:, l0:l1].sum(axis=1, dtype=np.uint64)  # disjoint bits: sum == or
                if dense:  # entries base .. base + pixels*planes - 1: a view, updated in place
                    col = words[base : base + pixels * planes, w]
                    col &= ~mask
                    col |= field
                else:
                    words[entries, w] = (words[entries, w] & ~mask) | field
        return write_words


def _ignore(_levels: np.ndarray) -> None:
    pass


class _Requant:
    """The effect of one REQUANT (see isa.spec): v = ACC * mul + bias (+ residual * rmul), int64 wrapping;
    round_shift; clamp into OUT planes, or saturate back into ACC."""

    __slots__ = ("acc", "acc0", "batch_key", "dest_acc", "dp", "entry", "hi", "hull", "kout", "lo", "n", "offset",
                 "ostride", "out0", "residual", "rinp", "rk", "rstride", "shift", "slice", "writer")

    def __init__(self, dp: Datapath, f: dict[str, int]) -> None:
        n = self.n = f["n"]
        lanes = dp._lanes[f["slice"]]
        self.dp, self.slice = dp, f["slice"]
        self.acc0 = f["acc"]
        self.acc = dp.acc[self.acc0 : self.acc0 + n]
        self.entry, self.shift = f["const"], f["shift"]
        # round_shift(v, s) = (v + 2^(s-1)) >> s: the offset joins the bias (int64 addition wraps, so
        # adding it to the bias first gives the same bits), leaving one shift
        self.offset = 1 << (self.shift - 1) if self.shift else 0
        self.residual = lanes.level_reader(dp, f["rinp"], n, f["rstride"], f["rk"]) if f["res"] else None
        self.rinp, self.rstride, self.rk = f["rinp"], f["rstride"], f["rk"] if f["res"] else 0
        self.dest_acc = f["dest"] == Dest.ACC
        self.lo, self.hi, self.kout, self.out0, self.ostride = f["lo"], f["hi"], f["kout"], f["out"], f["ostride"]
        self.writer = None if self.dest_acc else lanes.level_writer(dp, self.out0, n, self.ostride, self.kout)
        self.hull = (self.out0, self.out0 + (n - 1) * self.ostride + self.kout - 1)
        # Consecutive REQUANTs with the same key can run as one batch: dest=out ones read ACC, CONST
        # (and INP with res) and write only OUT, so none reads what another writes; their OUT writes
        # must not overlap (same slice and overlapping entries end a batch, see run_effects).
        batchable = not self.dest_acc and lanes.byte_range is not None and self.kout
        self.batch_key = (n, self.kout, self.rk) if batchable else None

    def __call__(self) -> None:
        mul, rmul, bias = self.dp._const_record(self.entry, self.offset)
        v = self.acc * mul  # int64 [n, C], wrapping
        v += bias
        if self.residual is not None:
            v += self.residual() * rmul
        if self.shift:
            v >>= self.shift  # arithmetic
        if self.dest_acc:
            np.copyto(self.acc, np.clip(v, INT32_MIN, INT32_MAX), casting="unsafe")
            return
        np.maximum(v, self.lo, out=v)
        np.minimum(v, self.hi, out=v)
        self.writer(v)


def _overlaps(written: dict[int, list[tuple[int, int]]], r: _Requant) -> bool:
    first, last = r.hull
    return any(a <= last and first <= b for a, b in written.get(r.slice, ()))


class _RequantBatch:
    """Several batchable REQUANTs (same n, kout and residual planes; whole-byte slices) applied as one: the same
    arithmetic on [m*n, C], then every member's plane bytes scattered into OUT with one indexed write
    (the members' OUT bits are disjoint, so the order of the writes does not matter)."""

    def __init__(self, dp: Datapath, members: tuple[_Requant, ...]) -> None:
        m, n, kout = len(members), members[0].n, members[0].kout
        c = dp.hw.array_cols
        self.dp, self.n, self.kout = dp, n, kout
        acc0 = np.array([r.acc0 for r in members])
        if (np.diff(acc0) == n).all():  # consecutive ACC ranges: a view
            self.acc = dp.acc[acc0[0] : acc0[0] + m * n]
            self.acc_idx = None
        else:
            self.acc_idx = (acc0[:, None] + np.arange(n)[None, :]).reshape(-1)
        self.consts = tuple((r.entry, r.offset) for r in members)

        def per_row(values: list[int]) -> int | np.ndarray:  # one scalar, or each member's value n times
            return values[0] if len(set(values)) == 1 else np.repeat(np.array(values), n)[:, None]
        self.shift = per_row([r.shift for r in members])
        self.lo = per_row([r.lo for r in members])
        self.hi = per_row([r.hi for r in members])
        # byte index in OUT of plane i of pixel p, byte q of member j's slice: [kout, m, n, C/8]
        e, nb = dp.hw.entry_bytes("out"), c // 8
        out0 = np.array([r.out0 for r in members])[:, None]
        ostride = np.array([r.ostride for r in members])[:, None]
        entries = out0 + np.arange(n)[None, :] * ostride  # [m, n]
        first_byte = np.array([dp._lanes[r.slice].byte_range[0] for r in members])
        self.index = ((entries[None, :, :, None] + np.arange(kout)[:, None, None, None]) * e
                      + first_byte[None, :, None, None] + np.arange(nb)[None, None, None, :]).reshape(-1)
        self.out = dp.raw["out"].reshape(-1)
        self.rk = rk = members[0].rk
        if rk:  # residual: byte index in INP of plane i of pixel p, byte q of member j's slice: [rk, m*n, C/8]
            rinp = np.array([r.rinp for r in members])[:, None]
            rstride = np.array([r.rstride for r in members])[:, None]
            rentries = (rinp + np.arange(n)[None, :] * rstride).reshape(-1)  # [m*n]
            rbyte = np.repeat(first_byte, n)
            self.res_index = ((rentries[None, :, None] + np.arange(rk)[:, None, None]) * dp.hw.entry_bytes("inp")
                              + rbyte[None, :, None] + np.arange(nb)[None, None, :])
            self.inp = dp.raw["inp"].reshape(-1)

    def __call__(self) -> None:
        mul, bias, rmul = self.dp._const_rows(self.consts, self.n)
        acc = self.acc if self.acc_idx is None else np.take(self.dp.acc, self.acc_idx, axis=0)
        v = acc.astype(np.int64)  # [m*n, C]
        if self.rk:
            r = byte_levels(self.inp[self.res_index]).astype(np.int64)  # residual levels [m*n, C]
        if mul.ndim == 3:  # large batch: broadcast the constants over [m, n, C]
            v = v.reshape(mul.shape[0], self.n, -1)
            if self.rk:
                r = r.reshape(v.shape)
        v *= mul  # wrapping
        v += bias
        if self.rk:
            r *= rmul
            v += r
        v = v.reshape(-1, v.shape[-1])
        if not isinstance(self.shift, int) or self.shift:
            v >>= self.shift
        np.maximum(v, self.lo, out=v)
        np.minimum(v, self.hi, out=v)
        self.out[self.index] = _plane_bytes(v.astype(np.uint8).view(np.uint64).reshape(-1), self.kout).reshape(-1)
