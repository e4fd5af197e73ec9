"""Directly age-standardised rates inside the MPC (compile/models/rates.py states the method).

Security model: as `aggregate.py`: the rows' events, age bands and keys are secret, and so are
the per-cell, per-band counts; the key domains, the bands and the standard's weights are public.
Only the per-cell code, rate and interval are returned, zeroed where the cell is withheld.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ...plan import nodes as n
from .aggregate import Membership
from .core import F64, I64, SFrame, b2i
from .expr import align


def rate_sums(f: SFrame, r: n.Standardize, domains: list[tuple[Any, ...]], bands: tuple[Any, ...]) -> Any:
    """Return the per-cell ring sums (persons and events per band, out-of-range rows) × cells: one pass's partial."""
    from ..models.rates import EVENTS_LIMIT

    ev, age = f.cols[r.events], f.cols[r.age]
    band = align(age, tuple(bands))  # NB: n × bands, all zeros where the band is missing
    use = f.mask * ev.ok * band.sum(axis=1)
    events = ev.v.astype(I64) * use
    wb = band * use[:, None]
    bad = use * b2i((events < 0) | (events > EVENTS_LIMIT))
    cols = [*(wb[:, j] for j in range(len(bands))), *(wb[:, j] * events for j in range(len(bands))), bad]
    return jnp.stack(Membership(f, r.keys, domains).sums(cols), axis=0)


def rate_measures(sums: Any, r: n.Standardize, bands: tuple[Any, ...], w: np.ndarray, k: int) -> list[Any]:
    """Return [code, rate, ci_low, ci_high] per cell from the sums of `rate_sums` over every row."""
    from ..models.rates import measures

    nb = len(bands)
    return measures(sums[:nb], sums[nb : 2 * nb], sums[-1], w, r.per, k, jnp, _ge, _div, jnp.sqrt)


def rates(f: SFrame, r: n.Standardize, domains: list[tuple[Any, ...]], bands: tuple[Any, ...], w: np.ndarray,
          k: int) -> list[Any]:  # fmt: skip
    """Return [code, rate, ci_low, ci_high] per cell of the keys' domains (result.key_grid order)."""
    return rate_measures(rate_sums(f, r, domains, bands), r, bands, w, k)


def _ge(x: Any, t: Any) -> Any:
    return b2i(jnp.asarray(x) >= t)


def _div(num: Any, den: Any) -> Any:
    """Return num / den for a positive int count den, in fixed point."""
    return num / den.astype(F64)
