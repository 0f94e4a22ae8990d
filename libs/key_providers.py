"""Key providers behind ``libs.crypto.KeyProvider``, the factory that picks one from settings, and
the operator's command line for rotation and crypto-shredding.

- ``local`` (default): ``libs.crypto.LocalKeyring``, the keyring file in the data directory.
- ``aws-kms``: ``AwsKmsProvider``, data keys wrapped by KMS Encrypt/Decrypt under one customer
  managed key, the EncryptionContext naming the practice and the data key (CloudTrail shows which
  practice's key was unwrapped; a wrapped key copied to another row does not unwrap). boto3 is
  imported only when this provider is used.

Derived keys (blind indexes, Temporal payloads, webhook secrets) come from the local keyring's
derivation root with either provider (``LocalKeyring.derive``).

Operator command line (reads the CONCORD_* settings like the services; flags override)::

    python -m libs.crypto status
    python -m libs.crypto rotate-kek                   # local keyring: a new active KEK
    python -m libs.crypto rewrap [--practice P]        # every service's data keys under the active KEK
    python -m libs.crypto retire-kek kek-1             # once no row of any service names it
    python -m libs.crypto rotate-data-key --practice P
    python -m libs.crypto shred --practice P --yes     # crypto-shreds P in every service

    flags: --data-dir DIR  --database-url URL  --schema-prefix PREFIX
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from libs.crypto import SHREDDED, EnvelopeCipher, KeyProvider, LocalKeyring, data_keys_table
from libs.errors import ConcordError, FailedPrecondition

# The services that hold data keys (each in its own <service>_data_keys table).
DATA_KEY_SERVICES = ("connection", "sync")


class AwsKmsProvider:
    """Wraps data keys with AWS KMS. ``key_id`` is a key id, ARN or alias; the stored kek_id is
    ``kms:<key id>`` of the key KMS used (an ARN does not fit the 64 characters of ``kek_id``; the
    key id names the key in the provider's account and region), so pointing ``key_id`` at a new key
    and running ``rewrap`` moves every data key to it (KMS's own automatic rotation of a key keeps
    its id and needs no rewrap)."""

    blocking = True  # network calls: EnvelopeCipher runs them in a thread

    def __init__(self, key_id: str, client: Any = None, *, region_name: str | None = None) -> None:
        if not key_id:
            raise FailedPrecondition("key_provider is aws-kms but no KMS key is configured", reason="KMS_KEY_MISSING")
        self.key_id = key_id
        self._client = client
        self._region = region_name
        self._arn: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise FailedPrecondition(
                    "key_provider aws-kms needs boto3 installed", reason="KMS_UNAVAILABLE"
                ) from None
            self._client = boto3.client("kms", region_name=self._region)
        return self._client

    @property
    def active_kek_id(self) -> str:
        if self._arn is None:
            self._arn = _kek_id(self.client.describe_key(KeyId=self.key_id)["KeyMetadata"]["Arn"])
        return self._arn

    def wrap(self, plaintext_key: bytes, context: bytes) -> tuple[str, bytes]:
        try:
            answer = self.client.encrypt(
                KeyId=self.key_id, Plaintext=plaintext_key, EncryptionContext=encryption_context(context)
            )
        except Exception as exc:  # noqa: BLE001 - botocore's errors; never chain (no key material)
            raise FailedPrecondition(
                f"KMS refused to wrap a data key ({_code(exc)})", reason="KMS_WRAP_FAILED"
            ) from None
        return _kek_id(answer["KeyId"]), answer["CiphertextBlob"]

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        try:
            answer = self.client.decrypt(
                CiphertextBlob=wrapped, KeyId=kek_id.removeprefix("kms:"), EncryptionContext=encryption_context(context)
            )
        except Exception as exc:  # noqa: BLE001
            raise FailedPrecondition(
                f"KMS refused to unwrap a data key ({_code(exc)})", reason="KEK_UNWRAP_FAILED"
            ) from None
        return answer["Plaintext"]


def _kek_id(arn_or_id: str) -> str:
    """``kms:<key id>`` of a key ARN (``arn:aws:kms:<region>:<account>:key/<key id>``) or key id."""
    return "kms:" + arn_or_id.rsplit("/", 1)[-1]


def encryption_context(context: bytes) -> dict[str, str]:
    """KMS's EncryptionContext for libs.crypto's wrap context (``data-key|<practice>|<key id>``)."""
    parts = context.decode().split("|")
    if len(parts) == 3 and parts[0] == "data-key":
        return {"concord:purpose": parts[0], "concord:practice_id": parts[1], "concord:data_key_id": parts[2]}
    return {"concord:context": context.decode()}


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


def key_provider_from(settings: Any, *, client: Any = None) -> KeyProvider:
    """The configured provider: ``settings.key_provider`` "local" (default) or "aws-kms" (with
    ``aws_kms_key_id`` and optionally ``aws_region``)."""
    kind = getattr(settings, "key_provider", "local") or "local"
    if kind == "local":
        return LocalKeyring.in_data_dir(Path(settings.data_dir))
    if kind == "aws-kms":
        return AwsKmsProvider(
            getattr(settings, "aws_kms_key_id", ""), client, region_name=getattr(settings, "aws_region", "") or None
        )
    raise FailedPrecondition(f"unknown key provider {kind!r}", reason="KEY_PROVIDER_UNKNOWN")


# -- the operator's command line -------------------------------------------------------------------


async def _ciphers(settings: Any, provider: KeyProvider) -> list[tuple[str, EnvelopeCipher, Any]]:
    """(service, cipher, engine) of every service whose data key table exists."""
    from sqlalchemy import MetaData, text

    from libs import db

    out = []
    for service in DATA_KEY_SERVICES:
        table = data_keys_table(MetaData(), service)
        if not db.is_postgres(settings) and not (Path(settings.data_dir) / f"{service}.db").exists():
            continue
        engine = db.create_engine(service, settings)
        async with engine.connect() as conn:
            if db.is_postgres(settings):
                found = (await conn.execute(text("SELECT to_regclass(:t)"), {"t": table.name})).scalar()
            else:
                found = (
                    await conn.execute(
                        text("SELECT name FROM sqlite_master WHERE type='table' AND name=:t"), {"t": table.name}
                    )
                ).scalar()
        if not found:
            await engine.dispose()
            continue
        out.append((service, EnvelopeCipher(provider, db.create_session_factory(engine), table), engine))
    return out


async def run(command: str, settings: Any, *, practice: str | None = None, kek: str | None = None) -> dict[str, Any]:
    """One operator command; returns what it did (the CLI prints it as JSON)."""
    provider = key_provider_from(settings)
    local = provider if isinstance(provider, LocalKeyring) else None
    out: dict[str, Any] = {"provider": getattr(settings, "key_provider", "local") or "local"}
    if command == "rotate-kek":
        if local is None:
            raise FailedPrecondition(
                "with aws-kms, rotate the key in KMS (or point aws_kms_key_id at a new key) and run rewrap",
                reason="KEK_ROTATION_EXTERNAL",
            )
        out["active"] = local.rotate()
        out["next"] = "run `python -m libs.crypto rewrap` (safe while the services run)"
        return out
    if command == "retire-kek" and local is not None and kek == local.active_kek_id:
        raise FailedPrecondition("the active key-encryption key cannot be retired", reason="KEK_ACTIVE")
    ciphers = await _ciphers(settings, provider)
    try:
        services: dict[str, Any] = {}
        for service, cipher, _ in ciphers:
            if command == "status":
                services[service] = await cipher.status()
            elif command == "rewrap":
                services[service] = {"rewrapped": await cipher.rewrap(practice)}
            elif command == "rotate-data-key":
                services[service] = {"active_key": await cipher.rotate_data_key(_need(practice))}
            elif command == "shred":
                services[service] = {"keys_destroyed": await cipher.shred(_need(practice))}
            elif command == "retire-kek":
                services[service] = {"rows_under_kek": (await cipher.status())["data_keys_per_kek"].get(kek, 0)}
            else:
                raise FailedPrecondition(f"unknown command {command!r}", reason="COMMAND_UNKNOWN")
        out["services"] = services
        if command == "retire-kek":
            if local is None:
                raise FailedPrecondition("retire KMS keys in KMS", reason="KEK_ROTATION_EXTERNAL")
            if kek == SHREDDED or any(s["rows_under_kek"] for s in services.values()):
                raise FailedPrecondition(
                    "data keys are still wrapped under that KEK: rewrap first", reason="KEK_IN_USE"
                )
            local.retire(_need(kek))
            out["retired"] = kek
        if local is not None:
            out["keyring"] = {
                "active": local.active_kek_id,
                "keks": local.kek_ids,
                "retired": local.retired_ids,
                "path": str(local.path),
            }
        return out
    finally:
        for *_, engine in ciphers:
            await engine.dispose()


def _need(value: str | None) -> str:
    if not value:
        raise FailedPrecondition("this command needs --practice (or the KEK id)", reason="ARGUMENT_MISSING")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m libs.crypto", description="Key rotation and crypto-shredding.")
    parser.add_argument("command", choices=["status", "rotate-kek", "rewrap", "retire-kek", "rotate-data-key", "shred"])
    parser.add_argument("kek", nargs="?", help="retire-kek: the KEK id to retire")
    parser.add_argument("--practice")
    parser.add_argument("--yes", action="store_true", help="shred: yes, destroy the practice's keys for good")
    parser.add_argument("--data-dir")
    parser.add_argument("--database-url")
    parser.add_argument("--schema-prefix")
    args = parser.parse_args(argv)
    from libs.settings import Settings

    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.database_url is not None:
        overrides["database_url"] = args.database_url
    if args.schema_prefix is not None:
        overrides["database_schema_prefix"] = args.schema_prefix
    settings = Settings(**overrides)
    if args.command == "shred" and not args.yes:
        parser.error("shred destroys the practice's data for good: add --yes")
    try:
        result = asyncio.run(run(args.command, settings, practice=args.practice, kek=args.kek))
    except ConcordError as exc:
        print(json.dumps({"error": exc.reason, "message": exc.message}))  # noqa: T201
        return 1
    print(json.dumps(result, indent=1, default=str))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
