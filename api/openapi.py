"""The OpenAPI 3 description of the API, served at /openapi.json and kept true by tests."""

from __future__ import annotations

from typing import Any

from shared.upstreams.kinds import KEY_RE, Param, View
from shared.upstreams.registry import views


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


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


def _param(param: Param) -> dict[str, Any]:
    if param.type == "count":
        schema: dict[str, Any] = {"type": "integer", "minimum": 1}
        bad = "not a positive integer"
    elif param.type == "choice":
        schema = {"type": "string", "enum": list(param.choices)}
        bad = f"not one of {', '.join(param.choices)}"
    else:
        schema = {"type": "string", "pattern": f"^{KEY_RE.pattern}$"}
        bad = "not 1-128 letters, digits, '_' or '-'"
    found = {"name": param.name, "in": "path", "required": True, "schema": schema,
             "description": param.description or param.name, "x-invalid": bad}
    if param.example:
        found["example"] = int(param.example) if param.type == "count" else param.example
    return found


def _view(view: View, alias: bool) -> dict[str, Any]:
    params = [_param(p) for p in view.params]
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


_ADMIN_ERRORS = {
    "401": _error("No admin token, or a wrong one (with WWW-Authenticate)"),
    "404": _error("The admin API is off (no ADMIN_TOKEN), or no such entry or upstream"),
}
_RESOURCE = {"name": "resource", "in": "path", "required": True,
             "description": "A resource: <upstream>:<kind>:<key>",
             "schema": {"type": "string",
                        "pattern": "^[a-z0-9_]+:[a-z0-9_]+:[A-Za-z0-9_-]{1,128}$"}}
_PURGED = {"description": "The resources whose entries were deleted", "content": {
    "application/json": {"schema": {"type": "object", "required": ["purged"], "properties": {
        "purged": {"type": "array", "items": {"type": "string"}}}}}}}


_TIME = {"type": "string", "format": "date-time", "nullable": True}
_UPSTREAM = {"type": "object", "required": [
    "upstream", "state", "failures", "budget", "live_resources", "refresh_overdue_s",
    "oldest_stale_s"], "properties": {
    "upstream": {"type": "string"},
    "state": {"type": "string", "enum": ["answering", "paced", "failing"]},
    "failures": {"type": "integer", "description": "Upstream-wide failures in a row"},
    "failing_since": _TIME, "next_probe": _TIME,
    "last_error": {"type": "string", "nullable": True},
    "budget": {"type": "object", "properties": {
        "spent_last_hour": {"type": "integer"},
        "per_hour": {"type": "integer", "nullable": True},
        "by_minute": {"type": "array", "items": {"type": "integer"},
                      "description": "Requests each minute of the last hour, oldest first"},
        "paced_for_s": {"type": "number"}}},
    "reported": {"type": "object", "nullable": True, "description":
                 "What the upstream said remains of its rate limit, and when it resets"},
    "live_resources": {"type": "integer"},
    "refresh_overdue_s": {"type": "number"},
    "oldest_stale_s": {"type": "number"}}}


def _admin_paths() -> dict[str, Any]:
    """The admin API (api/admin.py): a Bearer admin token; 404 while none is configured."""
    security: list[dict[str, list[str]]] = [{"adminToken": []}]
    query = [
        {"name": "upstream", "in": "query", "schema": {"type": "string"}},
        {"name": "prefix", "in": "query", "schema": {"type": "string"}},
        {"name": "live", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
        {"name": "after", "in": "query", "schema": {"type": "string"},
         "description": "The last resource of the previous page (its next.after)"},
    ]
    return {
        "/admin/entries": {"get": {
            "operationId": "adminEntries", "security": security, "parameters": query,
            "summary": "Cached entries in resource order, a page at a time",
            "responses": {"200": {"description": "A page of entries", "content": {
                "application/json": {"schema": {"type": "object", "required": ["entries"],
                                                "properties": {
                    "entries": {"type": "array", "items": {"type": "object"}},
                    "next": {"type": "object"}}}}}},
                "400": _error("A query parameter is invalid"), **_ADMIN_ERRORS},
        }},
        "/admin/entries/{resource}": {"delete": {
            "operationId": "adminPurgeOne", "security": security, "parameters": [_RESOURCE],
            "summary": "Purge one resource: its next read is a miss",
            "responses": {"200": _PURGED, "400": _error("Not a resource"), **_ADMIN_ERRORS},
        }},
        "/admin/purge": {"post": {
            "operationId": "adminPurge", "security": security,
            "summary": "Purge by upstream, prefix, a view's parameters, tag or resources",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "description": 'One of {"upstream"}, {"prefix"}, {"view", '
                '"params"}, {"tag"}, {"resources"}'}}}},
            "responses": {"200": _PURGED, "400": _error("Not one of the accepted bodies"),
                          **_ADMIN_ERRORS},
        }},
        "/admin/refresh/{resource}": {"post": {
            "operationId": "adminRefresh", "security": security, "parameters": [_RESOURCE],
            "summary": "Refresh a resource now (conditionally, outside the request budget)",
            "responses": {"202": {"description": "Enqueued; the entry shows when it is done",
                                  "content": {"application/json": {
                                      "schema": {"type": "object"}}}},
                          "400": _error("Not a resource"), **_ADMIN_ERRORS},
        }},
        "/admin/freshness": {"get": {
            "operationId": "adminFreshness", "security": security,
            "summary": "Each upstream's budget plan: on or off, budget, requests a second "
                       "planned, predicted freshness, change intervals and TTLs",
            "responses": {"200": {"description": "Plans by upstream", "content": {
                "application/json": {"schema": {"type": "object", "required": ["upstreams"],
                                                "properties": {
                    "upstreams": {"type": "object", "additionalProperties": {
                        "type": "object"}}}}}}},
                          **_ADMIN_ERRORS},
        }},
        "/admin/upstreams": {"get": {
            "operationId": "adminUpstreams", "security": security,
            "summary": "Each upstream's state (answering, paced, failing: since when, last "
                       "error, next probe), budget spent in the last hour against its limit, "
                       "what it reports remaining, live resources, refresh lag and oldest "
                       "stale entry",
            "responses": {"200": {"description": "Upstreams in name order", "content": {
                "application/json": {"schema": {"type": "object",
                                                "required": ["at", "upstreams"],
                                                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "upstreams": {"type": "array", "items": _UPSTREAM}}}}}},
                          **_ADMIN_ERRORS},
        }},
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
            **(_admin_paths() if admin else {}),
        },
        "components": {"securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer",
                       "description": "Authorization: Bearer <API key> (python -m api.keys)"},
            "adminToken": {"type": "http", "scheme": "bearer",
                           "description": "Authorization: Bearer <ADMIN_TOKEN>"},
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
