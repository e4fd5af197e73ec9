"""The disclosure rules: which protections apply to a plan's outputs, their settings and defaults.

One object, `DisclosureRules`, says which rules a run applies and with what settings;
both executors apply the same rules (the plain executor on NumPy, the MPC executor on
secrets, inside the computation), so "MPC equals plain" holds with every rule on.
docs/disclosure.md describes each rule for a privacy officer: what it protects against,
its default, its setting, and what it costs.

The rules (numbers as in the issue that introduced them, and in docs/disclosure.md):

1. person keys are keys, not values (``person_keys``, plus columns the catalog marks);
2. contributors, not rows (``contributors``);
3. dominance (n, pct) and the p% rule for magnitude columns (``dominance_n``,
   ``dominance_pct``, ``p_percent``);
4. extremes are disclosive (``extremes``: the default for columns without their own
   setting; ``quantile_sides``);
5. the complement rule for filters and inner joins (``complement``);
6. consistent perturbation of counts, or rounding (``counts``, ``ptable``, ``rounding_base``);
7. margins: secondary suppression where perturbation does not cover (``secondary``);
8. limits per request (``max_cells``, ``cells_per_source``);
9. the query register (``register``);
and for model summaries (compile/models): residual degrees of freedom (``model_min_df``) and
parameters per row (``model_max_params``); every category of a binary outcome or a binary or
categorical predictor needs k rows.

The threshold k is not here: it is the plan's ``min_group_size`` (a dataset's or a
collaboration's rules may raise it, never lower it), as before these rules.

Where settings come from: the built-in defaults below; a collaboration's settings
(the hub's configuration, sent with each job); each dataset's own rules (its schema's
``werkplaats:rules``, signed by its datastation). `strictest` merges them: a setting can
only be made stricter by a later source. A local run (``run_local``) takes its rules as
given, so tests can switch any rule off for exact comparisons (`DisclosureRules.cells_only`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ..exceptions import PlanError

COUNTS_MODES = ("exact", "round", "perturb")  # NB: in order of strictness, for strictest()
EXTREMES_MODES = ("release", "round", "withhold")  # NB: likewise
DEFAULT_PERSON_KEYS = ("bsn",)


@dataclass(frozen=True, slots=True)
class PTable:
    """The parameters of the perturbation table (as the ONS/sdcTools ``ptable``).

    D: the largest absolute noise; V: the noise's variance; js: counts 1..js are never
    released as such (they are perturbed to 0 or above js).
    """

    D: int = 2
    V: float = 1.0
    js: int = 0


@dataclass(frozen=True, slots=True)
class DisclosureRules:
    """Which disclosure rules apply, with their settings; the defaults are what a workspace uses."""

    person_keys: tuple[str, ...] = DEFAULT_PERSON_KEYS  # rule 1 (plus catalog columns marked person_key/identifying)
    contributors: bool = True  # rule 2
    dominance_n: int = 2  # rule 3: the n largest contributions ...
    dominance_pct: float = 90.0  # ... may be at most this % of a magnitude total (100: off)
    p_percent: float = 10.0  # rule 3: the p% rule (0: off)
    extremes: str = "withhold"  # rule 4: for columns without their own setting; one of EXTREMES_MODES
    quantile_sides: bool = True  # rule 4: a quantile needs k contributors on each side
    complement: bool = True  # rule 5
    counts: str = "perturb"  # rule 6: one of COUNTS_MODES
    rounding_base: int = 5  # rule 6 (counts == "round") and rule 4 (extremes == "round" without a column base)
    ptable: PTable = PTable()  # rule 6 (counts == "perturb")
    secondary: bool = True  # rule 7
    max_cells: int = 10_000  # rule 8: groups of the output
    cells_per_source: bool = True  # rule 8: groups <= smallest source's rows / k
    register: bool = True  # rule 9
    model_min_df: int = 10  # models: residual degrees of freedom at least this (ACRO's default)
    model_max_params: float = 0.33  # models: parameters at most this share of the rows (DataSHIELD nfilter.glm)

    def __post_init__(self) -> None:
        if self.counts not in COUNTS_MODES:
            msg = f"disclosure rules: counts must be one of {COUNTS_MODES}, not {self.counts!r}"
            raise PlanError(msg)
        if self.extremes not in EXTREMES_MODES:
            msg = f"disclosure rules: extremes must be one of {EXTREMES_MODES}, not {self.extremes!r}"
            raise PlanError(msg)
        if self.dominance_n < 1 or not 0 < self.dominance_pct <= 100 or not 0 <= self.p_percent < 100:
            msg = "disclosure rules: dominance_n >= 1, 0 < dominance_pct <= 100 and 0 <= p_percent < 100"
            raise PlanError(msg)
        if self.rounding_base < 1 or self.max_cells < 1:
            msg = "disclosure rules: rounding_base and max_cells must be at least 1"
            raise PlanError(msg)
        if self.model_min_df < 1 or not 0 < self.model_max_params <= 1:
            msg = "disclosure rules: model_min_df >= 1 and 0 < model_max_params <= 1"
            raise PlanError(msg)
        if self.ptable.D < 0 or self.ptable.V < 0 or self.ptable.js < 0:
            msg = "disclosure rules: the perturbation table's D, V and js must not be negative"
            raise PlanError(msg)

    @classmethod
    def cells_only(cls) -> DisclosureRules:
        """Return the rules that only suppress small cells and statistics (and out-of-range values).

        For exact comparisons in tests and for previews on dummy data; never a workspace's rules.
        """
        return cls(person_keys=(), contributors=False, dominance_pct=100.0, p_percent=0.0, extremes="release",
                   quantile_sides=False, complement=False, counts="exact", secondary=False,
                   max_cells=100_000, cells_per_source=False, register=False)  # fmt: skip

    @property
    def dominance(self) -> bool:
        """Whether the dominance rule applies."""
        return self.dominance_pct < 100

    @property
    def perturb(self) -> bool:
        """Whether released counts are perturbed (cell key method)."""
        return self.counts == "perturb"

    def to_settings(self) -> dict[str, Any]:
        """Return the rules as flat settings (see from_settings), e.g. for a job payload."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, PTable):
                out.update({f"ptable_{g.name}": getattr(v, g.name) for g in fields(v)})
            elif isinstance(v, tuple):
                out[f.name] = list(v)
            else:
                out[f.name] = v
        return out

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], where: str = "disclosure rules",
                      base: DisclosureRules | None = None) -> DisclosureRules:  # fmt: skip
        """Return base (default: the defaults) changed by flat settings (a TOML table, a schema's ``werkplaats:rules``).

        Unknown names and wrong types are refused, naming the setting. ``min_group_size``
        is accepted and ignored here (it is k: see the module docstring).
        """
        base = base if base is not None else cls()
        kw: dict[str, Any] = {}
        pt: dict[str, Any] = {}
        names = {f.name: f for f in fields(cls)}
        for key, v in settings.items():
            if key == "min_group_size":
                continue
            if key.startswith("ptable_") and key[7:] in ("D", "V", "js"):
                pt[key[7:]] = _typed(v, float if key == "ptable_V" else int, f"{where}: {key}")
                continue
            if key not in names or key == "ptable":
                known = sorted([*names, "ptable_D", "ptable_V", "ptable_js"])
                msg = f"{where}: unknown setting {key!r}; known: {known}"
                raise PlanError(msg)
            default = getattr(base, key)
            if isinstance(default, tuple):
                if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
                    msg = f"{where}: {key} must be a list of column names"
                    raise PlanError(msg)
                kw[key] = tuple(v)
            else:
                kw[key] = _typed(v, type(default), f"{where}: {key}")
        if pt:
            kw["ptable"] = replace(base.ptable, **pt)
        return replace(base, **kw)


