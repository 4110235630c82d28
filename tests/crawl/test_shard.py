"""--shard I/N: a deterministic split of names and URLs that is disjoint and covers the input."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sozy.crawl.shard import Shard, name_key, shard_of


@given(keys=st.lists(st.text(min_size=1, max_size=40), max_size=200), count=st.integers(1, 16))
@settings(max_examples=200, deadline=None)
def test_shards_are_disjoint_and_cover_the_input(keys: list[str], count: int) -> None:
    shards = [Shard(i, count) for i in range(1, count + 1)]
    parts = [{k for k in keys if s.owns(k)} for s in shards]
    assert set().union(*parts) == set(keys)
    assert sum(len(p) for p in parts) == len(set(keys))


@given(key=st.text(max_size=60), count=st.integers(1, 64))
def test_every_key_has_exactly_one_shard(key: str, count: int) -> None:
    owners = [i for i in range(1, count + 1) if Shard(i, count).owns(key)]
    assert owners == [shard_of(key, count)]


def test_the_split_is_stable_across_processes() -> None:
    """sha1, not Python's salted hash(): another machine computes the same split."""
    keys = [f"http://example.org/{i}.jpg" for i in range(50)] + ["barack obama", "q76"]
    here = [shard_of(k, 7) for k in keys]
    code = f"from sozy.crawl.shard import shard_of; print([shard_of(k, 7) for k in {keys!r}])"
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout
    assert str(here) == there.strip()


def test_split_is_roughly_even() -> None:
    counts = [0] * 4
    for i in range(4000):
        counts[shard_of(f"https://img.example/{i}.jpg", 4) - 1] += 1
    assert all(850 < c < 1150 for c in counts), counts


@pytest.mark.parametrize("spec, expected", [("1/4", Shard(1, 4)), (" 3 / 3 ", Shard(3, 3)), ("1/1", Shard(1, 1))])
def test_parse(spec: str, expected: Shard) -> None:
    assert Shard.parse(spec) == expected


@pytest.mark.parametrize("spec", ["0/4", "5/4", "1/0", "a/b", "1", "1/2/3", "-1/2", ""])
def test_parse_rejects_nonsense(spec: str) -> None:
    with pytest.raises(ValueError):
        Shard.parse(spec)


def test_each_shard_has_its_own_state_file() -> None:
    assert Shard(2, 8).state_file("crawl.sqlite") == "crawl-shard-2-of-8.sqlite"
    assert Shard(1, 2).state_file("state") == "state-shard-1-of-2"


def test_name_keys_ignore_case_and_spacing() -> None:
    assert name_key("  Barack   OBAMA ") == name_key("barack obama")
    assert name_key("Q76") == name_key("q76")
