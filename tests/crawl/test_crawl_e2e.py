"""End to end: a crawl of the local celebrity site, fake Wikidata/Commons and the hostile host.

The crawl runs for real (Fetcher over HTTP, dlib face engine, embedded Qdrant
store, SQLite state). What it stored is compared with what the servers are
known to serve: which photo each URL is, who is in it, how many faces dlib
finds in it (examples/faces/manifest.csv), and how each hostile route fails.
"""

from __future__ import annotations

import json
from collections import defaultdict
from hashlib import sha256
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from sozy.config import ApiSettings
from sozy.crawl.plan import CrawlPlan
from sozy.records import Box
from tests.servers.celebrity import PEOPLE, read_manifest
from tests.servers.wikimedia import CATEGORIES, ENTITIES

from .conftest import state_rows, stored_points

NAMES = [
    "Barack Obama",
    "Joe Biden",
    "Kit Harington",
    "Rose Leslie",
    "Lin-Manuel Miranda",
    "Alex Lacamoire",
    "Jane Noimage",
    "Nobody Atall",
]
FOLDER_OF = {name: folder for folder, name in PEOPLE.items()}

# Hostile routes, the outcome each must end with (status, reason), and the photo it serves.
OBAMA = "obama/obama.jpg"  # what the hostile host's redirect, 429 and wrong-type routes serve
HOSTILE: dict[str, tuple[str, str | None, str | None]] = {
    "/photo/biden/biden2.jpg?delay=0.3": ("done", None, "biden/biden2.jpg"),  # slow but within the timeouts
    "/hang": ("failed", "timeout", None),
    "/drip?every=0.4": ("failed", "timeout", None),
    "/status/404": ("failed", "http_404", None),
    "/status/500": ("failed", "http_5xx", None),
    "/flaky/always?fail=100": ("failed", "http_5xx", None),
    "/loop/a": ("failed", "redirect_limit", None),
    "/endless": ("skipped", "too_large", None),
    "/html-as-jpeg.jpg": ("skipped", "not_an_image", None),
    "/truncated.jpg": ("failed", "corrupt_image", None),
    "/cut-off.jpg": ("failed", "incomplete_body", None),
    "/bomb.png": ("skipped", "too_many_pixels", None),
    "/noai.jpg": ("skipped", "x_robots_tag", None),
    "/private/kit_harington/kit-harington1.jpg": ("skipped", "robots_txt", None),
    # obama/obama.jpg four ways: Wikidata's "President Barack Obama.jpg" is the same file
    # and named, so it owns the content and these are all duplicates.
    "/limited/once?fail=1&after=0.3": ("skipped", "duplicate_content", OBAMA),  # 429 + Retry-After first
    "/wrong-type.jpg": ("skipped", "duplicate_content", OBAMA),  # a JPEG sent as text/html
    "/chain/2": ("skipped", "duplicate_content", OBAMA),  # two redirects
    "/photo/obama/obama.jpg": ("skipped", "duplicate_content", OBAMA),
}


async def _bytes_of(urls: list[str]) -> dict[str, bytes]:
    async with aiohttp.ClientSession() as session:
        out = {}
        for url in urls:
            async with session.get(url) as resp:
                assert resp.status == 200, url
                out[url] = await resp.read()
        return out


def _areas_rule(boxes: list[Box]) -> int | None:
    """Index of the face the naming rule names, computed here from the stored boxes."""
    if len(boxes) == 1:
        return 0
    areas = sorted(((b.width * b.height, i) for i, b in enumerate(boxes)), reverse=True)
    return areas[0][1] if areas[0][0] >= 2 * areas[1][0] else None


