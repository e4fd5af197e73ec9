"""Charts as Vega-Lite specifications (built with Altair), each with the table that is its text alternative.

Every function takes a released result as a pandas frame (the rows of ``db.Result``: a boolean
``suppressed`` column marks cells withheld under the disclosure threshold *k*) and returns a
`Chart`: the Vega-Lite spec, data inline (nothing is fetched: maps are the region's own
boundaries, no tiles), and a `DataTable` with the same numbers as text. A suppressed cell is
never drawn as 0 and never given a number: maps show it grey with a dashed edge and a legend
entry "< k", trends put it on a dashed line at k ("below this line"), bars write "< k".

Specs are deterministic (same frame, same spec), so tests compare them. In the page,
``templates/charts/figure.html`` draws a chart with its table; ``static/charts.js`` embeds the
spec with vega-embed (SVG renderer, the vega-interpreter: the page's CSP allows no eval).

>>> import pandas as pd
>>> c = bar(pd.DataFrame({"wijk": ["A", "B"], "n": [12, None], "suppressed": [False, True]}), "wijk", "n", k=10)
>>> [list(r) for r in c.table.rows]
[['A', '12'], ['B', '< 10']]
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import altair as alt
import pandas as pd

from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE

LEVELS = {"gemeente": "gemeenten.geojson", "wijk": "wijken.geojson"}
CODE = "code"  # NB: synth/write.py: each feature's properties hold "code" (GM…/WK…) and "naam"
GREY = "#b0b0b0"  # NB: suppressed cells; 3:1 against white, and never colour alone (dashed edge, legend, table)
NO_DATA = "#ffffff"
FILLS = {"suppressed": GREY, "withheld": "#d9d9d9", "no_data": NO_DATA}
SCHEME: Final = "blues"
WIDTH = 560


@dataclass(frozen=True)
class DataTable:
    """A chart's text alternative: header, rows of formatted cells, which rows were suppressed, and k."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    suppressed: tuple[bool, ...]
    k: int

    @property
    def any_suppressed(self) -> bool:
        """Whether any row has a cell withheld under k (the page then explains '< k')."""
        return any(self.suppressed)


