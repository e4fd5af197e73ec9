"""Every string of the web app has a Dutch translation; the catalogs agree; gettext works in the pages."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from markupsafe import Markup

from werkplaats.web import i18n
from werkplaats.web.render import environment

WEB = Path(i18n.__file__).parent
METHODS = [("templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}


def message_ids() -> dict[str, list[str]]:
    """Every message id of the templates and the web app's Python code, with where it is used."""
    found: dict[str, list[str]] = defaultdict(list)
    for filename, lineno, message, _comments, _ctx in extract_from_dir(WEB, METHODS, OPTIONS, keywords=KEYWORDS):
        for mid in message if isinstance(message, tuple) else (message,):
            if mid:  # NB: _(variable) gives no id; its values are marked with N_ where they are defined
                found[mid].append(f"{filename}:{lineno}")
    return found


def test_extraction_finds_the_templates_and_the_python_code() -> None:
    ids = message_ids()
    assert "Skip to content" in ids  # base.html
    assert "Page not found" in ids  # error.html
    assert "Audit trail" in ids  # public.py, marked with N_
    assert len(ids) > 50


def test_every_message_id_has_a_dutch_translation() -> None:
    nl = i18n.merged("nl")
    missing = {mid: where for mid, where in message_ids().items() if mid not in nl or not nl[mid].string}
    assert not missing, "no Dutch translation in locale/nl/LC_MESSAGES/*.po for:\n" + "\n".join(
        f"  {mid!r} ({', '.join(where[:3])})" for mid, where in sorted(missing.items())
    )


def test_no_message_id_is_translated_differently_in_two_catalogs() -> None:
    seen: dict[object, tuple[str, object]] = {}
    clashes = []
    for path, cat in i18n.catalogs("nl"):
        for m in cat:
            if not m.id:
                continue
            if m.id in seen and seen[m.id][1] != m.string:
                clashes.append(f"{m.id!r}: {seen[m.id][0]} {seen[m.id][1]!r} vs {path.name} {m.string!r}")
            seen.setdefault(m.id, (path.name, m.string))
    assert not clashes, "translated differently:\n" + "\n".join(clashes)


def test_catalogs_keep_the_placeholders_of_their_ids() -> None:
    bad = []
    for path, cat in i18n.catalogs("nl"):
        for m in cat:
            if not (m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string):
                continue
            if sorted(_placeholders(m.id)) != sorted(_placeholders(m.string)):
                bad.append(f"{path.name}: {m.id!r} -> {m.string!r}")
    assert not bad, "placeholders differ:\n" + "\n".join(bad)


def _placeholders(s: str) -> list[str]:
    return re.findall(r"%\(\w+\)s", s)


def test_dutch_is_compiled_in_memory_and_english_is_the_ids() -> None:
    assert i18n.translations("nl").gettext("Requests") == "Aanvragen"
    assert i18n.translations("en").gettext("Requests") == "Requests"
    assert i18n.translations("nl").gettext("an id nobody translated") == "an id nobody translated"
    assert not list(WEB.glob("locale/**/*.mo")), "no compiled catalog is committed"


def test_templates_format_and_escape_gettext_arguments() -> None:
    tpl = environment("nl").from_string('{{ _("Logged in as %(name)s", name=who) }}')
    assert tpl.render(who="<b>x</b>") == "Ingelogd als &lt;b&gt;x&lt;/b&gt;"
    tpl_en = environment("en").from_string('{{ _("Logged in as %(name)s", name=who) }}')
    assert tpl_en.render(who=Markup("ok")) == "Logged in as ok"
