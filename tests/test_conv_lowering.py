"""Conv lowering: the compiled program, run on the simulator, reproduces the golden integers exactly."""

import numpy as np
import pytest

from compiler.builder import ProgramBuilder
from compiler.conv import ConvLayer, LoweringError, lower_conv, plan_conv
from isa.hwconfig import get_config
from isa.validate import validate_program

SMALL = get_config("small")


def random_layer(rng, name, in_shape, cout, k, kbits, mbits, kout, stride=1, pad=0, dil=1, ternary=False):
    cin = in_shape[2]
    if ternary:
        w = rng.integers(-1, 2, (cout, cin, k, k))
    else:
        top = (1 << mbits) - 1
        w = 2 * rng.integers(0, top + 1, (cout, cin, k, k)) - top
    mul = rng.integers(1, 1 << 10, cout)
    bias = rng.integers(-(1 << 14), 1 << 14, cout)
    return ConvLayer(name, in_shape, kbits, w, 2 if ternary else mbits, mul, bias, shift=12, kout=kout,
                     stride=stride, pad=pad, dil=dil, ternary=ternary)


def compile_stack(hw, layers, u):
    b = ProgramBuilder(hw)
    spec = b.tensor("input", "planes", u.shape, layers[0].kbits, u)
    addr, golden = spec.addr, u
    records = []
    for i, layer in enumerate(layers):
        golden = layer.golden(golden)
        out = b.tensor(layer.name, "planes", golden.shape, layer.kout)
        records.append(lower_conv(b, layer, addr, out.addr, first=i == 0, last=i == len(layers) - 1))
        addr = out.addr
    name = layers[-1].name
    return b.artifact(["input"], [name], {name: golden}, records, {})


CASES = [
    # in_shape, cout, k, kbits, mbits, kout, stride, pad, dil, ternary
    ((6, 7, 3), 5, 3, 8, 2, 2, 1, 1, 1, False),  # first-layer style: 8-bit planes, 3 channels
    ((9, 9, 70), 4, 3, 2, 2, 2, 2, 1, 1, False),  # stride 2, two channel words
    ((8, 8, 16), 8, 3, 3, 1, 3, 1, 2, 2, False),  # dilation 2, 1-bit weights
    ((5, 6, 64), 6, 1, 4, 4, 1, 1, 0, 1, False),  # 1x1, full word
    ((7, 5, 20), 9, 3, 2, 2, 2, 1, 1, 1, True),  # ternary weights
    ((6, 6, 12), 3, 5, 1, 8, 8, 1, 2, 1, False),  # W8A1 -> 8-bit out, 5x5
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("datapath", ["fast", "bitwise"])
def test_single_layer_matches_golden(case, datapath):
    from simulator import run

    in_shape, cout, k, kbits, mbits, kout, stride, pad, dil, ternary = case
    rng = np.random.default_rng(hash(case) % 2**32)
    layer = random_layer(rng, "conv", in_shape, cout, k, kbits, mbits, kout, stride, pad, dil, ternary)
    u = rng.integers(0, 1 << kbits, in_shape)
    art = compile_stack(SMALL, [layer], u)
    validate_program(art.program, SMALL, len(art.dram))
    result = run(art, datapath=datapath)
    assert result.outputs_match_golden == {"conv": True}
    got = art.output(result.dram, "conv")
    assert np.array_equal(got, art.golden["conv"])
    assert len(np.unique(got)) > 1  # a constant output would hide a broken datapath


def test_three_layer_stack_with_many_tiles():
    from simulator import run

    rng = np.random.default_rng(7)
    layers = [
        random_layer(rng, "a", (24, 16, 3), 16, 3, 8, 2, 2, pad=1),
        random_layer(rng, "b", (24, 16, 16), 16, 3, 2, 2, 2, pad=1),
        random_layer(rng, "c", (24, 16, 16), 8, 3, 2, 2, 2, stride=2, pad=1),
    ]
    u = rng.integers(0, 256, (24, 16, 3))
    art = compile_stack(SMALL, layers, u)
    tiles = [r["tiles"] for r in art.layers]
    assert tiles[0] >= 3 and min(tiles) >= 2, tiles  # buffer reuse (tile i+2) and layer boundaries exercised
    result = run(art)
    assert result.outputs_match_golden == {"c": True}


def test_layer_too_large_for_weight_buffer_is_refused():
    rng = np.random.default_rng(0)
    layer = random_layer(rng, "huge", (4, 4, 512), 64, 3, 2, 8, 2)
    with pytest.raises(LoweringError, match="layer 'huge': weights need .* WGT entries"):
        plan_conv(layer, SMALL)
