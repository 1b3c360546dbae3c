"""The README's table of every error code a client can receive."""

import re
from pathlib import Path

from shared import errors

ROOT = Path(__file__).resolve().parents[2]


def test_readme_lists_every_error_code():
    """Every code the app answers with is in the README's table of responses."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Responses"):readme.index("### Health")]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    codes = {cls.code for cls in errors._BY_CODE.values()} - {"internal"}
    codes |= {"method_not_allowed"}
    assert codes <= documented, codes - documented
