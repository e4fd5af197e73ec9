"""Code lists of the reference region: fictional places, an ICPC subset, diagnosis groups.

Gemeente codes use the CBS form GM + 4 digits in the 9xxx range, which CBS does not
use, so no synthetic code is mistaken for a real municipality. Wijk codes are CBS
style: WK + the gemeente's 4 digits + a 2-digit number.
"""

from __future__ import annotations

GEMEENTE_NAMES = (
    "Aldermeer", "Bruinsveld", "Dorrewijk", "Eemsterhout", "Gansoord", "Heerlebroek",
    "Kolderveen", "Lindenhaven", "Maasloo", "Oosterwaard", "Rietbergen", "Zandhove",
)  # fmt: skip
# NB: population shares; the first gemeente is the region's city.
GEMEENTE_WEIGHTS = (0.28, 0.12, 0.10, 0.08, 0.07, 0.06, 0.06, 0.05, 0.05, 0.05, 0.04, 0.04)
WIJKEN_PER_GEMEENTE = (22, 10, 8, 6, 6, 5, 5, 4, 4, 4, 3, 3)  # 80 in all
WIJK_NAMES = (
    "Centrum", "Noord", "Oost", "Zuid", "West", "De Hoven", "Buitengebied", "Molenwijk",
    "Stationskwartier", "Het Veld", "Bloemenbuurt", "Rivierzone", "De Akkers", "Kerkebuurt",
    "Parkwijk", "Vogelwijk", "Hoogkamp", "Watermolen", "Schildersbuurt", "De Brink",
    "Nieuw-Oost", "Industriegebied",
)  # fmt: skip

DISEASES = ("COVID-19", "influenza A", "kinkhoest", "mazelen", "legionellose", "hepatitis A")

ICPC = {
    "R74": "acute infectie bovenste luchtwegen",
    "R78": "acute bronchitis/bronchiolitis",
    "R80": "influenza",
    "R81": "pneumonie",
    "R95": "COPD",
    "K77": "decompensatio cordis",
    "K86": "hypertensie zonder orgaanbeschadiging",
    "T90": "diabetes mellitus",
    "L95": "osteoporose",
    "N17": "vertigo/duizeligheid",
    "A80": "ongeval/letsel NAO",
    "P74": "angststoornis",
    "P76": "depressie",
    "A97": "geen ziekte (preventief consult)",
}
RESPIRATORY_ICPC = ("R74", "R78", "R80", "R81")

HOSPITAL_GROUPS = {
    "luchtweginfectie": "respiratoire infectie (incl. influenza, COVID-19, pneumonie)",
    "val_letsel": "letsel door een val (incl. heupfractuur)",
    "hart_vaat": "hart- en vaatziekten",
    "oncologie": "oncologie",
    "bewegingsapparaat": "bewegingsapparaat (electief)",
    "overig": "overige diagnosegroepen",
}
VVT_CARE = {
    "wijkverpleging": "wijkverpleging (Zvw)",
    "verpleeghuiszorg": "verblijf in een verpleeghuis (Wlz)",
    "kortdurend_verblijf": "kortdurend eerstelijnsverblijf",
}
GGZ_GROUPS = {
    "angst": "angststoornissen",
    "depressie": "depressieve stoornissen",
    "adhd": "ADHD",
    "autisme": "autismespectrumstoornissen",
    "eetstoornis": "eetstoornissen",
    "persoonlijkheid": "persoonlijkheidsstoornissen",
    "trauma": "trauma- en stressorgerelateerde stoornissen",
    "verslaving": "middelengebruik en verslaving",
}
WMO = {
    "hulp_bij_huishouden": "hulp bij het huishouden",
    "begeleiding": "begeleiding (individueel of groep)",
    "hulpmiddel": "hulpmiddel of woningaanpassing",
    "beschermd_wonen": "beschermd wonen",
}
SEX = {"M": "man", "V": "vrouw"}
