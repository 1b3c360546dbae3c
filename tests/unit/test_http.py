"""Conditional-request rules (RFC 9110 section 13), used by the API and the demo."""

import pytest

from shared.policy.http import not_modified

LM = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize(
    ("inm", "etag", "expected"),
    [
        ('"a"', '"a"', True),
        ('W/"a"', '"a"', True),
        ('"a"', 'W/"a"', True),
        ('"b", "a"', '"a"', True),
        ('"a", "b"', '"a"', True),
        ('"b","a"', '"a"', True),
        ("*", '"a"', True),
        ('"b"', '"a"', False),
    ],
)
def test_if_none_match_uses_weak_comparison(inm, etag, expected):
    """If-None-Match matches weakly, accepts lists and '*'."""
    assert not_modified(inm, None, etag, LM) is expected


def test_if_none_match_wins_over_if_modified_since():
    """A non-matching ETag means 200 even when the date alone would say 304."""
    assert not not_modified('"old"', "Tue, 14 Nov 2023 22:13:20 GMT", '"new"', LM)


@pytest.mark.parametrize(
    ("ims", "expected"),
    [
        ("Tue, 14 Nov 2023 22:13:20 GMT", True),
        ("Wed, 15 Nov 2023 00:00:00 GMT", True),
        ("Tue, 14 Nov 2023 22:13:19 GMT", False),
        ("not a date", False),
    ],
)
def test_if_modified_since(ims, expected):
    """If-Modified-Since is 304 when the resource is not newer; garbage is ignored."""
    assert not_modified(None, ims, '"a"', LM) is expected
