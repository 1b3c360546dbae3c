"""The OpenAPI 3 description of the API, served at /openapi.json and kept true by tests."""

from __future__ import annotations

from typing import Any

from api.openapi_admin import admin_paths
from api.openapi_admin import error_doc as _error
from shared.upstreams.kinds import KEY_RE, KEY_RULE, Param, View
from shared.upstreams.registry import views

_CACHE_HEADERS = {
    "ETag": {"description": "Strong validator of the view, derived from its parts",
             "schema": {"type": "string"}},
    "Last-Modified": {"description": "When the newest part last changed upstream",
                      "schema": {"type": "string"}},
    "Cache-Control": {"description": "max-age (freshness left), stale-while-revalidate, "
                                     "stale-if-error", "schema": {"type": "string"}},
    "Age": {"description": "Seconds since upstream last confirmed the oldest part",
            "schema": {"type": "integer", "minimum": 0}},
    "Cache-Status": {"description": "RFC 9211: hit, fwd=miss (collapsed), fwd=stale, ttl, "
                                    "fwd-status; detail=store-unavailable when served from "
                                    "the API process's own copy while Redis is unreachable",
                     "schema": {"type": "string"}},
}


def _camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(word.title() for word in rest)


def _schema_name(view: View) -> str:
    return "".join(word.title() for word in view.name.split("-"))


def _param(param: Param, where: str = "path") -> dict[str, Any]:
    if param.type == "count":
        schema: dict[str, Any] = {"type": "integer", "minimum": 1}
        bad = "not a positive integer"
        if param.maximum:
            schema["maximum"] = param.maximum
            bad += f" up to {param.maximum}"
    elif param.type == "choice":
        schema = {"type": "string", "enum": list(param.choices)}
        bad = f"not one of {', '.join(param.choices)}"
    else:
        schema = {"type": "string", "pattern": f"^{KEY_RE.pattern}$"}
        bad = f"not {KEY_RULE}"
    found = {"name": param.name, "in": where, "required": where == "path", "schema": schema,
             "description": param.description or param.name, "x-invalid": bad}
    if param.example:
        found["example"] = int(param.example) if param.type == "count" else param.example
    return found


def _view(view: View, alias: bool) -> dict[str, Any]:
    params = [_param(p) for p in view.params] + [_param(p, "query") for p in view.query]
    invalid = "; ".join(f"{p['name']} is {p.pop('x-invalid')}" for p in params)
    return {
        "get": {
            "operationId": _camel(view.name) + ("NoSlash" if alias else ""),
            "summary": view.summary
                       + (" (the same without the trailing slash)" if alias else ""),
            "parameters": [
                *params,
                {"name": "If-None-Match", "in": "header", "required": False,
                 "description": "ETags (weak comparison), a list, or *",
                 "schema": {"type": "string"}},
                {"name": "If-Modified-Since", "in": "header", "required": False,
                 "description": "An HTTP date; ignored when If-None-Match is sent",
                 "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "The view",
                    "headers": _CACHE_HEADERS,
                    "content": {"application/json": {
                        "schema": {"$ref": f"#/components/schemas/{_schema_name(view)}"}}},
                },
                "304": {"description": "The client's copy is current", "headers": _CACHE_HEADERS},
                "400": _error(f"A parameter is invalid: {invalid}"),
                "401": _error("An API key is required (API_REQUIRE_KEYS) and none or an "
                              "unknown one was sent"),
                "404": _error(view.not_found[:1].upper() + view.not_found[1:]),
                "429": _error("Over the client's rate limit (API_RATE_LIMIT); Retry-After "
                              "says when to try again"),
                "502": _error("Upstream failed and nothing usable is cached"),
                "503": _error("Redis is unreachable, or the fetch's worker died"),
                "504": _error("Upstream or the fetch took too long"),
            },
        }
    }


def spec(admin: bool = False) -> dict[str, Any]:
    """The OpenAPI document; ``admin``: with the admin API's paths."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "cachedproxy",
            "version": "0.1.0",
            "description": "Combined views of slow upstream APIs, served from Redis.",
        },
        # An API key when keys are required (off on loopback by default), else nothing.
        "security": [{"apiKey": []}, {}],
        "paths": {
            **{view.route.rstrip("/") + "/": _view(view, alias=False) for view in views()},
            **{view.route.rstrip("/"): _view(view, alias=True) for view in views()},
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "The API process is alive",
                "responses": {"200": {"description": "Alive", "content": {"application/json": {
                    "schema": {"type": "object", "required": ["status"],
                               "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}},
            }},
            "/readyz": {"get": {
                "operationId": "readyz",
                "summary": "Redis reachable, a worker seen and beat ticking recently",
                "responses": {
                    "200": {"description": "Ready", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Readiness"}}}},
                    "503": {"description": "Not ready; the checks say why",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Readiness"}}}},
                },
            }},
            "/metrics": {"get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics of all API processes and of the workers",
                "responses": {
                    "200": {"description": "Prometheus text format", "content": {
                        "text/plain": {"schema": {"type": "string"}}}},
                    "503": _error("Redis is unreachable"),
                },
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This description",
                "responses": {"200": {"description": "OpenAPI 3 document",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}}},
            }},
            **(admin_paths() if admin else {}),
        },
        "components": {"securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer",
                       "description": "Authorization: Bearer <API key> (python -m api.keys)"},
            "adminToken": {"type": "http", "scheme": "bearer",
                           "description": "Authorization: Bearer <ADMIN_TOKEN>"},
            "adminSession": {"type": "apiKey", "in": "cookie", "name": "cachedproxy_admin",
                             "description": "A browser's session from POST /admin/login "
                                            "(the status page only)"},
        }, "schemas": {
            **{_schema_name(view): dict(view.schema) for view in views()},
            "Readiness": {
                "type": "object",
                "required": ["status", "checks"],
                "properties": {
                    "status": {"type": "string", "enum": ["ready", "not_ready"]},
                    "checks": {"type": "object"},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {
                    "type": "object",
                    "required": ["status", "code", "message"],
                    "properties": {
                        "status": {"type": "integer"},
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                }},
            },
        }},
    }
