"""Unit bench of bb_decode against isa/ (encoding + validate): cocotb tests and their runner.

Every opcode is exercised with legal instructions (from random programs), random field values (in and out of
range, including buffer and DRAM extents at their limits), every token-flag combination, reserved bits and
unknown opcodes. For each word the expected status is the class of the first error isa.encoding.decode and
isa.validate.validate_instruction raise (plus the finish-placement rule of validate_program), mapped to the
RTL's status codes (rtl/bb_status.vh); legal words must also decode to the right executing unit.
"""

from __future__ import annotations

import json
import os

import numpy as np

ENV = "BITBRANCH_DECODE_BENCH"

try:
    import cocotb
    from cocotb.triggers import Timer
except ImportError:  # pragma: no cover
    cocotb = None


def expected_status(word: int, is_last: bool, hw, dram_size: int) -> tuple[str, int | None]:
    """(status name, executing unit or None) that isa/ assigns to `word`."""
    from bitbranch.isa import errors
    from bitbranch.isa.encoding import decode
    from bitbranch.isa.spec import OPCODE_BITS, OPCODE_BY_CODE
    from bitbranch.isa.validate import validate_instruction

    code = word & ((1 << OPCODE_BITS) - 1)
    if code not in OPCODE_BY_CODE:
        return "ILLEGAL", None
    if word >> OPCODE_BY_CODE[code].used_bits:
        return "RESERVED", None
    try:
        insn = decode(word, 0)
        validate_instruction(insn, 0, hw, dram_size)
    except errors.FieldRangeError:
        return "FIELD", None
    except errors.TokenError:
        return "TOKEN", None
    except errors.BufferOverrun:
        return "BUF_RANGE", None
    except errors.DramOverrun:
        return "DRAM_RANGE", None
    except errors.IllegalInstruction:
        return "ILLEGAL", None
    if (insn.op == "finish") != is_last:
        return "ILLEGAL", None
    return "OK", int(insn.exec_unit)


def _random_field(rng, f, hw, buf_hint: str | None) -> int:
    """A value for field f: mostly plausible (small counts, addresses near 0 or a buffer's end), sometimes any."""
    top = (1 << f.width) - 1
    roll = rng.random()
    if roll < 0.15:
        return int(rng.integers(0, top + 1))
    if roll < 0.2:
        return int(rng.choice([0, 1, top, f.lo, f.max_value, min(top, f.max_value + 1)]))
    if f.enum is not None:
        return int(rng.integers(0, top + 1)) if rng.random() < 0.2 else int(rng.choice([int(m) for m in f.enum]))
    if f.width == 16 and f.lo == 0 and buf_hint is not None:  # an SRAM address
        n = hw.entries(buf_hint)
        return int(rng.integers(0, min(n, 64))) if rng.random() < 0.7 else int(rng.integers(max(0, n - 8), n + 4))
    if f.hex:  # DRAM address or stride
        return int(rng.integers(0, 512)) if rng.random() < 0.8 else int(rng.integers(0, 1 << 32))
    hi = min(f.max_value, 6 if f.width > 4 else f.max_value)
    return int(rng.integers(f.lo, hi + 1)) if hi >= f.lo else f.lo


