"""The server's edge: errors gunicorn answers itself, before the app runs, are JSON too.

A request line over 4094 bytes (414), too many or too large headers (431), a malformed
request line or header (400): gunicorn refuses these before any WSGI call and writes an
HTML page of its own. ``JsonErrorWorker`` is gunicorn's gevent worker writing the same
statuses with the API's error body instead, so every error a client can meet has one
shape. The limits themselves stay gunicorn's defaults.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

# Status -> (code, message) for what the server refuses before the app.
EDGE_ERRORS = {
    400: ("invalid_request", "malformed HTTP request"),
    403: ("forbidden", "request forbidden"),
    414: ("uri_too_long", "request line too long"),
    417: ("expectation_failed", "expectation failed"),
    431: ("headers_too_large", "request header fields too large"),
    500: ("internal", "internal error"),
    501: ("not_implemented", "transfer coding not implemented"),
}


def error_response(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 response carrying the API's JSON error body; the connection
    closes after it, as gunicorn's own does."""
    code, message = EDGE_ERRORS.get(status, ("invalid_request", reason.lower()))
    body = json.dumps({"error": {"status": status, "code": code, "message": message}},
                      separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def write_json_error(sock: Any, status_int: int, reason: str, _mesg: str) -> None:
    # gunicorn's message may echo the client's bytes; the fixed message does not.
    util.write_nonblock(sock, error_response(status_int, reason))


class JsonErrorWorker(GeventWorker):
    """gunicorn's gevent worker whose own error responses are the API's JSON errors."""

    def init_process(self) -> None:
        # gunicorn's handle_error writes through util.write_error; in the worker
        # processes of this server that is the JSON writer.
        util.write_error = write_json_error
        super().init_process()
