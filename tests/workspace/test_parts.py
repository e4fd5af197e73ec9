"""Smaller parts of the workspace: OpenAPI spec, sources, dummy data, template approvals at the hub."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats import usecases as uc
from werkplaats.catalog.frictionless import read_schema
from werkplaats.catalog.schema import TableSchema
from werkplaats.catalog.validate import validate_table
from werkplaats.plan.serde import plan_to_dict
from werkplaats.synth.generate import generate
from werkplaats.synth.write import write_region
from werkplaats.workspace.client import dummy_table
from werkplaats.workspace.config import DatasetSource
from werkplaats.workspace.hub.release import records
from werkplaats.workspace.openapi import spec
from werkplaats.workspace.signing import approval_body, literals, sign_approval
from werkplaats.workspace.sources import read_source

from .conftest import _pg_database
from .test_hub import hub  # noqa: F401  (fixture)

SPEC = Path(__file__).resolve().parents[2] / "src" / "werkplaats" / "workspace" / "openapi.json"


def test_committed_openapi_spec_is_current() -> None:
    assert json.loads(SPEC.read_text()) == json.loads(json.dumps(spec())), (
        "regenerate with: werkplaats hub openapi --out src/werkplaats/workspace/openapi.json"
    )
    paths = spec()["paths"]
    assert "/api/v1/requests/{rid}/approvals" in paths and "/api/v1/audit/export" in paths


def test_openapi_describes_the_answer_of_every_json_endpoint() -> None:
    doc = spec()
    models = doc["components"]["schemas"]
    vague, described = [], []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert len(ok) == 1, (method, path)
            ((_, answer),) = ok.items()
            if "application/json" not in answer["content"]:
                assert "text/plain" in answer["content"], (method, path)  # NB: the audit export
                continue
            schema = answer["content"]["application/json"]["schema"]
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            name = f"{method.upper()} {path}"
            (described if ref is not None and ref.rsplit("/", 1)[1] in models else vague).append(name)
    assert vague == [], "endpoints without a response model"
    assert {"GET /api/v1/node/jobs", "POST /api/v1/requests/{rid}/run", "GET /health"} <= set(described)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("region")
    write_region(generate(4, 1500), out)
    return out


def _clienten(region: Path) -> tuple[TableSchema, DatasetSource, pd.DataFrame]:
    """The schema, the CSV source and the validated table of one region dataset."""
    schema = read_schema(region / "vvt" / "clienten.schema.json", "vvt/clienten")
    csv = DatasetSource("vvt/clienten", str(region / "vvt" / "clienten.csv"), region / "vvt" / "clienten.schema.json")
    return schema, csv, validate_table(read_source(csv, schema), schema, tuple(schema.names), set())


def _reads_back(src: DatasetSource, schema: TableSchema, want: pd.DataFrame) -> None:
    got = validate_table(read_source(src, schema), schema, tuple(schema.names), set())
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_sources_parquet_and_duckdb_read_back_the_csv(region: Path, tmp_path: Path) -> None:
    schema, csv, want = _clienten(region)
    assert len(want) > 0
    pq = tmp_path / "clienten.parquet"
    want.to_parquet(pq)
    _reads_back(DatasetSource("vvt/clienten", str(pq), csv.schema), schema, want)
    db = tmp_path / "vvt.duckdb"
    con = duckdb.connect(str(db))
    con.register("w", want)
    con.execute("CREATE TABLE clienten AS SELECT * FROM w")
    con.close()
    _reads_back(DatasetSource("vvt/clienten", str(db), csv.schema, table="clienten"), schema, want)
    with pytest.raises(wp.DataValidationError, match="needs 'table'"):
        read_source(DatasetSource("vvt/clienten", str(db), csv.schema), schema)
    narrow = tmp_path / "narrow.parquet"
    want.drop(columns=[schema.names[-1]]).to_parquet(narrow)
    with pytest.raises(wp.DataValidationError, match="columns missing"):
        read_source(DatasetSource("vvt/clienten", str(narrow), csv.schema), schema)
    missing = DatasetSource("vvt/clienten", str(tmp_path / "nope.csv"), csv.schema)
    with pytest.raises(wp.DataValidationError, match="does not exist"):
        read_source(missing, schema)


def test_sources_postgresql_reads_back_the_csv(region: Path) -> None:
    import sqlalchemy as sa

    schema, csv, want = _clienten(region)
    for url in _pg_database():
        eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        want.astype(object).where(want.notna(), None).to_sql("clienten", eng, index=False)
        eng.dispose()
        _reads_back(DatasetSource("vvt/clienten", url, csv.schema, table="clienten"), schema, want)


def test_dummy_data_fits_the_schema_and_joins(region: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    pool = 100_000_000 + rng.permutation(400)
    tables, schemas = {}, {}
    for name in ("ggd/meldingen", "huisartsen/patienten"):
        org, table = name.split("/")
        schemas[name] = read_schema(region / org / f"{table}.schema.json", name)
        tables[name] = dummy_table(schemas[name], 200, rng, pool=pool)
        validate_table(tables[name], schemas[name], tuple(schemas[name].names), set())
    out = wp.run_local(uc.infection_hotspots(2024, signal="ggd", risk_groups=False), tables, schemas=schemas,
                       min_group_size=1, rules=wp.DisclosureRules.cells_only())  # fmt: skip
    assert out["n"].sum() > 0
    joined = tables["ggd/meldingen"]["bsn"].isin(tables["huisartsen/patienten"]["bsn"]).mean()
    assert joined > 0.3  # NB: dummy person keys overlap, so previews of joins are not empty


def test_template_approval_covers_the_next_reporting_year(hub: Any) -> None:  # noqa: F811
    _, u, keys = hub
    p24 = plan_to_dict(uc.infection_hotspots(2024, signal="huisarts").to_plan())
    p23 = plan_to_dict(uc.infection_hotspots(2023, signal="huisarts").to_plan())
    r24 = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": p24})
    vary = [p for p, v in literals(r24["plan"]) if isinstance(v, str) and v[:4] in ("2023", "2024", "2025")]
    assert vary, literals(r24["plan"])
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r24["plan"],
                         plan_hash=r24["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                         max_runs=5, steward="st-ha", vary=vary,
                         ranges={p: {"min": "2022-01-01", "max": "2025-12-31"} for p in vary})  # fmt: skip
    signed = {"body": body, "signature": sign_approval(keys["huisartsen"], body)}
    u["st-ha"].post(f"/requests/{r24['id']}/approvals", signed)
    r23 = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": p23})
    assert r23["plan_hash"] != r24["plan_hash"]
    assert u["analist"].post(f"/requests/{r23['id']}/run")["state"] == "approved"  # NB: by the template
    other = plan_to_dict(uc.infection_hotspots(2024, signal="huisarts", icpc=("R74",)).to_plan())
    r3 = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": other})
    u["analist"].post(f"/requests/{r3['id']}/run", status=409)  # NB: a different code is not a parameter


def test_released_rows_keep_dates() -> None:
    frame = pd.DataFrame({"gemeente": ["GM9001", None], "eerste": pd.to_datetime(["2024-03-05", None]),
                          "n": pd.array([12, None], dtype="Int64")})  # fmt: skip
    assert records(frame) == [{"gemeente": "GM9001", "eerste": "2024-03-05", "n": 12},
                               {"gemeente": None, "eerste": None, "n": None}]  # fmt: skip
