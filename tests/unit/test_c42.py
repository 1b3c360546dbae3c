"""The shipped catalogue's Calendar42 entry: trimming its bodies to the fields we serve
(malformed bodies refused), its settings, endpoint and prefetching."""

import pytest

from shared.config.checks import validate
from shared.config.settings import Settings, SettingsError
from shared.errors import NotFound, UpstreamError
from shared.upstreams.kinds import Endpoint
from shared.upstreams.registry import kind_of, upstreams, views

C42 = upstreams()["c42"]
EVENT_KIND = kind_of("c42:event:x")
SUBSCRIPTIONS_KIND = kind_of("c42:subscriptions:x")
VIEW = next(v for v in views() if v.name == "events-with-subscriptions")
COUNT = SUBSCRIPTIONS_KIND.pagination.total  # type: ignore[union-attr]


EVENT = {"meta_data": {}, "data": [{"id": "e1", "title": "Launch", "description": "long"}]}
PAGE = {
    "data": [
        {"subscriber": {"first_name": "Zoë", "last_name": "X", "user_id": 1}, "id": "s1"},
        {"subscriber": {"first_name": None, "last_name": "Y", "user_id": 2}},
        {"subscriber": {"first_name": "Søren", "last_name": "Z", "user_id": 3}},
    ],
    "meta_data": {"count": 23, "offset": 0},
}


def test_event_is_trimmed_to_id_and_title():
    """Only the fields the views serve are kept."""
    assert EVENT_KIND.trim(EVENT) == {"id": "e1", "title": "Launch"}


def test_event_with_empty_data_is_not_found():
    """C42 answering an empty data list means there is no such event."""
    with pytest.raises(NotFound):
        EVENT_KIND.trim({"data": []})


@pytest.mark.parametrize(
    "body",
    [None, [], "x", {"data": None}, {"data": [{"id": 1}]}, {"data": [{"title": 5}]}, {"data": [3]}],
)
def test_malformed_event_raises_upstream_error(body):
    """A body of the wrong shape never reaches the cache."""
    with pytest.raises(UpstreamError):
        EVENT_KIND.trim(body)


def test_subscriptions_keep_first_names_in_order():
    """First names in upstream order; subscribers without a first name are left out."""
    assert SUBSCRIPTIONS_KIND.trim(PAGE) == ["Zoë", "Søren"]
    assert COUNT(PAGE) == 23


@pytest.mark.parametrize(
    "body", [{"data": [{"subscriber": "x"}]}, {"data": [1]}, {"data": "x"}, {}]
)
def test_malformed_subscriptions_raise_upstream_error(body):
    """Subscriptions without subscriber objects are refused."""
    with pytest.raises(UpstreamError):
        SUBSCRIPTIONS_KIND.trim(body)


@pytest.mark.parametrize("meta", [None, {}, {"count": "3"}, {"count": -1}, {"count": True}])
def test_missing_or_bad_count_raises_upstream_error(meta):
    """Paging needs meta_data.count as a non-negative integer."""
    with pytest.raises(UpstreamError):
        COUNT({"data": [], "meta_data": meta})


def test_the_view_joins_the_pages_of_names_in_order():
    """The view is the event's id and title and every page's names, joined in order."""
    body = VIEW.build({"id": "e1"}, [{"id": "e1", "title": "T"},
                                     {"count": 3, "pages": [["a", "b"], ["c"]]}])
    assert body == {"id": "e1", "title": "T", "names": ["a", "b", "c"]}
    assert VIEW.resources({"id": "e1"}, Settings()) == ["c42:event:e1", "c42:subscriptions:e1"]


def test_resource_names_and_paths():
    """Resources are named kind:key, and their upstream paths use C42's bracket list."""
    assert EVENT_KIND.resource("abc") == "c42:event:abc"
    assert EVENT_KIND.path_for("c42:event:abc") == "/events/abc/"
    assert (SUBSCRIPTIONS_KIND.path_for("c42:subscriptions:a-1")
            == "/event-subscriptions/?event_ids=[a-1]")


