"""The response side of the OpenAPI spec: schemas for every body the API returns.

FastAPI documents what a route *takes* from its signature, but the routes here return plain
dicts and problem documents, so without this a generated client gets untyped objects. The
spec gets, under ``components.schemas``: ``Result`` (the published result schema,
``grader/schema/result.schema.json``, its ``$defs`` moved next to it as ``Result_<name>``),
``Job``, ``Results``, ``Health``, ``Ready`` and ``Problem`` (RFC 7807), and each route lists
every status code it can answer with (including the 400, 405, 413 and 500 that come from the
framework and the middleware rather than from the route).
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

PROBLEM = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 413: "Content Too Large", 422: "Unprocessable Content",
          500: "Internal Server Error", 503: "Service Unavailable"}
WHY = {
    400: "The request cannot be parsed (a broken multipart body).",
    401: "No course token, or an unknown one (WWW-Authenticate: Bearer).",
    403: "The token's course may not use this assignment.",
    404: "No such assignment on this server, or no such job for this course.",
    405: "This path does not take this method.",
    413: "The request body is larger than the server's limit (--max-body-mib).",
    422: "A field is missing or refused (the detail says which and why).",
    500: "The server failed; the problem says which exception.",
    503: "The service cannot take jobs now (broker away, disk full, not ready); Retry-After may say when.",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def result_schema() -> dict[str, Any]:
    """The published result schema as an OpenAPI component (and its definitions as others)."""
    schema = json.loads(resources.files("grader.schema").joinpath("result.schema.json").read_text())
    defs = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (f"#/components/schemas/Result_{v.split('/')[-1]}" if k == "$ref" and
                        isinstance(v, str) and v.startswith("#/$defs/") else rewrite(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    out = {"Result": rewrite(schema)}
    out.update({f"Result_{name}": rewrite(d) for name, d in defs.items()})
    return out


_NULLABLE_TEXT = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "description": "An RFC 7807 problem document (application/problem+json).",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "description": "Validation errors (422): where and why.",
                       "items": {"type": "object", "properties": {
                           "loc": {"type": "array", "items": {"type": "string"}}, "msg": {"type": "string"}}}},
            "checks": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "Readiness (503 from /v1/ready): each failed check and why."},
        },
    },
    "Job": {
        "type": "object",
        "required": ["job_id", "status", "course", "assignment", "student", "submission_hash", "created_at",
                     "links"],
        "properties": {
            "job_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "status": {"enum": ["queued", "running", "done", "failed"]},
            "course": {"type": "string"}, "assignment": {"type": "string"}, "student": {"type": "string"},
            "submission_hash": {"type": "string"},
            "created_at": {"type": "string"}, "started_at": _NULLABLE_TEXT, "finished_at": _NULLABLE_TEXT,
            "message": _NULLABLE_TEXT,
            "gradable": {"type": ["boolean", "null"],
                         "description": "false: no grade could be made (not the student's failure); null: not finished."},
            "fault": {"enum": ["student", "infrastructure", None]},
            "callback": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                "url": {"type": "string"}, "format": {"enum": ["result", "lti"]}, "status": _NULLABLE_TEXT}}]},
            "links": {"type": "object", "properties": {"self": {"type": "string"}, "results": {"type": "string"}}},
            "result": {"oneOf": [{"type": "null"}, ref("Result")],
                       "description": "The result document, once the job is done."},
            "duplicate": {"type": "boolean", "description": "POST only: these files were already a job."},
            "timestamps": {"type": "object", "description": "Per phase, ISO 8601 UTC (null until reached).",
                           "properties": {k: _NULLABLE_TEXT for k in
                                          ("received", "queued", "started", "graded", "delivered")}},
            "queue": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                "position": {"type": "integer", "minimum": 1},
                "estimate_seconds": {"type": ["number", "null"]}}}],
                "description": "While queued: place in the queue (1 is next) and an estimate from recent throughput."},
        },
    },
    "Results": {
        "type": "object", "required": ["assignment", "course", "limit", "offset", "results"],
        "properties": {
            "assignment": {"type": "string"}, "course": {"type": "string"},
            "limit": {"type": "integer"}, "offset": {"type": "integer"},
            "results": {"type": "array", "items": {"type": "object", "properties": {
                "job_id": {"type": "string"}, "student": {"type": "string"}, "score": {"type": "number"},
                "max_score": {"type": "number"}, "status": {"enum": ["graded", "error", "timeout"]},
                "created_at": {"type": "string"}, "links": {"type": "object"}}}},
        },
    },
    "Health": {
        "type": "object", "required": ["status", "mode", "version"],
        "properties": {"status": {"const": "ok"}, "mode": {"enum": ["embedded", "broker"]},
                       "version": {"type": "string"}, "assignments": {"type": "array", "items": {"type": "string"}}},
    },
    "Ready": {
        "type": "object", "required": ["status", "mode"],
        "properties": {"status": {"const": "ready"}, "mode": {"enum": ["embedded", "broker"]}},
    },
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for error codes, each a Problem document."""
    return {c: {"description": f"{TITLES[c]}: {WHY[c]}", "content": {PROBLEM: {"schema": ref("Problem")}}}
            for c in codes}


def body(name: str, description: str) -> dict[str, Any]:
    """An OpenAPI response whose JSON body is the component ``name``."""
    return {"description": description, "content": {"application/json": {"schema": ref(name)}}}


def with_components(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the response schemas added to its components (a copy)."""
    spec = copy.deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(result_schema())
    schemas.update(copy.deepcopy(SCHEMAS))
    return spec
