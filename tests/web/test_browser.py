"""The web workbench in a real browser, against the one live workspace of real processes (``ws``).

Headless Debian chromium under Playwright; hub, three engines and two datastations as processes,
each with its own HTTPS web listener. The story: an analyst submits a template that reads both
organisations (chronically ill GP patients and GGD notifications per gemeente), the GGD's steward
reviews and approves it on the GGD datastation's own pages (keyboard only) and the huisartsen' steward
on theirs, the analyst runs it and watches its progress, opens the result and downloads it, publishes
a dashboard (a choropleth by gemeente with released, coloured values) and a second one whose areas
are mostly held back (marked, never a number below k); an inzichtvrager opens them; the
huisartsen' steward rejects another request with a reason and the analyst reads why; the privacy
officer finds all of it in the audit trail; the admin sees node health. axe-core (WCAG 2.1 A/AA)
runs on every page visited, in Dutch, and on a set in English. Screenshots (docs/img/web-*.png) only
with WERKPLAATS_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .browser import CHECKED, TIMINGS, Tab, assert_focus_visible, chromium, launch, login, require_browser, tab_to

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

COLLABORATION = "pandemische-paraatheid"
QUESTION = "Waarom zijn bijna alle wijken afgeschermd, en kan het per gemeente?"
REASON = "Het doel rechtvaardigt geen gegevens op wijkniveau over consulten; vraag het per gemeente aan."


@pytest.fixture(scope="module")
def story(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The workspace with its web accounts, and one chromium trusting exactly its web certificates."""
    require_browser()  # NB: before the workspace starts
    ws = request.getfixturevalue("ws")
    t0 = time.perf_counter()
    logins = ws.logins or ws.start_web()
    print(f"\nweb accounts and listeners ready in {time.perf_counter() - t0:.1f} s")
    certs = [ws.pki / "hub.crt", *(ws.pki / f"ds-{o}.crt" for o in ws.organisations)]
    with chromium(certs) as browser:
        yield {"ws": ws, "browser": browser, "users": logins["users"], "hub": ws.web_url("hub")}
    slow = sorted(TIMINGS.items(), key=lambda kv: -kv[1])[:5]
    print(f"\naxe-core: no violations on {len(CHECKED)} pages; slowest (ms to first byte): {slow}")


def _tab(
    story: dict[str, Any], who: str, *, lang: str = "nl", check: bool = False, keyboard: bool = False, shots: str = ""
) -> Tab:
    """A fresh browser context logged in as who (at the hub, or at their datastation for a steward)."""
    user = story["users"][who]
    tab = Tab(story["browser"], lang)
    if lang == "en":
        tab.goto(user["url"] + "/lang/en")
    login(tab, user["url"], user, check=check, keyboard=keyboard, shots=shots)
    return tab


def _rid(url: str, what: str = "requests") -> int:
    m = re.search(rf"/{what}/(\d+)", url)
    assert m, f"no /{what}/<id> in {url}"
    return int(m.group(1))


def _request(ws: Any, rid: int) -> dict[str, Any]:
    """The request as the hub's API shows it to its analyst."""
    c = ws.client("analist")
    try:
        r: dict[str, Any] = c.get(f"/requests/{rid}")
    finally:
        c.close()
    return r


def _submit_template(tab: Tab, hub: str, template: str, reads: str, shot: bool = False, **select: str) -> int:
    """Fill a template's selects, wait for its explain() text, submit; return the request id."""
    page = tab.page
    tab.goto(f"{hub}/templates/{template}")
    for name, value in select.items():
        page.select_option(f"select[name={name}]", value)
    expect(page.locator("#explain")).to_contain_text(reads)  # NB: the htmx fragment follows the form as it changes
    expect(page.locator("#explain")).to_contain_text(select.get("level", "gemeente"))
    tab.check("template" if shot else "", context="template form with explain()")
    with page.expect_navigation():
        page.locator("form[method=post] [type=submit]").last.click()
    assert re.search(r"/requests/\d+$", page.url), page.url
    return _rid(page.url)


