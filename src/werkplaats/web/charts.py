"""Charts as Vega-Lite specifications (built with Altair), each with its data-table alternative.

OWNER: helper look. Choropleths of the region's own gemeente and wijk boundaries (GeoJSON, no tiles),
weekly trends with early-warning flags, bar charts; suppressed cells marked.
"""

from __future__ import annotations
