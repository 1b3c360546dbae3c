"""Loading the catalogue: a broken one is refused whole, with a message naming the
upstream, resource or view and the key; a good one gives working kinds and views."""

from __future__ import annotations

import dataclasses

import pytest

from shared.config.settings import SettingsError
from shared.errors import NotFound, UpstreamError
from shared.upstreams.catalogue import CatalogueError, load, parse
from shared.upstreams.registry import DEFAULT_CATALOGUE

SHOP = '''
[upstreams.shop]
title = "Shop"
base_url = "https://shop.example/api"
auth = { header = "X-Api-Key" }
headers = { Accept = "application/json" }
prefetch = ["product:{featured}"]
params.featured = { type = "ids", default = ["sku-1"], help = "Products kept warm" }

[upstreams.shop.resources.product]
path = "/products/{sku}"
checks = [{ expr = "type(price) == 'number'", error = "product has no price" }]
not_found = { expr = "deleted == `true`", message = "product not found" }
keep = "{name: name, price: price}"

[views.prices]
route = "/prices/{sku}/"
params.sku = { type = "id", example = "sku-1" }
parts = { product = "shop:product:{sku}" }
body = "{sku: params.sku, price: product.price}"
'''


def test_a_catalogue_entry_is_an_upstream_with_kinds_settings_and_views():
    catalogue = parse(SHOP)
    shop = catalogue.upstreams["shop"]
    [product] = shop.kinds
    assert product.name == "shop:product" and product.path_for("shop:product:a1") == "/products/a1"
    assert product.trim({"name": "Lamp", "price": 12.5, "stock": 3}) == {"name": "Lamp",
                                                                         "price": 12.5}
    with pytest.raises(UpstreamError, match="^product has no price$"):
        product.trim({"name": "Lamp"})
    with pytest.raises(NotFound, match="^product not found$"):
        product.trim({"price": 1, "deleted": True})
    section = shop.section(token="k3y")
    assert (section.base_url, section.ttl, section.featured) == (
        "https://shop.example/api", 0, ("sku-1",))
    endpoint = shop.endpoint(section)
    assert endpoint.headers == {"Accept": "application/json", "X-Api-Key": "k3y"}
    assert shop.prefetch(section) == ["shop:product:sku-1"]
    [view] = catalogue.views
    assert view.build({"sku": "a1"}, [{"name": "Lamp", "price": 3}]) == {"sku": "a1", "price": 3}


def test_an_upstream_s_defaults_title_ttl_and_budget():
    """Without a title the name stands in; TTL 0 (cache.ttl) and no budget unless given."""
    bare = parse('[upstreams.bare]\nbase_url = "https://bare.example"\n'
                 '[upstreams.bare.resources.thing]\npath = "/things/{id}"\nkeep = "@"\n')
    upstream = bare.upstreams["bare"]
    section = upstream.section()
    assert (section.ttl, section.budget_per_hour, section.token) == (0, 0, "")
    assert upstream.endpoint(section).headers == {}  # no auth declared: nothing sent
    fields = {f.name: f.metadata for f in dataclasses.fields(upstream.section)}
    assert fields["base_url"]["help"] == "bare API base URL"
    assert fields["base_url"]["env"] == "BARE_BASE_URL" and not fields["base_url"]["live"]
    assert fields["token"]["env"] == "BARE_TOKEN" and fields["token"]["live"]
    assert "page_size" not in fields  # not paged
    assert upstream.endpoint(upstream.section(token="t")).headers == {}
    assert (upstream.endpoint(section).connect_timeout,
            upstream.endpoint(section).read_timeout) == (0.0, 0.0)  # the [upstream] ones


