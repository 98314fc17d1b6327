"""What every `bitbranch` subcommand does with an error: one line on stderr, exit status 2.

Lives in `isa`, the package every other one depends on, so the simulator, the RTL harness and the
workloads report errors the same way without importing each other.
"""

from __future__ import annotations

import sys


def fail(message: str) -> int:
    """Print `error: message` on stderr; return the exit status for bad input (2)."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def os_error_message(exc: OSError) -> str:
    """`path: reason` for a file error (no traceback, no errno prefix)."""
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
