"""Demonstrations on one machine: example data, and a whole workspace started as local processes.

- ``data``: a small generated GGD × GP example (``werkplaats compare``, ``werkplaats plan example``).
- ``workspace``: ``LocalWorkspace``, the harness that starts a hub, three engines and datastations
  as separate processes over mutual TLS (``werkplaats demo`` and the service tests).

Nothing here is used by a deployed node; it sits above the workspace services in the layers.
"""
