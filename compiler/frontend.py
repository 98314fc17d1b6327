"""Graph capture with torch.fx: a torch model -> classified ops the accelerator can (or cannot) run.

Why fx: models written like torchvision / timm (nested Sequentials, BasicBlock / Bottleneck,
`downsample` branches, functional relu / add / cat in `forward`) trace without modification, and
every op keeps its module path for reports and errors. Batch size 1, NCHW on the torch side; shapes
come from ShapeProp on an example input.

Supported (kind): Conv2d, also grouped and depthwise (conv), Linear on a flat input (linear), BatchNorm2d/1d (bn),
ReLU / ReLU6 / Hardtanh / clamp, modules or functions (act), MaxPool2d (maxpool), AvgPool2d,
AdaptiveAvgPool2d and `mean` over H, W (avgpool, square windows), flatten / view / reshape to (1, N)
(flatten), residual `+` (add), torch.cat on channels (cat), nearest Upsample / interpolate
(upsample), Identity / Dropout (identity), channel split / shuffle and other pure channel gathers
(select; see _channel_gathers). Anything else is a host op if only host ops and outputs
follow it, else an error naming the node and module path. Ops the accelerator cannot express at all
(attention, LayerNorm and other normalisation by data statistics, SiLU / GELU / Hardswish, sigmoid gates)
are looked for first, most fundamental first (_OP_RANK): a ViT is refused on its attention, not on the
class-token concatenation met earlier, a ConvNeXt on its LayerNorm, not on its Linear over a 4-D map.

Two normalisations: nn.Identity calls are removed (timm puts them between BatchNorm and the activation
as placeholders for disabled drop-block / anti-aliasing), and an activation directly after max-pooling /
upsampling of a pre-activation (`relu(max_pool2d(conv(x)))`, the classic MNIST example) is moved in
front of the pooling — exact, since both commute with a monotone elementwise function — so both
fuse into the convolution.
"""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

ACCEL_KINDS = {"conv", "linear", "bn", "act", "maxpool", "avgpool", "add", "cat", "upsample", "flatten",
               "identity", "quant", "select"}
# outputs are levels of the inputs' grid
LEVEL_PRESERVING = {"maxpool", "upsample", "flatten", "identity", "cat", "select"}


class FrontendError(ValueError):
    """The model cannot be captured for the accelerator; the message names the fx node and module path."""


@dataclass
class FNode:
    """One fx node, classified. `inputs` are its tensor operands in order."""

    node: fx.Node
    kind: str
    path: str
    inputs: list[fx.Node] = field(default_factory=list)
    shape: tuple[int, ...] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    module: nn.Module | None = None

    @property
    def name(self) -> str:
        return self.node.name

    def where(self) -> str:
        return f"node '{self.node.name}' (module path '{self.path}')"


@dataclass
class Capture:
    gm: fx.GraphModule
    nodes: list[FNode]
    by_node: dict[fx.Node, FNode]

    def of(self, node: fx.Node) -> FNode:
        return self.by_node[node]

    def users(self, fn: FNode) -> list[FNode]:
        return [self.by_node[u] for u in fn.node.users]

    @property
    def host_nodes(self) -> list[FNode]:
        return [f for f in self.nodes if f.kind == "host"]

    @property
    def outputs(self) -> list[fx.Node]:
        out = next(f for f in self.nodes if f.kind == "output")
        return out.inputs


def is_leaf(module: nn.Module) -> bool:
    """Quantized layers mark themselves with `bitbranch_leaf` so fx keeps them as single calls."""
    return bool(getattr(type(module), "bitbranch_leaf", False))


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return is_leaf(m) or super().is_leaf_module(m, qualname)


# --- helpers -----------------------------------------------------------------------------------------


def _arg(node: fx.Node, i: int, name: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _shape(node: Any) -> tuple[int, ...] | None:
    if not isinstance(node, fx.Node):
        return None
    tm = node.meta.get("tensor_meta")
    return tuple(tm.shape) if tm is not None and hasattr(tm, "shape") else None


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if _shape(n) is not None else None)
    return list(dict.fromkeys(found))


