"""The OpenAPI 3 document served at ``/openapi.json``: its operations, written here, and the
schemas of every JSON body, generated from the types the handlers build (``sozy.api.schemas``).

Tests validate real responses against it (schemathesis), so it cannot drift
from what the endpoints return without a test failing.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from sozy import __version__ as _package_version
from sozy.api import schemas
from sozy.api.schemas import SIMILARITY_FORMULA
from sozy.api.search import BOOLEANS, DEFAULT_K, DEFAULT_PER_PERSON, FACE_MODES, MAX_FACES, MAX_K, MAX_PER_PERSON
from sozy.config import Settings
from sozy.store.selectors import DELETE_FIELDS

_REF_TEMPLATE = "#/components/schemas/{model}"
# What GenerateJsonSchema asks about a field's title (pydantic's own alias is private).
_Field = (
    core_schema.CoreSchema
    | core_schema.ModelField
    | core_schema.DataclassField
    | core_schema.TypedDictField
    | core_schema.ComputedField
)


class OpenApi30Schema(GenerateJsonSchema):
    """JSON Schema as OpenAPI 3.0 writes it: 3.0 has no null type, so a nullable value says
    ``nullable: true``; and no titles made up from field names."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return {**self.generate_inner(schema["schema"]), "nullable": True}

    def field_title_should_be_set(self, schema: _Field) -> bool:
        return False


@cache
def _component_schemas() -> dict[str, Any]:
    modes: list[tuple[tuple[type, ...], JsonSchemaMode]] = [
        (schemas.RESPONSES, "serialization"),
        (schemas.REQUESTS, "validation"),
    ]
    inputs = [(t.__name__, mode, TypeAdapter[Any](t)) for types, mode in modes for t in types]
    _, definitions = TypeAdapter.json_schemas(inputs, ref_template=_REF_TEMPLATE, schema_generator=OpenApi30Schema)
    return dict(definitions["$defs"])


def component_schemas(settings: Settings) -> dict[str, Any]:
    """Every JSON body's schema, by name, as ``#/components/schemas`` holds them."""
    components = copy.deepcopy(_component_schemas())
    same_person = components["Match"]["properties"]["same_person"]
    same_person["description"] += f" (now {settings.api.same_person_threshold})."
    return components


def _ref(model: type) -> dict[str, str]:
    return {"$ref": _REF_TEMPLATE.format(model=model.__name__)}


def _json(model: type) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _error_response(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": _json(schemas.Error),
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}}
        }
    return response


_RATE_LIMITED = _error_response("Too many requests from this client address (per-client token bucket).", True)
_NOT_READY = _error_response("The engine or store is not running yet, or the server is overloaded.", True)


# What each of the store's delete selectors (DELETE_FIELDS) takes down.
_TAKEDOWN_SELECTORS = {
    "image_url": "Delete every face from this photo URL.",
    "page_url": "Delete every face found on this page.",
    "name": "Take a person down: every face of the identity this name (any spelling, or the "
    "Wikidata label) means, faces that are plainly them in group photos, and new faces of them.",
    "person_id": "Take a person down by identity (a Wikidata Q-id, or the key of a name).",
    "source": "Delete every face from this source.",
}


def _search_operation(settings: Settings) -> dict[str, Any]:
    api = settings.api
    return {
        "operationId": "search",
        "summary": "Find the people who look most like each face in a photo",
        "description": (
            'Send the photo as multipart/form-data (field `image`), as JSON `{"image_base64": ...}` '
            '(a data: URL prefix is accepted) or `{"image_url": ...}`, or as the raw body with an image/* '
            f"Content-Type. Photos over {api.max_upload_bytes} bytes are refused (413) while the body streams in. "
            "The photo is never stored or logged. Each face found (largest first, at most "
            f"{MAX_FACES}) gets the nearest distinct people, each once (by person_id), every one a named "
            "person; faces of nobody known (bystanders in group photos) are left out unless unnamed=true. "
            "Matches are grouped by person, people ordered by their nearest face. " + SIMILARITY_FORMULA
        ),
        "parameters": [
            {
                "name": "k",
                "in": "query",
                "description": "How many distinct people per face.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": DEFAULT_K},
            },
            {
                "name": "per_person",
                "in": "query",
                "description": "Faces shown per person.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PERSON, "default": DEFAULT_PER_PERSON},
            },
            {
                "name": "faces",
                "in": "query",
                "description": "Search every face, or only the largest.",
                "schema": {"type": "string", "enum": list(FACE_MODES), "default": "all"},
            },
            {
                "name": "unnamed",
                "in": "query",
                "description": "Also offer faces of nobody known, each as its own match, marked unnamed: true.",
                "schema": {"type": "string", "enum": list(BOOLEANS), "default": "false"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": _ref(schemas.ImageUpload)},
                "application/json": {"schema": {"oneOf": [_ref(schemas.Base64Image), _ref(schemas.UrlImage)]}},
                "image/*": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": {
                "description": "One result list per face found (the largest 20, or 1 with faces=largest).",
                "content": _json(schemas.SearchResult),
            },
            "400": _error_response(
                "Bad parameters or body: bad_parameter, bad_json, bad_base64, bad_multipart, missing_image, "
                "empty_image, bad_url, blocked_address (image_url points into a private network), fetch_failed, "
                "fetch_timeout, redirect_limit."
            ),
            "408": _error_response(
                "The body stopped arriving (api.body_idle_timeout_s) or took too long (api.body_timeout_s): "
                "body_timeout; the connection is closed."
            ),
            "413": _error_response(
                "The photo is too large in bytes (too_large), or in pixels or the memory decoding it would need "
                "(too_many_pixels)."
            ),
            "415": _error_response("Not a usable photo: not_an_image, corrupt_image, or an unsupported Content-Type."),
            "422": _error_response("No face was found in the photo (no_face)."),
            "429": _error_response(
                "Too many requests from your address (rate_limited), or too many of your image_url fetches "
                "running (too_many_fetches); see Retry-After.",
                True,
            ),
            "503": _error_response(
                "Overloaded (the face engine's queue or the upload slots are full) or not ready; see Retry-After.",
                True,
            ),
        },
    }


