"""The copies of one API server's processes, shelved where each of them can read them.

Each API process keeps its own copies of the views it served (api/copies.py), and while
Redis is unreachable it answers from them. A client's requests are spread over the
processes, so a view one process served lately may be unknown to another: the same
view would be 200 on one connection and 503 on the next. Each process therefore also
writes what it keeps to a small SQLite database the server's processes share (in a
directory the server makes before it starts them, ``CACHEDPROXY_SHELF``), and a process
without a usable copy of its own looks there during an outage.

Writes happen when a process keeps a copy from a read of Redis (not on hits), in WAL
mode without syncing to disk: the shelf is a cache of a cache, lost with the server.
It holds at most ``ROWS`` views (the least recently written go) of at most
``BODY_BYTES`` each. Any SQLite error leaves the shelf out of it: requests never fail
for it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from api.copies import Copy, Key

log = logging.getLogger(__name__)

ENV = "CACHEDPROXY_SHELF"  # the directory of the shelf, made by the server (api/__main__)
FILE = "copies.sqlite3"
ROWS = 4096
BODY_BYTES = 1024 * 1024
PRUNE_EVERY = 256  # writes between trims to ROWS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS copies (
  view TEXT NOT NULL, params TEXT NOT NULL, body BLOB NOT NULL, etag TEXT NOT NULL,
  modified REAL NOT NULL, fresh_until REAL NOT NULL, checked_at REAL NOT NULL,
  resources TEXT NOT NULL, status INTEGER NOT NULL, written INTEGER NOT NULL,
  PRIMARY KEY (view, params)
);
CREATE INDEX IF NOT EXISTS copies_written ON copies (written);
"""


class Shelf:
    """The shared copies of one API server's processes (``None`` path: a no-op)."""

    def __init__(self, path: Path | None, rows: int = ROWS) -> None:
        self.rows = rows
        self._lock = threading.Lock()
        self._writes = 0
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                self._db = _open(path)
            except sqlite3.Error as exc:
                log.warning("copies not shared between API processes",
                            extra={"error": f"{type(exc).__name__}: {exc}"})

    @classmethod
    def from_environ(cls) -> Shelf:
        """The shelf the server made (``prepare``), or none."""
        directory = os.environ.get(ENV)
        return cls(Path(directory) / FILE if directory else None)

    @staticmethod
    def prepare(directory: Path) -> None:
        """Make the shelf in ``directory`` before the server starts its processes."""
        _open(directory / FILE).close()

    def put(self, key: Key, copy: Copy) -> None:
        """Shelve a copy just kept (or its new freshness), replacing the view's."""
        if self._db is None or len(copy.body) > BODY_BYTES:
            return
        with self._lock:
            try:
                self._writes += 1
                self._db.execute(
                    "INSERT OR REPLACE INTO copies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "(SELECT coalesce(max(written), 0) + 1 FROM copies))",
                    (key[0], key[1], copy.body, copy.etag, copy.modified, copy.fresh_until,
                     copy.checked_at, "\n".join(copy.resources), copy.status))
                if self._writes % PRUNE_EVERY == 0:
                    self._db.execute(
                        "DELETE FROM copies WHERE written <= "
                        "(SELECT max(written) FROM copies) - ?", (self.rows,))
            except sqlite3.Error as exc:
                log.debug("copy not shelved", extra={"error": f"{type(exc).__name__}: {exc}"})

    def clear(self) -> None:
        """Forget every shelved copy (the catalogue changed: views may be made
        differently now)."""
        if self._db is None:
            return
        with self._lock:
            try:
                self._db.execute("DELETE FROM copies")
            except sqlite3.Error as exc:
                log.debug("shelf not cleared", extra={"error": f"{type(exc).__name__}: {exc}"})

    def get(self, key: Key) -> Copy | None:
        """The view's shelved copy (from any process of the server), or None."""
        if self._db is None:
            return None
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT body, etag, modified, fresh_until, checked_at, resources, status "
                    "FROM copies WHERE view = ? AND params = ?", key).fetchone()
            except sqlite3.Error as exc:
                log.debug("shelf unreadable", extra={"error": f"{type(exc).__name__}: {exc}"})
                return None
        if row is None:
            return None
        body, etag, modified, fresh_until, checked_at, resources, status = row
        return Copy(bytes(body), etag, modified, fresh_until, checked_at,
                    tuple(resources.split("\n")) if resources else (), 0, status)


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=0.1, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.executescript(_SCHEMA)
    return db
