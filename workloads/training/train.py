"""Quantization-aware training on the offline data sets, with the paper's schedule.

Schedule (METHOD.md §1): Adam (lr 1e-3) for 1–2-bit models — ternary counts as 2 — and SGD (lr 0.1,
momentum 0.9) for ≥ 3 bits and for the float model; cosine decay to zero over the run. Low-bit models
start from the next higher precision's checkpoint (float → W8A8 → W4A4 → W3A3 → W2A2 → W1A1): its
latent float weights and BatchNorm statistics are loaded, then the weight scales are re-fitted for
the new width (`WeightQuant.init_scale`) and the activation ranges re-calibrated on training images.
Training images get a random shift of up to `shift` pixels (zero fill), the only augmentation. After the
last epoch (and SQ's export) BatchNorm statistics are re-estimated exactly for the final weights.

`train()` is what `bitbranch train` and bench/accuracy.py run: one model, one checkpoint
(workloads.training.checkpoint), one JSON-lines log, a progress bar on stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bitbranch.compiler.precision import parse_precision
from bitbranch.compiler.qat import QuantConv2d, QuantLinear
from bitbranch.compiler.quantize import calibrate
from bitbranch.compiler.smartquant import LayerChoice, SmartQuant, SQConfig, memory
from bitbranch.compiler.threads import torch_threads

from ..progress import Progress
from . import checkpoint, datasets

# torch threads for training. One, not the machine's two cores: measured on this 2-core machine while other
# jobs ran, a LeNet-5 QAT step took 53-63 ms on one thread and 330-1270 ms on two (OpenMP threads spinning
# on a busy core); on an idle machine two threads gain far less than they can lose. `--threads 2` to try.
THREADS = 1
SHIFT = {"mnist": 2, "digits": 1}  # augmentation: random translation in pixels
EPOCHS = {"mnist": 15, "digits": 30}
CALIB_BATCHES = 8


@dataclass(frozen=True)
class Schedule:
    optimizer: str  # 'adam' | 'sgd'
    lr: float
    epochs: int
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 0.0


def precision_bits(precision: str | dict) -> int | None:
    """The width that picks the optimizer: max(weight planes, activation bits); None for float."""
    if precision == checkpoint.FLOAT:
        return None
    spec = parse_precision(precision)
    widths = [spec.weight.bits, spec.act_bits]
    for values in spec.layers.values():
        widths += [values["w"].bits] if "w" in values else []
        widths += [values["a"]] if "a" in values else []
    return max(widths)


def schedule_for(precision: str | dict, epochs: int) -> Schedule:
    bits = precision_bits(precision)
    if bits is not None and bits <= 2:
        return Schedule("adam", 1e-3, epochs)
    return Schedule("sgd", 0.1, epochs, weight_decay=5e-4 if bits is None else 0.0)


# --- data ------------------------------------------------------------------------------------------------


def shifted(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Each image translated by a random (dy, dx) in [-shift, shift]², zero fill."""
    if shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift))
    offs = torch.randint(0, 2 * shift + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offs)])


def batches(images: np.ndarray, labels: np.ndarray, size: int, gen: torch.Generator | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, labels) batches; shuffled when a generator is given."""
    order = torch.randperm(len(images), generator=gen) if gen is not None else torch.arange(len(images))
    for i in range(0, len(images), size):
        idx = order[i : i + size].numpy()
        yield datasets.to_inputs(images[idx]), torch.from_numpy(labels[idx])


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Predicted classes (the model in eval mode: BatchNorm running statistics, fake quantization)."""
    was = model.training
    model.eval()
    out = [model(x).argmax(dim=1).numpy() for x, _ in batches(images, np.zeros(len(images), np.int64), batch)]
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    return float((predict(model, images) == labels).mean())


# --- model set-up ----------------------------------------------------------------------------------------


def _is_quantizer_state(key: str) -> bool:
    return key.endswith(("wq.alpha", ".clip"))


