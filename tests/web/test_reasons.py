"""A result's reasons for withholding are shown in the page's language; unknown shapes stay as they are."""

from __future__ import annotations

from werkplaats.result import REASONS, reason_text
from werkplaats.web.i18n import translations
from werkplaats.web.reasons import FOR, ROWS, WHOLE, translate

NL = translations("nl").gettext


def test_every_reason_template_has_a_dutch_text_with_its_placeholders() -> None:
    for template in (ROWS, WHOLE, FOR, *REASONS.values()):
        dutch = NL(template)
        assert dutch != template, template
        for field in ("{k}", "{km1}", "{reason}", "{names}"):
            assert (field in dutch) == (field in template), (template, dutch)


def test_reasons_as_the_executors_write_them_are_translated_with_their_threshold() -> None:
    assert translate("fewer than 10 rows", NL) == "minder dan 10 rijen"
    cell = f"{reason_text(3, 15)} for: som, gem; {reason_text(4, 15)} for: som"
    assert (
        translate(cell, NL)
        == "minder dan 15 bijdragers voor: som, gem; gedomineerd door de grootste bijdragers voor: som"
    )
    whole = "the whole result: " + reason_text(9, 10)
    assert translate(whole, NL) == (
        "het hele resultaat: een filter of koppeling in het plan verwijdert tussen 1 en 9 rijen (de complementregel)"
    )
    for code in REASONS:  # NB: every template, with a k of two digits, comes back in Dutch
        assert translate(reason_text(code, 11), NL) == NL(REASONS[code]).format(k=11, km1=10)


def test_english_and_unknown_reasons_are_unchanged() -> None:
    en = translations("en").gettext
    text = f"{reason_text(0, 10)} for: n"
    assert translate(text, en) == text
    assert translate("withheld by a rule added later", NL) == "withheld by a rule added later"
    assert translate("", NL) == ""
