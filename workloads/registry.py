"""The workload registry: named networks with their input size, default precision and host work.

`MODEL` on the command line is a registry name (`resnet18`) or `path/to/file.py:factory`. The file
form imports and runs that Python file, exactly as `python file.py` would: it is the user's own code,
run because they asked for it. Artifacts, by contrast, never run code (see isa.artifact).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from .post import classify, segment, ssd, yolo
from .precision import PrecisionSpec, spec

TASKS = ("classify", "detect", "segment")
DEFAULT_BITS = "W2A2"


@dataclass(frozen=True)
class WorkloadSpec:
    """A network as bitbranch runs it. `postprocess` maps the model's float outputs to a host result
    (an object with `summary()` and `to_dict()`); `host_ops` names what it does, for reports."""

    name: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]  # (C, H, W)
    task: str = "classify"
    precision: PrecisionSpec = field(default_factory=lambda: spec(DEFAULT_BITS))
    postprocess: Callable[[Sequence[Tensor]], Any] | None = classify.postprocess
    host_ops: tuple[str, ...] = ("softmax + top-5",)
    description: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"workload '{self.name}': task '{self.task}' not one of {TASKS}")

    def build(self) -> nn.Module:
        """A fresh model in eval mode (Dropout off, BatchNorm on running statistics)."""
        model = call_factory(self.factory, f"workload '{self.name}': factory")
        if not isinstance(model, nn.Module):
            raise FactoryReturnError(f"workload '{self.name}': factory returned {type(model).__name__}, "
                                     "not an nn.Module")
        return model.eval()


def _eight_bit_weights(*paths: str, outputs: tuple[str, ...] = ()) -> PrecisionSpec:
    """W2A2 inside; 8-bit weights for the given layers (the first conv, the classifier); 8-bit activations out of
    the `outputs` layers (the pooling that produces a convolutional classifier's logits)."""
    layers: dict[str, dict[str, int]] = {p: {"w": 8} for p in paths}
    for p in outputs:
        layers.setdefault(p, {})["a"] = 8
    return spec(DEFAULT_BITS, **layers)


def _registry() -> dict[str, WorkloadSpec]:
    from .models import alexnet, fcn, resnet, vgg
    from .models import ssd as ssd_model
    from .models import yolo as yolo_model

    resnet_bits = _eight_bit_weights("conv1", "fc")
    torchvision_bits = _eight_bit_weights("features.0", "classifier.6")  # VGG / AlexNet layout
    specs = [
        WorkloadSpec("resnet18", resnet.resnet18, (3, 224, 224), precision=resnet_bits,
                     description="ResNet-18, ImageNet 224x224, 1000 classes"),
        WorkloadSpec("resnet34", resnet.resnet34, (3, 224, 224), precision=resnet_bits,
                     description="ResNet-34, ImageNet 224x224, 1000 classes"),
        WorkloadSpec("resnet50", resnet.resnet50, (3, 224, 224), precision=resnet_bits,
                     description="ResNet-50 (v1.5), ImageNet 224x224, 1000 classes"),
        WorkloadSpec("vgg16", vgg.vgg16, (3, 224, 224), precision=torchvision_bits,
                     description="VGG-16 (configuration D, no BN), ImageNet 224x224, 1000 classes"),
        WorkloadSpec("alexnet", alexnet.alexnet, (3, 224, 224), precision=torchvision_bits,
                     description="AlexNet (torchvision layer shapes), ImageNet 224x224, 1000 classes"),
        WorkloadSpec("ssd300_resnet18", ssd_model.ssd300_resnet18, (3, 300, 300), "detect",
                     _eight_bit_weights("backbone.conv1"), ssd.postprocess,
                     ("flatten 8732 default boxes", "softmax", "box decode", "class-wise NMS"),
                     "SSD300, ResNet-18 backbone, 21 classes (VOC), 8732 default boxes"),
        WorkloadSpec("yolov3_tiny", yolo_model.yolov3_tiny, (3, 416, 416), "detect",
                     _eight_bit_weights("backbone.0.0"), yolo.postprocess,
                     ("sigmoid", "box decode", "class-wise NMS"),
                     "YOLOv3-tiny 416x416, 80 classes (COCO); ReLU for LeakyReLU, 3x3/1 max pool (see model doc)"),
        WorkloadSpec("fcn_resnet18", fcn.fcn_resnet18, (3, 224, 224), "segment",
                     _eight_bit_weights("backbone.conv1"), segment.postprocess, ("per-pixel argmax",),
                     "FCN, dilated ResNet-18 (output stride 8), 21 classes (VOC), nearest x8 upsample"),
    ]
    return {s.name: s for s in specs}


_SPECS: dict[str, WorkloadSpec] | None = None


def names() -> list[str]:
    return list(_specs())


def _specs() -> dict[str, WorkloadSpec]:
    global _SPECS
    if _SPECS is None:
        _SPECS = _registry()
    return _SPECS


def get(name: str) -> WorkloadSpec:
    """A registered workload, `torchvision:NAME` / `timm:NAME` (workloads.models.zoo), or `file.py:factory`."""
    if ":" in name and name.split(":", 1)[0].endswith(".py"):
        return load_user_model(name)
    from .models import zoo

    if zoo.is_zoo_name(name):
        return zoo_model(name)
    specs = _specs()
    if name not in specs:
        raise ValueError(f"unknown model '{name}' (registered: {', '.join(specs)}; or torchvision:NAME, timm:NAME, "
                         "path/to/file.py:factory)")
    return specs[name]


def zoo_model(ref: str) -> WorkloadSpec:
    """`torchvision:resnet18` / `timm:resnet18`: the library's classifier unchanged, random weights, W2A2 with
    8-bit weights in its first conv and last Linear (as the registered classifiers); without a Linear (SqueezeNet)
    in its last conv, and 8-bit activations out of the pooling after it (its logits)."""
    from .models import zoo

    model = zoo.build(ref)  # built once here for its input size and layer names; the factory builds afresh
    return WorkloadSpec(ref, functools.partial(zoo.build, ref), zoo.input_shape(ref, model),
                        precision=_eight_bit_weights(*zoo.edge_layers(model), outputs=tuple(zoo.output_pools(model))),
                        description=f"{ref.replace(':', ' ', 1)} (unchanged library model, random weights)")


def load_user_model(ref: str, input_shape: tuple[int, int, int] | None = None) -> WorkloadSpec:
    """`path/to/file.py:factory` -> a WorkloadSpec. Runs the file (user code, run knowingly).

    The factory returns an nn.Module (classification by default; input from `input_shape`, the
    module's `input_shape` attribute, or 3x224x224) or a complete WorkloadSpec.
    """
    path_text, _, func = ref.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if not func:
        raise ValueError(f"model '{ref}': name the factory after the file, path/to/file.py:factory")
    module_name = f"bitbranch_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"model file {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # pickling by reference (parallel sweeps) needs the module registered
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise UserCodeError(f"{path}:{exc.lineno}: syntax error in the model file: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything; report it in one line
        sys.modules.pop(module_name, None)
        raise UserCodeError(f"{path}: importing the model file failed: {_where(exc, path)}") from None
    factory = getattr(module, func, None)
    if not callable(factory):
        raise ValueError(f"{path}: no callable '{func}' (defined: {', '.join(_callables(module)) or 'none'})")
    if inspect.signature(factory).parameters and any(
        p.default is inspect.Parameter.empty for p in inspect.signature(factory).parameters.values()
    ):
        raise ValueError(f"{path}:{func} must be callable without arguments")
    made = call_factory(factory, f"{path}:{func}")
    if isinstance(made, WorkloadSpec):
        return made
    if not isinstance(made, nn.Module):
        raise FactoryReturnError(f"{path}:{func} returned {type(made).__name__}; expected an nn.Module or a "
                                 "WorkloadSpec")
    shape = input_shape or tuple(getattr(made, "input_shape", None) or getattr(module, "INPUT_SHAPE", (3, 224, 224)))
    return WorkloadSpec(ref, factory, tuple(int(s) for s in shape)[-3:], description=f"user model {ref}")


class UserCodeError(ValueError):
    """The user's model file or factory failed (import error, exception, wrong return type): one line naming the
    file, the line and the exception, never the traceback of bitbranch around it."""


class FactoryReturnError(UserCodeError, TypeError):
    """A factory returned something other than an nn.Module / WorkloadSpec (a TypeError too, for callers that
    catch that)."""


def _where(exc: BaseException, path: Path | None = None) -> str:
    """`Type: message (file:line)` of an exception raised in user code: the innermost frame in `path` if any,
    else the innermost frame (the user's line is what they need, not bitbranch's)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if path is not None and Path(f.filename).resolve() == path.resolve()]
    frame = (mine or frames or [None])[-1]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    loc = f" ({Path(frame.filename).name}:{frame.lineno})" if frame is not None else ""
    return f"{type(exc).__name__}{': ' + text if text else ''}{loc}"


def call_factory(factory: Callable[[], Any], what: str) -> Any:
    """factory(), with any exception of the user's code turned into one UserCodeError line naming `what`."""
    try:
        return factory()
    except Exception as exc:  # noqa: BLE001 - user code
        path = Path(inspect.getsourcefile(factory) or "") if _has_source(factory) else None
        raise UserCodeError(f"{what}() raised {_where(exc, path)}") from None


def _has_source(obj: object) -> bool:
    try:
        return inspect.getsourcefile(obj) is not None  # type: ignore[arg-type]
    except TypeError:
        return False


def _callables(module: object) -> list[str]:
    return [k for k, v in vars(module).items() if callable(v) and not k.startswith("_") and not isinstance(v, type)]
