"""python -m sandbox.zenoti --port 8702"""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app
from .settings import OrgConfig, WebhookConfig, ZenotiSandboxSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.zenoti", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8702)
    parser.add_argument("--base-url", help="public URL (default http://HOST:PORT)")
    parser.add_argument("--account-name", default=OrgConfig.account_name)
    parser.add_argument("--api-key", default=OrgConfig.api_key)
    parser.add_argument("--webhook-url", action="append", default=[], help="subscribe a URL to every event")
    parser.add_argument("--webhook-secret", default="zenoti-sandbox-webhook-secret")
    parser.add_argument("--no-rate-limit", action="store_true")
    # Off by default: query strings (GET /v1/guests/search?email=...) carry PHI.
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    settings = ZenotiSandboxSettings(
        base_url=args.base_url or f"http://{args.host}:{args.port}",
        rate_limit_enabled=not args.no_rate_limit,
        orgs=[OrgConfig(account_name=args.account_name, api_key=args.api_key)],
        webhooks=[
            WebhookConfig(url, secret=args.webhook_secret, account_name=args.account_name) for url in args.webhook_url
        ],
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=args.access_log)


if __name__ == "__main__":
    main()
