"""``python -m api.catalogue check [FILE]``: load a catalogue as every process would,
without starting anything, and print the routes it would serve.

FILE defaults to the catalogue in force for this machine (``CACHEDPROXY_CATALOGUE``, else
catalogue.toml). Each route is a JSON line; the last line sums it up. A catalogue that
does not load, or whose upstreams' settings (config.ini, the environment) do not
validate against it, is one JSON line on stderr naming the place, and exit code 2: the
message a process would refuse to start with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.cli import environ, guarded
from shared.config.reload import validated
from shared.upstreams import registry
from shared.upstreams.catalogue import Catalogue


def routes(catalogue: Catalogue) -> list[dict[str, Any]]:
    """What the catalogue serves: each view's and read-through resource's route."""
    return [{"route": view.route, "view": view.name,
             "read_through": view.allowlist, "params": [p.name for p in view.params],
             "summary": view.summary}
            for view in catalogue.views]


def check(path: Path) -> list[dict[str, Any]]:
    """The lines ``check`` prints for the catalogue at ``path``; CatalogueError or
    SettingsError naming the place when it would be refused."""
    loaded = validated(environ(), path)
    found = routes(loaded)
    return [*found, {"ok": True, "catalogue": str(path), "upstreams": list(loaded.upstreams),
                     "routes": len(found)}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.catalogue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="load a catalogue; print its routes")
    checking.add_argument("file", nargs="?", type=Path, default=None,
                          help="the catalogue file (default: the one in force here)")
    args = parser.parse_args(argv)

    def run() -> int:
        for line in check(args.file or registry.catalogue_path()):
            print(json.dumps(line, ensure_ascii=False))
        return 0

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