@pytest.mark.slow
async def test_crawl_stores_exactly_the_expected_faces_and_accounts_for_every_url(
    tmp_path: Path,
    faces_dir: Path,
    site,
    wikimedia,
    hostile,
    make_settings,
    crawl,
    shared_embeddings,
) -> None:
    names_file = tmp_path / "names.txt"
    names_file.write_text("# people to crawl\n" + "\n".join(NAMES) + "\n\n")
    hostile_list = tmp_path / "hostile.txt"
    hostile_list.write_text("\n".join(hostile.url(p) for p in HOSTILE) + "\n")
    settings = make_settings(**wikimedia.overrides(), **{"crawl.page_depth": 2})
    plan = CrawlPlan(names_file=names_file, pages=(site.url("/"),), url_lists=(hostile_list,))

    result = await crawl(settings, plan)

    assert result.exit_code == 0
    rows = state_rows(settings)
    points = await stored_points(settings)
    manifest = {p.path: p for p in read_manifest(faces_dir)}

    # --- every URL has an outcome; the summary says the same as the state ----------------
    assert not [u for u, r in rows.items() if r.status == "pending"]
    summary = json.loads(Path(result.summary_path).read_text())
    assert summary == result.summary
    assert summary["status"] == "finished" and summary["exit_code"] == 0
    by_status: dict[str, int] = defaultdict(int)
    by_reason: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows.values():
        by_status[r.status] += 1
        if r.reason:
            by_reason[r.status][r.reason] += 1
    for status in ("done", "failed", "skipped"):
        assert summary["state"][status] == by_status[status]
    assert summary["state"]["failed_by_reason"] == by_reason["failed"]
    assert summary["state"]["skipped_by_reason"] == by_reason["skipped"]
    assert summary["run"]["discovered"] == len(rows)
    assert summary["store"]["faces"] == len(points)

    # --- where each URL comes from, and what it shows -----------------------------------
    photo_of: dict[str, str | None] = {}  # url → manifest path (None: no photo of a face)
    name_given: dict[str, str | None] = {}
    for url, exp in site.expected_images(depth=2).items():
        photo_of[url] = exp.photo.path if exp.photo else None
        name_given[url] = None
    people = {e.label: e for e in ENTITIES if e.label in NAMES and e.instance_of == "Q5"}
    wiki_files: dict[str, str] = {}  # file name → the name it was found under (first lookup wins)
    for name in NAMES:
        e = people.get(name)
        if e is None:
            continue
        for f in [*e.preferred_images, *e.images, *CATEGORIES.get(e.category or "", ())]:
            wiki_files.setdefault(f.replace("_", " "), name)
    for file_name, name in wiki_files.items():
        f = wikimedia.file(file_name)
        if f.photo is None:  # the SVG signature is not a photo
            continue
        url = wikimedia.thumb_url(file_name, settings.crawl.thumb_width)
        photo_of[url], name_given[url] = f.photo, name
    for route, (_, _, path) in HOSTILE.items():
        photo_of[hostile.url(route)], name_given[hostile.url(route)] = path, None
    assert set(rows) == set(photo_of), "the crawl saw exactly the URLs the sources offer"

    # --- hostile routes end as specified ------------------------------------------------------
    for route, (status, reason, _) in HOSTILE.items():
        row = rows[hostile.url(route)]
        assert (row.status, row.reason) == (status, reason), route
        if row.status == "failed":
            assert row.attempts == 1 and row.last_error
    # The 429 was retried after Retry-After; the robots-disallowed photo was never asked for.
    assert hostile.log.count("/limited/once") == 2
    assert hostile.log.count("/private/kit_harington/kit-harington1.jpg") == 0

    # --- the same bytes at several URLs: one owner, by rank (named first, then discovery order) --
    face_urls = [u for u, r in rows.items() if r.status in ("done", "skipped") and r.sha256]
    content = await _bytes_of(
        [u for u in face_urls if rows[u].reason != "duplicate_content"]
        + [u for u in face_urls if rows[u].reason == "duplicate_content"]
    )
    groups: dict[str, list[str]] = defaultdict(list)
    for url, data in content.items():
        assert rows[url].sha256 == sha256(data).hexdigest()
        groups[rows[url].sha256].append(url)
    for _sha, urls in groups.items():
        ranked = sorted(urls, key=lambda u: (rows[u].candidate.name is None, rows[u].seq))
        owner, copies = ranked[0], ranked[1:]
        assert rows[owner].status in ("done", "skipped") and rows[owner].reason != "duplicate_content", urls
        for copy in copies:
            assert (rows[copy].status, rows[copy].reason, rows[copy].duplicate_of) == (
                "skipped",
                "duplicate_content",
                owner,
            ), copy

    # --- decoys: fetched, analysed, no face -----------------------------------------------
    for url, path in photo_of.items():
        if path is None and url.startswith(site.base_url):  # the celebrity site's decoys
            assert (rows[url].status, rows[url].reason) == ("skipped", "no_face"), url

    # --- stored faces: exactly the expected ones, with the right names ----------------------
    by_url: dict[str, list] = defaultdict(list)
    for p in points:
        by_url[p.payload["image_url"]].append(p)
    assert len({p.id for p in points}) == len(points)
    done = {u for u, r in rows.items() if r.status == "done"}
    assert set(by_url) == done
    reference = {
        folder: shared_embeddings[f"{folder}/{path}"].faces[0].vector
        for folder, path in [
            ("obama", "obama.jpg"),
            ("biden", "biden.jpg"),
            ("kit_harington", "kit-harington1.jpg"),
            ("rose_leslie", "rose-leslie1.jpg"),
        ]
    }
    named_group_faces = 0
    for url in done:
        row, stored = rows[url], by_url[url]
        path = photo_of[url]
        assert path is not None, url
        photo = manifest[path]
        assert row.faces == len(stored) == photo.faces, url
        given = row.candidate.name
        assert given == name_given.get(url), url
        boxes = [Box.from_dict(p.payload["box"]) for p in stored]
        named_index = _areas_rule(boxes) if given else None
        for i, p in enumerate(stored):
            pl = p.payload
            assert pl["image_sha256"] == row.sha256 and pl["faces_in_image"] == photo.faces
            assert pl["source"] == row.candidate.source and pl["page_url"] == row.candidate.page_url
            assert pl["model"] == summary["engine"]["model"]
            if i == named_index:
                assert (pl["name"], pl["label"]) == (given, "source"), (url, i)
            else:  # nobody, or attached by consensus to who it clearly is (checked below)
                assert pl["label"] == ("consensus" if pl["name"] else "none"), (url, i)
            if pl["name"] and photo.faces > 1:
                # The named face in a group photo really is that person.
                distance = float(np.linalg.norm(p.vector - reference[FOLDER_OF[pl["name"]]]))
                assert distance < ApiSettings().same_person_threshold, (url, pl["name"], distance)
                named_group_faces += 1
        if given and photo.faces == 1:
            assert FOLDER_OF[given] in photo.people
    assert len(points) == sum(rows[u].faces for u in done)
    # Every named person with a photo got faces; the two with no photos gave lookups, no faces.
    assert {p.payload["name"] for p in points if p.payload["name"]} == set(NAMES) - {"Jane Noimage", "Nobody Atall"}
    assert summary["state"]["units"]["name"] == {"done": len(NAMES)}
