"""User agents: rotating browser strings for image hosts, one honest string for APIs.

Browser strings come from ``fake-useragent``, whose 2.x releases ship their
data file (``browsers.jsonl``) and never touch the network, so this works
offline. Drawing from fake-useragent costs milliseconds per call (it filters
its whole table each time), so a pool is drawn once per process and requests
pick from it.
"""

from __future__ import annotations

import functools
import random

from fake_useragent import UserAgent

# Mainstream desktop browsers: what an ordinary visitor of an image host sends.
BROWSERS = ("Chrome", "Firefox", "Edge", "Safari")
POOL_SIZE = 48


@functools.cache
def browser_user_agents(size: int = POOL_SIZE) -> tuple[str, ...]:
    """Distinct browser User-Agent strings (from fake-useragent's bundled data)."""
    source = UserAgent(browsers=list(BROWSERS), platforms=["desktop"])
    drawn: dict[str, None] = {}
    for _ in range(size * 4):
        agent = source.random
        if _well_formed(agent):
            drawn[agent] = None
        if len(drawn) >= size:
            break
    return tuple(drawn) or (source.fallback,)


def _well_formed(agent: str) -> bool:
    # The data file holds a few oddities (a quoted string, for one); send none of them.
    return agent.startswith("Mozilla/5.0 (") and agent.isascii() and agent.isprintable() and '"' not in agent


class UserAgentPool:
    """Picks the User-Agent for each request.

    With ``rotate`` a random browser string per request; without, every request
    identifies itself with ``identity`` (the same string the API calls use).
    """

    def __init__(self, identity: str, *, rotate: bool = True, rng: random.Random | None = None) -> None:
        self.identity = identity
        self.browsers = browser_user_agents() if rotate else ()
        self._rng = rng or random.Random()

    def for_host(self) -> str:
        """A User-Agent for an ordinary host (image or page request)."""
        if not self.browsers:
            return self.identity
        return self._rng.choice(self.browsers)

    def for_api(self) -> str:
        """The identifying User-Agent (Wikimedia's API policy asks for contact info)."""
        return self.identity
