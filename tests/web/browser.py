"""Helpers for the browser tests: Debian's chromium under Playwright, logins with TOTP, axe-core, screenshots.

Trust: chromium is started with ``--ignore-certificate-errors-spki-list`` naming the SPKI hashes of
exactly the workspace's web certificates (hub and datastations). Only those keys are accepted; any
other certificate error stays an error. We chose this over importing the workspace CA into an NSS
database: it needs no ``certutil``, leaves the machine's and the user's trust stores untouched, and
pins the keys rather than trusting everything the CA could sign.

axe-core runs through ``page.evaluate`` (the DevTools protocol), not ``add_script_tag``: the pages'
CSP (``script-src 'self'``) refuses an injected inline script, and turning the CSP off for the test
(``bypass_csp``) would hide what the CSP breaks. So the pages are tested under their real CSP, and
every CSP violation the browser reports fails the test too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
IMG = Path(__file__).parents[2] / "docs" / "img"
VIEWPORT = {"width": 1280, "height": 800}
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def require_browser() -> None:
    """Skip (with the reason) when chromium or axe-core is missing, unless WERKPLAATS_REQUIRE_BROWSER=1."""
    missing = [str(p) for p in (CHROMIUM, AXE) if not p.exists()]
    if missing:
        if os.environ.get("WERKPLAATS_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests required but missing: {', '.join(missing)}")
        pytest.skip(f"no browser tests: missing {', '.join(missing)} (apt-get install chromium; tools/vendor_web.py)")


def spki_b64(cert: Path) -> str:
    """The base64 SHA-256 of a certificate's SubjectPublicKeyInfo (chromium's SPKI pin format)."""
    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@contextmanager
def chromium(certs: list[Path]) -> Iterator[Any]:
    """Start headless chromium trusting exactly the keys of certs; yield the Playwright browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p.chromium, certs)
        try:
            yield browser
        finally:
            browser.close()


def launch(browser_type: Any, certs: list[Path]) -> Any:
    """Launch Debian's chromium headless (no sandbox: the tests run as root), pinning the keys of certs."""
    pins = ",".join(spki_b64(c) for c in certs)
    return browser_type.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox", f"--ignore-certificate-errors-spki-list={pins}"]
    )


TIMINGS: dict[str, int] = {}  # NB: page path -> ms from request to the first byte of the response
CHECKED: list[str] = []  # NB: every page axe-core passed


class Tab:
    """One browser context (one person's cookies) with its page, watching for CSP violations and errors."""

    def __init__(self, browser: Any, lang: str = "nl") -> None:
        self.context = browser.new_context(viewport=VIEWPORT, locale="nl-NL" if lang == "nl" else "en-GB")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def _console(self, msg: Any) -> None:
        if msg.type == "error" and ("Content Security Policy" in msg.text or "Refused" in msg.text):
            self.problems.append(f"CSP: {msg.text}")

    def close(self) -> None:
        self.context.close()

    def goto(self, url: str) -> Any:
        """Open a page; fail on an HTTP error status."""
        r = self.page.goto(url)
        assert r is not None and r.status < 400, f"{url}: HTTP {r and r.status}"
        return r

    def check(self, name: str = "", *, context: str = "") -> None:
        """Run axe-core's WCAG 2.1 A/AA rules on the current page; fail listing every violation.

        Also fail on any CSP violation or script error seen so far; screenshot the page as name if asked.
        """
        TIMINGS[self.page.url.split("//", 1)[-1].split("/", 1)[-1].split("?")[0] or "/"] = self.page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n ? Math.round(n.responseStart - n.requestStart) : -1; }"
        )  # NB: time to first byte of the page: the server's rendering, measured, not asserted
        violations = axe(self.page)
        CHECKED.append(self.page.url)
        where = f"{context or self.page.url}"
        assert not violations, f"axe on {where}:\n" + "\n".join(violations)
        assert not self.problems, f"{where}: " + "; ".join(self.problems)
        assert self.page.locator("h1").count() == 1, f"{where}: not exactly one <h1>"
        if name:
            screenshot(self.page, name)


_used_steps: dict[str, int] = {}


