"""The system under test, on loopback: a private redis-server, the demo C42 upstream over
HTTP, a real Celery worker, and the API as ``python -m api`` serves it."""

from __future__ import annotations

import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from api.app import app_from_settings
from demo.server import API, DemoUpstream, make_demo_server
from demo.wsgi import threaded_wsgi_server
from launcher.services import free_port
from shared.config.settings import Settings, load_settings
from shared.store.keys import Keys
from tests.harness import Demo, Stack, isolated_env, start_redis, stop
from tests.helpers import PREFIX
from tests.integration.shop import Shop
from tests.launched import launched  # noqa: F401 (a fixture: make run for a test)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = start_redis(tmp_path_factory.mktemp("redis"), port, appendonly=False)
    yield f"redis://127.0.0.1:{port}/0"
    stop([proc])


@pytest.fixture(scope="session")
def demo() -> Iterator[Demo]:
    upstream = DemoUpstream(token=secrets.token_urlsafe(12))
    server = make_demo_server(upstream, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Demo(upstream, f"http://127.0.0.1:{server.server_address[1]}{API}")
    upstream.release()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def env(redis_url: str, demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every process under test; nothing from the caller's shell leaks in."""
    return isolated_env(
        tmp_path_factory.mktemp("config"), redis_url, demo.base_url, demo.upstream.token,
        KEY_PREFIX=PREFIX, UPSTREAM_CONNECT_TIMEOUT="1", UPSTREAM_READ_TIMEOUT="1.5",
        CACHE_NEGATIVE_TTL="30",
    )


@pytest.fixture(scope="session")
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env)


@pytest.fixture(scope="session")
def store(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def processes(env: dict[str, str], logs: Path) -> Iterator[Stack]:
    """The session's worker and API, stopped at its end."""
    with Stack(env, logs) as stack:
        yield stack


@pytest.fixture(scope="session")
def worker(processes: Stack) -> subprocess.Popen:
    """A real ``celery -A worker worker`` running two tasks at once (on threads)."""
    return processes.worker("worker")


@pytest.fixture(scope="session")
def api(processes: Stack, worker: subprocess.Popen) -> str:
    """The API as deployed: ``python -m api`` (granian, api/bridge.py) on a free port."""
    return processes.api()


@pytest.fixture
def serve_api(settings: Settings, worker: subprocess.Popen) -> Iterator[Callable[..., str]]:
    """Serve an API with changed settings in this process, e.g. a short miss wait."""
    servers = []

    def serve(**changes: dict[str, object]) -> str:
        server = threaded_wsgi_server(app_from_settings(settings.replace(**changes)),
                                      "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def fresh_state(demo: Demo, store: redis.Redis) -> None:
    """Each test starts with the demo's sample data, no cached entries and no record
    of failures."""
    demo.upstream.reset()
    keys = Keys(PREFIX)
    for kind in ("entry", "result", "upstream", "held", "running", "budget", "spent"):
        for key in store.scan_iter(keys.pattern(kind)):
            store.delete(key)
    # No test inherits another's back-off or flights.
    store.delete(keys.failures(), keys.failure_errors(), keys.paced(), keys.locks(),
                 keys.results(), keys.generations())


@pytest.fixture
def shop() -> Iterator[Shop]:
    """The shop upstream on a free port (tests/integration/shop.py)."""
    upstream = Shop()
    server = threaded_wsgi_server(upstream.app(), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream.base_url = f"http://127.0.0.1:{server.server_address[1]}/api"
    yield upstream
    server.shutdown()
    server.server_close()
