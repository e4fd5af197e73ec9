"""Assemble revealed, disclosure-controlled aggregates into a DataFrame.

Both executors end here, so their outputs have exactly the same shape: one row per
cell of the public key domains (missing keys last), a column per statistic, and
``suppressed`` / ``reason`` columns saying what was withheld and why.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .plan import nodes as n
from .plan.types import DType

EPOCH = dt.date(1970, 1, 1)
# A statistic's flag (Revealed.stats' ok) is 1 where it is revealed; any other value says why it is
# withheld. Executors compute the flag inside the computation (compile/disclosure.py); 0 is the cell rule.
REVEALED = 1
FEW_VALUES = 0  # fewer than k values, or a count (the sum of a boolean) below k
OUT_OF_RANGE = 2  # its exact value may lie outside the range the secure computation represents exactly
FEW_CONTRIBUTORS = 3  # rule 2: fewer than k rows contribute to it (non-missing and non-zero)
DOMINANCE = 4  # rule 3: the largest n contributions make up more than the dominance share of the total
P_PERCENT = 5  # rule 3: the p% rule fails
EXTREME = 6  # rule 4: an exact minimum or maximum (or one not shared by k contributors when rounded)
QUANTILE_SIDES = 7  # rule 4: a quantile without k contributors on each side
SECONDARY = 8  # rule 7: withheld so that a suppressed cell cannot be derived from the margins
# The whole result's flag (Revealed.withheld): REVEALED, or why every cell is withheld.
COMPLEMENT = 9  # rule 5: a filter or inner join removes between 1 and k - 1 rows
REGISTER = 10  # rule 9: a cell differs from a registered one by between 1 and k - 1 contributors
# A model's or measure's summary (plan.nodes.SUMMARY_NODES) is withheld as a whole when a check fails
# (compile/models; docs/plans.md lists each check and its default).
RESIDUAL_DF = 11  # fewer residual degrees of freedom than the rules' model_min_df (ACRO: 10)
TOO_MANY_PARAMETERS = 12  # more parameters than model_max_params × rows (DataSHIELD nfilter.glm: 0.33)
SMALL_CATEGORY = 13  # a category of a binary outcome or of a binary/categorical predictor has fewer than k rows
NOT_CONVERGED = 14  # the fit did not converge in the fixed number of iterations (e.g. separation)
SINGULAR = 15  # the predictors are (nearly) collinear: the model is not identified
LEVERAGE = 16  # a row's leverage or share of the outcome is 1/(k-1) or more: fewer than k rows determine it
UNSORTED = 17  # an input a merge join needs sorted by its owner was not (compile/kernels/merge.py): nothing is released
UNION = (
    18  # an input of a union (wp.concat) adds between 1 and k - 1 rows or persons to a cell (or to the whole result)
)

REASONS = {
    FEW_VALUES: "fewer than {k} values (or a count below {k})",
    OUT_OF_RANGE: "out of range (the exact value may exceed the MPC's number range)",
    FEW_CONTRIBUTORS: "fewer than {k} contributors",
    DOMINANCE: "dominated by its largest contributors",
    P_PERCENT: "the p% rule: one contributor could estimate another's value too closely",
    EXTREME: "an extreme value (minimum or maximum) that fewer than {k} contributors share",
    QUANTILE_SIDES: "fewer than {k} contributors on one side of the quantile",
    SECONDARY: "withheld so that a suppressed cell cannot be derived from the others (secondary suppression)",
    COMPLEMENT: "a filter or join in the plan removes between 1 and {km1} rows (the complement rule)",
    REGISTER: "a cell differs from a cell of an earlier released result by between 1 and {km1} contributors",
    RESIDUAL_DF: "too few residual degrees of freedom (model check)",
    TOO_MANY_PARAMETERS: "too many parameters for the number of rows (model check)",
    SMALL_CATEGORY: "a category of the outcome or of a predictor has fewer than {k} rows (model check)",
    NOT_CONVERGED: "the model did not converge (e.g. a predictor separates the outcome perfectly)",
    SINGULAR: "the predictors are collinear: the model cannot be estimated",
    LEVERAGE: "fewer than {k} rows determine part of the model (a row's leverage or share of the outcome; model check)",
    UNSORTED: "a data owner's rows did not arrive sorted on the join key as the plan requires (check its software)",
    UNION: "an input of the union adds between 1 and {km1} rows or persons to it (the union rule)",
}


def reason_text(code: int, k: int) -> str:
    """Return the words for a withholding code (REASONS), with the threshold filled in."""
    return REASONS.get(int(code), f"withheld (code {int(code)})").format(k=k, km1=k - 1)


def key_grid(domains: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Return every cell of the key domains, each with a trailing 'missing' value."""
    return list(itertools.product(*[(*d, None) for d in domains]))


@dataclass
class Revealed:
    """Per-cell output of an executor after disclosure control."""

    cell_ok: np.ndarray
    stats: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (ok, value)
    withheld: int = REVEALED  # the whole result: REVEALED, or COMPLEMENT / REGISTER (all cells withheld)
    summary: dict[str, Any] = field(default_factory=dict)  # a model's fit statistics (compile/models): attrs


