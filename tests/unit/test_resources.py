"""Resource keys, Redis key building and the error mapping."""

import pytest

from shared import errors
from shared.errors import InvalidRequest
from shared.store.keys import Keys
from shared.upstreams.kinds import check_key
from shared.upstreams.registry import kind_of


@pytest.mark.parametrize("key", ["1", "abc", "A_b-9", "x" * 128, "_", "-", "a.b", ".github",
                                 "v1.2."])
def test_ids_like_upstream_ids_are_accepted(key):
    """Letters, digits, '_', '-' and '.', 1 to 128 of them."""
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "x" * 129, "a b", ".", "..", "...", "a/b", "é", "a:b", "a%20", "../etc", "a\n",
            "١٢٣"]
)
def test_other_ids_are_rejected(key):
    """Anything else is a 400, before Redis or upstream is asked."""
    with pytest.raises(InvalidRequest):
        check_key(key)


def test_every_key_is_under_the_prefix():
    """All keys of a deployment match its prefix pattern, so they can be found and removed."""
    keys = Keys("tenant-a")
    made = [keys.entry("c42:event:1"), keys.locks(), keys.result("c42:event:1", "t")]
    assert made == [
        "tenant-a:entry:c42:event:1",
        "tenant-a:locks",
        "tenant-a:result:c42:event:1:t",
    ]
    assert keys.pattern() == "tenant-a:*"
    assert keys.pattern("entry") == "tenant-a:entry:*"


def test_catalog_knows_the_c42_kinds_and_refuses_others():
    """Resource names map back to their kind; unknown kinds and bad keys are refused."""
    assert kind_of("c42:event:1").name == "c42:event"
    assert kind_of("c42:subscriptions:1").pagination is not None
    with pytest.raises(InvalidRequest):
        kind_of("gh:repo:1")
    with pytest.raises(InvalidRequest):
        kind_of("c42:event:a b")


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.InvalidRequest, 400),
        (errors.NotFound, 404),
        (errors.UpstreamError, 502),
        (errors.UpstreamTimeout, 504),
        (errors.FetchTimeout, 504),
        (errors.StoreUnavailable, 503),
        (errors.CachedProxyError, 500),
    ],
)
def test_each_error_has_one_status_and_survives_a_process_boundary(cls, status):
    """Errors map to one status and JSON body, and rebuild from their code."""
    error = cls("why")
    assert error.body() == {"error": {"status": status, "code": cls.code, "message": "why"}}
    rebuilt = errors.from_code(error.code, error.message)
    assert type(rebuilt) is cls and rebuilt.message == "why"


def test_upstream_of_a_resource():
    """Resource names map to the upstream serving them."""
    from shared.upstreams.registry import upstream_of

    assert upstream_of("c42:event:1") == upstream_of("c42:subscriptions:x") == "c42"
