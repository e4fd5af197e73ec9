"""The web application: server-rendered pages (FastAPI, Jinja2, htmx) for people, in Dutch by default.

Two apps, each on its own HTTPS listener with a server certificate of the workspace CA:

- ``create_hub_web`` (beside the hub's API, in the hub process): analysts, inzichtvragers, privacy
  officers and admins; dashboards; the DCAT-AP catalog export.
- ``create_station_web`` (beside a datastation's job loop, in the datastation process): that
  organisation's stewards review, approve (signing with the organisation's key, locally) and reject
  requests, and read their datastation's own log.

See docs/web.md.
"""

from .app import create_hub_web, create_station_web

__all__ = ["create_hub_web", "create_station_web"]
