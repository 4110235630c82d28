"""User agents: rotating browser strings for hosts, the identifying one for APIs."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from sozy.fetch import Fetcher
from sozy.fetch.agents import UserAgentPool, browser_user_agents
from tests.servers.hostile import HostileServer


def test_browser_pool_comes_from_bundled_data() -> None:
    agents = browser_user_agents()
    assert len(agents) >= 10 and len(set(agents)) == len(agents)
    assert all(a.startswith("Mozilla/5.0") for a in agents)
    assert not any("Sozy" in a for a in agents)


def test_pool_without_rotation_identifies_itself() -> None:
    pool = UserAgentPool("SozyBot/0.1 (contact)", rotate=False)
    assert {pool.for_host() for _ in range(10)} == {"SozyBot/0.1 (contact)"}
    assert pool.for_api() == "SozyBot/0.1 (contact)"


async def test_images_rotate_browser_agents_apis_and_robots_identify(hostile: HostileServer, crawl_settings) -> None:
    settings = crawl_settings()
    async with Fetcher(settings) as fetcher:
        await asyncio.gather(*(fetcher.image(hostile.url(f"/photo/obama/obama.jpg?n={i}")) for i in range(40)))
        await fetcher.page(hostile.url("/page.html"))
        echoed = await fetcher.api_json(hostile.url("/api/echo"))
    image_agents = hostile.log.user_agents("/photo/")
    assert len(image_agents) == 40
    assert len(set(image_agents)) >= 8  # rotating, not one string
    assert set(image_agents) <= set(browser_user_agents())
    assert hostile.log.user_agents("/page.html")[0] in browser_user_agents()
    assert echoed["user_agent"] == settings.api_user_agent
    assert hostile.log.user_agents("/robots.txt") == [settings.api_user_agent]


async def test_rotation_off_sends_the_identifying_agent_everywhere(hostile: HostileServer, crawl_settings) -> None:
    settings = crawl_settings(rotate_user_agents=False)
    async with Fetcher(settings) as fetcher:
        for i in range(5):
            await fetcher.image(hostile.url(f"/photo/obama/obama.jpg?n={i}"))
    assert set(hostile.log.user_agents("/photo/")) == {settings.api_user_agent}


def test_browser_agents_need_no_network() -> None:
    """fake-useragent must work offline: draw a pool in a process where every socket fails."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse; socket.socket.connect_ex = refuse\n"
        "socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from sozy.fetch.agents import browser_user_agents\n"
        "agents = browser_user_agents()\n"
        "assert len(agents) >= 10, agents\n"
        "print(len(agents))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 10
