"""python -m sandbox.salesforce --port 8703"""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app
from .settings import ConnectedAppRegistration, SalesforceSandboxSettings, UserRegistration


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.salesforce", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8703)
    parser.add_argument("--base-url", help="instance URL returned to clients (default http://HOST:PORT)")
    parser.add_argument("--username", help="the default org's user (replaces the built-in one)")
    parser.add_argument("--password")
    parser.add_argument("--security-token")
    parser.add_argument("--consumer-key", help="the default org's connected app (replaces the built-in one)")
    parser.add_argument("--consumer-secret")
    parser.add_argument("--redirect-uri", action="append", default=[])
    parser.add_argument("--jwt-public-key", help="PEM file (public key or certificate) for the JWT bearer flow")
    parser.add_argument("--daily-api-limit", type=int, default=100_000)
    parser.add_argument("--session-timeout", type=float, default=7200.0, help="seconds")
    parser.add_argument("--seed", action="store_true", help="seed the default org from the Synthea data")
    parser.add_argument("--no-rate-limit", action="store_true")
    # Off by default: query strings (SOQL in ?q=) can carry PHI.
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    settings = SalesforceSandboxSettings(
        base_url=args.base_url or f"http://{args.host}:{args.port}",
        daily_api_limit=args.daily_api_limit,
        session_timeout=args.session_timeout,
        rate_limit_enabled=not args.no_rate_limit,
        seed_on_start=args.seed,
    )
    if args.username:
        if not (args.password and args.security_token):
            parser.error("--username needs --password and --security-token")
        settings.users = [UserRegistration(args.username, args.password, args.security_token)]
    if args.consumer_key:
        if not args.consumer_secret:
            parser.error("--consumer-key needs --consumer-secret")
        pem = None
        if args.jwt_public_key:
            with open(args.jwt_public_key, encoding="utf-8") as handle:
                pem = handle.read()
        settings.apps = [
            ConnectedAppRegistration(
                args.consumer_key, args.consumer_secret, redirect_uris=args.redirect_uri, jwt_public_key_pem=pem
            )
        ]
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=args.access_log)


if __name__ == "__main__":
    main()
