"""The web app's contract: a page needs a login, a role, and a POST needs the session's CSRF token."""

from __future__ import annotations

from .conftest import Web


def test_logged_in_session_is_recognised_and_anonymous_is_sent_to_login(web: Web) -> None:
    c = web.as_("analist")
    user = web.app.state.accounts.user_for(c.cookies.get("wp_session") or "")
    assert user is not None and user.name == "analist" and user.role == "scientist" and user.organisation == "ggd"
    assert web.app.state.accounts.user_for("not-a-token") is None
