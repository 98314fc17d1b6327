"""Where sweep and exploration points run. A sweep only needs `Executor.map_unordered(fn, items)`, so a
distributed engine can replace the local process pool by implementing that one method: `fn` and the items
are picklable (module-level function, frozen dataclasses), results are dicts.

`DaskExecutor` is that engine on Dask distributed (a LocalCluster, or any running scheduler). An
exploration also uses `run_staged`: a model is prepared (quantized, integerized) once per precision and
many hardware points use it; Dask keeps the prepared value on the cluster (see DaskExecutor.run_staged),
other executors get it computed in this process and shipped with each point."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P")
U = TypeVar("U")


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


# --- staged work: something computed once, then many points that use it --------------------------------


def run_staged(executor: Executor, prepare: Callable[[T], P], prepare_items: Sequence[T],
               point: Callable[[P, U], R], points: Sequence[tuple[int, U]]) -> Iterator[tuple[int, R | BaseException]]:
    """Yield (index into points, point(prepare(prepare_items[i]), u)) for points = [(i, u), ...], as they
    finish. Each prepared value is computed once. An exception raised by `prepare` or `point` is yielded in
    place of the result (the caller turns it into a row). Executors with a `run_staged` method (Dask) keep the
    prepared values on their workers; others get them computed here and shipped with every point."""
    if hasattr(executor, "run_staged"):
        yield from executor.run_staged(prepare, prepare_items, point, points)
        return
    prepared: dict[int, P | BaseException] = {}
    for i in sorted({i for i, _ in points}):
        try:
            prepared[i] = prepare(prepare_items[i])
        except Exception as exc:  # noqa: BLE001 - reported on each of its points
            prepared[i] = exc
    failed = [k for k, (i, _) in enumerate(points) if isinstance(prepared[i], BaseException)]
    for k in failed:
        yield k, prepared[points[k][0]]
    todo = [k for k, (i, _) in enumerate(points) if not isinstance(prepared[i], BaseException)]
    items = [(prepared[points[k][0]], points[k][1]) for k in todo]
    for j, result in executor.map_unordered(_call_point(point), items):
        yield todo[j], result


class _call_point:  # noqa: N801 - a picklable closure
    def __init__(self, point: Callable) -> None:
        self.point = point

    def __call__(self, item: tuple) -> object:
        try:
            return self.point(*item)
        except Exception as exc:  # noqa: BLE001
            return exc


def _threaded(fn: Callable[[T], R], item: T) -> R:
    """fn(item) on one torch thread (a Dask worker process is one core)."""
    from bitbranch.compiler.threads import torch_threads

    with torch_threads(1):
        return fn(item)


class DaskExecutor:
    """Dask distributed: a LocalCluster of `workers` single-threaded processes on this machine, or the
    running cluster at `address` (`tcp://HOST:PORT`: `dask scheduler` + `dask worker`, dask-jobqueue, ...;
    its workers must be able to import bitbranch). Use as a context manager (closes what it started).

    A worker that dies takes its running tasks with it; the scheduler reruns them (and anything stored
    only on that worker) elsewhere, so a run completes as long as one worker is left."""

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = 2) -> None:
        self.address = address
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.retries = retries
        self._client = None
        self._cluster = None

    @property
    def client(self):
        if self._client is None:
            from distributed import Client, LocalCluster

            if self.address:
                self._client = Client(self.address, timeout="20s")
            else:
                import dask

                # no statistical profiler in the workers: it samples the task thread every 10 ms for a dashboard
                # nobody looks at here
                with dask.config.set({"distributed.worker.profile.enabled": False}):
                    self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                                 dashboard_address=None, host="127.0.0.1", silence_logs=40)
                self._client = Client(self._cluster)
        return self._client

    def describe(self) -> str:
        info = self.client.scheduler_info(n_workers=-1) if self._client is not None else {}
        n = len(info.get("workers", {}))
        return f"{'scheduler ' + self.address if self.address else 'local cluster'} with {n} worker(s)"

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        from distributed import as_completed as dask_completed

        if not items:
            return
        submit = self.client.submit
        futures = {submit(_threaded, fn, item, pure=False, retries=self.retries): k for k, item in enumerate(items)}
        for fut in dask_completed(futures):
            yield futures[fut], fut.result()

    def run_staged(self, prepare: Callable[[T], P], prepare_items: Sequence[T], point: Callable[[P, U], R],
                   points: Sequence[tuple[int, U]]) -> Iterator[tuple[int, R | BaseException]]:
        """Each prepared value is computed by a task on a worker and stays on the cluster: the point tasks
        depend on it, so each worker fetches it at most once (from the worker that holds it)."""
        from distributed import as_completed as dask_completed

        if not points:
            return
        client = self.client
        needed = sorted({i for i, _ in points})
        prepared = {i: client.submit(prepare, prepare_items[i], pure=False, retries=self.retries,
                                     priority=10) for i in needed}
        futures = {client.submit(point, prepared[i], u, pure=False, retries=self.retries): k
                   for k, (i, u) in enumerate(points)}
        try:
            for fut in dask_completed(futures):
                try:
                    yield futures[fut], fut.result()
                except Exception as exc:  # noqa: BLE001 - the point's (or its preparation's) failure
                    yield futures[fut], exc
        finally:
            client.cancel(list(futures) + list(prepared.values()))

