"""The reference region: deterministic, consistent, loadable, and realistic where it matters."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from werkplaats.catalog.frictionless import from_frictionless, read_csv, to_frictionless
from werkplaats.cli.app import app
from werkplaats.exceptions import DataValidationError
from werkplaats.synth import geo
from werkplaats.synth.generate import generate
from werkplaats.synth.write import load_region, region_datasets, write_region


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("region")
    r = generate(11, 20_000)
    write_region(r, out)
    return out, r


def test_same_seed_same_bytes_other_seed_other_bytes(region, tmp_path: Path) -> None:
    out, _r = region
    write_region(generate(11, 20_000), tmp_path / "again")
    write_region(generate(12, 20_000), tmp_path / "other")
    first = _digest(out)
    assert first == _digest(tmp_path / "again")
    other = _digest(tmp_path / "other")
    assert first.keys() == other.keys()
    assert first["gemeente/inwoners.csv"] != other["gemeente/inwoners.csv"]


def test_every_source_loads_against_its_schema(region) -> None:
    out, r = region
    loaded = load_region(out)
    assert set(loaded.tables) == set(r.tables) == {d.name for d in region_datasets(r)}
    for name, df in loaded.tables.items():
        assert len(df) == len(r.tables[name]), name
        assert list(df.columns) == loaded.catalog[name].names
    pkg = json.loads((out / "datapackage.json").read_text())
    assert all(res["personKey"] == "bsn" for res in pkg["resources"])


def test_frictionless_round_trip(region) -> None:
    _, r = region
    for ds in region_datasets(r):
        doc = json.loads(json.dumps(to_frictionless(ds.schema)))
        assert from_frictionless(ds.name, doc) == ds.schema


def test_person_keys_are_consistent_and_never_real_bsns(region) -> None:
    _, r = region
    everyone = set(r.tables["gemeente/inwoners"]["bsn"])
    for name, df in r.tables.items():
        assert set(df["bsn"]) <= everyone, name
    # not everyone appears everywhere
    assert len(r.tables["huisartsen/patienten"]) < 0.8 * len(everyone)
    assert r.tables["vvt/clienten"]["bsn"].is_unique and r.tables["ggz/wachtlijst"]["bsn"].is_unique
    digits = np.array([[int(c) for c in str(b)] for b in list(everyone)[:2000]])
    assert ((digits @ np.array([9, 8, 7, 6, 5, 4, 3, 2, -1])) % 11 != 0).all()


def test_map_codes_and_tiling(region) -> None:
    out = region[0]
    gem = json.loads((out / "kaart" / "gemeenten.geojson").read_text())
    wijk = json.loads((out / "kaart" / "wijken.geojson").read_text())
    assert len(gem["features"]) == 12 and len(wijk["features"]) == 80
    assert all(re.fullmatch(r"GM9\d{3}", f["properties"]["code"]) for f in gem["features"])
    assert all(re.fullmatch(r"WK9\d{5}", f["properties"]["code"]) for f in wijk["features"])

    def area(f: dict) -> float:
        return geo.area(np.array(f["geometry"]["coordinates"][0][:-1]))

    for g in gem["features"]:
        parts = [area(w) for w in wijk["features"] if w["properties"]["gemeente"] == g["properties"]["code"]]
        assert sum(parts) == pytest.approx(area(g), rel=1e-4)  # NB: coordinates are rounded to 6 decimals
    assert sum(area(g) for g in gem["features"]) == pytest.approx(0.8 * 0.45, rel=1e-4)


def test_age_structure_and_seasonality(region) -> None:
    _, r = region
    born = pd.to_datetime(r.tables["gemeente/inwoners"]["geboortedatum"])
    age = (pd.Timestamp("2024-12-31") - born).dt.days / 365.25
    assert 0.17 < (age >= 65).mean() < 0.24  # CBS: about 20% of the Dutch are 65+
    assert 0.17 < (age < 18).mean() < 0.23
    flu = r.tables["ggd/meldingen"]
    flu = flu[flu["ziekte"] == "influenza A"]
    month = pd.to_datetime(flu["eerste_ziektedag"]).dt.month
    assert month.isin([12, 1, 2]).sum() > 4 * month.isin([6, 7, 8]).sum()


def test_bad_source_is_reported_by_column_and_count(region, tmp_path: Path) -> None:
    out, r = region
    ds = next(d for d in region_datasets(r) if d.name == "ggz/wachtlijst")
    text = (out / "ggz" / "wachtlijst.csv").read_text().splitlines()
    header, rows = text[0], text[1:]
    cols = header.split(",")
    broken = []
    for i, line in enumerate(rows):
        f = line.split(",")
        if i < 3:
            f[cols.index("leeftijd")] = "secret-value"
        broken.append(",".join(f))
    p = tmp_path / "wachtlijst.csv"
    p.write_text("\n".join([header, *broken]) + "\n")
    with pytest.raises(DataValidationError) as e:
        read_csv(p, ds.schema)
    msg = str(e.value)
    assert "'leeftijd': 3 of" in msg and "secret-value" not in msg


def test_truth_matches_the_sources(region) -> None:
    _, r = region
    t = r.truth
    ob = t["outbreak"]
    m = r.tables["ggd/meldingen"]
    weeks = pd.to_datetime(m["eerste_ziektedag"]).dt.isocalendar()
    hit = m[(m["wijk"] == ob["wijk"]) & (m["ziekte"] == ob["disease"]) & weeks["week"].isin(ob["iso_weeks"]).to_numpy()
            & (weeks["year"] == ob["iso_year"]).to_numpy()]  # fmt: skip
    assert len(hit) >= ob["reported"] > 0
    per_wijk = pd.DataFrame(t["care_stacking"]["per_wijk"])
    assert per_wijk["inwoners"].sum() == len(r.tables["gemeente/inwoners"])


def test_cli_writes_a_region(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "r"), "--seed", "2", "--persons", "2000"])
    assert res.exit_code == 0, res.output
    assert "truth.json" in res.output and (tmp_path / "r" / "datapackage.json").exists()
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "r"), "--persons", "10"])
    assert res.exit_code == 2 and "at least 1000" in res.output


def test_hospitals_and_gp_practices_split_the_same_rows_over_organisations(tmp_path: Path) -> None:
    whole, split = generate(3, 2000), generate(3, 2000, hospitals=3, gp_practices=4)
    for name, df in whole.tables.items():
        if name in split.split:
            parts = pd.concat([split.tables[p] for p in split.split[name]], ignore_index=True)
            key = list(df.columns)
            assert parts.sort_values(key).reset_index(drop=True).equals(df.sort_values(key).reset_index(drop=True))
        else:
            assert split.tables[name].equals(df)  # NB: every other table exactly as in the default region
    patients = [split.tables[p]["bsn"] for p in split.split["huisartsen/patienten"]]
    assert pd.concat(patients).is_unique  # NB: a patient is registered with one practice
    assert split.truth["hospitals"]["persons_in_several_hospitals"] > 0
    assert "hospitals" not in whole.truth and not whole.split
    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "r"), "--persons", "1000", "--hospitals", "2",
                                      "--gp-practices", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    pkg = json.loads((tmp_path / "r" / "datapackage.json").read_text())
    names = {res["dataset"] for res in pkg["resources"]}
    assert {"ziekenhuis_a/opnamen", "ziekenhuis_b/opnamen", "huisartsenpraktijk_03/consulten"} <= names
    assert "ziekenhuis/opnamen" not in names and "--hospitals 2 --gp-practices 3" in pkg["description"]
    bad = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "x"), "--hospitals", "0"])
    assert bad.exit_code != 0 and "hospitals" in bad.output
