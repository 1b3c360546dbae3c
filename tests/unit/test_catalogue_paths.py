"""Read-through resources: whole documents unless trimmed, keys of several parameters,
dots in paths, their routes, paged ones served as one list; and which fields of the
document a view's body reads, so a typo is refused at load."""

from __future__ import annotations

import jmespath
import pytest

from shared.errors import InvalidRequest
from shared.upstreams.catalogue import CatalogueError, parse
from shared.upstreams.catalogue_views import root_fields

BOOKS = '''
[upstreams.books]
base_url = "https://books.example"
paging = { style = "link", size = "per_page" }

[upstreams.books.resources.book]
path = "/books/{id}.json"
read_through = true
route = "/books/{id}"

[upstreams.books.resources.edition]
path = "/authors/{author}/books/{book}"
read_through = true
example = "le-guin/the-dispossessed"

[upstreams.books.resources.shelf]
path = "/shelves/{shelf}"
paged = true
read_through = true
query.sort = { type = "choice", choices = ["title", "added"] }
query.limit = { type = "count", max = 50 }

[views.edition-title]
route = "/editions/{author}/{book}"
params.author = { type = "id" }
params.book = { type = "id" }
parts = { edition = "books:edition:{author}/{book}" }
body = "{title: edition.title, author: params.author}"
'''


def kinds():
    return {k.name: k for k in parse(BOOKS).upstreams["books"].kinds}


def views():
    return {v.name: v for v in parse(BOOKS).views}


def test_a_read_through_resource_without_keep_is_the_upstream_document_whole():
    document = {"id": 7, "title": "Dune", "urls": {"html": "https://x"}, "tags": ["sf"]}
    assert kinds()["books:book"].trim(document) == document
    view = views()["books-book"]
    assert view.build({"id": "dune"}, [document]) == document


def test_dots_in_a_path_and_a_route_of_the_operator_s_choosing():
    """No doubled name: the route is what the operator wrote."""
    book = kinds()["books:book"]
    assert book.path_for("books:book:dune") == "/books/dune.json"
    assert views()["books-book"].route == "/books/{id}"
    assert book.resource("a.b") == "books:book:a.b"


def test_a_key_of_several_parameters_is_their_values_joined_by_a_slash():
    edition = kinds()["books:edition"]
    assert edition.key_names == ("author", "book")
    assert edition.resource("le-guin/the-dispossessed") == "books:edition:le-guin/the-dispossessed"
    assert edition.path_for("books:edition:le-guin/x.y") == "/authors/le-guin/books/x.y"
    view = views()["books-edition"]
    assert view.route == "/books/authors/{author}/books/{book}"
    assert [(p.name, p.example) for p in view.params] == [("author", "le-guin"),
                                                           ("book", "the-dispossessed")]
    assert view.resources({"author": "a", "book": "b"}, None) == ["books:edition:a/b"]
    combined = views()["edition-title"]
    assert combined.resources({"author": "a", "book": "b"}, None) == ["books:edition:a/b"]
    assert combined.build({"author": "a", "book": "b"}, [{"title": "T"}]) == {
        "title": "T", "author": "a"}


@pytest.mark.parametrize("key", ["a", "a/b/c", "a/..", "../b", "a//b", "a/b/", "/a/b", "a:b/c"])
def test_a_key_with_the_wrong_number_of_values_or_a_bad_value_is_refused(key):
    with pytest.raises(InvalidRequest):
        kinds()["books:edition"].resource(key)


def test_a_paged_read_through_is_one_list_of_all_its_pages_items():
    view = views()["books-shelf"]
    data = {"count": 3, "pages": [[{"n": 1}, {"n": 2}], [{"n": 3}]]}
    assert view.build({"shelf": "s"}, [data]) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert view.summary.endswith("(all pages), read through the cache")


