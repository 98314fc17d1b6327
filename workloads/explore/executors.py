"""Where sweep points run. A sweep only needs `Executor.map_unordered(fn, items)`, so a distributed
engine (Ray, Dask, a batch queue) can replace the local process pool by implementing that one method:
`fn` and the items are picklable (module-level function, frozen dataclasses), results are dicts."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        """Yield (index into items, fn(item)) as each finishes, in any order."""
        ...


class SerialExecutor:
    """In this process, one after the other (debugging, profiling, single-point sweeps)."""

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        for k, item in enumerate(items):
            yield k, fn(item)


def _one_thread() -> None:
    """Worker initializer: one torch thread per process, so N workers use N cores, not N^2 threads."""
    import torch

    torch.set_num_threads(1)


class ProcessExecutor:
    """A local pool of worker processes (`spawn`: a clean interpreter each, safe with torch's threads)."""

    def __init__(self, workers: int | None = None, start_method: str = "spawn") -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.start_method = start_method

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        if not items:
            return
        ctx = multiprocessing.get_context(self.start_method)
        with ProcessPoolExecutor(min(self.workers, len(items)), mp_context=ctx, initializer=_one_thread) as pool:
            futures = {pool.submit(fn, item): k for k, item in enumerate(items)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
