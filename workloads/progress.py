"""A tiny progress bar on stderr (tqdm is not a dependency).

On a terminal it is one line redrawn in place (at most every MIN_INTERVAL s); a finished phase (the
total changes or the count restarts) keeps its last line. Elsewhere — a log file, CI, a pipe — it
writes plain lines instead: when a phase starts and completes, and at most one every LINE_INTERVAL s
in between, so logs show where a long run is without a line per layer. Progress never touches stdout
(`--json` output stays clean).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

MIN_INTERVAL = 0.1  # seconds between redraws on a terminal
LINE_INTERVAL = 5.0  # seconds between plain lines when not on a terminal
MODES = ("bar", "lines", "off")


class Progress:
    """`with Progress(n, "compile") as bar: bar.update(text=layer)`; also callable as `bar(done, total, text)`.

    mode: 'bar' (redrawn line), 'lines' (plain lines) or 'off'; default: 'bar' on a terminal, else 'lines'.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None, mode: str | None = None,
                 width: int = 28) -> None:
        self.total, self.label, self.width = max(total, 0), label, width
        self.stream = stream or sys.stderr
        self.mode = mode or ("bar" if _isatty(self.stream) else "lines")
        if self.mode not in MODES:
            raise ValueError(f"progress mode {self.mode!r} (expected one of {MODES})")
        self.done = 0
        self.text = ""
        self._t0 = time.perf_counter()
        self._drawn = -float("inf")
        self._dirty = False  # a state not yet shown

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, done: int, total: int | None = None, text: str = "") -> None:
        if (total is not None and total != self.total) or done < self.done:
            self._finish_phase()
            self.done, self._drawn = 0, -float("inf")  # a new phase shows at once
        if total is not None:
            self.total = total
        self.update(done - self.done, text)

    def update(self, n: int = 1, text: str = "") -> None:
        self.done += n
        self.text = text or self.text
        self._dirty = True
        now = time.perf_counter()
        interval = MIN_INTERVAL if self.mode == "bar" else LINE_INTERVAL
        if self.mode != "off" and (now - self._drawn >= interval or self.done >= self.total):
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The bar as text: `label [#####.....] 12/57 3.1s layer3.0.conv1`."""
        frac = min(self.done / self.total, 1.0) if self.total else 0.0
        filled = int(frac * self.width)
        elapsed = (now or time.perf_counter()) - self._t0
        bar = "#" * filled + "." * (self.width - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:.1f}s {self.text}"[:120]

    def _draw(self, now: float) -> None:
        self._drawn, self._dirty = now, False
        if self.mode == "bar":
            self.stream.write("\r\033[K" + self.line(now))
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()

    def _finish_phase(self) -> None:
        """Show the last state of the phase that ends, and keep it (a new line for the next one)."""
        if self.mode == "off" or not (self._dirty or self.mode == "bar") or self.done == 0:
            return
        if self._dirty:
            self._draw(time.perf_counter())
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()

    def close(self) -> None:
        if self.mode != "off":
            self._finish_phase()
            self.mode = "off"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
