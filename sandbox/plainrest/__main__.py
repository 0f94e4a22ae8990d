"""python -m sandbox.plainrest --port 8706"""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app
from .settings import AccountConfig, PlainRestSandboxSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.plainrest", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8706)
    parser.add_argument("--api-key", help="the default account's API key")
    parser.add_argument("--patients", type=int, default=0, help="synthetic patients the account starts with")
    parser.add_argument("--no-rate-limit", action="store_true")
    # Off by default: query strings carry no PHI here, but the habit holds across sandboxes.
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    account = AccountConfig(patients=args.patients)
    if args.api_key:
        account.api_key = args.api_key
    settings = PlainRestSandboxSettings(
        base_url=f"http://{args.host}:{args.port}", rate_limit_enabled=not args.no_rate_limit, accounts=[account]
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=args.access_log)


if __name__ == "__main__":
    main()
