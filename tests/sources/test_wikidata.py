"""WikidataNames: parsing the Wikidata / Commons / SPARQL answers, and lookups against the fakes."""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from PIL import Image

from sozy.fetch import WIKIMEDIA_MEDIA, Fetcher, FetchError
from sozy.sources import SourceError, WikidataNames
from sozy.sources.toppeople import Band, Row, parse_sparql_rows, top_people_query
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
    standard_thumb_width,
)
from tests.servers.wikimedia import FakeEntity, WikimediaServer, people_with_images

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
            {
                "id": "Q13133",
                "label": "Michelle Obama",
                "match": {"type": "label", "language": "en", "text": "Michelle Obama"},
            },
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
            "Q2": {
                "id": "Q2",
                "labels": {"fr": {"language": "fr", "value": "Chose"}},
                "claims": {"P31": [_statement("P31", {"entity-type": "item", "id": "Q4886"})]},
            },
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
    hits = [
        SearchHit("Q1", "Rose Leslie", "Rose Leslie"),
        SearchHit("Q2", "Rose Leslie", "Rose Leslie"),
        SearchHit("Q3", "Rose Leslie", "Rose Leslie"),
        SearchHit("Q4", "Rose Leslie Smith", "Rose Leslie Smith"),
    ]
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
        ("ßtraße.jpg", "File:ßtraße.jpg"),  # MediaWiki keeps ß: upper() would make it "SStraße"
        ("éclair.png", "File:Éclair.png"),
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
                    "pageid": 11,
                    "ns": 6,
                    "title": "File:A b.jpg",
                    "imagerepository": "local",
                    "imageinfo": [
                        {
                            "thumburl": "//upload.example.org/thumb/a/ab/A_b.jpg/1024px-A_b.jpg",
                            "thumbwidth": 1024,
                            "url": "//upload.example.org/a/ab/A_b.jpg",
                            "width": 4000,
                            "height": 3000,
                            "descriptionurl": "https://commons.example.org/wiki/File:A_b.jpg",
                            "mime": "image/jpeg",
                            "extmetadata": {
                                "LicenseShortName": {
                                    "value": "CC BY-SA 4.0",
                                    "source": "commons-desc-page",
                                    "hidden": "",
                                },
                                "Artist": {
                                    "value": '<a href="//x/User:Jo">Jo &amp; Co</a><br>Studio',
                                    "source": "commons-desc-page",
                                },
                            },
                        }
                    ],
                },
                "-1": {"ns": 6, "title": "File:Gone.jpg", "missing": "", "known": ""},
                "12": {
                    "pageid": 12,
                    "ns": 6,
                    "title": "File:Small.png",
                    "imageinfo": [{"url": "https://upload.example.org/Small.png", "width": 300, "mime": "image/png"}],
                },
                "13": {
                    "pageid": 13,
                    "ns": 6,
                    "title": "File:Huge.tif",
                    "imageinfo": [{"url": "https://upload.example.org/Huge.tif", "width": 9000}],
                },
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
    data = {
        "query": {
            "pages": [{"title": "File:X.jpg", "imageinfo": [{"thumburl": "https://u/x.jpg", "mime": "image/jpeg"}]}]
        }
    }
    assert parse_imageinfo(data, 800, "https://c/w/api.php")["File:X.jpg"].thumb_url == "https://u/x.jpg"


def test_parse_entities_follows_a_merged_item() -> None:
    data = {
        "entities": {
            "Q4000099": {
                "type": "item",
                "id": "Q4000002",
                "redirects": {"from": "Q4000099", "to": "Q4000002"},
                "labels": {"en": {"language": "en", "value": "Kit Harington"}},
                "claims": {"P31": [_statement("P31", {"entity-type": "item", "id": "Q5"})]},
            },
            "Q3": {"id": "Q3", "missing": ""},
        },
        "success": 1,
    }
    entities = parse_entities(data)
    # Found under the id asked for, and known by the id it was merged into.
    assert entities["Q4000099"] is entities["Q4000002"]
    assert entities["Q4000099"].id == "Q4000002" and entities["Q4000099"].is_human
    assert "Q3" not in entities
    assert choose_person("Q4000099", [SearchHit("Q4000099", None, None)], entities).id == "Q4000002"


