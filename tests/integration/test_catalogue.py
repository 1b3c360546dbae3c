"""A third upstream defined only in a test catalogue, served end to end by a real worker
and API: no code. A broken catalogue stops them at start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shared.config.settings import PROJECT_DIR
from tests.harness import Stack
from tests.helpers import VIEW, expected
from tests.integration.shop import Shop, with_shop


@pytest.fixture
def shop_api(env: dict[str, str], shop: Shop, tmp_path: Path) -> Iterator[str]:
    """A worker and an API of their own, on the catalogue with the shop added."""
    env = {**env, "CACHEDPROXY_CATALOGUE": str(with_shop(tmp_path, shop.base_url)),
           "SHOP_TOKEN": "k3y-for-the-shop", "KEY_PREFIX": "cpshop",
           "CACHE_MAX_ENTRY_BYTES": "4096"}
    with Stack(env, tmp_path) as stack:
        stack.worker("shop")
        yield stack.api()


def test_an_upstream_added_to_the_catalogue_is_served_end_to_end(shop_api: str, shop: Shop):
    """The shop's view: fetched once with the shop's own auth header, then a hit; its
    404 rule, its checks and the typed parameter all hold; Calendar42 still works."""
    first = requests.get(f"{shop_api}/prices/sku-1/", timeout=15)
    assert first.status_code == 200 and first.json() == {"sku": "sku-1", "price": 12.5}
    assert first.headers["Cache-Status"].startswith("cachedproxy; fwd=miss")
    again = requests.get(f"{shop_api}/prices/sku-1", timeout=15)
    assert again.json() == first.json()
    assert again.headers["Cache-Status"].startswith("cachedproxy; hit")
    assert shop.seen == [("/api/products/sku-1", "k3y-for-the-shop")]

    gone = requests.get(f"{shop_api}/prices/gone/", timeout=15)
    assert gone.status_code == 404 and gone.json()["error"]["message"] == "product not found"
    missing = requests.get(f"{shop_api}/prices/unknown/", timeout=15)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    broken = requests.get(f"{shop_api}/prices/broken/", timeout=15)
    assert broken.status_code == 502
    assert broken.json()["error"] == {"status": 502, "code": "upstream_error",
                                      "message": "product has no price"}
    bad = requests.get(f"{shop_api}/prices/a:b/", timeout=15)
    assert bad.status_code == 400 and shop.asked("/api/products/a:b") == 0

    spec = requests.get(f"{shop_api}/openapi.json", timeout=15).json()
    assert spec["paths"]["/prices/{sku}/"]["get"]["summary"] == "A product's price"
    c42 = requests.get(f"{shop_api}{VIEW}/team-standup/", timeout=15)
    assert c42.status_code == 200 and c42.json() == expected("team-standup")


def test_an_upstream_answer_over_the_size_cap_is_a_502_and_not_stored(shop_api: str,
                                                                     shop: Shop):
    """A resource whose kept data is over cache.max_entry_bytes is refused with a clear
    message and nothing is stored: the next request asks upstream again."""
    for _ in range(2):
        r = requests.get(f"{shop_api}/prices/huge/", timeout=15)
        assert r.status_code == 502
        message = r.json()["error"]["message"]
        assert message.startswith("upstream data too large to store (")
        assert message.endswith(" bytes, at most 4096)")
    assert shop.asked("/api/products/huge") == 2


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "api"],
    [sys.executable, "-m", "celery", "-A", "worker", "worker"],
])
def test_a_broken_catalogue_stops_a_process_at_start(env: dict[str, str], tmp_path: Path,
                                                     command: list[str]):
    """The API and the worker refuse a broken catalogue: exit code 2 and one JSON line
    that names the upstream, the resource and the key."""
    catalogue = with_shop(tmp_path, "http://127.0.0.1:9/api").read_text().replace(
        'keep = "{name: name, price: price}"', 'keep = "{name: "')
    path = tmp_path / "catalogue.toml"
    path.write_text(catalogue)
    done = subprocess.run(command, env={**env, "CACHEDPROXY_CATALOGUE": str(path)},
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    [line] = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert line["event"] == "cannot start"
    assert line["error"].startswith(
        f"{path}: upstreams.shop.resources.product.keep: invalid JMESPath")


@pytest.fixture
def following_shop(env: dict[str, str], shop: Shop, tmp_path: Path) -> Iterator[str]:
    """The shop with ``freshness = "upstream"``: its answers' Cache-Control is followed."""
    path = with_shop(tmp_path, shop.base_url)
    path.write_text(path.read_text().replace(
        'title = "Shop"', 'title = "Shop"\nfreshness = "upstream"\nttl = 45'))
    env = {**env, "CACHEDPROXY_CATALOGUE": str(path), "KEY_PREFIX": "cpshopfresh"}
    with Stack(env, tmp_path) as stack:
        stack.worker("shopfresh")
        yield stack.api()


def max_age(response: requests.Response) -> int:
    return int(re.search(r"max-age=(\d+)", response.headers["Cache-Control"]).group(1))


def test_an_upstream_s_own_freshness_is_followed_when_opted_in(following_shop: str,
                                                               shop: Shop):
    """max-age=120 from the shop makes the entry fresh for 120 s; a product it says
    nothing of takes the configured ttl; a private answer is not cached, and the client
    is told why."""
    timed = requests.get(f"{following_shop}/prices/timed/", timeout=15)
    assert timed.status_code == 200 and 110 <= max_age(timed) <= 120
    plain = requests.get(f"{following_shop}/prices/sku-1/", timeout=15)
    assert plain.status_code == 200 and 35 <= max_age(plain) <= 45
    mine = requests.get(f"{following_shop}/prices/mine/", timeout=15)
    assert mine.status_code == 502
    assert "no-store or private" in mine.json()["error"]["message"]
    again = requests.get(f"{following_shop}/prices/mine/", timeout=15)
    assert again.status_code == 502 and shop.asked("/api/products/mine") >= 1
