"""`torch_threads(n)`: run a block with n torch intra-op threads, then restore the caller's setting.

torch.set_num_threads is process-wide, so library code that wants a specific count (training at the
machine's core count, per-image golden inference at one thread) must put the old value back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
