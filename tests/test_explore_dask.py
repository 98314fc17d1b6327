"""`bitbranch explore` on Dask distributed: a real `dask scheduler` and two `dask worker` processes started
from the command line on 127.0.0.1 (free ports), an exploration submitted with --scheduler equal to a
local in-process run, and a run that survives a worker killed in the middle."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from bitbranch.cli import main  # noqa: E402
from bitbranch.workloads.explore.cmdcluster import CommandLineCluster  # noqa: E402
from bitbranch.workloads.explore.engine import TIMINGS, explore  # noqa: E402
from bitbranch.workloads.explore.executors import DaskExecutor, SerialExecutor  # noqa: E402
from bitbranch.workloads.explore.space import load_space  # noqa: E402

HERE = Path(__file__).parent
TINY = f"{HERE / 'explore_tiny.py'}:tiny"
MEDIUM = f"{HERE / 'explore_tiny.py'}:medium"


@pytest.fixture
def cluster(tmp_path):
    with CommandLineCluster(2, tmp_path / "logs") as c:
        yield c


def stable(rows):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


SPACE = """
precisions = ["W1A1", "W2A2"]
[hw]
array_rows = [4, 8]
array_cols = [8, 16, 48]
dram_bytes_per_cycle = [32, 64]
"""


def test_scheduler_run_equals_local_run(tmp_path, cluster, capsys):
    space_file = tmp_path / "space.toml"
    space_file.write_text(SPACE)
    local = explore([TINY], load_space(space_file), tmp_path / "local", SerialExecutor())
    assert main(["explore", TINY, "--space", str(space_file), "--scheduler", cluster.address,
                 "--out", str(tmp_path / "remote"), "--json", "--no-plots"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # exactly one JSON document on stdout
    assert set(doc) == {"points", "failed", "pareto", "seconds"}
    assert "explore [" in captured.err and "best " in captured.err
    ok = [r for r in local.rows if r["status"] == "ok"]
    assert len(ok) == 16 and stable(doc["points"]) == stable(ok)
    assert stable(doc["failed"]) == stable([r for r in local.rows if r["status"] != "ok"])
    assert stable(doc["pareto"]) == stable(local.front)
    lines = (tmp_path / "remote" / "explore.jsonl").read_text().splitlines()
    assert stable(json.loads(x) for x in lines) == stable(local.rows)


def test_worker_killed_mid_run_loses_nothing(tmp_path, cluster):
    space_file = tmp_path / "space.toml"
    space_file.write_text("""
precisions = ["W2A2"]
[hw]
array_rows = [2, 4, 8, 16]
array_cols = [4, 8, 16]
dram_bytes_per_cycle = [16, 64]
""")
    space = load_space(space_file)
    out = tmp_path / "out"
    box: dict = {}

    def run() -> None:
        with DaskExecutor(cluster.address) as ex:
            box["res"] = explore([MEDIUM], space, out, ex)

    t = threading.Thread(target=run)
    t.start()
    store = out / "points"
    deadline = time.monotonic() + 60
    while len(list(store.glob("*/*.json"))) < 3:
        assert time.monotonic() < deadline and t.is_alive(), "no point finished"
        time.sleep(0.05)
    assert t.is_alive()
    cluster.kill_worker(0)  # SIGKILL, in the middle of the run
    killed_at = len(list(store.glob("*/*.json")))
    t.join(120)
    assert not t.is_alive()
    res = box["res"]
    assert killed_at < len(res.rows) == 24
    assert [r["status"] for r in res.rows] == ["ok"] * 24, [r["reason"] for r in res.rows if r["status"] != "ok"]
    assert res.computed == 24 and len(list(store.glob("*/*.json"))) == 24


def test_local_cluster_default(tmp_path, capsys):
    space_file = tmp_path / "space.toml"
    space_file.write_text('precisions = ["W2A2"]\n[hw]\narray_rows = [4, 8]\n')
    args = ["explore", TINY, "--space", str(space_file), "--workers", "1", "--out", str(tmp_path / "out"), "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["points"]) == 2 and not doc["failed"] and doc["pareto"]
    assert (tmp_path / "out" / "pareto.png").exists() and (tmp_path / "out" / "params.png").exists()
    assert main(args) == 0  # everything from the store: no cluster needed
    assert "0 computed, 2 from the store" in capsys.readouterr().err
