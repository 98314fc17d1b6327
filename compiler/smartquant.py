"""Smart Quantization (Razani et al., arXiv 1909.12205): per-layer binary or ternary weights from one run.

The paper's exact formula was not available; this is the reconstruction of ../shared/METHOD.md §2:
  - every conv / linear layer has a trainable angle β ∈ [π/4, π/2), parametrised as
    tan β = 1 + exp(θ) (θ unconstrained), so β stays in range and tan β, cot β are exact;
  - elementwise penalty r(x) = min(|(|x| − 1)|^p, tan β·|x|^p), p = 2, on the weights divided by the
    layer's trainable per-channel scale α (the `WeightQuant` scale; detached here so the penalty cannot
    shrink every weight into the zero well by growing α — BatchNorm would absorb that for free);
  - layer penalty λ·mean(r) + γ·cot β. The well at 0 vanishes as β → π/2 (binary); γ pushes there
    (less memory), weights that stay near zero pull β back (∂/∂β of tan β·|x|^p) where the data keep
    them there;
  - zero threshold Δ(β) = 1/(1 + tan β^(1/p)), where the two wells meet (0.5 at β = π/4). During
    training every layer runs ternary with threshold Δ(β), so the forward pass sees what export makes;
  - export: a layer whose share of |w/α| ≤ Δ is under `cutoff` becomes binary (1 bit, {−α, +α}),
    else ternary (two weight planes with equal coefficients, {−α, 0, +α}).

`SmartQuant` holds the angles (its state dict is saved beside the model's) and drives the model's
weight quantizers; `export` switches them for good and returns the per-layer precision mapping that
`quantize_model` / the compiler accept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .qat import QuantConv2d, QuantLinear


@dataclass(frozen=True)
class SQConfig:
    """Regularizer weights and the angles' start. γ is the memory knob: larger γ, more binary layers.

    The angles start near π/2 (θ = 16: Δ ≈ 3e-4, every layer effectively binary). Under Adam a weight that
    falls into the zero well is held at ≈ 0 from then on (the well narrows as β grows but gets steeper),
    so the share of zeros can only grow: starting ternary (Δ ≈ 0.5) freezes ~40% zeros into every layer
    in the first epoch and nothing can become binary any more. Starting binary, a layer turns ternary
    when its weights gather in the zero well (λ's pull on β beats γ). Defaults were picked on MNIST
    (LeNet-5, from the W2A2 checkpoint): λ = 1 / γ = 0.003 made every layer binary, λ = 0.1 / γ = 3e-4 only
    the first and last; see docs/results.md.
    """

    lam: float = 0.3
    gamma: float = 0.001
    p: int = 2
    cutoff: float = 0.02  # largest share of zero-well weights that is still exported as binary
    theta_init: float = 16.0  # tan β = 1 + e^16 ≈ 8.9e6
    theta_lr: float = 0.05  # Adam moves θ by ≈ lr per step; the angles need to travel ~10 in one run


@dataclass(frozen=True)
class LayerChoice:
    """What Smart Quantization decided for one layer."""

    path: str
    weights: int
    beta: float  # radians
    delta: float
    zero_share: float
    depth: str  # 'binary' | 'ternary'

    @property
    def bits(self) -> int:
        return 1 if self.depth == "binary" else 2

    def to_dict(self) -> dict:
        return {**asdict(self), "beta_deg": math.degrees(self.beta), "bits": self.bits}


def quant_layers(model: nn.Module) -> list[tuple[str, QuantConv2d | QuantLinear]]:
    return [(p, m) for p, m in model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def zero_threshold(tan_beta: torch.Tensor, p: int) -> torch.Tensor:
    """Δ(β) = 1/(1 + tan β^(1/p)): where (1 − |x|)^p = tan β·|x|^p."""
    return 1.0 / (1.0 + tan_beta ** (1.0 / p))


def well_penalty(x: torch.Tensor, tan_beta: torch.Tensor, p: int) -> torch.Tensor:
    """r(x) = min(|(|x| − 1)|^p, tan β·|x|^p), elementwise."""
    a = x.abs()
    return torch.minimum((a - 1).abs() ** p, tan_beta * a**p)


def scaled_weights(m: QuantConv2d | QuantLinear) -> torch.Tensor:
    """w/α per output channel (α detached, unclipped: weights past ±1 are pulled back to the ±1 well)."""
    alpha = m.wq.alpha.detach().abs().clamp_min(1e-12).view(-1, *([1] * (m.weight.dim() - 1)))
    return m.weight / alpha


class SmartQuant(nn.Module):
    """The per-layer angles of a QAT model whose weight quantizers are all ternary."""

    def __init__(self, model: nn.Module, config: SQConfig | None = None) -> None:
        super().__init__()
        self.config = config or SQConfig()
        layers = quant_layers(model)
        if not layers:
            raise ValueError("Smart Quantization: the model has no quantized conv / linear layers")
        self.paths = [p for p, _ in layers]
        self._layers = [m for _, m in layers]  # a plain list: the model's parameters are not ours to save
        self.theta = nn.Parameter(torch.full((len(layers),), float(self.config.theta_init)))
        self.sync()

    def tan_beta(self) -> torch.Tensor:
        return 1.0 + torch.exp(self.theta)

    def betas(self) -> torch.Tensor:
        """The angles in radians (float64: near π/2, float32 would round β up to π/2 itself)."""
        return torch.atan(self.tan_beta().detach().double())

    def deltas(self) -> torch.Tensor:
        return zero_threshold(self.tan_beta(), self.config.p)

    @torch.no_grad()
    def sync(self) -> None:
        """Make every layer ternary with its current Δ(β) (call before each forward pass)."""
        for m, d in zip(self._layers, self.deltas().tolist(), strict=True):
            m.wq.set_mode("ternary", delta=d)

    def penalty(self) -> torch.Tensor:
        """Σ_layers λ·mean(r(w/α)) + γ·cot β."""
        c = self.config
        tan = self.tan_beta()
        wells = torch.stack([well_penalty(scaled_weights(m), tan[i], c.p).mean() for i, m in enumerate(self._layers)])
        return (c.lam * wells + c.gamma / tan).sum()

    @torch.no_grad()
    def choices(self) -> list[LayerChoice]:
        """Per layer β, Δ, share of weights in the zero well, and the depth export would choose."""
        out = []
        for path, m, beta, delta in zip(self.paths, self._layers, self.betas().tolist(), self.deltas().tolist(),
                                        strict=True):
            share = float((scaled_weights(m).abs() <= delta).double().mean())
            depth = "binary" if share < self.config.cutoff else "ternary"
            out.append(LayerChoice(path, m.weight.numel(), beta, delta, share, depth))
        return out

    @torch.no_grad()
    def export(self, act_bits: int) -> tuple[dict, list[LayerChoice]]:
        """Switch each layer to its chosen depth for good; returns (precision mapping, choices).

        The mapping (`{"default": "WTA<k>", "layers": {path: {"w": 1}}}`) rebuilds the same quantizers
        with `quantize_model`; ternary layers also need their Δ (`apply_deltas`).
        """
        choices = self.choices()
        for m, ch in zip(self._layers, choices, strict=True):
            if ch.depth == "binary":
                m.wq.set_mode("mbit", bits=1)
            else:
                m.wq.set_mode("ternary", delta=ch.delta)
        layers = {ch.path: {"w": 1} for ch in choices if ch.depth == "binary"}
        return {"default": f"WTA{act_bits}", "layers": layers}, choices


def apply_deltas(model: nn.Module, deltas: dict[str, float]) -> None:
    """Restore exported ternary thresholds (they are not part of the model's state dict)."""
    modules = dict(quant_layers(model))
    for path, d in deltas.items():
        wq = modules[path].wq
        if not wq.ternary:
            raise ValueError(f"layer '{path}' is not ternary; cannot set its zero threshold")
        wq.delta = float(d)


@dataclass(frozen=True)
class MemoryReport:
    """Weight-plane memory in bits: the SQ mix against all-ternary and all-binary."""

    mixed: int
    ternary: int
    binary: int

    @property
    def saving_vs_ternary(self) -> float:
        return 1.0 - self.mixed / self.ternary


def memory(choices: list[LayerChoice]) -> MemoryReport:
    n = sum(c.weights for c in choices)
    return MemoryReport(sum(c.weights * c.bits for c in choices), 2 * n, n)


def choice_table(choices: list[LayerChoice]) -> str:
    """A markdown table of the per-layer decisions."""
    rows = ["| layer | weights | β (deg) | Δ | zero share | depth |", "|---|---:|---:|---:|---:|---|"]
    rows += [f"| {c.path} | {c.weights} | {math.degrees(c.beta):.2f} | {c.delta:.4f} | {c.zero_share:.2%} | "
             f"{c.depth} |" for c in choices]
    return "\n".join(rows)
