"""Dashboards and questions: publish from a released result, list, view, withdraw; ask and answer; who may."""

from __future__ import annotations

import html as htmlmod
import json
import re
from typing import Any

import pandas as pd
from sqlalchemy import select

import werkplaats as wp
from werkplaats.workspace import db

from .conftest import Web
from .factories import approved_request, release_result, released_request, start_job

PER_GEMEENTE = wp.scan("huisartsen/patienten").group_by("gemeente").agg(n=wp.count())
# NB: in the fixture's region 2 of the 12 gemeenten have fewer than 10 such patients
CHRONIC = (wp.scan("huisartsen/patienten").filter(wp.col("chronische_aandoeningen") >= 1)
           .group_by("gemeente").agg(n=wp.count()))  # fmt: skip


def _audit(web: Web, action: str) -> list[db.AuditEntry]:
    with web.hub.sessions() as s:
        return list(s.scalars(select(db.AuditEntry).where(db.AuditEntry.action == action)))


def _publish(web: Web, rid: int, *, by: str = "analist", csrf: bool = True, **form: str) -> Any:
    c = web.as_(by)
    data = {"request": str(rid), "title": "Patiënten per gemeente", "interpretation": "Vooral in het noorden.",
            "chart": "choropleth-gemeente", "key": "gemeente", "value": "n", **form}  # fmt: skip
    if csrf:
        data["csrf_token"] = web.csrf(c)
    return c.post("/dashboards", data=data)


def _requester_elsewhere(web: Web) -> str:
    """A requester of ggz, an organisation outside collaboration pp."""
    web.api["beheerder"].post("/users", {"name": "beleid-ggz", "role": "requester", "organisation": "ggz"})
    return "beleid-ggz"


def test_publish_list_and_view_for_scientist_and_requester(web: Web) -> None:
    r, jid = released_request(web, CHRONIC)
    form = web.as_("analist").get(f"/dashboards/new?request={r['id']}")
    assert form.status_code == 200
    assert '<option value="gemeente"' in form.text and '<option value="n"' in form.text
    resp = _publish(web, r["id"], chart="choropleth-gemeente", key="gemeente")
    assert resp.status_code == 303
    did = int(resp.headers["location"].rsplit("/", 1)[1])
    with web.hub.sessions() as s:
        d = s.get(db.Dashboard, did)
        assert d is not None and d.job_id == jid and d.request_id == r["id"] and d.chart == "choropleth-gemeente"
        assert d.options == {"key": "gemeente", "value": "n"} and d.withdrawn is None
    (entry,) = _audit(web, "dashboard-published")
    assert entry.actor == "analist" and entry.details["dashboard"] == did and entry.details["job"] == jid
    for name in ("beleid", "analist"):
        c = web.as_(name)
        listing = c.get("/dashboards")
        assert listing.status_code == 200 and f'href="/dashboards/{did}"' in listing.text
        page = c.get(f"/dashboards/{did}")
        assert page.status_code == 200
        html = page.text
        assert "Patiënten per gemeente" in html and "Vooral in het noorden." in html
        assert "Patiënten per gemeente</figcaption>" in html  # NB: no time column: the whole result
        assert "<figure" in html and "<figcaption" in html and 'scope="col"' in html and 'scope="row"' in html
        assert "data-spec=" in html and "/static/charts.js" in html
        assert "&lt; 10</td>" in html  # NB: some gemeenten have fewer than 10 such patients
        assert r["purpose"] in html and "huisartsen Referentieregio" in html
        assert (f'href="/requests/{r["id"]}"' in html) is (name == "analist")  # NB: requesters see purpose and date


def test_dashboard_shows_the_released_numbers_only(web: Web) -> None:
    r, jid = released_request(web, CHRONIC)
    did = int(_publish(web, r["id"], chart="table", key="", value="").headers["location"].rsplit("/", 1)[1])
    with web.hub.sessions() as s:
        rows = s.scalars(select(db.Result).where(db.Result.job_id == jid)).one().data["rows"]
    assert any(row["suppressed"] for row in rows) and not all(row["suppressed"] for row in rows)
    html = web.as_("beleid").get(f"/dashboards/{did}").text
    assert "data-spec=" not in html  # NB: a table only
    cells = re.findall(r'<th scope="row"[^>]*>([^<]*)</th>\s*<td[^>]*>([^<]*)</td>', html)
    expected = [(row["gemeente"] or "(onbekend)", "&lt; 10" if row["suppressed"] else str(row["n"])) for row in rows]
    assert cells == expected
    assert "fewer than 10 rows" not in html  # NB: the release's reason column is shown as the "< k" note
    assert "&lt; 10</td>" in html and "niet nul" in html  # NB: Dutch by default


