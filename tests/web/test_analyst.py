"""The analyst's pages: catalog, templates, requests, preview, run with live progress, results, downloads.

Every page on the `web` fixture (SQLite and PostgreSQL); the stored rows (requests, jobs, audit
entries) are read back, and an outsider's and another role's attempts are refused as the API does.
"""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pandas as pd
from sqlalchemy import select

from werkplaats import count, scan
from werkplaats.web.gallery import TEMPLATES
from werkplaats.workspace import db

from .conftest import Web
from .factories import (
    approved_request,
    fail_job,
    hotspots_plan,
    jobs_of,
    reject,
    release_result,
    released_request,
    set_progress,
    start_job,
    submit,
)


def _text(html: str) -> str:
    """The page's text without tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _rows(html: str) -> int:
    """How many body rows the result table of a page or fragment has."""
    body = html.split('<tbody class="utrecht-table__body">', 1)[1].split("</tbody>", 1)[0]
    return body.count("<tr ")


def test_factories_release_a_result(web: Web) -> None:
    r, jid = released_request(web)
    res = web.api["analist"].get(f"/requests/{r['id']}/result")
    assert res["job"] == jid and res["rows"] and res["min_group_size"] == 10
    assert any(row["suppressed"] for row in res["rows"])
    assert jobs_of(web, r["id"])[0].state == "succeeded"


def test_catalog_shows_the_collaborations_datasets_per_organisation_and_their_columns(web: Web) -> None:
    c = web.as_("analist")
    page = c.get("/catalog")
    assert page.status_code == 200
    t = _text(page.text)
    assert "Meldingen meldingsplichtige infectieziekten" in t and "huisartsen/consulten" in t
    assert "min_group_size = 10" in t and "pp" in t
    assert "ggz/wachtlijst" not in t  # NB: not in any of the analyst's collaborations
    ds = c.get("/catalog/ggd/meldingen")
    t = _text(ds.text)
    assert ds.status_code == 200 and "eerste_ziektedag" in t and "date" in t and "persoonssleutel" in t
    assert "COVID-19, influenza A" in t  # NB: a short code list in full
    assert "codelijst van 80 codes" in t and "WK901203" not in t  # NB: a long one paged
    more = c.get("/catalog/ggd/meldingen/codes/wijk?page=2", headers={"HX-Request": "true"})
    assert more.status_code == 200 and "<html" not in more.text
    assert "WK901203" in more.text and "WK900101" not in more.text and "Pagina 2 van 2" in _text(more.text)
    assert c.get("/catalog/ggd/nergens").status_code == 404
    assert web.as_("beleid").get("/catalog").status_code == 403  # NB: a requester is not an analyst
    assert web.as_("fg").get("/catalog/ggd/meldingen").status_code == 403


def test_a_dataset_title_with_markup_shows_as_text(web: Web) -> None:
    from werkplaats.synth.generate import generate
    from werkplaats.synth.write import region_datasets
    from werkplaats.workspace.catalog_io import dataset_entry

    ds = next(d for d in region_datasets(generate(3, 1000)) if d.name == "ggd/meldingen")
    evil = "<script>alert(1)</script>"
    web.api["st-ggd"].put("/datasets/ggd/meldingen", dataset_entry(ds.schema, title=evil, description=evil))
    c = web.as_("analist")
    for path in ("/catalog", "/catalog/ggd/meldingen"):
        html = c.get(path).text
        assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_gallery_shows_every_template_and_its_form_with_the_plan_explained(web: Web) -> None:
    c = web.as_("analist")
    gallery = _text(c.get("/templates").text)
    assert "Infectiehaarden" in gallery and "Valrisicomodel" in gallery and "Wachtlijst GGZ" in gallery
    for t in TEMPLATES:
        page = c.get(f"/templates/{t.name}")
        assert page.status_code == 200, t.name
        assert f'action="/templates/{t.name}"' in page.text and 'name="csrf_token"' in page.text
    form = c.get("/templates/infection-hotspots").text
    assert '<option value="wijk"' in form and 'min="2023"' in form and 'max="2024"' in form
    assert "meldingen" in _text(form)  # NB: the default plan, explained
    assert c.get("/templates/nergens").status_code == 404


def test_explain_fragment_follows_the_form_and_needs_the_csrf_token(web: Web) -> None:
    c = web.as_("analist")
    form = {"year": "2024", "signal": "huisarts", "level": "wijk", "disease": "influenza A", "collaboration": "pp"}
    got = c.post("/templates/infection-hotspots/explain", data=form, headers={"X-CSRF-Token": web.csrf(c)})
    assert got.status_code == 200 and "<html" not in got.text and 'aria-live="polite"' in got.text
    assert "wijk" in got.text and "huisartsen/consulten" in got.text
    assert "Disclosure rules per output" in got.text  # NB: the collaboration's rules, as the stewards will read
    bad = c.post("/templates/infection-hotspots/explain", data=form | {"year": "1999"},
                 headers={"X-CSRF-Token": web.csrf(c)})  # fmt: skip
    assert "year: 1999 is outside" in _text(bad.text)
    assert c.post("/templates/infection-hotspots/explain", data=form).status_code == 403  # NB: no CSRF token


def test_template_submit_creates_the_request_with_the_plan_hash_of_the_api(web: Web) -> None:
    c = web.as_("analist")
    form = {"year": "2024", "signal": "huisarts", "level": "gemeente", "disease": "influenza A",
            "collaboration": "pp", "purpose": "griep volgen", "csrf_token": web.csrf(c)}  # fmt: skip
    got = c.post("/templates/infection-hotspots", data=form)
    assert got.status_code == 303
    rid = int(got.headers["location"].rsplit("/", 1)[1])
    direct = submit(web, hotspots_plan(2024, level="gemeente"), purpose="griep volgen")
    with web.hub.sessions() as s:
        stored = s.get(db.Request, rid)
        assert stored is not None and stored.purpose == "griep volgen" and stored.plan_hash == direct["plan_hash"]
        entry = s.scalars(select(db.AuditEntry).where(db.AuditEntry.subject == f"request/{rid}")).one()
        assert entry.actor == "analist" and entry.action == "request"
    page = _text(c.get(f"/requests/{rid}").text)
    assert "griep volgen" in page and direct["plan_hash"] in page and "huisartsen/consulten" in page
    # NB: the outsider (a scientist of ggz) cannot submit in pp: the API's membership check, as a 403 page
    b = web.as_("buiten")
    assert b.post("/templates/infection-hotspots", data=form | {"csrf_token": web.csrf(b)}).status_code == 403
    empty = c.post("/templates/infection-hotspots", data=form | {"purpose": ""})
    assert empty.status_code == 422 and "Geef een doel op" in empty.text
    assert c.post("/templates/infection-hotspots", data={**form, "csrf_token": "x"}).status_code == 403
    with web.hub.sessions() as s:
        assert len(s.scalars(select(db.Request)).all()) == 2


def test_requests_list_and_detail_show_status_approvals_rejections_and_the_stewards_pages(web: Web) -> None:
    web.api["beheerder"].post("/nodes", {"name": "ds-ggd", "kind": "datastation", "organisation": "ggd",
                                         "web_url": "https://ggd.example:8443"})  # fmt: skip
    ok = approved_request(web, purpose="patiënten per gemeente")
    no = submit(web, purpose="te breed")
    reject(web, no, "huisartsen", reason="doel te breed <b>")
    pending = submit(web, scan("ggd/meldingen").group_by("gemeente").agg(n=count()), purpose="meldingen")
    c = web.as_("analist")
    t = _text(c.get("/requests").text)
    assert "patiënten per gemeente" in t and "goedgekeurd" in t and "afgewezen" in t and "wacht op goedkeuring" in t
    d = c.get(f"/requests/{ok['id']}").text
    assert "st-ha" in _text(d) and 'action="/requests/{}/run"'.format(ok["id"]) in d
    assert "huisartsen/patienten" in _text(d) and "bsn, geslacht, gemeente, medicatie" in _text(d)
    d = c.get(f"/requests/{no['id']}").text
    assert "doel te breed &lt;b&gt;" in d and "/run" not in d
    d = c.get(f"/requests/{pending['id']}").text
    assert f'href="https://ggd.example:8443/inbox/{pending["id"]}"' in d
    assert c.get("/requests/99999").status_code == 404


def test_an_outsider_and_other_roles_cannot_open_a_request_its_job_or_its_result(web: Web) -> None:
    r, jid = released_request(web)
    b = web.as_("buiten")  # NB: a scientist, of ggz, which is not in collaboration pp
    for path in (
        f"/requests/{r['id']}",
        f"/requests/{r['id']}/preview",
        f"/jobs/{jid}",
        f"/jobs/{jid}/progress",
        f"/requests/{r['id']}/result",
        f"/requests/{r['id']}/result.csv",
        f"/requests/{r['id']}/result.xlsx",
    ):
        got = b.get(path)
        assert got.status_code == 403, path
        assert "104" not in got.text
    assert "patiënten" not in b.get("/requests").text and str(r["purpose"]) not in b.get("/requests").text
    assert b.post(f"/requests/{r['id']}/run", data={"csrf_token": web.csrf(b)}).status_code == 403
    for name in ("beleid", "fg", "st-ha"):
        assert web.as_(name).get(f"/requests/{r['id']}/result").status_code == 403, name
    assert len(jobs_of(web, r["id"])) == 1


def test_preview_runs_the_plan_on_dummy_data_and_says_so(web: Web) -> None:
    r = submit(web)
    c = web.as_("analist")
    page = c.get(f"/requests/{r['id']}/preview")
    assert page.status_code == 200
    t = _text(page.text)
    assert (
        "Nepgegevens." in t and "k ≥ 10" in t and f'hx-get="/requests/{r["id"]}/preview" hx-trigger="load"' in page.text
    )
    table = c.get(f"/requests/{r['id']}/preview", headers={"HX-Request": "true"}).text
    assert "<html" not in table and "Resultaat op nepgegevens (geen echte gegevens)" in _text(table)
    assert "GM9001" in table and _rows(table) > 0
    full = c.get(f"/requests/{r['id']}/preview?page=1").text  # NB: without JavaScript
    assert "Nepgegevens." in _text(full) and _rows(full) == _rows(table)


def test_run_creates_a_job_whose_progress_page_shows_the_stored_node_states(web: Web) -> None:
    for i in range(3):
        web.api["beheerder"].post("/nodes", {"name": f"engine{i}", "kind": "engine", "party": i})
    web.api["beheerder"].post("/nodes", {"name": "ds-ha", "kind": "datastation", "organisation": "huisartsen"})
    r = approved_request(web)
    c = web.as_("analist")
    assert c.post(f"/requests/{r['id']}/run").status_code == 403  # NB: no CSRF token
    assert jobs_of(web, r["id"]) == []
    got = c.post(f"/requests/{r['id']}/run", data={"csrf_token": web.csrf(c)})
    assert got.status_code == 303
    (job,) = jobs_of(web, r["id"])
    assert got.headers["location"] == f"/jobs/{job.id}" and job.state == "approved"
    page = c.get(f"/jobs/{job.id}").text
    assert 'aria-live="polite"' in page and 'hx-trigger="every 1s"' in page
    assert "datastation van huisartsen" in _text(page) and "rekenserver van partij 2" in _text(page)
    set_progress(web, job.id, {"ds-ha": "sent", "engine0": "running", "engine1": "compiled"})
    frag = c.get(f"/jobs/{job.id}/progress").text
    assert "<html" not in frag and 'hx-trigger="every 1s"' in frag
    rows = {m[0]: m[1] for m in re.findall(r">(ds-ha|engine\d)</th>.*?wp-status--\w+\">([^<]+)<", frag, re.S)}
    assert rows == {"ds-ha": "delen verstuurd", "engine0": "bezig", "engine1": "gecompileerd", "engine2": "wacht"}
    assert c.get(f"/jobs/{job.id}").text.count("delen verstuurd") == 1  # NB: a reload shows the same, stored
    fail_job(web, job.id, "engine1: party failed")
    frag = c.get(f"/jobs/{job.id}/progress").text
    assert "hx-trigger" not in frag and "engine1: party failed" in frag and "mislukt" in frag  # NB: polling stops
    # a request still waiting for its stewards does not run: the API's reason, on the request's page
    p = submit(web)
    refused = c.post(f"/requests/{p['id']}/run", data={"csrf_token": web.csrf(c)})
    assert refused.status_code == 409 and "De aanvraag kan niet draaien: cannot run" in _text(refused.text)


def test_result_page_and_downloads_show_the_released_values_and_suppressed_cells_as_below_k(web: Web) -> None:
    r, _jid = released_request(web)
    res = web.api["analist"].get(f"/requests/{r['id']}/result")
    c = web.as_("analist")
    page = c.get(f"/requests/{r['id']}/result").text
    assert '<abbr title="minder dan 10 personen of records: niet vrijgegeven">&lt; 10</abbr>' in page
    shown = [row for row in res["rows"] if not row["suppressed"]]
    assert shown and all(f">{row['n']}</td>" in page for row in shown)  # NB: counts exactly as released
    assert page.count("&lt; 10</abbr>") == 1 + 2 * sum(row["suppressed"] for row in res["rows"])  # NB: n and medicatie
    got = c.get(f"/requests/{r['id']}/result.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(got.text)))
    assert lines[0] == ["gemeente", "geslacht", "n", "medicatie", "toelichting"]
    body = lines[1 : 1 + len(res["rows"])]
    for row, line in zip(res["rows"], body, strict=True):
        if row["suppressed"]:
            assert line[2] == "" and line[3] == "" and line[4].startswith("< 10")
        else:
            assert int(line[2]) == row["n"] and (line[3] == "" if row["medicatie"] is None
                                                 else float(line[3]) == row["medicatie"])  # fmt: skip
    assert "k = 10" in lines[-1][0]
    wb = openpyxl.load_workbook(io.BytesIO(c.get(f"/requests/{r['id']}/result.xlsx").content))
    sheet = list(wb["resultaat"].values)
    assert list(sheet[0]) == lines[0]
    for row, values in zip(res["rows"], sheet[1:], strict=True):
        assert values[2] == (None if row["suppressed"] else row["n"])
        assert str(values[4] or "").startswith("< 10") == bool(row["suppressed"])
    assert "k = 10" in str(next(iter(wb["toelichting"].values))[0])


def test_long_results_are_paged_and_a_model_summary_is_shown(web: Web) -> None:
    r = approved_request(web)
    jid = start_job(web, r["id"])
    frame = pd.DataFrame({"gemeente": [f"GM{i:04d}" for i in range(120)], "geslacht": ["M"] * 120,
                          "n": [i + 10 if i % 7 else None for i in range(120)], "medicatie": [1.5] * 120,
                          "suppressed": [i % 7 == 0 for i in range(120)], "reason": [None] * 120})  # fmt: skip
    release_result(web, jid, frame)
    c = web.as_("analist")
    first = c.get(f"/requests/{r['id']}/result").text
    assert _rows(first) == 50 and "Pagina 1 van 3" in _text(first) and 'hx-get="/requests/' in first
    last = c.get(f"/requests/{r['id']}/result?page=3", headers={"HX-Request": "true"}).text
    assert "<html" not in last and _rows(last) == 20 and ">128</td>" in last and "GM0119" in last
    assert "rijen 101 tot en met 120 van 120" in _text(last)
    # a model's summary: the fit statistics and the coefficients
    m = approved_request(web, purpose="model")
    mj = start_job(web, m["id"])
    fit = pd.DataFrame({"term": ["intercept", "vrouw"], "estimate": [-1.25, 0.5], "std_error": [0.1, None]})
    fit.attrs.update({"family": "binomial", "n": 812, "deviance": 1001.5})
    release_result(web, mj, fit)
    t = _text(c.get(f"/requests/{m['id']}/result").text)
    assert "Samenvatting van het model" in t and "binomial" in t and "812" in t and "1.001,50" in t
    assert "Coëfficiënten" in t and "intercept" in t and "-1,25" in t


def test_pages_are_in_english_on_request(web: Web) -> None:
    r, _jid = released_request(web)
    c = web.as_("analist")
    c.cookies.set("lang", "en")
    t = _text(c.get(f"/requests/{r['id']}/result").text)
    assert "Result of request" in t and "Download CSV" in t
    assert "Infection hotspots" in _text(c.get("/templates").text)


def test_a_result_with_one_key_has_a_bar_chart_beside_its_table(web: Web) -> None:
    r, _jid = released_request(web, scan("huisartsen/patienten").group_by("gemeente").agg(n=count()))
    page = web.as_("analist").get(f"/requests/{r['id']}/result").text
    assert 'class="wp-chart__view" data-spec="' in page and "/static/vendor/vega-embed.min.js" in page
    assert "de tabel hieronder geeft dezelfde getallen" in page
    assert "<script>" not in page.split('data-spec="', 1)[1].split('"', 1)[0]  # NB: the spec is escaped
