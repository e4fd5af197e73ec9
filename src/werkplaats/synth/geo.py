"""A synthetic map: gemeenten as Voronoi cells of a box, wijken as Voronoi cells inside them.

Every cell is the intersection of a convex polygon with half-planes (the bisectors
towards the other seeds), so cells are convex, wijken tile their gemeente exactly,
and no geometry library is needed. Coordinates are WGS84 degrees in a fictional
stretch of the Netherlands, rounded to 6 decimals so the same seed gives the same bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# NB: a box roughly the size of a GGD region; the places in it are fictional.
LON = (5.20, 6.00)
LAT = (51.60, 52.05)


def _clip(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Keep the part of a convex polygon where normal·p <= offset (Sutherland–Hodgman)."""
    out = []
    m = len(poly)
    for i in range(m):
        p, q = poly[i], poly[(i + 1) % m]
        dp, dq = normal @ p - offset, normal @ q - offset
        if dp <= 0:
            out.append(p)
        if dp * dq < 0:
            out.append(p + (q - p) * (dp / (dp - dq)))
    return np.array(out) if out else np.zeros((0, 2))


def voronoi_cells(seeds: np.ndarray, region: np.ndarray) -> list[np.ndarray]:
    """Return the Voronoi cell of each seed inside a convex region polygon."""
    cells = []
    for i, s in enumerate(seeds):
        poly = region
        for j, t in enumerate(seeds):
            if i == j:
                continue
            normal = t - s
            poly = _clip(poly, normal, float(normal @ (s + t) / 2))
            if len(poly) == 0:
                break
        cells.append(poly)
    return cells


def area(poly: np.ndarray) -> float:
    """Polygon area (shoelace)."""
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def centroid(poly: np.ndarray) -> np.ndarray:
    """Polygon centroid."""
    x, y = poly[:, 0], poly[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    a = cross.sum() / 2
    return np.array([((x + np.roll(x, -1)) * cross).sum(), ((y + np.roll(y, -1)) * cross).sum()]) / (6 * a)


def relaxed_seeds(rng: np.random.Generator, k: int, region: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Return k seeds spread over a convex region (Lloyd relaxation of random points)."""
    lo, hi = region.min(axis=0), region.max(axis=0)
    pts: list[np.ndarray] = []
    while len(pts) < k:
        p = lo + rng.random(2) * (hi - lo)
        if _inside(p, region):
            pts.append(p)
    seeds = np.array(pts)
    for _ in range(rounds):
        seeds = np.array([centroid(c) for c in voronoi_cells(seeds, region)])
    return seeds


def _inside(p: np.ndarray, poly: np.ndarray) -> bool:
    # NB: convex and counter-clockwise: inside means left of every edge.
    q = np.roll(poly, -1, axis=0)
    cross = (q[:, 0] - poly[:, 0]) * (p[1] - poly[:, 1]) - (q[:, 1] - poly[:, 1]) * (p[0] - poly[:, 0])
    return bool((cross >= 0).all())


def to_lonlat(poly: np.ndarray) -> list[list[float]]:
    """Map unit-box coordinates to a closed GeoJSON ring of [lon, lat]."""
    lon = LON[0] + poly[:, 0] * (LON[1] - LON[0])
    lat = LAT[0] + poly[:, 1] * (LAT[1] - LAT[0])
    ring = [[round(float(a), 6), round(float(b), 6)] for a, b in zip(lon, lat, strict=True)]
    return [*ring, ring[0]]


def feature_collection(features: list[tuple[dict[str, Any], np.ndarray]]) -> dict[str, Any]:
    """Return a GeoJSON FeatureCollection of (properties, polygon) pairs."""
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [to_lonlat(poly)]}}
            for props, poly in features
        ],
    }