def totp_code(secret: str) -> str:
    """A TOTP code not used before in this session (each step is accepted once; ±1 step allowed)."""
    now = int(time.time()) // 30
    step = max(now, _used_steps.get(secret, -1) + 1)
    while step > now + 1:  # NB: both usable steps spent: wait for the next one (a condition, not a fixed sleep)
        time.sleep(1)
        now = int(time.time()) // 30
    _used_steps[secret] = step
    return pyotp.TOTP(secret).at(step * 30)


def login(
    tab: Tab, url: str, user: dict[str, str], *, check: bool = False, keyboard: bool = False, shots: str = ""
) -> None:
    """Log in with name, password and, when the account has one, a TOTP code.

    check: axe-check each step; shots: screenshot them as <shots>login and <shots>login-totp.
    """
    page = tab.page
    tab.goto(url.rstrip("/") + "/login")
    if check:
        tab.check(f"{shots}login" if shots else "", context="login")
    if keyboard:
        tab_to(page, "input[name=name]")
        page.keyboard.type(user["name"])
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.name") == "password"
        page.keyboard.type(user["password"])
        with page.expect_navigation():
            page.keyboard.press("Enter")
    else:
        page.fill("input[name=name]", user["name"])
        page.fill("input[name=password]", user["password"])
        with page.expect_navigation():
            page.locator("form:has(input[name=password]) [type=submit]").click()
    if page.locator("input[name=code]").count():  # NB: the second step (its page may keep the /login address)
        if check:
            tab.check(f"{shots}login-totp" if shots else "", context="login/totp")
        assert user.get("totp"), f"{user['name']}: the page asks for a TOTP code but the account has none"
        if keyboard:
            tab_to(page, "input[name=code]")
            page.keyboard.type(totp_code(user["totp"]))
            with page.expect_navigation():
                page.keyboard.press("Enter")
        else:
            page.fill("input[name=code]", totp_code(user["totp"]))
            with page.expect_navigation():
                page.locator("form:has(input[name=code]) [type=submit]").click()
    assert "/login" not in page.url, f"{user['name']} not logged in: {page.url}\n{page.inner_text('main')[:500]}"


def tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching selector has the focus; assert its focus is visible."""
    target = page.locator(selector).first.element_handle()
    for i in range(limit):
        if i or not page.evaluate("t => document.activeElement === t", target):  # NB: autofocus is keyboard-ready
            page.keyboard.press("Tab")
        if page.evaluate("t => document.activeElement === t", target):
            assert_focus_visible(page)
            return
    pytest.fail(f"{selector} not reached with {limit} Tabs")


def assert_focus_visible(page: Any) -> None:
    """The focused element shows a focus indicator (an outline or a box shadow under :focus-visible)."""
    style = page.evaluate(
        """() => { const e = document.activeElement, s = getComputedStyle(e);
        return {fv: e.matches(':focus-visible'), outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
                shadow: s.boxShadow !== 'none', tag: e.tagName + (e.name ? '[' + e.name + ']' : '')}; }"""
    )
    assert style["fv"] and (style["outline"] or style["shadow"]), f"no visible focus on {style['tag']}: {style}"


_AXE_SRC: str | None = None


def axe(page: Any) -> list[str]:
    """Run axe-core (WCAG 2.0/2.1 A and AA) on the page; return one line per violating node."""
    global _AXE_SRC
    if _AXE_SRC is None:
        _AXE_SRC = AXE.read_text()
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate("src => { (0, eval)(src); }", _AXE_SRC)  # NB: via CDP: the page's CSP stays in force
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", WCAG
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> {n['target']}: {n.get('failureSummary', '')[:200]}"
        for v in result["violations"]
        for n in v["nodes"]
    ]


def screenshot(page: Any, name: str) -> None:
    """Write docs/img/web-<name>.png (1280×800) when WERKPLAATS_SCREENSHOTS=1; the default run writes none."""
    if os.environ.get("WERKPLAATS_SCREENSHOTS") == "1":
        assert re.fullmatch(r"[a-z0-9-]+", name)
        IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMG / f"web-{name}.png"))
