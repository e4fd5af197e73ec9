"""The template gallery: each use case of `werkplaats.usecases` as a form, declared in one table.

A template is its name, a title and a sentence (English message ids, translated in the page),
a purpose text to start from, its parameters (type, allowed values or range, default) and the
builder that turns the parameters into a plan. The pages (`web/analyst/templates.py`) render any
template from this table: no page code per template.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import usecases as uc
from ..exceptions import PlanError
from ..frame import LazyFrame
from ..usecases.fall_risk import TERMS


def _(message: str) -> str:
    """Mark a message id for translation (translated where it is shown)."""
    return message


@dataclass(frozen=True)
class Param:
    """A template parameter: a select (choices), an integer or number in a range, or a yes/no."""

    name: str
    label: str  # NB: a message id
    kind: str  # select | int | float | bool
    default: Any
    choices: tuple[tuple[str, str], ...] = ()  # NB: (value, label message id)
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    term: bool = False  # NB: a model term's coefficient: its label is followed by the term's name

    def parse(self, raw: str | None) -> Any:
        """Return the form's value as the builder takes it; raise PlanError when it is not allowed."""
        if self.kind == "bool":
            return raw in ("on", "true", "1")
        if raw is None or raw == "":
            return self.default
        if self.kind == "select":
            if raw not in {v for v, _label in self.choices}:
                msg = f"{self.name}: {raw!r} is not one of the allowed values"
                raise PlanError(msg)
            return raw
        try:
            v: float = int(raw) if self.kind == "int" else float(raw)
        except ValueError:
            msg = f"{self.name}: {raw!r} is not a number"
            raise PlanError(msg) from None
        if (self.minimum is not None and v < self.minimum) or (self.maximum is not None and v > self.maximum):
            msg = f"{self.name}: {v} is outside {self.minimum} … {self.maximum}"
            raise PlanError(msg)
        return v