def test_the_story(story: dict[str, Any]) -> None:
    hub, ws = story["hub"], story["ws"]

    # -- the analyst: catalog, template gallery, a template with its explain text, submit ---------------
    analist = _tab(story, "analist", check=True, shots="hub-")
    page = analist.page
    analist.goto(f"{hub}/catalog")
    assert "ggd/meldingen" in page.inner_text("main") or "meldingen" in page.inner_text("main")
    analist.check("catalog")
    page.locator("main a[href^='/catalog/ggd/']").first.click()
    page.wait_for_load_state()
    assert "bsn" in page.inner_text("main")
    analist.check("dataset")
    analist.goto(f"{hub}/templates")
    analist.check("templates")
    # NB: reads both organisations: both stewards must approve it
    rid = _submit_template(analist, hub, "chronic-notifications", "huisartsen/patienten", shot=True, level="gemeente")
    expect(page.locator("main")).to_contain_text("ggd/meldingen")
    reviews = [a.get_attribute("href") for a in page.locator(f"main a[href$='/inbox/{rid}']").all()]
    stations = [story["users"][f"steward-{o}"]["url"] for o in ("ggd", "huisartsen")]
    assert sorted(reviews) == sorted(f"{u}/inbox/{rid}" for u in stations), reviews  # NB: each datastation's page
    review = f"{stations[0]}/inbox/{rid}"
    analist.check("request")
    analist.goto(f"{hub}/requests/{rid}/preview")
    analist.check("preview")
    analist.goto(f"{hub}/requests")
    assert f"/requests/{rid}" in page.content()
    analist.check("requests")

    # -- the GGD's steward, on the GGD datastation's own pages: login and approve by keyboard only ------
    st = _tab(story, "steward-ggd", check=True, keyboard=True, shots="station-")
    sp, ds = st.page, story["users"]["steward-ggd"]["url"]
    st.goto(f"{ds}/inbox")
    assert f"/inbox/{rid}" in sp.content()
    st.check("station-inbox")
    st.goto(review)  # NB: the link the hub's request page gives
    text = sp.inner_text("main")
    assert "ggd/meldingen" in text and "huisartsen/patienten" in text  # NB: the plan as computed at the datastation
    st.check("station-review")
    tab_to(sp, "input[name=days]")
    sp.keyboard.press("Control+A")
    sp.keyboard.type("7")
    sp.keyboard.press("Tab")
    sp.keyboard.press("Control+A")
    sp.keyboard.type("2")
    assert sp.evaluate("document.activeElement.name") == "max_runs"
    tab_to(sp, f"form[action$='/inbox/{rid}/approve'] [type=submit]")
    with sp.expect_navigation():
        sp.keyboard.press("Enter")
    assert sp.locator("#confirmation").count() == 1, sp.inner_text("main")
    seen = _request(ws, rid)
    signed = seen["approvals"]["ggd"]
    assert (
        signed["by"] == "steward-ggd" and signed["body"]["max_runs"] == 2 and signed["body"]["steward"] == "steward-ggd"
    )
    assert seen["status"] != "approved" and "huisartsen" not in seen["approvals"], seen  # NB: one of two
    st.check("station-approved", context="approved")
    st.goto(f"{ds}/log")
    st.check("station-log")

    # -- the huisartsen' steward approves it too, on the huisartsen' datastation ----------------------
    ha = _tab(story, "steward-huisartsen")
    hp, hds = ha.page, story["users"]["steward-huisartsen"]["url"]
    ha.goto(f"{hds}/inbox/{rid}")
    assert "huisartsen/patienten" in hp.inner_text("main")
    ha.check("", context="review by the second steward")
    with hp.expect_navigation():
        hp.locator(f"form[action$='/inbox/{rid}/approve'] [type=submit]").click()
    assert hp.locator("#confirmation").count() == 1, hp.inner_text("main")
    seen = _request(ws, rid)
    assert seen["approvals"]["huisartsen"]["by"] == "steward-huisartsen", seen["approvals"]
    assert seen["status"] == "approved", seen

    # -- the analyst runs it and watches the live progress until done -----------------------------------
    analist.goto(f"{hub}/requests/{rid}")
    assert "steward-ggd" in page.inner_text("main") and "steward-huisartsen" in page.inner_text("main")
    with page.expect_navigation():
        page.locator(f"form[action='/requests/{rid}/run'] [type=submit]").click()
    assert re.search(r"/jobs/\d+$", page.url), page.url
    analist.check("", context="job page, running")
    result_link = page.locator(f"a[href='/requests/{rid}/result']")
    result_link.wait_for(timeout=240_000)  # NB: the htmx fragment refreshes until the job is done
    analist.check("job")
    page.reload()  # NB: the progress survives a reload
    result_link.wait_for()
    result_link.click()
    page.wait_for_load_state()
    main = page.inner_text("main")
    assert "< k" in main or "<k" in main or "< 10" in main, main[:1000]
    analist.check("result")
    with page.expect_download() as dl:
        page.locator(f"a[href='/requests/{rid}/result.csv']").click()
    csv = dl.value.path().read_text()
    assert csv.splitlines()[0].startswith("gemeente,"), csv[:200]
    with page.expect_download() as dl:
        page.locator(f"a[href='/requests/{rid}/result.xlsx']").click()
    assert dl.value.path().read_bytes()[:2] == b"PK"  # NB: an XLSX is a zip

    # -- a dashboard: a choropleth by gemeente ---------------------------------------------------------
    analist.goto(f"{hub}/dashboards/new?request={rid}")
    analist.check("dashboard-new")
    page.fill("input[name=title]", "Chronisch zieken per gemeente, 2024")
    page.fill(
        "textarea[name=interpretation]",
        "Patiënten met een of meer chronische aandoeningen bij de huisarts, per gemeente: de risicogroep bij een "
        "pandemie. Kleine aantallen (zoals meldingen van influenza A onder hen) zijn afgeschermd.",
    )
    page.select_option("select[name=chart]", "choropleth-gemeente")
    page.select_option("select[name=key]", "gemeente")
    page.select_option("select[name=value]", "chronisch")
    with page.expect_navigation():
        page.locator("form[action='/dashboards'] [type=submit]").click()
    assert re.search(r"/dashboards/\d+$", page.url), page.url
    did = _rid(page.url, "dashboards")
    analist.check("", context="dashboard as its analyst sees it (withdraw)")

    # -- the inzichtvrager opens it: the map with released values (any suppressed area marked), the table --
    iv = _tab(story, "inzichtvrager", check=True)
    iv.goto(f"{hub}/dashboards")
    assert f"/dashboards/{did}" in iv.page.content()
    iv.check("dashboards")
    iv.goto(f"{hub}/dashboards/{did}")
    ip = iv.page
    ip.locator("main svg, main canvas").first.wait_for()  # NB: vega-embed drew the map
    table = ip.locator("main table")
    assert table.count() >= 1, ip.inner_text("main")
    cells = [c.strip() for c in table.first.locator("tbody tr td:last-child").all_inner_texts()]
    released = [c for c in cells if c.isdigit()]
    assert len(released) >= len(cells) // 2 > 0, cells  # NB: coloured areas, real numbers; "< 10" where withheld
    iv.check("dashboard")

    # -- a second map of the same result: the notified among them, mostly below k; held-back areas are marked --
    analist.goto(f"{hub}/dashboards/new?request={rid}")
    page.fill("input[name=title]", "Gemelde chronisch zieken per gemeente, 2024")
    page.fill("textarea[name=interpretation]", "Chronisch zieken die de GGD meldde; kleine aantallen zijn afgeschermd.")
    page.select_option("select[name=chart]", "choropleth-gemeente")
    page.select_option("select[name=key]", "gemeente")
    page.select_option("select[name=value]", "gemeld_chronisch")
    with page.expect_navigation():
        page.locator("form[action='/dashboards'] [type=submit]").click()
    did2 = _rid(page.url, "dashboards")
    iv.goto(f"{hub}/dashboards/{did2}")
    ip.locator("main svg, main canvas").first.wait_for()
    cells = [c.strip() for c in ip.locator("main table").first.locator("tbody tr td:last-child").all_inner_texts()]
    marked = [c for c in cells if not c.isdigit()]
    assert marked and all(c in ("niet vrijgegeven", "< 10") for c in marked), cells  # NB: never a number below k
    iv.check("", context="dashboard with held-back areas")

    # -- ... and asks a question about it, which the analyst reads ---------------------------------------
    iv.goto(f"{hub}/questions")
    ip.fill("form[action='/questions'] textarea[name=text]", QUESTION)
    with ip.expect_navigation():
        ip.locator("form[action='/questions'] [type=submit]").click()
    assert QUESTION in ip.inner_text("main")
    iv.check("questions")
    analist.goto(f"{hub}/questions")
    assert QUESTION in page.inner_text("main")
    analist.check("", context="questions (analyst)")
    for path in ("/account", "/accessibility"):
        analist.goto(hub + path)
        analist.check("", context=path)

    # -- another request, rejected by the huisartsen' steward with a reason; the analyst reads why --------
    rid2 = _submit_template(analist, hub, "infection-hotspots", "huisartsen/consulten", signal="huisarts", level="wijk")
    ha.goto(f"{hds}/inbox/{rid2}")
    ha.check("", context="review before rejecting")
    hp.fill(f"form[action$='/inbox/{rid2}/reject'] textarea[name=reason]", REASON)
    with hp.expect_navigation():
        hp.locator(f"form[action$='/inbox/{rid2}/reject'] [type=submit]").click()
    assert hp.locator("#confirmation").count() == 1, hp.inner_text("main")
    ha.check("", context="rejected")
    assert _request(ws, rid2)["rejections"]["huisartsen"] == {"reason": REASON, "by": "steward-huisartsen"}
    analist.goto(f"{hub}/requests/{rid2}")
    assert REASON in page.inner_text("main")
    analist.check("request-rejected", context="rejected request")

    # -- the privacy officer: the audit trail has all of it --------------------------------------------
    fg = _tab(story, "fg", check=True)
    fg.goto(f"{hub}/audit")
    trail = fg.page.inner_text("main")
    for action in ("web-login", "request", "approval", "rejection", "release"):
        assert action in trail, f"{action} not in the audit trail"
    fg.check("audit")
    fg.goto(f"{hub}/register")
    fg.check("register")
    fg.goto(f"{hub}/collaborations/{COLLABORATION}/use")
    assert "analist" in fg.page.inner_text("main")
    fg.check("collaboration-use")

    # -- the admin: node health ------------------------------------------------------------------------
    adm = _tab(story, "beheerder", check=True)
    adm.goto(f"{hub}/admin/nodes")
    nodes = adm.page.inner_text("main")
    assert all(n in nodes for n in ("engine0", "engine1", "engine2", *(f"ds-{o}" for o in ws.organisations)))
    adm.check("admin-nodes")
    for what in ("organisations", "users", "collaborations"):
        adm.goto(f"{hub}/admin/{what}")
        adm.check(f"admin-{what}" if what == "organisations" else "", context=f"/admin/{what}")
    for tab in (analist, st, iv, ha, fg, adm):
        tab.close()


