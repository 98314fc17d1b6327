"""torchvision and timm classifiers, unchanged, as workloads: `torchvision:resnet18`, `timm:resnet18`.

Optional extra (`pip install -c constraints.txt -e '.[zoo]'`); the compiler never imports torchvision
or timm — only this module does, and only when such a name is asked for.

Why a compatibility shim: PyPI has only the CUDA build of torchvision 0.28.0. On the CPU torch this
project pins, its compiled ops (`torchvision/_C.so`) fail to load, and `import torchvision` then
dies in `torchvision._meta_registrations`, which registers a fake kernel for the op
`torchvision::nms` that was never defined. `install_torchvision_compat()` defines that op through
`torch.library`, with the pure-Python greedy NMS the detection post-processing already uses, before
torchvision is imported. Models (pure torch) then import and run; the other compiled ops (roi_align,
deform_conv, image decoding) stay unavailable. When the compiled ops do load (a matching build), the
shim does nothing.

Models are built with random weights (`weights=None` / `pretrained=False`): nothing is downloaded.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

from ..post.boxes import nms as _nms_greedy

SOURCES = ("torchvision", "timm")
EXTRA_HINT = "install the optional extra: pip install -c constraints.txt -e '.[zoo]' (see docs/workloads.md)"
_LIBS: list[torch.library.Library] = []  # keeps the op definition alive


class ZooUnavailable(ValueError):
    """torchvision / timm is not installed (the `zoo` extra): a MODEL name the CLI cannot resolve here."""


def _op_defined(namespace: str, op: str) -> bool:
    try:
        return hasattr(getattr(torch.ops, namespace), op)
    except (AttributeError, RuntimeError):
        return False


def _compiled_ops_load() -> bool:
    """Whether torchvision's own `_C` extension loads on this torch (it then defines nms itself)."""
    found = importlib.util.find_spec("torchvision")
    if found is None or not found.submodule_search_locations:
        return False
    libs = sorted(Path(next(iter(found.submodule_search_locations))).glob("_C*.so"))
    if not libs:
        return False
    try:
        torch.ops.load_library(str(libs[0]))
    except (OSError, RuntimeError):
        return False
    return True


def _nms_kernel(dets: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """torchvision.ops.nms semantics: kept indices by decreasing score (xyxy boxes, IoU > threshold drops).
    Quantized inputs (qnms) are compared on their dequantized values."""
    dets, scores = (t.dequantize() if t.is_quantized else t for t in (dets, scores))
    return _nms_greedy(dets.detach().cpu(), scores.detach().cpu(), float(iou_threshold)).to(dets.device)


def install_torchvision_compat() -> bool:
    """Define `torchvision::nms` (and `qnms`) in pure Python when torchvision's compiled ops cannot load.

    Must run before the first `import torchvision`; idempotent. Returns True when it defined the op.
    """
    if "torchvision" in sys.modules or _op_defined("torchvision", "nms") or _compiled_ops_load():
        return False
    lib = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):  # the two ops torchvision registers fake kernels for at import
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.impl(op, _nms_kernel, "CompositeExplicitAutograd")
    _LIBS.append(lib)
    return True


def import_source(source: str) -> ModuleType:
    """`torchvision` or `timm`, imported with the compatibility shim; ZooUnavailable when not installed."""
    if source not in SOURCES:
        raise ValueError(f"unknown model source '{source}' (known: {', '.join(SOURCES)})")
    for dist in ("torchvision", source):
        if importlib.util.find_spec(dist) is None:
            raise ZooUnavailable(f"'{source}:...' models need {dist}, which is not installed; {EXTRA_HINT}")
    install_torchvision_compat()
    return importlib.import_module(source)


def model_names(source: str) -> list[str]:
    """Classification model names the source offers (torchvision's classification models, timm's list)."""
    lib = import_source(source)
    if source == "torchvision":
        return sorted(lib.models.list_models(module=lib.models))
    return list(lib.list_models())


def build(ref: str) -> nn.Module:
    """`torchvision:NAME` / `timm:NAME` -> the model with random weights (eval mode is set by the caller)."""
    source, _, name = ref.partition(":")
    lib = import_source(source)
    known = model_names(source)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=6)
        raise ValueError(f"{source} has no classification model '{name}'"
                         + (f" (similar: {', '.join(close)})" if close else ""))
    if source == "torchvision":
        return lib.models.get_model(name, weights=None)
    return lib.create_model(name, pretrained=False)


def input_shape(ref: str, model: nn.Module) -> tuple[int, int, int]:
    """timm's pretrained_cfg input size when it has one, else torchvision's 3x224x224."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size") if ref.startswith("timm:") else None
    return tuple(int(v) for v in size) if size else (3, 224, 224)


def edge_layers(model: nn.Module) -> list[str]:
    """Module paths of the first Conv2d and the classifier — the last Linear, or in a model without one the last
    Conv2d (SqueezeNet's `classifier.1`: conv -> ReLU -> global average pool): the layers the registry gives 8-bit
    weights."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    fcs = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    last = fcs[-1:] or convs[-1:]
    return convs[:1] + [p for p in last if p not in convs[:1]]


POOLS = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)


def output_pools(model: nn.Module) -> list[str]:
    """Module paths of the pooling layers after a convolutional classifier (a model without Linear): they produce
    the logits. A Linear classifier's logits are int32; these are level tensors, and at the default 2 bits 1000
    logits take 4 values (SqueezeNet), so the registry gives them 8-bit activations."""
    if any(isinstance(m, nn.Linear) for m in model.modules()):
        return []
    modules = list(model.named_modules())
    convs = [i for i, (_, m) in enumerate(modules) if isinstance(m, nn.Conv2d)]
    return [n for n, m in modules[convs[-1] + 1:] if isinstance(m, POOLS)] if convs else []


def is_zoo_name(name: str) -> bool:
    return name.partition(":")[0] in SOURCES and ":" in name
