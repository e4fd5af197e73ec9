"""Languages: Dutch by default, English on request; every string of the pages goes through gettext.

Message ids are English. Each area of the web app keeps its Dutch translations in its own catalog,
``locale/nl/LC_MESSAGES/<area>.po``; ``translations("nl")`` reads them all (Babel), merges them and
compiles the result in memory, so no binary catalog is committed. English is the message ids
themselves. The language is the ``lang`` cookie (set by the language switch, ``/lang/{code}``),
else Dutch.
"""

from __future__ import annotations

import functools
import gettext
import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from fastapi import Request

LANGS = ("nl", "en")
DEFAULT = "nl"
LOCALE_DIR = Path(__file__).parent / "locale"


def negotiate(request: Request) -> str:
    """The language of this request: the ``lang`` cookie when it is one of LANGS, else Dutch."""
    lang = request.cookies.get("lang", "")
    return lang if lang in LANGS else DEFAULT


def catalogs(lang: str) -> list[tuple[Path, Catalog]]:
    """Every catalog of a language, in file-name order (one per area of the web app)."""
    out = []
    for path in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            out.append((path, read_po(f, locale=lang)))
    return out


def merged(lang: str) -> Catalog:
    """One catalog of a language: the translated messages of all its .po files (fuzzy ones left out)."""
    cat = Catalog(locale=lang, fuzzy=False)
    for _path, part in catalogs(lang):
        for m in part:
            if m.id and m.string and not m.fuzzy:
                cat[m.id] = m
    return cat


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The translations of a language (English: the message ids themselves)."""
    if lang == "en" or not (LOCALE_DIR / lang).is_dir():
        return gettext.NullTranslations()
    buf = io.BytesIO()
    write_mo(buf, merged(lang))
    buf.seek(0)
    return gettext.GNUTranslations(buf)