@pytest.mark.parametrize(
    ("asked", "width"), [(1024, 960), (960, 960), (1279, 960), (1280, 1280), (10, 20), (5000, 3840)]
)
def test_standard_thumb_width_never_exceeds_the_width_asked(asked: int, width: int) -> None:
    assert standard_thumb_width(asked) == width


def test_parse_imageinfo_reads_the_reuse_terms() -> None:
    meta = {
        "LicenseShortName": {"value": "CC BY-SA 4.0"},
        "LicenseUrl": {"value": "//creativecommons.org/licenses/by-sa/4.0"},
        "Credit": {"value": '<a href="https://flickr.com/p/1">Flickr</a>'},
        "AttributionRequired": {"value": "true"},
        "Restrictions": {"value": "personality|trademarked"},
    }
    data = {
        "query": {
            "pages": [
                {
                    "title": "File:X.jpg",
                    "imageinfo": [{"thumburl": "https://u/x.jpg", "mime": "image/jpeg", "extmetadata": meta}],
                }
            ]
        }
    }
    f = parse_imageinfo(data, 960, "https://c/w/api.php")["File:X.jpg"]
    assert f.license_url == "https://creativecommons.org/licenses/by-sa/4.0"
    assert (f.attribution, f.credit, f.credit_line) == (None, "Flickr", "Flickr")
    assert f.attribution_required is True
    assert f.restrictions == ("personality", "trademarked")


def test_parse_category_members_continues() -> None:
    params = {"action": "query", "list": "categorymembers", "cmtitle": "Category:X"}
    page = parse_category_members(
        {
            "continue": {"cmcontinue": "file|4142|99", "continue": "-||"},
            "query": {"categorymembers": [{"pageid": 1, "ns": 6, "title": "File:One.jpg"}]},
        },
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


def test_top_people_query_starts_from_the_occupation_with_a_sitelinks_floor() -> None:
    query = top_people_query(["Q33999", "Q177220"], Band(40, 80), 1001)
    assert "VALUES ?occupation { wd:Q33999 wd:Q177220 }" in query
    # Truthy statements, and normal-rank ones beside a preferred one.
    assert "{ ?item wdt:P106 ?occupation . }" in query
    assert "?item p:P106 ?statement . ?statement ps:P106 ?occupation ; wikibase:rank wikibase:NormalRank" in query
    assert "?item wikibase:sitelinks ?sitelinks . hint:Prior hint:rangeSafe true ." in query
    assert "FILTER(?sitelinks >= 40 && ?sitelinks < 80)" in query
    assert "?item wdt:P31 wd:Q5" in query and "FILTER EXISTS { ?item wdt:P18 ?image . }" in query
    assert query.endswith("LIMIT 1001") and "OFFSET" not in query and "ORDER BY" not in query
    # The occupation comes first: the query starts from it, not from every human.
    assert query.index("VALUES ?occupation") < query.index("wdt:P31 wd:Q5")
    everyone = top_people_query([], Band(256), 11)
    assert "P106" not in everyone and "FILTER(?sitelinks >= 256)" in everyone
    cursor = top_people_query([], Band(12, 13, "http://www.wikidata.org/entity/Q9"), 50)
    assert 'FILTER(?sitelinks = 12 && STR(?item) > "http://www.wikidata.org/entity/Q9")' in cursor
    assert cursor.endswith("ORDER BY ?item\nLIMIT 50")


def test_parse_sparql_rows() -> None:
    data = {
        "head": {"vars": ["item", "sitelinks"]},
        "results": {
            "bindings": [
                {
                    "item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q76"},
                    "sitelinks": {
                        "datatype": "http://www.w3.org/2001/XMLSchema#integer",
                        "type": "literal",
                        "value": "330",
                    },
                },
                {"item": {"type": "literal", "value": "Q1"}},
                {"item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q6279"}},
            ]
        },
    }
    assert parse_sparql_rows(data) == [Row("Q76", 330), Row("Q6279", 0)]
    with pytest.raises(SourceError):
        parse_sparql_rows({"boolean": True})


# --- against the fake services -----------------------------------------------------------


def _names(server: WikimediaServer, *files: str, width: int = 960) -> list[str]:
    return [server.thumb_url(f, width) for f in files]


