"""Cycle-level SimPy simulator of the bitbranch accelerator (timing contract: docs/timing.md)."""

from .machine import CycleLimitError
from .run import SimResult, run

__all__ = ["CycleLimitError", "SimResult", "run"]
