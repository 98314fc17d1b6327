"""Exception types shared by everyone who loads, checks or runs a program.

Every error that concerns one instruction carries its index in the program, so a user can find it
in `bitbranch disasm` output. All derive from ValueError: bad input, not a bug in bitbranch.
"""

from __future__ import annotations


class IsaError(ValueError):
    """Base class: a program (or one of its instructions) is not valid."""

    def __init__(self, message: str, index: int | None = None, op: str | None = None) -> None:
        self.index = index
        self.op = op
        self.detail = message
        where = ""
        if index is not None:
            where = f"instruction {index}" + (f" ({op})" if op else "") + ": "
        super().__init__(where + message)


class IllegalInstruction(IsaError):
    """Unknown opcode or reserved bits set."""


class FieldRangeError(IsaError):
    """A field's value is outside its legal range (or inconsistent with another field)."""


class BufferOverrun(IsaError):
    """An access reaches beyond the configured on-chip buffer."""


class DramOverrun(IsaError):
    """A DMA transfer reaches beyond the DRAM image."""


class TokenError(IsaError):
    """A dependency-token flag is used where the unit has no such neighbour."""


class DeadlockError(TokenError):
    """The program can stall forever on dependency tokens or full queues."""


class ProgramFormatError(IsaError):
    """A program binary is malformed (bad magic, version, size)."""


class AsmError(ValueError):
    """Assembly source error, formatted as `file:line: message`."""

    def __init__(self, message: str, file: str = "<asm>", line: int | None = None) -> None:
        self.file = file
        self.line = line
        self.detail = message
        super().__init__(f"{file}:{line}: {message}" if line is not None else f"{file}: {message}")
