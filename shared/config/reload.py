"""Reloading: SIGHUP reads config.ini and the catalogue file again, in every process
that reads them, without a restart (``LiveSettings.reload``). A file that does not load,
or that the settings do not validate against, is refused whole with the place named, and
what the process runs stays, as with a Consul update. ``make run`` passes its SIGHUP on
to the API, the worker and beat; the API's server checks the files first, then starts
new server processes and stops the old (api/__main__.py)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.config.live import process_settings
from shared.config.settings import SettingsError, load_settings
from shared.upstreams import catalogue as catalogue_file
from shared.upstreams import registry
from shared.upstreams.catalogue import Catalogue


def reload_on_hangup() -> None:
    """SIGHUP reads config.ini and the catalogue file again (``LiveSettings.reload``),
    on a thread of its own: the handler only starts it. Call from the main thread."""
    live = process_settings()

    def hangup(signum: int, frame: Any) -> None:
        threading.Thread(target=live.reload, name="reload", daemon=True).start()

    signal.signal(signal.SIGHUP, hangup)


def validated(environ: Mapping[str, str], path: Path) -> Catalogue:
    """The catalogue at ``path``, once config.ini and the environment's settings validate
    against it as a process would read them; SettingsError (a CatalogueError among them)
    naming the place. Checks only: the catalogue in force stays."""
    fresh = catalogue_file.load(path)
    before, consul = registry.replace_file(fresh), registry.replace(None)
    try:
        load_settings(environ)
    finally:
        registry.replace_file(before)
        registry.replace(consul)
    return fresh


def files_refused(environ: Mapping[str, str]) -> str | None:
    """Why a reload would refuse config.ini or the catalogue file now (the error that
    names the place), or None when both load and validate."""
    try:
        validated(environ, registry.catalogue_path())
    except SettingsError as exc:
        return str(exc)
    return None
