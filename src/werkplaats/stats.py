"""Tests on released cross-tables: Pearson's chi-square, and risk and odds ratios of a 2 × 2 table.

Everything here is computed from a result the analyst already has — the DataFrame of
``LazyFrame.crosstab(row, column)`` after the disclosure rules — and from nothing else, so a
test can never give back a cell that the rules suppressed: a test that would need a suppressed
cell is refused, with the cell and its reason named. Released counts are perturbed (each by at
most the perturbation table's D, 2 by default) or rounded (by at most half the rounding base), so
the statistics are those of the released table: close to, not equal to, the statistics of the
exact counts (docs/plans.md, "Correlations and cross-tables").

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"rookt": [True, True, False, False], "copd": [True, False, True, False],
...                   "n": pd.array([30, 70, 10, 90], dtype="Int64"), "suppressed": [False] * 4})
>>> rr = two_by_two(t, "rookt", "copd")
>>> round(rr.risk_ratio, 6), round(rr.odds_ratio, 6)
(3.0, 3.857143)
>>> round(chi_square(t, "rookt", "copd").statistic, 4)
12.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import WerkplaatsError

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


class SuppressedCellError(WerkplaatsError):
    """A test on a released table would need a cell that the disclosure rules suppressed (or a zero cell)."""


@dataclass(frozen=True)
class ChiSquare:
    """Pearson's chi-square test of independence on a released cross-table (no continuity correction)."""

    statistic: float
    df: int
    p_value: float
    observed: pd.DataFrame  # the released counts used: one row per row value, one column per column value
    expected: pd.DataFrame  # the expected counts under independence, from the released margins
    n: int  # the released counts' total


@dataclass(frozen=True)
class TwoByTwo:
    """Risk ratio (Katz's log interval) and odds ratio (Woolf's log interval), with 95% intervals."""

    risk_ratio: float
    risk_ratio_ci: tuple[float, float]
    odds_ratio: float
    odds_ratio_ci: tuple[float, float]
    cells: pd.DataFrame  # the 2 × 2 table used (after any correction): rows exposed / not, columns case / not
    correction: float  # added to every cell (0: none; 0.5: Haldane-Anscombe)


def _released(result: pd.DataFrame, row: str, column: str, value: str) -> pd.DataFrame:
    """Return the cells with both keys present: row, column, value and why a missing value is missing."""
    for c in (row, column, value):
        if c not in result.columns:
            msg = f"the result has no column {c!r} (columns: {', '.join(map(str, result.columns))})"
            raise KeyError(msg)
    keep = result[row].notna().to_numpy() & result[column].notna().to_numpy()
    cells = result.loc[keep]
    if cells.duplicated([row, column]).any():
        msg = f"the result has more than one cell per ({row}, {column}): pass the result of crosstab({row!r}, ...)"
        raise ValueError(msg)
    return cells


def _why(cell: pd.Series) -> str:
    reason = cell.get("reason")
    return str(reason) if isinstance(reason, str) and reason else "suppressed"


def _refuse(cell: pd.Series, row: str, column: str, what: str, needs: str) -> SuppressedCellError:
    msg = (f"{what}: the cell {row} = {cell[row]!r}, {column} = {cell[column]!r} is suppressed ({_why(cell)}); "
           f"{needs}, so no test on the remaining cells is given. Combine or leave out categories (filter, "
           "cut, when) so that every cell has enough rows, and run the cross-table again.")  # fmt: skip
    return SuppressedCellError(msg)


def _count(cell: pd.Series, value: str) -> float | None:
    v = cell[value]
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if bool(cell.get("suppressed", False)):
        return None
    return float(v)


def chi_square(result: pd.DataFrame, row: str, column: str, value: str = "n") -> ChiSquare:
    """Pearson's chi-square test of independence of ``row`` and ``column`` on a released cross-table.

    ``result`` is the DataFrame of ``LazyFrame.crosstab(row, column)`` (or any result with one count
    per pair of values, in ``value``). Cells where either key is missing (None) are left out. The
    statistic is sum((O - E)² / E) over the table, E = row total × column total / n, with
    (rows - 1)(columns - 1) degrees of freedom and the chi-square distribution's upper tail as p-value
    (scipy); no continuity correction. A row or column value whose released counts are all 0 is left out.

    Everything comes from the released cells: when one of them is suppressed, the test is refused
    (SuppressedCellError, naming the cell and its reason) — the totals and every expected count would
    need the suppressed count, and a test on the other cells would be a different test.

    Approximate: released counts are perturbed, each by at most the perturbation table's D (2 by
    default; or rounded, by at most half the rounding base), so O, the totals and E are each that
    close to the exact table's, and the statistic is the released table's, not the exact one's.
    Expected counts below 5 make the chi-square approximation itself poor: look at ``expected``.
    """
    from scipy import stats as sps

    cells = _released(result, row, column, value)
    counts: dict[tuple[Any, Any], float] = {}
    for _, cell in cells.iterrows():
        got = _count(cell, value)
        if got is None:
            raise _refuse(cell, row, column, "chi_square",
                          "the row and column totals and every expected count depend on it")  # fmt: skip
        counts[(cell[row], cell[column])] = got
    rows = list(dict.fromkeys(r for r, _ in counts))
    cols = list(dict.fromkeys(c for _, c in counts))
    obs = pd.DataFrame(0.0, index=pd.Index(rows, name=row), columns=pd.Index(cols, name=column))
    for (r, c), v in counts.items():
        obs.loc[r, c] = v
    obs = obs.loc[obs.sum(axis=1) > 0, obs.sum(axis=0) > 0]
    if obs.shape[0] < 2 or obs.shape[1] < 2:
        msg = f"chi_square: {row} and {column} need two or more values with released counts each"
        raise ValueError(msg)
    o = obs.to_numpy()
    total = o.sum()
    e = np.outer(o.sum(axis=1), o.sum(axis=0)) / total
    stat = float(((o - e) ** 2 / e).sum())
    df = (o.shape[0] - 1) * (o.shape[1] - 1)
    expected = pd.DataFrame(e, index=obs.index, columns=obs.columns)
    return ChiSquare(stat, df, float(sps.chi2.sf(stat, df)), obs, expected, round(total))


