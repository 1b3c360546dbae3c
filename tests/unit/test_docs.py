"""The README and docs/ as a newcomer follows them: every link leads somewhere, and every
command they show names something that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from api import keys
from shared.policy.access import key_hash

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK_RE = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def shell_lines(page: Path) -> list[str]:
    """The lines of a page's ```sh blocks, comments and prompts taken off."""
    lines, inside = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```sh"
            continue
        if inside:
            command = line.split("  #")[0].strip().removeprefix("$ ")
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file(page: Path):
    """A link to another page or file of the repository finds it."""
    for target in LINK_RE.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_the_readme_is_a_newcomer_s_page():
    """At most 300 lines; the reference lives in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_and_module_shown_exists(page: Path):
    """``make X`` is a target of the Makefile; ``python -m X`` a module of the project or
    its dependencies; ``celery -A worker X`` one of worker, beat, flower."""
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    for line in shell_lines(page):
        for target in re.findall(r"(?:^|[;&|]\s*|\s)make ([a-z][a-z-]*)", line):
            assert target in targets, f"{page.name}: make {target}"
        for module in re.findall(r"python -m ([\w.]+)", line):
            assert importlib.util.find_spec(module) is not None, f"{page.name}: {module}"
        for command in re.findall(r"celery -A worker (?:--\S+ \S+ )?(\w+)", line):
            assert command in {"worker", "beat", "flower"}, f"{page.name}: celery {command}"


def test_the_key_command_prints_what_the_readme_says(capsys: pytest.CaptureFixture[str]):
    """``python -m api.keys new web`` prints a key for the client and its API_KEYS line
    (whose hash is the key's)."""
    assert keys.main(["new", "web"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"^key:\s+(\S{43})$", out, re.M)
    line = re.search(r"^line:\s+web:([0-9a-f]{64})$", out, re.M)
    assert key and line, out
    assert line.group(1) == key_hash(key.group(1))
