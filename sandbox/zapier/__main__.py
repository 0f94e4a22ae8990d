"""python -m sandbox.zapier --port 8705 [--app app.json ...]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn

from .app import create_app
from .definitions import DefinitionError, parse
from .settings import ZapierSandboxSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.zapier", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8705)
    parser.add_argument("--base-url", help="public URL used in target URLs (default http://HOST:PORT)")
    parser.add_argument("--app", action="append", default=[], type=Path, help="app definition JSON file (repeatable)")
    parser.add_argument("--no-rate-limit", action="store_true")
    parser.add_argument("--no-autoreplay", action="store_true")
    # Off by default: URLs can carry PHI.
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    apps = []
    for path in args.app:
        body = json.loads(path.read_text(encoding="utf-8"))
        try:
            parse(body)
        except DefinitionError as exc:
            parser.error(f"{path}: {exc}")
        apps.append(body)
    settings = ZapierSandboxSettings(
        base_url=args.base_url or f"http://{args.host}:{args.port}",
        rate_limit_enabled=not args.no_rate_limit,
        autoreplay=not args.no_autoreplay,
        apps=apps,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=args.access_log)


if __name__ == "__main__":
    main()
