"""Integer reference ("golden") semantics of quantized layers, computed in torch.

These functions define what the hardware must produce, in terms of level indices u (activations,
real value s·u for z = 0) and odd weight codes w. They never look at bit-planes: the lowering is
responsible for making planes, padding bits and hardware constants reproduce these integers.
"""

from __future__ import annotations

import numpy as np
import torch

_FLOAT64_EXACT = 2**53


def conv_sum(u: np.ndarray, w: np.ndarray, stride: int = 1, pad: int | tuple[int, int] = 0, dil: int = 1,
             groups: int = 1) -> np.ndarray:
    """S[y, x, o] = Σ u·w over the window; u (H, W, Cin) levels, w (Cout, Cin/groups, kh, kw) codes.

    Grouped (torch semantics): output channel o reads input channels g·Cin/groups .. (g+1)·Cin/groups − 1,
    g = o div (Cout/groups); depthwise is groups = Cin.
    Padding (rows, columns on each side, or one number for both) is level 0 (real zero for z = 0
    activations). Computed as a float64 convolution, which
    is exact while |S| < 2^53; the bound is checked, not assumed.
    """
    u = np.asarray(u, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    bound = int(np.abs(w).sum(axis=(1, 2, 3)).max(initial=0)) * int(u.max(initial=0))
    if bound >= _FLOAT64_EXACT:
        raise ValueError(f"conv_sum: |S| could reach {bound}, beyond exact float64 range")
    x = torch.from_numpy(u.astype(np.float64)).permute(2, 0, 1)[None]
    k = torch.from_numpy(w.astype(np.float64))
    s = torch.nn.functional.conv2d(x, k, stride=stride, padding=pad, dilation=dil, groups=groups)[0]
    return s.permute(1, 2, 0).round().to(torch.int64).numpy()


def _nchw(u: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(u, dtype=np.float64)).permute(2, 0, 1)[None]


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def pool_max(u: np.ndarray, kernel: int | tuple[int, int], stride: int, pad: int = 0,
             extra: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Max of levels over windows; padding is level 0 (never wins over a real level, all >= 0). `extra` = level-0
    rows / columns added after the bottom / right padding: ceil_mode's partial last windows (max over their
    valid part, as torch)."""
    x = torch.nn.functional.pad(_nchw(u), (pad, pad + extra[1], pad, pad + extra[0]), value=0.0)
    return _hwc(torch.nn.functional.max_pool2d(x, kernel, stride)).astype(np.uint8)


def pool_sum(u: np.ndarray, kernel: int | tuple[int, int], stride: int, pad: int = 0,
             extra: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Σ levels over windows (padding level 0 counts as 0), int64: the input of average pooling."""
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    x = torch.nn.functional.pad(_nchw(u), (pad, pad + extra[1], pad, pad + extra[0]), value=0.0)
    s = torch.nn.functional.avg_pool2d(x, (kh, kw), stride) * (kh * kw)
    return np.rint(_hwc(s)).astype(np.int64)


def upsample_nearest(u: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(np.asarray(u), factor, axis=0), factor, axis=1)
