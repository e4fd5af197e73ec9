"""The catalog entry of every source of the reference region: schema, owner, description.

The code lists of gemeente and wijk come from the generated map; the others from
``codes``. Every source has ``bsn`` as its person key (a synthetic one, see
``generate._bsn``), marked ``role="person_key"`` (rule 1 of docs/disclosure.md). As a steward
would: length of stay is a magnitude (rule 3: bed days add up like costs; counts of conditions,
medications or falls are not), and ages and stays have their extremes released only rounded
(rule 4: ages to 5 years, stays to a week).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..catalog.schema import ColumnSchema as C
from ..catalog.schema import TableSchema
from . import codes
from .generate import END, START


@dataclass(frozen=True)
class Dataset:
    """A source as its owner publishes it in the catalog."""

    name: str  # organisation/table
    title: str
    description: str
    update_frequency: str
    schema: TableSchema

    @property
    def organisation(self) -> str:
        return self.name.split("/")[0]

    @property
    def person_key(self) -> str:
        return "bsn"


def datasets(gemeenten: tuple[str, ...], wijken: tuple[str, ...]) -> list[Dataset]:
    """Return the region's datasets, given its gemeente and wijk code lists."""
    birth = (dt.date(1900, 1, 1), END)
    period = (START, END)
    # NB: rule 1: the person key is a key, never a value (docs/disclosure.md)
    bsn = C("bsn", "int", None, 100_000_000, 999_999_999, False, "person key (synthetic BSN, fails the 11-proef)",
            role="person_key")  # fmt: skip
    bsn_u = C("bsn", "int", None, 100_000_000, 999_999_999, True, bsn.description, role="person_key")
    gem = C("gemeente", "str", gemeenten, description="gemeente of residence (CBS code, codelists/gemeenten.csv)")
    wijk = C("wijk", "str", wijken, description="wijk of residence (CBS code, codelists/wijken.csv)")
    sex = C("geslacht", "str", tuple(codes.SEX), description="M = man, V = vrouw")

    def t(name: str, *cols: C) -> TableSchema:
        return TableSchema(name, cols)

    return [
        Dataset("ggd/meldingen", "Meldingen meldingsplichtige infectieziekten",
                "One row per notification to the GGD (Wet publieke gezondheid), with the case's residence.",
                "daily", t("ggd/meldingen", bsn,
                           C("ziekte", "str", codes.DISEASES, description="notified disease"),
                           C("eerste_ziektedag", "date", None, *period, description="first day of illness"),
                           C("meldingsdatum", "date", None, *period, description="date the report reached the GGD"),
                           gem, wijk,
                           C("leeftijd", "int", None, 0, 110, description="age in years on the first day of illness",
                             extremes_base=5),
                           C("ziekenhuisopname", "bool", description="admitted to hospital for this illness"))),
        Dataset("huisartsen/patienten", "Ingeschreven patiënten",
                "Patients registered with the participating GP groups on the peildatum, with chronic conditions "
                "and the number of distinct medications in chronic use.",
                "monthly", t("huisartsen/patienten", bsn_u,
                             C("geboortedatum", "date", None, *birth, description="date of birth"), sex, gem, wijk,
                             C("chronische_aandoeningen", "int", None, 0, 20,
                               description="number of chronic conditions (episode list)"),
                             C("medicatie", "int", None, 0, 50,
                               description="number of distinct medications in chronic use"))),
        Dataset("huisartsen/consulten", "Consulten",
                "GP consults with their ICPC code, for the codes in codelists/icpc.csv.",
                "monthly", t("huisartsen/consulten", bsn,
                             C("datum", "date", None, *period, description="date of the consult"),
                             C("icpc", "str", tuple(codes.ICPC), description="ICPC-1 code of the episode"))),
        Dataset("ziekenhuis/opnamen", "Klinische opnamen",
                "Inpatient admissions with their diagnosis group and length of stay.",
                "monthly", t("ziekenhuis/opnamen", bsn,
                             C("opnamedatum", "date", None, *period, description="date of admission"),
                             C("diagnosegroep", "str", tuple(codes.HOSPITAL_GROUPS), description="diagnosis group"),
                             C("ligduur", "int", None, 1, 365, description="length of stay in days", role="magnitude",
                               extremes_base=7),
                             gem, wijk)),
        Dataset("vvt/clienten", "Cliënten ouderenzorg",
                "Clients of the VVT organisation: type of care, care period and fall incidents in 2024.",
                "monthly", t("vvt/clienten", bsn_u,
                             C("geboortedatum", "date", None, *birth, description="date of birth"), sex,
                             C("zorgvorm", "str", tuple(codes.VVT_CARE), description="type of care"),
                             C("startdatum", "date", None, dt.date(2000, 1, 1), END, description="start of care"),
                             C("einddatum", "date", None, dt.date(2000, 1, 1), END,
                               description="end of care; empty while care continues"),
                             C("valincidenten", "int", None, 0, 100,
                               description="number of fall incidents registered in 2024"))),
        Dataset("ggz/wachtlijst", "Aanmeldingen en wachttijden",
                "Registrations at the GGZ provider: registration date, start of treatment (empty while waiting).",
                "monthly", t("ggz/wachtlijst", bsn_u,
                             C("aanmelddatum", "date", None, *period, description="date of registration"),
                             C("startdatum_behandeling", "date", None, *period,
                               description="start of treatment; empty while still waiting"),
                             C("leeftijd", "int", None, 0, 110, description="age in years at registration",
                               extremes_base=5),
                             C("diagnosegroep", "str", tuple(codes.GGZ_GROUPS), description="diagnosis group"),
                             gem)),
        Dataset("gemeente/inwoners", "Inwoners (BRP-extract)",
                "Residents of the region on the peildatum: the population register extract for this collaboration.",
                "monthly", t("gemeente/inwoners", bsn_u,
                             C("geboortedatum", "date", None, *birth, description="date of birth"), sex, gem, wijk)),
        Dataset("gemeente/sociaal_domein", "Voorzieningen sociaal domein 2024",
                "Residents with a Wmo provision or youth care (Jeugdwet) in 2024; one row per person.",
                "quarterly", t("gemeente/sociaal_domein", bsn_u, gem, wijk,
                               C("wmo_voorziening", "str", tuple(codes.WMO),
                                 description="main Wmo provision; empty if none"),
                               C("jeugdhulp", "bool", description="youth care under the Jeugdwet in 2024"))),
    ]  # fmt: skip
