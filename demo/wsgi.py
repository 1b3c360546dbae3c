"""The demo's HTTP plumbing: JSON answers, and a small threaded WSGI server (also what
the tests serve the API and other doubles with)."""

from __future__ import annotations

import json
import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bottle

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
