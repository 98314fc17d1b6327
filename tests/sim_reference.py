"""An independent, deliberately naive interpreter of the instruction semantics (isa.spec pseudo-code).

Executes a program sequentially in program order, element by element with Python integers, so it
shares no code with the simulator's vectorised datapath or with isa.numeric: plane words are W-bit
Python ints, lanes are lists, int32/int64 wrapping is spelled out. For race-free programs (see
simulator.randprog) the simulator's concurrent execution must give exactly the same DRAM image and
buffers. Only for small programs: it is slow on purpose.
"""

from __future__ import annotations

import numpy as np

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import BUFFERS, HwConfig
from bitbranch.isa.spec import Dest, PoolMode, WeightMode


def wrap32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def wrap64(x: int) -> int:
    return (x + (1 << 63)) % (1 << 64) - (1 << 63)


def round_shift64(v: int, shift: int) -> int:
    """(v + 2^(shift-1)) >> shift in wrapping int64, arithmetic shift; v if shift == 0 (isa.rounding's rule)."""
    return v if shift == 0 else wrap64(v + (1 << (shift - 1))) >> shift


def bit(word: int, pos: int) -> int:
    return (word >> pos) & 1


def set_bit(word: int, pos: int, value: int) -> int:
    return (word & ~(1 << pos)) | (value << pos)