def test_every_setting_of_an_upstream_is_declared_like_any_option():
    """Each generated setting has its environment name and says whether a running
    process applies it: the base URL needs a restart, the rest are live."""
    paged = parse(SHOP.replace('prefetch = ["product:{featured}"]', 'prefetch = ["product:{featured}"]\npaging = { style = "link", size = "n", page_size = 7, max_page_size = 9 }'))
    section = paged.upstreams["shop"].section
    declared = {f.name: (f.metadata["env"], f.metadata["live"], f.default)
                for f in dataclasses.fields(section)}
    assert declared == {
        "base_url": ("SHOP_BASE_URL", False, "https://shop.example/api"),
        "token": ("SHOP_TOKEN", True, ""),
        "ttl": ("SHOP_TTL", True, 0),
        "min_ttl": ("SHOP_MIN_TTL", True, 0),
        "max_age": ("SHOP_MAX_AGE", True, 0),
        "budget_per_hour": ("SHOP_BUDGET_PER_HOUR", True, 0),
        "max_in_flight": ("SHOP_MAX_IN_FLIGHT", True, 0),
        "page_size": ("SHOP_PAGE_SIZE", True, 7),
        "featured": ("SHOP_FEATURED", True, ("sku-1",)),
    }
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(section)}
    assert helps["token"] == "Shop API token (sent as 'X-Api-Key: <token>')"
    assert helps["page_size"] == "Items per upstream page (1-9)"
    assert helps["featured"] == "Products kept warm"
    with pytest.raises(dataclasses.FrozenInstanceError):
        section().ttl = 5  # type: ignore[misc]


@pytest.mark.parametrize("route", ["/Prices/{sku}", "/prices/{sku}", "/p_1/x-y/{sku}/"])
def test_routes_of_letters_digits_dash_and_underscore_are_taken(route):
    view = next(v for v in parse(SHOP.replace('route = "/prices/{sku}/"', f'route = "{route}"')).views
                if v.name == "prices")
    assert view.route == route


def test_an_upstream_may_have_its_own_timeouts():
    timed = parse(SHOP.replace('title = "Shop"', 'title = "Shop"\ntimeouts = { connect = 1, read = 2.5 }'))
    shop = timed.upstreams["shop"]
    endpoint = shop.endpoint(shop.section())
    assert (endpoint.connect_timeout, endpoint.read_timeout) == (1.0, 2.5)
    with pytest.raises(CatalogueError, match="^catalogue: upstreams.shop.timeouts.read: must not be negative$"):
        parse(SHOP.replace('title = "Shop"', 'title = "Shop"\ntimeouts = { read = -1 }'))


def test_the_shipped_catalogue_has_calendar42_github_and_their_views():
    catalogue = load(DEFAULT_CATALOGUE)
    assert list(catalogue.upstreams) == ["c42", "github"]
    assert [k.name for k in catalogue.upstreams["c42"].kinds] == ["c42:event",
                                                                 "c42:subscriptions"]
    assert [k.name for k in catalogue.upstreams["github"].kinds] == [
        "github:org", "github:repo", "github:user_orgs", "github:members", "github:org_repos",
        "github:repos"]
    assert [(v.name, v.route, v.allowlist) for v in catalogue.views] == [
        ("events-with-subscriptions", "/events-with-subscriptions/{id}/", False),
        ("top", "/view/top/{n}/{field}", False),
        ("github-org", "/github/orgs/{org}", True),
        ("github-repo", "/github/repos/{owner}/{repo}", True),
        ("github-user-orgs", "/github/users/{user}/orgs", True),
        ("github-members", "/github/orgs/{org}/members", True),
        ("github-org-repos", "/github/orgs/{org}/repos", True)]


