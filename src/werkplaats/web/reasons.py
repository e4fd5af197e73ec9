"""A result's reasons for withholding, in the reader's language.

The executors write each cell's reason in English (`werkplaats.result`: ``"fewer than 10 rows"``, or
``REASONS`` templates followed by ``" for: n, som"``, or ``"the whole result: …"``). The pages show them
in the page's language: each template is its own message id (``fewer than {k} values …``), with a Dutch
text in ``locale/nl/LC_MESSAGES/reasons.po``. A reason of another shape is shown as it is.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from ..result import REASONS

ROWS = "fewer than {k} rows"  # NB: result.build_frame's words for the cell rule
WHOLE = "the whole result: {reason}"
FOR = "{reason} for: {names}"


@functools.cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Each English template (the cell rule and result.REASONS) as a pattern capturing k."""
    out = []
    for template in (ROWS, *REASONS.values()):
        rx = re.escape(template)
        for name in ("k", "km1"):
            field = re.escape("{" + name + "}")
            rx = rx.replace(field, f"(?P<{name}>\\d+)", 1).replace(field, f"(?P={name})")
        out.append((re.compile(rx), template))
    return tuple(out)


def _one(text: str, gettext: Callable[[str], str]) -> str | None:
    """Translate one reason (no 'whole result' prefix), with or without its 'for:' list; None if unknown."""
    head, sep, names = text.rpartition(" for: ")
    if sep and "; " in names:  # NB: a 'for:' list names columns; "; " starts the next reason
        return None
    if sep:
        inner = _one(head, gettext)
        return None if inner is None else gettext(FOR).format(reason=inner, names=names)
    for rx, template in _patterns():
        m = rx.fullmatch(text)
        if m:
            got = m.groupdict()
            k = int(got["k"]) if got.get("k") else int(got["km1"]) + 1 if got.get("km1") else 0  # NB: 0: no threshold
            return gettext(template).format(k=k, km1=k - 1)
    return None


def translate(reason: str, gettext: Callable[[str], str]) -> str:
    """Return a result's reason in the language of gettext (unchanged when its shape is unknown).

    Reasons are joined by "; ", which one template also contains: the longest run of parts that is a
    known reason is taken first.
    """
    if not reason:
        return reason
    prefix = WHOLE.split("{")[0]
    if reason.startswith(prefix):
        return gettext(WHOLE).format(reason=translate(reason[len(prefix) :], gettext))
    parts, out, i = reason.split("; "), [], 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            done = _one("; ".join(parts[i:j]), gettext)
            if done is not None:
                out.append(done)
                i = j
                break
        else:
            out.append(parts[i])
            i += 1
    return "; ".join(out)
