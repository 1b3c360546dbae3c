"""The server's own error responses, and the README's table of every error code."""

import json
import re
from pathlib import Path

import pytest

from api.edge import EDGE_ERRORS, error_response
from shared import errors

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("status", "reason"), [(400, "Bad Request"), (414, "URI Too Long"),
                                                (431, "Request Header Fields Too Large"),
                                                (418, "I'm a teapot")])
def test_edge_error_is_the_api_error_shape(status, reason):
    """A refusal written by the server is a complete HTTP response with the API's JSON
    error body, its length right, and the connection closed after it."""
    head, _, body = error_response(status, reason).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == f"HTTP/1.1 {status} {reason}"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["status"] == status and error["code"] and error["message"]


def test_readme_lists_every_error_code():
    """Every code a client can receive, from the app or the server's edge, is in the
    README's table of responses."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Responses"):readme.index("### Health")]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    codes = {cls.code for cls in errors._BY_CODE.values()} - {"internal"}
    codes |= {code for code, _ in EDGE_ERRORS.values()} - {"internal"}
    codes |= {"method_not_allowed"}
    assert codes <= documented, codes - documented
