"""Loading the catalogue: a broken one is refused whole, with a message naming the
upstream, resource or view and the key; a good one gives working kinds and views."""

from __future__ import annotations

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


def test_the_shipped_catalogue_has_calendar42_github_and_their_views():
    catalogue = load(DEFAULT_CATALOGUE)
    assert list(catalogue.upstreams) == ["c42", "github"]
    assert [k.name for k in catalogue.upstreams["c42"].kinds] == ["c42:event",
                                                                 "c42:subscriptions"]
    assert [k.name for k in catalogue.upstreams["github"].kinds] == [
        "github:org", "github:user_orgs", "github:members", "github:repos"]
    assert [(v.name, v.route, v.allowlist) for v in catalogue.views] == [
        ("events-with-subscriptions", "/events-with-subscriptions/{id}/", False),
        ("top", "/view/top/{n}/{field}", False),
        ("github-org", "/github/orgs/{org}", True),
        ("github-user-orgs", "/github/users/{user}/orgs", True)]


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
        (broken('path = "/products/{sku}"', 'path = "/products/{sku}/{colour}"'),
         "catalogue: upstreams.shop.resources.product.path: must start with '/' and hold one"),
        (broken('keep = "{name: name, price: price}"', 'keep = "{name: "'),
         "catalogue: upstreams.shop.resources.product.keep: invalid JMESPath"),
        (broken('keep = "{name: name, price: price}"\n', ""),
         "catalogue: upstreams.shop.resources.product.keep: is required"),
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
         "catalogue: views.prices.parts.product: 'shop:item:{sku}': no such resource"),
        (broken('parts = { product = "shop:product:{sku}" }',
                'parts = { product = "shop:product:{id}" }'),
         "catalogue: views.prices.parts.product: {id} is not a parameter of the view"),
        (broken('parts = { product = "shop:product:{sku}" }',
                'parts = { product = "shop:product:{shop.colour}" }'),
         "catalogue: views.prices.parts.product: {shop.colour} names no setting"),
        (broken('route = "/prices/{sku}/"', 'route = "/prices/{id}/"'),
         "catalogue: views.prices.route: must start with '/'"),
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