async def test_lookup_gives_commons_thumbnails_with_licence_and_author(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Barack Obama")
    # P18 first (its deprecated-rank file left out), then the category; the SVG
    # signature is no photo and the P18 file is not repeated.
    assert [c.image_url for c in found] == _names(
        wikimedia,
        "President Barack Obama.jpg",
        "Barack Obama 2012.jpg",
        "Barack Obama speaking.jpg",
        "Obama 2013 portrait.jpg",
        "Obama and Biden 2009.jpg",
    )
    assert {c.name for c in found} == {"Barack Obama"}
    assert {(c.source, c.person_id, c.fetch_policy) for c in found} == {("wikidata", "Q76", "wikimedia_media")}
    # His portrait (P18) is marked: consensus checks his other photos against it.
    assert [c.reference for c in found] == [True, False, False, False, False]
    first, _, speaking, *_ = found
    assert first.page_url == wikimedia.description_url("President Barack Obama.jpg")
    assert (first.license, first.license_url, first.attribution) == ("Public domain", None, "Pete Souza")
    assert (speaking.license, speaking.license_url, speaking.attribution) == (
        "CC BY 2.0",
        "https://creativecommons.org/licenses/by/2.0",
        "Gage Skidmore from Peoria, AZ",
    )


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
        ("kit_harington",),
        ("kit_harington",),
        ("kit_harington",),
        ("kit_harington", "rose_leslie"),
    ]