def _enclosing(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    keys = [v[0] if isinstance(v, tuple) else k for k, v in stack.items()]
    return keys[-1] if keys else ""


def node_path(node: fx.Node) -> str:
    """Module path of a call_module node; '<enclosing module>.<node name>' for functions."""
    if node.op == "call_module":
        return str(node.target)
    encl = _enclosing(node)
    return f"{encl}.{node.name}" if encl else node.name


def _square(v: Any, what: str, fn: FNode) -> int:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(set(t)) != 1:
        raise FrontendError(f"{fn.where()}: non-square {what} {t} is not supported")
    return int(t[0])


def _target_name(node: fx.Node, module: nn.Module | None) -> str:
    if module is not None:
        return type(module).__name__
    return getattr(node.target, "__name__", str(node.target))


# --- classification ----------------------------------------------------------------------------------

_RELU_FNS = {F.relu, torch.relu, torch.relu_}
_CLAMP_FNS = {torch.clamp, torch.clip}
_ADD_FNS = {operator.add, operator.iadd, torch.add}
_CAT_FNS = {torch.cat, torch.concat, torch.concatenate}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_IDENTITY_FNS = {F.dropout, F.dropout2d}
_META_METHODS = {"size", "dim"}
_SIZE_ARITH = {operator.getitem, operator.floordiv, operator.mul, operator.truediv}  # on sizes (no tensor result)


def _act(fn: FNode, lo: float | None, hi: float | None) -> FNode:
    fn.kind = "act"
    fn.attrs = {"lo": -math.inf if lo is None else float(lo), "hi": math.inf if hi is None else float(hi)}
    if fn.attrs["lo"] > 0 or (fn.attrs["lo"] != 0 and fn.attrs["hi"] == math.inf):
        raise FrontendError(f"{fn.where()}: activation range [{lo}, {hi}] is not supported "
                            "(use ReLU, ReLU6, Hardtanh or clamp with lower bound <= 0 and a finite upper bound)")
    return fn


def _conv(fn: FNode, m: nn.Conv2d) -> FNode:
    if m.padding_mode != "zeros":
        raise FrontendError(f"{fn.where()}: padding_mode '{m.padding_mode}' is not supported (only zeros)")
    pad = conv_padding(m)
    fn.kind = "conv"
    ph, pw = (int(p) for p in pad)
    fn.attrs = {"stride": _square(m.stride, "stride", fn), "pad": ph,
                "dil": _square(m.dilation, "dilation", fn), "groups": int(m.groups),
                **({"pad_w": pw} if pw != ph else {})}  # 1x7 / 7x1 kernels pad rows and columns differently
    return fn


def conv_padding(m: nn.Conv2d) -> tuple[int, int]:
    """Integer padding of a conv, resolving padding='same' / 'valid' (symmetric only)."""
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return 0, 0
        total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
        if any(t % 2 for t in total):
            raise FrontendError(f"conv '{m}': padding='same' with an even window needs asymmetric padding")
        return total[0] // 2, total[1] // 2
    return tuple(m.padding)  # type: ignore[return-value]


def _pool(fn: FNode, mode: str, kernel: Any, stride: Any, pad: Any, ceil_mode: bool, extra_ok: bool) -> FNode:
    if not extra_ok:
        raise FrontendError(f"{fn.where()}: pooling option not supported (dilation, return_indices, "
                            "count_include_pad=False with padding, divisor_override)")
    k = _square(kernel, "pool kernel", fn)
    fn.kind = mode
    fn.attrs = {"kernel": k, "stride": _square(stride if stride not in (None, ()) else kernel, "pool stride", fn),
                "pad": _square(pad, "pool padding", fn)}
    if ceil_mode and not _ceil_changes_nothing(fn):
        fn.attrs.update(_ceil_extra(fn))
    return fn


def _ceil_extra(fn: FNode) -> dict[str, Any]:
    """ceil_mode with a partial last window: the level-0 rows / columns the windows reach past the bottom / right
    padding (`extra`), and how many elements torch divides the partial windows' sums by (`last_count`: rows of the
    last window row, columns of the last window column; the window clipped to input + padding, which is also the
    count of valid elements when padding is 0)."""
    src, out = _shape(fn.inputs[0]), fn.shape
    if src is None or out is None or len(src) != 4 or len(out) != 4:
        raise FrontendError(f"{fn.where()}: ceil_mode pooling needs 4-D input and output")
    k, s, p = fn.attrs["kernel"], fn.attrs["stride"], fn.attrs["pad"]
    extra, last = [], []
    for n, o in zip(src[2:], out[2:], strict=True):
        start = (o - 1) * s - p  # first input row / column of the last window
        if start >= n:
            raise FrontendError(f"{fn.where()}: ceil_mode window starting past the input ({src} -> {out})")
        extra.append(max(0, start + k - n - p))
        last.append(min(start + k, n + p) - start)
    return {"extra": tuple(extra), "last_count": tuple(last)}


def _ceil_changes_nothing(fn: FNode) -> bool:
    """ceil_mode only matters when a last, partial window would start inside the input: when the traced output
    has the floor-mode size (timm's `avg_down` 2x2/2 pools on even maps), it is an ordinary pool."""
    src, out = _shape(fn.inputs[0]), fn.shape
    node = fn.node
    if src is None or out is None or len(src) != 4 or len(out) != 4:
        return False
    m = fn.module
    kernel = m.kernel_size if m is not None else _arg(node, 1, "kernel_size")
    stride = m.stride if m is not None else _arg(node, 2, "stride")
    pad = m.padding if m is not None else _arg(node, 3, "padding", 0)
    k, s, p = (tuple(v) if isinstance(v, (tuple, list)) else (v, v) for v in (kernel, stride or kernel, pad))
    floor = tuple((src[2 + i] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(2))
    return floor == tuple(out[2:])


def _global_pool(fn: FNode) -> FNode:
    """Adaptive average pooling whose output divides the input: a k x k window with stride k."""
    src, out = _shape(fn.inputs[0]), fn.shape
    if src is None or out is None or len(src) != 4:
        raise FrontendError(f"{fn.where()}: adaptive pooling needs a 4-D input")
    h, w = src[2:]
    oh, ow = (out[2], out[3]) if len(out) == 4 else (1, 1)
    if (oh, ow) == (1, 1):  # global: one window of the whole map, square or not (a 240x320 input's 8x10 map)
        fn.kind = "avgpool"
        fn.attrs = {"kernel": h, "stride": h if h == w else 1, "pad": 0, **({"kernel_w": w} if w != h else {})}
        return fn
    if h % oh or w % ow or h // oh != w // ow:
        raise FrontendError(f"{fn.where()}: adaptive pooling {h}x{w} -> {oh}x{ow} is not a square window with stride"
                            " = window")
    fn.kind = "avgpool"
    fn.attrs = {"kernel": h // oh, "stride": h // oh, "pad": 0}
    return fn


def _upsample(fn: FNode, mode: str) -> FNode:
    src, out = _shape(fn.inputs[0]), fn.shape
    if mode != "nearest":
        raise FrontendError(f"{fn.where()}: upsampling mode '{mode}' is not supported (only nearest)")
    if src is None or out is None or len(src) != 4 or out[2] % src[2] or out[3] % src[3] \
            or out[2] // src[2] != out[3] // src[3]:
        raise FrontendError(f"{fn.where()}: upsampling {src} -> {out} is not an equal integer factor")
    fn.kind = "upsample"
    fn.attrs = {"factor": out[2] // src[2]}
    return fn


def _flatten_or_host(fn: FNode) -> FNode:
    src, out = _shape(fn.inputs[0]) if fn.inputs else None, fn.shape
    if src is not None and out is not None and out == src:
        fn.kind = "identity"
    elif src is not None and out is not None and len(out) == 2 and out[0] == 1 and math.prod(src) == out[1]:
        fn.kind = "flatten"
    else:
        fn.kind = "host"
    return fn


def _classify_module(fn: FNode, m: nn.Module) -> FNode:
    if getattr(type(m), "bitbranch_kind", None):
        fn.kind = type(m).bitbranch_kind  # activation quantizers mark themselves ('quant')
        return fn
    if isinstance(m, nn.Conv2d):
        return _conv(fn, m)
    if isinstance(m, nn.Linear):
        fn.kind = "linear"
        return fn
    if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        if not m.track_running_stats:
            raise FrontendError(f"{fn.where()}: BatchNorm without running statistics cannot be folded")
        fn.kind = "bn"
        return fn
    if isinstance(m, nn.ReLU):
        return _act(fn, 0, None)
    if isinstance(m, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        return _act(fn, m.min_val, m.max_val)
    if isinstance(m, nn.MaxPool2d):
        return _pool(fn, "maxpool", m.kernel_size, m.stride, m.padding, m.ceil_mode,
                     _square(m.dilation, "dilation", fn) == 1 and not m.return_indices)
    if isinstance(m, nn.AvgPool2d):
        ok = m.divisor_override is None and (m.count_include_pad or _square(m.padding, "padding", fn) == 0)
        return _pool(fn, "avgpool", m.kernel_size, m.stride, m.padding, m.ceil_mode, ok)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _global_pool(fn)
    if isinstance(m, nn.Upsample):
        return _upsample(fn, m.mode)
    if isinstance(m, nn.Flatten):
        return _flatten_or_host(fn)
    if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout2d)):
        fn.kind = "identity"
        return fn
    fn.kind = "host"
    return fn


def _classify_add(fn: FNode) -> FNode:
    node = fn.node
    operands = [a for a in node.args[:2]]
    alpha = node.kwargs.get("alpha", 1)
    if len(fn.inputs) != 2 or not all(isinstance(a, fx.Node) for a in operands) or alpha != 1 \
            or _shape(operands[0]) != _shape(operands[1]):
        fn.kind = "host"  # scalar adds, broadcasting, alpha: not a residual sum
        return fn
    fn.kind = "add"
    fn.inputs = list(operands)
    return fn


def _classify_cat(fn: FNode) -> FNode:
    tensors = _arg(fn.node, 0, "tensors")
    dim = _arg(fn.node, 1, "dim", 0)
    rank = len(fn.shape or ())
    if rank != 4 or dim not in (1, -3):
        raise FrontendError(f"{fn.where()}: torch.cat along dim {dim} of a {rank}-D tensor is not supported "
                            "(only channels of NCHW)")
    fn.kind = "cat"
    fn.inputs = list(tensors)
    return fn


def _classify_mean(fn: FNode) -> FNode:
    dims = _arg(fn.node, 1, "dim")
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(fn.inputs) == 1 and len(_shape(fn.inputs[0]) or ()) == 4 and sorted(d % 4 for d in dims) == [2, 3]:
        return _global_pool(fn)
    fn.kind = "host"
    return fn


def _classify_function(fn: FNode) -> FNode:
    node, t = fn.node, fn.node.target
    method = t if node.op == "call_method" else None
    if t in _RELU_FNS or method in ("relu", "relu_"):
        return _act(fn, 0, None)
    if t is F.relu6:
        return _act(fn, 0, 6)
    if t is F.hardtanh:
        return _act(fn, _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0))
    if t in _CLAMP_FNS or method in ("clamp", "clamp_", "clip", "clip_"):
        lo, hi = _arg(node, 1, "min"), _arg(node, 2, "max")
        if isinstance(lo, (int, float, type(None))) and isinstance(hi, (int, float, type(None))):
            return _act(fn, lo, hi)
    if t in _ADD_FNS or method in ("add", "add_", "__iadd__"):
        return _classify_add(fn)
    if t in _CAT_FNS:
        return _classify_cat(fn)
    if t is F.max_pool2d:
        return _pool(fn, "maxpool", _arg(node, 1, "kernel_size"), _arg(node, 2, "stride"), _arg(node, 3, "padding", 0),
                     _arg(node, 5, "ceil_mode", False),
                     _arg(node, 4, "dilation", 1) in (1, (1, 1)) and not _arg(node, 6, "return_indices", False))
    if t is F.avg_pool2d:
        ok = _arg(node, 6, "divisor_override") is None and (
            _arg(node, 5, "count_include_pad", True) or _arg(node, 3, "padding", 0) in (0, (0, 0)))
        return _pool(fn, "avgpool", _arg(node, 1, "kernel_size"), _arg(node, 2, "stride"), _arg(node, 3, "padding", 0),
                     _arg(node, 4, "ceil_mode", False), ok)
    if t is F.adaptive_avg_pool2d:
        return _global_pool(fn)
    if method == "mean" or t is torch.mean:
        return _classify_mean(fn)
    if t is F.interpolate or t is F.upsample or t is F.upsample_nearest:
        return _upsample(fn, "nearest" if t is F.upsample_nearest else _arg(node, 3, "mode", "nearest"))
    if t is torch.flatten or t is torch.reshape or method in _FLATTEN_METHODS:
        return _flatten_or_host(fn)
    if t in _IDENTITY_FNS or method == "contiguous":
        fn.kind = "identity"
        return fn
    if method in _META_METHODS or t is getattr or (t in _SIZE_ARITH and fn.shape is None):
        fn.kind = "meta"
        return fn
    fn.kind = "host"
    return fn


def _classify_all(gm: fx.GraphModule) -> list[FNode]:
    """Every node classified; a node refused outright (a cat along rows, a non-square pool) becomes kind 'refused'
    with its error in attrs['error'], raised once capture has looked for a more fundamental cause."""
    nodes = []
    for n in gm.graph.nodes:
        try:
            nodes.append(classify(n, gm))
        except FrontendError as e:
            nodes.append(FNode(n, "refused", node_path(n), _tensor_inputs(n), _shape(n), {"error": e}))
    return nodes


def classify(node: fx.Node, gm: fx.GraphModule) -> FNode:
    fn = FNode(node, "host", node_path(node), _tensor_inputs(node), _shape(node))
    if node.op == "placeholder":
        fn.kind = "input"
        return fn
    if node.op == "output":
        fn.kind = "output"
        flat: list[fx.Node] = []
        fx.node.map_arg(node.args, flat.append)
        fn.inputs = flat
        return fn
    if node.op == "get_attr":
        return fn
    if node.op == "call_module":
        fn.module = gm.get_submodule(str(node.target))
        return _classify_module(fn, fn.module)
    return _classify_function(fn)


# --- checks and normalisation ------------------------------------------------------------------------


def _check_inplace(fn: FNode) -> None:
    name = getattr(fn.node.target, "__name__", str(fn.node.target))
    if name.endswith("_") and not name.endswith("__") and fn.kind not in ("meta",) and not fn.node.users:
        raise FrontendError(f"{fn.where()}: in-place '{name}' whose result is unused hides a mutation from torch.fx; "
                            f"write `x = x.{name[:-1]}(...)` instead")


# Ops users meet in torchvision / timm models that the requantize unit cannot express (it computes an affine
# map, a clamp and a rounding per channel): what to use instead. Keys are module class or function names.
_ACTIVATION = ("the requantize unit applies only clamps (an affine map, clip, round); replace it with ReLU, ReLU6 or "
               "Hardtanh (and fine-tune) to run on the accelerator")
_GATE = ("squeeze-excitation gates multiply activations by a per-channel sigmoid of the data; the accelerator has no "
         "elementwise multiply: remove the gate (or its sigmoid) to run the model")
_NORM = "normalisation by statistics of the data needs division at run time; use BatchNorm (folded)"
_RESHAPE = ("only reshapes that keep every pixel in place and gather whole channels (channel split / shuffle, as in "
            "ShuffleNet) or flatten to (1, N) run on the accelerator")
_ATTENTION = "attention multiplies two activations; the accelerator multiplies activations only by weights"
_ALTERNATIVES = {
    **dict.fromkeys(("Hardswish", "hardswish", "SiLU", "silu", "Swish", "GELU", "gelu", "Mish", "mish", "ELU", "elu",
                     "SELU", "selu", "CELU", "LeakyReLU", "leaky_relu", "PReLU", "Softplus", "Tanh", "tanh"),
                    _ACTIVATION),
    **dict.fromkeys(("Sigmoid", "sigmoid", "Hardsigmoid", "hardsigmoid", "mul", "SqueezeExcite", "SEModule",
                     "SqueezeExcitation"), _GATE),
    **dict.fromkeys(("LayerNorm", "layer_norm", "GroupNorm", "group_norm", "LocalResponseNorm", "RMSNorm", "rms_norm",
                     "InstanceNorm1d", "InstanceNorm2d", "instance_norm"), _NORM),
    **dict.fromkeys(("view", "reshape", "transpose", "permute", "chunk", "split", "getitem", "narrow",
                     "channel_shuffle", "ChannelShuffle"), _RESHAPE),
    **dict.fromkeys(("MultiheadAttention", "softmax", "Softmax", "matmul", "bmm", "einsum",
                     "scaled_dot_product_attention"), _ATTENTION),
}
# How fundamental an op the accelerator cannot express is: a model is refused on its most fundamental one (attention
# before normalisation before activations and gates; graph order within a rank), since replacing a ViT's GELU or a
# ConvNeXt's Linear layout would not make it run. Reshapes are not ranked: they may be rewritten into gathers.
_OP_RANK = {_ATTENTION: 0, _NORM: 1, _ACTIVATION: 2, _GATE: 2}
_PRODUCTS = {"matmul", "bmm", "einsum", "mul"}  # attention or a gate only when two operands are activations


def unsupported_hint(what: str) -> str:
    """Why an op cannot run on the accelerator and what to use instead ('' when nothing specific is known).
    Any module or function with 'attention' in its name (torchvision's ShiftedWindowAttention, timm's Attention)
    is attention."""
    return _ALTERNATIVES.get(what) or (_ATTENTION if "attention" in what.lower() else "")


def _class_hint(cls: Any) -> tuple[str, str]:
    """(class name, hint) of a module class, the hint looked up along its bases (torchvision's LayerNorm2d is a
    LayerNorm); `cls` may also be a qualified class name (older torch's nn_module_stack)."""
    if isinstance(cls, str):
        name = cls.rsplit(".", 1)[-1]
        return name, unsupported_hint(name)
    for c in getattr(cls, "__mro__", ()):
        if c is nn.Module:
            break
        if hint := unsupported_hint(c.__name__):
            return cls.__name__, hint
    return getattr(cls, "__name__", str(cls)), ""


def _own_op(fn: FNode) -> tuple[str, str]:
    """(name, hint) of the module or function `fn` calls itself."""
    if fn.module is not None:
        return _class_hint(type(fn.module))
    what = _target_name(fn.node, None)
    return what, unsupported_hint(what)


def _unexpressible(fn: FNode) -> tuple[str, str, str] | None:
    """(op name, module path, hint) when `fn` computes something the accelerator cannot express: a module or function
    with a ranked hint (a product only of two activations). Attention and normalisation traced into a module of
    their kind are named as the innermost such module (the `layer_norm` of torchvision's LayerNorm2d, the `einsum`
    of MaxViT's RelativePositionalMultiHeadAttention, Swin's `shifted_window_attention`)."""
    node = fn.node
    if node.op not in ("call_module", "call_function", "call_method") or fn.kind not in ("host", "refused"):
        return None
    what, hint = _own_op(fn)
    if hint not in _OP_RANK:
        return None
    if fn.module is None and what in _PRODUCTS and sum(x.op != "get_attr" for x in fn.inputs) < 2:
        return None  # a product with a weight or a constant: a host op (refused later if it feeds the accelerator)
    if _OP_RANK[hint] <= _OP_RANK[_NORM]:
        stack = [v for v in (node.meta.get("nn_module_stack") or {}).values() if isinstance(v, tuple) and len(v) == 2]
        if fn.module is not None and stack:
            stack = stack[:-1]  # a module call's own entry comes last
        for path, cls in reversed(stack):
            name, outer = _class_hint(cls)
            if outer == hint:
                return name, str(path), hint
    return what, fn.path, hint


def _accel_user(fn: FNode, by_node: dict[fx.Node, FNode]) -> FNode | None:
    """The first op the accelerator must run (or an op refused outright) that reads `fn`'s result, directly or
    through host ops; None when only host ops and outputs follow."""
    stack, seen = list(fn.node.users), set()
    while stack:
        u = stack.pop()
        if u in seen:
            continue
        seen.add(u)
        uf = by_node[u]
        if uf.kind in ACCEL_KINDS or uf.kind == "refused":
            return uf
        stack.extend(u.users)
    return None


def _refusal(what: str, where: str, uf: FNode, hint: str) -> FrontendError:
    op = uf.kind if uf.kind in ACCEL_KINDS else _target_name(uf.node, uf.module)
    return FrontendError(f"unsupported operation '{what}' at {where} feeds accelerator op '{op}' at {uf.where()}; "
                         + (hint or "only operations at the end of the network may run on the host"))


def _check_unexpressible(nodes: list[FNode], by_node: dict[fx.Node, FNode]) -> None:
    """Refuse on the most fundamental op the accelerator cannot express (see _OP_RANK) that feeds the accelerator,
    before any complaint about a construct around it: a ViT's first obstacle in graph order is the concatenation of
    its class token, a ConvNeXt's a Linear on a channels-last map, neither of which is what keeps them off."""
    best: tuple[FNode, tuple[str, str, str], FNode] | None = None
    for fn in nodes:
        op = _unexpressible(fn)
        if op is None or (best is not None and _OP_RANK[op[2]] >= _OP_RANK[best[1][2]]):
            continue
        uf = _accel_user(fn, by_node)
        if uf is not None:
            best = (fn, op, uf)
    if best is None:
        return
    fn, (what, path, hint), uf = best
    raise _refusal(what, f"node '{fn.node.name}' (module path '{path}')", uf, hint)


def _check_host_tail(nodes: list[FNode], by_node: dict[fx.Node, FNode]) -> None:
    """Host ops are allowed only where nothing but host ops and outputs follow."""
    for fn in nodes:
        if fn.kind != "host":
            continue
        uf = _accel_user(fn, by_node)
        if uf is not None:
            what = _target_name(fn.node, fn.module)
            raise _refusal(what, fn.where(), uf, unsupported_hint(what))


# --- channel split / shuffle (ShuffleNet) -------------------------------------------------------------------

_GATHER_METHODS = {"view", "reshape", "transpose", "permute", "contiguous", "chunk", "split", "narrow", "swapaxes"}
_GATHER_FNS = {torch.transpose, torch.permute, torch.chunk, torch.split, torch.narrow, torch.reshape, torch.swapaxes,
               operator.getitem}


class _NotGather(Exception):
    pass


def _gather_step(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in _GATHER_METHODS or node.target in _META_METHODS
    return node.op == "call_function" and (node.target in _GATHER_FNS or node.target in _SIZE_ARITH)


def _gather_index(node: fx.Node) -> tuple[fx.Node, list[int]]:
    """(source, index) when `node` is a pure channel gather of one 4-D tensor: out[:, j] = source[:, index[j]].

    The chain of reshapes / transposes / chunks / slices back to the source (with the size arithmetic that shapes
    them: `x.size(1) // 2`, folded here to constants) is run on a probe whose every element holds its own position;
    the result must be whole source channels, every pixel in place."""
    memo: dict[fx.Node, Any] = {}
    src: list[fx.Node] = []

    def ev(n: Any) -> Any:
        if not isinstance(n, fx.Node):
            return n
        if n in memo:
            return memo[n]
        if _gather_step(n):
            args, kwargs = fx.node.map_arg((n.args, n.kwargs), ev)
            v = getattr(args[0], n.target)(*args[1:], **kwargs) if n.op == "call_method" else n.target(*args, **kwargs)
        else:
            shape = _shape(n)
            if shape is None or len(shape) != 4 or shape[0] != 1 or src:
                raise _NotGather
            src.append(n)
            v = torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape)
        memo[n] = v
        return v

    try:
        out = ev(node)
    except (_NotGather, TypeError, RuntimeError, IndexError, ValueError, AttributeError):
        raise _NotGather from None
    if not src or not isinstance(out, torch.Tensor) or out.dim() != 4 \
            or tuple(out.shape[2:]) != tuple(_shape(src[0])[2:]):
        raise _NotGather
    h, w = out.shape[2:]
    index = torch.div(out[0, :, 0, 0], h * w, rounding_mode="floor")
    expect = index.view(-1, 1, 1) * (h * w) + torch.arange(h * w, dtype=torch.float64).view(h, w)
    if not torch.equal(out[0], expect):
        raise _NotGather
    return src[0], [int(i) for i in index]


def _channel_gathers(nodes: list[FNode], by_node: dict[fx.Node, FNode]) -> None:
    """Channel split (`chunk` / `split` / slices along channels) and channel shuffle (`view(b, g, c/g, h, w)` ->
    `transpose(1, 2)` -> `view(b, c, h, w)`) become `select` nodes reading their 4-D source directly (IR: a 1x1
    convolution with 0/1 ternary weights and an identity requantization); the intermediate views, chunks and
    size arithmetic become `meta` when nothing else reads them."""
    for fn in nodes:
        if fn.kind not in ("host", "identity") or not _gather_step(fn.node) or len(fn.shape or ()) != 4:
            continue
        try:
            src, index = _gather_index(fn.node)
        except _NotGather:
            continue
        c = _shape(src)[1]
        if index == list(range(c)):
            fn.kind, fn.inputs = "identity", [src]
            continue
        fn.kind, fn.inputs, fn.attrs = "select", [src], {"index": index, "sizes": [c]}
        cat = by_node[src]
        if cat.kind == "cat" and all(len(_shape(x) or ()) == 4 for x in cat.inputs):
            # a gather of a concatenation reads its inputs (channel `index[j]` of their concatenation): ShuffleNet's
            # cat -> shuffle -> chunk never materializes the concat, whose inputs need not be whole lane slices
            fn.inputs, fn.attrs["sizes"] = list(cat.inputs), [_shape(x)[1] for x in cat.inputs]
    readers: dict[fx.Node, list[FNode]] = {}
    for fn in nodes:
        for x in fn.inputs:
            readers.setdefault(x, []).append(fn)
    for fn in reversed(nodes):  # readers come later: their kinds are final here
        unread = fn.node.users and all(r.kind == "meta" for r in readers.get(fn.node, []))
        if unread and (fn.kind == "cat" or fn.kind in ("host", "identity", "select", "meta")
                       and _gather_step(fn.node)):
            fn.kind = "meta"


def _check_shapes(fn: FNode) -> None:
    if fn.kind == "linear" and len(_shape(fn.inputs[0]) or ()) != 2:
        raise FrontendError(f"{fn.where()}: Linear on a {len(_shape(fn.inputs[0]) or ())}-D tensor; flatten to (1, N)"
                            " first")
    if fn.kind == "bn" and len(fn.shape or ()) not in (2, 4):
        raise FrontendError(f"{fn.where()}: BatchNorm on a {len(fn.shape or ())}-D tensor is not supported")
    if fn.kind in ("conv", "maxpool", "avgpool", "upsample") and len(_shape(fn.inputs[0]) or ()) != 4:
        raise FrontendError(f"{fn.where()}: {fn.kind} needs a 4-D NCHW input")


def _drop_identities(gm: fx.GraphModule, nodes: list[FNode]) -> bool:
    """Remove nn.Identity calls (timm's placeholders for disabled drop-block / anti-aliasing / drop-path),
    so that conv -> bn -> Identity -> act fuses like conv -> bn -> act. Dropout stays: QAT trains with it."""
    changed = False
    for fn in nodes:
        if isinstance(fn.module, nn.Identity) and len(fn.inputs) == 1 and fn.node.args == (fn.inputs[0],):
            fn.node.replace_all_uses_with(fn.inputs[0])
            gm.graph.erase_node(fn.node)
            changed = True
    return changed


def _hoist_activations(gm: fx.GraphModule, nodes: list[FNode]) -> bool:
    """act(pool(x)) -> pool(act(x)) for max-pooling / upsampling, when x and pool have one user each."""
    changed = False
    by_node = {f.node: f for f in nodes}
    for fn in nodes:
        if fn.kind not in ("maxpool", "upsample") or len(fn.node.users) != 1:
            continue
        act = by_node[next(iter(fn.node.users))]
        src = fn.inputs[0]
        if act.kind != "act" or len(src.users) != 1 or act.inputs != [fn.node]:
            continue
        act.node.replace_all_uses_with(fn.node)
        fn.node.replace_input_with(src, act.node)
        act.node.replace_input_with(fn.node, src)
        fn.node.prepend(act.node)
        changed = True
    return changed


def _trace(model: nn.Module) -> fx.GraphModule:
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # fx raises many kinds (TraceError, TypeError on data-dependent control flow, ...)
        raise FrontendError(f"torch.fx could not trace {type(model).__name__}: {e}") from e
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _propagate(gm: fx.GraphModule, example: torch.Tensor) -> None:
    import contextlib
    import io

    prop = ShapeProp(gm)
    try:
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            prop.propagate(example)
    except Exception as e:
        cause = e.__cause__ if e.__cause__ is not None and "ShapeProp error" in str(e) else e
        node = _failing_node(gm, str(e))
        where = f" at {FNode(node, 'host', node_path(node)).where()}" if node is not None else ""
        text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise FrontendError(f"running the model on an input of shape {tuple(example.shape)} failed{where}: "
                            f"{type(cause).__name__}: {text}") from None


def _failing_node(gm: fx.GraphModule, message: str) -> fx.Node | None:
    """The node ShapeProp names in its error ('ShapeProp error for: node=%name : ...')."""
    import re

    m = re.search(r"node=%(\w+)", message)
    return next((n for n in gm.graph.nodes if m and n.name == m.group(1)), None)


def example_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """A fixed random input of `input_shape`: (1, C, H, W) images, or (1, N) vectors (an MLP's input)."""
    if len(input_shape) not in (2, 4) or input_shape[0] != 1:
        raise FrontendError(f"input shape {tuple(input_shape)}: expected (1, C, H, W) or (1, N) (batch size 1)")
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.rand(input_shape, generator=torch.Generator().manual_seed(0)).to(dtype)


def _is_fused_norm_act(m: nn.Module) -> bool:
    """timm's BatchNormAct2d (and look-alikes): a BatchNorm2d subclass whose forward also applies `drop` and `act`.
    fx traces into it (it is not a torch.nn class), so the batch norm became a functional call reading its
    own weights (reported as 'bn1.weight'); split, it is a BatchNorm2d followed by its activation."""
    return (isinstance(m, nn.BatchNorm2d) and type(m) is not nn.BatchNorm2d
            and isinstance(getattr(m, "act", None), nn.Module) and isinstance(getattr(m, "drop", None), nn.Module))


def unfuse_norm_act(model: nn.Module) -> nn.Module:
    """`model` with every fused BatchNorm+activation replaced by Sequential(bn=BatchNorm2d, drop, act) (a copy when
    anything changes; the caller's model is not modified). Module paths gain `.bn` / `.act`."""
    fused = [name for name, m in model.named_modules() if name and _is_fused_norm_act(m)]
    if not fused:
        return model
    import copy

    model = copy.deepcopy(model)
    for name in fused:
        m = model.get_submodule(name)
        bn = nn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
        bn.load_state_dict({k: v for k, v in m.state_dict().items() if k in bn.state_dict()})
        bn.train(m.training)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf,
                nn.Sequential(OrderedDict(bn=bn, drop=m.drop, act=m.act)))
    return model


def capture(model: nn.Module, input_shape: tuple[int, ...], on_classify: Callable[[FNode], None] | None = None
            ) -> Capture:
    """Trace `model` (not modified; eval mode while shapes are propagated) and classify every node."""
    model = unfuse_norm_act(model)
    example = example_input(model, input_shape)
    was_training = model.training
    model.eval()
    try:
        gm = _trace(model)
        _propagate(gm, example)
        nodes = _classify_all(gm)
        if _drop_identities(gm, nodes):  # shapes stay as propagated
            gm.graph.lint()
            gm.recompile()
            nodes = _classify_all(gm)
        if _hoist_activations(gm, nodes):
            gm.graph.lint()
            gm.recompile()
            _propagate(gm, example)
            nodes = _classify_all(gm)
    finally:
        model.train(was_training)
    by_node = {f.node: f for f in nodes}
    _channel_gathers(nodes, by_node)
    for fn in nodes:
        _check_inplace(fn)
    _check_unexpressible(nodes, by_node)
    for fn in nodes:
        if fn.kind == "refused":
            raise fn.attrs["error"]
    for fn in nodes:
        _check_shapes(fn)
        if on_classify is not None:
            on_classify(fn)
    _check_host_tail(nodes, by_node)
    return Capture(gm, nodes, by_node)
