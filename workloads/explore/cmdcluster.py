"""A Dask cluster started from the command line on this machine: `dask scheduler` and `dask worker`
processes on 127.0.0.1 (free port), as a user would start them by hand. For tests and benchmarks of the
`--scheduler` path; `bitbranch explore` itself starts a LocalCluster when no scheduler is given."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# One BLAS/OpenMP thread per worker process, and no statistical profiler (it samples the task thread's stack
# every 10 ms; nothing here reads it). The same variables work for workers started by hand.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CommandLineCluster:
    """`dask scheduler` + `workers` x `dask worker --nthreads 1` (with `nanny=False` each worker is one
    process, so killing it kills the worker). Logs go to `logs/`. Use as a context manager."""

    def __init__(self, workers: int = 2, logs: str | Path = ".", nanny: bool = False, timeout: float = 60) -> None:
        self.dask = Path(sys.executable).with_name("dask")
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        env = {**os.environ, **WORKER_ENV}
        try:
            self._start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], "scheduler", env)
            for k in range(workers):
                self._start(["worker", self.address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                             "--name", f"w{k}", *([] if nanny else ["--no-nanny"])], f"worker{k}", env)
            self._wait(workers, timeout)
        except BaseException:
            self.close()
            raise

    @property
    def workers(self) -> list[subprocess.Popen]:
        return self.procs[1:]

    def _start(self, args: list[str], name: str, env: dict) -> None:
        with open(self.logs / f"{name}.log", "w") as log:
            self.procs.append(subprocess.Popen([str(self.dask), *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                               cwd=self.logs, start_new_session=True))

    def _wait(self, workers: int, timeout: float) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout="5s") as c:
                    c.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
                return
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def kill_worker(self, k: int = 0) -> None:
        """SIGKILL worker k's process group (no clean shutdown: as if its machine died)."""
        p = self.workers[k]
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def __enter__(self) -> CommandLineCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
