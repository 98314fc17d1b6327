"""`bitbranch simulate DIR --input IMAGE` (issue 16): an artifact on a new image, its golden recomputed from the
integer graph the artifact stores.

Real models (the registry's ResNet-18 at 32x32, an MLP on scikit-learn's digits), real photos (scikit-learn's
china.jpg at compile time, flower.jpg as the new input). The new input must reach DRAM exactly as a compile on
that image would put it there, the recomputed golden must equal the simulator's outputs bit for bit, and the
stored graph must reproduce the artifact's own golden on its own input.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images

from bitbranch.cli import main
from bitbranch.compiler.regolden import with_input
from bitbranch.isa.artifact import load_artifact, load_graph
from bitbranch.simulator import run
from bitbranch.workloads.images import default_image, load_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("photos")
    china, flower = load_sample_images().images
    Image.fromarray(china).save(d / "china.png")
    Image.fromarray(flower).save(d / "flower.png")
    return {"china": d / "china.png", "flower": d / "flower.png"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """ResNet-18's random initialisation, saved: every compile below uses the same weights."""
    from bitbranch.workloads.registry import get

    path = tmp_path_factory.mktemp("r18w") / "resnet18.pt"
    torch.save(get("resnet18").build().state_dict(), path)
    return path


def compile_resnet(weights: Path, out: Path, *more: str) -> Path:
    assert main(["compile", "resnet18", "--hw", "small", "--input-shape", "3,32,32", "--weights", str(weights),
                 "-o", str(out), *more]) == 0
    return out


@pytest.fixture(scope="module")
def resnet(tmp_path_factory, weights) -> Path:
    """ResNet-18 at 32x32 on `small`, compiled on the default input, china.jpg."""
    return compile_resnet(weights, tmp_path_factory.mktemp("r18") / "art")


