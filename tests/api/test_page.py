"""The web page in a real headless Chromium, against the real app on a real uvicorn (``live_server``).

Skipped when Playwright or Chromium is missing, unless SOZY_TEST_REQUIRE_BROWSER=1
(CI images that ship a browser), where a missing one fails. Screenshots go to
$SOZY_TEST_ARTIFACTS when it is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .index import HELD_OUT, LICENSE_URL

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SOZY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# dlib on a shared CPU: a search of a large group photo can take a while.
RESULT_TIMEOUT_MS = 90_000
GROUP = "group/obama-biden-and-one-more.jpg"


def _unavailable(reason: str) -> None:
    if os.environ.get("SOZY_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SOZY_TEST_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (set SOZY_CHROMIUM)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, live_server, request) -> Iterator[Any]:
    """A fresh desktop page on the live app; uncaught script errors fail the test."""
    viewport = getattr(request, "param", {"width": 1280, "height": 900})
    context = browser.new_context(viewport=viewport)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.goto(live_server.url + "/")
    yield opened
    screenshot(opened, request.node.name)
    context.close()
    assert not errors, f"uncaught script errors: {errors}"


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("SOZY_TEST_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"page-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"), full_page=True)


def upload(page: Any, name: str, data: bytes, mime: str) -> None:
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])


def wait_for_cards(page: Any, faces: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#faces .face').length === n"
        " && [...document.querySelectorAll('#faces .face')].every(f => f.querySelector('.card'))",
        arg=faces,
        timeout=RESULT_TIMEOUT_MS,
    )


def cards(page: Any) -> list[list[dict[str, Any]]]:
    """Each face's cards as the page shows them: name, similarity text, distance."""
    return page.eval_on_selector_all(
        "#faces .face",
        """faces => faces.map(f => [...f.querySelectorAll('.card')].map(c => ({
            name: c.querySelector('.name').textContent,
            pct: c.querySelector('.pct').textContent,
            distance: Number(c.dataset.distance),
            title: c.querySelector('.score').title,
        })))""",
    )


def search_json(live_server: Any, data: bytes) -> dict[str, Any]:
    response = httpx.post(
        f"{live_server.url}/v1/search", params={"k": 5}, files={"image": ("a.jpg", data, "image/jpeg")}, timeout=120
    )
    response.raise_for_status()
    return response.json()


def test_a_photo_shows_named_cards_with_distances(page, live_server, faces_dir):
    photo = (faces_dir / HELD_OUT).read_bytes()
    upload(page, "obama.jpg", photo, "image/jpeg")
    wait_for_cards(page, 1)
    (shown,) = cards(page)
    expected = search_json(live_server, photo)["faces"][0]["matches"]
    assert [c["name"].lower() for c in shown] == [m["name"].replace("_", " ").lower() for m in expected]
    assert page.locator(".face-title").first.text_content() == "You look most like Obama"
    assert page.locator(".face-sub").first.text_content() == "Same person: this face is very likely Obama."
    assert [c["distance"] for c in shown] == [m["distance"] for m in expected]
    assert shown[0]["name"].lower() == "obama"
    assert re.fullmatch(r"\d+% similar", shown[0]["pct"])
    assert shown[0]["title"] == f"L2 distance {expected[0]['distance']:.3f}"
    assert page.locator("#error").is_hidden()
    assert page.locator("#boxes .box").count() == 1


def test_every_card_links_its_author_and_licence(page, live_server, faces_dir):
    photo = (faces_dir / HELD_OUT).read_bytes()
    upload(page, "obama.jpg", photo, "image/jpeg")
    wait_for_cards(page, 1)
    expected = search_json(live_server, photo)["faces"][0]["matches"]
    credits = page.eval_on_selector_all(
        "#faces .card .license",
        """lines => lines.map(l => ({
            author: l.querySelector('a.author') && [l.querySelector('a.author').textContent,
                                                    l.querySelector('a.author').href],
            licence: l.querySelector('a.licence') && [l.querySelector('a.licence').textContent,
                                                      l.querySelector('a.licence').href,
                                                      l.querySelector('a.licence').rel],
        }))""",
    )
    assert len(credits) == len(expected)
    for shown, match in zip(credits, expected, strict=True):
        assert shown["author"] == [match["attribution"], match["page_url"]]
        assert shown["licence"] == [match["license"], LICENSE_URL, "license noopener noreferrer"]


def test_a_group_photo_gives_one_list_per_face(page, faces_dir):
    upload(page, "group.jpg", (faces_dir / GROUP).read_bytes(), "image/jpeg")
    wait_for_cards(page, 3)
    shown = cards(page)
    assert len(shown) == 3 and all(shown)
    assert page.locator("#boxes .box").count() == 3
    names = {face[0]["name"].lower() for face in shown}
    assert {"obama", "biden"} <= names
    # The bystander in the photo is nobody known: no card anywhere offers an unnamed face.
    assert all(card["name"] != "Unnamed face" for face in shown for card in face)
    assert page.locator("#faces .card.unnamed").count() == 0


def test_a_file_that_is_not_a_photo_gives_an_inline_error(page, faces_dir):
    upload(page, "notes.txt", b"shopping list: milk, eggs\n", "text/plain")
    page.wait_for_selector("#error", state="visible", timeout=RESULT_TIMEOUT_MS)
    assert page.locator("#error-title").text_content() == "Not a photo"
    assert page.locator("#error").get_attribute("role") == "alert"
    assert page.locator("#results").is_hidden() and page.locator("#picker").is_visible()
    # The page still works after the error.
    upload(page, "obama.jpg", (faces_dir / HELD_OUT).read_bytes(), "image/jpeg")
    wait_for_cards(page, 1)
    assert page.locator("#error").is_hidden()


@pytest.mark.parametrize("page", [{"width": 390, "height": 844}], indirect=True)
def test_a_phone_screen_has_no_horizontal_overflow(page, faces_dir):
    def overflow() -> int:
        return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")

    assert overflow() <= 0
    upload(page, "group.jpg", (faces_dir / GROUP).read_bytes(), "image/jpeg")
    wait_for_cards(page, 3)
    assert overflow() <= 0
    widest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('body *')].map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= 390 + 0.5