def broken(old: str, new: str) -> str:
    assert old in SHOP
    return SHOP.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[upstreams", "catalogue: not valid TOML"),
        ("", "catalogue: upstreams: must be a table"),
        (broken('path = "/products/{sku}"', 'path = "/products/{sku}"\nx = 1'),
         "catalogue: upstreams.shop.resources.product.x: unknown key"),
        ('upstreams.shop = "x"', "catalogue: upstreams.shop: must be a table"),
        (SHOP + "\n[other]\n", "catalogue: other: unknown key"),
        (broken('base_url = "https://shop.example/api"', 'base_url = "ftp://x"'),
         "catalogue: upstreams.shop.base_url: must be an http(s) URL"),
        (broken('base_url = "https://shop.example/api"\n', ""),
         "catalogue: upstreams.shop.base_url: is required"),
        (broken('title = "Shop"', 'title = "Shop"\ntoken = "secret"'),
         "catalogue: upstreams.shop.token: unknown key"),
        (broken('title = "Shop"', 'title = "Shop"\nfreshness = "headers"'),
         "catalogue: upstreams.shop.freshness: must be \"configured\" (ttl) or \"upstream\""),
        (broken('path = "/products/{sku}"', 'path = "/products/{sku}/{sku}"'),
         "catalogue: upstreams.shop.resources.product.path: must start with '/' and hold each"),
        (broken('path = "/products/{sku}"', 'path = "/products/{sku}/{colour}"'),
         "catalogue: views.prices.parts.product: 'shop:product:{sku}': the key of shop:product "
         "is {<param>}/{<param>}"),
        (broken('keep = "{name: name, price: price}"', 'keep = "{name: "'),
         "catalogue: upstreams.shop.resources.product.keep: invalid JMESPath"),
        (broken("expr = \"type(price) == 'number'\"", 'expr = "price =="'),
         "catalogue: upstreams.shop.resources.product.checks.0.expr: invalid JMESPath"),
        (broken('keep = "{name', 'paged = true\nkeep = "{name'),
         "catalogue: upstreams.shop.resources.product.paged: the upstream declares no paging"),
        (broken('prefetch = ["product:{featured}"]', 'prefetch = ["price:{featured}"]'),
         "catalogue: upstreams.shop.prefetch: 'price:{featured}' is not"),
        (broken('default = ["sku-1"]', 'default = ["no/slash"]'),
         "catalogue: upstreams.shop.params.featured.default: must list ids"),
        (broken('type = "ids"', 'type = "list"'),
         "catalogue: upstreams.shop.params.featured.type: must be \"id\" or \"ids\""),
        (broken('parts = { product = "shop:product:{sku}" }',
                'parts = { product = "shop:item:{sku}" }'),
         "catalogue: views.prices.parts.product: 'shop:item:{sku}': no resource 'shop:item'"),
        (broken('parts = { product = "shop:product:{sku}" }',
                'parts = { product = "shop:product:{id}" }'),
         "catalogue: views.prices.parts.product: {id} is not a parameter of the view"),
        (broken('parts = { product = "shop:product:{sku}" }',
                'parts = { product = "shop:product:{shop.colour}" }'),
         "catalogue: views.prices.parts.product: {shop.colour} names no setting"),
        (broken('route = "/prices/{sku}/"', 'route = "/prices/{id}/"'),
         "catalogue: views.prices.route: {id} is not declared: add params.id"),
        (broken('body = "{sku: params.sku, price: product.price}"',
                'body = "{sku: params.sku, price: prodcut.price}"'),
         "catalogue: views.prices.body: 'prodcut' is not a part of the view or params "
         "(parts: product)"),
        (broken('body = "{sku: params.sku, price: product.price}"',
                'body = "{sku: params.id, price: product.price}"'),
         "catalogue: views.prices.body: params.id is not a parameter of the view (it has sku)"),
        (broken('route = "/prices/{sku}/"', 'route = "//evil.example/{sku}"'),
         "catalogue: views.prices.route: must start with '/'"),
        (broken('params.sku = { type = "id", example = "sku-1" }',
                'params.sku = { type = "float" }'),
         "catalogue: views.prices.params.sku.type: must be \"id\", \"count\" or \"choice\""),
        (broken('body = "{sku: params.sku, price: product.price}"', 'body = "[[["'),
         "catalogue: views.prices.body: invalid JMESPath"),
    ],
)
def test_a_broken_catalogue_is_refused_with_what_and_where(text, message):
    """Each mistake is named by its place in the file; the error is a settings error, so
    every process refuses to start on it the way it does on a bad option."""
    with pytest.raises(CatalogueError) as refused:
        parse(text)
    assert str(refused.value).startswith(message), str(refused.value)
    assert isinstance(refused.value, SettingsError)


def test_a_body_that_breaks_a_jmespath_function_is_malformed_not_a_crash():
    """length() of a number raises inside JMESPath; the check fails as a 502 instead."""
    catalogue = parse(broken("expr = \"type(price) == 'number'\"", 'expr = "length(price) > `0`"'))
    [product] = catalogue.upstreams["shop"].kinds
    with pytest.raises(UpstreamError, match="^product has no price$"):
        product.trim({"price": 5})


