"""A resolver for tests: host names answer what the test says, and nothing else resolves."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class MapResolver(AbstractResolver):
    """DNS for tests: names map to address lists; each call takes the next answer when given several."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls.append(host)
        if host not in self.answers:
            raise OSError(socket.EAI_NONAME, f"{host} does not resolve")
        rounds = self.answers[host]
        addresses = rounds[min(len(self.calls_for(host)) - 1, len(rounds) - 1)]
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
            }
            for a in addresses
        ]

    def calls_for(self, host: str) -> list[str]:
        return [c for c in self.calls if c == host]

    async def close(self) -> None:
        pass
