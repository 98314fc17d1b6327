"""Fetch order: hoist every LOAD-unit instruction as early as its tokens allow.

Fetch dispatches in program order and blocks while the target unit's instruction queue is full
(docs/timing.md, section 2). Lowering emits a tile as loads, compute, stores, so a tile's loads (and
the next layer's weight prefetch) sit behind a whole tile of compute instructions: while the compute
queue is full they are not even dispatched, and the load unit idles although its tokens are there.

Tokens are matched per unit pair in each unit's own program order, so any merge of the three units'
instruction streams that keeps each unit's order runs the same program: the same token pairs, the
same data effects (every cross-unit dependency is a token), the same results. This pass changes only
the merge: each load-unit instruction moves up to just after the later of the previous load-unit
instruction and the compute instruction pushing the compute -> load token it pops (and the one
freeing room for its own push, see hoisted_order). It never waits in the load queue for an instruction
behind it in fetch order, so hoisting adds no wait and no deadlock (the static deadlock check still runs
on the result, like on every program).
"""

from __future__ import annotations

from collections.abc import Sequence

from bitbranch.isa.encoding import Instruction
from bitbranch.isa.spec import Unit


def hoisted_order(program: Sequence[Instruction], token_depth: int) -> list[int]:
    """Permutation of `program` (new position -> old index) with load-unit instructions hoisted.

    A load-unit instruction goes after the compute instruction pushing the token it pops, and after the
    one popping the load -> compute token `token_depth` pushes before its own (so its push finds room):
    every wait of a dispatched instruction is on an instruction fetched before it.
    """
    units = [insn.exec_unit for insn in program]
    producers = [k for k, insn in enumerate(program) if units[k] == Unit.COMPUTE and insn.push_prev]
    consumers = [k for k, insn in enumerate(program) if units[k] == Unit.COMPUTE and insn.pop_prev]
    after: dict[int, list[int]] = {}  # old index of a non-load instruction -> loads placed right after it
    anchor, pops, pushes = -1, 0, 0  # anchor -1: before the first non-load instruction
    for k, insn in enumerate(program):
        if units[k] != Unit.LOAD:
            continue
        if insn.pop_next:
            if pops >= len(producers):
                raise ValueError(f"instruction {k}: pops a compute -> load token that is never pushed")
            anchor, pops = max(anchor, producers[pops]), pops + 1
        if insn.push_next:
            if pushes >= token_depth:
                anchor = max(anchor, consumers[pushes - token_depth])
            pushes += 1
        after.setdefault(anchor, []).append(k)
    order = list(after.get(-1, []))
    for k, unit in enumerate(units):
        if unit != Unit.LOAD:
            order.append(k)
            order += after.get(k, [])
    return order


def remap_ranges(order: list[int], ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Consecutive layer ranges [start, end) in the new order: a layer ends after its last instruction,
    and the next begins there, so loads hoisted into the previous layer count in its range."""
    position = {old: new for new, old in enumerate(order)}
    out, start = [], 0
    for first, end in ranges:
        stop = max((position[k] + 1 for k in range(first, end)), default=start)
        stop = max(stop, start)
        out.append((start, stop))
        start = stop
    return out
