"""The shop: an upstream the project has never heard of, for catalogue tests (products
by SKU, over HTTP on loopback), and the catalogue that adds it."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import bottle

from shared.config.settings import PROJECT_DIR

SHOP = """
[upstreams.shop]
title = "Shop"
base_url = "{base}"
auth = {{ header = "X-Api-Key" }}
headers = {{ Accept = "application/json" }}

[upstreams.shop.resources.product]
path = "/products/{{sku}}"
checks = [{{ expr = "type(price) == 'number'", error = "product has no price" }}]
not_found = {{ expr = "deleted == `true`", message = "product not found" }}
keep = "{{name: name, price: price}}"

[views.prices]
route = "/prices/{{sku}}/"
summary = "A product's price"
params.sku = {{ type = "id", description = "Product SKU", example = "sku-1" }}
parts = {{ product = "shop:product:{{sku}}" }}
body = "{{sku: params.sku, price: product.price}}"
"""

PRODUCTS = {
    "sku-1": {"name": "Lamp", "price": 12.5, "stock": 3},
    "gone": {"name": "Old lamp", "price": 1, "deleted": True},
    "broken": {"name": "No price"},
    "huge": {"name": "Lamp " * 2000, "price": 99},  # 10 kB of name: over the tests' cap
    "timed": {"name": "Clock", "price": 30},
    "mine": {"name": "My basket", "price": 7},
}
# What the shop says of its answers' caching (a shop that says nothing: every other)
CACHE_CONTROL = {"timed": "public, max-age=120", "mine": "private, max-age=60"}


@dataclass
class Shop:
    """A small upstream the project has never heard of: products by SKU."""

    base_url: str = ""
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> bottle.Bottle:
        app = bottle.Bottle()

        @app.get("/api/products/<sku>")
        def product(sku: str) -> bottle.HTTPResponse:
            with self.lock:
                self.seen.append((bottle.request.path, bottle.request.get_header("X-Api-Key")))
            if sku not in PRODUCTS:
                return bottle.HTTPResponse('{"detail": "no"}', 404,
                                           {"Content-Type": "application/json"})
            headers = {"Content-Type": "application/json"}
            if sku in CACHE_CONTROL:
                headers["Cache-Control"] = CACHE_CONTROL[sku]
            return bottle.HTTPResponse(json.dumps(PRODUCTS[sku]), 200, headers)

        return app

    def asked(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.seen if p == path)


def with_shop(tmp_path: Path, base_url: str, extra: str = "") -> Path:
    path = tmp_path / "catalogue.toml"
    shipped = (PROJECT_DIR / "catalogue.toml").read_text()
    path.write_text(shipped + SHOP.format(base=base_url) + extra)
    return path