def init_from(model: nn.Module, state: dict[str, torch.Tensor], split: datasets.Split) -> None:
    """Latent weights and BatchNorm from a (higher precision or float) checkpoint; scales refitted."""
    weights = {k: v for k, v in state.items() if not _is_quantizer_state(k)}
    own = model.state_dict()
    wrong = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
    if not wrong:
        missing, unexpected = model.load_state_dict(weights, strict=False)
        wrong = unexpected + [k for k in missing if not _is_quantizer_state(k) and not k.startswith("input_aq.")]
    if wrong:
        raise ValueError(f"checkpoint does not fit the network: {', '.join(wrong[:6])}")
    quant = [m for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    for m in quant:
        m.wq.init_scale(m.weight)
    if quant:
        calibrate(model, batches(split.train_images, split.train_labels, 64), max_batches=CALIB_BATCHES)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, split: datasets.Split, batch: int = 200) -> None:
    """Exact BatchNorm statistics of the final weights: one pass over the (unshifted) training images.

    The running averages (momentum 0.1) lag the last updates; they are folded into the integer requant,
    so they should describe the weights that ship. Measured on MNIST: +0.2 to +0.9 points for quantized
    models, and less epoch-to-epoch noise at 1 bit.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was = model.training
    model.train()
    for x, _ in batches(split.train_images, split.train_labels, batch):
        model(x)
    model.train(was)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum


# --- the loop --------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    seconds: float
    history: list[dict] = field(default_factory=list)


def _optimizer(model: nn.Module, sched: Schedule, sq: SmartQuant | None) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups: list[dict[str, Any]] = [{"params": decay, "weight_decay": sched.weight_decay},
                                    {"params": rest, "weight_decay": 0.0}]
    if sq is not None:
        groups.append({"params": list(sq.parameters()), "weight_decay": 0.0, "lr": sq.config.theta_lr})
    if sched.optimizer == "adam":
        return torch.optim.Adam(groups, lr=sched.lr)
    return torch.optim.SGD(groups, lr=sched.lr, momentum=sched.momentum)


@dataclass
class _Step:
    """What one training run needs on every batch."""

    model: nn.Module
    opt: torch.optim.Optimizer
    lr_sched: torch.optim.lr_scheduler.LRScheduler
    sq: SmartQuant | None
    shift: int
    gen: torch.Generator

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """One optimizer step; returns [loss·n, penalty·n, correct, n]."""
        if self.sq is not None:
            self.sq.sync()  # the forward pass quantizes with the current Δ(β)
        out = self.model(shifted(x, self.shift, self.gen))
        loss = F.cross_entropy(out, y)
        pen = self.sq.penalty() if self.sq is not None else torch.zeros(())
        self.opt.zero_grad(set_to_none=True)
        (loss + pen).backward()
        self.opt.step()
        self.lr_sched.step()
        n = len(y)
        return np.array([loss.item() * n, pen.item() * n, (out.argmax(1) == y).sum().item(), n])


def _cosine(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + np.cos(np.pi * k / max(steps, 1))))


def fit(model: nn.Module, split: datasets.Split, sched: Schedule, label: str, log: Path | None = None,
        sq: SmartQuant | None = None, shift: int = 0, seed: int = 0) -> FitResult:
    """Train in place; one JSON line per epoch in `log` (loss, penalty, accuracies, SQ angles)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = _optimizer(model, sched, sq)
    steps = sched.epochs * -(-len(split.train_images) // sched.batch_size)
    step = _Step(model, opt, _cosine(opt, steps), sq, shift, gen)
    result, t0 = FitResult(0.0), time.perf_counter()
    with Progress(steps, f"train {label}") as bar:
        for epoch in range(1, sched.epochs + 1):
            model.train()
            sums = np.zeros(4)  # loss, penalty, correct, seen
            for x, y in batches(split.train_images, split.train_labels, sched.batch_size, gen):
                sums += step(x, y)
                bar.update(text=f"epoch {epoch}/{sched.epochs} loss {sums[0] / sums[3]:.3f}")
            if sq is not None:
                sq.sync()
            row = {"event": "epoch", "label": label, "epoch": epoch, "loss": sums[0] / sums[3],
                   "penalty": sums[1] / sums[3], "train_acc": sums[2] / sums[3],
                   "test_acc": accuracy(model, split.test_images, split.test_labels),
                   "seconds": time.perf_counter() - t0}
            if sq is not None:
                row["sq"] = [c.to_dict() for c in sq.choices()]
            result.history.append(row)
            _log(log, row)
    result.seconds = time.perf_counter() - t0
    return result


def _log(log: Path | None, row: dict) -> None:
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")


# --- one model, end to end ---------------------------------------------------------------------------------


@dataclass
class TrainOutcome:
    """A trained model, where it was saved, and what it scored."""

    model: nn.Module
    checkpoint: Path
    info: dict[str, Any]

    @property
    def test_acc(self) -> float:
        return self.info["test_acc"]

    @property
    def sq_choices(self) -> list[LayerChoice]:
        return [LayerChoice(**{k: c[k] for k in LayerChoice.__dataclass_fields__}) for c in self.info.get("sq", [])]


def train(dataset: str, precision: str, out: Path, epochs: int | None = None, init: Path | None = None,
          sq: SQConfig | bool = False, split: datasets.Split | None = None, name: str | None = None,
          seed: int = 0, threads: int = THREADS) -> TrainOutcome:
    """Train `precision` ('float', 'W2A2', ...; with `sq` the activation bits of it) and save it as out/name.

    `init` is a checkpoint (float or higher precision) to start from; `split` overrides the data set's
    standard split (tests use a subset).
    """
    with torch_threads(threads):
        return _train(dataset, precision, out, epochs, init, sq, split, name, seed)


def _finish(model: nn.Module, smart: SmartQuant | None, act_bits: int | None, split: datasets.Split,
            info: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """SQ export (recorded in info), exact BatchNorm statistics; returns the state dicts to save."""
    states = {}
    if smart is not None:
        mapping, choices = smart.export(act_bits)
        info.update(precision=mapping, sq=[c.to_dict() for c in choices], sq_config=asdict(smart.config),
                    deltas={c.path: c.delta for c in choices if c.depth == "ternary"},
                    memory_bits=asdict(memory(choices)))
        states["sq"] = smart.state_dict()
    recalibrate_bn(model, split)
    return {"model": model.state_dict(), **states}


def _train(dataset: str, precision: str, out: Path, epochs: int | None, init: Path | None, sq: SQConfig | bool,
           split: datasets.Split | None, name: str | None, seed: int) -> TrainOutcome:
    split = split or datasets.load(dataset)
    sq_config = sq if isinstance(sq, SQConfig) else (SQConfig() if sq else None)
    act_bits = None if precision == checkpoint.FLOAT else parse_precision(precision).act_bits
    build_precision = f"WTA{act_bits}" if sq_config is not None else precision
    name = name or ("sq" if sq_config is not None else precision).lower()
    torch.manual_seed(seed)  # the network's initial weights
    model = checkpoint.build(dataset, build_precision)
    if init is not None:
        init_from(model, checkpoint.load(init)[0]["model"], split)
    elif build_precision != checkpoint.FLOAT:
        calibrate(model, batches(split.train_images, split.train_labels, 64), max_batches=CALIB_BATCHES)
    smart = SmartQuant(model, sq_config) if sq_config is not None else None
    sched = schedule_for(build_precision, epochs or EPOCHS[dataset])
    log = out / "train.jsonl"
    _log(log, {"event": "start", "label": name, "dataset": dataset, "precision": build_precision,
               "schedule": asdict(sched), "init": str(init) if init else None,
               "sq": asdict(sq_config) if sq_config else None, "train": len(split.train_images),
               "test": len(split.test_images)})
    result = fit(model, split, sched, name, log, smart, SHIFT.get(dataset, 0), seed)
    info: dict[str, Any] = {"dataset": dataset, "precision": build_precision, "schedule": asdict(sched),
                            "init": str(init) if init else None, "train_seconds": result.seconds,
                            "train_images": len(split.train_images), "test_images": len(split.test_images)}
    states = _finish(model, smart, act_bits, split, info)
    info["test_acc"] = accuracy(model, split.test_images, split.test_labels)
    path = checkpoint.save(out / name, states, info)
    _log(log, {"event": "done", "label": name, "test_acc": info["test_acc"], "seconds": result.seconds,
               "checkpoint": str(path)})
    return TrainOutcome(model.eval(), path, info)
