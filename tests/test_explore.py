"""`bitbranch explore`: space files, the per-point store (re-runs and enlarged spaces), constraints and
failures as rows, Pareto fronts, result files, and the CLI (one-line errors, --json). The Dask runs are in
test_explore_dask.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bitbranch.cli import main
from bitbranch.workloads.explore.engine import TIMINGS, explore
from bitbranch.workloads.explore.executors import SerialExecutor
from bitbranch.workloads.explore.pareto import front_mask
from bitbranch.workloads.explore.results import write_results
from bitbranch.workloads.explore.space import SpaceError, buffer_bytes, load_space, parse_space

TINY = f"{Path(__file__).with_name('explore_tiny.py')}:tiny"


def write(tmp_path: Path, text: str, name: str = "space.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- space files ---------------------------------------------------------------------------------------


def test_space_lists_ranges_and_ties(tmp_path):
    space = load_space(write(tmp_path, """
base = "small"
precisions = ["W1A1", "W2A2"]
[hw]
array_rows = [4, 8]
dram_bytes_per_cycle = { start = 8, stop = 32, step = 8 }
wgt_entries = { start = 256, stop = 1024, factor = 2 }
array_cols = "array_rows"
clock_mhz = [100, 250.5]
"""))
    assert space.base.name == "small"
    assert space.fields["dram_bytes_per_cycle"] == [8, 16, 24, 32]
    assert space.fields["wgt_entries"] == [256, 512, 1024]
    assert space.fields["clock_mhz"] == [100.0, 250.5]
    assert space.ties == {"array_cols": "array_rows"}
    assert space.varied == ["array_rows", "array_cols", "wgt_entries", "dram_bytes_per_cycle", "clock_mhz"]
    points = list(space.hw_points())
    assert len(points) == space.size() == 2 * 4 * 3 * 2
    assert all(c.hw.array_cols == c.hw.array_rows for c in points)
    assert points[0].hw.inp_entries == space.base.inp_entries  # unlisted fields from the base


@pytest.mark.parametrize("text, where", [
    ("[hw]\narray_rowz = [1]", "hw.array_rowz: not a hardware field"),
    ("[hw]\nname = ['x']", "hw.name: not a hardware field"),
    ("[hw]\narray_rows = { start = 8, stop = 4, step = 1 }", "hw.array_rows: stop 4 < start 8"),
    ("[hw]\narray_rows = { start = 8, stop = 16 }", "hw.array_rows: a range needs exactly one of step or factor"),
    ("[hw]\narray_rows = [8, 'x']", "hw.array_rows: value 'x' is not a number"),
    ("[hw]\narray_rows = [8.5]", "hw.array_rows: value 8.5 must be an integer"),
    ("[hw]\narray_rows = [0, 8]", "hw.array_rows: every value must be > 0"),
    ("[hw]\narray_rows = 'nope'", "hw.array_rows: tie 'nope' is not another hardware field"),
    ("precisions = ['W9A2']", "precisions: W9A2:"),
    ("precisions = ['missing.toml']", "precisions: missing.toml:"),
    ("base = 'huge'", "base: unknown hardware preset 'huge'"),
    ("[constraints]\nmin_fps = 'fast'", "constraints.min_fps: expected float"),
    ("[constraints]\nmax_area = 3", "constraints.max_area: unknown constraint"),
    ("grid = 1", "grid: unknown key"),
    ("[hw\n", "not valid TOML"),
])
def test_space_errors_name_file_and_field(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and where in msg and "\n" not in msg


def test_cli_space_error_is_one_line_exit_2(tmp_path, capsys):
    path = write(tmp_path, "[hw]\narray_rows = { start = 1 }")
    assert main(["explore", "resnet18", "--space", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: hw.array_rows: a range needs start and stop"
    assert main(["explore", "resnet18", "--space", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: cannot read" in capsys.readouterr().err
    ok = write(tmp_path, "[hw]\narray_rows = [8, 16]", "ok.toml")
    assert main(["explore", "resnet18", "--space", str(ok), "--heatmap", "array_rows,clock_mhz"]) == 2
    assert "--heatmap" in capsys.readouterr().err


# --- Pareto --------------------------------------------------------------------------------------------


def test_front_mask():
    fps = [10, 20, 20, 5, 30]
    cost = [1, 2, 3, 1, 4]
    assert front_mask(fps, [cost]).tolist() == [True, True, False, False, True]  # 3 dominated by 0; 2 by 1
    area = [9, 9, 1, 9, 9]
    assert front_mask(fps, [cost, area]).tolist() == [True, True, True, False, True]
    rng = np.random.default_rng(0)
    s, c = rng.random(50), rng.random((2, 50))
    keep = front_mask(s, c)
    for i in range(50):  # brute force
        dominated = any(s[j] >= s[i] and (c[:, j] <= c[:, i]).all() and (s[j] > s[i] or (c[:, j] < c[:, i]).any())
                        for j in range(50))
        assert keep[i] == (not dominated)


# --- local exploration -------------------------------------------------------------------------------------

SPACE = """
base = "edge"
precisions = ["W1A1", "W2A2"]
[hw]
array_rows = [4, 8]
array_cols = [16, 48]
inp_entries = [64, 4096]
dram_bytes_per_cycle = [32, 48]
[constraints]
rtl_supported = true
max_buffer_bytes = 2_000_000
"""


def stable(rows):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def test_explore_rows_store_and_rerun(tmp_path):
    space = load_space(write(tmp_path, SPACE))
    out = tmp_path / "out"
    res = explore([TINY], space, out, SerialExecutor())
    assert len(res.rows) == 2 * 16
    by = {(r["precision"], r["point"]): r for r in res.rows}
    ok = by[("W2A2", "array_rows=8,array_cols=16,inp_entries=4096,dram_bytes_per_cycle=32")]
    assert ok["status"] == "ok" and ok["golden_ok"] is True and ok["fps"] > 0 and ok["cycles"] > 0
    assert ok["peak_gbitops_s"] == 8 * 16 * 64 * 2 * 200 / 1e3 and ok["buffer_kib"] > 0
    assert ok["area_mm2"] > 0 and ok["energy_uj"] > 0  # the Pareto front's cost axes (docs/cost.md)
    bad = by[("W2A2", "array_rows=8,array_cols=48,inp_entries=4096,dram_bytes_per_cycle=32")]
    assert bad["status"] == "rejected" and bad["reason"].startswith("invalid config: word_bits=64 must be a multiple")
    rtl = by[("W1A1", "array_rows=4,array_cols=16,inp_entries=4096,dram_bytes_per_cycle=48")]
    assert rtl["status"] == "rejected"
    assert "rtl_supported: dram_bytes_per_cycle=48 is not a power of two" in rtl["reason"]
    small = by[("W1A1", "array_rows=4,array_cols=16,inp_entries=64,dram_bytes_per_cycle=32")]
    assert small["status"] == "failed" and small["reason"].startswith("LoweringError")
    assert res.computed == 2 * 4 and res.prepared == 2  # 4 valid configs x 2 precisions; quantized once each
    assert sum(1 for r in res.rows if r["pareto"]) >= 2
    assert all(r["status"] == "ok" for r in res.rows if r["pareto"])

    again = explore([TINY], space, out, SerialExecutor())
    assert (again.computed, again.cached, again.prepared) == (0, 8, 0)
    assert stable(again.rows) == stable(res.rows)

    bigger = load_space(write(tmp_path, SPACE.replace("array_rows = [4, 8]", "array_rows = [4, 8, 16]")))
    more = explore([TINY], bigger, out, SerialExecutor())
    assert (more.computed, more.cached, more.prepared) == (4, 8, 2)  # only the array_rows=16 points
    def result(r):  # the point's own numbers (its front flags depend on the other points)
        return {k: v for k, v in r.items() if not k.startswith("pareto")}

    old = {r["key"]: result(r) for r in stable(res.rows) if r["key"]}
    assert all(result(r) == old[r["key"]] for r in stable(more.rows) if r["key"] in old)


def test_min_fps_constraint_and_files(tmp_path):
    space = load_space(write(tmp_path, """
