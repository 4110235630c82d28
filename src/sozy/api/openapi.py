"""The OpenAPI 3 description served at ``/openapi.json``, written by hand to match the handlers.

Tests validate real responses against it (schemathesis), so it cannot drift
from what the endpoints return without a test failing.
"""

from __future__ import annotations

from typing import Any

from sozy import __version__ as _package_version
from sozy.api.results import SIMILARITY_FORMULA
from sozy.api.search import DEFAULT_K, DEFAULT_PER_PERSON, MAX_FACES, MAX_K, MAX_PER_PERSON
from sozy.config import Settings


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _error_response(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}}
        }
    return response


_RATE_LIMITED = _error_response("Too many requests from this client address (per-client token bucket).", True)
_NOT_READY = _error_response("The engine or store is not running yet, or the server is overloaded.", True)
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

_BOX = {
    "type": "object",
    "description": "A face box in the photo's pixels; right and bottom are exclusive.",
    "required": ["left", "top", "right", "bottom"],
    "properties": {k: {"type": "integer"} for k in ("left", "top", "right", "bottom")},
}


def _schemas(settings: Settings) -> dict[str, Any]:
    threshold = settings.api.same_person_threshold
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "description": "Short stable code, e.g. no_face, too_large."},
                        "message": {"type": "string", "description": "What went wrong, for people."},
                    },
                }
            },
        },
        "Box": _BOX,
        "Match": {
            "type": "object",
            "required": [
                "name",
                "person_id",
                "unnamed",
                "label",
                "distance",
                "similarity",
                "same_person",
                "face_id",
                "image_url",
                "page_url",
                "box",
                "thumbnail_url",
                "license",
                "license_url",
                "attribution",
                "restrictions",
            ],
            "properties": {
                "name": _nullable({"type": "string", "description": "Who this is; null for an unnamed face."}),
                "person_id": _nullable(
                    {
                        "type": "string",
                        "description": "The person's identity: a Wikidata Q-id, else the key of their name "
                        "(case folded, separators alike). Null for an unnamed face.",
                    }
                ),
                "unnamed": {
                    "type": "boolean",
                    "description": "A face of nobody known (only with unnamed=true): not a person to look like.",
                },
                "label": {
                    "type": "string",
                    "enum": ["source", "consensus", "none"],
                    "description": "Why the face carries its person: the source named it, it matched the "
                    "person's other faces (consensus), or nobody (none).",
                },
                "distance": {"type": "number", "minimum": 0, "description": "L2 distance between the descriptors."},
                "similarity": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 100,
                    "description": SIMILARITY_FORMULA,
                },
                "same_person": {
                    "type": "boolean",
                    "description": f"distance < api.same_person_threshold (now {threshold}).",
                },
                "face_id": {"type": "string", "description": "The stored face's id, for GET /v1/faces/{id}."},
                "image_url": _nullable({"type": "string", "description": "The photo the face is in."}),
                "page_url": _nullable({"type": "string", "description": "The page the photo was found on."}),
                "box": _nullable({"$ref": "#/components/schemas/Box"}),
                "thumbnail_url": _nullable(
                    {
                        "type": "string",
                        "description": (
                            "A small crop of the face, if stored: /thumbnails/<id>.jpg on this API, or a URL."
                        ),
                    }
                ),
                "license": _nullable({"type": "string", "description": "The photo's licence (short name)."}),
                "license_url": _nullable({"type": "string", "description": "Where the licence's text is."}),
                "attribution": _nullable({"type": "string", "description": "The photo's author or credit line."}),
                "restrictions": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The photo's restriction templates on Commons, e.g. personality (personality "
                    "rights: the person's consent may be needed for uses beyond this one), trademarked.",
                },
            },
        },
        "Face": {
            "type": "object",
            "required": ["box", "matches"],
            "properties": {
                "box": {"$ref": "#/components/schemas/Box"},
                "matches": {"type": "array", "items": {"$ref": "#/components/schemas/Match"}},
            },
        },
        "SearchResult": {
            "type": "object",
            "required": ["faces", "took_ms"],
            "properties": {
                "faces": {
                    "type": "array",
                    "description": "One entry per face found in the photo, largest first.",
                    "items": {"$ref": "#/components/schemas/Face"},
                },
                "took_ms": {"type": "number", "minimum": 0},
            },
        },
        "StoredFace": {
            "type": "object",
            "required": ["id", "name", "image_url", "box"],
            "properties": {
                "id": {"type": "string"},
                "name": _nullable({"type": "string"}),
                "person_id": _nullable({"type": "string"}),
                "label": _nullable({"type": "string", "description": "source, consensus or none (see Match)."}),
                "image_url": _nullable({"type": "string"}),
                "page_url": _nullable({"type": "string"}),
                "box": _nullable({"$ref": "#/components/schemas/Box"}),
                "image_width": _nullable({"type": "integer"}),
                "image_height": _nullable({"type": "integer"}),
                "faces_in_image": _nullable({"type": "integer"}),
                "source": _nullable({"type": "string"}),
                "license": _nullable({"type": "string"}),
                "license_url": _nullable({"type": "string"}),
                "attribution": _nullable({"type": "string"}),
                "attribution_required": _nullable(
                    {"type": "boolean", "description": "Whether the licence asks for the author's credit."}
                ),
                "restrictions": {"type": "array", "items": {"type": "string"}},
                "thumbnail_url": _nullable({"type": "string"}),
                "crawled_at": _nullable({"type": "string"}),
                "model": _nullable({"type": "string"}),
            },
        },
        "Stats": {
            "type": "object",
            "required": ["faces", "people", "model", "backend"],
            "properties": {
                "faces": {"type": "integer", "minimum": 0},
                "people": {"type": "integer", "minimum": 0},
                "model": {"type": "string", "description": "The engine's model id (detector + encoder)."},
                "store_models": {"type": "array", "items": {"type": "string"}},
                "backend": {"type": "string", "enum": ["embedded", "server"]},
                "collection": _nullable({"type": "string"}),
                "engine": {
                    "type": "object",
                    "properties": {"workers": {"type": "integer"}, "device": {"type": "string"}},
                },
            },
        },
        "Takedown": {
            "type": "object",
            "required": ["deleted"],
            "properties": {"deleted": {"type": "integer", "minimum": 0}},
        },
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
        "Ready": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not_ready"]},
                "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
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
                "schema": {"type": "string", "enum": ["all", "largest"], "default": "all"},
            },
            {
                "name": "unnamed",
                "in": "query",
                "description": "Also offer faces of nobody known, each as its own match, marked unnamed: true.",
                "schema": {"type": "string", "enum": ["true", "false"], "default": "false"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {"image": {"type": "string", "format": "binary"}},
                    }
                },
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["image_base64"],
                                "properties": {"image_base64": {"type": "string", "format": "byte"}},
                                "additionalProperties": False,
                            },
                            {
                                "type": "object",
                                "required": ["image_url"],
                                "properties": {"image_url": {"type": "string", "format": "uri"}},
                                "additionalProperties": False,
                            },
                        ]
                    }
                },
                "image/*": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": {
                "description": "One result list per face found (the largest 20, or 1 with faces=largest).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResult"}}},
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
        {"name": name, "in": "query", "description": desc, "schema": {"type": "string", "minLength": 1}}
        for name, desc in (
            ("image_url", "Delete every face from this photo URL."),
            ("page_url", "Delete every face found on this page."),
            (
                "name",
                "Take a person down: every face of the identity this name (any spelling, or the "
                "Wikidata label) means, faces that are plainly them in group photos, and new faces of them.",
            ),
            ("person_id", "Take a person down by identity (a Wikidata Q-id, or the key of a name)."),
            ("source", "Delete every face from this source."),
        )
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
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StoredFace"}}},
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
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Takedown"}}},
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
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Stats"}}},
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
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
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
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}},
                        },
                        "503": {
                            "description": "Not ready; the checks say why.",
                            "headers": {"Retry-After": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}},
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
            "schemas": _schemas(settings),
            "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}},
        },
    }
