"""`bitbranch run` / `bitbranch sweep`: inputs, precision, the pipeline and the sweep grid, with real
compiles (compiler.compile.compile_model, or lower_graph on an IR graph through an injected compile
function) and real simulator runs, in worker processes for the sweep."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from workload_fixtures import graph_compile

from bitbranch import workloads
from bitbranch.compiler.liveness import is_degenerate
from bitbranch.compiler.precision import PrecisionError
from bitbranch.isa.hwconfig import get_config
from bitbranch.workloads import cli
from bitbranch.workloads.explore.executors import ProcessExecutor, SerialExecutor
from bitbranch.workloads.explore.sweep import COLUMNS, Job, evaluate, format_markdown, grid, run_job, sweep, write_sweep
from bitbranch.workloads.images import default_image, load_image
from bitbranch.workloads.pipeline import compile_with_compiler, run_workload
from bitbranch.workloads.precision import label, parse_bits, to_mapping, with_default

TINY = f"{Path(__file__).with_name('workload_fixtures.py')}:tiny_cnn"


# --- inputs ---------------------------------------------------------------------------------------------


def test_default_image_is_the_real_photo_fitted():
    img = default_image((3, 224, 224))
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8 and img.std() > 20
    assert default_image((3, 300, 200)).shape == (300, 200, 3)
    assert default_image((1, 32, 32)).shape == (32, 32, 1)


def test_load_png_and_npy(tmp_path):
    rgb = np.zeros((30, 40, 3), dtype=np.uint8)
    rgb[:, 20:] = (255, 0, 0)  # right half red
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png", (3, 16, 16))
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    assert img[:, 0].max() == 0 and (img[:, -1] == (255, 0, 0)).all()  # crop keeps left black, right red
    np.save(tmp_path / "chw.npy", np.moveaxis(rgb[:16, :16], -1, 0).astype(np.float32))
    assert np.array_equal(load_image(tmp_path / "chw.npy", (3, 16, 16)), rgb[:16, :16])
    np.save(tmp_path / "bad.npy", np.full((16, 16, 3), 0.5))
    with pytest.raises(ValueError, match="integers in 0..255"):
        load_image(tmp_path / "bad.npy", (3, 16, 16))
    with pytest.raises(ValueError, match="unknown input kind"):
        (tmp_path / "x.txt").write_text("hi")
        load_image(tmp_path / "x.txt", (3, 16, 16))
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png", (3, 16, 16))


# --- precision --------------------------------------------------------------------------------------------


def test_bits_replace_the_default_and_keep_layer_overrides(tmp_path):
    base = workloads.get("resnet18").precision
    p = with_default(base, "W4A3")
    assert (p.weight.bits, p.act_bits) == (4, 3) and p.weight_for("conv1").bits == 8
    assert p.weight_for("layer1.0.conv1").bits == 4 and base.weight.bits == 2  # base untouched
    assert label(p) == "W4A3+2" and label(parse_bits("WTA2")) == "WTA2"
    assert parse_bits("WTA2", base).weight_for("layer2.0.conv1").ternary
    f = tmp_path / "p.json"
    f.write_text(json.dumps(to_mapping(p)))
    again = parse_bits(str(f), base)
    assert to_mapping(again) == to_mapping(p) == {"default": "W4A3", "linear_bits": 8,
                                                  "layers": {"conv1": {"w": 8}, "fc": {"w": 8}}}
    with pytest.raises(PrecisionError, match="W9A2"):
        parse_bits("W9A2", base)


# --- the pipeline -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compile_fn", [graph_compile, compile_with_compiler], ids=["lower_graph", "compile_model"])
def test_run_workload_end_to_end(tmp_path, compile_fn):
    from bitbranch.workloads.report.summary import write_report

    spec = workloads.get(TINY)
    image = default_image(spec.input_shape)
    out = run_workload(spec, spec.precision, get_config("small"), image, compile_fn)
    report = out.report
    assert out.result.golden_ok and report.golden_ok and report.model == TINY and report.precision == "W2A2"
    art = out.artifact
    assert not any(is_degenerate(out.result.outputs[o]) for o in art.outputs), "bit-exact but constant outputs"
    assert [h.name for h in report.host] == ["input im2col", "pack input planes", "read outputs", "post-process"]
    assert all(h.seconds > 0 for h in report.host) and 0 < report.host_share < 1
    logits = out.artifact.golden["fc"].reshape(-1)
    assert out.host_result.indices[0, 0] == int(np.argmax(logits))  # top-1 of the simulated int32 logits
    if compile_fn is compile_with_compiler:  # the IR's logit scale reaches the host: real probabilities
        scale = out.artifact.meta["logits_scale"]["fc"]
        want = np.exp(scale * (logits - logits.max()))
        assert np.isclose(out.host_result.probs[0, 0].item(), want.max() / want.sum())
    assert report.wall["compile_s"] > 0 and report.wall["simulate_s"] > 0
    assert write_report(report, tmp_path, plots=False)["json"].exists()


def test_compile_model_reports_progress_per_layer_and_phase():
    from bitbranch.compiler.compile import compile_model

    spec = workloads.get(TINY)
    calls: list[tuple[int, int, str]] = []
    compile_model(spec.build(), spec.precision, get_config("small"), default_image(spec.input_shape),
                  progress=lambda d, n, text: calls.append((d, n, text)))
    phases = [t.split(" ")[0] for _, _, t in calls]
    assert list(dict.fromkeys(phases)) == ["quantize", "calibrate", "integerize", "golden", "lower"]
    quantize = [c for c in calls if c[2].startswith("quantize")]
    assert [c[:2] for c in quantize] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert [c[2] for c in quantize[:4]] == [f"quantize {p}" for p in ("conv1", "conv2", "conv3", "fc")]
    assert quantize[-1][2].startswith("quantize done in ") and quantize[-1][2].endswith(" s")
    lower = [c for c in calls if c[2].startswith("lower")]
    assert lower[0][:2] == (0, lower[0][1]) and lower[-1][0] == lower[-1][1] == len(lower) - 1 > 3
    assert all(0 <= d <= n for d, n, _ in calls)


def parse(add, argv):
    p = argparse.ArgumentParser()
    add(p)
    return p.parse_args(argv)


def test_cmd_run_injects_precision_hw_clock_and_image(monkeypatch, tmp_path, capsys):
    """What `bitbranch run` hands the compiler, through a recording compiler.compile module."""
    seen = {}

    def compile_model(model, precision, hw, image, progress=None):
        seen.update(precision=label(precision), hw=hw.name, clock=hw.clock_mhz, shape=image.shape,
                    pixel=tuple(image[0, 0]))
        return graph_compile(model, precision, hw, image, progress)

    monkeypatch.setitem(sys.modules, "bitbranch.compiler.compile", types.SimpleNamespace(compile_model=compile_model))
    png = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16, 3), (7, 8, 9), dtype=np.uint8)).save(png)
    args = parse(cli.add_arguments_run, [TINY, "--bits", "W1A1", "--hw", "small", "--clock-mhz", "250",
                                         "--input", str(png), "--out", str(tmp_path / "r"), "--no-plots"])
    assert cli.cmd_run(args) == 0
    assert seen == {"precision": "W1A1", "hw": "small", "clock": 250.0, "shape": (16, 16, 3), "pixel": (7, 8, 9)}
    assert "bit-exact vs golden: yes" in capsys.readouterr().out


def test_bitbranch_run_end_to_end(tmp_path, capsys):
    """The real command (bitbranch.cli) with the real compiler on a user model file, a precision file and JSON."""
    from bitbranch.cli import main

    prec = tmp_path / "p.toml"
    prec.write_text('default = "W1A1"\n[layers]\n"conv2" = { w = 4 }\n')
    out = tmp_path / "r"
    assert main(["run", TINY, "--precision", str(prec), "--hw", "small", "--clock-mhz", "250", "--out", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # stdout is exactly the JSON object; progress went to stderr
    err = captured.err.splitlines()  # not a terminal: plain progress lines, no carriage returns
    assert "\r" not in captured.err and any("quantize conv1" in ln for ln in err), captured.err
    done = [ln.split(" done in ")[0].rsplit(" ", 1)[1] for ln in err if " done in " in ln]
    assert done == ["quantize", "calibrate", "integerize", "golden", "lower"], captured.err
    sim = [ln.split("] ")[1].split()[0].split("/") for ln in err if ln.startswith("simulate [")]
    assert sim[-1][0] == sim[-1][1] != "0", captured.err  # the last simulate line: every layer done
    assert data["clock_mhz"] == 250.0 and data["golden_ok"] is True and data["precision"] == "W1A1+1"
    assert all(r["levels"] and r["distinct"] > 1 for r in data["layers"]), data["layers"]  # live, not only equal
    assert data["precision_spec"]["layers"] == {"conv2": {"w": 4}} and data["input"] == "sklearn china.jpg"
    assert math_close(data["totals"]["latency_ms"], data["totals"]["cycles"] / 250e3)
    bits = {layer["name"]: layer["bits"] for layer in data["layers"]}
    assert bits["conv1"] == "1/8" and bits["conv2"] == "4/1" and bits["conv3"] == "1/1", bits
    assert {"report.md", "report.json", "layers.csv", "layers.png", "roofline.png", "timeline.png"} <= {
        p.name for p in out.iterdir()}
    assert main(["run", "no_such_model"]) == 2 and "unknown model" in capsys.readouterr().err


def math_close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


# --- sweeps ---------------------------------------------------------------------------------------------


def test_grid_order_and_bad_precision():
    jobs = grid("m", ["W1A1", "W2A2"], ["small", "edge"])
    assert [(j.precision, j.preset) for j in jobs] == [("W1A1", "small"), ("W2A2", "small"), ("W1A1", "edge"),
                                                       ("W2A2", "edge")]
    with pytest.raises(PrecisionError):
        grid("m", ["W2A2", "W0A2"], ["edge"])


def test_evaluate_row_and_failed_point():
    row = evaluate(TINY, "W2A2", "small", graph_compile)
    assert set(COLUMNS) == set(row) and row["golden_ok"] is True and row["cycles"] > 0
    assert math_close(row["fps"], 1e3 / row["latency_ms"])
    bad = run_job(Job(TINY, "W2A2", "no-such-preset"), graph_compile)
    assert "unknown hardware preset 'no-such-preset'" in bad["error"] and "cycles" not in bad


def test_sweep_in_worker_processes(tmp_path):
    """Real lower_graph compiles and simulator runs in two worker processes (the compile function is injected)."""
    res = sweep(TINY, ["W1A1", "W2A2"], ["small", "edge"], ProcessExecutor(2), graph_compile)
    assert [(r["precision"], r["preset"]) for r in res.rows] == [(j.precision, j.preset) for j in res.jobs]
    assert all(not r["error"] and r["golden_ok"] for r in res.rows), [r.get("error") for r in res.rows]
    for preset in ("small", "edge"):  # fewer branches, fewer cycles, on every preset
        assert res.row("W1A1", preset)["cycles"] < res.row("W2A2", preset)["cycles"]
        assert res.row("W1A1", preset)["compression"] == 32.0 and res.row("W2A2", preset)["compression"] == 16.0
    assert res.row("W2A2", "edge")["fps"] > res.row("W2A2", "small")["fps"]  # the bigger array is faster
    serial = sweep(TINY, ["W2A2"], ["small"], SerialExecutor(), graph_compile)
    timed = {"compile_s", "simulate_s", "host_share"}  # wall-clock measurements differ run to run
    assert {k: v for k, v in serial.rows[0].items() if k not in timed} == {
        k: v for k, v in res.row("W2A2", "small").items() if k not in timed}

    def refuse(*args, **kwargs):
        raise ValueError("refused by the test")

    assert "refused by the test" in sweep(TINY, ["W2A2"], ["edge"], SerialExecutor(), refuse).rows[0]["error"]
    files = write_sweep(res, tmp_path)
    md = files["md"].read_text()
    assert md.count("\n| ") == 1 + 4 and "| W1A1 | small |" in md
    assert len(files["csv"].read_text().strip().splitlines()) == 5
    from test_workloads_report import is_png_with_content

    assert is_png_with_content(files["plot_fps"]) and is_png_with_content(files["plot_util"])
    assert is_png_with_content(files["plot_efficiency"])
    for r in res.rows:  # the cost columns (docs/cost.md)
        assert r["energy_uj"] > 0 and r["area_mm2"] > 0
        assert math_close(r["fps_per_w"], r["fps"] / r["power_w"])
        assert math_close(r["fps_per_mm2"], r["fps"] / r["area_mm2"])
    assert res.row("W2A2", "edge")["area_mm2"] > res.row("W2A2", "small")["area_mm2"]
    assert format_markdown(res).startswith("| model | precision | preset |")
