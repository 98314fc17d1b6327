"""Where a QAT model needs activation quantizers, and the fx rewrite that puts them there.

The rules mirror the fusions `compiler.integerize` performs, so every quantizer becomes exactly one
IR requantization:
- A *chain* is conv|linear [-> bn] [-> add(·, r)] [-> act], each link the sole user of the previous
  one; or avgpool [-> act]; or add(a, b) [-> act] when no conv chain absorbs the add. A conv(+bn)
  feeding an add absorbs it (IR Conv with a residual operand) — the first operand's chain if it
  can (`out += identity`), else the second's; the other operand r must be a level tensor.
- *Domains*: tensors joined by max-pool, upsample, flatten, identity and concat share one level
  grid, i.e. one quantizer module called at each of the domain's producers, so concat inputs have
  equal (bits, scale, zero) by construction.
- A chain's tail gets its domain's quantizer if the chain has an activation, is a pooling / add
  chain, or anything reads the domain as levels (conv / linear / pool / upsample / concat inputs,
  residual operands). A conv / linear chain without activation that only reaches outputs or host ops
  stays unquantized: it becomes int32 logits / maps.
- Quantizer kind: a bounded activation keeps its range ('fixed'); ReLU, or a non-negative source
  (average of / sum of unsigned tensors) -> 'unsigned'; otherwise 'symmetric' (e.g. a downsample
  branch `bn(conv(x))`). Bits: the producing layer's `a` (`linear_bits` for chains without an
  activation), the largest over a domain's producers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import fx

from .frontend import LEVEL_PRESERVING, Capture, FNode, FrontendError
from .ir import Progress, steps
from .precision import PrecisionSpec
from .qat import INPUT_BITS, ActQuant, QuantConv2d, QuantLinear

_INIT_CLIP = 4.0  # trainable ranges start here until calibrated


@dataclass
class Chain:
    nodes: list[FNode]
    residual: fx.Node | None = None

    @property
    def head(self) -> FNode:
        return self.nodes[0]

    @property
    def tail(self) -> FNode:
        return self.nodes[-1]

    @property
    def act(self) -> FNode | None:
        return next((n for n in self.nodes if n.kind == "act"), None)

    @property
    def linear(self) -> bool:
        """No activation and possibly negative: defaults to linear_bits."""
        return self.act is None and self.head.kind in ("conv", "linear", "add", "bn")

    @property
    def always_levels(self) -> bool:
        return self.act is not None or self.head.kind in ("avgpool", "add", "bn")


@dataclass(frozen=True)
class QuantSpec:
    kind: str  # 'fixed' | 'unsigned' | 'symmetric'
    bits: int
    lo: float = 0.0
    hi: float = 1.0

    def same_grid(self, other: QuantSpec) -> bool:
        return self.kind == other.kind and (self.kind != "fixed" or (self.lo, self.hi) == (other.lo, other.hi))

    def nonnegative(self) -> bool:
        return self.kind == "unsigned" or (self.kind == "fixed" and self.lo >= 0)

    def level0_is_zero(self) -> bool:
        """Is level 0 real zero (so that zero padding and level-0 padding agree)?"""
        return self.kind == "unsigned" or (self.kind == "fixed" and self.lo == 0)


@dataclass(eq=False)
class Domain:
    members: list[fx.Node]
    producers: list[FNode] = field(default_factory=list)
    needs_levels: bool = False
    quantized: bool = False
    spec: QuantSpec | None = None
    path: str = ""


@dataclass
class Placement:
    chains: list[Chain]
    chain_of: dict[fx.Node, Chain]
    domains: list[Domain]
    domain_of: dict[fx.Node, Domain]
    layer_paths: list[str]


# --- chains ---------------------------------------------------------------------------------------------


def _sole_user(cap: Capture, fn: FNode) -> FNode | None:
    users = cap.users(fn)
    return users[0] if len(users) == 1 else None


def _fusable_operand(cap: Capture, node: fx.Node) -> bool:
    """A conv / linear (+bn) value read only by one add: the add can be folded into its requant."""
    fn = cap.of(node)
    if len(node.users) != 1:
        return False
    if fn.kind in ("conv", "linear"):
        return True
    return fn.kind == "bn" and cap.of(fn.inputs[0]).kind in ("conv", "linear") and len(fn.inputs[0].users) == 1


def _grow(cap: Capture, head: FNode, chain_of: dict[fx.Node, Chain]) -> Chain:
    chain = Chain([head])
    cur = head
    if head.kind in ("conv", "linear"):
        u = _sole_user(cap, cur)
        if u is not None and u.kind == "bn":
            chain.nodes.append(u)
            cur = u
        u = _sole_user(cap, cur)
        if u is not None and u.kind == "add" and u.node not in chain_of:
            a, b = u.inputs
            first = a is cur.node
            other = b if first else a
            if other is not cur.node and (first or not _fusable_operand(cap, a)):
                chain.nodes.append(u)
                chain.residual = other
                cur = u
    u = _sole_user(cap, cur)
    if u is not None and u.kind == "act" and u.node not in chain_of:
        chain.nodes.append(u)
    for fn in chain.nodes:
        chain_of[fn.node] = chain
    return chain


def _chains(cap: Capture) -> tuple[list[Chain], dict[fx.Node, Chain]]:
    chains: list[Chain] = []
    chain_of: dict[fx.Node, Chain] = {}
    for fn in cap.nodes:
        if fn.kind == "quant":
            raise FrontendError(f"{fn.where()}: the model already contains activation quantizers")
        if fn.node in chain_of:
            continue
        if fn.kind in ("conv", "linear", "avgpool", "add"):
            chains.append(_grow(cap, fn, chain_of))
        elif fn.kind == "bn":  # not folded into a conv (after a concat, or a conv with other users): its own
            chains.append(_grow(cap, fn, chain_of))  # per-channel affine requantization of the levels it reads
    return chains, chain_of


# --- domains --------------------------------------------------------------------------------------------


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[fx.Node, fx.Node] = {}

    def find(self, x: fx.Node) -> fx.Node:
        self.parent.setdefault(x, x)
        while self.parent[x] is not x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: fx.Node, b: fx.Node) -> None:
        self.parent[self.find(a)] = self.find(b)


def _level_inputs(fn: FNode, chain_of: dict[fx.Node, Chain]) -> list[fx.Node]:
    """Operands that the op reads as level tensors."""
    if fn.kind in ("conv", "linear", "maxpool", "avgpool", "upsample", "cat", "select"):
        return fn.inputs
    if fn.kind == "add":
        chain = chain_of.get(fn.node)
        if chain is not None and chain.head.kind in ("conv", "linear"):
            return [chain.residual] if chain.residual is not None else []
        return fn.inputs
    if fn.kind == "act" and fn.node not in chain_of:
        return fn.inputs
    if fn.kind == "bn" and fn.node in chain_of and chain_of[fn.node].head is fn:
        return fn.inputs  # a standalone BatchNorm reads levels (a chain's folded BatchNorm reads the accumulator)
    return []


def _domains(cap: Capture, chain_of: dict[fx.Node, Chain]) -> tuple[list[Domain], dict[fx.Node, Domain]]:
    uf = _UnionFind()
    for fn in cap.nodes:
        uf.find(fn.node)
        if fn.kind in LEVEL_PRESERVING or (fn.kind == "act" and fn.node not in chain_of):
            for x in fn.inputs:
                uf.union(x, fn.node)
    groups: dict[fx.Node, Domain] = {}
    domain_of: dict[fx.Node, Domain] = {}
    for fn in cap.nodes:
        d = groups.setdefault(uf.find(fn.node), Domain([]))
        d.members.append(fn.node)
        domain_of[fn.node] = d
        chain = chain_of.get(fn.node)
        if fn.kind == "input" or (chain is not None and chain.tail is fn):
            d.producers.append(fn)
    for fn in cap.nodes:
        for x in _level_inputs(fn, chain_of):
            domain_of[x].needs_levels = True
    domains = list(groups.values())
    for d in domains:
        d.quantized = d.needs_levels or any(p.kind == "input" or chain_of[p.node].always_levels for p in d.producers)
        if d.needs_levels and not d.producers:
            fn = cap.of(d.members[0])
            raise FrontendError(f"{fn.where()}: this tensor must be quantized but is not produced by a layer "
                                "(conv / linear / pooling / add / input)")
    return domains, domain_of


# --- quantizer specs -----------------------------------------------------------------------------------


class _Specs:
    """Quantizer spec per producer and per domain (computed on demand: avg-pool / add chains look upstream)."""

    def __init__(self, cap: Capture, spec: PrecisionSpec, chain_of: dict[fx.Node, Chain],
                 domain_of: dict[fx.Node, Domain]):
        self.cap, self.spec, self.chain_of, self.domain_of = cap, spec, chain_of, domain_of
        self.busy: set[int] = set()

    def nonnegative(self, node: fx.Node) -> bool:
        d = self.domain_of[node]
        if id(d) in self.busy:
            return False
        self.busy.add(id(d))
        try:
            return bool(d.producers) and all(self.producer(p).nonnegative() for p in d.producers)
        finally:
            self.busy.discard(id(d))

    def producer(self, fn: FNode) -> QuantSpec:
        if fn.kind == "input":
            return QuantSpec("fixed", INPUT_BITS, 0.0, 1.0)
        chain = self.chain_of[fn.node]
        lo, hi = (chain.act.attrs["lo"], chain.act.attrs["hi"]) if chain.act is not None else (-math.inf, math.inf)
        bits = self.spec.act_bits_for(chain.head.path, linear=chain.linear)
        if math.isfinite(lo) and math.isfinite(hi):
            return QuantSpec("fixed", bits, lo, hi)
        head = chain.head
        nonneg = lo >= 0 or (head.kind in ("avgpool", "add") and all(self.nonnegative(x) for x in head.inputs))
        return QuantSpec("unsigned" if nonneg else "symmetric", bits, 0.0, _INIT_CLIP)

    def domain(self, d: Domain) -> QuantSpec:
        specs = [(p, self.producer(p)) for p in d.producers]
        kinds = {s.kind for _, s in specs}
        if kinds == {"unsigned", "symmetric"}:  # e.g. DenseNet: cat(relu(x), conv(...)): one symmetric grid holds both
            specs = [(p, QuantSpec("symmetric", s.bits, s.lo, s.hi)) for p, s in specs]
        first_fn, merged = specs[0]
        for fn, s in specs[1:]:
            if not s.same_grid(merged):
                raise FrontendError(
                    f"{fn.where()} and {first_fn.where()} must share one level grid (concat / pooling of both) "
                    f"but produce different activations ({s.kind} [{s.lo}, {s.hi}] vs {merged.kind} "
                    f"[{merged.lo}, {merged.hi}]); use the same activation function on both")
        return QuantSpec(merged.kind, max(s.bits for _, s in specs), merged.lo, merged.hi)


def _quant_path(cap: Capture, fn: FNode, chain_of: dict[fx.Node, Chain], used: set[str]) -> str:
    if fn.kind == "input":
        base = "input_aq"
    else:
        head = chain_of[fn.node].head
        base = f"{head.path}.aq" if head.node.op == "call_module" else f"{head.path}_aq"
    path, k = base, 1
    while path in used:
        k += 1
        path = f"{base}{k}"
    used.add(path)
    return path


def _check_level_ops(cap: Capture, chain_of: dict[fx.Node, Chain], domain_of: dict[fx.Node, Domain]) -> None:
    for fn in cap.nodes:
        if fn.kind == "act" and fn.node not in chain_of:
            s = domain_of[fn.inputs[0]].spec
            if s is None or s.kind == "symmetric" or (s.kind == "unsigned" and fn.attrs["hi"] != math.inf) or (
                    s.kind == "fixed" and (fn.attrs["lo"] > s.lo or fn.attrs["hi"] < s.hi)):
                raise FrontendError(f"{fn.where()}: activation on a tensor that is already quantized (or also used "
                                    "before the activation) would need its own requantization; apply it directly "
                                    "after the convolution")
        if fn.kind == "avgpool" and fn.attrs["pad"]:
            s = domain_of[fn.inputs[0]].spec
            if s is not None and not s.level0_is_zero():
                raise FrontendError(f"{fn.where()}: padded average pooling of a tensor whose level 0 is not real "
                                    "zero is not supported")


def plan_placement(cap: Capture, spec: PrecisionSpec) -> Placement:
    chains, chain_of = _chains(cap)
    domains, domain_of = _domains(cap, chain_of)
    specs = _Specs(cap, spec, chain_of, domain_of)
    used: set[str] = set()
    for d in domains:
        if d.quantized:
            d.spec = specs.domain(d)
            d.path = _quant_path(cap, d.producers[0], chain_of, used)
    _check_level_ops(cap, chain_of, domain_of)
    paths = ["input"] + [c.head.path for c in chains]
    return Placement(chains, chain_of, domains, domain_of, list(dict.fromkeys(paths)))


# --- rewrite --------------------------------------------------------------------------------------------


def _set_module(gm: fx.GraphModule, path: str, module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, module)


def _make_quant(s: QuantSpec, calibrate_range: bool = False) -> ActQuant:
    return ActQuant(s.bits, s.kind, s.lo, s.hi, calibrate_range=calibrate_range)


def apply_placement(cap: Capture, placement: Placement, spec: PrecisionSpec, progress: Progress | None = None
                    ) -> fx.GraphModule:
    """Swap in quantized layers and insert each domain's quantizer after its producers.

    `progress` is called per swapped layer (its weight scales are searched then: the slow part for big layers)."""
    gm, graph = cap.gm, cap.gm.graph
    layers: dict[str, FNode] = {}  # module path -> its first call (a module called twice is swapped once)
    for fn in cap.nodes:
        if fn.kind in ("conv", "linear"):
            layers.setdefault(fn.path, fn)
    for fn in steps(list(layers.values()), progress, lambda f: f.path):
        cls = QuantConv2d if fn.kind == "conv" else QuantLinear
        _set_module(gm, fn.path, cls(fn.module, spec.weight_for(fn.path)))
    quant_of: dict[int, ActQuant] = {}
    for d in placement.domains:
        if not d.quantized:
            continue
        q = _make_quant(d.spec, calibrate_range=all(p.kind != "input" for p in d.producers))
        p = next(iter(gm.parameters()), None)
        if p is not None:
            q.to(p.dtype)
        gm.add_submodule(d.path, q)
        quant_of[id(d)] = q
        for prod in d.producers:
            with graph.inserting_after(prod.node):
                qn = graph.call_module(d.path, (prod.node,))
            prod.node.replace_all_uses_with(qn, delete_user_cb=lambda u, qn=qn: u is not qn)
    for fn in cap.nodes:
        if fn.kind == "conv" and (fn.attrs["pad"] or fn.attrs.get("pad_w")):
            d = placement.domain_of[fn.inputs[0]]
            if d.spec is not None and not d.spec.level0_is_zero():
                gm.get_submodule(fn.path).input_quant = quant_of[id(d)]
    graph.lint()
    gm.recompile()
    return gm
