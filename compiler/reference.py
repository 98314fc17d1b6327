"""Compare the QAT model (fake quant, float) with the golden integer graph, tensor by tensor.

`qat_values` runs the QAT model with an fx Interpreter and reads every tensor the IR has (through
graph.meta['fx_nodes']) in IR form: levels (H, W, C) for level tensors, real/scale (unrounded) for
int32 tensors, floats for host outputs. With `golden` values it *teacher-forces*: each recorded
tensor is replaced by the golden one before later layers read it, so every layer is compared on
identical inputs and a rounding flip in one layer cannot cascade into the next ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import fx, nn

from bitbranch.isa.rounding import round_half_up

from . import ir
from .frontend import capture


def image_levels(x: torch.Tensor) -> np.ndarray:
    """Golden input of an image batch (1, C, H, W) in [0, 1]: u = round_half_up(255·x), (H, W, C) uint8."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"image of shape {tuple(x.shape)}: expected (1, C, H, W)")
    u = round_half_up(x.detach().to(torch.float64).clamp(0, 1) * 255)
    return u[0].permute(1, 2, 0).numpy().astype(np.uint8)


def _to_ir(t: ir.Tensor, y: torch.Tensor, host: bool) -> np.ndarray:
    y = y.detach().to(torch.float64)
    if host:
        return y[0].numpy()
    hwc = y[0].permute(1, 2, 0) if y.dim() == 4 else y.reshape(t.shape)
    if t.bits == ir.INT32:
        return (hwc / t.scale).numpy()
    return round_half_up(hwc / t.scale + t.zero).numpy().astype(np.int64)


def _from_ir(t: ir.Tensor, u: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    v = torch.from_numpy(np.asarray(u, dtype=np.float64))
    real = v * t.scale - t.scale * t.zero  # the QAT quantizer's u·s + lo
    real = real.permute(2, 0, 1)[None] if like.dim() == 4 else real.reshape(like.shape)
    return real.to(like.dtype)


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, graph: ir.Graph, golden: dict[str, np.ndarray] | None):
        super().__init__(gm)
        self.by_node = {n: t for t, n in graph.meta["fx_nodes"].items()}
        self.irg, self.golden = graph, golden
        self.host = {h["output"] for h in graph.meta.get("host_ops", [])}
        self.seen: dict[str, np.ndarray] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        name = self.by_node.get(n.name)
        if name is None or not isinstance(out, torch.Tensor):
            return out
        t = self.irg.tensors[name]
        self.seen[name] = _to_ir(t, out, name in self.host)
        if self.golden is not None and name in self.golden and name not in self.host:
            return _from_ir(t, self.golden[name], out)
        return out


@torch.no_grad()
def qat_values(qat_model: nn.Module, graph: ir.Graph, x: torch.Tensor,
               golden: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The QAT model's value of every IR tensor for image x (teacher-forced when golden is given)."""
    gm = capture(qat_model, tuple(graph.meta["input_shape"])).gm  # the same trace (node names) to_ir used
    was = qat_model.training
    qat_model.eval()
    try:
        rec = _Recorder(gm, graph, golden)
        rec.run(x.to(next(qat_model.parameters()).dtype))
    finally:
        qat_model.train(was)
    return rec.seen


def golden_values(graph: ir.Graph, x: torch.Tensor) -> dict[str, np.ndarray]:
    """run_graph on the quantized image."""
    return ir.run_graph(graph, {graph.inputs[0]: image_levels(x)})
