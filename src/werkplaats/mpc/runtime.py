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
# Each plan runs at one precision, decided from the plan alone (precision_of), so every node agrees:
# aggregates on FM64 with 18 fraction bits; model summaries (compile/models) on FM128 with 40, where
# IRLS, matrix inverses and standard errors need it (docs/mpc.md, "Precision of models").
PRECISIONS = {"standard": ("FM64", FXP_FRACTION_BITS), "model": ("FM128", 40)}


def precision_of(plan: Any) -> str:
    """Return the precision a plan runs at: "model" for a summary root (a model or a measure), else "standard"."""
    from ..plan import nodes as n

    return "model" if isinstance(plan.root, n.SUMMARY_NODES) else "standard"


def enable_x64() -> None:
    """Make JAX trace 64-bit integers and floats (the ring is 64 bits); quiet SPU's console log."""
    import jax
    from spu import libspu

    jax.config.update("jax_enable_x64", True)
    opts = libspu.logging.LogOptions()
    opts.log_level = libspu.logging.LogLevel.INFO if os.environ.get(PROFILE_ENV) else libspu.logging.LogLevel.WARN
    libspu.logging.setup_logging(opts)


def runtime_config(precision: str = "standard") -> Any:
    """Return the SPU runtime configuration every node must use for a plan of this precision (precision_of)."""
    from spu import libspu

    field, bits = PRECISIONS[precision]
    cfg = libspu.RuntimeConfig(
        protocol=libspu.ProtocolKind.ABY3, field=getattr(libspu.FieldType, field),
        fxp_fraction_bits=bits,
    )  # fmt: skip
    if precision == "model":
        # NB: SPU's default exp (Taylor) is off by percents beyond |x| ~ 2; Padé is accurate (docs/mpc.md)
        cfg.fxp_exp_mode = libspu.RuntimeConfig.ExpMode.EXP_PADE
    # NB: quick sort shuffles, then sorts revealing only comparisons of a random
    # permutation; every sort key werkplaats builds is distinct, which it requires.
    cfg.sort_method = libspu.RuntimeConfig.SortMethod.SORT_QUICK
    if os.environ.get(PROFILE_ENV):
        # NB: per-operation times and traffic go to each party's log (operators, benchmarks).
        cfg.enable_pphlo_profile = True
        cfg.enable_hal_profile = True
    return cfg
