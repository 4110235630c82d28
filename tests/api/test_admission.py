"""Admission: slots reserved before a body is read, refusals with an honest Retry-After,
and bodies that stop arriving cut off; the live tests are hostile clients on raw sockets."""

from __future__ import annotations

import re

import httpx
import pytest

from sozy.api.admission import Gate, engine_gate, upload_gate
from sozy.api.errors import ApiError

from .conftest import METRICS_KEY
from .rawhttp import connect, drip, read_response, wait_for


def test_retry_after_is_the_drain_time_from_service_time_and_workers():
    gate = engine_gate(limit=8, workers=2)
    # Eight photos, each 2 s of a worker, two workers: the queue drains in 8 s.
    for _ in range(10):
        for position in range(1, 9):
            # Joined at `position`, so it waited ceil(position / 2) - 1 rounds of 2 s, then ran 2 s.
            gate.observe(2.0 * -(-position // 2), position)
    assert gate.service_s == pytest.approx(2.0, rel=0.01)
    gate.pending = 8
    assert gate.retry_after() == 8


def test_a_queued_wait_is_not_mistaken_for_service_time():
    """The old estimate averaged waits that included queueing, and multiplied by the queue again."""
    gate = engine_gate(limit=32, workers=2)
    for _ in range(50):
        gate.observe(16.0, position=32)  # 16 rounds of 1 s each
    gate.pending = 32
    assert gate.service_s == pytest.approx(1.0, rel=0.01)
    assert gate.retry_after() == 16


def test_gate_refuses_beyond_its_limit_with_retry_after():
    gate = upload_gate(limit=1)
    with gate.slot(), pytest.raises(ApiError) as refused, gate.slot():
        pass
    assert refused.value.status == 503
    assert "uploads" in refused.value.message
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert gate.pending == 0
    assert Gate(limit=0).limit == 1


def _gauge(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}, timeout=30).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def _upload_head(length: int) -> bytes:
    return b"POST /v1/search HTTP/1.1\r\nHost: sozy\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % length


def test_a_stalled_upload_holds_its_slot_others_are_refused_and_it_times_out(guarded_server, faces_dir):
    """api.max_uploads = 1: while one body stalls, the next upload is refused at once with
    503 and Retry-After, without its body being read; the stalled one gets 408 after
    body_idle_timeout_s, and the slot is free again."""
    url = guarded_server.url
    photo = (faces_dir / "obama" / "obama.jpg").read_bytes()
    with connect(url) as stalled:
        stalled.sendall(_upload_head(len(photo)) + photo[: len(photo) // 2])
        wait_for(lambda: _gauge(url, "sozy_uploads_reading") == 1, "the stalled upload to hold its slot")
        with connect(url) as refused:
            refused.sendall(_upload_head(len(photo)) + photo)
            answer = read_response(refused)
        assert answer.status == 503
        assert b"uploads" in answer.body
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.headers["connection"] == "close"
        timed_out = read_response(stalled)
    assert timed_out.status == 408
    assert b"stopped arriving" in timed_out.body
    assert timed_out.headers["connection"] == "close"
    wait_for(lambda: _gauge(url, "sozy_uploads_reading") == 0, "the slot to be free")
    done = httpx.post(f"{url}/v1/search", content=photo, headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert done.status_code == 200


def test_a_body_dripping_one_byte_at_a_time_is_cut_off(guarded_server, faces_dir):
    """Never pausing long enough for the idle timeout, it still meets body_timeout_s."""
    photo = (faces_dir / "obama" / "obama.jpg").read_bytes()
    with connect(guarded_server.url) as sock:
        sock.sendall(_upload_head(len(photo)))
        # A byte every 0.25 s: 4 s of dripping is 16 bytes; 400 bytes would take 100 s.
        answer = drip(sock, photo, every_s=0.25, limit=400)
    assert answer is not None, "the server kept reading a dripping body"
    assert answer.status == 408
    assert b"took longer than 4 s" in answer.body


def test_the_engine_slot_is_reserved_before_the_body_is_read(guarded_server, faces_dir):
    """A search waiting for its body already counts at the engine's queue."""
    url = guarded_server.url
    photo = (faces_dir / "obama" / "obama.jpg").read_bytes()
    with connect(url) as stalled:
        stalled.sendall(_upload_head(len(photo)) + photo[:100])
        wait_for(lambda: _gauge(url, "sozy_engine_queue_depth") == 1, "the search to hold an engine slot")
        assert read_response(stalled).status == 408
    wait_for(lambda: _gauge(url, "sozy_engine_queue_depth") == 0, "the engine slot to be free")