def two_by_two(result: pd.DataFrame, exposure: str, outcome: str, value: str = "n", exposed: Any = True,
               case: Any = True, correction: float = 0.0) -> TwoByTwo:  # fmt: skip
    """Risk ratio and odds ratio of ``outcome == case`` for ``exposure == exposed`` against the other value.

    ``result`` is the DataFrame of ``LazyFrame.crosstab(exposure, outcome)``; both columns must take
    two values (missing keys are left out). With a = exposed cases, b = exposed non-cases, c and d
    the same for the unexposed:

    - risk ratio (a / (a + b)) / (c / (c + d)), 95% interval exp(log RR ± 1.96 · SE),
      SE = sqrt(1/a - 1/(a + b) + 1/c - 1/(c + d)) (Katz);
    - odds ratio a·d / (b·c), 95% interval exp(log OR ± 1.96 · SE), SE = sqrt(1/a + 1/b + 1/c + 1/d) (Woolf).

    Refused (SuppressedCellError) when one of the four cells is suppressed — naming it and its reason —
    or is 0, unless ``correction`` (0.5: Haldane-Anscombe) is asked for: it is then added to every cell.
    The released counts are perturbed (each by at most D, 2 by default) or rounded, so the ratios are
    the released table's: for a cell of count x, a change of D moves its log by about D / x.
    """
    if correction < 0:
        msg = "two_by_two: correction must be 0 or more (0.5 for Haldane-Anscombe)"
        raise ValueError(msg)
    cells = _released(result, exposure, outcome, value)
    levels = {}
    for col, chosen in ((exposure, exposed), (outcome, case)):
        vals = list(dict.fromkeys(cells[col].tolist()))
        if len(vals) != 2 or chosen not in vals:
            msg = (f"two_by_two: {col} must take two values, one of them {chosen!r}; "
                   f"the result has {len(vals)}")  # fmt: skip
            raise ValueError(msg)
        levels[col] = [chosen, next(v for v in vals if v != chosen)]
    table = np.zeros((2, 2))
    for i, ex in enumerate(levels[exposure]):
        for j, oc in enumerate(levels[outcome]):
            match = cells[(cells[exposure] == ex).to_numpy() & (cells[outcome] == oc).to_numpy()]
            if len(match) != 1:
                msg = f"two_by_two: no cell {exposure} = {ex!r}, {outcome} = {oc!r} in the result"
                raise ValueError(msg)
            cell = match.iloc[0]
            got = _count(cell, value)
            if got is None:
                raise _refuse(cell, exposure, outcome, "two_by_two", "both ratios and their intervals need it")
            if got == 0 and correction == 0:
                msg = (
                    f"two_by_two: the cell {exposure} = {ex!r}, {outcome} = {oc!r} is 0, so a ratio or its "
                    "interval is not finite; pass correction=0.5 (Haldane-Anscombe) to add 0.5 to every cell"
                )
                raise SuppressedCellError(msg)
            table[i, j] = got + correction
    a, b, c, d = table.ravel()
    rr = (a / (a + b)) / (c / (c + d))
    se_rr = math.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    odds = a * d / (b * c)
    se_or = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    used = pd.DataFrame(table, index=pd.Index(levels[exposure], name=exposure),
                        columns=pd.Index(levels[outcome], name=outcome))  # fmt: skip
    return TwoByTwo(float(rr), _ci(rr, se_rr), float(odds), _ci(odds, se_or), used, float(correction))


def _ci(ratio: float, se: float) -> tuple[float, float]:
    return float(math.exp(math.log(ratio) - Z95 * se)), float(math.exp(math.log(ratio) + Z95 * se))
