"""The RTL's status codes, read from rtl/bb_status.vh (their one definition), and their isa.errors classes."""

from __future__ import annotations

import functools
import re

from bitbranch.isa import errors
from bitbranch.rtl import rtl_dir

STATUS_VH = rtl_dir() / "bb_status.vh"

# Which isa.errors class the simulator raises for the condition each code reports.
ERROR_CLASS: dict[str, type[errors.IsaError] | None] = {
    "OK": None,
    "ILLEGAL": errors.IllegalInstruction,
    "RESERVED": errors.IllegalInstruction,
    "FIELD": errors.FieldRangeError,
    "TOKEN": errors.TokenError,
    "BUF_RANGE": errors.BufferOverrun,
    "DRAM_RANGE": errors.DramOverrun,
    "DEADLOCK": errors.DeadlockError,
}


@functools.cache
def status_codes() -> dict[str, int]:
    """{NAME: code} from the `define BB_ST_<NAME> lines."""
    codes = {m[1]: int(m[2]) for m in re.finditer(r"`define\s+BB_ST_(\w+)\s+\d+'d(\d+)", STATUS_VH.read_text())}
    if set(codes) != set(ERROR_CLASS):
        raise RuntimeError(f"{STATUS_VH}: status names {sorted(codes)} != {sorted(ERROR_CLASS)}")
    return codes


def status_name(code: int) -> str:
    for name, value in status_codes().items():
        if value == code:
            return name
    return f"UNKNOWN({code})"


def error_class(code: int) -> type[errors.IsaError] | None:
    return ERROR_CLASS.get(status_name(code))