precisions = ["W2A2"]
[hw]
array_rows = [4, 8, 16]
array_cols = [8, 16]
[constraints]
min_fps = 40000
"""))
    res = explore([TINY], space, tmp_path / "out", SerialExecutor())
    slow = [r for r in res.rows if r["status"] == "rejected"]
    assert slow and all(r["reason"].startswith("constraint min_fps:") and r["fps"] < 40000 for r in slow)
    assert all(r["fps"] >= 40000 for r in res.by_status("ok"))
    files = write_results(res, tmp_path / "out", heatmap=("array_cols", "array_rows"))
    assert {"md", "csv", "jsonl", "pareto_png", "params_png", "heatmap_png"} <= set(files)
    md = files["md"].read_text()
    assert "## Pareto front" in md and "★" in md and "constraint min_fps" in md
    lines = files["jsonl"].read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["precision"] == "W2A2"
    header = files["csv"].read_text().splitlines()[0].split(",")
    assert {"fps", "peak_gbitops_s", "buffer_kib", "area_mm2", "energy_uj", "pareto", "pareto_area_mm2",
            "pareto_energy_uj", "array_rows", "reason"} <= set(header)
    for f in ("pareto_png", "params_png", "heatmap_png"):
        assert files[f].read_bytes()[:4] == b"\x89PNG"


def test_parse_space_precision_file(tmp_path):
    (tmp_path / "mixed.toml").write_text('default = "W2A2"\n[layers]\n"conv1" = { w = 8 }\n')
    space = parse_space({"precisions": ["mixed.toml", "W1A1"]}, "s.toml", tmp_path / "s.toml")
    assert space.precisions == [str(tmp_path / "mixed.toml"), "W1A1"]
    res = explore([TINY], space, tmp_path / "out", SerialExecutor())
    assert [r["precision"] for r in res.rows] == ["W2A2+1", "W1A1"]  # the file replaces the workload's spec
    assert all(r["status"] == "ok" for r in res.rows)
    assert buffer_bytes(space.base) == res.rows[0]["buffer_kib"] * 1024


def test_prepared_once_lowered_per_config_with_reused_planes():
    import pickle

    from bitbranch.compiler.conv import reuse_weight_planes
    from bitbranch.compiler.lower import lower_graph
    from bitbranch.isa.hwconfig import get_config
    from bitbranch.workloads.explore.engine import PrepJob, evaluate_point, prepare
    from bitbranch.workloads.images import default_image

    prep = prepare(PrepJob(TINY, "W2A2", 0, default_image((3, 16, 16))))
    edge, cloud = get_config("edge"), get_config("cloud")
    plain = lower_graph(prep.graph, cloud, prep.inputs, meta=dict(prep.meta), golden=prep.golden)
    first = evaluate_point(prep, edge)
    assert prep.planes  # filled by the first lowering
    for _ in range(2):  # the second lowering for cloud reuses its packed weight images too
        with reuse_weight_planes(prep.planes):
            cached = lower_graph(prep.graph, cloud, prep.inputs, meta=dict(prep.meta), golden=prep.golden)
        assert cached.program == plain.program and bytes(cached.dram) == bytes(plain.dram)
    assert any(k[0] == "packed" and k[2] == cloud.array_cols for k in prep.planes if isinstance(k, tuple))
    assert stable([evaluate_point(prep, edge)]) == stable([first]) and first["golden_ok"] is True
    assert pickle.loads(pickle.dumps(prep)).planes == {}  # the cache is not shipped to workers


def test_docs_space_example_parses(tmp_path):
    import re

    doc = (Path(__file__).parents[1] / "docs" / "explore.md").read_text()
    block = re.search(r"```toml\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "mixed.toml").write_text('default = "W2A2"\n')
    space = load_space(write(tmp_path, block))
    assert space.size() == 3 * 4 * 4 * 2 and space.ties == {"array_cols": "array_rows"}
    assert space.constraints.rtl_supported and space.constraints.min_fps == 200


def test_two_models_fronts_per_model(tmp_path):
    medium = f"{Path(__file__).with_name('explore_tiny.py')}:medium"
    space = load_space(write(tmp_path, 'precisions = ["W2A2"]\n[hw]\narray_rows = [4, 8]\narray_cols = [8, 16]\n'))
    res = explore([TINY, medium], space, tmp_path / "out", SerialExecutor())
    assert len(res.rows) == 8 and res.prepared == 2 and res.computed == 8
    models = list(dict.fromkeys(r["model"] for r in res.rows))
    assert len(models) == 2
    for m in models:  # each model has its own front: its fastest point is on it
        rows = [r for r in res.rows if r["model"] == m]
        assert max(rows, key=lambda r: r["fps"])["pareto"]
    files = write_results(res, tmp_path / "out")
    assert files["heatmap_png"].exists()


def test_energy_table_is_part_of_the_point_and_its_key(tmp_path):
    """explore(energy_table=...) (bitbranch explore --energy): the stored energy follows the table, and a
    different table is a different point (recomputed, not read from the store)."""
    from bitbranch.isa.energy import load_energy_table

    space = load_space(write(tmp_path, 'precisions = ["W1A1"]\n[hw]\narray_rows = [4, 8]\n'))
    out = tmp_path / "out"
    base = explore([TINY], space, out, SerialExecutor())
    f = tmp_path / "e.toml"
    f.write_text("[dram]\nbit_pj = 0.0\n")
    free = explore([TINY], space, out, SerialExecutor(), energy_table=load_energy_table(f))
    assert (free.computed, free.cached) == (2, 0)
    for a, b in zip(base.rows, free.rows, strict=True):
        assert a["status"] == b["status"] == "ok" and a["key"] != b["key"]
        assert 0 < b["energy_uj"] < a["energy_uj"] and a["cycles"] == b["cycles"]
        assert a["area_mm2"] == b["area_mm2"]
