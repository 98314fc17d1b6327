"""Every torchvision classifier through `bitbranch run`'s path: which compile and run live, which are refused and why.

    python bench/zoo.py [--size 224] [--hw edge] [--timeout 300] [--only NAME,...] [--out docs/zoo.json]
    python bench/zoo.py --source timm [--only NAME,...]      # timm's resnet*d / mobilenetv2_* -> docs/zoo_timm.*

Each model runs in its own process (a crash, a hang or an out-of-memory kill stays one row) with a time
limit: random weights (seed 0), the registry's default precision (W2A2, 8-bit weights in the first conv
and the last Linear), the default image (sklearn china.jpg) fitted to `--size`. Status per model:
- `live`: compiled, bit-exact on the simulator, no liveness warning, more than one distinct logit;
- `collapsed`: bit-exact but a liveness warning fired (the warning is in the row);
- `mismatch`: simulated outputs differ from golden (a bug: should never happen);
- `refused`: the compiler said why, in one line (the op, its module path);
- `timeout` / `crashed`: did not finish in `--timeout` s / the worker died.
Rows are written to the JSON after every model (ordered by parameter count, smallest first), so a
partial run keeps what it measured; `docs/zoo.md` is the same table in Markdown. A row keeps the compiler's
notes (`notes`: e.g. BatchNorm statistics estimated because the random-weight model never tracked any,
compiler.bnstats).

`--source timm` measures timm's equivalents of the torchvision families issue 16 names — `TIMM_FAMILIES`
(the ResNet-D family `resnet<depth>d` and `mobilenetv2_*`, with timm's fused `BatchNormAct2d`), every name of
them the installed timm lists — into `docs/zoo_timm.json` / `.md`, each at its `pretrained_cfg` input size
unless `--size` is given.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


TIMM_FAMILIES = ("resnet[0-9]*d", "mobilenetv2_*")  # fnmatch patterns of timm.list_models (issue 16)
REASON_CHARS = 600  # the longest one-line refusal (a squeeze-excitation gate's, with both module paths) fits


def clip(text: str, limit: int = REASON_CHARS) -> str:
    """`text` cut to at most `limit` characters at a word boundary, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if text[limit - 1] != " " and " " in cut:  # the cut falls inside a word: drop its start
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def measure(name: str, size: int | None, hw_name: str, source: str = "torchvision") -> dict:
    """One model, in the worker process: compile, simulate, liveness. `size` None: the model's own input size."""
    import numpy as np
    import torch

    from bitbranch.compiler.compile import compile_model
    from bitbranch.isa.hwconfig import get_config
    from bitbranch.simulator import run
    from bitbranch.workloads import get
    from bitbranch.workloads.images import default_image

    torch.manual_seed(0)
    row: dict = {"model": f"{source}:{name}"}
    t0 = time.perf_counter()
    try:
        spec = get(row["model"])
        model = spec.build()
        row["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        hw = get_config(hw_name)
        shape = (3, size, size) if size else tuple(spec.input_shape)
        row["input"] = f"{shape[1]}x{shape[2]}"
        with torch.no_grad():
            art = compile_model(model, spec.precision, hw, default_image(shape))
    except (ValueError, MemoryError) as exc:
        row.update(status="refused", reason=clip(str(exc).strip().splitlines()[0]))
        return row
    row["compile_s"] = round(time.perf_counter() - t0, 1)
    result = run(art)
    out = art.outputs[0]
    values = np.asarray(result.outputs[out])
    live = art.meta.get("liveness", {})
    warnings = live.get("warnings", [])
    collapsed = [k for k, u in live.get("layers", {}).items() if u.get("collapsed")]
    status = "mismatch" if not result.golden_ok else ("collapsed" if warnings or len(np.unique(values)) < 2 else "live")
    from bitbranch.workloads.report.summary import build_report

    useful = build_report(art, result).util  # useful bit-ops / peak (the report's `util`), not issued
    row.update(status=status, cycles=result.cycles, fps=round(hw.clock_mhz * 1e6 / result.cycles, 1),
               util=round(useful, 4), array_util=round(result.utilization, 4),
               distinct_outputs=int(len(np.unique(values))),
               outputs=int(values.size), collapsed_layers=len(collapsed), layers=len(live.get("layers", {})),
               host_ops=[h["name"] for h in art.host_ops], warnings=warnings, notes=art.meta.get("notes", []))
    return row


def _worker(name: str, size: int | None, hw: str, source: str, queue: mp.Queue) -> None:
    try:
        queue.put(measure(name, size, hw, source))
    except BaseException as exc:  # noqa: BLE001 - one row per model, whatever happens
        queue.put({"model": f"{source}:{name}", "status": "crashed", "reason": clip(f"{type(exc).__name__}: {exc}")})


def run_one(name: str, size: int | None, hw: str, timeout: float, source: str = "torchvision") -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_worker, args=(name, size, hw, source, queue))
    t0 = time.perf_counter()
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
        return {"model": f"{source}:{name}", "status": "timeout", "reason": f"not finished in {timeout:.0f} s"}
    row = queue.get() if not queue.empty() else {"model": f"{source}:{name}", "status": "crashed",
                                                  "reason": f"worker exit code {p.exitcode}"}
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def model_order(source: str = "torchvision") -> list[str]:
    """The source's classification models (timm: those of TIMM_FAMILIES), smallest parameter count first (cheap ones
    first in a partial run)."""
    import fnmatch

    import torch

    from bitbranch.workloads.models.zoo import import_source, model_names

    lib = import_source(source)
    names = model_names(source)
    if source == "timm":
        names = [n for n in names if any(fnmatch.fnmatchcase(n, f) for f in TIMM_FAMILIES)]
    sizes = {}
    with torch.device("meta"):
        for n in names:
            try:
                m = lib.models.get_model(n, weights=None) if source == "torchvision" else lib.create_model(n)
                sizes[n] = sum(p.numel() for p in m.parameters())
            except Exception:  # noqa: BLE001 - ordering only
                sizes[n] = 1 << 62
    return sorted(sizes, key=lambda n: (sizes[n], n))