class Reference:
    """Buffers as Python lists of entries: INP/OUT W-bit ints, WGT lists of C W-bit ints, ACC lists of
    C int32, CONST raw bytes. DRAM is a bytearray."""

    def __init__(self, hw: HwConfig, dram: bytes) -> None:
        self.hw = hw
        self.W, self.C = hw.word_bits, hw.array_cols
        self.dram = bytearray(dram)
        self.inp = [0] * hw.inp_entries
        self.out = [0] * hw.out_entries
        self.wgt = [[0] * self.C for _ in range(hw.wgt_entries)]
        self.acc = [[0] * self.C for _ in range(hw.acc_entries)]
        self.const = [bytes(hw.entry_bytes("const"))] * hw.const_entries

    # --- entries <-> bytes ------------------------------------------------------------------------
    def _set_entry(self, buf: str, index: int, data: bytes) -> None:
        wb = self.W // 8
        if buf == "inp":
            self.inp[index] = int.from_bytes(data, "little")
        elif buf == "wgt":
            self.wgt[index] = [int.from_bytes(data[l * wb : (l + 1) * wb], "little") for l in range(self.C)]
        elif buf == "const":
            self.const[index] = bytes(data)
        else:
            raise AssertionError(f"load into {buf}")

    def _entry_bytes(self, buf: str, index: int) -> bytes:
        if buf == "out":
            return self.out[index].to_bytes(self.W // 8, "little")
        if buf == "acc":
            return b"".join((v & 0xFFFFFFFF).to_bytes(4, "little") for v in self.acc[index])
        raise AssertionError(f"store from {buf}")

    def _const(self, index: int) -> tuple[list[int], list[int], list[int]]:
        raw, c = self.const[index], self.C
        mul = [int.from_bytes(raw[4 * l : 4 * l + 4], "little", signed=True) for l in range(c)]
        rmul = [int.from_bytes(raw[4 * c + 4 * l : 4 * c + 4 * l + 4], "little", signed=True) for l in range(c)]
        bias = [int.from_bytes(raw[8 * c + 8 * l : 8 * c + 8 * l + 8], "little", signed=True) for l in range(c)]
        return mul, rmul, bias

    # --- instructions -----------------------------------------------------------------------------
    def execute(self, insn: Instruction) -> None:
        getattr(self, f"op_{insn.op}")(insn.as_dict())

    def op_load(self, f: dict[str, int]) -> None:
        buf = BUFFERS[f["buf"]]
        e = self.hw.entry_bytes(buf)
        width = f["pad_left"] + f["len"] + f["pad_right"]
        s = f["sstride"] if f["sstride"] != 0 else width
        zero = bytes(e)
        for r in range(f["pad_top"] + f["rows"] + f["pad_bottom"]):
            row = f["sram"] + r * s
            if r < f["pad_top"] or r >= f["pad_top"] + f["rows"]:
                for q in range(width):
                    self._set_entry(buf, row + q, zero)
                continue
            d = f["dram"] + (r - f["pad_top"]) * f["dstride"]
            for q in range(width):
                data = q - f["pad_left"]
                if 0 <= data < f["len"]:
                    self._set_entry(buf, row + q, self.dram[d + data * e : d + (data + 1) * e])
                else:
                    self._set_entry(buf, row + q, zero)

    def op_store(self, f: dict[str, int]) -> None:
        buf = BUFFERS[f["buf"]]
        e = self.hw.entry_bytes(buf)
        s = f["sstride"] if f["sstride"] != 0 else f["len"]
        for r in range(f["rows"]):
            for q in range(f["len"]):
                d = f["dram"] + r * f["dstride"] + q * e
                self.dram[d : d + e] = self._entry_bytes(buf, f["sram"] + r * s + q)

    def op_bgemm(self, f: dict[str, int]) -> None:
        W, C = self.W, self.C
        kb, mb = f["kbits"], f["mbits"]
        for t in range(f["ctiles"]):
            for y in range(f["oh"]):
                for x in range(f["ow"]):
                    s = [0] * C
                    for ky in range(f["kh"]):
                        for kx in range(f["kw"]):
                            for c in range(f["cw"]):
                                for i in range(kb):
                                    a = self.inp[f["inp"] + (y * f["stride"] + ky * f["dil"]) * f["irow"]
                                                 + (x * f["stride"] + kx * f["dil"]) * f["ipix"] + c * kb + i]
                                    for j in range(mb):
                                        w = self.wgt[f["wgt"] + (((t * f["kh"] + ky) * f["kw"] + kx) * f["cw"] + c)
                                                     * mb + j]
                                        coef = (1 << i) * ((1 << j) if f["wmode"] == WeightMode.POW2 else 1)
                                        for l in range(C):
                                            s[l] += coef * (W - 2 * (a ^ w[l]).bit_count())
                    e = f["acc"] + t * f["oh"] * f["ow"] + y * f["ow"] + x
                    for l in range(C):
                        self.acc[e][l] = wrap32(s[l] if f["accumulate"] == 0 else self.acc[e][l] + s[l])

    def op_requant(self, f: dict[str, int]) -> None:
        C = self.C
        mul, rmul, bias = self._const(f["const"])
        for p in range(f["n"]):
            row = list(self.acc[f["acc"] + p])
            for l in range(C):
                v = wrap64(row[l] * mul[l] + bias[l])
                if f["res"]:
                    u_r = sum(bit(self.inp[f["rinp"] + p * f["rstride"] + i], f["slice"] * C + l) << i
                              for i in range(f["rk"]))
                    v = wrap64(v + u_r * rmul[l])
                r = round_shift64(v, f["shift"])
                if f["dest"] == Dest.OUT:
                    u = min(max(r, f["lo"]), f["hi"])
                    for i in range(f["kout"]):
                        e = f["out"] + p * f["ostride"] + i
                        self.out[e] = set_bit(self.out[e], f["slice"] * C + l, (u >> i) & 1)
                else:
                    self.acc[f["acc"] + p][l] = min(max(r, -(1 << 31)), (1 << 31) - 1)

    def op_pool(self, f: dict[str, int]) -> None:
        C, k, sl = self.C, f["k"], f["slice"]

        def level(r: int, c: int, l: int) -> int:
            return sum(bit(self.inp[f["inp"] + r * f["irow"] + c * f["ipix"] + i], sl * C + l) << i for i in range(k))

        for y in range(f["oh"]):
            for x in range(f["ow"]):
                for l in range(C):
                    vals = [level(y * f["stride"] + ky, x * f["stride"] + kx, l)
                            for ky in range(f["kh"]) for kx in range(f["kw"])]
                    if f["mode"] == PoolMode.MAX:
                        for i in range(k):
                            e = f["out"] + (y * f["ow"] + x) * f["ostride"] + i
                            self.out[e] = set_bit(self.out[e], sl * C + l, (max(vals) >> i) & 1)
                    else:
                        self.acc[f["acc"] + y * f["ow"] + x][l] = wrap32(sum(vals))

    def op_sync(self, f: dict[str, int]) -> None:
        pass

    def op_finish(self, f: dict[str, int]) -> None:
        pass

    # --- results in the simulator's array shapes -----------------------------------------------------
    def buffers(self) -> dict[str, np.ndarray]:
        nw, wb = self.W // 64, self.W // 8

        def words(values: list[int]) -> np.ndarray:
            raw = b"".join(v.to_bytes(wb, "little") for v in values)
            return np.frombuffer(raw, dtype="<u8").reshape(len(values), nw)

        wgt = np.frombuffer(b"".join(v.to_bytes(wb, "little") for e in self.wgt for v in e), dtype="<u8")
        return {
            "inp": words(self.inp),
            "wgt": wgt.reshape(len(self.wgt), self.C, nw),
            "acc": np.array(self.acc, dtype=np.int64).astype(np.int32),
            "out": words(self.out),
            "const": np.frombuffer(b"".join(self.const), dtype=np.uint8).reshape(len(self.const), -1),
        }


def run_reference(program: list[Instruction], dram: bytes, hw: HwConfig) -> Reference:
    ref = Reference(hw, dram)
    for insn in program:
        ref.execute(insn)
    return ref
