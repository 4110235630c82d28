"""srcset parsing: the largest candidate, commas inside URLs, odd spacing."""

from __future__ import annotations

import pytest

from sozy.sources.srcset import SrcsetCandidate, largest_url, parse_srcset


def test_width_descriptors() -> None:
    assert parse_srcset("a.jpg 320w, b.jpg 1280w,c.jpg 640w") == [
        SrcsetCandidate("a.jpg", 320),
        SrcsetCandidate("b.jpg", 1280),
        SrcsetCandidate("c.jpg", 640),
    ]
    assert largest_url("a.jpg 320w, b.jpg 1280w,c.jpg 640w") == "b.jpg"


def test_density_descriptors_and_the_implicit_1x() -> None:
    assert largest_url("small.jpg, big.jpg 2x, mid.jpg 1.5x") == "big.jpg"
    assert parse_srcset("only.jpg")[0].density == 1.0


def test_commas_inside_urls_and_whitespace() -> None:
    value = "\n  https://cdn.example.org/w_400,h_300/x.jpg 400w,\n\thttps://cdn.example.org/w_800,h_600/x.jpg 800w  "
    assert largest_url(value) == "https://cdn.example.org/w_800,h_600/x.jpg"
    # A URL ending in commas has no descriptors: the commas separate.
    assert [c.url for c in parse_srcset("a.jpg,,, b.jpg 2x")] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize("value", ["", "  ,  ", "a.jpg 10q"])
def test_nothing_usable(value: str) -> None:
    assert largest_url(value) is None


def test_width_wins_over_density_and_height_is_ignored() -> None:
    assert largest_url("a.jpg 3x, b.jpg 100w 80h, c.jpg 50w") == "b.jpg"
