"""A tiny progress bar on stderr (tqdm is not a dependency); silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

MIN_INTERVAL = 0.1  # seconds between redraws


class Progress:
    """`with Progress(n, "compile") as bar: bar.update(text=layer)`; also callable as `bar(done, total, text)`."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 28) -> None:
        self.total, self.label, self.width = max(total, 0), label, width
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.text = ""
        self._t0 = time.perf_counter()
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, done: int, total: int | None = None, text: str = "") -> None:
        if total is not None:
            self.total = total
        self.update(done - self.done, text)

    def update(self, n: int = 1, text: str = "") -> None:
        self.done += n
        self.text = text or self.text
        now = time.perf_counter()
        if self.enabled and (now - self._drawn >= MIN_INTERVAL or self.done >= self.total):
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The bar as text: `label [#####.....] 12/57 3.1s layer3.0.conv1`."""
        frac = min(self.done / self.total, 1.0) if self.total else 0.0
        filled = int(frac * self.width)
        elapsed = (now or time.perf_counter()) - self._t0
        bar = "#" * filled + "." * (self.width - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:.1f}s {self.text}"[:120]

    def _draw(self, now: float) -> None:
        self._drawn = now
        self.stream.write("\r\033[K" + self.line(now))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False
