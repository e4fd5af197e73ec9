"""ACRO's per-cell verdicts for test_acro.py, run in ACRO's own virtual environment.

ACRO (PyPI ``acro``) pins an older pandas than werkplaats, so this script runs in a
separate interpreter and talks JSON lines: one case per line on stdin, one answer per
line on stdout. Not a test module: it imports only ACRO, pandas and the standard library.

A case: ``{"rows": {"g": [...], "h": [...], "v": [...]}, "keys": ["g"] or ["g", "h"],
"stat": "count" | "sum" | "mean", "value": "v"}``. The answer: ``{"cells": [[key, ...,
[check names ACRO failed]], ...]}`` for every cell of ACRO's crosstab (ACRO's defaults:
threshold 10, dominance n=2 90%, p-ratio 10%, zeros disclosive), or ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile


def main() -> None:
    os.chdir(tempfile.mkdtemp(prefix="acro-driver-"))  # NB: ACRO may write its outputs to the working directory
    logging.disable(logging.CRITICAL)
    with contextlib.redirect_stdout(io.StringIO()):
        import acro
        import pandas as pd

        session = acro.ACRO(suppress=False)
    print(json.dumps({"ready": True, "acro": getattr(acro, "__version__", "?")}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                answer = verdicts(session, pd, json.loads(line))
        except Exception as e:
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)


def verdicts(session, pd, case: dict) -> dict:
    df = pd.DataFrame(case["rows"])
    keys = case["keys"]
    index = df[keys[0]]
    columns = df[keys[1]] if len(keys) > 1 else pd.Series(["all"] * len(df), name="_all")
    if case["stat"] == "count":
        session.crosstab(index, columns)
    else:
        session.crosstab(index, columns, values=df[case["value"]].astype(float), aggfunc=case["stat"])
    record = list(session.results.results.values())[-1]
    outcome = record.outcome
    cells = []
    for r in outcome.index:
        for c in outcome.columns:
            text = str(outcome.loc[r, c])
            failed = [t.strip() for t in text.split(";") if t.strip() and t.strip() != "ok"]
            key = [str(r), str(c)] if len(keys) > 1 else [str(r)]
            cells.append([*key, failed])
    return {"cells": cells}


if __name__ == "__main__":
    main()
