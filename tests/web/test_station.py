"""The steward's pages on a datastation: inbox, review (text computed here), approve (signed here), reject, log.

Against a real hub over HTTPS in process and datastations built from their datastation.toml (station_fixture).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from werkplaats.plan.explain import explain
from werkplaats.plan.serde import plan_from_dict
from werkplaats.web import create_station_web
from werkplaats.web.deps import WebUser
from werkplaats.workspace import db, pki
from werkplaats.workspace.config import WebConfig
from werkplaats.workspace.datastation import Datastation
from werkplaats.workspace.http import HubError
from werkplaats.workspace.jobs import columns_read
from werkplaats.workspace.signing import ApprovalLimits, approval_id, canonical, literals

from .station_fixture import DPIA, Stations, both_orgs, gp_only, stations  # noqa: F401  (the fixture)


def _text(page: str) -> str:
    """A page's text with tags removed and entities decoded (for assertions on what a steward reads)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def _html(page: str, ident: str) -> str:
    """The markup of the element with that id (to its closing tag; such elements hold none of their own kind)."""
    at = page.index(f'id="{ident}"')
    tag = re.findall(r"<([a-z0-9]+)\b", page[:at])[-1]
    return page[at : page.index(f"</{tag}>", at)]


def _section(page: str, ident: str) -> str:
    """The text of the element with that id."""
    return _text(_html(page, ident))


def _explained(page: str) -> str:
    """The plan text the review page shows."""
    start = page.index(">", page.index('id="explain"')) + 1
    return html.unescape(page[start : page.index("</pre>", start)]).strip()


def _approve(st: Stations, c: Any, org: str, rid: int, **form: Any) -> Any:
    """Open the review page and send its approve form with these fields changed."""
    page = c.get(f"/inbox/{rid}").text
    read = re.search(r'name="read" value="([0-9a-f]+)"', page)
    data = {"csrf_token": st.csrf(org, c), "plan_hash": st.request(rid)["plan_hash"], "days": "10", "max_runs": "2",
            "read": read.group(1) if read else ""}  # fmt: skip
    data.update(form)
    return c.post(f"/inbox/{rid}/approve", data=data)


def test_inbox_lists_the_requests_that_read_our_data_waiting_first(stations: Stations) -> None:  # noqa: F811
    st = stations
    both = st.submit(both_orgs(), purpose="opnames bij griep naar leeftijd")
    gp = st.submit(gp_only(), purpose="chronisch zieken per gemeente")
    ggd = st.web("ggd", "anna")
    r = ggd.get("/inbox")
    assert r.status_code == 200
    waiting = _section(r.text, "waiting")
    assert f"{both}" in waiting and "opnames bij griep naar leeftijd" in waiting and "analist" in waiting
    assert "pp" in waiting
    assert f"/inbox/{gp}" not in r.text  # NB: it reads none of ggd's data
    ha = st.web("huisartsen", "henk").get("/inbox")
    assert f"/inbox/{both}" in ha.text and f"/inbox/{gp}" in ha.text
    # decided ones move from "waiting" to "decided", with the decision
    assert _approve(st, ggd, "ggd", both).status_code == 303
    r = ggd.get("/inbox")
    assert f'"/inbox/{both}"' not in _html(r.text, "waiting")
    decided = _html(r.text, "decided")
    assert f'"/inbox/{both}"' in decided and "anna" in _text(decided) and "wp-status--approved" in decided


def test_review_shows_the_text_computed_here_and_exactly_our_columns(stations: Stations) -> None:  # noqa: F811
    st = stations
    plan = both_orgs(75)
    rid = st.submit(plan, purpose="opnames bij griep, tot 75 jaar")
    page = st.web("ggd", "anna").get(f"/inbox/{rid}")
    assert page.status_code == 200
    held = st.request(rid)["plan"]
    local = explain(plan_from_dict(held))
    assert _explained(page.text) == local.strip()
    ours = _section(page.text, "ours")
    cols = columns_read(plan_from_dict(held))
    assert "ggd/meldingen" in ours and all(c in ours for c in cols["ggd/meldingen"])
    assert "huisartsen/patienten" not in ours  # NB: only our datasets
    text = _text(page.text)
    assert "pandemische paraatheid" in text and DPIA in text and "opnames bij griep, tot 75 jaar" in text
    lits = _section(page.text, "literals")
    assert all(p in lits for p, _ in literals(held)) and "75" in lits
    rules = _section(page.text, "rules")
    assert "10" in rules and "min_group_size" in rules and "90" in rules and "12" in rules
    assert 'name="csrf_token"' in page.text and f'value="{st.request(rid)["plan_hash"]}"' in page.text


