"""``python -m benchmarks.reference``: the hit-path references.

The same server as the API (granian and api/bridge.py, same settings) serving Bottle
routes: ``/reference`` does one Redis GET of a stored body and returns it (a cached view
read from Redis can go no faster); ``/constant`` returns that body from memory after its
first request (the ceiling of this server stack: no Redis, no work).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from api.__main__ import server
from shared.config.settings import load_settings

REFERENCE_KEY = "bench:reference"


def reference_app() -> Any:
    import bottle

    from api.bridge import Bridge
    from shared.store.client import connect

    settings = load_settings()
    client = connect(settings.redis)
    app = bottle.Bottle()

    key = f"{settings.redis.key_prefix}:{REFERENCE_KEY}"
    headers = {"Content-Type": "application/json; charset=utf-8"}
    constant: list[bytes] = []

    @app.get("/reference")
    def reference() -> bottle.HTTPResponse:
        return bottle.HTTPResponse(client.get(key), 200, headers)

    @app.get("/constant")
    def constant_body() -> bottle.HTTPResponse:
        if not constant:
            constant.append(client.get(key) or b"")  # type: ignore[arg-type]
        return bottle.HTTPResponse(constant[0], 200, headers)

    def answer(environ: dict[str, Any], start_response: Callable[..., Any]
               ) -> Iterable[bytes] | None:
        # The constant body needs no I/O once read: answered on the event loop, as a hit is.
        if environ["PATH_INFO"] == "/constant" and constant:
            return app(environ, start_response)
        return None

    return Bridge(app, answer, settings.api.threads)


if __name__ == "__main__":
    server(load_settings(), "benchmarks.reference:reference_app").serve()