def test_simulate_input_matches_the_recomputed_golden(resnet, photos, capsys):
    capsys.readouterr()
    assert main(["simulate", str(resnet), "--input", str(photos["flower"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # stdout is one JSON document
    assert all(report["outputs_match_golden"].values())
    assert report["input"] == {"file": str(photos["flower"]), "shape": list(SHAPE), "frames": 1,
                               "golden": "recomputed"}

    art = load_artifact(resnet)
    new = with_input(art, [load_image(photos["flower"], SHAPE)])
    result = run(new)
    got, want, old = result.outputs["fc"], new.golden["fc"], art.golden["fc"]
    assert got.dtype == want.dtype and np.array_equal(got, want)  # bit-exact, not just the verdict
    assert not np.array_equal(want, old) and (want != old).mean() > 0.5  # the input mattered
    assert len(np.unique(want)) > 900  # live logits (1000 of them), not a constant or a handful of levels
    assert new.program == art.program and len(new.dram) == len(art.dram)


def test_stored_graph_reproduces_the_artifacts_own_golden(resnet):
    """Round trip: the graph read back from graph.json/graph.npz, on the compile-time input, gives the stored golden
    and rebuilds the very same DRAM image (input placement and packing included)."""
    art = load_artifact(resnet)
    again = with_input(art, [default_image(SHAPE)])
    assert again.golden.keys() == art.golden.keys()
    assert all(np.array_equal(again.golden[k], art.golden[k]) for k in art.golden)
    assert again.dram == art.dram


def test_new_input_equals_compiling_on_it(resnet, weights, photos, tmp_path):
    """The same preprocessing as `compile --input`: compiled on flower.png (same weights, calibrated on china as the
    artifact was), the DRAM image and golden are byte for byte those `simulate --input flower.png` builds."""
    out = compile_resnet(weights, tmp_path / "flower", "--input", str(photos["flower"]),
                         "--calib", str(photos["china"]))
    compiled = load_artifact(out)
    art = load_artifact(resnet)
    assert compiled.program == art.program  # same weights and calibration: the same program
    new = with_input(art, [load_image(photos["flower"], SHAPE)])
    assert new.dram == compiled.dram
    assert all(np.array_equal(new.golden[k], compiled.golden[k]) for k in compiled.golden)


def test_summary_names_the_input(resnet, photos, capsys):
    capsys.readouterr()
    assert main(["simulate", str(resnet), "--input", str(photos["flower"])]) == 0
    out = capsys.readouterr().out
    assert f"input: {photos['flower']} as 3x32x32 8-bit levels; golden recomputed" in out
    assert "golden: all outputs match (fc: ok)" in out


def test_without_input_nothing_changes(resnet, capsys):
    """No --input: the report is the simulator's own, the stored graph is not even read."""
    capsys.readouterr()
    assert main(["simulate", str(resnet), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "input" not in report and report["outputs_match_golden"] == {"fc": True}
    art = load_artifact(resnet)
    assert art.graph is None and set(art.graph_files) == {"graph", "graph_arrays"}


def test_stored_graph_size(resnet):
    """The integer weights are stored a second time (the DRAM image has them as packed planes), packed at their
    own width: ResNet-18's 11.7 M weights (2-bit codes, 8-bit in conv1 and fc) cost 2.24 bits each."""
    art = load_artifact(resnet)
    ops = load_graph(art).spec["ops"]
    packed = [op["weights"] for op in ops if op["kind"] == "conv"]
    assert all(isinstance(w, dict) for w in packed)  # every convolution's weights are the codes its bits promise
    weights = sum(int(np.prod(w["shape"])) for w in packed)
    bits = sum(int(np.prod(w["shape"])) * w["bits"] for w in packed)
    assert weights > 11_000_000 and bits / weights < 2.3
    npz = (resnet / "graph.npz").stat().st_size
    assert npz * 8 < bits * 1.02, (npz, bits / 8)  # packed bits plus a little: requantization constants, zip


# --- a vector input and a batch ------------------------------------------------------------------------------

MLP = textwrap.dedent("""
    from torch import nn
    INPUT_SHAPE = (64,)

    def mlp():
        return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
""")

CNN = textwrap.dedent("""
    from torch import nn
    INPUT_SHAPE = (3, 16, 16)

    def cnn():
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
""")


def _digit(k: int) -> np.ndarray:
    """scikit-learn's k-th 8x8 digit as 8-bit levels (its pixels are 0..16)."""
    return np.round(load_digits().images[k] * (255 / 16)).astype(np.uint8)


def test_vector_input_mlp_on_digits(tmp_path, capsys):
    """An MLP whose input is a 64-vector: the digit .npy goes through the vector path of `run --input`."""
    (tmp_path / "m.py").write_text(MLP)
    np.save(tmp_path / "d0.npy", _digit(0))
    np.save(tmp_path / "d1.npy", _digit(1))
    out = tmp_path / "art"
    assert main(["compile", f"{tmp_path / 'm.py'}:mlp", "--hw", "small", "--input", str(tmp_path / "d0.npy"),
                 "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(out), "--input", str(tmp_path / "d1.npy"), "--json"]) == 0
    assert all(json.loads(capsys.readouterr().out)["outputs_match_golden"].values())
    art = load_artifact(out)
    new = with_input(art, [_digit(1).reshape(-1)])
    result = run(new)
    (name,) = art.outputs
    assert np.array_equal(result.outputs[name], new.golden[name])
    assert not np.array_equal(new.golden[name], art.golden[name])
    assert len(np.unique(new.golden[name])) > 1
    assert np.array_equal(with_input(art, [_digit(0).reshape(-1)]).golden[name], art.golden[name])


def test_batch_input_is_a_stack_of_frames(tmp_path, photos, capsys):
    """A batch artifact (2 frames) takes a .npy stack of 2 images; each frame's golden is recomputed."""
    (tmp_path / "m.py").write_text(CNN)
    out = tmp_path / "art"
    assert main(["compile", f"{tmp_path / 'm.py'}:cnn", "--hw", "small", "--batch", "2", "-o", str(out)]) == 0
    flower = load_image(photos["flower"], (3, 16, 16))
    np.save(tmp_path / "two.npy", np.stack([flower, flower[::-1].copy()]))
    capsys.readouterr()
    assert main(["simulate", str(out), "--input", str(tmp_path / "two.npy"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert all(report["outputs_match_golden"].values()) and report["input"]["frames"] == 2
    art = load_artifact(out)
    new = with_input(art, [flower, flower[::-1].copy()])
    result = run(new)
    assert sorted(new.golden) == sorted(art.golden) and len(new.golden) == 2
    assert all(np.array_equal(result.outputs[k], new.golden[k]) for k in new.golden)
    first, second = (new.golden[k] for k in art.outputs)
    assert not np.array_equal(first, second)  # the two frames differ, so each frame got its own input


def test_verify_input_runs_the_rtl_on_the_new_image(tmp_path, photos, capsys):
    """`bitbranch verify DIR --input IMAGE`: the RTL and the simulator run the new input and both equal the
    recomputed golden (skipped without Verilator)."""
    from bitbranch.rtlharness.build import verilator_bin_dir

    if not (verilator_bin_dir() / "verilator").exists():
        pytest.skip("verilator not installed")
    (tmp_path / "m.py").write_text(CNN)
    out = tmp_path / "art"
    assert main(["compile", f"{tmp_path / 'm.py'}:cnn", "--hw", "small", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--input", str(photos["flower"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["input"]["golden"] == "recomputed"
    assert report["golden_rtl"] and all(report["golden_rtl"].values())
    art = load_artifact(out)
    new = with_input(art, [load_image(photos["flower"], (3, 16, 16))])
    assert any(not np.array_equal(new.golden[k], art.golden[k]) for k in art.golden)


# --- the stored graph, op by op ---------------------------------------------------------------------------------


def _ternary_grouped():
    from bitbranch.compiler.randgraph import GraphMaker

    g = GraphMaker(7, (8, 8, 32), 4)
    a = g.conv("dw", "input", 32, 3, 2, 2, pad=1, groups=32, ternary=True)
    b = g.conv("pw", a, 16, 1, 3, 3)
    return g.graph([g.pool("pool", b, "max", 2, 2)])


def _graph_makers():
    from bitbranch.compiler import randgraph

    return {"residual-block": randgraph.residual_block, "pool-add-upsample-concat": randgraph.pool_add_upsample_concat,
            "ternary-grouped": _ternary_grouped}


@pytest.mark.parametrize("name", list(_graph_makers()))
def test_stored_graph_round_trip(name, tmp_path):
    """Every op kind and weight form survives save + load: with_input on the artifact's own input rebuilds its DRAM
    image and golden outputs exactly."""
    from bitbranch.compiler.lower import lower_graph
    from bitbranch.isa.artifact import save_artifact
    from bitbranch.isa.hwconfig import get_config

    graph, inputs = _graph_makers()[name]()
    path = save_artifact(lower_graph(graph, get_config("small"), inputs), tmp_path / "art")
    art = load_artifact(path)
    again = with_input(art, [np.asarray(inputs["input"], dtype=np.uint8)])
    assert again.dram == art.dram
    assert again.golden.keys() == art.golden.keys()
    assert all(np.array_equal(again.golden[k], art.golden[k]) for k in art.golden)
    assert all(isinstance(op["weights"], dict) for op in load_graph(art).spec["ops"] if op["kind"] == "conv")


def test_weights_off_their_codes_are_stored_plain():
    """Weights that are not the codes the layer's bits promise (a 0 in a 2-bit layer; lowering would refuse them)
    are stored as plain integers, and still come back exactly."""
    from bitbranch.compiler import ir
    from bitbranch.compiler.randgraph import GraphMaker
    from bitbranch.compiler.storedgraph import from_stored, to_stored

    g = GraphMaker(8, (6, 6, 8))
    out = g.conv("c", "input", 8, 3, 2, 2, pad=1)
    g.ops[-1].weights[0, 0, 0, 0] = 0
    graph, inputs = g.graph([out])
    stored = to_stored(graph, graph.ops, [out], im2col=False)
    assert stored.spec["ops"][0]["weights"] == "op0.weights" and stored.arrays["op0.weights"].dtype == np.int8
    again = from_stored(stored, "graph.json")
    assert np.array_equal(again.ops[0].weights, graph.ops[0].weights)
    assert np.array_equal(ir.run_graph(again, inputs)[out], ir.run_graph(graph, inputs)[out])


def test_ceil_mode_average_pool_edges_are_stored(tmp_path, photos):
    """An average pool with ceil_mode (partial last windows: Pool.edge requantizations) on a real model."""
    (tmp_path / "m.py").write_text(textwrap.dedent("""
        from torch import nn
        INPUT_SHAPE = (3, 15, 15)

        def net():
            return nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),
                                 nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(16, 8, 1), nn.ReLU())
    """))
    out = tmp_path / "art"
    assert main(["compile", f"{tmp_path / 'm.py'}:net", "--hw", "small", "-o", str(out)]) == 0
    art = load_artifact(out)
    assert any("edge" in op for op in load_graph(art).spec["ops"])
    again = with_input(art, [default_image((3, 15, 15))])
    assert again.dram == art.dram and all(np.array_equal(again.golden[k], art.golden[k]) for k in art.golden)
    new = with_input(art, [load_image(photos["flower"], (3, 15, 15))])
    assert np.array_equal(run(new).outputs[art.outputs[0]], new.golden[art.outputs[0]])
