"""``python -m api.keys new <name>``: a new API key and the line that configures it.

The key is printed once and never stored: put the line (``name:<sha256 hex of the key>``)
in ``API_KEYS`` (``[access] keys`` or Consul), comma-separated with the others, and give
the key to the client, who sends it as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import argparse
import json
import sys

from shared.policy.access import new_key


def main(argv: list[str] | None = None) -> int:
    """``python -m api.keys new <name>``: print a new API key and its API_KEYS line."""
    parser = argparse.ArgumentParser(prog="python -m api.keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("new", help="print a new key and its API_KEYS line")
    made.add_argument("name", help="the client's name (1-64 letters, digits, '_', '.', '-')")
    args = parser.parse_args(argv)
    try:
        key, line = new_key(args.name)
    except ValueError as exc:  # one JSON line, as every tool's errors
        print(json.dumps({"error": {"code": "invalid_request", "message": str(exc)}}),
              file=sys.stderr)
        return 2
    print(f"key:  {key}\nline: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
