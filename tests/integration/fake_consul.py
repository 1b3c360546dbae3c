"""A Consul KV HTTP server for the tests, following Consul's protocol.

``GET /v1/kv/<key>`` (``?recurse`` for a prefix) answers a JSON list of entries with base64
values and the ``X-Consul-Index`` header, 404 when nothing matches; with ``?index=N``
(and ``wait=``, e.g. ``30s``) it blocks until the index moves past N or the wait ends.
``PUT`` (with ``?cas=`` check-and-set, 0 meaning "only if absent") and ``DELETE`` change
keys and move the index. With a token set, requests must
send it as ``X-Consul-Token`` (403 otherwise). ``stop()`` makes it go away like a dead
agent: listening stops and blocked queries are cut off.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from typing import Any

import bottle

from demo.wsgi import threaded_wsgi_server

WAIT_RE = re.compile(r"(\d+)(ms|s|m)?$")


class FakeConsul:
    def __init__(self, port: int, token: str = "") -> None:
        self.port = port
        self.token = token
        self.index = 1
        self.kv: dict[str, tuple[bytes, int, int]] = {}  # key -> (value, create, modify)
        self.requests: list[str] = []
        self._changed = threading.Condition()
        self._server: Any = None
        self.app = self._build()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeConsul:
        self._down = False
        self._server = threaded_wsgi_server(self.app, "127.0.0.1", self.port)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._down = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def put(self, key: str, value: str) -> None:
        with self._changed:
            self.index += 1
            created = self.kv.get(key, (b"", self.index, 0))[1]
            self.kv[key] = (value.encode(), created, self.index)
            self._changed.notify_all()

    def delete(self, key: str) -> None:
        with self._changed:
            self.index += 1
            self.kv.pop(key, None)
            self._changed.notify_all()

    def _build(self) -> bottle.Bottle:
        app = bottle.Bottle()

        def authorized() -> bool:
            return not self.token or bottle.request.get_header("X-Consul-Token") == self.token

        @app.get("/v1/kv/<key:path>")
        def get(key: str) -> bottle.HTTPResponse:
            self.requests.append(bottle.request.query_string)
            if not authorized():
                return bottle.HTTPResponse("Permission denied", 403)
            wanted = int(bottle.request.query.get("index") or 0)
            wait = _seconds(bottle.request.query.get("wait") or "300s")
            with self._changed:
                if wanted:
                    self._changed.wait_for(lambda: self.index > wanted or self._down, wait)
                if self._down:
                    return bottle.HTTPResponse("agent gone", 500)
                recurse = "recurse" in bottle.request.query
                rows = [
                    {"Key": k, "Value": base64.b64encode(v).decode(), "Flags": 0,
                     "CreateIndex": c, "ModifyIndex": m, "LockIndex": 0}
                    for k, (v, c, m) in sorted(self.kv.items())
                    if (k.startswith(key) if recurse else k == key)
                ]
                headers = {"X-Consul-Index": str(self.index), "X-Consul-Knownleader": "true",
                           "Content-Type": "application/json"}
            if not rows:
                return bottle.HTTPResponse("", 404, headers)
            return bottle.HTTPResponse(json.dumps(rows), 200, headers)

        @app.put("/v1/kv/<key:path>")
        def put(key: str) -> bottle.HTTPResponse:
            if not authorized():
                return bottle.HTTPResponse("Permission denied", 403)
            cas = bottle.request.query.get("cas")
            if cas is not None:  # check-and-set: 0 means "only if absent"
                current = self.kv.get(key)
                if (current is not None) if cas == "0" else (current is None
                                                            or current[2] != int(cas)):
                    return bottle.HTTPResponse("false", 200, {"Content-Type": "application/json"})
            self.put(key, bottle.request.body.read().decode())
            return bottle.HTTPResponse("true", 200, {"Content-Type": "application/json"})

        @app.delete("/v1/kv/<key:path>")
        def delete(key: str) -> bottle.HTTPResponse:
            if not authorized():
                return bottle.HTTPResponse("Permission denied", 403)
            self.delete(key)
            return bottle.HTTPResponse("true", 200, {"Content-Type": "application/json"})

        return app


def _seconds(wait: str) -> float:
    match = WAIT_RE.match(wait)
    if not match:
        return 300.0
    value, unit = int(match.group(1)), match.group(2) or "s"
    return value / 1000 if unit == "ms" else value * (60 if unit == "m" else 1)
