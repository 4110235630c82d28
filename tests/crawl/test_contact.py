"""A big Wikimedia crawl needs a contact in its User-Agent; a small one is warned."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sozy.config import CrawlSettings
from sozy.crawl.contact import (
    MAX_NAMES_WITHOUT_CONTACT,
    ContactMissing,
    check_contact,
    lacks_contact,
)
from sozy.crawl.plan import CrawlPlan
from sozy.crawl.runner import EXIT_USAGE, CrawlStartError

OURS = "SozyBot/0.1 (https://faces.example-lab.org/crawl; ops@example-lab.org)"


@pytest.mark.parametrize(
    ("agent", "lacking"),
    [
        (CrawlSettings().api_user_agent, True),  # the default's placeholder address
        ("SozyBot/0.1", True),
        ("SozyBot/0.1 (me@mail.example.com)", True),
        (OURS, False),
        ("SozyBot/0.1 (https://github.com/someone/sozy-crawl)", False),
        ("SozyBot/0.1 (someone@uni.edu)", False),
    ],
)
def test_what_counts_as_a_contact(agent: str, lacking: bool) -> None:
    assert lacks_contact(agent) is lacking


def _names(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("# people\n\n" + "".join(f"Person {i}\n" for i in range(n)))
    return path


def test_top_and_long_name_lists_refuse_to_start_and_say_how(tmp_path: Path) -> None:
    placeholder = CrawlSettings()
    for plan in (CrawlPlan(top=10), CrawlPlan(names_file=_names(tmp_path, MAX_NAMES_WITHOUT_CONTACT + 1))):
        with pytest.raises(ContactMissing) as info:
            check_contact(placeholder, plan)
        message = str(info.value)
        assert "sozy@example.org" in message
        assert "[crawl]" in message and "api_user_agent =" in message and "SOZY_CRAWL_API_USER_AGENT=" in message
    check_contact(CrawlSettings(api_user_agent=OURS), CrawlPlan(top=10))


def test_a_small_crawl_is_warned_and_others_are_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    placeholder = CrawlSettings()
    with caplog.at_level(logging.WARNING, logger="sozy.crawl"):
        check_contact(placeholder, CrawlPlan(names_file=_names(tmp_path, MAX_NAMES_WITHOUT_CONTACT)))
    assert [r.message for r in caplog.records if "no contact of yours" in r.message]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sozy.crawl"):
        check_contact(placeholder, CrawlPlan(url_lists=(tmp_path / "urls.txt",)))  # no Wikimedia lookups
    assert not caplog.records


async def test_run_crawl_refuses_before_opening_anything(tmp_path: Path, make_settings, crawl) -> None:
    settings = make_settings()
    with pytest.raises(CrawlStartError) as info:
        await crawl(settings, CrawlPlan(top=5))
    assert info.value.exit_code == EXIT_USAGE
    assert not Path(settings.data_dir).exists()
