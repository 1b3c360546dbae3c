"""The configuration reference, rendered from the option declarations.

``python -m shared.config.docs`` rewrites ``config.ini.example`` and the table in
docs/CONFIGURATION.md; a test fails when either differs from what this renders.
"""

from __future__ import annotations

import re
from typing import Any

from shared.config.live import START_SECTIONS
from shared.config.settings import PROJECT_DIR, options

TABLE_START = "<!-- config-table:start -->"
TABLE_END = "<!-- config-table:end -->"
REFERENCE = "docs/CONFIGURATION.md"  # the page the table is in


def ini_value(value: Any) -> str:
    """An option's default as config.ini.example writes it."""
    return ", ".join(value) if isinstance(value, tuple) else str(value)


def ini_example() -> str:
    """config.ini.example: every option with its help, commented out at its default."""
    lines = [
        "# cachedproxy configuration.",
        "#",
        "# Copy to config.ini (or /etc/cachedproxy/config.ini, or point CACHEDPROXY_CONFIG at it).",
        "# Precedence, lowest first: built-in defaults < this file < Consul KV < environment.",
        "# Every value below is the default; each option's environment variable is named above it.",
    ]
    section = None
    for opt in options():
        if opt.section != section:
            lines += ["", f"[{opt.section}]"]
            section = opt.section
        lines.append(f"# {opt.help}. Environment: {opt.env}")
        lines.append(f"{opt.key} = {ini_value(opt.default)}".rstrip())
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The settings table: section, key, environment variable, default, help."""
    rows = [
        "| ini `[section] key` | Consul key | environment | default | applies | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for opt in options():
        default = ini_value(opt.default) or "(empty)"
        consul = "—" if opt.section in START_SECTIONS else f"`<prefix>/{opt.section}/{opt.key}`"
        applies = "live" if opt.live else "restart"
        rows.append(f"| `[{opt.section}] {opt.key}` | {consul} | `{opt.env}` | `{default}` "
                    f"| {applies} | {opt.help} |")
    return "\n".join([TABLE_START, *rows, TABLE_END])


def with_table(page: str) -> str:
    """A page (docs/CONFIGURATION.md) with its settings table replaced by the current one."""
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)
    return pattern.sub(lambda _: markdown_table(), page)


def main() -> None:
    """``python -m shared.config.docs``: write config.ini.example and the settings table."""
    (PROJECT_DIR / "config.ini.example").write_text(ini_example())
    page = PROJECT_DIR / REFERENCE
    page.write_text(with_table(page.read_text()))


if __name__ == "__main__":
    main()
