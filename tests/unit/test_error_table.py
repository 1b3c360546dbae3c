"""The table of every error code a client can receive (docs/HTTP.md)."""

import re
from pathlib import Path

from shared import errors

ROOT = Path(__file__).resolve().parents[2]


def test_the_http_reference_lists_every_error_code():
    """Every code the app answers with is in docs/HTTP.md's table of responses."""
    page = (ROOT / "docs" / "HTTP.md").read_text()
    table = page[page.index("## Responses"):page.index("## Health")]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    codes = {cls.code for cls in errors._BY_CODE.values()} - {"internal"}
    codes |= {"method_not_allowed"}
    assert codes <= documented, codes - documented
