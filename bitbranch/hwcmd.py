"""`bitbranch hw`: list the hardware presets, or show one with its derived figures."""

from __future__ import annotations

import argparse
import json

from bitbranch.isa.hwconfig import BUFFERS, get_config, load_presets


def add_arguments_hw(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", nargs="?", help="preset name or file.toml[:name]; omit to list all")
    parser.add_argument("--json", action="store_true", help="print JSON")


def describe(hw) -> list[str]:
    lines = [f"{hw.name}: {hw.description}"]
    lines.append(
        f"  array {hw.array_rows}x{hw.array_cols} PEs x {hw.word_bits}-bit words, {hw.branch_parallel} branch pair(s)"
        f"/PE/cycle = {hw.peak_bitops_per_cycle} binary MACs/cycle "
        f"({hw.peak_bitops_per_cycle * hw.clock_mhz / 1e6:.2f} T/s at {hw.clock_mhz:g} MHz)"
    )
    for buf in BUFFERS:
        n, e = hw.entries(buf), hw.entry_bytes(buf)
        lines.append(f"  {buf:<5} {n:>6} entries x {e:>4} B = {n * e / 1024:8.1f} KiB")
    lines.append(
        f"  DRAM latency {hw.dram_latency} cycles, {hw.dram_bytes_per_cycle} B/cycle, +{hw.dma_row_overhead}/row; "
        f"queues {hw.queue_depth}, tokens {hw.token_depth}"
    )
    return lines


def cmd_hw(args: argparse.Namespace) -> int:
    configs = [get_config(args.preset)] if args.preset else list(load_presets().values())
    if args.json:
        print(json.dumps([hw.to_dict() for hw in configs], indent=1))
        return 0
    for hw in configs:
        print("\n".join(describe(hw)))
    return 0
