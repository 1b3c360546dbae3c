"""``python -m demo``: run the demo C42 upstream on loopback."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading

from demo.github import PREFIX as GITHUB
from demo.server import API, DemoUpstream, make_demo_server
from shared.telemetry.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    """Run the demo upstream until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("DEMO_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8042")))
    parser.add_argument(
        "--token",
        default=os.environ.get("DEMO_TOKEN") or os.environ.get("C42_TOKEN"),
        help="the API token clients must send (default: $DEMO_TOKEN, $C42_TOKEN, else a "
             "random one)",
    )
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    token = args.token or secrets.token_urlsafe(16)
    upstream = DemoUpstream(token)
    server = make_demo_server(upstream, args.host, args.port)
    port = server.server_address[1]
    print(f"demo C42 upstream on http://{args.host}:{port}{API}, GitHub on "
          f"http://{args.host}:{port}{GITHUB}", file=sys.stderr, flush=True)
    if not args.token:
        print(f"demo token: {token}", file=sys.stderr, flush=True)

    def stop(*_: object) -> None:
        upstream.release()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