def openapi_schema(settings: Settings) -> dict[str, Any]:
    """The full OpenAPI 3.0 document for an app built with ``settings``."""
    api = settings.api
    takedown_params = [
        {
            "name": name,
            "in": "query",
            "description": _TAKEDOWN_SELECTORS[name],
            "schema": {"type": "string", "minLength": 1},
        }
        for name in DELETE_FIELDS
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Sozy lookalike search",
            "version": _package_version,
            "description": (
                "Upload a photo, get the people who look most like each face in it. Every error is JSON "
                '`{"error": {"code", "message"}}`. Uploaded photos are never written to disk or logged. '
                f"Rate limit: {api.rate_limit_per_minute or 'no'} requests per minute per client address "
                "on /v1/ routes."
            ),
            "license": {"name": "MIT"},
        },
        "paths": {
            "/v1/search": {"post": _search_operation(settings)},
            "/v1/faces/{id}": {
                "get": {
                    "operationId": "getFace",
                    "summary": "A stored face and where it came from",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {
                            "description": "The stored face.",
                            "content": _json(schemas.StoredFace),
                        },
                        "404": _error_response("No stored face has this id."),
                        "429": _RATE_LIMITED,
                        "503": _NOT_READY,
                    },
                }
            },
            "/thumbnails/{id}.jpg": {
                "get": {
                    "operationId": "getThumbnail",
                    "summary": "A stored face's crop (JPEG), when the crawler wrote one (crawl.thumbnails)",
                    "description": (
                        "Results give it as `thumbnail_url` (`/thumbnails/<face id>.jpg`, relative to the API)."
                    ),
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {
                            "description": "The crop, cacheable for an hour (ETag).",
                            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                        },
                        "404": _error_response("No thumbnail has this id."),
                    },
                }
            },
            "/v1/faces": {
                "delete": {
                    "operationId": "takedown",
                    "summary": "Takedown: delete stored faces by photo URL, page URL or name (admin key only)",
                    "description": (
                        "Needs `Authorization: Bearer <api.admin_key>`. Without a configured admin key the route "
                        "is off and answers 404. The deleted faces' thumbnail files are removed too. The takedown is "
                        "recorded: the store refuses matching faces from then on and crawlers skip them "
                        "(`python -m sozy.store takedowns` lists takedowns, `lift` takes one back)."
                    ),
                    "security": [{"adminKey": []}],
                    "parameters": takedown_params,
                    "responses": {
                        "200": {
                            "description": "How many faces were deleted.",
                            "content": _json(schemas.Takedown),
                        },
                        "400": _error_response("No selector given, or an empty one."),
                        "401": _error_response("Missing or wrong admin key."),
                        "404": _error_response("Takedown is off: no admin key is configured."),
                        "429": _RATE_LIMITED,
                        "503": _NOT_READY,
                    },
                }
            },
            "/v1/stats": {
                "get": {
                    "operationId": "stats",
                    "summary": "How many faces and people are indexed, with which model and store",
                    "responses": {
                        "200": {
                            "description": "Index statistics (cached for a few seconds).",
                            "content": _json(schemas.Stats),
                        },
                        "429": _RATE_LIMITED,
                        "503": _NOT_READY,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers",
                    "responses": {
                        "200": {
                            "description": "Alive.",
                            "content": _json(schemas.Health),
                        }
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: the engine embeds and the store answers",
                    "responses": {
                        "200": {
                            "description": "Ready to search.",
                            "content": _json(schemas.Ready),
                        },
                        "503": {
                            "description": "Not ready; the checks say why.",
                            "headers": {"Retry-After": {"schema": {"type": "string"}}},
                            "content": _json(schemas.Ready),
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": component_schemas(settings),
            "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}},
        },
    }
