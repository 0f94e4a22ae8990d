"""python -m sandbox.fhir --port 8704"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn

from .app import create_app
from .settings import ClientRegistration, FhirSandboxSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.fhir", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8704)
    parser.add_argument("--base-url", help="public origin used in links (default: each request's Host)")
    parser.add_argument("--tenant", action="append", default=[], help="FHIR server under /fhir/<tenant> (repeatable)")
    parser.add_argument("--no-seed", action="store_true", help="start the tenants empty")
    parser.add_argument("--client-id", help="register a backend-services client at startup")
    parser.add_argument("--jwks-file", type=Path, help="the client's public JWK Set (JSON file)")
    parser.add_argument("--jwks-url", help="or the URL the client publishes its JWK Set at")
    parser.add_argument("--scopes", default="system/*.cruds", help="scopes the client may be granted")
    parser.add_argument("--strict-search", action="store_true", help="unknown search parameters are 400s")
    parser.add_argument("--no-update-create", action="store_true", help="PUT to an unknown id is a 405")
    parser.add_argument("--no-rate-limit", action="store_true")
    # Off by default: FHIR search URLs carry PHI (family=, birthdate=, phone=).
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    clients = []
    if args.client_id:
        if bool(args.jwks_file) == bool(args.jwks_url):
            parser.error("--client-id needs exactly one of --jwks-file or --jwks-url")
        jwks = json.loads(args.jwks_file.read_text(encoding="utf-8")) if args.jwks_file else None
        clients.append(ClientRegistration(args.client_id, args.scopes, jwks=jwks, jwks_url=args.jwks_url))
    settings = FhirSandboxSettings(
        base_url=args.base_url,
        tenants=tuple(args.tenant) or ("default",),
        seed_data=not args.no_seed,
        clients=clients,
        strict_search=args.strict_search,
        allow_update_create=not args.no_update_create,
        rate_limit_enabled=not args.no_rate_limit,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=args.access_log)


if __name__ == "__main__":
    main()
