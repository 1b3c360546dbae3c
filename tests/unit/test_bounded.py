"""The bounded tables of a process (shared/bounded.py)."""

from shared.bounded import LRU


def test_an_lru_keeps_the_most_recently_used_entries():
    """At most ``size`` entries; the least recently used goes first, told to ``evicted``."""
    gone: list[tuple[str, bytes]] = []
    table: LRU[str, bytes] = LRU(2, lambda key, value: gone.append((key, value)))
    assert table.put("a", b"A") == b"A"
    table.put("b", b"B")
    assert table.get("a") == b"A"  # now the most recent
    table.put("c", b"C")
    assert (table.get("a"), table.get("b"), table.get("c")) == (b"A", None, b"C")
    assert gone == [("b", b"B")] and len(table) == 2


def test_peeking_does_not_count_as_use():
    table: LRU[str, int] = LRU(2)
    table.put("a", 1)
    table.put("b", 2)
    assert table.peek("a") == 1 and "a" in table
    table.put("c", 3)
    assert table.peek("a") is None and table.peek("b") == 2


def test_entries_can_be_put_again_popped_and_cleared():
    table: LRU[str, int] = LRU(2)
    table.put("a", 1)
    table.put("a", 2)
    assert len(table) == 1 and table.get("a") == 2
    assert table.pop("a") == 2 and table.pop("a") is None
    table.put("b", 1)
    table.clear()
    assert len(table) == 0 and table.get("b") is None