def _by_size(row: dict) -> tuple:
    """Row order: parameter count, smallest first (rows without one, a timeout or a crash, last), then name."""
    return (row.get("params_m") is None, row.get("params_m") or 0, row["model"])


def markdown(doc: dict) -> str:
    rows = doc["rows"]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("live", "collapsed", "mismatch", "refused", "timeout",
                                                                 "crashed", "not run")}
    source = doc.get("source", "torchvision")
    size = f"{doc['size']}x{doc['size']}" if doc.get("size") else "each model's input size"
    command = "python bench/zoo.py" + (f" --source {source}" if source != "torchvision" else "")
    lines = [f"# {source} classifiers on bitbranch ({doc['hw']}, {size}, default precision)",
             "", f"Generated by `{command}` ({doc['date']}); {len(rows)} models: "
             + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + ".", "",
             "| model | params M | status | cycles | frames/s | util | distinct logits | collapsed layers | reason |",
             "|---|---|---|---|---|---|---|---|---|"]
    per_model = not doc.get("size")  # each model at its own input size: a column for it
    if per_model:
        lines[-2] = lines[-2].replace("| params M |", "| params M | input |")
        lines[-1] += "---|"
    for r in rows:
        name = r["model"].split(":", 1)[1] + (f" | {r.get('params_m', '')} | {r.get('input', '')}" if per_model
                                              else f" | {r.get('params_m', '')}")
        text = (r.get("reason") or "; ".join(r.get("warnings", []))).replace("|", "/")
        if "cycles" in r:
            lines.append(f"| {name} | {r['status']} | {r['cycles']:,} | {r.get('fps', '')} | "
                         f"{(str(round(100 * r['util'], 1)) + '%') if 'util' in r else ''} | "
                         f"{r.get('distinct_outputs', '')} | "
                         f"{(str(r['collapsed_layers']) + '/' + str(r['layers'])) if 'layers' in r else ''} | {text} |")
        else:
            lines.append(f"| {name} | {r['status']} |  |  |  |  |  | {text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=("torchvision", "timm"), default="torchvision")
    ap.add_argument("--size", type=int, help="square input size (default: 224 for torchvision, each model's "
                    "pretrained_cfg size for timm)")
    ap.add_argument("--hw", default="edge")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--only", help="comma-separated model names; their rows in --out are replaced, the others kept")
    ap.add_argument("--out", help="JSON rows (default docs/zoo.json, docs/zoo_timm.json for timm)")
    ap.add_argument("--mark-missing", action="store_true", help="only add a `not run` row for every model the JSON "
                    "lacks (a run stopped early), and rewrite the Markdown")
    args = ap.parse_args(argv)
    if args.size is None and args.source == "torchvision":
        args.size = 224
    names = args.only.split(",") if args.only else model_order(args.source)
    out = Path(args.out or ROOT / "docs" / ("zoo.json" if args.source == "torchvision" else "zoo_timm.json"))
    src = args.source
    if args.mark_missing:
        doc = json.loads(out.read_text())
        done = {r["model"] for r in doc["rows"]}
        doc["rows"] += [{"model": f"{src}:{n}", "status": "not run", "reason": "run stopped before this model"}
                        for n in names if f"{src}:{n}" not in done]
        out.write_text(json.dumps(doc, indent=1) + "\n")
        out.with_suffix(".md").write_text(markdown(doc))
        return 0
    doc = {"hw": args.hw, "size": args.size, "source": src, "date": time.strftime("%Y-%m-%d"), "rows": []}
    if args.only and out.exists():  # re-measure these models: their rows are replaced, the others kept
        doc = json.loads(out.read_text())
        if (doc["hw"], doc["size"], doc.get("source", "torchvision")) != (args.hw, args.size, src):
            ap.error(f"{out} holds {doc.get('source', 'torchvision')} on hw {doc['hw']} at {doc['size']}; --only "
                     f"would mix in {src} on {args.hw} at {args.size}")
    for k, name in enumerate(names):
        row = run_one(name, args.size, args.hw, args.timeout, src)
        rows = doc["rows"]
        at = next((i for i, r in enumerate(rows) if r["model"] == row["model"]), None)
        if at is None:
            rows.append(row)
        else:
            rows[at] = row
        rows.sort(key=_by_size)
        print(f"[{k + 1}/{len(names)}] {row['model']}: {row['status']} {row.get('reason', '')[:160]}"
              f"{' cycles ' + str(row['cycles']) if 'cycles' in row else ''}", file=sys.stderr, flush=True)
        out.write_text(json.dumps(doc, indent=1) + "\n")
        out.with_suffix(".md").write_text(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