async def test_a_q_id_is_used_directly(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        found = await source.lookup("q6279")
    # The preferred-rank P18 comes before the normal one.
    assert [c.image_url for c in found] == _names(
        wikimedia,
        "Joe Biden presidential portrait.jpg",
        "Obama and Biden 2009.jpg",
        "Joe Biden 2013.jpg",
        "Obama, Biden and a staffer.jpg",
    )
    assert {c.name for c in found} == {"Joe Biden"}
    # Both P18 values are his references, the group photo too (its subject, if any, is decided per face).
    assert [c.reference for c in found] == [True, True, False, False]
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
    assert not any(c.reference for c in alex)  # no P18: a category is no portrait
    assert [(c.image_url, c.name) for c in lin] == [
        (wikimedia.thumb_url("Lin-Manuel Miranda.png", 960), "Lin-Manuel Miranda")
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
    imageinfo = next(r for r in wikimedia.requests_to("commons") if r.params.get("prop") == "imageinfo")
    assert imageinfo.params["iiurlwidth"] == "960"
    assert set(imageinfo.params["iiprop"].split("|")) >= {"url", "extmetadata", "size", "mime"}
    search = wikimedia.requests_to("wikidata")[0].params
    assert (search["language"], search["type"]) == ("en", "item")


async def test_an_api_error_raises_so_the_name_can_be_retried(wikimedia: WikimediaServer) -> None:
    wikimedia.wikidata_error = ("ratelimited", "You've exceeded your rate limit. Please wait some time.")
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        with pytest.raises(SourceError, match="ratelimited"):
            await WikidataNames(fetcher, settings).lookup("Joe Biden")


def _queries(server: WikimediaServer) -> list[str]:
    return [r.params["query"] for r in server.requests_to("sparql")]


async def test_top_people_pages_by_sitelinks_bands_without_offset(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        top = [qid async for qid in source.top_people(12, page_size=5, min_sitelinks=10)]
    assert top == people_with_images()[:12]
    assert top[:2] == ["Q76", "Q6279"]
    queries = _queries(wikimedia)
    assert len(queries) > 2
    for query in queries:
        assert "OFFSET" not in query and "hint:Prior hint:rangeSafe true" in query
        floor = re.search(r"\?sitelinks (>=|=) (\d+)", query)
        assert floor is not None and int(floor.group(2)) >= 10
    # Every answer fits a page: a band with more people than that was narrowed, never cut.
    assert wikimedia.traffic.peak["sparql"] == 1


async def test_top_people_by_occupation_reads_normal_rank_statements(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        footballers = [qid async for qid in source.top_people(1000, ["footballer"], page_size=4, min_sitelinks=10)]
        actors = [qid async for qid in source.top_people(1000, ["actor"], min_sitelinks=10)]
    assert footballers == people_with_images(["Q937857"])
    assert len(footballers) == 10
    assert actors == people_with_images(OCCUPATIONS["actor"])
    assert {"Q4000002", "Q4000003", "Q4000004"} <= set(actors) and "Q76" not in actors
    # A politician first (preferred rank) and an actor too (normal rank): wdt:P106 alone would miss him.
    assert "Q4000007" in actors
    assert "Q4000007" not in people_with_images(OCCUPATIONS["actor"], normal_rank=False)
    assert all("VALUES ?occupation" in q for q in _queries(wikimedia))


async def test_top_people_stops_at_the_floor(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        top = [q async for q in WikidataNames(fetcher, settings).top_people(1000, min_sitelinks=100)]
    assert top == people_with_images(floor=100)
    assert all(int(m) >= 100 for q in _queries(wikimedia) for m in re.findall(r"\?sitelinks >?= (\d+)", q))


async def test_a_query_that_times_out_is_narrowed_not_repeated(wikimedia: WikimediaServer) -> None:
    wikimedia.sparql_max_rows = 3  # any query gathering more rows runs out of time
    settings = wikimedia.settings(retries=3)
    async with Fetcher(settings) as fetcher:
        top = [q async for q in WikidataNames(fetcher, settings).top_people(20, page_size=10, min_sitelinks=10)]
        timed_out = fetcher.counters["http_5xx"]
    assert top == people_with_images()[:20]
    assert timed_out >= 1
    queries = _queries(wikimedia)
    assert len(queries) == len(set(queries))  # no query was asked twice
    assert wikimedia.traffic.peak["sparql"] == 1


async def test_a_429_from_the_query_service_is_waited_out(wikimedia: WikimediaServer) -> None:
    wikimedia.throttle_sparql(1)
    settings = wikimedia.settings(backoff_max_s=0.2)  # WDQS's own policy waits longer than that
    async with Fetcher(settings) as fetcher:
        top = [q async for q in WikidataNames(fetcher, settings).top_people(3, min_sitelinks=10)]
    assert top == people_with_images()[:3]
    first, second = [r for r in wikimedia.requests_to("sparql")][:2]
    assert first.params["query"] == second.params["query"]


async def test_an_unknown_occupation_fails_before_any_request(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        with pytest.raises(ValueError, match="astronaut"):
            [q async for q in WikidataNames(fetcher, settings).top_people(10, ["astronaut"])]
    assert wikimedia.requests == []


async def test_a_merged_q_id_finds_the_person_it_was_merged_into(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Q4000099")
    assert len(found) == 4
    assert {(c.name, c.person_id) for c in found} == {("Kit Harington", "Q4000002")}


async def test_maxlag_is_sent_and_a_lagged_answer_waited_out(wikimedia: WikimediaServer) -> None:
    wikimedia.lagged(2, retry_after=1)
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Joe Biden")
        waits = fetcher.counters["maxlag"]
    assert len(found) == 4 and waits == 2
    api = [r for r in wikimedia.requests if r.service in ("wikidata", "commons")]
    assert {r.params["maxlag"] for r in api} == {"5"}
    # The same search three times: twice told to wait, then answered.
    assert [r.params["action"] for r in api[:4]] == ["wbsearchentities"] * 3 + ["wbgetentities"]


async def test_an_api_that_stays_lagged_fails_the_name(wikimedia: WikimediaServer) -> None:
    wikimedia.lagged(100, retry_after=0)
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        with pytest.raises(SourceError) as info:
            await WikidataNames(fetcher, settings).lookup("Joe Biden")
    assert info.value.reason == "maxlag"


async def test_imageinfo_continue_is_followed(wikimedia: WikimediaServer) -> None:
    wikimedia.imageinfo_per_answer = 2
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Barack Obama")
    assert len(found) == 5
    infos = [r.params for r in wikimedia.requests_to("commons") if r.params.get("prop") == "imageinfo"]
    # Six files (the P18 photo, the category's other five), two per answer.
    assert len(infos) == 3 and "iicontinue" not in infos[0] and all("iicontinue" in p for p in infos[1:])


async def test_thumbnails_are_standard_widths_never_wider_than_asked(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings(thumb_width=1024)  # not a standard width: 960 is asked for
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Barack Obama")
        widths = []
        for candidate in found:
            body = (await fetcher.image(candidate.image_url, policy=WIKIMEDIA_MEDIA)).body
            with Image.open(io.BytesIO(body)) as img:
                widths.append(img.width)
    (imageinfo, *_) = [r for r in wikimedia.requests_to("commons") if r.params.get("prop") == "imageinfo"]
    assert imageinfo.params["iiurlwidth"] == "960"
    photos = [wikimedia.photo_of(c.image_url) for c in found]
    assert widths == [min(960, p.width) for p in photos]
    assert max(widths) == 960  # obama3.jpg is 1434 px wide: its thumbnail is exactly a standard width


async def test_attribution_falls_back_to_the_credit_line(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        (lin,) = await WikidataNames(fetcher, settings).lookup("Lin-Manuel Miranda")
    assert (lin.license, lin.license_url) == ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0")
    assert lin.attribution == "Flickr: Gage Skidmore"


async def test_one_identifying_agent_and_one_call_at_a_time_per_api(wikimedia: WikimediaServer) -> None:
    for service in ("wikidata", "commons"):
        wikimedia.traffic.delays[service] = 0.02
    settings = wikimedia.settings(api_user_agent="SozyTest/1.0 (https://sozy.test/ci; ci@sozy.test)")
    names = ["Barack Obama", "Joe Biden", "Kit Harington", "Rose Leslie", "Lin-Manuel Miranda", "Alex Lacamoire"]
    async with Fetcher(settings) as fetcher:
        source = WikidataNames(fetcher, settings)
        await asyncio.gather(*(source.lookup(n) for n in names))
    assert wikimedia.traffic.agents("wikidata", "commons") == {settings.api_user_agent}
    assert wikimedia.traffic.peak["wikidata"] == wikimedia.traffic.peak["commons"] == 1


async def test_top_people_walks_a_power_law_of_sitelinks_in_few_cheap_queries(wikimedia: WikimediaServer) -> None:
    # Sitelinks counts as they are on Wikidata: a few people with hundreds, ever more with fewer.
    people: list[FakeEntity] = []
    for sitelinks in range(10, 400):
        count = round(500 * (25 / sitelinks) ** 2 - 500 * (25 / (sitelinks + 1)) ** 2)
        for _ in range(count):
            people.append(
                FakeEntity(
                    f"Q{7_000_000 + len(people)}",
                    f"P{len(people)}",
                    images=("x.jpg",),
                    occupations=("Q33999",),
                    sitelinks=sitelinks,
                )
            )
    wikimedia.entities = {e.qid: e for e in people}
    # A query that must gather more than two pages of rows runs out of time.
    wikimedia.sparql_max_rows = 100
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        top = [
            q async for q in WikidataNames(fetcher, settings).top_people(500, ["actor"], page_size=50, min_sitelinks=10)
        ]
        timeouts = fetcher.counters["http_5xx"]
    expected = [e.qid for e in sorted(people, key=lambda e: (-e.sitelinks, "http://www.wikidata.org/entity/" + e.qid))]
    assert top == expected[:500]
    queries = _queries(wikimedia)
    assert len(queries) <= 40 and timeouts <= 2
    assert not any("OFFSET" in q for q in queries)


async def test_the_media_hosts_robots_txt_and_429s_apply(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings(backoff_max_s=2.0)
    async with Fetcher(settings) as fetcher:
        found = await WikidataNames(fetcher, settings).lookup("Kit Harington")
        wikimedia.media.throttle(1, retry_after=1)
        first = await fetcher.image(found[0].image_url, policy=WIKIMEDIA_MEDIA)  # after the 429's Retry-After
    wikimedia.media.robots_txt = "User-agent: SozyBot\nDisallow: /wikipedia/commons/thumb/\n"
    async with Fetcher(settings) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.image(found[0].image_url, policy=WIKIMEDIA_MEDIA)
    assert first.image_type == "jpeg"
    assert info.value.reason == "robots_txt"
    assert "/thumb/" in found[0].image_url
    downloads = [r for r in wikimedia.requests_to("upload") if "/thumb/" in r.path]
    assert len(downloads) == 2  # refused once, then fetched; never asked under the disallow
