"""The admin API's part of the OpenAPI description (api/openapi.py): its paths, each
behind the admin token (the status page and its figures also take a browser's session)."""

from __future__ import annotations

from typing import Any


def error_doc(description: str) -> dict[str, Any]:
    """A response carrying the JSON error body."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_ADMIN_ERRORS = {
    "401": error_doc("No admin token, or a wrong one (with WWW-Authenticate)"),
    "404": error_doc("The admin API is off (no ADMIN_TOKEN), or no such entry or upstream"),
}
_RESOURCE = {"name": "resource", "in": "path", "required": True,
             "description": "A resource: <upstream>:<kind>:<key>",
             "schema": {"type": "string",
                        "pattern": "^[a-z0-9_]+:[a-z0-9_]+:[A-Za-z0-9_-]{1,128}$"}}
_PURGED = {"description": "The resources whose entries were deleted", "content": {
    "application/json": {"schema": {"type": "object", "required": ["purged"], "properties": {
        "purged": {"type": "array", "items": {"type": "string"}}}}}}}


_TIME = {"type": "string", "format": "date-time", "nullable": True}
_HTML = {"description": "The status page", "content": {"text/html": {"schema": {
    "type": "string"}}}}
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
    "oldest_stale_s": {"type": "number"},
    "live_as_of": {**_TIME, "description": "When the plan task counted the live resources"}}}


def admin_paths() -> dict[str, Any]:
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
                "400": error_doc("A query parameter is invalid"), **_ADMIN_ERRORS},
        }},
        "/admin/entries/{resource}": {"delete": {
            "operationId": "adminPurgeOne", "security": security, "parameters": [_RESOURCE],
            "summary": "Purge one resource: its next read is a miss",
            "responses": {"200": _PURGED, "400": error_doc("Not a resource"), **_ADMIN_ERRORS},
        }},
        "/admin/purge": {"post": {
            "operationId": "adminPurge", "security": security,
            "summary": "Purge by upstream, prefix, a view's parameters, tag or resources",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "description": 'One of {"upstream"}, {"prefix"}, {"view", '
                '"params"}, {"tag"}, {"resources"}'}}}},
            "responses": {"200": _PURGED, "400": error_doc("Not one of the accepted bodies"),
                          **_ADMIN_ERRORS},
        }},
        "/admin/refresh/{resource}": {"post": {
            "operationId": "adminRefresh", "security": security, "parameters": [_RESOURCE],
            "summary": "Refresh a resource now (conditionally, outside the request budget)",
            "responses": {"202": {"description": "Enqueued; the entry shows when it is done",
                                  "content": {"application/json": {
                                      "schema": {"type": "object"}}}},
                          "400": error_doc("Not a resource"), **_ADMIN_ERRORS},
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
        "/admin/": {"get": {
            "operationId": "adminStatusPage", "security": [*security, {"adminSession": []}],
            "summary": "The status page (HTML): upstreams, budget, lag, the cache's last "
                       "hour, Redis, workers and beat; a login form without a session",
            "responses": {"200": _HTML, "401": {
                "description": "The login form (no session or admin token)",
                "content": {"text/html": {"schema": {"type": "string"}}}}},
        }},
        "/admin/status": {"get": {
            "operationId": "adminStatus", "security": [*security, {"adminSession": []}],
            "summary": "The status page's figures as JSON",
            "responses": {"200": {"description": "upstreams, cache, refresh_lag_s, redis, "
                                  "health", "content": {"application/json": {
                                      "schema": {"type": "object"}}}}, **_ADMIN_ERRORS},
        }},
        "/admin/login": {"post": {
            "operationId": "adminLogin", "security": [],
            "summary": "Log a browser in with the admin token (a form post): a session "
                       "cookie the status page accepts, 12 hours",
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["token"],
                    "properties": {"token": {"type": "string"}}}}}},
            "responses": {"303": {"description": "Logged in: to /admin/, with Set-Cookie"},
                          "401": {"description": "Not the token: the login form again",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                          "404": _ADMIN_ERRORS["404"]},
        }},
        "/admin/logout": {"post": {
            "operationId": "adminLogout", "security": [],
            "summary": "End a browser's session",
            "responses": {"303": {"description": "To /admin/, the cookie removed"},
                          "404": _ADMIN_ERRORS["404"]},
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
