"""Program builder: collects instructions, lays out the DRAM image and names tensors for the artifact.

Lowering passes call `emit` and `alloc`; the builder knows nothing about layers, only about the
artifact being assembled, so every pass shares one DRAM allocator and one instruction stream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from bitbranch.isa.artifact import Artifact, LayerRecord, TensorSpec, tensor_bytes
from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import HwConfig

DRAM_ALIGN = 64  # bytes; every allocation starts on a 64-byte boundary


@dataclass
class ProgramBuilder:
    hw: HwConfig
    program: list[Instruction] = field(default_factory=list)
    dram: bytearray = field(default_factory=bytearray)
    tensors: dict[str, TensorSpec] = field(default_factory=dict)

    def emit(self, op: str, **fields: int) -> Instruction:
        insn = Instruction.make(op, index=len(self.program), **fields)
        self.program.append(insn)
        return insn

    def alloc(self, nbytes: int, data: bytes | None = None) -> int:
        """Reserve `nbytes` of DRAM (zero-filled unless `data` is given); returns the byte address."""
        addr = -(-len(self.dram) // DRAM_ALIGN) * DRAM_ALIGN
        self.dram.extend(bytes(addr + nbytes - len(self.dram)))
        if data is not None:
            if len(data) != nbytes:
                raise ValueError(f"alloc: {len(data)} data bytes for a {nbytes}-byte region")
            self.dram[addr : addr + nbytes] = data
        return addr

    def tensor(self, name: str, layout: str, shape: tuple[int, ...], bits: int = 0,
               value: np.ndarray | None = None, cstride: int = 0) -> TensorSpec:
        """Allocate a named tensor (optionally initialised) and record it for the manifest."""
        if name in self.tensors:
            raise ValueError(f"tensor '{name}' defined twice")
        spec = TensorSpec(name, 0, layout, tuple(int(s) for s in shape), bits, cstride)
        data = None if value is None else tensor_bytes(spec, value, self.hw)
        spec = dataclasses.replace(spec, addr=self.alloc(spec.nbytes(self.hw), data))
        self.tensors[name] = spec
        return spec

    def artifact(self, inputs: list[str], outputs: list[str], golden: dict[str, np.ndarray],
                 layers: list[LayerRecord], meta: dict) -> Artifact:
        self.emit("finish")
        return Artifact(
            hw=self.hw,
            program=list(self.program),
            dram=bytes(self.dram),
            tensors=dict(self.tensors),
            inputs=inputs,
            outputs=outputs,
            golden=golden,
            layers=layers,
            meta=meta,
        )