def test_approve_is_signed_here_with_the_org_key_and_the_logged_in_stewards_name(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(70))
    c = st.web("ggd", "anna")
    r = _approve(st, c, "ggd", rid, days="10", max_runs="3")
    assert r.status_code == 303 and r.headers["location"] == f"/inbox/{rid}?done=approved"
    a = st.request(rid)["approvals"]["ggd"]
    body = a["body"]
    assert pki.verify(st.public["ggd"], canonical(body), a["signature"])  # NB: the organisation's own key
    assert body["steward"] == "anna" and body["mode"] == "plan" and body["plan_hash"] == st.request(rid)["plan_hash"]
    assert body["max_runs"] == 3 and body["organisation"] == "ggd"
    assert a["by"] == "st-ggd"  # NB: the datastation's steward token sent it
    done = c.get(r.headers["location"])
    assert 'id="confirmation"' in done.text and "wp-status--approved" in done.text.split('id="decision"')[1][:600]
    assert 'id="approve"' not in done.text  # NB: decided: no second form
    entry = st.station["ggd"].log.check()[-1]
    assert entry["action"] == "approval" and entry["actor"] == "anna" and entry["details"]["request"] == rid
    # a second click (or a second steward) signs nothing more
    again = _approve(st, st.web("ggd", "bert"), "ggd", rid)
    assert again.status_code == 409 and st.request(rid)["approvals"]["ggd"]["signature"] == a["signature"]
    with st.hub.sessions() as s:
        assert len(s.scalars(select(db.Approval).where(db.Approval.request_id == rid)).all()) == 1
    assert st.station["ggd"].log.check()[-1]["seq"] == entry["seq"]


def test_template_approval_with_a_range_and_the_earlier_approval_shown_on_the_next(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(60))
    lits = literals(st.request(rid)["plan"])
    i = next(k for k, (_, v) in enumerate(lits) if v == 60)
    ranges = ["" for _ in lits]
    c = st.web("ggd", "anna")
    # a range that leaves out the plan's own value is refused, and nothing reaches the hub
    ranges[i] = "0:50"
    bad = _approve(st, c, "ggd", rid, vary=[str(i)], ranges=ranges)
    assert bad.status_code == 422 and 'id="errors"' in bad.text and "50" in _section(bad.text, "errors")
    assert "ggd" not in st.request(rid)["approvals"]
    ranges[i] = "18:99"
    assert _approve(st, c, "ggd", rid, vary=[str(i)], ranges=ranges).status_code == 303
    body = st.request(rid)["approvals"]["ggd"]["body"]
    assert body["mode"] == "template" and body["vary"] == [lits[i][0]]
    assert body["ranges"] == {lits[i][0]: {"min": 18, "max": 99}}
    # the next request of the same analysis with another age is shown as covered by this template approval
    nxt = st.submit(both_orgs(65))
    c.cookies.set("lang", "en")
    earlier = _section(c.get(f"/inbox/{nxt}").text, "earlier")
    assert f"Request {rid}" in earlier and "anna" in earlier and "yes" in earlier
    # ... but not for another purpose (an approval is for its own collaboration and purpose), nor outside its range
    other = _section(c.get(f"/inbox/{st.submit(both_orgs(66), purpose='iets anders')}").text, "earlier")
    assert f"Request {rid}" in other and "another collaboration or purpose" in other
    outside = _section(c.get(f"/inbox/{st.submit(both_orgs(17))}").text, "earlier")
    assert f"Request {rid}" in outside and "outside its ranges" in outside


