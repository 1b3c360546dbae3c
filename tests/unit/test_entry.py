"""Cache entries: encoding, freshness and the 304 / 404 rules, without Redis."""

from shared.store.entry import (
    Entry,
    Validator,
    conditional_headers,
    digest,
    fetched,
    keep_until,
    not_found,
    revalidated,
)


def test_conditional_headers_from_validators():
    """Stored ETag and Last-Modified become If-None-Match and If-Modified-Since."""
    assert conditional_headers(None) == {}
    assert conditional_headers(Validator()) == {}
    assert conditional_headers(Validator('W/"a"', "Tue, 01 Dec 2026 10:00:00 GMT")) == {
        "If-None-Match": 'W/"a"',
        "If-Modified-Since": "Tue, 01 Dec 2026 10:00:00 GMT",
    }
    assert conditional_headers(Validator(None, "x")) == {"If-Modified-Since": "x"}


def test_entry_round_trips_through_redis_fields():
    """An entry decodes to itself, non-ASCII data included, from bytes as Redis returns."""
    entry = fetched({"title": "Zoë's party"}, (Validator('"e1"', None),), 100.0, 252)
    raw = {k.encode(): v.encode() for k, v in entry.to_fields().items()}
    assert Entry.from_fields(raw) == entry


def test_missing_or_foreign_fields_decode_to_none():
    """An absent key or an entry in another format reads as a miss, never a crash."""
    assert Entry.from_fields({}) is None
    assert Entry.from_fields({"v": "0", "status": "200"}) is None
    assert Entry.from_fields({"v": "1", "status": "oops"}) is None


def test_corrupt_entries_of_the_current_format_decode_to_none():
    """A hash of the current format with a field missing or garbled (a partial write by
    hand, a bug) reads as a miss to refetch, never an exception on the hit path."""
    good = fetched({"title": "t"}, (Validator('"e"', None),), 100.0, 252).to_fields()
    broken = [
        {k: v for k, v in good.items() if k != "fresh_until"},  # a field missing
        {**good, "data": '{"title": '},  # truncated JSON
        {**good, "status": "oops"},
        {**good, "validators": "[[1, 2, 3]]"},  # wrong shape
        {**good, "fetched_at": "yesterday"},
    ]
    assert Entry.from_fields(good) is not None
    for fields in broken:
        assert Entry.from_fields(fields) is None, fields


def test_fresh_until_ttl_then_stale():
    """A fetched entry is fresh for exactly ttl seconds."""
    entry = fetched("d", (), now=100.0, ttl=10)
    assert entry.is_fresh(109.9)
    assert not entry.is_fresh(110.0)


def test_revalidation_keeps_data_and_extends_freshness():
    """A 304 moves checked_at and fresh_until; data, validators and fetched_at stay."""
    entry = fetched({"title": "t"}, (Validator('"e"'),), now=100.0, ttl=10)
    again = revalidated(entry, now=150.0, ttl=10)
    assert again.data == entry.data and again.validators == entry.validators
    assert again.fetched_at == 100.0
    assert again.checked_at == 150.0 and again.fresh_until == 160.0


def test_good_data_is_kept_past_freshness_but_a_404_is_not():
    """Redis keeps a 200 for stale_if_error past freshness; a negative entry expires."""
    assert keep_until(fetched("d", (), 100.0, 10), stale_if_error=50) == 160.0
    assert keep_until(not_found(100.0, negative_ttl=5), stale_if_error=50) == 105.0
    # A remembered 404 is kept to be served while it is asked again, never as a fallback.
    assert keep_until(not_found(100.0, negative_ttl=5), 50, stale_while_revalidate=20) == 125.0
    assert keep_until(fetched("d", (), 100.0, 10), 50, stale_while_revalidate=80) == 190.0


def test_page_validators_apply_only_to_the_same_page_size():
    """A changed page size invalidates the stored page validators."""
    entry = fetched({}, (Validator('"p0"'), Validator('"p1"')), 0.0, 10, page_size=10)
    assert entry.validator(1, 10) == Validator('"p1"')
    assert entry.validator(2, 10) is None
    assert entry.validator(0, 100) is None
    assert not_found(0.0, 5).validator(0) is None


def test_entry_keeps_every_field_through_redis():
    """Page size and both validators of every page survive encoding."""
    validators = (Validator('"p0"', "Tue, 01 Dec 2026 10:00:00 GMT"), Validator(None, "x"))
    entry = fetched({"count": 2, "pages": [["a"], ["b"]]}, validators, 100.0, 252, 25)
    assert Entry.from_fields(entry.to_fields()) == entry


def test_data_is_stored_as_compact_utf8_json():
    """Stored data is UTF-8 JSON without padding: what Redis holds is as small as the
    trimmed data, and readable with redis-cli."""
    assert fetched({"title": "Zoë", "n": [1, 2]}, (), 0.0, 1).to_fields()["data"] == (
        '{"title":"Zoë","n":[1,2]}')


def test_digest_is_of_the_data_alone():
    """The same data has the same digest whatever its key order; other data another."""
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert len({digest(d) for d in ({"a": 1}, {"a": 2}, {"a": "1"}, None, [], {})}) == 6
    assert digest({"t": "Zoë"}) == digest({"t": "Zoë"}) != digest({"t": "Zoe"})
    assert fetched({"a": 1}, (), 0.0, 1).digest == digest({"a": 1})


def test_digest_is_stable_across_releases():
    """Views' ETags derive from digests: the same data keeps the same digest from one
    release to the next, so clients' If-None-Match stays valid across a deploy."""
    assert digest({"title": "Zoë", "n": [1, 2]}) == "3f642160c12d0f0596589d1a8a38bf8a"


def test_not_found_entry_is_a_remembered_404():
    """An upstream 404 is an entry of status 404, no data, fresh for the negative TTL."""
    assert not_found(100.0, 30) == Entry(404, None, (), 100.0, 100.0, 130.0,
                                         digest=digest(None))
