"""The HTTP edge under hostile input: every error, the server's own included, is JSON.

A seeded fuzz of the deployed API (``python -m api``) over raw sockets: random and
encoded paths, methods, header counts and sizes, request-line lengths and malformed
request lines. No answer may be a 5xx (/readyz, whose 503 is a report, is left out), and
every error must carry the documented body.
"""

from __future__ import annotations

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
        path = "/events-with-subscriptions/" + "a" * rng.choice([10, 1000, 4100, 9000]) + "/"
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
    with socket.create_connection((host, port), timeout=10) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading it all
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (
        line.partition(":") for line in lines[1:])}
    return status, headers, body


@pytest.mark.timeout(300)
def test_fuzzed_requests_get_json_errors_and_no_5xx(api):
    """3,000 hostile requests: 0 answers 5xx, 0 error bodies that are not the JSON
    error shape (gunicorn's own 400/414/431 included)."""
    url = urlsplit(api)
    rng = random.Random(20261202)
    statuses: dict[int, int] = {}
    problems = []
    for _ in range(REQUESTS):
        raw = random_request(rng)
        response = exchange(url.hostname, url.port, raw)
        if not response:
            problems.append((raw[:80], "no response"))
            continue
        status, headers, body = parse(response)
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            problems.append((raw[:80], status))
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
