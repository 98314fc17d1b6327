"""On-chip buffers, the DRAM image and the bit-exact data effect of every instruction.

Each buffer is one zero-initialised byte array [entries, entry_bytes] (what DMA copies) with a typed
view of the same memory (what compute reads): INP/OUT uint64 [entries, W/64], WGT uint64
[entries, C, W/64] (lane l is the l-th W-bit word of the entry), ACC int32 [entries, C] and CONST
bytes [entries, 16*C] = C x int32 mul, C x int32 rmul, C x int64 bias, all little-endian.

Every method implements the pseudo-code of isa.spec with vectorised index arithmetic. That is exact
because isa.validate guarantees that no instruction writes one entry (or DRAM byte) twice: DMA rows
never overlap, REQUANT/POOL output pixels never share an OUT entry. Bounds are checked there too; the
run validates the program before executing anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from isa.encoding import Instruction
from isa.hwconfig import BUFFERS, HwConfig
from isa.numeric import decomposed_matmul, plane_coefficients
from isa.rounding import requantize, saturate_int32, wrap_int32
from isa.spec import Dest, PoolMode, WeightMode

DATAPATHS = ("fast", "bitwise")
_U64 = np.dtype("<u8")


class Datapath:
    """Machine state (buffers + DRAM) and `execute(fields)` for one decoded instruction."""

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
        self._handlers: dict[str, Callable[[dict[str, int]], None]] = {
            "load": self.load,
            "store": self.store,
            "bgemm": self.bgemm,
            "requant": self.requant,
            "pool": self.pool,
            "sync": _nothing,
            "finish": _nothing,
        }

    def handler(self, op: str) -> Callable[[dict[str, int]], None]:
        return self._handlers[op]

    def execute(self, insn: Instruction) -> None:
        self._handlers[insn.op](insn.as_dict())

    def buffers(self) -> dict[str, np.ndarray]:
        """Copies of the typed buffer contents, by buffer name."""
        return {"inp": self.inp.copy(), "wgt": self.wgt.copy(), "acc": self.acc.copy(),
                "out": self.out.copy(), "const": self.const.copy()}

    # --- DMA ------------------------------------------------------------------------------------
    def load(self, f: dict[str, int]) -> None:
        name = BUFFERS[f["buf"]]
        e = self.hw.entry_bytes(name)
        flat = self.raw[name].reshape(-1)
        ln, rows, pt, pl = f["len"], f["rows"], f["pad_top"], f["pad_left"]
        width = pl + ln + f["pad_right"]
        stride = f["sstride"] or width
        nrows = pt + rows + f["pad_bottom"]
        src = _rows(self.dram, f["dram"], rows, ln * e, f["dstride"])
        self.bytes_read += rows * ln * e
        dst = _rows(flat, f["sram"] * e, nrows, width * e, stride * e, writeable=True)  # rows never overlap
        dst[:pt] = 0
        dst[pt + rows :] = 0
        data = dst[pt : pt + rows]
        if pl:
            data[:, : pl * e] = 0
        data[:, pl * e : (pl + ln) * e] = src
        if f["pad_right"]:
            data[:, (pl + ln) * e :] = 0

    def store(self, f: dict[str, int]) -> None:
        name = BUFFERS[f["buf"]]
        e = self.hw.entry_bytes(name)
        ln, rows = f["len"], f["rows"]
        src = _rows(self.raw[name].reshape(-1), f["sram"] * e, rows, ln * e, (f["sstride"] or ln) * e)
        self.bytes_written += rows * ln * e
        _rows(self.dram, f["dram"], rows, ln * e, f["dstride"], writeable=True)[...] = src  # rows never overlap

    # --- compute --------------------------------------------------------------------------------
    def bgemm(self, f: dict[str, int]) -> None:
        k, m, ctiles, c = f["kbits"], f["mbits"], f["ctiles"], self.hw.array_cols
        pixels = f["oh"] * f["ow"]
        red = f["kh"] * f["kw"] * f["cw"]
        nw = self.hw.words_per_entry
        rel = _bgemm_inp_offsets(k, f["oh"], f["ow"], f["kh"], f["kw"], f["stride"], f["dil"], f["cw"],
                                 f["irow"], f["ipix"])
        a = self.inp[rel + f["inp"]].reshape(k, pixels, red * nw)
        wgt = self.wgt[f["wgt"] : f["wgt"] + ctiles * red * m]
        w = wgt.reshape(ctiles, red, m, c, nw).transpose(2, 0, 3, 1, 4).reshape(m, ctiles * c, red * nw)
        r = decomposed_matmul(a, w, red * nw * 64, _coefficients(k, WeightMode.POW2),
                              _coefficients(m, f["wmode"]), datapath=self.mode)
        s = r.reshape(pixels, ctiles, c).transpose(1, 0, 2).reshape(ctiles * pixels, c)
        dst = self.acc[f["acc"] : f["acc"] + ctiles * pixels]
        if f["accumulate"]:
            s = s + dst
        dst[...] = wrap_int32(s)

    def requant(self, f: dict[str, int]) -> None:
        n, c = f["n"], self.hw.array_cols
        lanes = self._lanes[f["slice"]]
        acc = self.acc[f["acc"] : f["acc"] + n]
        const = self.const[f["const"]]
        mul = const[: 4 * c].view("<i4")
        rmul = const[4 * c : 8 * c].view("<i4")
        bias = const[8 * c :].view("<i8")
        residual = None
        if f["res"]:
            idx = f["rinp"] + np.arange(n)[:, None] * f["rstride"] + np.arange(f["rk"])[None, :]
            residual = _levels(lanes.bits(self.inp[idx]))  # [n, C]
        v = requantize(acc, mul, bias, f["shift"], residual, rmul)
        if f["dest"] == Dest.ACC:
            acc[...] = saturate_int32(v)
            return
        u = np.minimum(np.maximum(v, f["lo"], out=v), f["hi"], out=v)  # u = min(max(r, lo), hi)
        lanes.write_levels(self.out, self.raw["out"], f["out"], n, f["ostride"], u, f["kout"])

    def pool(self, f: dict[str, int]) -> None:
        k = f["k"]
        lanes = self._lanes[f["slice"]]
        pixels = f["oh"] * f["ow"]
        rel = _pool_inp_offsets(k, f["oh"], f["ow"], f["kh"], f["kw"], f["stride"], f["irow"], f["ipix"])
        levels = _levels(lanes.bits(self.inp[rel + f["inp"]]))  # [pixels, kh*kw, C]
        if f["mode"] == PoolMode.SUM:
            self.acc[f["acc"] : f["acc"] + pixels] = wrap_int32(levels.sum(axis=1))
            return
        lanes.write_levels(self.out, self.raw["out"], f["out"], pixels, f["ostride"], levels.max(axis=1), k)


def _nothing(_f: dict[str, int]) -> None:
    """SYNC and FINISH carry tokens only."""


def _rows(a: np.ndarray, base: int, rows: int, length: int, stride: int, writeable: bool = False) -> np.ndarray:
    """[rows, length] strided view of a flat byte array starting at `base` (bounds checked statically)."""
    if stride == length or rows == 1:  # contiguous: a plain slice, no stride tricks needed
        return a[base : base + rows * length].reshape(rows, length)
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


@functools.lru_cache(maxsize=16)
def _plane_shifts_u8(planes: int) -> np.ndarray:
    shifts = np.arange(planes, dtype=np.uint8)[None, :, None]
    shifts.flags.writeable = False
    return shifts


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
        # little-endian words: bit b of the W-bit word is bit b % 8 of byte b // 8
        self.byte_range = (slice_ * c // 8, (slice_ + 1) * c // 8) if c % 8 == 0 else None

    def bits(self, words: np.ndarray) -> np.ndarray:
        """words [..., W/64] -> the slice's lane bits [..., C] as int64 0/1."""
        return ((words[..., self.word] >> self.shift) & np.uint64(1)).astype(np.int64)

    def write_levels(self, words: np.ndarray, raw: np.ndarray, base: int, pixels: int, stride: int,
                     levels: np.ndarray, planes: int) -> None:
        """Plane i of levels[p, l] -> lane l of this slice in entry base + p*stride + i; other bits kept.

        `words` and `raw` are the uint64 and byte views of the buffer. Entries never repeat
        (isa.validate requires stride >= planes when pixels > 1), so the order of the writes does
        not matter: one vectorised write per word (or per byte range, when the slice is whole bytes).
        """
        if planes == 0:
            return
        dense = stride == planes or pixels == 1
        if self.byte_range is not None:  # C lanes = whole bytes: pack the bits and overwrite them
            b0, b1 = self.byte_range
            bits = (levels.astype(np.uint8)[:, None, :] >> _plane_shifts_u8(planes)) & np.uint8(1)  # levels <= 255
            packed = np.packbits(bits, axis=-1, bitorder="little").reshape(pixels * planes, b1 - b0)
            if dense:
                raw[base : base + pixels * planes, b0:b1] = packed
            else:
                raw[_plane_entries(pixels, stride, planes) + base, b0:b1] = packed
            return
        bits = (levels[:, None, :] >> _plane_shifts(planes)).astype(np.uint64) & np.uint64(1)  # [p, i, C]
        shifted = (bits << self.shift).reshape(pixels * planes, -1)
        entries = None if dense else _plane_entries(pixels, stride, planes) + base
        for w, l0, l1, mask in self.groups:
            field = shifted[:, l0:l1].sum(axis=1, dtype=np.uint64)  # disjoint bits: sum == or
            if dense:  # entries base .. base + pixels*planes - 1: a view, updated in place
                col = words[base : base + pixels * planes, w]
                col &= ~mask
                col |= field
            else:
                words[entries, w] = (words[entries, w] & ~mask) | field
