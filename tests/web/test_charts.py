"""Charts: Vega-Lite specs with their data tables; suppressed cells marked, never drawn as a number; deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import pytest

from werkplaats.web import charts


def _walk(x: Any) -> list[Any]:
    """Every dict key and value in a spec, depth first."""
    out: list[Any] = []
    if isinstance(x, dict):
        for k, v in x.items():
            out += [k, *_walk(v)]
    elif isinstance(x, list):
        for v in x:
            out += _walk(v)
    else:
        out.append(x)
    return out


def _data(spec: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """The inline dataset of a spec whose rows have that field."""
    return next(v for v in spec["datasets"].values() if v and field in v[0])


@pytest.fixture(scope="module")
def wijken(region: Path) -> dict[str, Any]:
    return charts.load_geo(charts.geo_file(region / "kaart", "wijk"))


def test_choropleth_draws_every_area_with_exact_values_and_marks_suppressed(wijken: dict[str, Any]) -> None:
    codes = [f["properties"]["code"] for f in wijken["features"]]
    assert len(codes) > 20
    released = {c: 10 + i for i, c in enumerate(codes[:-3]) if i % 5}  # NB: every fifth suppressed, last 3 absent
    frame = pd.DataFrame({"wijk": codes[:-3], "n": [released.get(c) for c in codes[:-3]],
                          "suppressed": [c not in released for c in codes[:-3]]})  # fmt: skip
    c = charts.choropleth(frame, wijken, "wijk", "n", labels={"no_data": "geen gegevens"})
    alt.LayerChart.from_dict(c.spec)  # NB: a valid Vega-Lite spec (validated against the schema)
    props = {f["properties"]["code"]: f["properties"] for f in _data(c.spec, "geometry")}
    assert list(props) == codes  # NB: every area of the region's own map, in its order
    for code in codes:
        p = props[code]
        if code in released:
            assert (p["value"], p["status"], p["text"]) == (released[code], "", str(released[code]))
        elif code in codes[:-3]:
            assert (p["value"], p["status"], p["text"]) == (None, "< 10", "< 10")  # NB: never 0, never a number
        else:
            assert (p["value"], p["status"]) == (None, "geen gegevens")
    legend = c.spec["layer"][1]["encoding"]["color"]["scale"]
    assert legend["domain"] == ["< 10", "geen gegevens"] and legend["range"] == [charts.GREY, charts.NO_DATA]
    assert c.spec["layer"][1]["mark"]["strokeDash"]  # NB: marked by a dashed edge too, not by colour alone
    assert [r[1] for r in c.table.rows] == codes
    assert [r[2] for r in c.table.rows if r[1] not in released][:1] == ["< 10"]
    assert sum(c.table.suppressed) == len(codes[:-3]) - len(released) and c.table.any_suppressed
    assert "url" not in _walk(c.spec)  # NB: nothing fetched: the boundaries are inline
    # NB: drawn by d3-geo: one mercator projection fitted to the region, exterior rings clockwise (RFC 7946 GeoJSON
    # winds them the other way, which d3 reads as the whole globe minus the area), two colour legends
    assert c.spec["projection"] == {"type": "mercator"} and c.spec["resolve"] == {"scale": {"color": "independent"}}
    for f in _data(c.spec, "geometry"):
        assert charts._signed_area(f["geometry"]["coordinates"][0]) < 0
    assert (
        charts.choropleth(frame, wijken, "wijk", "n", labels={"no_data": "geen gegevens"}).spec_json() == c.spec_json()
    )


def test_choropleth_of_a_weekly_result_shows_one_week(wijken: dict[str, Any]) -> None:
    code = wijken["features"][0]["properties"]["code"]
    frame = pd.DataFrame({"wijk": [code, code], "week": [1, 2], "n": [11, None], "suppressed": [False, True]})
    latest = charts.choropleth(frame, wijken, "wijk", "n", time="week")  # NB: week 2 is all withheld
    second = charts.choropleth(frame, wijken, "wijk", "n", time="week", period=2)
    assert latest.period == 1 and _data(latest.spec, "geometry")[0]["properties"]["value"] == 11
    assert second.period == 2 and _data(second.spec, "geometry")[0]["properties"]["status"] == "< 10"


def test_trend_highlights_flagged_weeks_and_breaks_at_suppressed_ones() -> None:
    frame = pd.DataFrame({"week": [3, 1, 2, 4], "n": [40, 12, None, 13], "suppressed": [False, False, True, False],
                          "flag": [True, False, False, False]})  # fmt: skip
    c = charts.trend(frame, "week", "n", flag="flag", labels={"flag": "signaal"})
    alt.LayerChart.from_dict(c.spec)
    points = _data(c.spec, "flag")
    assert [(p["t"], p["v"], p["flag"], p["supp"]) for p in points] == [
        (1.0, 12.0, False, False), (2.0, None, False, True), (3.0, 40.0, True, False), (4.0, 13.0, False, False)
    ]  # fmt: skip
    marks = [layer["mark"] for layer in c.spec["layer"]]
    assert {"type": "point", "shape": "triangle-up"}.items() <= marks[1].items()  # NB: flagged weeks: a shape
    assert marks[2]["type"] == "rule" and marks[3]["shape"] == "square"  # NB: suppressed weeks on the k line
    assert c.table.rows == (("1", "12", ""), ("2", "< 10", ""), ("3", "40", "signaal"), ("4", "13", ""))
    assert c.spec_json() == charts.trend(frame, "week", "n", flag="flag", labels={"flag": "signaal"}).spec_json()


def test_bar_writes_suppressed_categories_as_text() -> None:
    frame = pd.DataFrame({"risicogroep": ["70+", "chronisch", "overig"], "n": [25, None, 3.25],
                          "suppressed": [False, True, False]})  # fmt: skip
    c = charts.bar(frame, "risicogroep", "n")
    alt.LayerChart.from_dict(c.spec)
    bars = _data(c.spec, "supp")
    assert [(b["c"], b["v"], b["text"]) for b in bars] == [("70+", 25.0, "25"), ("chronisch", None, "< 10"),
                                                          ("overig", 3.25, "3.25")]  # fmt: skip
    assert c.spec["layer"][1]["mark"]["type"] == "text"
    assert c.table.rows == (("70+", "25"), ("chronisch", "< 10"), ("overig", "3.25"))


def test_table_marks_withheld_statistics_and_missing_keys() -> None:
    frame = pd.DataFrame({"gemeente": ["GM1", None], "n": [12, None], "gem": [None, None],
                          "suppressed": [False, True]})  # fmt: skip
    t = charts.table(frame, ["gemeente", "n", "gem"], withheld="niet vrijgegeven", missing="(onbekend)")
    assert t.rows == (("GM1", "12", "niet vrijgegeven"), ("(onbekend)", "< 10", "< 10"))


def test_trend_table_keeps_the_keys_of_a_suppressed_week() -> None:
    frame = pd.DataFrame({"gemeente": ["GM1", "GM1"], "week": [1, 2], "n": [12, None], "suppressed": [False, True]})
    c = charts.trend(frame, "week", "n", group="gemeente")
    assert c.table.rows == (("GM1", "1", "12"), ("GM1", "2", "< 10"))


def test_choropleth_says_which_week_it_shows(wijken: dict[str, Any]) -> None:
    code = wijken["features"][0]["properties"]["code"]
    frame = pd.DataFrame({"wijk": [code, code], "week": [7, 8], "n": [11, 12], "suppressed": [False, False]})
    assert charts.choropleth(frame, wijken, "wijk", "n", time="week").period == 8
    assert charts.choropleth(frame, wijken, "wijk", "n").period is None
    later = pd.concat([frame, pd.DataFrame({"wijk": [code], "week": [9], "n": [None], "suppressed": [True]})])
    assert charts.choropleth(later, wijken, "wijk", "n", time="week").period == 8  # NB: week 9 is all withheld


def test_choropleth_without_a_released_number_has_no_colour_scale_legend(wijken: dict[str, Any]) -> None:
    codes = [f["properties"]["code"] for f in wijken["features"]]
    frame = pd.DataFrame({"wijk": codes[:-2], "n": [None] * (len(codes) - 2), "suppressed": [True] * (len(codes) - 2)})
    c = charts.choropleth(frame, wijken, "wijk", "n", labels={"no_data": "geen gegevens"})
    alt.LayerChart.from_dict(c.spec)
    released, marked = c.spec["layer"]
    assert released["encoding"]["color"]["legend"] is None  # NB: no "NaN" colour scale
    assert marked["encoding"]["color"]["scale"]["domain"] == ["< 10", "geen gegevens"]  # NB: only the marks' legend
    one = frame.assign(n=[12] + [None] * (len(frame) - 1), suppressed=[False] + [True] * (len(frame) - 1))
    some = charts.choropleth(one, wijken, "wijk", "n")
    assert some.spec["layer"][0]["encoding"]["color"]["legend"] == {"orient": "right"}
