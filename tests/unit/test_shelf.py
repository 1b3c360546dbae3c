"""The copies an API server's processes share for outages (api/shelf.py), on SQLite."""

from __future__ import annotations

from pathlib import Path

from api import shelf
from api.copies import Copy
from api.shelf import Shelf

COPY = Copy(b'{"id":"e1"}', '"etag"', 100.0, 200.0, 150.0, ("c42:event:e1", "c42:sub:e1"))


def test_a_copy_shelved_by_one_process_is_read_by_another(tmp_path: Path):
    Shelf.prepare(tmp_path)
    one, other = Shelf(tmp_path / shelf.FILE), Shelf(tmp_path / shelf.FILE)
    one.put(("events", "e1"), COPY)
    assert other.get(("events", "e1")) == COPY
    assert other.get(("events", "e2")) is None
    negative = Copy(b'{"error":{}}', "", 0.0, 300.0, 250.0, ("c42:event:e1",), 7, 404)
    other.put(("events", "e1"), negative)  # the view's newer copy replaces it
    assert one.get(("events", "e1")) == Copy(b'{"error":{}}', "", 0.0, 300.0, 250.0,
                                             ("c42:event:e1",), 0, 404)  # no session


def test_a_catalogue_change_clears_the_shelf_for_every_process(tmp_path: Path):
    """Views of the old catalogue may be made differently now: none is answered from
    the shelf after a change, by any process."""
    Shelf.prepare(tmp_path)
    one, other = Shelf(tmp_path / shelf.FILE), Shelf(tmp_path / shelf.FILE)
    one.put(("events", "e1"), COPY)
    other.clear()
    assert one.get(("events", "e1")) is None and other.get(("events", "e1")) is None
    Shelf(None).clear()  # no shelf: nothing to do


def test_the_shelf_keeps_the_latest_rows_and_no_large_bodies(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(shelf, "PRUNE_EVERY", 1)
    Shelf.prepare(tmp_path)
    kept = Shelf(tmp_path / shelf.FILE, rows=3)
    for n in range(10):
        kept.put(("events", f"e{n}"), COPY)
    assert [kept.get(("events", f"e{n}")) is not None for n in range(10)] == [False] * 7 + [
        True] * 3
    kept.put(("events", "big"), Copy(b"x" * (shelf.BODY_BYTES + 1), '"b"', 0, 0, 0))
    assert kept.get(("events", "big")) is None


def test_without_a_shelf_or_with_a_broken_one_nothing_fails(tmp_path: Path):
    for broken in (Shelf(None), Shelf(tmp_path / "missing-dir" / shelf.FILE)):
        broken.put(("events", "e1"), COPY)
        assert broken.get(("events", "e1")) is None
