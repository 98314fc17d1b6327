"""Lowering of IR graphs: compiled programs, run on the simulator, reproduce the golden integers exactly."""

import dataclasses

import numpy as np
import pytest

from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.randgraph import GraphMaker, pool_add_upsample_concat, residual_block
from bitbranch.compiler.tiling import LoweringError
from bitbranch.isa.artifact import LayerRecord
from bitbranch.isa.hwconfig import get_config
from bitbranch.isa.spec import Buffer
from bitbranch.isa.validate import validate_program
from bitbranch.simulator import run

SMALL = get_config("small")


def check(graph, inputs, hw=SMALL, datapath="fast"):
    art = lower_graph(graph, hw, inputs)
    validate_program(art.program, hw, len(art.dram))
    result = run(art, datapath=datapath)
    assert result.outputs_match_golden and all(result.outputs_match_golden.values()), result.outputs_match_golden
    for name in art.outputs:
        got = art.output(result.dram, name)
        assert len(np.unique(got)) > 1, f"{name} is constant: a broken datapath could hide behind it"
    return art, result


CONV_CASES = [
    # in_shape, in_bits, cout, k, mbits, kout, stride, pad, dil, ternary
    ((6, 7, 3), 8, 5, 3, 2, 2, 1, 1, 1, False),  # first-layer style: 8-bit planes, 3 channels
    ((9, 9, 70), 2, 4, 3, 2, 2, 2, 1, 1, False),  # stride 2, two input channel words
    ((8, 8, 16), 3, 8, 3, 1, 3, 1, 2, 2, False),  # dilation 2, 1-bit weights
    ((5, 6, 64), 4, 6, 1, 4, 1, 1, 0, 1, False),  # 1x1, full word
    ((7, 5, 20), 2, 9, 3, 2, 2, 1, 1, 1, True),  # ternary weights
    ((6, 6, 12), 1, 3, 5, 8, 8, 1, 2, 1, False),  # W8A1 -> 8-bit out, 5x5
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"conv{i}" for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("datapath", ["fast", "bitwise"])
def test_single_conv(case, datapath):
    in_shape, in_bits, cout, k, mbits, kout, stride, pad, dil, ternary = case
    g = GraphMaker(sum(in_shape) + cout, in_shape, in_bits)
    y = g.conv("conv", "input", cout, k, mbits, kout, stride, pad, dil, ternary)
    check(*g.graph([y]), datapath=datapath)


def test_conv_stack_with_many_tiles():
    g = GraphMaker(7, (24, 16, 3))
    a = g.conv("a", "input", 16, 3, 2, 2, pad=1)
    b = g.conv("b", a, 16, 3, 2, 2, pad=1)
    c = g.conv("c", b, 8, 3, 2, 2, stride=2, pad=1)
    art, _ = check(*g.graph([c]))
    tiles = [r.tiles for r in art.layers]
    assert tiles[0] >= 3 and min(tiles) >= 2, tiles  # buffer reuse (tile i+2) and layer boundaries exercised
    assert all(r.tile_cols == r.out_shape[1] for r in art.layers)  # whole rows whenever they fit


def test_residual_block_with_downsample_and_int32_head():
    art, _ = check(*residual_block())
    assert art.tensors["fc"].layout == "int32" and art.golden["fc"].dtype == np.int32


def test_weight_groups_when_weights_do_not_fit():
    g = GraphMaker(3, (4, 4, 64), 2)
    # 4 output words x 16 column tiles x 9 entries > 512 (half of WGT): groups of 3 words, then 1 word
    hw = dataclasses.replace(SMALL, const_entries=256)
    y = g.conv("wide", "input", 250, 3, 1, 2, pad=1)
    art, _ = check(*g.graph([y]), hw=hw)
    assert art.layers[0].detail["groups"] == 2


def test_layers_alternate_weight_halves_and_prefetch():
    g = GraphMaker(4, (12, 12, 64), 2)
    x = "input"
    for k in range(4):
        x = g.conv(f"c{k}", x, 64, 3, 2, 2, pad=1)
    art, result = check(*g.graph([x]))
    wgt_loads = [i for i in art.program if i.op == "load" and i.buf == 1]
    assert {i.sram for i in wgt_loads} == {0, SMALL.wgt_entries // 2}
    # a prefetched weight load starts before the previous layer's last compute instruction ends
    starts = {k: result.timestamps.start[k] for k, i in enumerate(art.program) if i.op == "load" and i.buf == 1}
    second = sorted(starts)[1]
    prev_layer_end = max(result.timestamps.end[k] for k in range(*art.layers[0].instructions)
                         if art.program[k].op in ("bgemm", "requant"))
    assert starts[second] < prev_layer_end


def test_pooling_add_upsample_concat():
    check(*pool_add_upsample_concat())


def test_avgpool_and_add_with_slices_past_the_last_channel_on_edge():
    g = GraphMaker(11, (6, 6, 24), 2)  # on edge a word has 4 slices of 16 lanes: slices 2 and 3 hold no channel
    a = g.conv("a", "input", 24, 3, 2, 2, pad=1)
    p = g.pool("avgpool", a, "avg", 2, 2, kout=3)
    s = g.add("add", a, "input", 2)
    check(*g.graph([p, s]), hw=get_config("edge"))


def test_concat_of_partial_words_is_copied_and_needs_whole_lane_slices():
    """20 + 20 channels on `small` (4 lanes): not whole words, so a copy layer writes the concat (bit-exact);
    18 channels are not whole 4-lane slices either: refused by name."""
    from bitbranch.simulator import run

    for width, ok in ((20, True), (18, False)):
        g = GraphMaker(1, (4, 4, 3))
        a = g.conv("a", "input", width, 1, 2, 2)
        b = g.conv("b", "input", 20, 1, 2, 2)
        c = g.concat("cat", [a, b])
        graph, inputs = g.graph([c])
        if ok:
            art = lower_graph(graph, SMALL, inputs)
            assert layer(art, "cat").kind == "concat" and run(art).golden_ok
        else:
            with pytest.raises(LoweringError, match="concat 'cat': input 'a' has 18 channels"):
                lower_graph(graph, SMALL, inputs)


def layer(art, name: str) -> LayerRecord:
    return next(r for r in art.layers if r.name == name)


def assert_width_tiled(art, name: str) -> None:
    """The layer ran in rectangles narrower than its output rows, several of them per row."""
    rec = layer(art, name)
    assert 0 < rec.tile_cols < rec.out_shape[1] / 2, rec


@pytest.mark.parametrize("in_shape,in_bits,k,stride,pad,dil", [
    ((7, 90, 70), 2, 3, 2, 1, 1),  # stride 2, two input channel words; one padded row needs 552 > 512 INP
    ((8, 70, 64), 4, 3, 1, 2, 2),  # dilation 2: the column halo is 4 pixels
    ((5, 41, 64), 8, 5, 3, 2, 1),  # stride 3, 5x5, 8-bit planes
])
def test_conv_tiles_along_the_width(in_shape, in_bits, k, stride, pad, dil):
    g = GraphMaker(sum(in_shape) + k, in_shape, in_bits)
    y = g.conv("conv", "input", 20, k, 2, 2, stride=stride, pad=pad, dil=dil)
    art, _ = check(*g.graph([y]), datapath="bitwise")
    assert_width_tiled(art, "conv")


def test_pool_add_upsample_concat_int32_tile_along_the_width():
    g = GraphMaker(9, (6, 140, 64), 2)  # a padded input row is 284 INP entries: 3 of them exceed half of INP
    a = g.conv("a", "input", 64, 3, 2, 2, pad=1)
    m = g.pool("maxpool", a, "max", 3, 2, pad=1)
    p = g.pool("avgpool", a, "avg", 2, 2, kout=3)
    b = g.conv("b", a, 64, 3, 2, 2, pad=1)
    s = g.add("add", a, b, 2)  # a row of each operand (280 entries) exceeds its quarter of INP
    u = g.upsample("up", s, 2)
    u2 = g.upsample("up2", b, 2)
    cat = g.concat("cat", [u, u2])  # partial-pixel stores of rectangles into the concat tensor
    head = g.conv("head", cat, 10, 1, 2, 0, out_int32=True)
    art, _ = check(*g.graph([head, m, p]))
    for name in ("a", "maxpool", "avgpool", "b", "add", "up", "up2", "head"):
        assert_width_tiled(art, name)
    assert layer(art, "up").tile_cols % 2 == 0


def test_residual_conv_tiles_along_the_width():
    g = GraphMaker(12, (6, 120, 64), 2)
    h = g.conv("conv1", "input", 64, 3, 2, 2, pad=1)
    y = g.conv("conv2", h, 64, 3, 2, 2, pad=1, residual="input")
    art, _ = check(*g.graph([y]))
    assert_width_tiled(art, "conv2")


@pytest.mark.parametrize("in_shape,cout,k,mbits,pad,dil,ternary,out_int32", [
    ((1, 1, 4096), 100, 1, 2, 0, 1, False, True),  # a big Linear: 2048 WGT entries per output word
    ((4, 4, 1024), 16, 3, 2, 1, 1, True, False),  # ternary, many channels: chunks of channel words
    ((11, 11, 64), 16, 7, 8, 6, 2, False, False),  # 8-bit 7x7 dilated: chunks of two kernel rows
    ((7, 7, 512), 20, 7, 2, 0, 1, False, True),  # VGG's first Linear as a 7x7 conv: one pixel's window needs
    # 784 INP entries > 512, so the chunks take two kernel rows and each step loads only their input rows
])
def test_reduction_split_across_weight_chunks(in_shape, cout, k, mbits, pad, dil, ternary, out_int32):
    g = GraphMaker(cout + k, in_shape, 2)
    y = g.conv("conv", "input", cout, k, mbits, 2, pad=pad, dil=dil, ternary=ternary, out_int32=out_int32)
    art, _ = check(*g.graph([y]), datapath="bitwise")
    assert art.layers[0].detail["chunks"] > 1
    accumulating = [i for i in art.program if i.op == "bgemm" and i.accumulate]
    assert accumulating and all(i.wgt in (0, SMALL.wgt_entries // 2) for i in art.program if i.op == "bgemm")


def test_reduction_split_with_residual_and_width_tiles_between_layers():
    g = GraphMaker(6, (5, 6, 512), 2)
    h = g.conv("c1", "input", 80, 3, 2, 2, pad=1)
    y = g.conv("c2", "input", 80, 3, 2, 2, pad=1, residual=h)
    z = g.conv("c3", y, 64, 3, 2, 2, pad=1)  # prefetch-capable layer after a split one
    art, _ = check(*g.graph([z]))
    c2 = layer(art, "c2")
    assert c2.detail["chunks"] > 1 and c2.tile_cols < 6 and c2.detail["groups"] == 2


def test_global_average_pool_over_channel_word_groups():
    g = GraphMaker(14, (7, 7, 512), 2)
    x = g.conv("conv", "input", 512, 1, 2, 8)  # 8-bit levels: the 7x7 window of a pixel needs 3136 INP entries
    p = g.pool("avgpool", x, "avg", 7, 7, kout=4)  # and 128 CONST entries: 8 groups of one word
    logits = g.conv("fc", p, 10, 1, 2, 0, out_int32=True)
    art, _ = check(*g.graph([logits, p]))
    assert layer(art, "avgpool").detail["groups"] == 8


def test_global_average_pool_whose_last_word_group_is_shorter():
    """16 channel words of 8-bit levels over a 13x13 window on 'edge': groups of 12 words (half of INP), so the
    last group has 4. Its LOADs put a pixel's 4 words densely; POOL read them 12 words apart and 215 of its 256
    outputs were wrong (SqueezeNet's 1000-class classifier at A8, issue 16)."""
    g = GraphMaker(15, (13, 13, 64), 2)
    x = g.conv("conv", "input", 1024, 1, 2, 8)
    p = g.pool("avgpool", x, "avg", 13, 13, kout=8)
    op = g.ops[-1]  # the random requant's shift (4 + k) would put every average on level 0: 3·sum >> 9 spreads it
    g.ops[-1] = dataclasses.replace(op, requant=dataclasses.replace(op.requant, shift=9))
    art, _ = check(*g.graph([p]), hw=get_config("edge"))
    assert layer(art, "avgpool").detail["groups"] == 2
    start, end = layer(art, "avgpool").instructions
    lens = sorted({i.len for i in art.program[start:end] if i.op == "load" and i.buf == Buffer.INP})
    assert lens == [32, 96]  # 4 and 12 words of 8 planes


def test_kernel_row_too_wide_for_wgt_is_refused():
    g = GraphMaker(2, (15, 15, 1024), 2)
    y = g.conv("huge", "input", 64, 15, 8, 2)
    graph, inputs = g.graph([y])
    with pytest.raises(LoweringError, match="layer 'huge': one kernel row of one channel word needs 1920 WGT"):
        lower_graph(graph, SMALL, inputs)


@pytest.mark.parametrize("stride,pad,dil,k", [(1, 0, 1, 3), (2, 3, 1, 7), (2, 1, 2, 3), (3, 2, 1, 5)])
def test_im2col_rewrite_keeps_every_integer(stride, pad, dil, k):
    from bitbranch.compiler import ir
    from bitbranch.compiler.rewrite import im2col_input

    g = GraphMaker(stride * 10 + k, (11, 13, 3))
    y = g.conv("conv1", "input", 8, k, 2, 2, stride=stride, pad=pad, dil=dil)
    z = g.conv("conv2", y, 8, 3, 2, 2, pad=1)
    graph, inputs = g.graph([z])
    rewritten, new_inputs, transforms = im2col_input(graph, inputs, 64)
    assert list(transforms) == ["input.im2col"] and rewritten.ops[0].weights.shape[2:] == (1, 1)
    want, got = ir.run_graph(graph, inputs), ir.run_graph(rewritten, new_inputs)
    assert np.array_equal(want["conv1"], got["conv1"]) and np.array_equal(want["conv2"], got["conv2"])
    check(rewritten, new_inputs)


def test_average_pool_with_lane_slices_past_the_last_channel():
    """24 channels on edge: 2 of the word's 4 lane slices hold no channel and get all-zero constants."""
    g = GraphMaker(12, (8, 8, 3))
    a = g.conv("a", "input", 24, 3, 2, 2, pad=1)
    p = g.pool("avgpool", a, "avg", 2, 2, kout=4)
    check(*g.graph([p]), hw=get_config("edge"))


@pytest.mark.parametrize(("kh", "kw", "pad", "pad_w", "stride"), [
    (1, 7, 0, 3, 1),  # Inception-v3's 1x7 ...
    (7, 1, 3, 0, 1),  # ... and 7x1
    (3, 5, 1, 2, 2),  # both padded, stride 2
])
def test_non_square_padding_in_width_tiles(kh, kw, pad, pad_w, stride):
    """Rows and columns padded differently (ir.Conv.pad_w): the rectangles' column halos and the LOAD's pad_left /
    pad_right follow pad_w, the rows' pad_top / pad_bottom follow pad; bit-exact against the golden model."""
    from bitbranch.compiler import ir

    g = GraphMaker(3, (7, 140, 70), 2)  # one padded input row of 1x7 needs 146 x 4 > 512 INP entries
    g.conv("c", "input", 16, 1, 2, 2)
    op = g.ops[-1]
    h, w, cin = g.tensors["input"].shape
    top = 3
    op.weights = 2 * g.rng.integers(0, top + 1, (16, cin, kh, kw)) - top
    g.ops[-1] = dataclasses.replace(op, pad=pad, pad_w=pad_w, stride=stride)
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad_w - kw) // stride + 1
    g.tensors["c"] = ir.Tensor("c", (ho, wo, 16), 2)
    art, _ = check(*g.graph(["c"]))
    assert_width_tiled(art, "c")
    assert layer(art, "c").detail["pad_w"] == pad_w
