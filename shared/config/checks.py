"""Whether settings hold together: every option's range and format, checked once the
layers are merged (``validate``), with a message that names the option and never a
secret value; and the parsing of ``redis.sentinels``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from limits import parse_many

from shared.config.declare import SettingsError
from shared.config.sections import MAX_WAIT, AccessSettings, Settings
from shared.policy.access import REQUIRE_MODES, parse_keys, parse_networks
from shared.upstreams.registry import upstreams

ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def _access_checks(access: AccessSettings) -> list[tuple[bool, str]]:
    """Each access option parses (the message names the option, never its value)."""
    parsers = [
        (access.keys, parse_keys, "access.keys"),
        (access.metrics_keys, parse_keys, "access.metrics_keys"),
        (access.trusted_proxies, parse_networks, "access.trusted_proxies"),
        (access.rate_limit, lambda raw: raw.strip() and parse_many(raw), "access.rate_limit"),
        (access.miss_rate_limit, lambda raw: raw.strip() and parse_many(raw),
         "access.miss_rate_limit"),
    ]
    found = []
    for raw, parse, name in parsers:
        try:
            parse(raw)
            found.append((True, ""))
        except ValueError as exc:
            found.append((False, f"{name}: {exc}"))
    found.append((access.require_keys in REQUIRE_MODES,
                  f"access.require_keys must be one of {', '.join(REQUIRE_MODES)}"))
    found.append((all(ORIGIN_RE.fullmatch(o.strip()) for o in access.cors_origins.split(",")
                      if o.strip()),
                  "access.cors_origins must be origins such as https://app.example"))
    return found


def sentinel_addresses(text: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` (a ``[v6]:port`` too) as (host, port) pairs, in order."""
    found: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"redis.sentinels: item {len(found) + 1} is not host:port")
        found.append((host, int(port)))
    return found


def validate(settings: Settings) -> Settings:
    """``settings`` if every option is in range and the options hold together, else
    SettingsError naming the first key that does not."""
    checks = [
        (settings.cache.ttl > 0, "cache.ttl must be positive"),
        (settings.cache.negative_ttl > 0, "cache.negative_ttl must be positive"),
        (settings.cache.max_entry_bytes >= 1024, "cache.max_entry_bytes must be at least 1024"),
        (
            0 <= settings.cache.stale_while_revalidate <= settings.cache.stale_if_error,
            "cache.stale_while_revalidate must be between 0 and cache.stale_if_error",
        ),
        (
            urlsplit(settings.redis.url).scheme in {"redis", "rediss", "unix"},
            "redis.url must be a redis://, rediss:// or unix:// URL",
        ),
        (
            not settings.redis.broker_url
            or urlsplit(settings.redis.broker_url).scheme in {"redis", "rediss", "unix"},
            "redis.broker_url must be empty or a redis://, rediss:// or unix:// URL",
        ),
        (
            not settings.redis.sentinels or bool(sentinel_addresses(settings.redis.sentinels)),
            "redis.sentinels must list host:port items",
        ),
        (
            not settings.redis.sentinels
            or urlsplit(settings.redis.url).scheme in {"redis", "rediss"},
            "redis.url must be a redis:// or rediss:// URL when redis.sentinels is set",
        ),
        (
            re.fullmatch(r"[A-Za-z0-9._-]+", settings.redis.sentinel_master) is not None,
            "redis.sentinel_master must be a name of letters, digits, '.', '_' or '-'",
        ),
        *_access_checks(settings.access),
        (
            re.fullmatch(r"[1-9][0-9]*(b|kb|mb|gb)?", settings.redis.max_memory.lower())
            is not None,
            "redis.max_memory must be a size such as 256mb or 2gb",
        ),
        (
            settings.upstream.connect_timeout > 0 and settings.upstream.read_timeout > 0,
            "upstream timeouts must be positive",
        ),
        (1 <= settings.upstream.max_in_flight <= 1024, "upstream.max_in_flight must be 1-1024"),
        (0 < settings.upstream.miss_share <= 1, "upstream.miss_share must be above 0, at most 1"),
        (
            0 < settings.api.miss_wait_timeout <= MAX_WAIT
            and 0 < settings.api.stale_wait_timeout <= MAX_WAIT,
            f"api.miss_wait_timeout and api.stale_wait_timeout must be 0-{MAX_WAIT:g} s",
        ),
        (settings.api.workers >= 1, "api.workers must be at least 1"),
        (settings.api.threads >= 1, "api.threads must be at least 1"),
        (1 <= settings.worker.concurrency <= 256, "worker.concurrency must be 1-256"),
        (settings.worker.pool in ("threads", "prefork"),
         "worker.pool must be threads or prefork"),
        (settings.flower.max_tasks >= 1, "flower.max_tasks must be at least 1"),
        (0.1 <= settings.refresh.ratio < 1, "refresh.ratio must be at least 0.1 and below 1"),
        (settings.refresh.idle_timeout > 0, "refresh.idle_timeout must be positive"),
        (settings.refresh.min_ttl >= 0, "refresh.min_ttl must not be negative (0: the TTL)"),
        (settings.refresh.max_age > 0, "refresh.max_age must be positive"),
        (settings.refresh.plan_interval > 0, "refresh.plan_interval must be positive"),
        (settings.refresh.tick_interval > 0, "refresh.tick_interval must be positive"),
        (settings.refresh.max_claims >= 1, "refresh.max_claims must be at least 1"),
        (
            0 < settings.refresh.retry_base <= settings.refresh.retry_max,
            "refresh.retry_base must be positive and at most refresh.retry_max",
        ),
        (
            settings.refresh.retry_base <= settings.refresh.probe_max,
            "refresh.probe_max must be at least refresh.retry_base",
        ),
        (
            settings.log.level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
            "log.level must be DEBUG, INFO, WARNING or ERROR",
        ),
    ]
    for name, upstream in upstreams().items():
        checks.extend(upstream.checks(settings.upstreams[name]))
    for ok, message in checks:
        if not ok:
            raise SettingsError(message)
    return settings