def test_reject_needs_a_reason_and_the_analyst_sees_it_at_the_hub(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(50))
    c = st.web("huisartsen", "henk")
    empty = c.post(f"/inbox/{rid}/reject", data={"csrf_token": st.csrf("huisartsen", c), "reason": "  "})
    assert empty.status_code == 422 and not st.request(rid)["rejections"]
    reason = "Valt buiten het doel van de samenwerking <b>pp</b>"
    r = c.post(f"/inbox/{rid}/reject", data={"csrf_token": st.csrf("huisartsen", c), "reason": reason})
    assert r.status_code == 303
    seen = st.api["analist"].get(f"/requests/{rid}")
    assert seen["status"] == "rejected" and seen["rejections"]["huisartsen"] == {
        "reason": reason,
        "by": "st-huisartsen",
    }
    page = c.get(r.headers["location"])
    assert 'id="confirmation"' in page.text and "&lt;b&gt;pp&lt;/b&gt;" in page.text  # NB: escaped, shown as text
    # ggd's steward sees the other organisation's rejection on the review page
    assert reason in _section(st.web("ggd", "anna").get(f"/inbox/{rid}").text, "others")


def test_a_hub_that_lies_about_the_plan_text_is_not_believed(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(45))
    lie = "Telt alleen het aantal meldingen; leest geen gegevens van personen."
    with st.hub.sessions() as s:
        s.get(db.Request, rid).explain = lie  # type: ignore[union-attr]
        s.commit()
    assert st.request(rid)["explain"] == lie
    page = st.web("ggd", "anna").get(f"/inbox/{rid}")
    assert lie not in _text(page.text)
    assert _explained(page.text) == explain(plan_from_dict(st.request(rid)["plan"])).strip()


def test_a_hub_that_swaps_the_plan_gets_nothing_signed(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(44))
    c = st.web("ggd", "anna")
    good_hash = st.request(rid)["plan_hash"]
    swapped = json.loads(json.dumps(st.request(rid)["plan"]).replace("44", "99"))
    with st.hub.sessions() as s:
        s.get(db.Request, rid).plan = swapped  # type: ignore[union-attr]
        s.commit()
    page = c.get(f"/inbox/{rid}")
    assert page.status_code == 409 and 'id="approve"' not in page.text
    r = c.post(f"/inbox/{rid}/approve", data={"csrf_token": st.csrf("ggd", c), "plan_hash": good_hash,
                                              "days": "10", "max_runs": "1"})  # fmt: skip
    assert r.status_code == 409 and "ggd" not in st.request(rid)["approvals"]


def test_a_plan_changed_after_it_was_read_is_not_signed(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(43))
    c = st.web("ggd", "anna")
    r = _approve(st, c, "ggd", rid, plan_hash="0" * 64)
    assert r.status_code == 409 and "ggd" not in st.request(rid)["approvals"]
    assert 'id="errors"' in r.text and 'id="approve"' in r.text  # NB: shown again, to be read again


def test_a_purpose_changed_after_it_was_read_is_not_signed(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(37), purpose="griep bij ouderen")
    c = st.web("ggd", "anna")
    page = c.get(f"/inbox/{rid}").text
    read = re.search(r'name="read" value="([0-9a-f]+)"', page)
    assert read is not None and "griep bij ouderen" in _section(page, "purpose")
    with st.hub.sessions() as s:  # NB: the hub swaps the purpose (part of what is signed) after the steward read it
        s.get(db.Request, rid).purpose = "alle gegevens voor marketing"  # type: ignore[union-attr]
        s.commit()
    form = {"csrf_token": st.csrf("ggd", c), "plan_hash": st.request(rid)["plan_hash"], "read": read.group(1),
            "days": "5", "max_runs": "1"}  # fmt: skip
    r = c.post(f"/inbox/{rid}/approve", data=form)
    assert r.status_code == 409 and "ggd" not in st.request(rid)["approvals"]
    assert "alle gegevens voor marketing" in _section(r.text, "purpose")  # NB: the new purpose, to be read first


def test_approve_and_reject_without_the_csrf_token_are_refused(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(42))
    c = st.web("ggd", "anna")
    h = st.request(rid)["plan_hash"]
    assert c.post(f"/inbox/{rid}/approve", data={"plan_hash": h, "days": "5", "max_runs": "1"}).status_code == 403
    forged = {"csrf_token": "forged", "plan_hash": h, "days": "5", "max_runs": "1"}
    assert c.post(f"/inbox/{rid}/approve", data=forged).status_code == 403
    assert c.post(f"/inbox/{rid}/reject", data={"reason": "nee"}).status_code == 403
    got = st.request(rid)
    assert "ggd" not in got["approvals"] and "ggd" not in got["rejections"]


