"""Benchmarks: ``make bench`` (``python -m benchmarks``); results in docs/BENCHMARKS.md."""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from demo.server import API, DemoUpstream, make_demo_server

NAMES = ["Ada", "Grace", "Linus"]


def demo_upstream(events: Iterable[str]) -> tuple[DemoUpstream, Any, str]:
    """The demo upstream serving these events (three subscribers each) on a free port:
    (upstream, its server, its C42 base URL); shut the server down after."""
    upstream = DemoUpstream(secrets.token_urlsafe(12))
    for event in events:
        upstream.put_event(event, f"Event {event}", NAMES)
    server = make_demo_server(upstream, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return upstream, server, f"http://127.0.0.1:{server.server_address[1]}{API}"


def each(name: str, values: Iterable[Any], run: Callable[[Any, Path], dict[str, Any]]
         ) -> list[dict[str, Any]]:
    """``run(value, work_dir)`` for each value in a fresh directory, printing each result
    as a JSON line as it comes; returns the results."""
    results = []
    for value in values:
        with tempfile.TemporaryDirectory(prefix=f"cachedproxy-{name}-") as tmp:
            results.append(run(value, Path(tmp)))
        print(json.dumps(results[-1]), flush=True)
    return results
