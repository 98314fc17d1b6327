"""Random hardware configs within what the RTL supports: the fuzz's way off the three presets.

A bug that only shows with a 1-row array, a one-deep token queue or a DRAM beat narrower than a buffer
entry never shows on `small`/`edge`/`cloud`. `random_config(seed)` draws every structural field from ranges
the RTL is built for (power-of-two entry sizes, pipelines of at least two stages; params.check_supported is
the judge) and buffer sizes large enough for the random programs. `bitbranch fuzz --hw random:SEED`.
"""

from __future__ import annotations

import numpy as np

from bitbranch.isa.hwconfig import ConfigError, HwConfig

from .params import UnsupportedConfig, check_supported

PREFIX = "random"


def random_config(seed: int) -> HwConfig:
    """A config named `random:<seed>`, the same for the same seed."""
    rng = np.random.default_rng([0xB17B, seed])

    def pick(*values: int) -> int:
        return int(rng.choice(values))

    for _ in range(100):
        word_bits = pick(64, 128)
        fields = dict(
            name=f"{PREFIX}:{seed}", description=f"random config of seed {seed} (rtlharness.randconfig)",
            array_rows=pick(1, 2, 3, 4, 8), array_cols=pick(1, 2, 4, 8), word_bits=word_bits,
            branch_parallel=pick(1, 2, 3, 4), inp_entries=pick(1024, 2048), wgt_entries=pick(1024, 2048),
            acc_entries=pick(1024, 2048), out_entries=pick(512, 1024), const_entries=pick(64, 128),
            dram_latency=int(rng.integers(1, 40)), dram_bytes_per_cycle=pick(4, 8, 16, 32, 64),
            dma_row_overhead=int(rng.integers(1, 4)), gemm_pipeline=int(rng.integers(2, 7)),
            alu_pipeline=int(rng.integers(2, 6)), queue_depth=int(rng.integers(1, 9)),
            token_depth=int(rng.integers(1, 9)), clock_mhz=100.0,
        )
        try:
            hw = HwConfig(**fields)
            check_supported(hw)
        except (ConfigError, UnsupportedConfig):
            continue
        return hw
    raise RuntimeError(f"no supported random config in 100 draws for seed {seed}")


def resolve(spec: str) -> HwConfig:
    """`random:SEED` -> random_config(SEED); anything else as isa.hwconfig.get_config."""
    from bitbranch.isa.hwconfig import get_config

    if spec.startswith(PREFIX + ":"):
        text = spec.removeprefix(PREFIX + ":")
        if not text.isdigit():
            raise ConfigError(f"hardware '{spec}': expected random:SEED with SEED a non-negative integer")
        return random_config(int(text))
    return get_config(spec)