def test_limits_beyond_the_datastations_are_refused(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(41))
    c = st.web("ggd", "anna")
    r = _approve(st, c, "ggd", rid, days="91", max_runs="13")
    assert r.status_code == 422 and "ggd" not in st.request(rid)["approvals"]
    assert _text(r.text).count("90") >= 1 and "12" in _text(r.text)


def test_a_steward_of_another_datastation_cannot_use_this_one(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(40))
    henk = st.token("huisartsen", "henk")  # NB: a session of huisartsen's datastation
    c = st.client("ggd")
    c.cookies.set("wp_session", henk)
    assert c.get("/inbox").status_code == 303  # NB: unknown here: to the login page
    assert c.get(f"/inbox/{rid}").headers["location"].startswith("/login")
    r = c.post(f"/inbox/{rid}/approve", data={"plan_hash": st.request(rid)["plan_hash"], "days": "5", "max_runs": "1"})
    assert r.status_code in (303, 403) and "ggd" not in st.request(rid)["approvals"]
    # a steward user of another organisation reaching this app (a misconfigured account store) is refused
    app = create_station_web(st.station["ggd"], WebConfig("127.0.0.1", 0, "https://ds-ggd.test:8443"))

    class Foreign:
        def user_for(self, token: str) -> WebUser | None:
            return WebUser("henk", "steward", "huisartsen", None, "csrf") if token == "t" else None

    app.state.accounts = Foreign()
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="https://testserver", follow_redirects=False) as foreign:
        foreign.cookies.set("wp_session", "t")
        assert foreign.get("/inbox").status_code == 403
        assert foreign.get(f"/inbox/{rid}").status_code == 403
        assert foreign.get("/log").status_code == 403


