"""The app around the endpoints: health, readiness, metrics, CORS, OpenAPI, pages, lifespan."""

from __future__ import annotations

import re

import httpx
from openapi_spec_validator import validate

from sozy.api import create_app
from sozy.api.openapi import openapi_schema
from sozy.config import Settings

from .conftest import base_settings
from .index import HELD_OUT


async def test_healthz_and_readyz(api_client):
    async with api_client() as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"engine": "ok", "store": "ok"}}


async def test_readyz_is_503_when_the_store_is_unusable(engine, tmp_path):
    class BrokenStore:
        backend = "embedded"

        async def count(self) -> int:
            raise OSError("disk went away")

        async def close(self) -> None:
            pass

    app = create_app(base_settings(str(tmp_path)), engine=engine, store=BrokenStore())  # type: ignore[arg-type]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"engine": "ok", "store": "failed: OSError"}
    assert ready.headers["Retry-After"]


async def test_metrics_count_requests_by_route_template_and_status(api_client, faces_dir):
    async with api_client(**{"api.rate_limit_per_minute": 2}) as client:
        await client.post("/v1/search", files={"image": ("a.jpg", (faces_dir / HELD_OUT).read_bytes(), "image/jpeg")})
        await client.get("/v1/faces/6f1d9a3e-5b1c-4c7e-9a52-3c0f5d7e8b21")
        await client.get("/v1/faces/6f1d9a3e-5b1c-4c7e-9a52-3c0f5d7e8b22")  # over the limit: 429
        await client.get("/no/such/page")
        await client.request("BREW", "/v1/search")
        text = (await client.get("/metrics")).text
    assert 'sozy_http_requests_total{method="POST",route="/v1/search",status="200"} 1.0' in text
    assert 'sozy_http_requests_total{method="GET",route="/v1/faces/{id}",status="404"} 1.0' in text
    assert 'sozy_http_requests_total{method="GET",route="/v1/faces/{id}",status="429"} 1.0' in text
    assert 'sozy_http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0' in text
    assert 'sozy_http_requests_total{method="OTHER",route="/v1/search",status="405"} 1.0' in text
    assert 'sozy_http_request_duration_seconds_count{method="POST",route="/v1/search",status="200"} 1.0' in text
    assert "sozy_embed_duration_seconds_count 1.0" in text
    assert 'sozy_store_duration_seconds_count{operation="search_people"} 1.0' in text
    assert 'sozy_store_duration_seconds_count{operation="get"} 1.0' in text
    assert re.search(r"^sozy_engine_queue_depth 0\.0$", text, re.M)
    assert re.search(r"^sozy_engine_in_flight \d", text, re.M)
    assert "python_gc" not in text  # the app's own registry, not the process-global one


async def test_two_apps_keep_separate_metrics(api_client):
    async with api_client() as first, api_client() as second:
        await first.get("/v1/stats")
        text = (await second.get("/metrics")).text
    assert 'route="/v1/stats"' not in text


async def test_cors(api_client):
    origin = "https://lookalike.example.org"
    async with api_client(**{"api.cors_origins": (origin,)}) as client:
        preflight = await client.options(
            "/v1/search",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        allowed = await client.get("/v1/stats", headers={"Origin": origin})
        other = await client.get("/v1/stats", headers={"Origin": "https://evil.example.com"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in other.headers
    async with api_client() as client:
        closed = await client.get("/v1/stats", headers={"Origin": origin})
    assert "access-control-allow-origin" not in closed.headers


def test_openapi_schema_is_valid_openapi_3():
    schema = openapi_schema(Settings())
    validate(schema)
    search = schema["paths"]["/v1/search"]["post"]
    assert {"200", "400", "413", "415", "422", "429", "503"} <= set(search["responses"])
    assert "σ(10 × (t − d))" in search["description"]


async def test_pages_are_self_contained(api_client):
    async with api_client() as client:
        index = await client.get("/")
        docs = await client.get("/docs")
        schema = await client.get("/openapi.json")
        assets = {}
        for html in (index.text, docs.text):
            for url in re.findall(r'(?:src|href)="([^"]+)"', html):
                assets[url] = await client.get(url) if url.startswith("/") else None
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert docs.status_code == 200 and schema.json()["openapi"].startswith("3.")
    # Every script, style and icon is served from here: nothing from a CDN.
    external = [url for url, response in assets.items() if response is None]
    assert external == []
    assert all(r.status_code == 200 for r in assets.values()), {u: r.status_code for u, r in assets.items()}
    assert {"/static/app.js", "/static/style.css", "/static/docs.js"} <= set(assets)
    for url in ("/static/app.js", "/static/docs.js", "/static/style.css"):
        assert not re.search(r"https?://(?!example\.org)", assets[url].text), url


async def test_lifespan_opens_and_closes_engine_and_store(tmp_path, index_records):
    """Without injected engine and store, the app opens both at startup and closes both at shutdown."""
    from sozy.store import open_store

    settings = base_settings(str(tmp_path))
    seeded = await open_store(settings)
    await seeded.upsert(index_records[:3])
    await seeded.close()
    app = create_app(settings)
    ctx = app.state.ctx
    async with app.router.lifespan_context(app):
        engine, store = ctx.engine, ctx.store
        assert engine is not None and store is not None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/v1/stats")).json()["faces"] == 3
            assert (await client.get("/readyz")).status_code == 200
        pids = engine.worker_pids
        assert len(pids) == 1
    assert ctx.engine is None and ctx.store is None
    assert engine.worker_pids == []
    # The store was released: it opens again in this process.
    reopened = await open_store(settings)
    assert await reopened.count() == 3
    await reopened.close()
