"""Report building on real simulated artifacts: the numbers add up, and the files and plots are real."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from bitbranch.compiler import ir
from bitbranch.compiler.liveness import is_degenerate
from bitbranch.compiler.lower import lower_graph
from bitbranch.compiler.randgraph import GraphMaker
from bitbranch.isa.hwconfig import get_config
from bitbranch.simulator import run
from bitbranch.workloads.progress import Progress
from bitbranch.workloads.report.accounting import STATES, UNIT_NAMES, account
from bitbranch.workloads.report.summary import HostTiming, build_report, format_console, write_report

SMALL = get_config("small")


def residual_net(seed: int = 3):
    """Stem (8-bit input, 8-bit weights), max pool, residual block, strided block, avg pool, int32 head."""
    g = GraphMaker(seed, (12, 12, 3))
    x = g.conv("stem", "input", 64, 3, 8, 2, pad=1)
    m = g.pool("maxpool", x, "max", 3, 2, pad=1)
    h = g.conv("block.conv1", m, 64, 3, 2, 2, pad=1)
    y = g.conv("block.conv2", h, 64, 3, 2, 2, pad=1, residual=m)
    z = g.conv("down", y, 128, 3, 1, 3, stride=2, pad=1, ternary=True)
    p = g.pool("avgpool", z, "avg", 3, 3, kout=4)
    logits = g.conv("fc", p, 10, 1, 8, 0, out_int32=True)
    graph, inputs = g.graph([logits])
    return graph, inputs


@pytest.fixture(scope="module")
def simulated():
    graph, inputs = residual_net()
    art = lower_graph(graph, SMALL, inputs, meta={"model": "residual_net", "precision": "W2A2"})
    return graph, art, run(art)


def hand_macs(graph: ir.Graph) -> dict[str, tuple[int, int, int]]:
    """Per conv: (MACs, weight planes, input bits) from the IR graph itself."""
    out = {}
    for op in graph.ops:
        if isinstance(op, ir.Conv):
            cout, cin, kh, kw = op.weights.shape
            ho, wo, _ = graph.tensors[op.output].shape
            out[op.name] = (ho * wo * cout * cin * kh * kw, 2 if op.ternary else op.mbits,
                            graph.tensors[op.inputs[0]].bits)
    return out


def test_layer_numbers_add_up(simulated):
    graph, art, result = simulated
    report = build_report(art, result)
    hw = result.hw
    assert result.golden_ok and [r.name for r in report.layers] == [op.name for op in graph.ops]
    assert not any(is_degenerate(result.outputs[o]) for o in art.outputs), "bit-exact but constant outputs"
    want = hand_macs(graph)
    for r in report.layers:
        macs, w, a = want.get(r.name, (0, None, r.a_bits))
        assert (r.macs, r.w_bits, r.a_bits) == (macs, w, a), r.name
        assert r.bitops == macs * (w or 0) * a
        assert r.issued_bitops >= r.bitops  # the array also computes channel padding
        assert 0 <= r.util <= r.array_util <= 1
        assert r.cycles >= r.ideal_cycles == math.ceil(r.bitops / hw.peak_bitops_per_cycle)
        if r.bitops:
            assert r.cycles > 0 and math.isclose(r.util, r.bitops / (hw.peak_bitops_per_cycle * r.cycles))
    assert report.bitops == sum(m * w * a for m, w, a in want.values())
    assert sum(r.issued_bitops for r in report.layers) == result.stats.bitops
    assert report.cycles == result.cycles and all(r.cycles <= report.cycles for r in report.layers)
    excl = [r.excl_cycles for r in report.layers]  # previous layer's end to this one's: partitions the run
    ends = [max(result.timestamps.end[r.instructions[0]:r.instructions[1]]) for r in report.layers]
    assert min(excl) >= 0 and sum(excl) == max(ends) <= report.cycles
    assert report.cycles - sum(excl) <= 2  # only the final FINISH is outside every layer
    assert report.util <= 1 and report.ideal_cycles <= report.cycles
    stem = next(r for r in report.layers if r.name == "stem")
    assert stem.bits == "8/8" and next(r for r in report.layers if r.name == "down").bits == "T/2"


def test_dram_and_weight_memory(simulated):
    graph, art, result = simulated
    report = build_report(art, result)
    assert sum(r.dram_read for r in report.layers) == result.dram_read > 0
    assert sum(r.dram_written for r in report.layers) == result.dram_written > 0
    for r in report.layers:
        if r.bitops:
            assert math.isclose(r.intensity, r.bitops / (r.dram_read + r.dram_written))
    convs = [op for op in graph.ops if isinstance(op, ir.Conv)]
    params = sum(op.weights.size for op in convs)
    packed_bits = sum(op.weights.size * (2 if op.ternary else op.mbits) for op in convs)
    assert report.params == params and report.weight_bytes == packed_bits / 8
    assert math.isclose(report.compression, 32 * params / packed_bits)


def test_per_layer_stalls_partition_the_simulator_totals(simulated):
    _, art, result = simulated
    acc = account(result)
    whole = acc.unit_states()
    for name in UNIT_NAMES:
        u = result.units[name]
        assert whole[name] == {"busy": u.busy, "queue": u.stalled_on_queue, "token": u.stalled_on_token,
                               "dram": u.stalled_on_dram}, name
    report = build_report(art, result)
    inside = {u: {s: sum(r.units[u][s] for r in report.layers) for s in STATES} for u in UNIT_NAMES}
    first_end = [r.instructions for r in report.layers]
    outside = acc.unit_states(first_end[-1][1], None)  # the final FINISH
    assert all(inside[u][s] + outside[u][s] == whole[u][s] for u in UNIT_NAMES for s in STATES)
    assert all(v >= 0 for arr in acc.states.values() for v in arr.tolist())
    for r in report.layers:  # a unit cannot be busy longer than the layer lasts
        assert all(r.units[u]["busy"] <= r.cycles for u in UNIT_NAMES)


def test_clock_host_share_and_totals(simulated):
    _, art, result = simulated
    host = [HostTiming("pack", 0.001), HostTiming("top-5", 0.0005)]
    report = build_report(art, result, clock_mhz=50.0, host=host)
    assert math.isclose(report.latency_ms, result.cycles / 50e3)
    assert math.isclose(report.fps, 50e6 / result.cycles)
    accel_s = result.cycles / 50e6
    assert math.isclose(report.host_share, 0.0015 / (0.0015 + accel_s))
    assert math.isclose(report.fps_serial, 1 / (accel_s + 0.0015))
    assert math.isclose(report.peak_bitops_per_s, SMALL.peak_bitops_per_cycle * 50e6)
    assert math.isclose(report.ridge, SMALL.peak_bitops_per_cycle / SMALL.dram_bytes_per_cycle)
    text = format_console(report)
    assert "bit-exact vs golden: yes" in text and "50 MHz" in text and "stem" in text


def is_png_with_content(path) -> bool:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    img = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=float)
    return img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 5


def test_written_files(simulated, tmp_path):
    _, art, result = simulated
    report = build_report(art, result, host=[HostTiming("top-5", 1e-4)], result_summary="top-5: 3 (50%)")
    paths = write_report(report, tmp_path)
    assert {"md", "json", "csv", "plot_layers", "plot_roofline", "plot_timeline"} <= set(paths)
    for key in ("plot_layers", "plot_roofline", "plot_timeline"):
        assert is_png_with_content(paths[key]), key
    data = json.loads(paths["json"].read_text())
    assert len(data["layers"]) == len(art.layers) and data["totals"]["cycles"] == result.cycles
    assert data["golden_ok"] is True and data["hw"]["name"] == "small" and data["result"] == "top-5: 3 (50%)"
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["name"] for r in rows] == [r.name for r in report.layers]
    assert sum(int(r["compute_busy"]) for r in rows) == sum(r.units["compute"]["busy"] for r in report.layers)
    md = paths["md"].read_text()
    assert "| layer | kind |" in md and "![roofline](roofline.png)" in md


def test_timeline_differs_between_layers_and_runs(simulated, tmp_path):
    """The Gantt is drawn from the run's timestamps: a different program gives a different picture."""
    from bitbranch.workloads.report.plots import plot_timeline

    _, art, result = simulated
    a = plot_timeline(build_report(art, result), tmp_path / "a.png")
    g = GraphMaker(9, (12, 12, 3))
    y = g.conv("only", "input", 64, 3, 2, 2, pad=1)
    graph, inputs = g.graph([y])
    art2 = lower_graph(graph, SMALL, inputs)
    b = plot_timeline(build_report(art2, run(art2)), tmp_path / "b.png")
    assert is_png_with_content(a) and is_png_with_content(b) and a.read_bytes() != b.read_bytes()


