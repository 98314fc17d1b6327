"""Synthesis of the core with Yosys: run time, cells, flip-flops, memories and the buildability check.

    .venv/bin/python bench/synth.py [--hw small,edge] [--target rtl] [--timeout 1800]

For each preset, `bitbranch synth` (rtlharness/synth.py) runs once; printed: wall time, cells, flip-flop bits,
LUTs / block RAMs (FPGA targets), the memories with their ports, and check_buildable's verdict. A preset whose
synthesis fails prints the error line and its time instead. The default target is `rtl`, the light flow that
gives everything the check reads (`small` in about a minute, `edge` in under ten on a 2-core machine); the gate
mapping of the whole core (`--target generic`) is much slower (docs/rtl.md, "Synthesis"). The machine is
shared, so the 1-minute load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    from bitbranch.isa.hwconfig import get_config
    from bitbranch.rtlharness.synth import (
        DEFAULT_TIMEOUT,
        TARGETS,
        SynthError,
        check_buildable,
        format_report,
        synthesize,
        yosys_version,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="small,edge", help="comma-separated presets (default small,edge)")
    ap.add_argument("--target", choices=TARGETS, default="rtl")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per preset")
    args = ap.parse_args()

    print(f"{yosys_version()}; load average {os.getloadavg()[0]:.2f}")
    rows = []
    for name in args.hw.split(","):
        hw = get_config(name.strip())
        t0 = time.perf_counter()
        try:
            report = synthesize(hw, target=args.target, timeout=args.timeout)
        except SynthError as exc:
            wall = time.perf_counter() - t0
            print(f"\n{hw.name}: FAILED after {wall:.1f} s: {exc}")
            rows.append((hw.name, wall, "failed", "-", "-", "-"))
            continue
        problems = check_buildable(report)
        print()
        print(format_report(report, problems))
        rows.append((hw.name, report["seconds"], report["cell_count"], report["flip_flops"],
                     len(report["memories"]), "yes" if not problems else f"no ({len(problems)})"))
    print(f"\n{'preset':<8} {'seconds':>8} {'cells':>10} {'flip-flops':>11} {'memories':>9}  buildable"
          f"  (target {args.target})")
    for name, sec, cells, ffs, mems, ok in rows:
        print(f"{name:<8} {sec:>8.1f} {cells!s:>10} {ffs!s:>11} {mems!s:>9}  {ok}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0 if all(r[5] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
