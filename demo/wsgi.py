"""The demo's HTTP plumbing: JSON answers, conditional answers (validators, 304s), and a
small threaded WSGI server (also what the tests serve the API and other doubles with)."""

from __future__ import annotations

import hashlib
import json
import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bottle

from demo.data import Event
from shared.policy.http import http_date, not_modified

log = logging.getLogger(__name__)


def json_body(status: int, body: Any) -> bottle.HTTPResponse:
    """A JSON answer."""
    return bottle.HTTPResponse(
        json.dumps(body, ensure_ascii=False).encode(), status,
        {"Content-Type": "application/json; charset=utf-8"},
    )


def c42_error(status: int, message: str, code: str) -> bottle.HTTPResponse:
    """An error as Calendar42 sends one."""
    return json_body(status, {"error": {"status_code": status, "message": message, "code": code}})


def conditional(body: Any, event: Event | None, validators: bool = True) -> bottle.HTTPResponse:
    """200 with validators, or 304 when the request's validators still match."""
    payload = json.dumps(body, ensure_ascii=False).encode()
    if not validators:
        return bottle.HTTPResponse(payload, 200, {"Content-Type": "application/json"})
    tag = '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'
    etag = "W/" + tag if event is not None and event.weak_etag else tag
    headers = {"ETag": etag, "Content-Type": "application/json; charset=utf-8"}
    modified = event.modified if event is not None else 1_700_000_000.0
    headers["Last-Modified"] = http_date(modified)
    if not_modified(bottle.request.get_header("If-None-Match"),
                    bottle.request.get_header("If-Modified-Since"), etag, modified):
        return bottle.HTTPResponse(b"", 304, {"ETag": etag,
                                              "Last-Modified": headers["Last-Modified"]})
    return bottle.HTTPResponse(payload, 200, headers)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("request", extra={"line": format % args})


def threaded_wsgi_server(app: Any, host: str, port: int) -> WSGIServer:
    """A small threaded HTTP server for a WSGI app; ``port=0`` picks a free one."""
    return make_server(host, port, app, _ThreadingServer, _QuietHandler)
