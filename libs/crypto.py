"""Envelope encryption: AES-256-GCM data keys per practice, wrapped by a key-encryption key.

The key-encryption key (KEK) comes from a key provider. The embedded default is a local keyring
file made at first start (``<data_dir>/keys/keyring.json``, mode 0600); a KMS-backed provider
implements the same two methods. Data keys are stored wrapped in the owning service's own
``<service>_data_keys`` table and cached unwrapped in memory.

Ciphertext layout: version byte 0x01 | data key id (16 bytes) | nonce (12 bytes) | AES-GCM output.
The associated data binds each ciphertext to its practice and purpose, so a value copied to
another practice's row or another column fails to decrypt.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Boolean, Column, DateTime, LargeBinary, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.errors import FailedPrecondition

FORMAT_VERSION = b"\x01"
_NONCE = 12


class KeyProvider(Protocol):
    def wrap(self, plaintext_key: bytes, context: bytes) -> tuple[str, bytes]: ...
    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes: ...


class LocalKeyring:
    """A keyring file of versioned 256-bit KEKs; the newest wraps, every one can unwrap."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys, self.active_id = self._load_or_create(path)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> LocalKeyring:
        return cls(data_dir / "keys" / "keyring.json")

    @staticmethod
    def _load_or_create(path: Path) -> tuple[dict[str, bytes], str]:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            document = {
                "active": "kek-1",
                "keys": {"kek-1": base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()},
                "created": datetime.now(UTC).isoformat(),
            }
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(document, handle)
            try:
                os.link(tmp, path)  # atomic: the first process to start wins, others read its file
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        document = json.loads(path.read_text())
        keys = {kid: base64.b64decode(value) for kid, value in document["keys"].items()}
        return keys, document["active"]

    def wrap(self, plaintext_key: bytes, context: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE)
        return self.active_id, nonce + AESGCM(self._keys[self.active_id]).encrypt(nonce, plaintext_key, context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        if kek_id not in self._keys:
            raise FailedPrecondition("key-encryption key is not in the keyring", reason="KEK_MISSING")
        return AESGCM(self._keys[kek_id]).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for one purpose (e.g. Temporal payloads), derived from the active KEK."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return hkdf.derive(self._keys[self.active_id])


def data_keys_table(metadata: MetaData, service: str) -> Table:
    return Table(
        f"{service}_data_keys",
        metadata,
        Column("key_id", String(36), primary_key=True),
        Column("practice_id", String(64), nullable=False, index=True),
        Column("kek_id", String(64), nullable=False),
        Column("wrapped_key", LargeBinary, nullable=False),
        Column("active", Boolean, nullable=False, default=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


@dataclass(frozen=True)
class _DataKey:
    key_id: str
    aead: AESGCM


class EnvelopeCipher:
    """Encrypts and decrypts values for a practice with that practice's data key."""

    def __init__(self, provider: KeyProvider, sessions: async_sessionmaker, table: Table) -> None:
        self._provider = provider
        self._sessions = sessions
        self._table = table
        self._by_id: dict[str, _DataKey] = {}
        self._active: dict[str, _DataKey] = {}
        self._lock = asyncio.Lock()

    async def encrypt(self, practice_id: str, plaintext: bytes, purpose: str) -> bytes:
        key = self._active.get(practice_id) or await self._active_key(practice_id)
        nonce = os.urandom(_NONCE)
        aad = _aad(practice_id, purpose)
        return FORMAT_VERSION + uuid.UUID(key.key_id).bytes + nonce + key.aead.encrypt(nonce, plaintext, aad)

    async def decrypt(self, practice_id: str, blob: bytes, purpose: str) -> bytes:
        if blob[:1] != FORMAT_VERSION:
            raise FailedPrecondition("unknown ciphertext format", reason="CIPHERTEXT_FORMAT")
        key_id = str(uuid.UUID(bytes=blob[1:17]))
        key = self._by_id.get(key_id) or await self._load_key(key_id)
        return key.aead.decrypt(blob[17:29], blob[29:], _aad(practice_id, purpose))

    async def ensure_key(self, practice_id: str) -> None:
        """Makes (or loads) the practice's data key now. A use case that encrypts inside its own
        write transaction calls this first: on SQLite the key's insert, in a session of its own,
        would wait on that transaction's lock."""
        if practice_id not in self._active:
            await self._active_key(practice_id)

    async def encrypt_json(self, practice_id: str, value: object, purpose: str) -> bytes:
        return await self.encrypt(practice_id, json.dumps(value, separators=(",", ":")).encode(), purpose)

    async def decrypt_json(self, practice_id: str, blob: bytes, purpose: str) -> object:
        return json.loads(await self.decrypt(practice_id, blob, purpose))

    async def _active_key(self, practice_id: str) -> _DataKey:
        async with self._lock:
            if practice_id in self._active:
                return self._active[practice_id]
            table = self._table
            async with self._sessions() as session, session.begin():
                row = (
                    await session.execute(
                        select(table).where(table.c.practice_id == practice_id, table.c.active.is_(True))
                    )
                ).first()
                if row is None:
                    key_id = str(uuid.uuid4())
                    plaintext = AESGCM.generate_key(bit_length=256)
                    kek_id, wrapped = self._provider.wrap(plaintext, _wrap_context(practice_id, key_id))
                    await session.execute(
                        table.insert().values(
                            key_id=key_id,
                            practice_id=practice_id,
                            kek_id=kek_id,
                            wrapped_key=wrapped,
                            active=True,
                            created_at=datetime.now(UTC),
                        )
                    )
                    key = _DataKey(key_id, AESGCM(plaintext))
                else:
                    key = self._unwrap(row)
            self._by_id[key.key_id] = key
            self._active[practice_id] = key
            return key

    async def _load_key(self, key_id: str) -> _DataKey:
        async with self._sessions() as session:
            row = (await session.execute(select(self._table).where(self._table.c.key_id == key_id))).first()
        if row is None:
            raise FailedPrecondition("data key not found (shredded?)", reason="DATA_KEY_MISSING")
        key = self._unwrap(row)
        self._by_id[key_id] = key
        return key

    def _unwrap(self, row) -> _DataKey:  # noqa: ANN001
        plaintext = self._provider.unwrap(row.kek_id, row.wrapped_key, _wrap_context(row.practice_id, row.key_id))
        return _DataKey(row.key_id, AESGCM(plaintext))


def _aad(practice_id: str, purpose: str) -> bytes:
    return f"{practice_id}|{purpose}".encode()


def _wrap_context(practice_id: str, key_id: str) -> bytes:
    return f"data-key|{practice_id}|{key_id}".encode()