def _typed(v: Any, t: type, where: str) -> Any:
    if t is float and isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, t) and not (t is int and isinstance(v, bool)):
        return v
    msg = f"{where} must be of type {t.__name__}"
    raise PlanError(msg)


def strictest(first: DisclosureRules, *more: DisclosureRules) -> DisclosureRules:
    """Return the rules at least as strict as each given one, setting by setting."""
    out = first
    for r in more:
        out = DisclosureRules(
            person_keys=tuple(dict.fromkeys((*out.person_keys, *r.person_keys))),
            contributors=out.contributors or r.contributors,
            dominance_n=max(out.dominance_n, r.dominance_n),
            dominance_pct=min(out.dominance_pct, r.dominance_pct),
            p_percent=max(out.p_percent, r.p_percent),
            extremes=_stricter(EXTREMES_MODES, out.extremes, r.extremes),
            quantile_sides=out.quantile_sides or r.quantile_sides,
            complement=out.complement or r.complement,
            counts=_stricter(COUNTS_MODES, out.counts, r.counts),
            rounding_base=max(out.rounding_base, r.rounding_base),
            ptable=PTable(
                max(out.ptable.D, r.ptable.D), max(out.ptable.V, r.ptable.V), max(out.ptable.js, r.ptable.js)
            ),
            secondary=out.secondary or r.secondary,
            max_cells=min(out.max_cells, r.max_cells),
            cells_per_source=out.cells_per_source or r.cells_per_source,
            register=out.register or r.register,
            model_min_df=max(out.model_min_df, r.model_min_df),
            model_max_params=min(out.model_max_params, r.model_max_params),
        )
    return out


def _stricter(order: tuple[str, ...], a: str, b: str) -> str:
    return a if order.index(a) >= order.index(b) else b


def merged(base: DisclosureRules, datasets: Iterable[Mapping[str, Any]]) -> DisclosureRules:
    """Return base made as strict as each dataset's own rules (their ``werkplaats:rules`` settings).

    A dataset's settings change only what they name, and only towards stricter.
    """
    return strictest(base, *(DisclosureRules.from_settings(d, "a dataset's rules", base) for d in datasets))
