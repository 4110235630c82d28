"""WikidataNames: parsing the Wikidata / Commons / SPARQL answers, and lookups against the fakes."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from sozy.fetch import Fetcher
from sozy.sources import SourceError, WikidataNames
from sozy.sources.wikidata import (
    OCCUPATIONS,
    Entity,
    SearchHit,
    choose_person,
    file_title,
    occupation_ids,
    parse_category_members,
    parse_entities,
    parse_imageinfo,
    parse_search,
    parse_sparql_ids,
    top_people_query,
)
from tests.servers.wikimedia import WikimediaServer, people_with_images

# --- parsing ----------------------------------------------------------------------------


def _statement(prop: str, value: object, rank: str = "normal", snaktype: str = "value") -> dict:
    snak: dict = {"snaktype": snaktype, "property": prop}
    if snaktype == "value":
        snak["datavalue"] = {"value": value, "type": "string"}
    return {"mainsnak": snak, "type": "statement", "rank": rank}


def test_parse_search_keeps_the_api_order() -> None:
    data = {
        "searchinfo": {"search": "obama"},
        "search": [
            {"id": "Q76", "label": "Barack Obama", "match": {"type": "alias", "language": "en", "text": "Obama"}},
            {"id": "Q13133", "label": "Michelle Obama", "match": {"type": "label", "language": "en", "text": "Michelle Obama"}},
            {"id": "P18", "label": "image"},  # properties are not people
        ],
        "success": 1,
    }
    assert parse_search(data) == [
        SearchHit("Q76", "Barack Obama", "Obama"),
        SearchHit("Q13133", "Michelle Obama", "Michelle Obama"),
    ]


def test_an_api_error_object_raises_source_error() -> None:
    with pytest.raises(SourceError) as info:
        parse_search({"error": {"code": "ratelimited", "info": "slow down"}, "servedby": "mw1"})
    assert info.value.reason == "api_error"
    assert "ratelimited" in str(info.value)
    with pytest.raises(SourceError):
        parse_entities(["not", "an", "object"])


def test_parse_entities_reads_type_images_category_and_sitelinks() -> None:
    data = {
        "entities": {
            "Q1": {
                "id": "Q1",
                "labels": {"en": {"language": "en", "value": "Some Body"}},
                "claims": {
                    "P31": [_statement("P31", {"entity-type": "item", "numeric-id": 5})],
                    "P18": [
                        _statement("P18", "Old.jpg", "deprecated"),
                        _statement("P18", "Normal.jpg"),
                        _statement("P18", "Best.jpg", "preferred"),
                        _statement("P18", None, snaktype="novalue"),
                    ],
                    "P373": [_statement("P373", "Some Body")],
                },
                "sitelinks": {"enwiki": {"site": "enwiki", "title": "Some Body"}, "dewiki": {}},
            },
            "Q2": {"id": "Q2", "labels": {"fr": {"language": "fr", "value": "Chose"}},
                   "claims": {"P31": [_statement("P31", {"entity-type": "item", "id": "Q4886"})]}},
            "Q3": {"id": "Q3", "missing": ""},
        },
        "success": 1,
    }
    entities = parse_entities(data)
    assert set(entities) == {"Q1", "Q2"}
    assert entities["Q1"] == Entity("Q1", "Some Body", True, ("Best.jpg", "Normal.jpg"), "Some Body", 2)
    # No English label: any label beats none.
    assert entities["Q2"] == Entity("Q2", "Chose", False)


def test_choose_person_prefers_humans_exact_matches_then_sitelinks() -> None:
    hits = [SearchHit("Q1", "Rose Leslie", "Rose Leslie"), SearchHit("Q2", "Rose Leslie", "Rose Leslie"),
            SearchHit("Q3", "Rose Leslie", "Rose Leslie"), SearchHit("Q4", "Rose Leslie Smith", "Rose Leslie Smith")]
    entities = {
        "Q1": Entity("Q1", "Rose Leslie", is_human=False, sitelinks=500),  # a rose cultivar
        "Q2": Entity("Q2", "Rose Leslie", is_human=True, sitelinks=3),
        "Q3": Entity("Q3", "Rose Leslie", is_human=True, sitelinks=60),
        "Q4": Entity("Q4", "Rose Leslie Smith", is_human=True, sitelinks=900),  # not an exact match
    }
    assert choose_person("rose leslie", hits, entities).id == "Q3"
    assert choose_person("Rose Leslie", hits[:1], entities) is None
    assert choose_person("Rose Leslie", [], entities) is None


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("President_Barack_Obama.jpg", "File:President Barack Obama.jpg"),
        ("File:lower case.png", "File:Lower case.png"),
        ("Image:Old  style.jpg", "File:Old style.jpg"),
    ],
)
def test_file_title_normalises_like_mediawiki(raw: str, title: str) -> None:
    assert file_title(raw) == title


def test_parse_imageinfo_maps_normalised_titles_and_resolves_urls() -> None:
    data = {
        "batchcomplete": "",
        "query": {
            "normalized": [{"from": "File:A_b.jpg", "to": "File:A b.jpg"}],
            "pages": {
                "11": {
                    "pageid": 11, "ns": 6, "title": "File:A b.jpg", "imagerepository": "local",
                    "imageinfo": [{
                        "thumburl": "//upload.example.org/thumb/a/ab/A_b.jpg/1024px-A_b.jpg", "thumbwidth": 1024,
                        "url": "//upload.example.org/a/ab/A_b.jpg", "width": 4000, "height": 3000,
                        "descriptionurl": "https://commons.example.org/wiki/File:A_b.jpg",
                        "mime": "image/jpeg",
                        "extmetadata": {
                            "LicenseShortName": {"value": "CC BY-SA 4.0", "source": "commons-desc-page", "hidden": ""},
                            "Artist": {"value": '<a href="//x/User:Jo">Jo &amp; Co</a><br>Studio', "source": "commons-desc-page"},
                        },
                    }],
                },
                "-1": {"ns": 6, "title": "File:Gone.jpg", "missing": "", "known": ""},
                "12": {"pageid": 12, "ns": 6, "title": "File:Small.png",
                       "imageinfo": [{"url": "https://upload.example.org/Small.png", "width": 300, "mime": "image/png"}]},
                "13": {"pageid": 13, "ns": 6, "title": "File:Huge.tif",
                       "imageinfo": [{"url": "https://upload.example.org/Huge.tif", "width": 9000}]},
            },
        },
    }
    files = parse_imageinfo(data, 1024, "https://commons.example.org/w/api.php")
    a = files["File:A_b.jpg"]
    assert files["File:A b.jpg"] is a
    assert a.thumb_url == "https://upload.example.org/thumb/a/ab/A_b.jpg/1024px-A_b.jpg"
    assert a.page_url == "https://commons.example.org/wiki/File:A_b.jpg"
    assert (a.license, a.attribution) == ("CC BY-SA 4.0", "Jo & Co Studio")
    # No thumbnail asked for, but the original is small enough: the original.
    assert files["File:Small.png"].thumb_url == "https://upload.example.org/Small.png"
    # A big original without a thumbnail is never used: it would blow the width limit.
    assert "File:Huge.tif" not in files and "File:Gone.jpg" not in files


def test_parse_imageinfo_reads_formatversion_2_lists() -> None:
    data = {"query": {"pages": [{"title": "File:X.jpg", "imageinfo": [{"thumburl": "https://u/x.jpg", "mime": "image/jpeg"}]}]}}
    assert parse_imageinfo(data, 800, "https://c/w/api.php")["File:X.jpg"].thumb_url == "https://u/x.jpg"


def test_parse_category_members_continues() -> None:
    params = {"action": "query", "list": "categorymembers", "cmtitle": "Category:X"}
    page = parse_category_members(
        {"continue": {"cmcontinue": "file|4142|99", "continue": "-||"},
         "query": {"categorymembers": [{"pageid": 1, "ns": 6, "title": "File:One.jpg"}]}},
        params,
    )
    assert page.titles == ["File:One.jpg"]
    assert page.next_params == {**params, "cmcontinue": "file|4142|99", "continue": "-||"}
    last = parse_category_members({"batchcomplete": "", "query": {"categorymembers": []}}, params)
    assert last.titles == [] and last.next_params is None


def test_occupation_ids() -> None:
    assert occupation_ids(["footballer"]) == ["Q937857"]
    assert occupation_ids(["Actors", "singer"]) == [*OCCUPATIONS["actor"], "Q177220"]
    assert occupation_ids(["q42", "Q42"]) == ["Q42"]
    with pytest.raises(ValueError, match="unknown occupation 'astronaut'"):
        occupation_ids(["astronaut"])


def test_top_people_query_and_results() -> None:
    query = top_people_query(100, 200, ["Q33999", "Q177220"], min_sitelinks=10)
    assert "?item wdt:P31 wd:Q5" in query
    assert "FILTER EXISTS { ?item wdt:P18 ?image . }" in query
    assert "VALUES ?occupation { wd:Q33999 wd:Q177220 }" in query
    assert "FILTER(?sitelinks >= 10)" in query
    assert re.search(r"ORDER BY DESC\(\?sitelinks\) \?item\s+LIMIT 100\s+OFFSET 200$", query)
    assert "VALUES" not in top_people_query(10, 0)
    data = {
        "head": {"vars": ["item", "sitelinks"]},
        "results": {"bindings": [
            {"item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q76"},
             "sitelinks": {"datatype": "http://www.w3.org/2001/XMLSchema#integer", "type": "literal", "value": "330"}},
            {"item": {"type": "literal", "value": "Q1"}},
            {"item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q6279"}},
        ]},
    }
    assert parse_sparql_ids(data) == ["Q76", "Q6279"]
    with pytest.raises(SourceError):
        parse_sparql_ids({"boolean": True})


# --- against the fake services -----------------------------------------------------------


def _names(server: WikimediaServer, *files: str, width: int = 1024) -> list[str]:
    return [server.thumb_url(f, width) for f in files]


async def test_lookup_gives_commons_thumbnails_with_licence_and_author(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Barack Obama")
    # P18 first (its deprecated-rank file left out), then the category; the SVG
    # signature is no photo and the P18 file is not repeated.
    assert [c.image_url for c in found] == _names(
        wikimedia, "President Barack Obama.jpg", "Barack Obama 2012.jpg", "Barack Obama speaking.jpg",
        "Obama 2013 portrait.jpg", "Obama and Biden 2009.jpg",
    )
    assert {c.name for c in found} == {"Barack Obama"}
    assert {c.source for c in found} == {"wikidata"}
    first, _, speaking, *_ = found
    assert first.page_url == wikimedia.description_url("President Barack Obama.jpg")
    assert (first.license, first.attribution) == ("Public domain", "Pete Souza")
    assert (speaking.license, speaking.attribution) == ("CC BY 2.0", "Gage Skidmore from Peoria, AZ")


async def test_thumbnails_are_at_most_thumb_width(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings(thumb_width=500)
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Kit Harington")
        assert len(found) == 4
        for candidate in found:
            fetched = await fetcher.image(candidate.image_url)
            photo = wikimedia.photo_of(candidate.image_url)
            with Image.open(io.BytesIO(fetched.body)) as img:
                assert img.width == 500 < photo.width  # every Kit photo is wider than 500 px
                assert abs(img.height - photo.height * 500 / photo.width) <= 1
    assert {c.name for c in found} == {"Kit Harington"}
    assert [wikimedia.photo_of(c.image_url).people for c in found] == [
        ("kit_harington",), ("kit_harington",), ("kit_harington",), ("kit_harington", "rose_leslie")
    ]


async def test_a_q_id_is_used_directly(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        found = await source.lookup("q6279")
    # The preferred-rank P18 comes before the normal one.
    assert [c.image_url for c in found] == _names(
        wikimedia, "Joe Biden presidential portrait.jpg", "Obama and Biden 2009.jpg", "Joe Biden 2013.jpg",
        "Obama, Biden and a staffer.jpg",
    )
    assert {c.name for c in found} == {"Joe Biden"}
    # No search: the entity is fetched straight away.
    assert [(r.params["action"], r.params["ids"]) for r in wikimedia.requests_to("wikidata")] == [
        ("wbgetentities", "Q6279")
    ]


async def test_a_non_human_first_hit_is_skipped(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Rose Leslie")
    search, entities = wikimedia.requests_to("wikidata")
    assert search.params["action"] == "wbsearchentities"
    assert entities.params["ids"].split("|")[0] == "Q4000001"  # the rose cultivar ranks first
    assert [c.image_url for c in found] == _names(
        wikimedia, "Rose Leslie 2014.jpg", "Kit Harington and Rose Leslie.jpg", "Rose Leslie 2019.jpg"
    )
    assert {c.name for c in found} == {"Rose Leslie"}


async def test_photos_from_the_category_alone_and_png(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        alex = await source.lookup("Alex Lacamoire")
        lin = await source.lookup("Lin Manuel Miranda")  # an alias
    assert [c.image_url for c in alex] == _names(
        wikimedia, "Alex Lacamoire 2016.jpg", "Alex Lacamoire at the piano.jpg", "Alex Lacamoire.png"
    )
    assert [(c.image_url, c.name) for c in lin] == [
        (wikimedia.thumb_url("Lin-Manuel Miranda.png", 1024), "Lin-Manuel Miranda")
    ]


async def test_images_per_person_caps_the_lookup(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings(images_per_person=2)
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Obama")
    assert [c.image_url for c in found] == _names(wikimedia, "President Barack Obama.jpg", "Barack Obama 2012.jpg")
    category = wikimedia.requests_to("commons")[0]
    assert category.params["list"] == "categorymembers" and category.params["cmtype"] == "file"


@pytest.mark.parametrize("name", ["Nobody Atall", "Jane Noimage", "Q99999999", "   "])
async def test_unknown_or_photoless_names_give_nothing(wikimedia: WikimediaServer, name: str) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        assert await WikidataNames(fetcher, settings).lookup(name) == []
    assert wikimedia.requests_to("commons") == []


async def test_api_calls_identify_sozy_and_ask_json(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings(api_user_agent="SozyTest/1.0 (https://example.org/sozy; ops@example.org)")
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        await source.lookup("Joe Biden")
        [qid async for qid in source.top_people(3)]
    services = {r.service for r in wikimedia.requests}
    assert {"wikidata", "commons", "sparql"} <= services
    for request in wikimedia.requests:
        assert request.headers["User-Agent"] == settings.api_user_agent
        assert request.params["format"] == "json"
    imageinfo = [r for r in wikimedia.requests_to("commons") if r.params.get("prop") == "imageinfo"][0]
    assert imageinfo.params["iiurlwidth"] == "1024"
    assert set(imageinfo.params["iiprop"].split("|")) >= {"url", "extmetadata", "size", "mime"}
    search = wikimedia.requests_to("wikidata")[0].params
    assert (search["language"], search["type"]) == ("en", "item")


async def test_an_api_error_raises_so_the_name_can_be_retried(wikimedia: WikimediaServer) -> None:
    wikimedia.wikidata_error = ("maxlag", "Waiting for a database server: 7 seconds lagged.")
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        with pytest.raises(SourceError, match="maxlag"):
            await WikidataNames(fetcher, settings).lookup("Joe Biden")


async def test_top_people_pages_through_the_sparql_endpoint(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        top = [qid async for qid in source.top_people(12, page_size=5)]
    assert top == people_with_images()[:12]
    assert top[:2] == ["Q76", "Q6279"]
    pages = [re.findall(r"(LIMIT|OFFSET) (\d+)", r.params["query"]) for r in wikimedia.requests_to("sparql")]
    assert pages == [
        [("LIMIT", "5"), ("OFFSET", "0")], [("LIMIT", "5"), ("OFFSET", "5")], [("LIMIT", "2"), ("OFFSET", "10")]
    ]


async def test_top_people_by_occupation_stops_at_the_last_page(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        footballers = [qid async for qid in source.top_people(1000, ["footballer"], page_size=4)]
        actors = [qid async for qid in source.top_people(1000, ["actor"])]
    assert footballers == people_with_images(["Q937857"])
    assert len(footballers) == 10
    assert actors == people_with_images(OCCUPATIONS["actor"])
    assert {"Q4000002", "Q4000003", "Q4000004"} <= set(actors) and "Q76" not in actors
    # 10 footballers in pages of 4: 4 + 4 + 2, the short page ends it.
    assert len(wikimedia.requests_to("sparql")) == 3 + 1


async def test_an_unknown_occupation_fails_before_any_request(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        with pytest.raises(ValueError, match="astronaut"):
            [q async for q in WikidataNames(fetcher, settings).top_people(10, ["astronaut"])]
    assert wikimedia.requests == []

