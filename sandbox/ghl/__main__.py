"""python -m sandbox.ghl --port 8701"""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app
from .settings import AppRegistration, GhlSandboxSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.ghl", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--base-url", help="public URL used in links (default http://HOST:PORT)")
    parser.add_argument("--client-id", help="register a Marketplace app at startup")
    parser.add_argument("--client-secret")
    parser.add_argument("--redirect-uri", action="append", default=[])
    parser.add_argument("--location-id", help="the registered app's location (created)")
    parser.add_argument("--webhook-url")
    parser.add_argument("--no-rate-limit", action="store_true")
    parser.add_argument("--timezone", default="America/New_York", help="IANA zone of every location")
    # Off by default: query strings (GET /contacts/?query=) can carry PHI.
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    if args.client_id and not (args.client_secret and args.redirect_uri):
        parser.error("--client-id needs --client-secret and at least one --redirect-uri")
    apps = []
    if args.client_id:
        apps.append(
            AppRegistration(
                client_id=args.client_id,
                client_secret=args.client_secret,
                redirect_uris=args.redirect_uri,
                location_id=args.location_id,
                webhook_url=args.webhook_url,
            )
        )
    settings = GhlSandboxSettings(
        base_url=args.base_url or f"http://{args.host}:{args.port}",
        rate_limit_enabled=not args.no_rate_limit,
        timezone=args.timezone,
        apps=apps,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=args.access_log)


if __name__ == "__main__":
    main()