def test_map_marks_suppressed_areas(web: Web) -> None:
    r, jid = released_request(web, CHRONIC)
    did = int(_publish(web, r["id"], chart="choropleth-gemeente", key="gemeente").headers["location"].rsplit("/", 1)[1])
    html = web.as_("beleid").get(f"/dashboards/{did}").text
    spec = json.loads(htmlmod.unescape(re.search(r'data-spec="([^"]*)"', html).group(1)))  # type: ignore[union-attr]
    features = next(v for v in spec["datasets"].values() if v and "geometry" in v[0])
    with web.hub.sessions() as s:
        rows = s.scalars(select(db.Result).where(db.Result.job_id == jid)).one().data["rows"]
    by_code = {f["properties"]["code"]: f["properties"] for f in features}
    assert len(by_code) == 12  # NB: every gemeente of the region's map
    for row in rows[:-1]:  # NB: the last row is the cell of a missing gemeente: in the table, not on the map
        p = by_code[row["gemeente"]]
        assert (p["value"], p["status"]) == ((None, "< 10") if row["suppressed"] else (row["n"], ""))


def test_publish_refuses_bad_forms_and_outsiders(web: Web) -> None:
    r, _ = released_request(web, PER_GEMEENTE)
    assert _publish(web, r["id"], value="bsn").status_code == 422  # NB: not a column of the result
    assert _publish(web, r["id"], title="").status_code == 422
    assert _publish(web, r["id"], chart="pie").status_code == 422
    wrong_map = _publish(web, r["id"], chart="choropleth-wijk")  # NB: gemeente codes are no wijken
    assert wrong_map.status_code == 422 and "geen codes van de gebieden (wijk)" in wrong_map.text
    assert _publish(web, r["id"], csrf=False).status_code == 403
    assert _publish(web, r["id"], by="buiten").status_code == 403  # NB: a scientist outside the collaboration
    assert web.as_("buiten").get(f"/dashboards/new?request={r['id']}").status_code == 403
    assert web.as_("beleid").get(f"/dashboards/new?request={r['id']}").status_code == 403  # NB: role
    unreleased = web.api["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": r["plan"]})
    assert _publish(web, unreleased["id"]).status_code == 404
    assert web.as_("analist").get(f"/dashboards/new?request={unreleased['id']}").status_code == 404
    with web.hub.sessions() as s:
        assert s.scalars(select(db.Dashboard)).first() is None
    assert not _audit(web, "dashboard-published")


def test_other_roles_and_collaborations_cannot_see_a_dashboard(web: Web) -> None:
    r, _ = released_request(web, PER_GEMEENTE)
    did = int(_publish(web, r["id"]).headers["location"].rsplit("/", 1)[1])
    outsider = web.as_(_requester_elsewhere(web))
    assert outsider.get(f"/dashboards/{did}").status_code == 403
    assert f"/dashboards/{did}" not in outsider.get("/dashboards").text
    assert web.as_("buiten").get(f"/dashboards/{did}").status_code == 403
    for name in ("st-ggd", "fg"):
        assert web.as_(name).get(f"/dashboards/{did}").status_code == 403
        assert web.as_(name).get("/dashboards").status_code == 403
    assert web.as_("beleid").get("/dashboards/999").status_code == 404


def test_withdrawn_dashboard_is_gone(web: Web) -> None:
    r, _ = released_request(web, PER_GEMEENTE)
    did = int(_publish(web, r["id"]).headers["location"].rsplit("/", 1)[1])
    requester = web.as_("beleid")
    assert requester.post(f"/dashboards/{did}/withdraw", data={"csrf_token": web.csrf(requester)}).status_code == 403
    c = web.as_("analist")
    assert c.post(f"/dashboards/{did}/withdraw").status_code == 403  # NB: no CSRF token
    assert web.as_("buiten").post(f"/dashboards/{did}/withdraw", data={"csrf_token": "x"}).status_code == 403
    resp = c.post(f"/dashboards/{did}/withdraw", data={"csrf_token": web.csrf(c)})
    assert resp.status_code == 303
    assert f"/dashboards/{did}" not in requester.get("/dashboards").text
    assert requester.get(f"/dashboards/{did}").status_code == 404
    (entry,) = _audit(web, "dashboard-withdrawn")
    assert entry.actor == "analist" and entry.details["dashboard"] == did


def test_title_and_duiding_are_escaped(web: Web) -> None:
    r, _ = released_request(web, PER_GEMEENTE)
    resp = _publish(web, r["id"], title="<script>alert(1)</script>", interpretation="<img src=x onerror=alert(2)>")
    did = int(resp.headers["location"].rsplit("/", 1)[1])
    for path in (f"/dashboards/{did}", "/dashboards"):
        html = web.as_("beleid").get(path).text
        assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img src=x" not in html