def build_frame(plan: n.Plan, key_types: list[DType], out_types: dict[str, DType],
                rev: Revealed) -> pd.DataFrame:  # fmt: skip
    """Return the result DataFrame for revealed cells."""
    root = plan.root
    assert isinstance(root, n.Aggregate)
    k = plan.min_group_size
    grid = key_grid([t.grouping_domain or () for t in key_types])
    data: dict[str, Any] = {}
    for i, name in enumerate(root.keys):
        vals = [g[i] for g in grid]
        kind = key_types[i].kind
        dtype = {"bool": "boolean", "int": "Int64", "str": "string"}[kind]
        data[name] = pd.array(vals, dtype=dtype)
    reasons: list[str | None] = []
    whole = int(rev.withheld) != REVEALED
    cell_ok = rev.cell_ok.astype(bool) & (not whole)
    for name, _ in root.aggs:
        ok, value = rev.stats[name]
        data[name] = _column(value, (ok == REVEALED) & cell_ok, out_types[name].kind)
    for c in range(len(grid)):
        if whole:
            reasons.append("the whole result: " + reason_text(rev.withheld, k))
            continue
        if not rev.cell_ok[c]:  # NB: a cell the union rule withholds says so in its statistics' codes
            union = any(int(rev.stats[nm][0][c]) == UNION for nm, _ in root.aggs)
            reasons.append(reason_text(UNION, k) if union else f"fewer than {k} rows")
            continue
        by_code: dict[int, list[str]] = {}
        for nm, _ in root.aggs:
            code = int(rev.stats[nm][0][c])
            if code != REVEALED:
                by_code.setdefault(code, []).append(nm)
        why = [f"{reason_text(code, k)} for: {', '.join(names)}" for code, names in sorted(by_code.items())]
        reasons.append("; ".join(why) or None)
    data["suppressed"] = ~cell_ok
    data["reason"] = pd.Series(reasons, dtype=object)
    df = pd.DataFrame(data)
    df.attrs["min_group_size"] = k
    return df


def _column(value: np.ndarray, ok: np.ndarray, kind: str) -> Any:
    ok = ok.astype(bool)
    if kind == "int":
        ints = value if np.issubdtype(value.dtype, np.integer) else np.rint(value)
        arr = pd.array(np.where(ok, ints, 0).astype(np.int64), dtype="Int64")
        arr[~ok] = pd.NA
        return arr
    if kind == "date":
        return [EPOCH + dt.timedelta(days=round(v)) if o else None for v, o in zip(value, ok, strict=True)]
    arr = pd.array(np.asarray(value, dtype=float), dtype="Float64")
    arr[~ok] = pd.NA
    return arr


# The MPC executor's documented fixed-point accuracy (docs/mpc.md): 2^-18 per input value
# plus about 4e-6 relative for each division.
ATOL, RTOL = 1e-3, 1e-4
# Standard deviations: near zero the square root magnifies the variance's fixed-point error.
LOOSE_ATOL = 1e-2


def frame_differences(got: pd.DataFrame, want: pd.DataFrame, *, atol: float = ATOL, rtol: float = RTOL,
                      loose: Collection[str] = (), loose_atol: float = LOOSE_ATOL) -> list[str]:  # fmt: skip
    """Return how two results differ: columns, cells, suppression, integers exactly, floats within tolerance.

    Empty when they agree. A column is compared as floats when either side has a
    float dtype; columns named in ``loose`` (standard deviations) get ``loose_atol``.
    The messages name columns and counts of cells, never values.

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"n": pd.array([12, None], dtype="Int64"), "m": [2.0, None]})
    >>> frame_differences(a, a.assign(m=[2.0000004, None]))
    []
    >>> frame_differences(a, a.assign(n=pd.array([13, None], dtype="Int64")))
    ['column n: 1 cell(s) differ']
    """
    if list(got.columns) != list(want.columns):
        return [f"columns differ: {list(got.columns)} vs {list(want.columns)}"]
    if len(got) != len(want):
        return [f"{len(got)} rows vs {len(want)}"]
    out: list[str] = []
    for c in got.columns:
        x, y = got[c], want[c]
        na_x, na_y = x.isna().to_numpy(), y.isna().to_numpy()
        if not np.array_equal(na_x, na_y):
            out.append(f"column {c}: {int((na_x != na_y).sum())} cell(s) missing or suppressed on one side only")
            continue
        x, y = x[~na_x], y[~na_y]
        if pd.api.types.is_float_dtype(x.dtype) or pd.api.types.is_float_dtype(y.dtype):
            close = np.isclose(x.astype(float).to_numpy(), y.astype(float).to_numpy(),
                               atol=loose_atol if c in loose else atol, rtol=rtol)  # fmt: skip
            bad = int((~close).sum())
        else:
            bad = sum(a != b for a, b in zip(x.tolist(), y.tolist(), strict=True))
        if bad:
            out.append(f"column {c}: {bad} cell(s) differ")
    return out


def frames_agree(a: pd.DataFrame, b: pd.DataFrame, *, atol: float = ATOL, rtol: float = RTOL,
                 loose: Collection[str] = ()) -> bool:  # fmt: skip
    """Return whether two results agree (see frame_differences)."""
    return not frame_differences(a, b, atol=atol, rtol=rtol, loose=loose)
