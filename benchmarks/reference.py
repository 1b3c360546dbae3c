"""``python -m benchmarks.reference``: the hit-path reference.

The same server as the API (gunicorn, gevent workers, same settings) serving a Bottle
route that does one Redis GET of a stored body and returns it: the floor any cached view
served by this stack can reach.
"""

from __future__ import annotations

from typing import Any

from api.__main__ import ApiServer
from shared.config.settings import Settings, load_settings

REFERENCE_KEY = "bench:reference"


def reference_app(settings: Settings) -> Any:
    import bottle

    from shared.store.client import connect

    client = connect(settings.redis)
    app = bottle.Bottle()

    @app.get("/reference")
    def reference() -> bottle.HTTPResponse:
        return bottle.HTTPResponse(client.get(f"{settings.redis.key_prefix}:{REFERENCE_KEY}"),
                                   200, {"Content-Type": "application/json; charset=utf-8"})

    return app


if __name__ == "__main__":
    ApiServer(load_settings(), load=reference_app).run()