def test_questions_are_asked_answered_and_kept_in_the_collaboration(web: Web) -> None:
    beleid, analist = web.as_("beleid"), web.as_("analist")
    page = beleid.get("/questions")
    assert page.status_code == 200 and "dialoog" in page.text and '<option value="pp"' in page.text
    assert '<option value="pp" selected>' in beleid.get("/questions?collaboration=pp").text  # NB: from a dashboard
    english = web.as_("beleid")
    english.cookies.set("lang", "en")
    assert '<h1 class="utrecht-heading-1">Ask a question</h1>' in english.get("/questions").text
    text = "Waarom stijgt het aantal meldingen in de wijk Noord?"
    assert beleid.post("/questions", data={"collaboration": "pp", "text": text}).status_code == 403  # NB: CSRF
    ask = beleid.post("/questions", data={"collaboration": "pp", "text": text, "csrf_token": web.csrf(beleid)})
    assert ask.status_code == 303
    with web.hub.sessions() as s:
        (q,) = s.scalars(select(db.Question))
        qid = q.id
        assert q.text == text and q.status == "open"
    (asked,) = _audit(web, "question-asked")
    assert asked.actor == "beleid" and asked.details == {"question": qid, "collaboration": "pp"}
    assert text in beleid.get("/questions").text
    assert text in analist.get("/questions").text
    # outsiders: a scientist of another organisation neither sees nor answers; a requester of it cannot ask here
    buiten = web.as_("buiten")
    assert text not in buiten.get("/questions").text
    assert (
        buiten.post(f"/questions/{qid}/answer", data={"text": "x", "csrf_token": web.csrf(buiten)}).status_code == 403
    )
    other = web.as_(_requester_elsewhere(web))
    assert (
        other.post("/questions", data={"collaboration": "pp", "text": "x", "csrf_token": web.csrf(other)}).status_code
        == 403
    )
    assert text not in other.get("/questions").text
    # roles: a requester does not answer, a scientist does not ask
    assert (
        beleid.post(f"/questions/{qid}/answer", data={"text": "x", "csrf_token": web.csrf(beleid)}).status_code == 403
    )
    assert (
        analist.post(
            "/questions", data={"collaboration": "pp", "text": "x", "csrf_token": web.csrf(analist)}
        ).status_code
        == 403
    )
    assert web.as_("st-ggd").get("/questions").status_code == 403
    # limits
    too_long = beleid.post(
        "/questions", data={"collaboration": "pp", "text": "x" * 2001, "csrf_token": web.csrf(beleid)}
    )
    assert too_long.status_code == 422
    assert (
        beleid.post("/questions", data={"collaboration": "pp", "text": " ", "csrf_token": web.csrf(beleid)}).status_code
        == 422
    )
    answer = "Er was een uitbraak in een verpleeghuis; zie het dashboard."
    assert (
        analist.post(f"/questions/{qid}/answer", data={"text": answer, "csrf_token": web.csrf(analist)}).status_code
        == 303
    )
    assert (
        analist.post(f"/questions/{qid}/answer", data={"text": "nog eens", "csrf_token": web.csrf(analist)}).status_code
        == 409
    )
    with web.hub.sessions() as s:
        q2 = s.get(db.Question, qid)
        assert q2 is not None and q2.status == "answered" and q2.answer == answer and q2.answered is not None
    (answered,) = _audit(web, "question-answered")
    assert answered.actor == "analist" and answered.details == {"question": qid, "collaboration": "pp"}
    assert answer in beleid.get("/questions").text
    with web.hub.sessions() as s:
        assert len(list(s.scalars(select(db.Question)))) == 1


def test_long_data_table_is_paginated(web: Web) -> None:
    r = approved_request(web, CHRONIC)
    jid = start_job(web, r["id"])
    weeks = pd.DataFrame({"gemeente": "GM9001", "week": range(1, 451), "n": [10 + w % 20 for w in range(450)],
                          "suppressed": False, "reason": None})  # fmt: skip
    release_result(web, jid, weeks, k=10)
    did = int(_publish(web, r["id"], chart="trend", key="", time="week").headers["location"].rsplit("/", 1)[1])
    c = web.as_("beleid")
    first, last = c.get(f"/dashboards/{did}"), c.get(f"/dashboards/{did}?page=3")
    assert first.text.count('<th scope="row"') == 200 and last.text.count('<th scope="row"') == 50
    assert 'href="?page=3#dashboard-table" aria-current="page"' in last.text and ">401</th>" in last.text
    assert c.get(f"/dashboards/{did}?page=0").status_code == 422
    table = int(_publish(web, r["id"], chart="table", key="", value="").headers["location"].rsplit("/", 1)[1])
    page = c.get(f"/dashboards/{table}?page=2").text
    assert (
        page.count('<th scope="row"') == 200 and ">GM9001</th>" in page and "Rijen 201 tot en met 400 van 450" in page
    )
    # NB: a chart that could not be read is refused: a trend of 450 lines, a bar chart of 450 bars
    weekly = {"chart": "trend", "time": "week"}
    assert _publish(web, r["id"], **weekly, key="n").status_code == 422
    assert _publish(web, r["id"], chart="bar", key="week").status_code == 422