@pytest.mark.parametrize(("expression", "fields"), [
    ("a", [("a", None)]),
    ("a.b.c", [("a", "b")]),
    ("{x: params.id, y: event.title}", [("params", "id"), ("event", "title")]),
    ("subscriptions.pages[]", [("subscriptions", "pages")]),
    ("repos.derived.stars[:5]", [("repos", "derived")]),
    ("a[?b == `1`].c", [("a", None)]),  # b and c are read of a's items
    ("a[*].b", [("a", None)]),
    ("a | b", [("a", None)]),  # b is read of a
    ("sort_by(a, &b)[0].c", [("a", None)]),
    ("length(a) > `1` && !c", [("a", None), ("c", None)]),
    ("[a, b.c]", [("a", None), ("b", "c")]),
    ("a || b", [("a", None), ("b", None)]),
    ("@.a.b", [("a", "b")]),
    ("@", []),
    ("`1`", []),
    ("a[0].b", [("a", None)]),
])
def test_the_fields_a_body_reads_of_the_document(expression, fields):
    assert list(root_fields(jmespath.compile(expression).parsed)) == fields


@pytest.mark.parametrize(("old", "new", "message"), [
    ("body = \"{title: edition.title", "body = \"{title: editon.title",
     "catalogue: views.edition-title.body: 'editon' is not a part of the view or params "
     "(parts: edition)"),
    ("author: params.author}", "author: params.writer}",
     "catalogue: views.edition-title.body: params.writer is not a parameter of the view "
     "(it has author, book)"),
    ('parts = { edition = "books:edition:{author}/{book}" }',
     'parts = { edition = "books:edition:{author}" }',
     "catalogue: views.edition-title.parts.edition: 'books:edition:{author}': the key of "
     "books:edition is {<param>}/{<param>}"),
    ('route = "/books/{id}"', 'route = "/books/{isbn}"',
     "catalogue: upstreams.books.resources.book.route: must start with '/', use letters, "
     "digits, '-', '_', '.' and hold each of the path's placeholders once"),
    ('example = "le-guin/the-dispossessed"', 'example = "le-guin"',
     "catalogue: upstreams.books.resources.edition.example: must be a key of 2 values joined "
     "by '/'"),
    ('query.limit = { type = "count", max = 50 }', 'query.limit = { type = "id", max = 50 }',
     "catalogue: upstreams.books.resources.shelf.query.limit.max: only a \"count\" has a "
     "max, a positive integer"),
    ('query.limit = { type = "count", max = 50 }', 'query.per_page = { type = "count" }',
     "catalogue: upstreams.books.resources.shelf.query.per_page: is a placeholder of the "
     "path or a paging parameter"),
    ('query.limit = { type = "count", max = 50 }', 'query.shelf = { type = "id" }',
     "catalogue: upstreams.books.resources.shelf.query.shelf: is a placeholder of the path "
     "or a paging parameter"),
    ('paged = true\nread_through = true\nquery.sort', 'paged = true\nquery.sort',
     "catalogue: upstreams.books.resources.shelf.query: only a read-through resource takes "
     "query parameters"),
])
def test_a_mistake_is_refused_at_load_with_its_place(old, new, message):
    assert old in BOOKS
    with pytest.raises(CatalogueError) as refused:
        parse(BOOKS.replace(old, new))
    assert str(refused.value) == message


def test_a_read_through_s_declared_query_is_part_of_its_key_and_path():
    shelf = kinds()["books:shelf"]
    view = views()["books-shelf"]
    assert [p.name for p in view.query] == ["sort", "limit"]
    assert view.resources({"shelf": "s"}, None) == ["books:shelf:s"]
    both = view.resources({"shelf": "s", "sort": "title", "limit": 5}, None)
    assert both == ["books:shelf:s?limit=5&sort=title"]  # in name order: one key a query
    assert shelf.path_for(both[0]) == "/shelves/s?limit=5&sort=title"
    assert shelf.check("s?limit=50&sort=added") == "s?limit=50&sort=added"


@pytest.mark.parametrize("key", ["s?", "s?sort=size", "s?limit=51", "s?limit=0", "s?page=2",
                                 "s?sort=title&limit=5", "s?limit=5&limit=6", "s?sort",
                                 "s?limit=5&", "s/t?sort=title"])
def test_a_query_that_is_not_declared_and_valid_is_refused(key):
    with pytest.raises(InvalidRequest):
        kinds()["books:shelf"].check(key)