LINK = SHOP.replace('prefetch = ["product:{featured}"]', 'prefetch = ["product:{featured}"]\n'
                   'paging = { style = "link", size = "per_page", page_size = 10, '
                   'max_page_size = 50 }')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("upstreams = {}",
         'catalogue: upstreams: the catalogue lists no upstream'),
        (SHOP.replace('headers = { Accept = "application/json" }', 'headers = "json"'),
         'catalogue: upstreams.shop.headers: must be a table'),
        (SHOP.replace('auth = { header = "X-Api-Key" }', 'auth = "X-Api-Key"'),
         'catalogue: upstreams.shop.auth: must be a table'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'paging = "link"'),
         'catalogue: upstreams.shop.paging: must be a table'),
        (SHOP.replace('params.featured = { type = "ids", default = ["sku-1"], help = "Products kept warm" }', 'params = "x"'),
         'catalogue: upstreams.shop.params: must be a table'),
        (SHOP.replace('[upstreams.shop.resources.product]', '[upstreams.shop.other]'),
         'catalogue: upstreams.shop.other: unknown key (known: auth, base_url, budget_per_hour, freshness, headers, max_age, max_in_flight, min_ttl, paging, params, prefetch, resources, timeouts, title, ttl)'),
        ('[upstreams.shop]\nbase_url = "http://x"\n',
         'catalogue: upstreams.shop.resources: must be a table'),
        (SHOP + '\n[views.other]\nroute = "/o/{id}"\nparams.id = { type = "id" }\nbody = "@"\n',
         'catalogue: views.other.parts: must be a table'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'paging = { style = "link", size = 5 }'),
         'catalogue: upstreams.shop.paging.size: must be a string'),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}"\npaged = "yes"'),
         'catalogue: upstreams.shop.resources.product.paged: must be true or false'),
        ('[upstreams.Shop]\nbase_url = "http://x"\n[upstreams.Shop.resources.a]\npath = "/a/{k}"\nkeep = "@"',
         "catalogue: upstreams.Shop: an upstream's name is 1-32 lower-case letters, digits and '_'"),
        (SHOP.replace('title = "Shop"', 'title = "Shop"\nttl = -1'),
         'catalogue: upstreams.shop.ttl: must not be negative'),
        (SHOP.replace('title = "Shop"', 'title = "Shop"\nmin_ttl = -1'),
         'catalogue: upstreams.shop.min_ttl: must not be negative'),
        (SHOP.replace('title = "Shop"', 'title = "Shop"\nmax_age = -1'),
         'catalogue: upstreams.shop.max_age: must not be negative'),
        (SHOP.replace('title = "Shop"', 'title = "Shop"\nbudget_per_hour = -5'),
         'catalogue: upstreams.shop.budget_per_hour: must not be negative'),
        (SHOP.replace('title = "Shop"', 'title = "Shop"\nmax_in_flight = -1'),
         'catalogue: upstreams.shop.max_in_flight: must not be negative'),
        (SHOP.replace('title = "Shop"', 'title = 5'),
         'catalogue: upstreams.shop.title: must be a string'),
        (SHOP.replace('title = "Shop"', 'title = "Shop"\nttl = true'),
         'catalogue: upstreams.shop.ttl: must be an integer'),
        (SHOP.replace('headers = { Accept = "application/json" }', 'headers = { Accept = 1 }'),
         'catalogue: upstreams.shop.headers: values must be strings'),
        (SHOP.replace('auth = { header = "X-Api-Key" }', 'auth = { header = "X-Api-Key", kind = "x" }'),
         'catalogue: upstreams.shop.auth.kind: unknown key (known: header, scheme)'),
        (SHOP.replace('auth = { header = "X-Api-Key" }', 'auth = { scheme = "Bearer" }'),
         'catalogue: upstreams.shop.auth.header: is required'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'prefetch = "product:{featured}"'),
         'catalogue: upstreams.shop.prefetch: must be a list'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'prefetch = [5]'),
         'catalogue: upstreams.shop.prefetch: 5 is not <resource>:{<param>} with a resource and a parameter of this upstream'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'prefetch = ["product:{nothing}"]'),
         "catalogue: upstreams.shop.prefetch: 'product:{nothing}' is not <resource>:{<param>} with a resource and a parameter of this upstream"),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'prefetch = ["product:x{featured}"]'),
         "catalogue: upstreams.shop.prefetch: 'product:x{featured}' is not <resource>:{<param>} with a resource and a parameter of this upstream"),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'paging = { style = "pages" }'),
         'catalogue: upstreams.shop.paging.style: must be "offset" or "link"'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'paging = { style = "link", size = "n", page_size = 0 }'),
         'catalogue: upstreams.shop.paging.page_size: must be between 1 and max_page_size'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'paging = { style = "link", size = "n", page_size = 60, max_page_size = 50 }'),
         'catalogue: upstreams.shop.paging.page_size: must be between 1 and max_page_size'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'paging = { style = "offset", limit = "l", offset = "o" }'),
         'catalogue: upstreams.shop.paging.count: is required'),
        (SHOP.replace('prefetch = ["product:{featured}"]', 'paging = { style = "link", limit = "l" }'),
         'catalogue: upstreams.shop.paging.limit: unknown key (known: max_page_size, page_size, size, style)'),
        (SHOP.replace('params.featured = {', 'params.base_url = {'),
         "catalogue: upstreams.shop.params.base_url: a parameter's name is lower-case letters, digits and '_', and not one of base_url, budget_per_hour, max_age, max_in_flight, min_ttl, page_size, token, ttl"),
        (SHOP.replace('params.featured = {', 'params.Featured = {'),
         "catalogue: upstreams.shop.params.Featured: a parameter's name is lower-case letters, digits and '_', and not one of base_url, budget_per_hour, max_age, max_in_flight, min_ttl, page_size, token, ttl"),
        (SHOP.replace('params.featured = { type = "ids", default = ["sku-1"], help = "Products kept warm" }', 'params.featured = "x"'),
         'catalogue: upstreams.shop.params.featured: must be a table'),
        (SHOP.replace('params.featured = { type = "ids", default = ["sku-1"], help = "Products kept warm" }', 'params.featured = { type = "id", default = "no/slash" }'),
         "catalogue: upstreams.shop.params.featured.default: must be an id (letters, digits, '_' and '-')"),
        (SHOP.replace('params.featured = { type = "ids", default = ["sku-1"], help = "Products kept warm" }', 'params.featured = { type = "id" }'),
         'catalogue: upstreams.shop.params.featured.default: is required'),
        (SHOP.replace('[upstreams.shop.resources.product]', '[upstreams.shop.resources.Product]'),
         "catalogue: upstreams.shop.resources.Product: a resource's name is lower-case letters, digits and '_'"),
        (SHOP.replace('path = "/products/{sku}"', 'path = "products/{sku}"'),
         "catalogue: upstreams.shop.resources.product.path: must start with '/' and hold each placeholder once, e.g. \"/events/{id}/\" or \"/repos/{owner}/{repo}\""),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{1sku}"'),
         "catalogue: upstreams.shop.resources.product.path: must start with '/' and hold each placeholder once, e.g. \"/events/{id}/\" or \"/repos/{owner}/{repo}\""),
        (SHOP.replace('checks = [{ expr = "type(price) == \'number\'", error = "product has no price" }]', 'checks = ["x"]'),
         'catalogue: upstreams.shop.resources.product.checks.0: must be a table with expr and error'),
        (SHOP.replace('checks = [{ expr = "type(price) == \'number\'", error = "product has no price" }]', 'checks = [{ expr = "@" }]'),
         'catalogue: upstreams.shop.resources.product.checks.0.error: is required'),
        (SHOP.replace('not_found = { expr = "deleted == `true`", message = "product not found" }', 'not_found = { expr = "deleted" }'),
         'catalogue: upstreams.shop.resources.product.not_found.message: is required'),
        (SHOP.replace('not_found = { expr = "deleted == `true`", message = "product not found" }', 'not_found = "deleted"'),
         'catalogue: upstreams.shop.resources.product.not_found: must be a table'),
        (SHOP.replace('keep = "{name: name, price: price}"', 'keep = "@"\nderive = { top = "items" }'),
         'catalogue: upstreams.shop.resources.product.derive: only a paged resource derives values from its items'),
        (LINK.replace('keep = "{name: name, price: price}"', 'keep = "@"\npaged = true\nread_through = true'),
         "catalogue: views.prices.body: product.price: a paged part has only count, pages"),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}?x=1"').replace('keep = "{name', 'read_through = true\nkeep = "{name'),
         "catalogue: upstreams.shop.resources.product.read_through: a read-through resource's path is letters, digits, '-', '_', '.', '/' and its placeholders, no query"),
        (SHOP.replace('[views.prices]', '[views.Prices]'),
         "catalogue: views.Prices: a view's name is lower-case letters, digits and '-'"),
        (SHOP.replace('[views.prices]', '[views.prices]\nextra = 1'),
         'catalogue: views.prices.extra: unknown key (known: body, not_found, params, parts, route, schema, summary)'),
        (SHOP.replace('parts = { product = "shop:product:{sku}" }', 'parts = { product = 5 }'),
         'catalogue: views.prices.parts.product: must be "<upstream>:<resource>:{<param>}"'),
        (SHOP.replace('parts = { product = "shop:product:{sku}" }', 'parts = { params = "shop:product:{sku}" }'),
         'catalogue: views.prices.parts.params: must be "<upstream>:<resource>:{<param>}"'),
        (SHOP.replace('parts = { product = "shop:product:{sku}" }', 'parts = { product = "shop:product:x{sku}" }'),
         "catalogue: views.prices.parts.product: 'shop:product:x{sku}': the key of shop:product is {<param>}"),
        (SHOP.replace('parts = { product = "shop:product:{sku}" }', 'parts = { product = "shop:product:{other.featured}" }'),
         'catalogue: views.prices.parts.product: {other.featured} names no setting of an upstream'),
        (SHOP.replace('route = "/prices/{sku}/"', 'route = "/prices/{sku}/{sku}"'),
         "catalogue: views.prices.route: must hold the parameter sku once, as {sku}"),
        (SHOP.replace('route = "/prices/{sku}/"', 'route = "/prices/"'),
         "catalogue: views.prices.route: must hold the parameter sku once, as {sku}"),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}"\nroute = "/p/{sku}"'),
         "catalogue: upstreams.shop.resources.product.route: only a read-through resource has a route"),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}"\nread_through = true\nroute = "/p/{id}"'),
         "catalogue: upstreams.shop.resources.product.route: must start with '/', use letters, digits, '-', '_', '.' and hold each of the path's placeholders once"),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}/{colour}"\ntags = ["p:{sku}"]'),
         "catalogue: upstreams.shop.resources.product.tags: only a resource of one placeholder has tags"),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}/{colour}"\nexample = "a"'),
         "catalogue: upstreams.shop.resources.product.example: must be a key of 2 values joined by '/'"),
        (SHOP.replace('route = "/prices/{sku}/"', 'route = "//prices/{sku}/"'),
         "catalogue: views.prices.route: must start with '/' and use letters, digits, '-', '_', '.' and {parameters}"),
        (SHOP.replace('route = "/prices/{sku}/"', 'route = "prices/{sku}/"'),
         "catalogue: views.prices.route: must start with '/' and use letters, digits, '-', '_', '.' and {parameters}"),
        (SHOP.replace('route = "/prices/{sku}/"', 'route = "/pri ces/{sku}/"'),
         "catalogue: views.prices.route: must start with '/' and use letters, digits, '-', '_', '.' and {parameters}"),
        (SHOP.replace('params.sku = { type = "id", example = "sku-1" }', 'params.sku = { type = "choice" }'),
         'catalogue: views.prices.params.sku.choices: a "choice" parameter lists its choices (ids), and only it has choices'),
        (SHOP.replace('params.sku = { type = "id", example = "sku-1" }', 'params.sku = { type = "id", choices = ["a"] }'),
         'catalogue: views.prices.params.sku.choices: a "choice" parameter lists its choices (ids), and only it has choices'),
        (SHOP.replace('params.sku = { type = "id", example = "sku-1" }', 'params.sku = { type = "choice", choices = ["a b"] }'),
         'catalogue: views.prices.params.sku.choices: a "choice" parameter lists its choices (ids), and only it has choices'),
        (SHOP.replace('params.sku = { type = "id", example = "sku-1" }', 'params.sku = "id"'),
         'catalogue: views.prices.params.sku: must be a table'),
        (SHOP.replace('body = "{sku: params.sku, price: product.price}"', 'body = "product.${sku}"'),
         'catalogue: views.prices.body: ${sku} is not a count or choice parameter'),
        (SHOP.replace('body = "{sku: params.sku, price: product.price}"', 'body = "product.${nothing}"'),
         'catalogue: views.prices.body: ${nothing} is not a count or choice parameter'),
        (SHOP.replace('route = "/prices/{sku}/"', 'route = "/prices/{sku}/{n}"').replace('params.sku = { type = "id", example = "sku-1" }', 'params.sku = { type = "id", example = "sku-1" }\nparams.n = { type = "count" }').replace('body = "{sku: params.sku, price: product.price}"', 'body = "[product][:${n}"'),
         'catalogue: views.prices.body: invalid JMESPath (syntax error'),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}"\ntags = ["sku"]'),
         'catalogue: upstreams.shop.resources.product.tags.0: a tag is letters, digits, \'_\', \'-\', \':\' and \'.\' around {sku}, e.g. "event:{sku}"'),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}"\ntags = ["p {sku}"]'),
         'catalogue: upstreams.shop.resources.product.tags.0: a tag is letters, digits, \'_\', \'-\', \':\' and \'.\' around {sku}, e.g. "event:{sku}"'),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}"\ntags = ["{sku}:{sku}"]'),
         'catalogue: upstreams.shop.resources.product.tags.0: a tag is letters, digits, \'_\', \'-\', \':\' and \'.\' around {sku}, e.g. "event:{sku}"'),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}"\ntags = "x"'),
         'catalogue: upstreams.shop.resources.product.tags: must be a list'),
        (SHOP.replace('path = "/products/{sku}"', 'path = "/products/{sku}"\nread_through = true') + '\n[views.shop-product]\nroute = "/x/{sku}"\nparams.sku = { type = "id" }\nparts = { product = "shop:product:{sku}" }\nbody = "@"\n',
         "catalogue: views.shop-product: is also the name of a read-through resource's route"),
    ],
)
def test_every_mistake_is_refused_with_its_own_message(text, message):
    """Each check of the loader, by the exact message a user reads (the start of it
    where JMESPath adds its own words)."""
    with pytest.raises(CatalogueError) as refused:
        parse(text)
    assert str(refused.value) == message or (
        message.endswith("(syntax error") and str(refused.value).startswith(message))


