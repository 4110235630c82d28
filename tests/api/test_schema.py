"""Schemathesis against the OpenAPI schema on a live server: responses match the schema, never a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from sozy.api.openapi import openapi_schema
from sozy.config import Settings

from .conftest import ADMIN_KEY

FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection"}

# The schema the live server serves (same settings that shape it); requests go to the live server.
schema = schemathesis.openapi.from_dict(openapi_schema(Settings().replace(**{"api.admin_key": ADMIN_KEY})))


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_matches_its_schema(case, live_server):
    # Negative cases make up headers, which may name a framing header (hypothesis draws strings from
    # the code's constants): a bad one is refused by uvicorn's HTTP parser, in plain text, before the
    # app. The client sets framing; tests/api/test_framing.py sends hostile framing on purpose.
    for name in [n for n in case.headers or {} if n.lower() in FRAMING_HEADERS]:
        del case.headers[name]
    # Every built-in check except "schema-valid data must be accepted": a schema-valid
    # image (a 1×1 PNG, random base64) is still refused with 415 or 422 when it holds no face.
    case.call_and_validate(
        base_url=live_server.url, timeout=60, excluded_checks=[schemathesis.checks.positive_data_acceptance]
    )


def test_served_schema_is_the_one_tested(live_server):
    import httpx

    served = httpx.get(f"{live_server.url}/openapi.json").json()
    assert served["paths"].keys() == schema.raw_schema["paths"].keys()
