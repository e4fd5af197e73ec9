"""SPU runtime settings shared by owners, parties and the result receiver.

Security model: the configuration is public and must be the same at every node: the
protocol (ABY3: replicated secret sharing, secure against one semi-honest party of
three), the ring (FM64: shares are uniformly random 64-bit words) and the fixed-point
precision. It is also part of every compiled program's cache key
(`werkplaats.mpc.programs`). Nothing here touches data or shares.
"""

from __future__ import annotations

import os
from typing import Any

PROFILE_ENV = "WERKPLAATS_SPU_PROFILE"

PROTOCOL = "ABY3"
FIELD = "FM64"
FXP_FRACTION_BITS = 18


def enable_x64() -> None:
    """Make JAX trace 64-bit integers and floats (the ring is 64 bits); quiet SPU's console log."""
    import jax
    from spu import libspu

    jax.config.update("jax_enable_x64", True)
    opts = libspu.logging.LogOptions()
    opts.log_level = libspu.logging.LogLevel.INFO if os.environ.get(PROFILE_ENV) else libspu.logging.LogLevel.WARN
    libspu.logging.setup_logging(opts)


def runtime_config() -> Any:
    """Return the SPU runtime configuration every node must use."""
    from spu import libspu

    cfg = libspu.RuntimeConfig(
        protocol=libspu.ProtocolKind.ABY3, field=libspu.FieldType.FM64,
        fxp_fraction_bits=FXP_FRACTION_BITS,
    )  # fmt: skip
    # NB: quick sort shuffles, then sorts revealing only comparisons of a random
    # permutation; every sort key werkplaats builds is distinct, which it requires.
    cfg.sort_method = libspu.RuntimeConfig.SortMethod.SORT_QUICK
    if os.environ.get(PROFILE_ENV):
        # NB: per-operation times and traffic go to each party's log (operators, benchmarks).
        cfg.enable_pphlo_profile = True
        cfg.enable_hal_profile = True
    return cfg
