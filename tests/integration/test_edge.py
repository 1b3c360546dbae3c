"""The HTTP edge under hostile input: no 5xx, and every error the app answers is JSON.

A seeded fuzz of the deployed API (``python -m api``) over raw sockets: random and
encoded paths, methods, header counts and sizes, request-line lengths and malformed
request lines. No answer may be a 5xx (/readyz, whose 503 is a report, is left out).
Every error the app answers carries the documented JSON body; what the HTTP server
refuses before the app (malformed HTTP: 400, a request line over 64 KiB: 414, too many
or too large headers: 431) has its status, an empty body, and the connection closed.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import string
from urllib.parse import urlsplit

import pytest

REQUESTS = 3000
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
           "PROPFIND", "get", "G3T", "X" * 40]
PATHS = ["/events-with-subscriptions/launch-party/", "/events-with-subscriptions/x/",
         "/healthz", "/openapi.json", "/", "/nope", "/events-with-subscriptions/",
         "/events-with-subscriptions/%2e%2e/", "/events-with-subscriptions/a%2Fb/",
         "//example.com/", "/events-with-subscriptions/" + "a" * 129 + "/",
         "/events-with-subscriptions/%00/", "/events-with-subscriptions/é/", "/../../etc/passwd",
         "/events-with-subscriptions/launch-party/?x=" + "%" * 3]
MALFORMED = [
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTX/1.1\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost\r\n\r\n",
    b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
    b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40) + b"\r\n\r\n",  # TLS hello
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


def random_request(rng: random.Random) -> bytes:
    """One request: mostly well-formed with hostile parts, sometimes malformed outright."""
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(MALFORMED)
    method = rng.choice(METHODS)
    path = rng.choice(PATHS)
    if roll < 0.3:
        path = "/" + "".join(rng.choices(string.printable[:94], k=rng.randint(0, 60)))
        path = path.replace(" ", "%20")
    elif roll < 0.4:
        path = "/events-with-subscriptions/" + "a" * rng.choice([10, 1000, 4100, 9000, 70000]) + "/"
    headers = ["Host: 127.0.0.1", "Connection: close"]
    if roll >= 0.4 and rng.random() < 0.3:
        headers += [f"X-H{i}: {'v' * rng.randint(1, 50)}" for i in range(rng.choice([5, 99, 120]))]
    if roll >= 0.4 and rng.random() < 0.2:
        headers.append("X-Big: " + "b" * rng.choice([100, 8000, 9000, 20000]))
    if rng.random() < 0.1:
        headers.append("If-None-Match: " + rng.choice(['"x"', "*", "W/", "\"" * 5, ",,,"]))
    if rng.random() < 0.1:
        headers.append("X-Request-ID: " + "".join(rng.choices(string.printable[:94], k=20)))
    return f"{method} {path} HTTP/1.1\r\n".encode("utf-8", "replace") + "".join(
        h + "\r\n" for h in headers).encode() + b"\r\n"


def exchange(host: str, port: int, raw: bytes) -> bytes:
    """Send ``raw`` and read one response: its head and ``Content-Length`` bytes of body
    (none after a HEAD), or what came before the server closed."""
    with socket.create_connection((host, port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close first
            sock.sendall(raw)
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = 0 if raw.startswith(b"HEAD ") else next(
                    (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                     if line.lower().startswith(b"content-length:")), 0)
                if len(body) >= length:
                    return data
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (
        line.partition(":") for line in lines[1:])}
    return status, headers, body


@pytest.mark.timeout(300)
def test_fuzzed_requests_get_json_errors_and_no_5xx(api):
    """3,000 hostile requests: 0 answers 5xx, 0 app errors that are not the JSON error
    shape, and the server's own refusals closed with an empty body."""
    url = urlsplit(api)
    rng = random.Random(20261202)
    statuses: dict[int, int] = {}
    problems = []
    for _ in range(REQUESTS):
        raw = random_request(rng)
        response = exchange(url.hostname, url.port, raw)
        if not response:
            if not raw.startswith(b"PRI * HTTP/2.0"):  # HTTP/2 to an HTTP/1.1 server: closed
                problems.append((raw[:80], "no response"))
            continue
        status, headers, body = parse(response)
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            problems.append((raw[:80], status))
        if headers.get("connection") == "close" and "x-request-id" not in headers:
            # Refused by the HTTP server before the app: no body, the connection closed.
            if status not in (400, 414, 431) or headers.get("content-length") != "0":
                problems.append((raw[:80], status, "server refusal", headers))
            continue
        if status >= 400 and not raw.startswith(b"HEAD "):
            try:
                error = json.loads(body)["error"]
                assert error["status"] == status and isinstance(error["code"], str)
                assert headers["content-type"].startswith("application/json")
            except (ValueError, KeyError, TypeError, AssertionError):
                problems.append((raw[:80], status, body[:80]))
    assert not problems, problems[:10]
    # The fuzz reached the server's own refusals, not only the app's.
    assert {400, 404, 405, 414, 431} <= set(statuses), statuses