def random_words(hw, rng, count: int) -> list[tuple[int, bool, int]]:
    """(word, is_last, dram_size) cases covering every opcode, legal and illegal."""
    from bitbranch.isa.encoding import encode
    from bitbranch.isa.hwconfig import BUFFERS
    from bitbranch.isa.spec import INSN_BITS, OPCODES, TOKEN_FIELDS
    from bitbranch.simulator.randprog import random_program

    cases: list[tuple[int, bool, int]] = []
    for seed in range(4):  # legal instructions of real random programs
        program, dram = random_program(hw, np.random.default_rng(seed), 40)
        cases += [(encode(insn), k == len(program) - 1, len(dram)) for k, insn in enumerate(program)]
    for op in OPCODES:  # every token-flag combination on every opcode (and every sync unit)
        units = range(4) if op.name == "sync" else [None]
        for unit in units:
            for flags in range(16):
                word = op.code | flags << 4
                if unit is not None:
                    word |= unit << op.field("unit").offset
                cases.append((word, op.name == "finish", 4096))
    for code in list(range(16)):  # unknown opcodes and reserved bits
        cases.append((code | int(rng.integers(0, 1 << 60)) << 8, False, 4096))
        for op in OPCODES:
            if op.code == code:
                cases.append((code | 1 << int(rng.integers(op.used_bits, INSN_BITS)), False, 4096))
    while len(cases) < count:
        op = OPCODES[int(rng.integers(0, len(OPCODES)))]
        buf_field = next((p for p in op.layout if p.name == "buf"), None)
        word = op.code
        buf_code = None
        if buf_field is not None:
            buf_code = int(rng.choice(buf_field.field.allowed)) if rng.random() < 0.9 else int(rng.integers(0, 8))
        for p in op.layout:
            if p.name == "buf" and buf_code is not None:
                v = buf_code
            elif p.name in (f.name for f in TOKEN_FIELDS):
                v = int(rng.random() < 0.15)
            else:
                hint = None
                if p.name == "sram" and buf_code is not None and buf_code < len(BUFFERS):
                    hint = BUFFERS[buf_code]
                elif p.name in ("inp", "rinp"):
                    hint = "inp"
                elif p.name in ("acc", "wgt", "out", "const"):
                    hint = p.name
                v = _random_field(rng, p.field, hw, hint)
            word |= (v & p.mask) << p.offset
        if rng.random() < 0.03:
            word |= 1 << int(rng.integers(op.used_bits, INSN_BITS))
        dram_size = int(rng.choice([256, 4096, 1 << 20, (1 << 32) - 1]))
        cases.append((word, op.name == "finish" and rng.random() < 0.8, dram_size))
    return cases


if cocotb is not None:

    @cocotb.test()
    async def decoder_matches_isa(dut):
        from bitbranch.isa.hwconfig import get_config
        from bitbranch.rtlharness.status import status_codes, status_name

        cfg = json.loads(os.environ[ENV])
        hw = get_config(cfg["hw"])
        rng = np.random.default_rng(cfg["seed"])
        cases = random_words(hw, rng, cfg["cases"])
        counts: dict[str, int] = {}
        codes = status_codes()
        dut.en.value = 0
        for word, is_last, dram_size in cases:
            dut.word.value = word
            dut.is_last.value = int(is_last)
            dut.dram_size.value = dram_size
            await Timer(1, "ns")
            want, unit = expected_status(word, is_last, hw, dram_size)
            got = int(dut.status.value)
            assert got == codes[want], (
                f"word 0x{word:064x} (is_last={is_last}, dram_size={dram_size}): RTL status {status_name(got)}, "
                f"isa says {want}")
            if unit is not None:
                assert int(dut.unit.value) == unit, f"word 0x{word:064x}: unit {int(dut.unit.value)} != {unit}"
            counts[want] = counts.get(want, 0) + 1
        dut._log.info(f"{len(cases)} words agree with isa/: {counts}")
        with open(cfg["report"], "w") as fh:
            json.dump(counts, fh)


def run_decode_bench(hw_name: str = "small", sim: str = "verilator", cases: int = 3000, seed: int = 0) -> dict:
    """Build bb_decode with the preset's parameters (cached), run the bench; returns {status: count}."""
    import tempfile
    from pathlib import Path

    from bitbranch.isa.hwconfig import get_config
    from bitbranch.rtlharness.build import build, run
    from bitbranch.rtlharness.params import module_parameters

    hw = get_config(hw_name)
    b = build(sim, "bb_decode", ["bb_decode"], module_parameters("bb_decode", hw), f"decode_{hw_name}")
    with tempfile.TemporaryDirectory(prefix="bitbranch-decode-") as tmp:
        report = Path(tmp) / "report.json"
        env = {ENV: json.dumps({"hw": hw_name, "seed": seed, "cases": cases, "report": str(report)})}
        run(b, "decode_bench", Path(tmp), env=env)
        return json.loads(report.read_text())
