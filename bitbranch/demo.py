"""`bitbranch demo` (what `make demo` runs): a real torch conv stack on a real photo, end to end.

torch model (ResNet-18 stem shapes) -> post-training W2A2 quantization (8-bit input planes) ->
integer golden model -> ISA program artifact -> cycle-accurate simulation -> every output integer
compared with the golden model, cycles and utilization reported per layer.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from isa.hwconfig import DEFAULT_PRESET, get_config


def add_arguments_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hw", default=DEFAULT_PRESET, help=f"hardware preset (default {DEFAULT_PRESET})")
    parser.add_argument("--out", default="out/demo", help="artifact directory to write (default out/demo)")
    parser.add_argument("--size", type=int, default=224, help="input image size (default 224)")
    parser.add_argument("--bits", default="W2A2", help="precision WmAk of the layers after the first")


def load_photo(size: int) -> np.ndarray:
    """One of scikit-learn's bundled real photos, center-cropped and resized to size x size, uint8 HWC."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    img = load_sample_images().images[0]  # china.jpg, 427 x 640
    h, w, _ = img.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(img[top : top + side, left : left + side])
    return np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def parse_bits(spec: str) -> tuple[int, int]:
    s = spec.upper()
    if not (s.startswith("W") and "A" in s):
        raise ValueError(f"precision '{spec}' is not of the form WmAk (e.g. W2A2)")
    m, k = s[1:].split("A", 1)
    return int(m), int(k)


def build_model(seed: int = 0):
    """Float layers with the shapes of ResNet-18's stem and first block convolutions (default init, seeded)."""
    import torch

    torch.manual_seed(seed)
    return [
        ("conv1", torch.nn.Conv2d(3, 64, 7, stride=2, padding=3)),
        ("maxpool", torch.nn.MaxPool2d(3, stride=2, padding=1)),
        ("layer1.0.conv1", torch.nn.Conv2d(64, 64, 3, stride=1, padding=1)),
        ("layer1.0.conv2", torch.nn.Conv2d(64, 64, 3, stride=1, padding=1)),
    ]


def quantize_demo(photo: np.ndarray, mbits: int, kbits: int):
    """Post-training quantization of the model on the photo into an integer IR graph.

    Returns the graph, its input values, and per layer the share of golden levels within one level of
    the float layer's output quantized alike (calibrated on the photo).
    """
    import torch

    from compiler import ir
    from compiler.quantize import conv_from_torch

    x = ir.Tensor("image", photo.shape, 8, 1.0 / 255)
    tensors, ops, agreement = {x.name: x}, [], []
    u = photo
    for name, module in build_model():
        if isinstance(module, torch.nn.MaxPool2d):
            op = ir.Pool(name, [x.name], name, "max", module.kernel_size, module.stride, module.padding)
            out = ir.Tensor(name, ir.run_op(op, [u]).shape, x.bits, x.scale)
            agreement.append(1.0)  # max pooling of levels is exact
        else:
            with torch.no_grad():
                xf = torch.from_numpy(u.astype(np.float32) * x.scale).permute(2, 0, 1)[None]
                ref = torch.relu(module(xf))[0].permute(1, 2, 0).double().numpy()
            top = (1 << kbits) - 1
            op, out = conv_from_torch(module, name, x, mbits, kbits, float(np.percentile(ref, 99.9)) / top or 1.0)
            golden = ir.run_op(op, [u])
            agreement.append(float(np.mean(np.abs(golden - np.clip(np.round(ref / out.scale), 0, top)) <= 1)))
        ops.append(op)
        tensors[out.name] = out
        u, x = ir.run_op(op, [u]), out
    graph = ir.Graph(tensors, ops, ["image"], [x.name], {"model": "resnet18-stem"})
    return graph, {"image": photo}, agreement


def cmd_demo(args: argparse.Namespace) -> int:
    from isa.artifact import load_artifact, save_artifact
    from simulator import run

    hw = get_config(args.hw)
    mbits, kbits = parse_bits(args.bits)
    print(f"bitbranch demo: ResNet-18 stem at W{mbits}A{kbits} (8-bit input planes) on a real photo")
    print(f"hardware: {hw.name} — {hw.description}")
    from compiler.lower import lower_graph

    t0 = time.perf_counter()
    graph, inputs, agreement = quantize_demo(load_photo(args.size), mbits, kbits)
    art = lower_graph(graph, hw, inputs, meta={"model": "resnet18-stem", "precision": f"W{mbits}A{kbits}",
                                               "input": "sklearn china.jpg"})
    path = save_artifact(art, Path(args.out))
    compile_s = time.perf_counter() - t0
    art = load_artifact(path)
    print(f"compiled {len(art.layers)} layers -> {len(art.program)} instructions, "
          f"{len(art.dram) / 1e6:.2f} MB DRAM image in {compile_s:.1f} s ({path})")
    result = run(art)
    print()
    print("util = useful binary MACs (layer MACs x weight bits x activation bits) / peak over the layer's cycles;")
    print("golden~float = share of output levels within one level of the float layer quantized alike.")
    print(f"{'layer':<16} {'out shape':<14} {'MMACs':>7} {'cycles':>10} {'util':>6} {'golden~float':>13}")
    useful = 0
    for layer, agree in zip(art.layers, agreement, strict=True):
        first, end = layer["instructions"]
        cycles, _ = result.span(first, end)
        bitops = layer["macs"] * layer["bits"].get("w", 0) * layer["bits"]["a_in"]
        useful += bitops
        shape = "x".join(map(str, layer["out_shape"]))
        print(f"{layer['name']:<16} {shape:<14} {layer['macs'] / 1e6:>7.1f} {cycles:>10,} "
              f"{bitops / (hw.peak_bitops_per_cycle * cycles):>6.1%} {agree:>12.1%}")
    ms = result.cycles / (hw.clock_mhz * 1e3)
    print()
    print(f"total: {result.cycles:,} cycles = {ms:.3f} ms at {hw.clock_mhz:g} MHz ({1e3 / ms:.0f} frames/s); "
          f"array utilization {useful / (hw.peak_bitops_per_cycle * result.cycles):.1%}; "
          f"DRAM {result.dram_read / 1e6:.2f} MB read, "
          f"{result.dram_written / 1e6:.2f} MB written; simulated in {result.wall_seconds:.2f} s")
    match = result.outputs_match_golden or {}
    ok = bool(match) and all(match.values())
    print(f"bit-exact vs golden: {'yes' if ok else 'NO'} ({', '.join(f'{k}: {v}' for k, v in match.items())})")
    return 0 if ok else 1
