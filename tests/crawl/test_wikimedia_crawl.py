"""A --names crawl against the Wikimedia stand-ins, as the real services behave, within their etiquette.

The stand-ins answer in the real JSON shapes (a merged Q-id among the names,
maxlag answers, standard thumbnail widths, imageinfo cut with ``continue``)
from two hosts: the APIs and a separate media host. What the crawl stored
is checked against the files it was given, and what the hosts saw against
Wikimedia's policies: one identifying (non-browser) User-Agent everywhere,
never more than 2 media downloads at once, each API called in series.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

from sozy.crawl.plan import CrawlPlan
from tests.servers.wikimedia import CATEGORIES, ENTITIES, REDIRECTS, WikimediaServer

from .conftest import state_rows, stored_points

AGENT = "SozyTest/1.0 (https://sozy.test/ci; ci@sozy.test)"
# Kit Harington by the id of an item merged into his.
NAMES = ["Barack Obama", "Joe Biden", "Q4000099", "Rose Leslie", "Lin-Manuel Miranda", "Alex Lacamoire"]


async def test_a_names_crawl_stores_every_persons_photos_with_licence_and_author_politely(
    tmp_path: Path, wikimedia: WikimediaServer, make_settings, crawl
) -> None:
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(NAMES) + "\n")
    # Time spent in every request, so a client that overlaps what it must not is caught doing it.
    wikimedia.traffic.delays.update(upload=0.05, wikidata=0.02, commons=0.02)
    wikimedia.lagged(2)  # the first two API calls are told the servers lag
    wikimedia.imageinfo_per_answer = 3
    settings = make_settings(
        **wikimedia.overrides(),
        **{
            "crawl.api_user_agent": AGENT,
            "crawl.per_host": 8,
            "crawl.concurrency": 16,
            # Thumbnails are rendered on request by the stand-in: leave room for a loaded machine.
            "crawl.read_timeout_s": 20.0,
            "crawl.total_timeout_s": 30.0,
        },
    )

    result = await crawl(settings, CrawlPlan(names_file=names_file))

    assert result.exit_code == 0
    rows = state_rows(settings)
    assert rows and not [(u, r.reason, r.last_error) for u, r in rows.items() if r.status in ("pending", "failed")]
    points = await stored_points(settings)

    # --- every person's photos, each with its licence and author -------------------------
    people = {e.qid: e for e in ENTITIES}
    expected: dict[str, set[str]] = defaultdict(set)  # person id → the photos Wikidata and Commons name
    file_at = {}
    for name in NAMES:
        qid = REDIRECTS.get(name, name)
        person = people.get(qid) or next(e for e in ENTITIES if e.label == name and e.instance_of == "Q5")
        for f in [*person.preferred_images, *person.images, *CATEGORIES.get(person.category or "", ())]:
            if wikimedia.file(f).photo is not None:
                url = wikimedia.thumb_url(f, settings.crawl.thumb_width)
                expected[person.qid].add(url)
                file_at[url] = wikimedia.file(f)
    found: dict[str, set[str]] = defaultdict(set)
    for url, row in rows.items():
        found[row.candidate.person_id].add(url)
        f = file_at[url]
        cand = row.candidate
        assert (cand.license, cand.license_url) == (f.license, f.license_url), url
        assert cand.attribution_required is (f.license_url is not None), url
        assert cand.restrictions == (f.restrictions or None), url
        assert cand.attribution, url
        assert cand.fetch_policy == "wikimedia_media"
    # Every photo named for its people; one in two people's lists is kept under the first
    # looked up. Kit Harington's are under his own id, found through the merged one.
    assert set(rows) == set().union(*expected.values())
    for person, urls in found.items():
        assert urls <= expected[person], person
    assert set(found) == set(expected)
    by_person: dict[str, int] = defaultdict(int)
    for point in points:
        payload = point.payload
        assert payload["license"] and payload["attribution"], payload["image_url"]
        cand = rows[payload["image_url"]].candidate
        assert payload["license_url"] == cand.license_url
        assert (payload["attribution_required"], payload["restrictions"]) == (
            cand.attribution_required,
            cand.restrictions,
        )
        if payload.get("name"):
            by_person[payload["person_id"]] += 1
    assert set(by_person) == set(expected), "every person has named faces stored"

    # --- what the hosts saw: Wikimedia's etiquette ---------------------------------------------
    traffic = wikimedia.traffic
    assert traffic.agents("wikidata", "commons", "upload", "robots") == {AGENT}
    assert len(traffic.to("upload")) >= len(rows)
    assert 1 <= traffic.peak["upload"] <= 2
    assert traffic.peak["wikidata"] == traffic.peak["commons"] == 1
    assert {r.params.get("maxlag") for r in traffic.requests if r.service in ("wikidata", "commons")} == {"5"}
    assert result.summary["fetch"].get("maxlag") == 2


async def test_a_photo_of_someone_else_in_a_persons_category_loses_their_name_to_their_portrait(
    wikimedia: WikimediaServer, make_settings, crawl, tmp_path: Path
) -> None:
    # Lin-Manuel Miranda: his portrait (P18) and, in his Commons category, a photo of Kit
    # Harington. Rose Leslie, with no portrait this time: her own photo and another of Kit's.
    miranda, leslie = wikimedia.entities["Q4000004"], wikimedia.entities["Q4000003"]
    wikimedia.entities["Q4000004"] = dataclasses.replace(miranda, category="Lin-Manuel Miranda")
    wikimedia.entities["Q4000003"] = dataclasses.replace(leslie, images=())
    wikimedia.categories["Lin-Manuel Miranda"] = ("Lin-Manuel Miranda.png", "Kit Harington at Comic-Con.jpg")
    wikimedia.categories["Rose Leslie"] = ("Rose Leslie 2019.jpg", "Kit Harington 2016.jpg")
    names_file = tmp_path / "names.txt"
    names_file.write_text("Lin-Manuel Miranda\nRose Leslie\n")
    settings = make_settings(**wikimedia.overrides(), **{"crawl.read_timeout_s": 20.0, "crawl.total_timeout_s": 30.0})

    result = await crawl(settings, CrawlPlan(names_file=names_file))

    assert result.exit_code == 0
    rows = state_rows(settings)
    width = settings.crawl.thumb_width
    portrait = wikimedia.thumb_url("Lin-Manuel Miranda.png", width)
    misfiled = wikimedia.thumb_url("Kit Harington at Comic-Con.jpg", width)
    unchecked = wikimedia.thumb_url("Kit Harington 2016.jpg", width)
    # The crawl state knows which photo is the portrait (it survives a resume).
    assert {u for u, r in rows.items() if r.candidate.reference} == {portrait}
    faces = {p.payload["image_url"]: p.payload for p in await stored_points(settings)}
    assert (faces[portrait]["person_id"], faces[portrait]["label"], faces[portrait]["reference"]) == (
        "Q4000004",
        "source",
        True,
    )
    # Two faces that disagree: his portrait decides, and Kit's face is not shown as him.
    # (Whichever was stored first: a stored face that loses its person loses the field.)
    assert faces[misfiled].get("person_id") != "Q4000004" and faces[misfiled]["label"] != "source"
    assert faces[misfiled]["reference"] is False
    assert result.summary["run"]["labels"]["rejected"] >= 1
    # Without a portrait, two faces that disagree leave nothing to decide by: both claims stand.
    assert faces[unchecked]["person_id"] == "Q4000003" and faces[unchecked]["label"] == "source"


async def test_top_with_the_search_engine_searches_labels_and_keeps_the_q_id(
    wikimedia: WikimediaServer, make_settings, crawl
) -> None:
    settings = make_settings(
        **wikimedia.overrides(),
        **{
            "crawl.api_user_agent": AGENT,
            "crawl.images_per_person": 2,
            "crawl.top_min_sitelinks": 200,
            "crawl.read_timeout_s": 20.0,
            "crawl.total_timeout_s": 30.0,
        },
    )

    result = await crawl(settings, CrawlPlan(top=2, search_engine=True))

    assert result.exit_code == 0
    # The engine is asked for people's names, never for Wikidata ids.
    assert sorted(r.params["q"] for r in wikimedia.requests_to("search")) == ["Barack Obama", "Joe Biden"]
    # Results the search found first (others are the Commons files Wikidata named already)
    # carry the person's label and Q-id.
    searched = [row for row in state_rows(settings).values() if row.candidate.source == "search"]
    assert searched
    assert {(row.candidate.name, row.candidate.person_id) for row in searched} <= {
        ("Barack Obama", "Q76"),
        ("Joe Biden", "Q6279"),
    }


async def test_a_search_page_robots_txt_forbids_is_said_once_at_the_start_and_in_the_summary(
    tmp_path: Path, wikimedia: WikimediaServer, make_settings, crawl, caplog
) -> None:
    wikimedia.robots_txt = "User-agent: *\nDisallow: /images/\n"
    names_file = tmp_path / "names.txt"
    names_file.write_text("Joe Biden\nRose Leslie\n")
    settings = make_settings(
        **wikimedia.overrides(),
        **{
            "crawl.api_user_agent": AGENT,
            "crawl.read_timeout_s": 20.0,
            "crawl.total_timeout_s": 30.0,
        },
    )

    with caplog.at_level("ERROR", logger="sozy.crawl"):
        result = await crawl(settings, CrawlPlan(names_file=names_file, search_engine=True))

    assert result.exit_code == 0
    assert wikimedia.requests_to("search") == []
    loud = [r for r in caplog.records if "IMAGE SEARCH IS OFF" in r.getMessage()]
    assert len(loud) == 1 and "robots.txt" in loud[0].getMessage()
    assert result.summary["discovery"]["search_disallowed_by_robots_txt"] == 1
    assert result.summary["state"]["units"]["search"] == {"pending": 2}
    assert result.summary["state"]["units"]["name"] == {"done": 2}  # Wikidata's lookups went ahead
    from sozy.crawl.summary import format_summary

    assert "IMAGE SEARCH DISALLOWED by the search page's robots.txt: 2 search lookup(s) not made" in (
        format_summary(result.summary)
    )
