"""Who the crawl says it is: Wikimedia blocks bots it cannot reach, so a big crawl needs a contact.

Wikimedia's User-Agent policy asks every bot for a User-Agent with a way to
reach its operator (a URL or an e-mail address), and blocks those without
one; its addresses are what get blocked. The default ``crawl.api_user_agent``
carries a placeholder address (``sozy@example.org``): fine for a try, not for
a crawl that makes tens of thousands of requests. A ``--top`` crawl, or a
``--names`` crawl of more than ``MAX_NAMES_WITHOUT_CONTACT`` names, refuses to
start until a contact of the operator's own is set; smaller crawls warn.
"""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path

from sozy.config import CrawlSettings

from .plan import CrawlPlan

log = logging.getLogger("sozy.crawl")

# More names than this is a crawl, not a try: it needs a real contact.
MAX_NAMES_WITHOUT_CONTACT = 300
# An address at RFC 2606's example domains reaches nobody (the default's is one).
_PLACEHOLDER = re.compile(r"@(?:[\w-]+\.)*example\.(?:org|com|net)\b", re.IGNORECASE)
_CONTACT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|https?://[^\s;)]+", re.IGNORECASE)
HOW_TO_SET = (
    "set your own in config/sozy.toml:\n"
    "    [crawl]\n"
    '    api_user_agent = "SozyBot/0.1 (https://your.site/about-the-crawl; you@your.site)"\n'
    "  or in the environment:\n"
    "    SOZY_CRAWL_API_USER_AGENT='SozyBot/0.1 (https://your.site/about-the-crawl; you@your.site)'"
)


class ContactMissing(Exception):
    """A big Wikimedia crawl without a way to reach its operator."""


def lacks_contact(agent: str) -> bool:
    """True when ``agent`` gives no way to reach its operator: no URL or e-mail address at all,
    or an e-mail address at a reserved example domain (the default's placeholder)."""
    return not _CONTACT.search(agent) or bool(_PLACEHOLDER.search(agent))


def check_contact(settings: CrawlSettings, plan: CrawlPlan) -> None:
    """Refuse a big Wikimedia crawl (``ContactMissing``) or warn about a small one, when
    ``crawl.api_user_agent`` has no contact of the operator's own."""
    if not (plan.top or plan.names_file) or not lacks_contact(settings.api_user_agent):
        return
    agent = settings.api_user_agent
    names = _count_names(plan.names_file, MAX_NAMES_WITHOUT_CONTACT + 1) if plan.names_file else 0
    if plan.top or names > MAX_NAMES_WITHOUT_CONTACT:
        what = f"--top {plan.top}" if plan.top else f"a crawl of more than {MAX_NAMES_WITHOUT_CONTACT} names"
        raise ContactMissing(
            f"crawl.api_user_agent has no contact of yours ({agent!r}); Wikimedia asks every bot for a way "
            f"to reach its operator and blocks those without one, so {what} will not start without it: " + HOW_TO_SET
        )
    log.warning(
        "crawl.api_user_agent has no contact of yours (%r): fine for a few names, but before a bigger crawl %s",
        agent,
        HOW_TO_SET,
    )


def _count_names(path: Path, stop_at: int) -> int:
    """Names in a --names file (blank lines and # comments aside), counting no further than ``stop_at``."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            names = (line for line in fh if line.strip() and not line.lstrip().startswith("#"))
            return sum(1 for _ in itertools.islice(names, stop_at))
    except OSError:
        return 0  # the crawl itself reports an unreadable file