TAGGED = SHOP.replace('path = "/products/{sku}"',
                      'path = "/products/{sku}"\ntags = ["product:{sku}", "sku.{sku}.v1"]')


@pytest.mark.parametrize(
    ("tag", "resource"),
    [
        ("product:a1", "shop:product:a1"),
        ("sku.a-1_B.v1", "shop:product:a-1_B"),
        ("product:", None),  # no key
        ("product:a:b", None),  # not a key
        ("product:a b", None),
        ("sku.a1.v2", None),
        ("sku.a1", None),
        ("products:a1", None),
        ("xproduct:a1", None),
        ("product:" + "k" * 129, None),  # keys are at most 128 characters
    ],
)
def test_a_tag_names_the_resource_whose_key_it_holds(tag, resource):
    """A kind's tag templates map a tag back to the one resource carrying it."""
    [kind] = parse(TAGGED).upstreams["shop"].kinds
    assert kind.tagged(tag) == resource
    if resource is not None:
        assert tag in kind.tags_of(resource)


def test_the_shipped_catalogue_tags_an_event_and_an_organisation_across_kinds():
    kinds = {k.name: k for u in load(DEFAULT_CATALOGUE).upstreams.values() for k in u.kinds}
    assert sorted(r for k in kinds.values() if (r := k.tagged("event:e1"))) == [
        "c42:event:e1", "c42:subscriptions:e1"]
    assert sorted(r for k in kinds.values() if (r := k.tagged("org:acme"))) == [
        "github:members:acme", "github:org:acme", "github:org_repos:acme", "github:repos:acme"]