def test_a_request_that_reads_none_of_our_data_has_no_review_here(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(gp_only(), purpose="alleen huisartsgegevens")
    c = st.web("ggd", "anna")
    assert f"/inbox/{rid}" not in c.get("/inbox").text
    assert c.get(f"/inbox/{rid}").status_code == 404
    form = {"csrf_token": st.csrf("ggd", c), "plan_hash": st.request(rid)["plan_hash"], "days": "5", "max_runs": "1"}
    r = c.post(f"/inbox/{rid}/approve", data=form)
    assert r.status_code == 404 and "ggd" not in st.request(rid)["approvals"]
    assert c.post(f"/inbox/{rid}/reject", data={"csrf_token": st.csrf("ggd", c), "reason": "x"}).status_code == 404
    assert c.get("/inbox/999999").status_code == 404
    assert st.web("huisartsen", "henk").get(f"/inbox/{rid}").status_code == 200


def test_the_log_is_newest_first_paginated_and_says_where_its_chain_is_broken(
    stations: Stations,  # noqa: F811
    tmp_path: Any,
) -> None:
    st = stations
    ds = st.station["ggd"]
    own = Datastation(dataclasses.replace(ds.cfg, state_dir=tmp_path / "state"))
    app = create_station_web(own, WebConfig("127.0.0.1", 0, "https://ds-ggd.test:8443", accounts=tmp_path / "acc.db"))
    st.app["own"] = app
    c = st.web("own", "anna")  # NB: the login itself is an entry of this log
    for i in range(60):
        own.log.append(actor="ds-ggd", action="refusal", subject=f"job/{i}", details={"job": i, "detail": f"reden {i}"})
    first = c.get("/log")
    assert first.status_code == 200
    assert "intact" in _section(first.text, "chain").lower() or "ongeschonden" in first.text
    t = _text(first.text)
    assert t.index("job/59") < t.index("job/58") and "job/0 " not in t  # NB: newest first, 50 a page
    assert "job/0" in _text(c.get("/log?page=2").text)
    # someone edits an entry in the file: the page names the broken entry
    path = own.log.path
    lines = path.read_text().splitlines()
    lines[10] = lines[10].replace("reden", "REDEN")
    path.write_text("\n".join(lines) + "\n")
    broken = c.get("/log")
    assert broken.status_code == 200 and 'role="alert"' in broken.text
    assert "entry 11" in _text(broken.text)
    # and nothing is signed onto a damaged log
    rid = st.submit(both_orgs(39))
    r = _approve(st, c, "own", rid)
    assert r.status_code == 422 and "ggd" not in st.request(rid)["approvals"]


def test_pages_need_a_login(stations: Stations) -> None:  # noqa: F811
    c = stations.client("ggd")
    for path in ("/inbox", "/inbox/1", "/log"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_the_hub_stores_a_datastations_web_url_and_only_its_admin_changes_it(stations: Stations) -> None:  # noqa: F811
    st = stations
    with st.hub.sessions() as s:
        assert s.scalars(select(db.Node.web_url).where(db.Node.name == "ds-ggd")).one() == "https://ds-ggd.test:8443"
    st.api["beheerder"].put("/nodes/ds-ggd/web-url", {"web_url": "https://steward.ggd.test"})
    with st.hub.sessions() as s:
        assert s.scalars(select(db.Node.web_url).where(db.Node.name == "ds-ggd")).one() == "https://steward.ggd.test"
    with pytest.raises(HubError) as e:
        st.api["st-ggd"].put("/nodes/ds-ggd/web-url", {"web_url": "https://evil.test"})
    assert e.value.status == 403
    for bad in ("http://ds-ggd.test", "javascript:alert(1)", 'https://x"><script>'):
        with pytest.raises(HubError) as e:
            st.api["beheerder"].put("/nodes/ds-ggd/web-url", {"web_url": bad})
        assert e.value.status == 422
    with pytest.raises(HubError) as e:
        st.api["beheerder"].put("/nodes/nobody/web-url", {"web_url": ""})
    assert e.value.status == 404


def test_a_hub_refusal_is_shown_and_nothing_is_logged_as_approved(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(38))
    c = st.web("ggd", "anna")
    c.cookies.set("lang", "en")
    before = len(st.station["ggd"].log.check())
    limits = st.hub.approval_limits
    st.hub.approval_limits = ApprovalLimits(max_days=5, max_runs=1)  # NB: the hub allows less than the datastation
    try:
        r = _approve(st, c, "ggd", rid, days="10", max_runs="1")
    finally:
        st.hub.approval_limits = limits
    assert r.status_code == 422 and "The hub did not accept the approval" in _section(r.text, "errors")
    assert "ggd" not in st.request(rid)["approvals"]
    assert [e["action"] for e in st.station["ggd"].log.check()[before:]] == []


def test_an_unreachable_hub_is_said_so(stations: Stations, tmp_path: Any) -> None:  # noqa: F811
    st = stations
    cfg = st.station["ggd"].cfg
    away = Datastation(dataclasses.replace(cfg, hub="https://127.0.0.1:9", state_dir=tmp_path / "state"))
    st.app["away"] = create_station_web(away, WebConfig("127.0.0.1", 0, "https://ds-ggd.test:8443"))
    c = st.web("away", "anna")
    c.cookies.set("lang", "en")
    for r in (c.get("/inbox"), c.get("/inbox/1")):
        assert r.status_code == 502 and "The hub cannot be reached" in _text(r.text)
    assert c.get("/log").status_code == 200  # NB: the datastation's own log needs no hub


def test_an_approval_used_for_all_its_runs_can_be_renewed(stations: Stations) -> None:  # noqa: F811
    st = stations
    rid = st.submit(both_orgs(36))
    c = st.web("ggd", "anna")
    assert _approve(st, c, "ggd", rid, max_runs="1").status_code == 303
    first = st.request(rid)["approvals"]["ggd"]
    assert 'id="spent"' not in c.get(f"/inbox/{rid}").text
    # the datastation contributed once under it (counted in its own log): the approval is used up
    used = {"job": 9001, "request": rid, "approval": approval_id(first["signature"])}
    st.station["ggd"].log.append(actor="ds-ggd", action="contribution", subject="job/9001", details=used)
    page = c.get(f"/inbox/{rid}")
    assert 'id="spent"' in page.text and 'id="approve"' in page.text
    assert _approve(st, c, "ggd", rid, max_runs="3").status_code == 303
    renewed = st.request(rid)["approvals"]["ggd"]
    assert renewed["signature"] != first["signature"] and renewed["body"]["max_runs"] == 3
