"""Design-space exploration throughput: ResNet-18 W2A2 over a hardware space of >= 200 points.

    .venv/bin/python bench/explore.py [--points N] [--sweep-points 3] [--skip-cluster] [--out DIR]

1. in this process, one core: the model quantized + integerized once (`prepare`), then lowering +
   cycle-exact simulation per point (`evaluate_point`): points/s on one core;
2. today's `sweep` per point (`run_job`: build, quantize, calibrate, integerize, lower, simulate, host
   timing) on a few of the same points: seconds per point;
3. the same space through `dask scheduler` + `dask worker` processes started from the command line on
   127.0.0.1, with 1 worker and then with 2 (each from an empty store): points/s and the 2-vs-1 ratio.

Prints wall and CPU seconds and the load average: on a shared machine the wall-clock rates depend on what
else runs, so the CPU seconds of this process (parts 1-2) are printed too. Ends with the Pareto front of
the space (fps against peak bit-ops/s and on-chip buffer bytes).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bitbranch.workloads.explore.space import parse_space

SPACE = {
    "base": "edge",
    "precisions": ["W2A2"],
    "hw": {
        "array_rows": [8, 16, 32],
        "array_cols": [8, 16, 32, 64],
        "branch_parallel": [1, 2],
        "dram_bytes_per_cycle": [16, 32, 64],
        "wgt_entries": [2048, 4096, 8192],
    },
}  # 3 x 4 x 2 x 3 x 3 = 216 points
MODEL = "resnet18"


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def in_process(space, limit: int | None) -> tuple[list[dict], float]:
    from bitbranch.workloads.explore.engine import PrepJob, evaluate_point, prepare
    from bitbranch.workloads.images import default_image
    from bitbranch.workloads.registry import get

    cands = [c for c in space.hw_points() if c.hw is not None and not c.reason][:limit]
    image = default_image(get(MODEL).input_shape)
    t0, c0 = time.perf_counter(), time.process_time()
    prep = prepare(PrepJob(MODEL, "W2A2", space.seed, image))
    t_prep, c_prep = time.perf_counter() - t0, time.process_time() - c0
    print(f"[1] prepare (build + quantize + calibrate + integerize + golden) once: {t_prep:.1f} s wall, "
          f"{c_prep:.1f} s CPU")
    rows = []
    t1, c1 = time.perf_counter(), time.process_time()
    for c in cands:
        rows.append(evaluate_point(prep, c.hw))
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    ok = sum(r["status"] == "ok" for r in rows)
    point_cpu = sum(r.get("cpu_s") or 0 for r in rows) / max(len(rows), 1)
    lower = sum(r.get("lower_s") or 0 for r in rows) / max(ok, 1)
    sim = sum(r.get("simulate_s") or 0 for r in rows) / max(ok, 1)
    print(f"[1] {len(rows)} points ({ok} ok, {len(rows) - ok} failed to compile) lowered + simulated on one core in "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU: {len(rows) / wall:.2f} points/s/core wall "
          f"({len(rows) / cpu:.2f} per CPU-second); per ok point: lower {lower:.3f} s, simulate {sim:.3f} s wall, "
          f"{point_cpu:.3f} s CPU")
    print(f"[1] including the one prepare: {len(rows) / (wall + t_prep):.2f} points/s/core")
    return rows, len(rows) / wall


def sweep_cost(space, n: int) -> float:
    from bitbranch.workloads.explore.sweep import Job, run_job

    cands = [c for c in space.hw_points() if c.hw is not None and not c.reason]
    picks = [cands[k * (len(cands) - 1) // max(n - 1, 1)] for k in range(n)]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, c in enumerate(picks):
            path = Path(tmp) / f"p{k}.toml"
            fields = {f: getattr(c.hw, f) for f in c.hw.__dataclass_fields__ if f not in ("name", "description")}
            path.write_text(f"[p{k}]\n" + "".join(f"{f} = {v!r}\n" for f, v in fields.items()))
            t0, c0 = time.perf_counter(), time.process_time()
            row = run_job(Job(MODEL, "W2A2", f"{path}:p{k}"))
            times.append(time.perf_counter() - t0)
            print(f"[2] sweep point {c.hw.description}: {times[-1]:.1f} s wall, {time.process_time() - c0:.1f} s "
                  f"CPU, {row.get('fps') or 0:.1f} fps {row.get('error') or ''}")
    mean = sum(times) / len(times)
    print(f"[2] today's sweep: {mean:.1f} s per point = {1 / mean:.3f} points/s/core (re-quantizes every point)")
    return mean


def on_cluster(space, workers: int, out: Path) -> tuple[float, object]:
    from bitbranch.workloads.explore.cmdcluster import CommandLineCluster
    from bitbranch.workloads.explore.engine import explore
    from bitbranch.workloads.explore.executors import DaskExecutor

    with CommandLineCluster(workers, out / "logs", nanny=True) as cluster, DaskExecutor(cluster.address) as ex:
        t0 = time.perf_counter()
        res = explore([MODEL], space, out, ex)
        wall = time.perf_counter() - t0
    n = res.computed + len(res.by_status("failed"))
    cpu = [r["cpu_s"] for r in res.rows if r.get("cpu_s")]
    print(f"[3] {workers} worker(s) from `dask scheduler` / `dask worker`: {n} points (prepare included) in "
          f"{wall:.1f} s: {n / wall:.2f} points/s ({n / wall / workers:.2f} per worker); "
          f"{sum(cpu) / max(len(cpu), 1):.3f} CPU s per point on the workers; {load()}")
    return n / wall, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, help="first N points of the space only (default: all)")
    ap.add_argument("--sweep-points", type=int, default=3)
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--out", help="keep the 2-worker run's results here (default: a temporary directory)")
    args = ap.parse_args()

    hw = dict(SPACE["hw"])
    space = parse_space({**SPACE, "hw": hw}, "bench space")
    print(f"ResNet-18 W2A2, {space.size()} hardware points ({', '.join(space.varied)}); {os.cpu_count()} cores; "
          f"{load()} (the machine is shared: wall-clock rates vary with the other jobs)")
    _, rate1 = in_process(space, args.points)
    per_sweep = sweep_cost(space, args.sweep_points)
    print(f"[1 vs 2] lower + simulate per point is {rate1 * per_sweep:.0f}x faster than today's sweep per point")
    if args.skip_cluster:
        return
    if args.points:
        names = list(hw)
        while space.size() > args.points and names:  # shrink the space for a quick run
            f = names.pop()
            space.fields[f] = space.fields[f][:1]
    with tempfile.TemporaryDirectory() as tmp:
        one, _ = on_cluster(space, 1, Path(tmp) / "one")
        two, res = on_cluster(space, 2, Path(args.out) if args.out else Path(tmp) / "two")
        print(f"[3] 2 workers vs 1: {two / one:.2f}x (target >= 1.6x on 2 free cores)")
        front = sorted(res.front, key=lambda r: -r["fps"])
        print(f"\nPareto front ({len(front)} of {len(res.by_status('ok'))} ok points; fps vs peak Gbit-op/s and "
              "buffer KiB):")
        print(f"{'array_rows':>10} {'array_cols':>10} {'branch_par':>10} {'dram_B/cyc':>10} {'wgt_entries':>11} "
              f"{'fps':>9} {'peak_Gbitop/s':>13} {'buffer_KiB':>10} {'util':>6}")
        for r in front:
            print(f"{r['array_rows']:>10} {r['array_cols']:>10} {r['branch_parallel']:>10} "
                  f"{r['dram_bytes_per_cycle']:>10} {r['wgt_entries']:>11} {r['fps']:>9.1f} "
                  f"{r['peak_gbitops_s']:>13.1f} {r['buffer_kib']:>10.0f} {r['util']:>6.1%}")
        if args.out:
            from bitbranch.workloads.explore.results import write_results

            write_results(res, args.out)
            print(f"results: {args.out}/explore.md")


if __name__ == "__main__":
    main()
