"""Who may read, and how much: the decisions, as functions of values.

API keys are configured as ``name:<sha256 hex of the key>`` lines, so no key is stored
in clear; a request's key is hashed and compared with every configured hash in constant
time. Keys are required whenever any are configured (``auto``), or as set; an API
listening off loopback with none configured refuses to start unless keys are ``off``.
Rate limits are counted per key name, or per client address when keys are off; the
address is the peer's unless the peer is a configured proxy, then the nearest address in
``X-Forwarded-For`` that is not one. The ``RateLimit`` / ``RateLimit-Policy`` headers
follow the IETF draft (draft-ietf-httpapi-ratelimit-headers).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

KEY_LINE_RE = re.compile(r"([A-Za-z0-9_.-]{1,64}):([0-9a-f]{64})")
MIN_KEY_LENGTH = 32
REQUIRE_MODES = ("auto", "on", "off")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def key_hash(key: str) -> str:
    """The SHA-256 of a key, as API_KEYS holds it (never the key itself)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(name: str) -> tuple[str, str]:
    """A random key (43 URL-safe characters) and the line that configures it."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ValueError("a key's name is 1-64 letters, digits, '_', '.' and '-'")
    key = secrets.token_urlsafe(32)
    return key, f"{name}:{key_hash(key)}"


def parse_keys(raw: str) -> dict[str, str]:
    """``name:sha256hex`` items, comma-separated -> {hash: name}; ValueError names the
    first bad item (by position: the item may be a key pasted by mistake)."""
    found: dict[str, str] = {}
    for n, item in enumerate((i.strip() for i in raw.split(",")), 1):
        if not item:
            continue
        match = KEY_LINE_RE.fullmatch(item)
        if match is None:
            raise ValueError(f"item {n} is not name:<sha256 hex of the key> (lower-case hex)")
        found[match.group(2)] = match.group(1)
    return found


def keys_required(mode: str, host: str, configured: bool) -> bool:
    """``auto``: required whenever keys are ``configured`` (a proxy on the same host
    connects from loopback too), and off loopback even without them."""
    if mode == "auto":
        return configured or not _loopback(host)
    return mode == "on"


def open_off_loopback(mode: str, host: str, configured: bool) -> bool:
    """Whether the API would listen beyond this machine with no key to check: refused at
    start unless keys are turned off explicitly (``off``)."""
    return mode != "off" and not configured and not _loopback(host)


@functools.lru_cache(maxsize=16)
def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer`` header, or None."""
    scheme, _, credentials = (authorization or "").partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


def same_secret(given: str, expected: str) -> bool:
    """Whether two secrets are equal, in constant time whatever their lengths."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(),
                               hashlib.sha256(expected.encode()).digest())


def identify(authorization: str | None, keys: Mapping[str, str]) -> str | None:
    """The name of the key a request carries (``Authorization: Bearer <key>``), or None.
    Every configured hash is compared, in constant time, whatever matches."""
    key = bearer(authorization)
    if key is None:
        return None
    presented = key_hash(key).encode()
    found = None
    for digest, name in keys.items():
        if hmac.compare_digest(presented, digest.encode()):
            found = name
    return found


def parse_networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR networks; ValueError for a bad one."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False)
                 for item in raw.split(",") if item.strip())


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the
    nearest hop of ``X-Forwarded-For`` (read from the right) that is not a trusted proxy."""
    if not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _valid(hop):
            return peer  # a malformed header: the proxy is the client we know
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


@dataclass(frozen=True)
class Limit:
    """One rate limit: ``amount`` requests per ``window`` seconds."""

    amount: int
    window: int

    @property
    def name(self) -> str:
        """The limit as RateLimit-Policy names it, e.g. ``100-per-60s``."""
        return f"{self.amount}-per-{self.window}s"


@dataclass(frozen=True)
class Window:
    """What is left of a limit for one client: requests, and seconds until one more."""

    limit: Limit
    remaining: int
    reset_in: float


def policy_header(limits: Sequence[Limit]) -> str:
    """``RateLimit-Policy``: every limit, e.g. ``"50-per-1s";q=50;w=1``."""
    return ", ".join(f'"{lim.name}";q={lim.amount};w={lim.window}' for lim in limits)


def limited_headers(windows: Sequence[Window]) -> dict[str, str]:
    """The headers of a 429: ``Retry-After`` (whole seconds until the exhausted limit
    with the longest wait lets one more through, at least 1), ``RateLimit`` for that
    limit, and ``RateLimit-Policy``."""
    exhausted = [w for w in windows if w.remaining <= 0] or list(windows)
    worst = max(exhausted, key=lambda w: w.reset_in)
    wait = max(1, math.ceil(worst.reset_in))
    return {
        "Retry-After": str(wait),
        "RateLimit": f'"{worst.limit.name}";r={max(worst.remaining, 0)};t={wait}',
        "RateLimit-Policy": policy_header([w.limit for w in windows]),
    }


# The status page's login: a browser posts the admin token once and gets a cookie
# "<expiry>.<HMAC-SHA256 of the expiry, keyed by the token>": it names no secret, needs
# no server-side session, and ends with its expiry or when the token changes.
SESSION_COOKIE = "cachedproxy_admin"
SESSION_SECONDS = 12 * 3600


def _signature(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"admin-session:{expires}".encode(),
                    hashlib.sha256).hexdigest()


def session_value(token: str, now: float, seconds: int = SESSION_SECONDS) -> str:
    """The cookie value of a login at ``now`` with ``token``."""
    expires = int(now) + seconds
    return f"{expires}.{_signature(token, expires)}"


def valid_session(value: str | None, token: str, now: float) -> bool:
    """Whether a cookie value is a login with ``token`` that has not expired."""
    if not value or not token:
        return False
    expires, _, signature = value.partition(".")
    if not expires.isdigit() or len(expires) > 12 or int(expires) <= now:
        return False
    return hmac.compare_digest(signature.encode(), _signature(token, int(expires)).encode())
