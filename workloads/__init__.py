"""Workloads: real networks at their real input sizes, their host-side work, reports and sweeps.

    from bitbranch.workloads import get, names
    spec = get("resnet18")          # or get("path/to/file.py:factory")
    model = spec.build()            # plain torch, eval mode

Attributes load lazily, so `import workloads.cli` (the CLI's argument setup) does not import torch.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"TASKS", "WorkloadSpec", "get", "load_user_model", "names"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'workloads' has no attribute '{name}'")
