"""Benchmarks: ``make bench`` (``python -m benchmarks``); results in docs/BENCHMARKS.md."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


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