@dataclass(frozen=True)
class Chart:
    """A Vega-Lite specification and the data table that is its text alternative."""

    spec: dict[str, Any]
    table: DataTable
    period: Any = None  # NB: a map of a weekly result shows one week: which

    def spec_json(self) -> str:
        """The spec as compact JSON (for the page's data attribute; autoescaped there)."""
        return json.dumps(self.spec, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def geo_file(geo_dir: Path, level: str) -> Path:
    """The region's boundaries of a level (gemeente or wijk) in ``geo_dir``."""
    if level not in LEVELS:
        msg = f"level must be one of {sorted(LEVELS)}, got {level!r}"
        raise ValueError(msg)
    return geo_dir / LEVELS[level]


def load_geo(path: Path) -> dict[str, Any]:
    """Read a GeoJSON FeatureCollection (the region's own boundaries); read again only when the file changed.

    NB: the returned dict is shared between callers: do not change it.
    """
    st = path.stat()
    return _read_geo(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _read_geo(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """Parse a GeoJSON file (cached by path, modification time and size)."""
    fc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return fc


def _signed_area(ring: list[list[float]]) -> float:
    """Twice the planar signed area of a ring in (lon, lat): positive when counter-clockwise."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0, *_), (x1, y1, *_) in zip(ring, ring[1:] + ring[:1], strict=True))


def _polygon_for_d3(rings: list[list[list[float]]]) -> list[list[list[float]]]:
    """A polygon's rings wound as d3-geo (Vega) reads them: exterior clockwise, holes counter-clockwise.

    NB: RFC 7946 GeoJSON winds the other way; d3 then reads the polygon as the whole globe minus the area.
    """
    out = []
    for i, ring in enumerate(rings):
        ccw = _signed_area(ring) > 0
        out.append(ring[::-1] if ccw == (i == 0) else ring)
    return out


def d3_geometry(geometry: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON Polygon or MultiPolygon with its rings wound for d3-geo (other geometries unchanged)."""
    if geometry.get("type") == "Polygon":
        return {"type": "Polygon", "coordinates": _polygon_for_d3(geometry["coordinates"])}
    if geometry.get("type") == "MultiPolygon":
        return {"type": "MultiPolygon", "coordinates": [_polygon_for_d3(p) for p in geometry["coordinates"]]}
    return geometry


def fmt(v: Any) -> str:
    """A released number as text: whole numbers without decimals, others with at most two."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")
    return str(v)


def _number(v: Any) -> float | None:
    """A released value as a float (None when missing)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _suppressed(frame: pd.DataFrame) -> list[bool]:
    """Which rows were withheld under k (the result's ``suppressed`` column; none when it has none)."""
    if "suppressed" not in frame:
        return [False] * len(frame)
    return [bool(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) else False
            for x in frame["suppressed"]]  # fmt: skip


def table(
    frame: pd.DataFrame,
    columns: list[str],
    *,
    k: int = DEFAULT_MIN_GROUP_SIZE,
    withheld: str = "withheld",
    missing: str = "(missing)",
) -> DataTable:
    """The text alternative of a frame: the given columns, a suppressed row's numbers written '< k'.

    A suppressed row's withheld cells (null: its keys are kept) read ``< k``; a number
    withheld in a released row (a statistic of too few values) reads ``withheld``; a missing key
    (the cell of rows without a value) reads ``missing``.
    """
    supp = _suppressed(frame)
    numeric = {c: _is_numeric(frame[c]) for c in columns}
    rows = []
    for i, rec in enumerate(frame[columns].itertuples(index=False, name=None)):
        cells = [fmt(rec[0]) or missing]
        for c, v in zip(columns[1:], rec[1:], strict=True):
            if supp[i] and _number(v) is None and (numeric[c] or v is None or v is pd.NA):
                cells.append(f"< {k}")  # NB: a suppressed cell's numbers are null; its keys stay
            elif numeric[c] and _number(v) is None:
                cells.append(withheld)
            else:
                cells.append(fmt(v))
        rows.append(tuple(cells))
    return DataTable(tuple(columns), tuple(rows), tuple(supp), k)


def _is_numeric(series: pd.Series) -> bool:
    """Whether a column holds numbers (not text, not booleans); one with no values at all is withheld numbers."""
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    values = [v for v in series if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return all(_number(v) is not None for v in values) and not any(isinstance(v, str) for v in values)


def choropleth(
    frame: pd.DataFrame,
    geo: dict[str, Any],
    level: str,
    value: str,
    *,
    key: str | None = None,
    time: str | None = None,
    period: Any = None,
    k: int = DEFAULT_MIN_GROUP_SIZE,
    title: str = "",
    labels: dict[str, str] | None = None,
) -> Chart:
    """A map of the region's gemeenten or wijken coloured by ``value``; suppressed areas grey and marked.

    Parameters
    ----------
    frame
        A released result with one row per area (or per area and period, with ``time``).
    geo
        The level's GeoJSON FeatureCollection (`load_geo(geo_file(geo_dir, level))`); each
        feature's ``properties`` hold ``code`` and ``naam``.
    level
        ``"gemeente"`` or ``"wijk"``; the key column defaults to it.
    value
        The column that colours the areas.
    time, period
        With a time column (e.g. ``week``), the map shows one period: ``period``, or the latest with
        a released number (`Chart.period` says which).
    k
        The disclosure threshold, for the "< k" legend entry and table cells.
    labels
        Legend and table texts: ``{"suppressed": ..., "no_data": ..., "area": ...}`` (translated by the page).

    Every feature of ``geo`` is drawn: with its value, as suppressed ("< k"), or as "no data"
    when the result has no row for it. The table lists every area in the map's order.

    >>> geo = {"type": "FeatureCollection", "features": []}
    >>> choropleth(pd.DataFrame({"wijk": [], "n": []}), geo, "wijk", "n").table.rows
    ()
    """
    lab = {"suppressed": f"< {k}", "withheld": "withheld", "no_data": "no data", "area": "area", **(labels or {})}
    key = key or level
    chosen = None
    if time is not None and time in frame and len(frame):
        if period is None:  # NB: the latest period with a released number (else the latest: all marked)
            released = frame.loc[[not x for x in _suppressed(frame)], time].dropna()
            period = released.max() if len(released) else frame[time].dropna().max()
        chosen = period
        frame = frame[frame[time] == chosen]
        chosen = chosen.item() if hasattr(chosen, "item") else chosen
    supp = dict(zip(frame[key].astype(str), _suppressed(frame), strict=True))
    values = {str(kv): _number(v) for kv, v in zip(frame[key], frame[value], strict=True)}
    features: list[dict[str, Any]] = []
    statuses: list[tuple[str, str]] = []
    rows, flags = [], []
    for f in geo.get("features", []):
        props = f.get("properties", {})
        code = str(props.get(CODE, ""))
        name = str(props.get("naam", code))
        if supp.get(code):
            status, v, text = lab["suppressed"], None, f"< {k}"
        elif code in values and values[code] is not None:
            status, v, text = "", values[code], fmt(values[code])
        elif code in values:
            status, v, text = lab["withheld"], None, lab["withheld"]
        else:
            status, v, text = lab["no_data"], None, ""
        statuses.append((code, status))
        props = {"code": code, "naam": name, "value": v, "status": status, "text": text}
        features.append({"type": "Feature", "geometry": d3_geometry(f["geometry"]), "properties": props})
        rows.append((name, code, text if text else lab["no_data"]))
        flags.append(bool(supp.get(code)))
    present = {status for *_, status in statuses}
    marks = [x for x in ("suppressed", "withheld", "no_data") if lab[x] in present]  # NB: only what the map has
    shape = alt.NamedData(name="areas")
    base = alt.Chart(shape).mark_geoshape(stroke="#ffffff", strokeWidth=1)
    tooltip = [alt.Tooltip("properties.naam:N", title=lab["area"]), alt.Tooltip("properties.text:N", title=value)]
    released = base.transform_filter("datum.properties.value != null").encode(
        color=alt.Color(
            "properties.value:Q",
            title=value,
            scale=alt.Scale(scheme=SCHEME, zero=True),
            # NB: no number on the map (all suppressed or absent): no colour scale, its legend would read NaN
            legend=alt.Legend(orient="right") if any(f["properties"]["value"] is not None for f in features) else None,
        ),
        tooltip=tooltip,
    )
    marked = (
        alt.Chart(shape)
        .mark_geoshape(stroke="#333333", strokeWidth=1, strokeDash=[3, 2])
        .transform_filter("datum.properties.value == null")
        .encode(
            color=alt.Color(
                "properties.status:N",
                title="",
                scale=alt.Scale(domain=[lab[x] for x in marks], range=[FILLS[x] for x in marks]),
                legend=alt.Legend(orient="right", symbolStrokeColor="#333333", symbolStrokeWidth=1, symbolDash=[3, 2]),
            ),
            tooltip=tooltip,
        )
    )
    layers = [released, marked] if marks else [released]
    chart = (
        alt.layer(*layers)
        .resolve_scale(color="independent")
        .project(type="mercator")
        .properties(width=WIDTH, height=int(WIDTH * 0.8), title=title)
    )
    cols = (lab["area"], "code", value)
    return Chart(_spec(chart, areas=features), DataTable(cols, tuple(rows), tuple(flags), k), chosen)


def trend(
    frame: pd.DataFrame,
    time: str,
    value: str,
    *,
    flag: str | None = None,
    group: str | None = None,
    k: int = DEFAULT_MIN_GROUP_SIZE,
    title: str = "",
    labels: dict[str, str] | None = None,
) -> Chart:
    """A line of ``value`` over ``time`` (e.g. ISO week), one per ``group``; ``flag`` weeks highlighted.

    Early-warning weeks (a true ``flag``, as `usecases.hotspots.early_warning` gives) are red
    triangles with a legend entry. A suppressed week has no number: the line breaks there and the
    week is a grey square on a dashed rule at k ("< k": below that line). The table lists every row.

    >>> c = trend(pd.DataFrame({"week": [1, 2], "n": [14, 15], "suppressed": [False, False]}), "week", "n")
    >>> c.table.rows
    (('1', '14'), ('2', '15'))
    """
    lab = {"suppressed": f"< {k}", "flag": "signal", **(labels or {})}
    supp = _suppressed(frame)
    cols = [c for c in (group, time, value, flag) if c]
    order = [c for c in (group, time) if c]
    points = []
    for i, rec in enumerate(frame[cols].to_dict(orient="records")):
        points.append({
            "t": _number(rec[time]) if _number(rec[time]) is not None else str(rec[time]),
            "v": None if supp[i] else _number(rec[value]),
            "g": str(rec[group]) if group else "",
            "flag": bool(rec[flag]) if flag and rec[flag] is not None else False,
            "supp": supp[i],
            "text": f"< {k}" if supp[i] else fmt(rec[value]),
        })  # fmt: skip
    points.sort(key=lambda p: (p["g"], p["t"] if isinstance(p["t"], float) else 0.0, str(p["t"])))
    data = alt.NamedData(name="points")
    ttype = "Q" if all(isinstance(p["t"], float) for p in points) else "O"
    x = alt.X(f"t:{ttype}", title=time, axis=alt.Axis(tickMinStep=1, format="d") if ttype == "Q" else alt.Axis())
    y = alt.Y("v:Q", title=value, scale=alt.Scale(zero=True))
    tip = [
        alt.Tooltip("g:N", title=group or ""),
        alt.Tooltip(f"t:{ttype}", title=time),
        alt.Tooltip("text:N", title=value),
    ]
    tip = tip if group else tip[1:]
    line = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(x=x, y=y, tooltip=tip, **({"color": alt.Color("g:N", title=group)} if group else {}))
    )
    layers: list[Any] = [line]
    if any(p["flag"] for p in points):
        layers.append(
            alt.Chart(data)
            .transform_filter("datum.flag")
            .mark_point(shape="triangle-up", size=140, filled=True, color="#c00000")
            .encode(
                x=x, y=y, tooltip=tip, shape=alt.Shape("flagged:N", title="", scale=alt.Scale(range=["triangle-up"]))
            )
            .transform_calculate(flagged=f"'{_js(lab['flag'])}'")
        )
    if any(p["supp"] for p in points):
        layers.append(alt.Chart(alt.NamedData(name="threshold")).mark_rule(strokeDash=[4, 3], color="#555555")
                      .encode(y="k:Q"))  # fmt: skip
        layers.append(
            alt.Chart(data)
            .transform_filter("datum.supp")
            .transform_calculate(kv=str(k), marked=f"'{_js(lab['suppressed'])}'")
            .mark_point(shape="square", size=60, filled=True, color=GREY, stroke="#333333")
            .encode(
                x=x, y=alt.Y("kv:Q"), tooltip=tip, fill=alt.Fill("marked:N", title="", scale=alt.Scale(range=[GREY]))
            )
        )
    chart = alt.layer(*layers).resolve_scale(shape="independent").properties(width=WIDTH, height=280, title=title)
    shown = frame.sort_values(order, kind="stable") if order else frame
    if flag:  # NB: the table says the flag in words, as the legend does
        shown = shown.assign(**{flag: [lab["flag"] if x is True or x == 1 else "" for x in shown[flag]]})
    rows_tbl = table(
        shown, cols, k=k, withheld=lab.get("withheld", "withheld"), missing=lab.get("missing", "(missing)")
    )
    return Chart(_spec(chart, points=points, threshold=[{"k": k}]), rows_tbl)


def bar(
    frame: pd.DataFrame,
    category: str,
    value: str,
    *,
    k: int = DEFAULT_MIN_GROUP_SIZE,
    title: str = "",
    labels: dict[str, str] | None = None,
) -> Chart:
    """Horizontal bars of ``value`` per ``category`` (in the result's order); a suppressed category reads '< k'.

    >>> bar(pd.DataFrame({"g": ["a"], "n": [3.5]}), "g", "n").table.rows
    (('a', '3.5'),)
    """
    lab = {"suppressed": f"< {k}", **(labels or {})}
    supp = _suppressed(frame)
    bars = []
    for i, (c, v) in enumerate(zip(frame[category], frame[value], strict=True)):
        bars.append({"c": fmt(c), "v": None if supp[i] else _number(v), "supp": supp[i],
                     "text": lab["suppressed"] if supp[i] else fmt(v)})  # fmt: skip
    data = alt.NamedData(name="bars")
    order = [str(b["c"]) for b in bars]
    y = alt.Y("c:N", title=category, sort=order)
    tip = [alt.Tooltip("c:N", title=category), alt.Tooltip("text:N", title=value)]
    layers: list[Any] = [
        alt.Chart(data).transform_filter("datum.v != null").mark_bar(color="#1f5f9f")
        .encode(x=alt.X("v:Q", title=value, scale=alt.Scale(zero=True)), y=y, tooltip=tip)
    ]  # fmt: skip
    if any(supp):
        layers.append(
            alt.Chart(data).transform_filter("datum.supp").mark_text(align="left", dx=3, color="#333333")
            .encode(x=alt.datum(0), y=y, text="text:N", tooltip=tip)
        )  # fmt: skip
    chart = alt.layer(*layers).properties(width=WIDTH, height=max(60, 22 * len(bars)), title=title)
    return Chart(
        _spec(chart, bars=bars),
        table(
            frame,
            [category, value],
            k=k,
            withheld=lab.get("withheld", "withheld"),
            missing=lab.get("missing", "(missing)"),
        ),
    )


def _spec(chart: alt.TopLevelMixin, **datasets: list[dict[str, Any]]) -> dict[str, Any]:
    """The chart's Vega-Lite dict with its data inline as named datasets.

    NB: Altair walks (and hashes) inline values on every ``to_dict``; for a few thousand points that
    took seconds, so the layers name their data and the values are put in afterwards.
    """
    spec: dict[str, Any] = chart.to_dict(validate=False)
    spec["datasets"] = {**spec.get("datasets", {}), **datasets}
    return spec


def _js(text: str) -> str:
    """Text as the inside of a single-quoted Vega expression string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")
