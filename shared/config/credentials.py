"""Flower's login: from configuration, or generated once and kept in the run directory.

No password ships with cachedproxy. Without ``flower.basic_auth`` one is generated at
first start, written to ``run/flower-credentials`` (readable by the owner only) and
reused afterwards.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from shared.config.settings import PROJECT_DIR, Settings

CREDENTIALS_FILE = PROJECT_DIR / "run" / "flower-credentials"
USER = "cachedproxy"


def flower_basic_auth(settings: Settings, path: Path = CREDENTIALS_FILE
                      ) -> tuple[list[str], bool]:
    """Flower's ``basic_auth`` list, and whether a password was generated just now."""
    if settings.flower.basic_auth:
        return [c.strip() for c in settings.flower.basic_auth.split(",") if c.strip()], False
    if path.is_file():
        return [path.read_text().strip()], False
    path.parent.mkdir(parents=True, exist_ok=True)
    credential = f"{USER}:{secrets.token_urlsafe(18)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(credential + "\n")
    return [credential], True
