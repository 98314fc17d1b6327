"""Depthwise cost on the array: a MobileNetV2 stage at ImageNet scale, compiled and simulated.

    .venv/bin/python bench/depthwise.py [--hw edge] [--precision W2A2] [--size 56]

The model is torchvision's MobileNetV2 block structure (1x1 expand + BN + ReLU6, depthwise 3x3 + BN + ReLU6,
linear 1x1 project + BN, residual): `features.3` (24 -> 144 -> 24, stride 1, with the residual) and
`features.4` (24 -> 144 -> 32, stride 2) on a 56x56x24 input, after a stem that makes the 24 channels. The
per-layer table shows cycles and useful utilization (MACs x w x a_in over peak x cycles): a depthwise
3x3 does 9 MACs per output channel, but the array reduces whole 64-channel words (and two passes for M-bit
weights), so its utilization is far below the pointwise layers' (docs/compiler.md, "Grouped convolutions").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([nn.ReLU6(inplace=True)] if act else []))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.conv = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  conv_bn(hidden, cout, 1, act=False))
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class Stage(nn.Module):
    """Stem (3 -> 24, so the blocks see real 24-channel activations) and MobileNetV2's features.3 / .4."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 24, 3)
        self.features = nn.Sequential(InvertedResidual(24, 24, 1, 6), InvertedResidual(24, 32, 2, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.stem(x))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="edge")
    ap.add_argument("--precision", default="W2A2")
    ap.add_argument("--size", type=int, default=56)
    args = ap.parse_args()

    from bitbranch.compiler.compile import compile_model
    from bitbranch.isa.hwconfig import get_config
    from bitbranch.simulator import run
    from bitbranch.workloads.report.summary import build_report, format_console

    torch.manual_seed(0)
    torch.set_num_threads(1)
    hw = get_config(args.hw)
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    art = compile_model(Stage().eval(), args.precision, hw, image)
    t1 = time.perf_counter()
    result = run(art)
    t2 = time.perf_counter()
    assert result.golden_ok, result.outputs_match_golden
    report = build_report(art, result, model="mobilenetv2 features.3-4", precision=args.precision)
    print(format_console(report))
    dw = [r for r in report.layers if r.name.endswith("conv.1.0")]
    pw = [r for r in report.layers if r.name.endswith(("conv.0.0", "conv.2.0"))]
    for what, rows in (("depthwise 3x3", dw), ("pointwise 1x1", pw)):
        cyc, ideal = sum(r.cycles for r in rows), sum(r.ideal_cycles for r in rows)
        print(f"{what}: {cyc:,} cycles, ideal {ideal:,}, useful utilization {ideal / cyc:.1%}")
    print(f"golden == simulator: {result.golden_ok}; compile {t1 - t0:.1f} s, simulate {t2 - t1:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