@pytest.mark.parametrize(
    ("trim", "body", "error", "message"),
    [
        (EVENT_KIND.trim, {"data": "x"}, UpstreamError, "upstream body has no 'data' list"),
        (EVENT_KIND.trim, {"data": []}, NotFound, "event not found"),
        (EVENT_KIND.trim, {"data": [{"id": 1}]}, UpstreamError,
         "upstream event has no string 'title'"),
        (SUBSCRIPTIONS_KIND.trim, {"data": [{"x": 1}]}, UpstreamError,
         "upstream subscription has no 'subscriber' object"),
        (COUNT, {"meta_data": {}}, UpstreamError,
         "upstream body has no count at 'meta_data.count'"),
        (COUNT, [], UpstreamError,  # not an object at all
         "upstream body has no count at 'meta_data.count'"),
    ],
)
def test_refusals_say_what_is_wrong(trim, body, error, message):
    """A refused body raises the error its status comes from, with a message that says
    which part was missing (it reaches the logs and the client's error)."""
    with pytest.raises(error) as raised:
        trim(body)
    assert raised.value.message == message


def test_event_without_id_keeps_an_empty_id():
    """An event body without an id trims to an empty id, never "None"."""
    assert EVENT_KIND.trim({"data": [{"title": "T"}]}) == {"id": "", "title": "T"}


def test_only_non_empty_string_first_names_are_kept():
    """A first name that is empty, or not a string at all, is left out."""
    page = {"data": [{"subscriber": {"first_name": name}} for name in
                     ["Ada", "", 5, ["x"], {"a": 1}, True, "Grace"]]}
    assert SUBSCRIPTIONS_KIND.trim(page) == ["Ada", "Grace"]


def test_endpoint_sends_the_token_as_c42_expects():
    """C42 takes ``Authorization: Token <token>``; without a token no header is sent."""
    section = C42.section(base_url="https://c42.example/api/v2", token="s3cret",
                              page_size=25)
    assert C42.endpoint(section) == Endpoint("https://c42.example/api/v2",
                                             {"Authorization": "Token s3cret"}, 25)
    assert C42.endpoint(C42.section()).headers == {}


def test_prefetch_keeps_both_resources_of_each_event_warm():
    section = C42.section(prefetch=("launch-party", "e2"))
    assert C42.prefetch(section) == [
        "c42:event:launch-party", "c42:subscriptions:launch-party",
        "c42:event:e2", "c42:subscriptions:e2",
    ]
    assert C42.prefetch(C42.section()) == []


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"ttl": 0}, None),
        ({"ttl": 1}, None),
        ({"ttl": -1}, "c42.ttl must not be negative (0: cache.ttl)"),
        ({"page_size": 1}, None),
        ({"page_size": 100}, None),
        ({"page_size": 0}, "c42.page_size must be between 1 and 100"),
        ({"page_size": 101}, "c42.page_size must be between 1 and 100"),
        ({"base_url": "http://c42.local/api/v2"}, None),
        ({"base_url": "https://c42.example/api/v2"}, None),
        ({"base_url": "ftp://c42.example/"}, "c42.base_url must be an http(s) URL"),
        ({"base_url": "c42.example"}, "c42.base_url must be an http(s) URL"),
        ({"prefetch": ("a", "b_2-c")}, None),
        ({"prefetch": ("a", "no/slash")},
         "c42.prefetch must list event ids (letters, digits, '_' and '-')"),
    ],
)
def test_settings_section_is_checked_with_messages_naming_the_key(values, error):
    """The [c42] section's checks run with every settings load; a bad value is refused
    with a message that names the option."""
    if error is None:
        assert Settings().replace(c42=values).section("c42") == C42.section(**values)
    else:
        with pytest.raises(SettingsError) as refused:
            validate(Settings().replace(c42=values))
        assert str(refused.value) == error
