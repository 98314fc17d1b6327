"""Unit bench of the DMA path (bb_load, bb_store, the banked buffers, bb_dram) against the simulator's datapath.

Random LOADs into INP, WGT and CONST with zero padding on every side, dense and strided SRAM rows, DRAM strides
that skip, repeat or overlap bytes and unaligned DRAM addresses; random STOREs from ACC and OUT (filled
through the bench's poke port) with dense and strided rows. After every LOAD the written buffer entries are
compared with simulator.datapath.Datapath executing the same instruction; at the end the DRAM image is dumped
and compared byte for byte. Every transfer must be granted one cycle after it starts and hold the port for
exactly simulator.timing's hold cycles (load_hold / store_hold).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

ENV = "BITBRANCH_DMA_BENCH"

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, RisingEdge, Timer
except ImportError:  # pragma: no cover
    cocotb = None


def random_dma(hw, rng, dram_size: int):
    """A random legal LOAD or STORE (isa.validate.validate_instruction passes)."""
    from bitbranch.isa import errors
    from bitbranch.isa.encoding import Instruction
    from bitbranch.isa.spec import Buffer
    from bitbranch.isa.validate import validate_instruction

    while True:
        try:
            if rng.random() < 0.6:
                buf = [Buffer.INP, Buffer.WGT, Buffer.CONST][int(rng.integers(0, 3))]
                name = buf.name.lower()
                e = hw.entry_bytes(name)
                rows, ln = int(rng.integers(1, 5)), int(rng.integers(1, 7))
                pads = [int(rng.integers(0, 3)) if rng.random() < 0.4 else 0 for _ in range(4)]
                width = pads[2] + ln + pads[3]
                sstride = 0 if rng.random() < 0.5 else width + int(rng.integers(0, 3))
                r = rng.random()
                dstride = (int(rng.integers(0, ln * e + 1)) if r < 0.2 else
                           ln * e + int(rng.integers(0, 2 * e + 1)))
                extent = (rows - 1) * dstride + ln * e
                dram = int(rng.integers(0, dram_size - extent + 1))
                if rng.random() < 0.5:
                    dram -= dram % e
                span = (pads[0] + rows + pads[1] - 1) * (sstride or width) + width
                sram = int(rng.integers(0, hw.entries(name) - span + 1)) if rng.random() < 0.8 else \
                    hw.entries(name) - span
                insn = Instruction.make("load", buf=buf, sram=sram, dram=dram, rows=rows, len=ln, dstride=dstride,
                                        sstride=sstride, pad_top=pads[0], pad_bottom=pads[1], pad_left=pads[2],
                                        pad_right=pads[3])
            else:
                buf = [Buffer.ACC, Buffer.OUT][int(rng.integers(0, 2))]
                name = buf.name.lower()
                e = hw.entry_bytes(name)
                rows, ln = int(rng.integers(1, 4)), int(rng.integers(1, 6))
                sstride = 0 if rng.random() < 0.5 else ln + int(rng.integers(0, 3))
                dstride = ln * e + (int(rng.integers(0, 2 * e + 1)) if rng.random() < 0.5 else 0)
                extent = (rows - 1) * dstride + ln * e
                dram = int(rng.integers(0, dram_size - extent + 1))
                if rng.random() < 0.5:
                    dram -= dram % e
                span = (rows - 1) * (sstride or ln) + ln
                sram = int(rng.integers(0, hw.entries(name) - span + 1))
                insn = Instruction.make("store", buf=buf, sram=sram, dram=dram, rows=rows, len=ln, dstride=dstride,
                                        sstride=sstride)
            validate_instruction(insn, 0, hw, dram_size)
            return insn
        except (errors.IsaError, ValueError):
            continue


if cocotb is not None:

    @cocotb.test()
    async def dma_matches_datapath(dut):
        from bitbranch.isa.encoding import encode
        from bitbranch.isa.hwconfig import BUFFERS, get_config
        from bitbranch.isa.validate import access_ranges
        from bitbranch.simulator.datapath import Datapath
        from bitbranch.simulator.timing import instruction_timing

        cfg = json.loads(os.environ[ENV])
        hw = get_config(cfg["hw"])
        dram = Path(cfg["dram_bin"]).read_bytes()
        rng = np.random.default_rng(cfg["seed"])
        ref = Datapath(hw, dram)
        peek_code = {"inp": 0, "wgt": 1, "acc": 2, "out": 3, "const": 4}
        cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
        dut.rst.value = 1
        for sig in (dut.go_ld, dut.go_st, dut.dump, dut.poke_en):
            sig.value = 0
        dut.dram_size.value = len(dram)
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        dut.rst.value = 0
        cycle = 0
        stats = {"load": 0, "store": 0, "padded": 0, "strided": 0}

        async def tick():
            nonlocal cycle
            await RisingEdge(dut.clk)
            cycle += 1
            await Timer(1, "ns")

        async def poke(name: str, entry: int, data: bytes):
            await FallingEdge(dut.clk)
            dut.poke_en.value = 1
            dut.poke_out.value = int(name == "out")
            dut.poke_addr.value = entry
            dut.poke_data.value = int.from_bytes(data, "little")
            await RisingEdge(dut.clk)
            await Timer(1, "ns")
            dut.poke_en.value = 0

        for n in range(cfg["cases"]):
            insn = random_dma(hw, rng, len(dram))
            f = insn.as_dict()
            name = BUFFERS[f["buf"]]
            e = hw.entry_bytes(name)
            if insn.op == "store":  # fill the source rows with fresh data, in the RTL and the reference
                first, last = next((a.first, a.last) for a in access_ranges(insn, hw) if a.kind == "read")
                for entry in range(first, last + 1):
                    data = rng.integers(0, 256, e, dtype=np.uint8).tobytes()
                    ref.raw[name][entry] = np.frombuffer(data, np.uint8)
                    await poke(name, entry, data)
            await FallingEdge(dut.clk)
            dut.word.value = encode(insn)
            go = dut.go_ld if insn.op == "load" else dut.go_st
            go.value = 1
            await RisingEdge(dut.clk)
            start = cycle = 0
            await Timer(1, "ns")
            go.value = 0
            grant = last = None
            gnt = dut.ld_gnt if insn.op == "load" else dut.st_gnt
            fin = dut.ld_last if insn.op == "load" else dut.st_last
            while last is None:
                cycle += 1
                if int(gnt.value):
                    grant = cycle
                if int(fin.value):
                    last = cycle
                await RisingEdge(dut.clk)
                await Timer(1, "ns")
                assert cycle < 100000, f"case {n}: {insn.op} never finished"
            hold = instruction_timing(insn, hw).dram_hold
            assert grant == start + 1, f"case {n}: granted {grant - start} cycles after the start (want 1)"
            assert last - grant + 1 == hold, f"case {n}: {insn} held the port {last - grant + 1} cycles, want {hold}"
            ref.execute(insn)
            stats[insn.op] += 1
            stats["padded"] += insn.op == "load" and bool(f["pad_top"] or f["pad_bottom"] or f["pad_left"]
                                                         or f["pad_right"])
            stats["strided"] += bool(f["sstride"])
            if insn.op == "load":
                first, last_e = next((a.first, a.last) for a in access_ranges(insn, hw) if a.kind == "write")
                dut.peek_buf.value = peek_code[name]
                for entry in range(max(0, first - 2), min(hw.entries(name), last_e + 3)):
                    dut.peek_addr.value = entry
                    await RisingEdge(dut.clk)  # buffer reads are registered
                    await Timer(1, "ns")
                    got = (int(dut.peek_data.value) & ((1 << (8 * e)) - 1)).to_bytes(e, "little")
                    want = ref.raw[name][entry].tobytes()
                    assert got == want, f"case {n}: {insn}: {name.upper()}[{entry}] = {got.hex()}, want {want.hex()}"
        await FallingEdge(dut.clk)
        dut.dump.value = 1
        await RisingEdge(dut.clk)
        await Timer(1, "ns")
        dut.dump.value = 0
        await RisingEdge(dut.clk)
        from bitbranch.rtlharness.bench_core import read_mem_hex

        final = read_mem_hex(Path(cfg["dram_out"]), len(dram))
        want = ref.dram.tobytes()
        bad = [i for i in range(len(dram)) if final[i] != want[i]]
        assert not bad, f"DRAM differs at {len(bad)} bytes, first {bad[:8]}"
        dut._log.info(f"DMA bench: {stats}, DRAM image identical")
        with open(cfg["report"], "w") as fh:
            json.dump(stats, fh)


def run_dma_bench(hw_name: str = "small", sim: str = "verilator", cases: int = 60, seed: int = 0,
                  dram_bytes: int = 4096) -> dict:
    import tempfile

    from bitbranch.isa.hwconfig import get_config
    from bitbranch.rtlharness.bench_core import write_dram_hex
    from bitbranch.rtlharness.build import build, run
    from bitbranch.rtlharness.params import module_parameters

    hw = get_config(hw_name)
    params = {**module_parameters("bench/bb_dma_tb", hw), "DRAM_AW": max(12, (dram_bytes - 1).bit_length())}
    modules = ["bb_dram", "bb_dma_seq", "bb_load", "bb_store", "bb_sram_2p", "bb_banks", "bb_winbuf", "bb_accbuf",
               "bench/bb_dma_tb"]
    b = build(sim, "bb_dma_tb", modules, params, f"dma_{hw_name}")
    with tempfile.TemporaryDirectory(prefix="bitbranch-dma-") as tmp:
        work = Path(tmp)
        dram = np.random.default_rng(seed + 1).integers(0, 256, dram_bytes, dtype=np.uint8).tobytes()
        (work / "dram.bin").write_bytes(dram)
        write_dram_hex(dram, work / "dram.hex")
        env = {ENV: json.dumps({"hw": hw_name, "seed": seed, "cases": cases, "dram_bin": str(work / "dram.bin"),
                                "dram_out": str(work / "dram_out.hex"), "report": str(work / "report.json")})}
        run(b, "dma_bench", work, env=env, plusargs=[f"+dram={work / 'dram.hex'}",
                                                     f"+dram_out={work / 'dram_out.hex'}"])
        return json.loads((work / "report.json").read_text())
