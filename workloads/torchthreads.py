"""`torch_threads(n)` for workloads code: the compiler's (compiler/threads.py), which uses it too."""

from compiler.threads import torch_threads

__all__ = ["torch_threads"]
