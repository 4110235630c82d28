"""The naming rule: who gets the name a source gave a photo."""

from __future__ import annotations

from sozy.crawl.naming import face_names
from sozy.records import Box


def box(side: int, x: int = 0) -> Box:
    return Box(x, 0, x + side, side)


def test_one_face_gets_the_name() -> None:
    assert face_names("Ann", [box(50)]) == ["Ann"]


def test_a_clear_subject_gets_the_name_and_the_background_does_not() -> None:
    # 100x100 vs 70x70: 10000 >= 2 * 4900
    assert face_names("Ann", [box(100), box(70, 200)]) == ["Ann", None]
    # order given does not matter: the largest is found
    assert face_names("Ann", [box(30, 300), box(70, 200), box(100)]) == [None, None, "Ann"]


def test_exactly_twice_the_area_is_enough() -> None:
    assert face_names("Ann", [Box(0, 0, 20, 10), Box(0, 0, 10, 10)]) == ["Ann", None]


def test_faces_of_similar_size_stay_unnamed() -> None:
    # 100x100 vs 80x80: 10000 < 2 * 6400
    assert face_names("Ann", [box(100), box(80, 200)]) == [None, None]


def test_no_name_or_no_faces() -> None:
    assert face_names(None, [box(50)]) == [None]
    assert face_names("", [box(50)]) == [None]
    assert face_names("Ann", []) == []


def test_the_subject_gets_the_sources_person_and_the_rest_nobody():
    from sozy.crawl.naming import face_people
    from sozy.records import Candidate

    boxes = [Box(0, 0, 100, 100), Box(200, 0, 240, 40)]
    folder = face_people(Candidate("file:///a.jpg", "folder", name="Lin-Manuel Miranda"), boxes)
    assert [(p.name, p.person_id, p.label) for p in folder] == [
        ("Lin-Manuel Miranda", "lin manuel miranda", "source"),
        (None, None, "none"),
    ]
    # A Q-id from the source is the identity; the source's label shows it.
    wikidata = face_people(Candidate("https://x/a.jpg", "wikidata", name="Barack Obama", person_id="Q76"), boxes[:1])
    assert [(p.name, p.person_id, p.label) for p in wikidata] == [("Barack Obama", "Q76", "source")]
    # No name, or one that is only punctuation: nobody.
    assert face_people(Candidate("https://x/b.jpg", "urls", name=" -- "), boxes[:1])[0].person_id is None
    assert face_people(Candidate("https://x/b.jpg", "urls"), boxes[:1])[0].label == "none"
