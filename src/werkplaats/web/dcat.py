"""The catalog as DCAT-AP (JSON-LD), public, for the national publicatiepunt to harvest.

One ``dcat:Catalog`` published by the workspace's hub, one ``dcat:Dataset`` per catalog entry (publisher:
its organisation), each with one ``dcat:Distribution`` that offers no download: the data is used only
through analyses its stewards approved, under secure multi-party computation (``dcat:accessService``).
The distribution ``dct:conformsTo`` the dataset's Frictionless Table Schema, embedded as an ``rdf:JSON``
literal. The ``@context`` is inline, so a harvester (and our test) never fetches anything remote.
``web/shapes/dcat-ap.ttl`` holds the SHACL shapes this document is validated against (tests/web/test_dcat.py).

NB: public metadata only: titles, descriptions, schemas, the update frequency and the rounded row count
(as the catalog stores it). Never a dataset's rules, completeness, a user, a key or a row.
"""

# OWNER: helper oversight

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ..workspace import db
from ..workspace.catalog_io import rounded
from .deps import HubDep

router = APIRouter()

SHAPES = Path(__file__).parent / "shapes" / "dcat-ap.ttl"
MEDIA_TYPE = "application/ld+json"
EU = "http://publications.europa.eu/resource/authority/"
CONTEXT: dict[str, str] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
}
FREQUENCY = {  # NB: the EU frequency authority table (what DCAT-AP asks for dct:accrualPeriodicity)
    "continuous": "CONT",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "yearly": "ANNUAL",
    "annual": "ANNUAL",
    "irregular": "IRREG",
}
HEALTH = EU + "data-theme/HEAL"
NON_PUBLIC = EU + "access-right/NON_PUBLIC"
TABLE_SCHEMA_SPEC = "https://specs.frictionlessdata.io/table-schema/"


def _text(nl: str, en: str) -> list[dict[str, str]]:
    """A text in Dutch and English (language-tagged literals)."""
    return [{"@value": nl, "@language": "nl"}, {"@value": en, "@language": "en"}]


def _region(geo_dir: Path | None, base: str, hub_name: str) -> dict[str, Any]:
    """The region as a dct:Location: its gemeenten's names and bounding box (from the region's own GeoJSON)."""
    loc: dict[str, Any] = {"@id": f"{base}/dcat/catalog.jsonld#region", "@type": "dct:Location"}
    names: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    p = geo_dir / "gemeenten.geojson" if geo_dir else None
    if p is not None and p.is_file():
        fc = json.loads(p.read_text(encoding="utf-8"))
        for f in fc.get("features", []):
            props = f.get("properties") or {}
            n = props.get("naam") or props.get("name")
            if n:
                names.append(str(n))
            stack: list[Any] = [(f.get("geometry") or {}).get("coordinates", [])]
            while stack:
                c = stack.pop()
                if c and isinstance(c[0], int | float):
                    xs.append(float(c[0]))
                    ys.append(float(c[1]))
                else:
                    stack.extend(c)
    label = "Regio van werkplaats " + hub_name + (": " + ", ".join(sorted(names)) if names else "")
    loc["skos:prefLabel"] = {"@value": label, "@language": "nl"}
    if xs:
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        wkt = f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"
        loc["dcat:bbox"] = {"@value": wkt, "@type": "gsp:wktLiteral"}
    return loc


def _dataset(d: db.Dataset, org: db.Organisation, base: str, service: str, region: str) -> dict[str, Any]:
    """One catalog entry as a dcat:Dataset with its (no-download) distribution."""
    uri = f"{base}/dcat/datasets/{d.name}"
    page = f"{base}/catalog/{d.name}"  # NB: the analysts' catalog page of the dataset (after login)
    fields = [f.get("name", "") for f in (d.table_schema or {}).get("fields", []) if isinstance(f, dict)]
    rows = f" Ongeveer {rounded(d.row_count):,} rijen (afgerond).".replace(",", ".") if d.row_count is not None else ""
    description = d.description or f"Tabel {d.name} van {org.title or org.name}; kolommen: {', '.join(fields)}."
    ds: dict[str, Any] = {
        "@id": uri,
        "@type": "dcat:Dataset",
        "dct:identifier": d.name,
        "dct:title": d.title or d.name,
        "dct:description": description + rows,
        "dct:publisher": {"@id": f"{base}/dcat/organisations/{org.name}"},
        "dcat:theme": {"@id": HEALTH},
        "dcat:keyword": sorted({org.name, d.name.split("/", 1)[-1], *(w for w in [org.kind] if w)}),
        "dct:accessRights": {"@id": NON_PUBLIC},
        "dct:spatial": {"@id": region},
        "dct:modified": {"@value": d.updated.date().isoformat(), "@type": "xsd:date"},
        "dcat:landingPage": {"@id": page, "@type": ["foaf:Document", "rdfs:Resource"]},
        "dcat:distribution": {
            "@id": uri + "#distribution",
            "@type": "dcat:Distribution",
            "dct:title": _text("Alleen via goedgekeurde MPC-analyses", "Only through approved MPC analyses"),
            "dct:description": _text(
                "Geen download: de gegevens blijven bij de bron. Wie ze wil gebruiken, dient in de werkplaats "
                "een analyse in; die draait pas na goedkeuring door de data-steward van de organisatie, onder "
                "secure multi-party computation, en geeft alleen geaggregeerde, tegen onthulling beschermde "
                "uitkomsten.",
                "No download: the data stays at its source. An analysis is submitted in the workspace; it runs "
                "only after the organisation's data steward approved it, under secure multi-party computation, "
                "and gives back aggregated, disclosure-controlled results only.",
            ),
            "dcat:accessURL": {"@id": page},
            "dcat:accessService": {"@id": service},
            "dct:accessRights": {"@id": NON_PUBLIC},
            "dct:conformsTo": {
                "@id": uri + "#table-schema",
                "@type": "dct:Standard",
                "dct:title": f"Frictionless Table Schema: {d.name}",
                "dct:conformsTo": {"@id": TABLE_SCHEMA_SPEC},
                "rdf:value": {"@value": json.dumps(d.table_schema, sort_keys=True), "@type": "rdf:JSON"},
            },
        },
    }
    if d.update_frequency.lower() in FREQUENCY:
        ds["dct:accrualPeriodicity"] = {"@id": EU + "frequency/" + FREQUENCY[d.update_frequency.lower()]}
    return ds


