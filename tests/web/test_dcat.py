"""The public DCAT-AP export: valid JSON-LD (context inline), conforming to our DCAT-AP shapes, no download."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pyshacl import validate
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from sqlalchemy import select

from werkplaats.web.dcat import SHAPES
from werkplaats.workspace import db

from .conftest import Web

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")


def _graph(doc: dict[str, Any]) -> Graph:
    """Parse a JSON-LD document offline (its @context must be inline: nothing is fetched)."""
    assert isinstance(doc["@context"], dict)
    return Graph().parse(data=json.dumps(doc), format="json-ld")


def _conforms(doc: dict[str, Any]) -> tuple[bool, str]:
    ok, _g, text = validate(_graph(doc), shacl_graph=Graph().parse(SHAPES, format="turtle"), inference="none")
    return bool(ok), str(text)


@pytest.fixture
def doc(web: Web) -> dict[str, Any]:
    with web.hub.sessions() as s:
        d = s.scalars(select(db.Dataset).where(db.Dataset.name == "ggd/meldingen")).one()
        d.update_frequency, d.row_count = "daily", 12000  # NB: as a datastation publishes it (rounded)
        s.commit()
    r = web.client().get("/dcat/catalog.jsonld")  # NB: no login
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    got: dict[str, Any] = r.json()
    return got


def test_catalog_is_public_dcat_ap_and_conforms(web: Web, doc: dict[str, Any]) -> None:
    assert isinstance(doc["@context"], dict)  # NB: inline, never a remote URL
    g = _graph(doc)
    ok, report = _conforms(doc)
    assert ok, report
    catalogs = list(g.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1
    datasets = set(g.objects(catalogs[0], DCAT.dataset))
    with web.hub.sessions() as s:
        names = {d.name: d for d in s.scalars(select(db.Dataset))}
    assert {str(g.value(d, DCT.identifier)) for d in datasets} == set(names)
    meldingen = URIRef("https://testserver/dcat/datasets/ggd/meldingen")
    assert meldingen in datasets
    publisher = g.value(meldingen, DCT.publisher)
    assert (publisher, RDF.type, FOAF.Agent) in g and str(g.value(publisher, FOAF.name)) == "ggd Referentieregio"
    assert str(g.value(meldingen, DCT.accessRights)).endswith("access-right/NON_PUBLIC")
    assert str(g.value(meldingen, DCT.accrualPeriodicity)).endswith("frequency/DAILY")
    assert g.value(meldingen, DCT.spatial) is not None
    dist = g.value(meldingen, DCAT.distribution)
    assert g.value(dist, DCAT.downloadURL) is None and g.value(dist, DCAT.accessService) is not None
    schema = g.value(g.value(dist, DCT.conformsTo), RDF.value)
    assert isinstance(schema, Literal) and json.loads(str(schema)) == names["ggd/meldingen"].table_schema
    rows = names["ggd/meldingen"].row_count
    assert rows == 12000 and "12.000 rijen (afgerond)" in str(g.value(meldingen, DCT.description))


SQLITE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: edits the document, not the database


@SQLITE
def test_documents_missing_a_mandatory_property_or_with_a_download_do_not_conform(doc: dict[str, Any]) -> None:
    for drop in ("dct:title", "dct:publisher"):
        broken = copy.deepcopy(doc)
        ds = next(n for n in broken["@graph"] if n["@type"] == "dcat:Dataset")
        del ds[drop]
        ok, report = _conforms(broken)
        assert not ok
        assert drop in report and ds["@id"] in report  # NB: names the property and the dataset
    broken = copy.deepcopy(doc)
    ds = next(n for n in broken["@graph"] if n["@type"] == "dcat:Dataset")
    ds["dcat:distribution"]["dcat:downloadURL"] = {"@id": "https://testserver/rows.csv"}
    ok, report = _conforms(broken)
    assert not ok and "downloadURL" in report
    broken = copy.deepcopy(doc)
    agent = next(n for n in broken["@graph"] if n["@type"] == "foaf:Agent")
    del agent["foaf:name"]
    ok, report = _conforms(broken)
    assert not ok and "foaf:name" in report


@SQLITE
def test_a_script_title_stays_data(web: Web) -> None:
    web.api["st-ggd"].put(
        "/datasets/ggd/x",
        {"title": "<script>alert(1)</script>", "table_schema": {"fields": [{"name": "a", "type": "integer"}]}},
    )
    r = web.client().get("/dcat/catalog.jsonld")
    g = _graph(r.json())
    assert str(g.value(URIRef("https://testserver/dcat/datasets/ggd/x"), DCT.title)) == "<script>alert(1)</script>"
    assert "text/html" not in r.headers["content-type"]