def test_pages_in_english_pass_axe(story: dict[str, Any]) -> None:
    hub = story["hub"]
    tab = _tab(story, "analist", lang="en", check=True)
    for path in ("/catalog", "/templates", "/requests", "/accessibility"):
        tab.goto(hub + path)
        assert tab.page.locator("html").get_attribute("lang") == "en"
        tab.check("", context=f"{path} (en)")
    tab.close()
    st = _tab(story, "steward-huisartsen", lang="en")
    st.goto(story["users"]["steward-huisartsen"]["url"] + "/inbox")
    assert st.page.locator("html").get_attribute("lang") == "en"
    st.check("", context="datastation inbox (en)")
    st.close()


def test_a_certificate_outside_the_workspace_is_refused(story: dict[str, Any]) -> None:
    """The browser trusts exactly the workspace's web keys: its pinned list is no blanket 'ignore errors'."""
    ws = story["ws"]
    other = launch(story["browser"].browser_type, [ws.pki / "engine0.crt"])  # NB: a workspace key, not the hub's
    try:
        with pytest.raises(Exception, match="ERR_CERT"):
            other.new_page().goto(story["hub"] + "/login")
    finally:
        other.close()


def test_every_tab_stop_shows_its_focus(story: dict[str, Any]) -> None:
    """Tab through a whole page (skip link, navigation, language switch, logout, content): each stop shows focus."""
    tab = _tab(story, "analist")
    tab.goto(story["hub"] + "/templates")
    seen: list[str] = []
    for _ in range(40):
        tab.page.keyboard.press("Tab")
        name = tab.page.evaluate("document.activeElement.outerHTML.slice(0, 80)")
        if name in seen or name.startswith("<body"):
            break  # NB: around the page once
        seen.append(name)
        assert_focus_visible(tab.page)
    assert len(seen) >= 5 and ("skip" in seen[0].lower() or "#main" in seen[0]), seen[:3]
    tab.close()


def test_a_steward_logs_in_only_at_their_own_datastation(story: dict[str, Any]) -> None:
    """Stewards' accounts are kept per datastation: the huisartsen' steward is nobody at the GGD's, nor at the hub."""
    users = story["users"]
    for where in (users["steward-ggd"]["url"], story["hub"]):
        tab = Tab(story["browser"])
        tab.goto(where + "/login")
        tab.page.fill("input[name=name]", "steward-huisartsen")
        tab.page.fill("input[name=password]", users["steward-huisartsen"]["password"])
        with tab.page.expect_navigation():
            tab.page.locator("form:has(input[name=password]) [type=submit]").click()
        assert "/login" in tab.page.url and tab.page.locator("input[name=code]").count() == 0
        tab.goto(where + "/inbox" if where != story["hub"] else where + "/catalog")
        assert "/login" in tab.page.url  # NB: no session
        tab.close()
