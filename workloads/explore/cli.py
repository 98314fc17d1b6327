"""`bitbranch explore MODEL[,MODEL...] --space SPACE.toml`: design-space exploration on Dask (docs/explore.md).

Exit status: 0 when every point ran or was excluded by a constraint, 1 when some point failed (its row
says why), 2 on bad input (a space file error names the file and the field) or a cluster that cannot
be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bitbranch.isa.cliutil import fail


def add_arguments_explore(parser: argparse.ArgumentParser) -> None:
    from ..cli import model_help

    parser.add_argument("models", metavar="MODEL[,MODEL...]", help="comma-separated models: " + model_help())
    parser.add_argument("--space", required=True, metavar="SPACE.toml",
                        help="hardware fields as lists or ranges, precisions, base preset, constraints "
                             "(docs/explore.md)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="a running Dask scheduler (tcp://HOST:PORT); default: a local cluster")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes of the local cluster (default: CPU count); ignored with --scheduler")
    parser.add_argument("--out", metavar="DIR", help="results and point store (default out/explore/SPACE)")
    parser.add_argument("--heatmap", metavar="FIELD,FIELD",
                        help="the two hardware fields of heatmap.png (default: the first two varied)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--energy", metavar="FILE", help="energy table overriding any subset of the cited defaults "
                        "(docs/cost.md); part of every point's key")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document {points, failed, pareto, seconds} on stdout")


def cmd_explore(args: argparse.Namespace) -> int:
    from ..progress import Progress
    from ..registry import get
    from .engine import explore
    from .results import format_markdown, write_results
    from .space import SpaceError, load_space

    try:
        space = load_space(args.space)
    except SpaceError as exc:
        return fail(str(exc))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        return fail("MODEL: at least one model")
    for m in models:
        get(m)  # unknown model: one line, before any cluster starts
    from bitbranch.isa.energy import load_energy_table

    energy_table = load_energy_table(args.energy)  # a bad table: one line naming file and field
    if args.workers is not None and args.workers < 1:
        return fail(f"--workers={args.workers} must be >= 1")
    heatmap = None
    if args.heatmap:
        heatmap = tuple(f.strip() for f in args.heatmap.split(","))
        if len(heatmap) != 2 or any(f not in space.varied for f in heatmap):
            return fail(f"--heatmap {args.heatmap}: two fields the space varies ({', '.join(space.varied)})")
    out = Path(args.out or f"out/explore/{Path(args.space).stem}")
    try:
        from .executors import DaskExecutor
    except ImportError as exc:
        return fail(f"bitbranch explore needs Dask ({exc}); install the explore extra: "
                    "pip install -c constraints.txt -e '.[explore]'")
    where = f"scheduler {args.scheduler}" if args.scheduler else "a local cluster (started when a point needs it)"
    print(f"explore: {', '.join(models)} on {where}; store {out}", file=sys.stderr)
    with DaskExecutor(args.scheduler, args.workers) as executor, Progress(0, "explore") as bar:
        try:
            res = explore(models, space, out, executor, progress=bar, energy_table=energy_table)
        except OSError as exc:  # the cluster: cannot connect, or lost
            return fail(f"{where}: {exc}")
    files = write_results(res, out, plots=not args.no_plots, heatmap=heatmap)
    print(f"explore: {len(res.rows)} points, {res.computed} computed, {res.cached} from the store, "
          f"{res.prepared} model(s) prepared, {len(res.front)} on the front, {res.seconds:.1f} s; "
          f"results in {files['md'].parent}", file=sys.stderr)
    if args.json:
        print(json.dumps(res.to_json()))
    else:
        print(format_markdown(res))
    return 1 if res.by_status("failed") else 0
