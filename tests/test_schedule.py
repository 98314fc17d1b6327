"""Compiler scheduling: hoisted fetch order, weight prefetch of a layer's second group, tile sizes."""

import numpy as np
import pytest

from bitbranch.compiler.liveness import is_degenerate
from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.randgraph import GraphMaker
from bitbranch.compiler.schedule import hoisted_order, remap_ranges
from bitbranch.compiler.tiling import first_tile_rows, split_cost
from bitbranch.isa.hwconfig import get_config
from bitbranch.isa.spec import Buffer, Unit
from bitbranch.isa.validate import validate_program
from bitbranch.simulator import run
from bitbranch.simulator.randprog import random_program

SMALL = get_config("small")
EDGE = get_config("edge")


def unit_streams(program):
    return {u: [insn for insn in program if insn.exec_unit == u] for u in Unit}


@pytest.mark.parametrize("seed", range(6))
def test_hoisting_random_programs_keeps_units_and_results(seed):
    """Random race-free programs: the hoisted order keeps every unit's sequence, passes the deadlock
    check, and gives the same DRAM image; loads are fetched no later than before."""
    program, dram = random_program(SMALL, np.random.default_rng(seed), 120)
    order = hoisted_order(program, SMALL.token_depth)
    assert sorted(order) == list(range(len(program)))
    hoisted = [program[k] for k in order]
    assert unit_streams(hoisted) == unit_streams(program)
    validate_program(hoisted, SMALL, dram_size=len(dram))
    before, after = run((program, dram, SMALL)), run((hoisted, dram, SMALL))
    assert after.dram == before.dram
    position = {old: new for new, old in enumerate(order)}
    loads = [k for k, insn in enumerate(program) if insn.exec_unit == Unit.LOAD]
    assert all(position[k] <= k for k in loads)
    assert any(position[k] < k for k in loads)  # the pass did something on these programs


def four_convs():
    g = GraphMaker(4, (12, 12, 64), 2)
    x = "input"
    for k in range(4):
        x = g.conv(f"c{k}", x, 64, 3, 2, 2, pad=1)
    return g.graph([x])


def test_compiled_loads_follow_their_token_producers():
    """In a compiled program every load-unit instruction comes right after the previous one or right after
    the compute instruction pushing the token it pops: as early as tokens allow."""
    graph, inputs = four_convs()
    art = lower_graph(graph, SMALL, inputs)
    program = art.program
    assert hoisted_order(program, SMALL.token_depth) == list(range(len(program)))  # already hoisted
    pushers = iter(k for k, i in enumerate(program) if i.exec_unit == Unit.COMPUTE and i.push_prev)
    for k, insn in enumerate(program):
        if insn.exec_unit != Unit.LOAD or k == 0:
            continue
        producer = next(pushers) if insn.pop_next else None
        before = program[k - 1]
        assert before.exec_unit == Unit.LOAD or k - 1 == producer, k
    ranges = [tuple(r.instructions) for r in art.layers]
    assert ranges[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert ranges[-1][1] == len(program) - 1  # then the FINISH


def test_remap_ranges_partition_the_program():
    order = [0, 3, 1, 2, 4, 5]  # instruction 3 (second layer) hoisted into the first layer's range
    assert remap_ranges(order, [(0, 3), (3, 6)]) == [(0, 4), (4, 6)]


def test_second_group_weights_load_while_the_first_group_computes():
    """A layer whose weights need groups in the WGT halves: group 1's weights load during group 0's BGEMM
    (its half was last used by an earlier layer), not after it."""
    g = GraphMaker(9, (7, 7, 512), 2)
    y = g.conv("wide", "input", 512, 3, 2, 2, pad=1)
    graph, inputs = g.graph([y])
    art = lower_graph(graph, EDGE, inputs)
    assert art.layers[0].detail["groups"] >= 2
    result = run(art)
    assert result.golden_ok
    assert not any(is_degenerate(result.outputs[o]) for o in art.outputs), "bit-exact but constant outputs"
    ts = result.timestamps
    wgt = [k for k, i in enumerate(art.program) if i.op == "load" and i.buf == Buffer.WGT]
    bgemms = [k for k, i in enumerate(art.program) if i.op == "bgemm"]
    assert ts.start[wgt[1]] < ts.end[bgemms[0]]


def test_tile_rows_fewest_passes_and_small_first_tile():
    # ResNet-18 layer1 on edge (R = 16): 9 rows fit, 8 rows take fewer passes (504 pixels cost 512)
    assert split_cost(56, 56, 9, 16) == (199, 7)
    assert split_cost(56, 56, 8, 16) == (196, 7)
    # a first tile of 2 rows (112 pixels, 7 passes) adds a tile but no pass; 1 row would add one
    assert first_tile_rows(56, 56, 8, 16) == 2
    assert split_cost(56, 56, 8, 16, first=2) == (196, 8)
    assert first_tile_rows(7, 7, 7, 16) == 1  # 7 + 42 pixels: 1 + 3 passes, as 49 pixels
    assert first_tile_rows(4, 4, 4, 16) == 4  # one pass for the whole map: no smaller first tile
