"""``python -m benchmarks.fuzz``: the API under generated input, keys and limits on.

Starts the system (Redis, the demo upstream, a worker, ``python -m api`` with API keys
required and a rate limit) and sends:

- schemathesis cases generated from the API's own ``/openapi.json`` (every operation,
  its parameters and headers), three in four with a valid key;
- hypothesis-generated requests over methods, paths (known routes, encodings, random
  text), and headers (Authorization in every shape, conditional headers, Origin,
  X-Forwarded-For, X-Request-ID), half of them with a valid key added.

Every answer must be below 500 (``/readyz``'s 503 is a report, left out) and every
error the app answers a JSON error body with its status; what the HTTP server refuses
before the app (a request line that is no URI, a malformed header: no X-Request-ID)
must be a 400, 414 or 431 with no body. Prints the counts; exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.store import system
from shared.policy.access import new_key

KEY, LINE = new_key("fuzz")
ROUTES = ["/events-with-subscriptions/launch-party/", "/events-with-subscriptions/team-standup",
          "/view/top/3/stars/", "/github/orgs/Netflix", "/healthz", "/openapi.json",
          "/metrics", "/admin/entries", "/", "/events-with-subscriptions/%2e%2e/",
          "/github/orgs/a%2Fb", "/view/top/0/stars/", "/view/top/99999999999999999999/x/"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck),
                    derandomize=True)


class Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.problems: list[str] = []
        self.server_errors = 0  # 5xx other than /readyz's report
        self.refused_by_server = 0  # answered by the HTTP server before the app

    def check(self, what: str, path: str, status: int, content_type: str, body: bytes,
              head: bool, from_app: bool = True) -> None:
        self.statuses[status] += 1
        if status == 503 and b'"budget_spent"' in body:
            return  # misses over their share of an upstream's budget: the promised answer
        if status >= 500 and not path.startswith("/readyz"):
            self.server_errors += 1
            self.problems.append(f"{status} for {what}")
        if not from_app:
            self.refused_by_server += 1
            if status not in (400, 414, 431) or body:
                self.problems.append(f"server's own {status} for {what}: {body[:60]!r}")
            return
        if status >= 400 and not head and not path.startswith("/readyz"):
            try:
                error = json.loads(body)["error"]
                ok = error["status"] == status and isinstance(error["code"], str)
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok or not content_type.startswith("application/json"):
                self.problems.append(f"non-JSON {status} error for {what}: {body[:60]!r}")


def fuzz_schema(api: str, examples: int, tally: Tally) -> None:
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    session = requests.Session()

    @settings(SETTINGS, max_examples=examples)
    @given(case=schema.as_strategy(), keyed=st.sampled_from([True, True, True, False]))
    def run(case: Any, keyed: bool) -> None:
        headers = {"Authorization": f"Bearer {KEY}"} if keyed else {}
        response = case.call(base_url=api, headers=headers, session=session)
        received = {k.lower(): v for k, v in response.headers.items()}
        found = received.get("content-type", "")
        content_type = found[0] if isinstance(found, list) else found
        tally.check(f"{case.method} {case.formatted_path}", case.formatted_path,
                    response.status_code, content_type, response.content,
                    case.method.upper() == "HEAD", "x-request-id" in received)

    run()


def fuzz_raw(api: str, examples: int, tally: Tally) -> None:
    host, port = api.removeprefix("http://").split(":")
    texts = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
    paths = st.one_of(st.sampled_from(ROUTES), texts.map(lambda t: "/" + t.replace("%", "%25")),
                      st.sampled_from(ROUTES).flatmap(lambda r: texts.map(lambda t: r + t)))
    header_values = st.one_of(texts, st.sampled_from([
        f"Bearer {KEY}", f"bearer {KEY}", f"Bearer {KEY}x", "Bearer", "Basic Zm9vOmJhcg==",
        '"x"', "*", "W/", ",,,", "1.2.3.4, 10.0.0.1", "https://evil.example",
        "Thu, 01 Jan 1970 00:00:00 GMT"]))
    headers = st.dictionaries(st.sampled_from([
        "Authorization", "If-None-Match", "If-Modified-Since", "Origin", "X-Forwarded-For",
        "X-Request-ID", "Access-Control-Request-Method", "Accept", "Range"]), header_values,
        max_size=5)

    @settings(SETTINGS, max_examples=examples)
    @given(method=st.sampled_from(METHODS), path=paths, sent=headers, keyed=st.booleans())
    def run(method: str, path: str, sent: dict[str, str], keyed: bool) -> None:
        if keyed:
            sent.setdefault("Authorization", f"Bearer {KEY}")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request(method, path, headers=sent)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        tally.check(f"{method} {path} {sorted(sent)}", path, response.status,
                    response.getheader("Content-Type", ""), body, method == "HEAD",
                    response.getheader("X-Request-ID") is not None)

    run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=6000,
                        help="generated requests of each kind (schemathesis, hypothesis)")
    args = parser.parse_args(argv)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cachedproxy-fuzz-") as tmp, system(
            Path(tmp), API_REQUIRE_KEYS="on", API_KEYS=LINE,
            API_RATE_LIMIT="100000/second") as stack:
        fuzz_schema(stack.api, args.examples, tally)
        schema_requests = sum(tally.statuses.values())
        fuzz_raw(stack.api, args.examples, tally)
    total = sum(tally.statuses.values())
    print(json.dumps({
        "requests": total, "schemathesis": schema_requests,
        "hypothesis": total - schema_requests, "seconds": round(time.monotonic() - started),
        "five_xx": tally.server_errors,
        "readyz_503": tally.statuses[503] - tally.server_errors,
        "problems": len(tally.problems),
        "refused_by_the_server_before_the_app": tally.refused_by_server,
        "statuses": dict(sorted(tally.statuses.items())),
    }))
    for problem in tally.problems[:20]:
        print(problem, file=sys.stderr)
    return 1 if tally.problems else 0


if __name__ == "__main__":
    sys.exit(main())
