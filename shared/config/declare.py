"""How an option is declared: its default, environment variable, help and liveness.

Settings sections, the core ones and each upstream's, are frozen dataclasses of these.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


def option(default: Any, env: str, help: str, live: bool = False) -> Any:
    """Declare an option: its default, environment variable, help, and whether a running
    process applies a change (``live``)."""
    return field(default=default, metadata={"env": env, "help": help, "live": live})