@dataclass(frozen=True)
class Template:
    """A use case as the gallery shows it, and how its parameters make a plan."""

    name: str
    title: str  # NB: message ids, English
    summary: str
    purpose: str  # NB: the purpose text the form starts with (Dutch: stewards and the register read it)
    params: tuple[Param, ...]
    build: Callable[..., LazyFrame]
    reads: tuple[str, ...] = field(default=())

    def defaults(self) -> dict[str, Any]:
        """The parameters' default values."""
        return {p.name: p.default for p in self.params}

    def values(self, form: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters of a submitted form, checked against their choices and ranges."""
        return {p.name: p.parse(form.get(p.name)) for p in self.params}

    def plan(self, values: Mapping[str, Any]) -> LazyFrame:
        """The plan of these parameter values."""
        return self.build(**values)


YEAR = Param("year", _("Year"), "int", 2024, minimum=2023, maximum=2024)
LEVEL = Param(
    "level", _("Level"), "select", "gemeente", choices=(("gemeente", _("Municipality")), ("wijk", _("District")))
)
SIGNAL = Param(
    "signal",
    _("Signal"),
    "select",
    "ggd",
    choices=(
        ("ggd", _("GGD notifications")),
        ("huisarts", _("GP consultations")),
        ("ziekenhuis", _("Hospital admissions")),
    ),
)
DISEASE = Param(
    "disease",
    _("Disease (GGD notifications)"),
    "select",
    "influenza A",
    choices=tuple((d, d) for d in ("influenza A", "COVID-19", "kinkhoest", "mazelen", "legionellose", "hepatitis A")),
)
# NB: the released coefficients of a fall-risk model go back in as public literals (docs/usecases.md 4)
COEFFICIENTS = (
    *(
        Param(
            t,
            _("Coefficient"),
            "float",
            -1.0 if t == "intercept" else 0.0,
            minimum=-20,
            maximum=20,
            step=0.001,
            term=True,
        )
        for t in ("intercept", *TERMS)
    ),
)


def _hotspots(year: int, signal: str, level: str, disease: str, risk_groups: bool) -> LazyFrame:
    return uc.infection_hotspots(year, signal=signal, level=level, disease=disease, risk_groups=risk_groups)


def _early_warning(year: int, signal: str, disease: str) -> LazyFrame:
    return uc.infection_hotspots(year, signal=signal, level="gemeente", disease=disease)


def _tiers(year: int, **coefs: float) -> LazyFrame:
    return uc.fall_risk_tiers(year, coefs)


def _auc(year: int, **coefs: float) -> LazyFrame:
    return uc.fall_risk_auc_table(year, coefs)


def _overlap(year: int, level: str) -> LazyFrame:
    return uc.care_overlap(year, level=None if level == "regio" else level)


TEMPLATES: tuple[Template, ...] = (
    Template(
        "infection-hotspots",
        _("Infection hotspots"),
        _("Weekly infections per municipality or district, from GGD notifications, GP consults or admissions."),
        "Infectiehaarden volgen per gemeente of wijk en week (pandemische paraatheid).",
        (YEAR, SIGNAL, LEVEL, DISEASE, Param("risk_groups", _("Split by risk group"), "bool", False)),
        _hotspots,
    ),
    Template(
        "chronic-notifications",
        _("Chronically ill and notifications"),
        _("GP patients with a chronic condition per municipality, and how many of them the GGD notified in a year."),
        "Kwetsbare inwoners (chronisch zieken bij de huisarts) per gemeente in beeld brengen, en hoeveel van hen "
        "de GGD een melding van de ziekte kreeg (pandemische paraatheid).",
        (YEAR, DISEASE, LEVEL),
        lambda year, disease, level: uc.chronic_notifications(year, disease=disease, level=level),
    ),
    Template(
        "early-warning",
        _("Incidence and early warning"),
        _("Weekly counts per municipality; with the year before they give incidence and early warnings."),
        "Vroegsignalering: wekelijkse aantallen per gemeente, vergeleken met hetzelfde seizoen vorig jaar.",
        (YEAR, SIGNAL, DISEASE),
        _early_warning,
    ),
    Template(
        "care-stacking",
        _("Care stacking"),
        _("Residents per region by the number of kinds of care they use in a year."),
        "Zorgstapeling in beeld brengen per wijk of gemeente, om zorg en ondersteuning beter af te stemmen.",
        (YEAR, Param("level", _("Level"), "select", "wijk", choices=LEVEL.choices)),
        lambda year, level: uc.care_stacking(year, level=level),
    ),
    Template(
        "care-overlap",
        _("Care overlap"),
        _("How many residents use each kind of care, and each pair of kinds together."),
        "Overlap tussen zorgvormen in beeld brengen, voor de regio of per gemeente.",
        (
            YEAR,
            Param(
                "level",
                _("Level"),
                "select",
                "regio",
                choices=(("regio", _("Whole region")), ("gemeente", _("Municipality"))),
            ),
        ),
        _overlap,
    ),
    Template(
        "waiting-list",
        _("Mental-health waiting list"),
        _("Registrations, started treatments and waiting times per municipality, age group and diagnosis group."),
        "Wachttijden in de GGZ volgen per gemeente, leeftijdsgroep en diagnosegroep.",
        (YEAR,),
        lambda year: uc.waiting_list(year),
    ),
    Template(
        "fall-risk",
        _("Fall risk model"),
        _("A logistic regression of falls of elderly-care clients on age, medication, conditions, sex, care type."),
        "Valrisico van cliënten in de ouderenzorg schatten, om valpreventie gericht in te zetten.",
        (YEAR,),
        lambda year: uc.fall_risk(year),
    ),
    Template(
        "fall-risk-tiers",
        _("Fall risk: evaluation by risk tier"),
        _("Clients, fallers and mean predicted risk per risk tier, from a fall-risk model's coefficients."),
        "Het valrisicomodel evalueren: kalibratie per risiconiveau.",
        (YEAR, *COEFFICIENTS),
        _tiers,
    ),
    Template(
        "fall-risk-auc",
        _("Fall risk: discrimination (AUC table)"),
        _("Clients per bin of the linear predictor and outcome, from the released coefficients: the AUC of the model."),
        "Het valrisicomodel evalueren: onderscheidend vermogen (AUC).",
        (YEAR, *COEFFICIENTS),
        _auc,
    ),
    Template(
        "fall-admissions",
        _("Fall admissions by municipality"),
        _("Age-standardised fall-related hospital admissions per 100,000 residents per municipality."),
        "Valgerelateerde ziekenhuisopnamen per gemeente vergelijken, gestandaardiseerd naar leeftijd.",
        (YEAR,),
        lambda year: uc.fall_admissions_by_gemeente(year),
    ),
)
BY_NAME = {t.name: t for t in TEMPLATES}
