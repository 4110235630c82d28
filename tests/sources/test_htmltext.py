"""Text out of HTML fragments (Commons author fields)."""

from __future__ import annotations

from sozy.sources.htmltext import clean_text, strip_html


def test_strip_html() -> None:
    artist = '<bdi><a href="https://www.wikidata.org/wiki/Q1" title="x">Pete&nbsp;Souza</a></bdi><br/>White&#32;House'
    assert strip_html(artist) == "Pete Souza White House"  # no-break spaces too
    assert strip_html("<span></span>") is None
    assert strip_html(None) is None
    assert strip_html("plain &amp; simple") == "plain & simple"


def test_clean_text() -> None:
    assert clean_text("  a \n b  ") == "a b"
    assert clean_text("   ") is None
    assert clean_text(None) is None