def test_progress_bar_redraws_one_line_and_keeps_finished_phases():
    out = io.StringIO()
    with Progress(4, "compile", stream=out, mode="bar") as bar:
        for k in range(4):
            bar.update(text=f"layer{k}")
        bar(0, 2, "lower a")  # a new phase (other total): the finished one keeps its line
        bar(2, 2, "lower done")
    text = out.getvalue()
    assert "compile [" in text and "4/4" in text and "layer3" in text and text.endswith("\n")
    lines = text.split("\n")
    assert len(lines) == 3 and "4/4" in lines[0] and "2/2" in lines[1] and "\r\033[K" in lines[1]


def test_progress_writes_plain_lines_when_not_a_terminal(monkeypatch):
    import bitbranch.workloads.progress as progress

    monkeypatch.setattr(progress, "LINE_INTERVAL", 3600.0)  # only phase ends and the first update print
    log = io.StringIO()  # a StringIO is not a TTY: plain lines
    bar = Progress(0, "compile", stream=log)
    assert bar.mode == "lines"
    for k in range(10):
        bar(k, 10, f"quantize layer{k}")
    bar(10, 10, "quantize done in 1.0 s")
    for k in range(3):
        bar(k, 3, f"lower op{k}")
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and "\033" not in log.getvalue()
    assert [ln.split("] ")[1].split(" ")[0] for ln in lines] == ["0/10", "10/10", "0/3", "2/3"]
    assert "quantize done in 1.0 s" in lines[1] and lines[3].endswith("lower op2")
    quiet = io.StringIO()
    off = Progress(2, "x", stream=quiet, mode="off")
    off(2, 2, "done")
    off.close()
    assert quiet.getvalue() == "" and off.done == 2
    assert Progress(10, "sim", mode="off").line().startswith("sim [" + "." * 28 + "] 0/10")
    with pytest.raises(ValueError, match="progress mode 'fancy'"):
        Progress(1, "x", mode="fancy")


def test_simulator_progress_maps_instructions_to_layers():
    from types import SimpleNamespace

    from bitbranch.workloads.pipeline import _layer_progress

    art = SimpleNamespace(layers=[SimpleNamespace(name="a", instructions=(0, 10)),
                                  SimpleNamespace(name="b", instructions=(10, 25))])
    seen = []
    cb = _layer_progress(art, lambda done, total, text: seen.append((done, total, text)))
    for n in (0, 9, 10, 24, 25, 26):
        cb(n, 26)
    assert seen == [(0, 2, "a"), (0, 2, "a"), (1, 2, "b"), (1, 2, "b"), (2, 2, "b"), (2, 2, "b")]