def catalog_document(s: Any, *, base: str, hub_name: str, geo_dir: Path | None) -> dict[str, Any]:
    """Return the workspace's catalog as a DCAT-AP JSON-LD document (context inline).

    Examples
    --------
    >>> doc = catalog_document(s, base="https://werkplaats.example", hub_name="hub", geo_dir=None)  # doctest: +SKIP
    >>> doc["@graph"][0]["@type"]  # doctest: +SKIP
    'dcat:Catalog'
    """
    base = base.rstrip("/")
    orgs = {o.id: o for o in s.scalars(select(db.Organisation))}
    datasets = list(s.scalars(select(db.Dataset).order_by(db.Dataset.name)))
    service = f"{base}/dcat/catalog.jsonld#mpc"
    region = _region(geo_dir, base, hub_name)
    hub_agent = {
        "@id": f"{base}/dcat/catalog.jsonld#publisher",
        "@type": "foaf:Agent",
        "foaf:name": f"werkplaats {hub_name}",
    }
    agents = [
        {
            "@id": f"{base}/dcat/organisations/{o.name}",
            "@type": "foaf:Agent",
            "foaf:name": o.title or o.name,
            "dct:identifier": o.name,
        }
        for o in sorted(orgs.values(), key=lambda o: o.name)
        if any(d.organisation_id == o.id for d in datasets)
    ]
    entries = [_dataset(d, orgs[d.organisation_id], base, service, region["@id"]) for d in datasets]
    catalog = {
        "@id": f"{base}/dcat/catalog.jsonld",
        "@type": "dcat:Catalog",
        "dct:title": _text(f"Catalogus van werkplaats {hub_name}", f"Catalogue of werkplaats {hub_name}"),
        "dct:description": _text(
            "De datasets die de organisaties in deze werkplaats beschikbaar stellen voor analyses onder secure "
            "multi-party computation. Alleen beschrijvingen en tabelschema's; geen gegevens.",
            "The datasets the organisations of this workspace make available for analyses under secure "
            "multi-party computation. Descriptions and table schemas only; no data.",
        ),
        "dct:publisher": {"@id": hub_agent["@id"]},
        "foaf:homepage": {"@id": base + "/", "@type": ["foaf:Document", "rdfs:Resource"]},
        "dct:spatial": {"@id": region["@id"]},
        "dct:language": {"@id": EU + "language/NLD"},
        "dcat:themeTaxonomy": {"@id": EU + "data-theme"},
        "dcat:dataset": [{"@id": e["@id"]} for e in entries],
        "dcat:service": {"@id": service},
    }
    access = {
        "@id": service,
        "@type": "dcat:DataService",
        "dct:title": _text("werkplaats: analyses onder MPC", "werkplaats: analyses under MPC"),
        "dct:description": _text(
            "Analyses op de gecombineerde gegevens van meerdere organisaties zonder dat die de bron verlaten; "
            "elke analyse heeft goedkeuring van de data-stewards nodig en geeft alleen geaggregeerde uitkomsten.",
            "Analyses of several organisations' joint data without it leaving its sources; every analysis needs "
            "its data stewards' approval and gives back aggregated results only.",
        ),
        "dcat:endpointURL": {"@id": base + "/"},
        "dct:accessRights": {"@id": NON_PUBLIC},
        "dct:publisher": {"@id": hub_agent["@id"]},
        "dcat:servesDataset": [{"@id": e["@id"]} for e in entries],
    }
    return {"@context": CONTEXT, "@graph": [catalog, hub_agent, *agents, region, access, *entries, *_typed(entries)]}


def _typed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The classes of the resources the document points to (EU authority tables, the hub's address).

    NB: DCAT-AP's full shapes check the class of each value (a frequency is a dct:Frequency, ...); a
    harvester does not fetch the authority tables, so the document says so itself.
    """
    freqs = sorted({e["dct:accrualPeriodicity"]["@id"] for e in entries if "dct:accrualPeriodicity" in e})
    return [
        {
            "@id": EU + "data-theme",
            "@type": "skos:ConceptScheme",
            "dct:title": {"@value": "Data theme", "@language": "en"},
        },
        {
            "@id": HEALTH,
            "@type": "skos:Concept",
            "skos:inScheme": {"@id": EU + "data-theme"},
            "skos:prefLabel": _text("Gezondheid", "Health"),
        },
        {"@id": NON_PUBLIC, "@type": "dct:RightsStatement"},
        {"@id": EU + "language/NLD", "@type": "dct:LinguisticSystem"},
        *({"@id": f, "@type": "dct:Frequency"} for f in freqs),
    ]


@router.get("/dcat/catalog.jsonld")
def catalog_jsonld(request: Request, hub: HubDep) -> JSONResponse:
    """The catalog as DCAT-AP JSON-LD: public, no login (metadata only)."""
    cfg = request.app.state.cfg
    with hub.sessions() as s:
        doc = catalog_document(s, base=cfg.public_url, hub_name=hub.name, geo_dir=cfg.geo_dir)
    return JSONResponse(doc, media_type=MEDIA_TYPE)
