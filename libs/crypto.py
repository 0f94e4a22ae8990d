"""Envelope encryption: AES-256-GCM data keys per practice, wrapped by a key-encryption key.

The key-encryption key (KEK) comes from a key provider. The embedded default is a local keyring
file made at first start (``<data_dir>/keys/keyring.json``, mode 0600); AWS KMS
(``libs.key_providers.AwsKmsProvider``) implements the same methods, chosen by
``libs.key_providers.key_provider_from(settings)``. Data keys are stored wrapped in the owning
service's own ``<service>_data_keys`` table and cached unwrapped in memory.

Ciphertext layout: version byte 0x01 | data key id (16 bytes) | nonce (12 bytes) | AES-GCM output.
The associated data binds each ciphertext to its practice and purpose, so a value copied to
another practice's row or another column fails to decrypt.

Rotation, with no downtime:

- **KEK rotation** (``LocalKeyring.rotate``, or a new KMS key): new data keys are wrapped under the
  new KEK at once (every keyring reloads its file when it changed); ``EnvelopeCipher.rewrap``
  re-wraps the existing data key rows under the active KEK in small batches while services serve
  traffic. The data itself is untouched and the unwrapped keys cached by running services stay
  valid, since a data key's plaintext does not change. A KEK stays in the keyring (and can unwrap)
  until an operator retires it, once no row names it (``python -m libs.crypto retire-kek``).
- **Data key rotation** (``EnvelopeCipher.rotate_data_key``): a practice gets a new active data key;
  new writes use it (other processes within ``cache_ttl`` seconds), old ciphertexts name their key
  and still decrypt; ``reencrypt`` moves one stored value to the active key for a background pass.
- **Crypto-shredding** (``EnvelopeCipher.shred``): the practice's data key rows are overwritten and
  deleted and a tombstone row is left; every ciphertext of the practice then fails with
  FailedPrecondition ``PRACTICE_SHREDDED``, and nothing more is encrypted for it.

Derived keys (``LocalKeyring.derive``: blind indexes, Temporal payloads, webhook secrets) come from
the keyring's *derivation root*, not from the active KEK: a KEK rotation leaves them unchanged, so
blind indexes need no re-index, Temporal histories stay readable and webhook secrets entered at a
vendor keep verifying. A keyring written before roots existed derived from its (only) KEK; that
key's material becomes root ``root-1`` on the first rotation, so nothing derived changes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Boolean, Column, DateTime, LargeBinary, MetaData, String, Table, func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.errors import FailedPrecondition

FORMAT_VERSION = b"\x01"
_NONCE = 12
# The kek_id of a shredded practice's tombstone row (no key is ever wrapped under it).
SHREDDED = "shredded"


class KeyProvider(Protocol):
    """Wraps and unwraps data keys. ``context`` is bound to the wrapped key (AES-GCM associated data
    locally, the EncryptionContext in KMS): a wrapped key moved to another row does not unwrap."""

    def wrap(self, plaintext_key: bytes, context: bytes) -> tuple[str, bytes]: ...
    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes: ...

    # Optional: ``active_kek_id`` (the kek_id ``wrap`` returns now; rewrap skips rows already under
    # it) and ``blocking = True`` (wrap/unwrap do network I/O: EnvelopeCipher runs them in a thread).


class LocalKeyring:
    """A keyring file of versioned 256-bit KEKs; the active one wraps, every one kept can unwrap.

    File: ``{"active": "kek-2", "keys": {"kek-1": b64, "kek-2": b64}, "roots": {"root-1": b64},
    "derivation_root": "root-1", "retired": {"kek-0": iso-time}, "created": iso-time}``, mode 0600,
    replaced atomically (write a temporary file, fsync, rename) under an exclusive lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._load_or_create()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> LocalKeyring:
        return cls(data_dir / "keys" / "keyring.json")

    # -- the file ------------------------------------------------------------------------------

    def _load_or_create(self) -> None:
        path = self.path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            document = {
                "active": "kek-1",
                "keys": {"kek-1": _b64(AESGCM.generate_key(bit_length=256))},
                "roots": {"root-1": _b64(os.urandom(32))},
                "derivation_root": "root-1",
                "created": datetime.now(UTC).isoformat(),
            }
            tmp = self._write_tmp(document)
            try:
                os.link(tmp, path)  # atomic: the first process to start wins, others read its file
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        self._load()

    def _load(self) -> None:
        st = os.stat(self.path)
        document = json.loads(self.path.read_text())
        keys = {kid: base64.b64decode(value) for kid, value in document["keys"].items()}
        active = document["active"]
        roots = {rid: base64.b64decode(value) for rid, value in document.get("roots", {}).items()}
        root_id = document.get("derivation_root")
        if root_id is None:  # a keyring from before roots: it derived from its active (only) KEK
            root_id = "root-1"
            roots = {root_id: keys[active]}
        self._document = document
        self._keys, self._active_id = keys, active
        self._roots, self._root_id = roots, root_id
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _reload_if_changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if (st.st_ino, st.st_mtime_ns, st.st_size) == self._stamp:
            return False
        self._load()
        return True

    def _write_tmp(self, document: dict[str, Any]) -> Path:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        return tmp

    def _replace(self, document: dict[str, Any]) -> None:
        tmp = self._write_tmp(document)
        try:
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):  # the rename itself made durable
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._load()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The current document, under an exclusive lock against other rotating processes."""
        import fcntl

        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._load()
            document = json.loads(json.dumps(self._document))
            document.setdefault("roots", {rid: _b64(k) for rid, k in self._roots.items()})
            document.setdefault("derivation_root", self._root_id)
            yield document
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- rotation ------------------------------------------------------------------------------

    @property
    def active_id(self) -> str:
        return self._active_id

    @property
    def active_kek_id(self) -> str:
        self._reload_if_changed()
        return self._active_id

    @property
    def kek_ids(self) -> list[str]:
        return sorted(self._keys, key=_kek_number)

    @property
    def retired_ids(self) -> list[str]:
        return sorted(self._document.get("retired", {}), key=_kek_number)

    def rotate(self) -> str:
        """Adds a new KEK and makes it the active one; the old ones stay to unwrap. Returns its id."""
        with self._locked() as document:
            known = [*document["keys"], *document.get("retired", {})]
            new_id = f"kek-{max((_kek_number(k) for k in known), default=0) + 1}"
            document["keys"][new_id] = _b64(AESGCM.generate_key(bit_length=256))
            document["active"] = new_id
            document["rotated"] = datetime.now(UTC).isoformat()
            self._replace(document)
        return new_id

    def retire(self, kek_id: str) -> None:
        """Removes a KEK from the keyring for good. The caller makes sure no data key row of any
        service still names it (``python -m libs.crypto retire-kek`` checks every service)."""
        with self._locked() as document:
            if kek_id == document["active"]:
                raise FailedPrecondition("the active key-encryption key cannot be retired", reason="KEK_ACTIVE")
            if kek_id not in document["keys"]:
                raise FailedPrecondition("key-encryption key is not in the keyring", reason="KEK_MISSING")
            del document["keys"][kek_id]
            document.setdefault("retired", {})[kek_id] = datetime.now(UTC).isoformat()
            self._replace(document)

    # -- the provider --------------------------------------------------------------------------

    def wrap(self, plaintext_key: bytes, context: bytes) -> tuple[str, bytes]:
        self._reload_if_changed()  # a rotation by another process takes effect for new keys at once
        nonce = os.urandom(_NONCE)
        active = self._active_id
        return active, nonce + AESGCM(self._keys[active]).encrypt(nonce, plaintext_key, context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        if kek_id not in self._keys:
            self._reload_if_changed()  # rewrapped by another process under a KEK made after we loaded
        if kek_id not in self._keys:
            raise FailedPrecondition("key-encryption key is not in the keyring", reason="KEK_MISSING")
        try:
            return AESGCM(self._keys[kek_id]).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except InvalidTag:
            raise FailedPrecondition("a data key does not unwrap", reason="KEK_UNWRAP_FAILED") from None

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for one purpose (blind indexes, Temporal payloads, webhook secrets), derived
        from the derivation root: the same across KEK rotations (see the module docstring)."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return hkdf.derive(self._roots[self._root_id])


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _kek_number(kek_id: str) -> int:
    try:
        return int(kek_id.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


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
    practice_id: str
    aead: AESGCM


def key_id_of(blob: bytes) -> str:
    """The id of the data key a ciphertext was made with."""
    if blob[:1] != FORMAT_VERSION or len(blob) < 29:
        raise FailedPrecondition("unknown ciphertext format", reason="CIPHERTEXT_FORMAT")
    return str(uuid.UUID(bytes=blob[1:17]))


class EnvelopeCipher:
    """Encrypts and decrypts values for a practice with that practice's data key.

    Unwrapped keys are cached; a cached key is checked against its row again after ``cache_ttl``
    seconds (one indexed SELECT, no unwrap), so a data key rotation or a shredding done by another
    process takes effect here within that time. Rewrapping never invalidates the cache.
    """

    def __init__(
        self, provider: KeyProvider, sessions: async_sessionmaker, table: Table, *, cache_ttl: float = 60.0
    ) -> None:
        self._provider = provider
        self._sessions = sessions
        self._table = table
        self._ttl = cache_ttl
        self._keys: dict[str, _DataKey] = {}
        self._checked: dict[str, float] = {}  # key id -> when its row was last seen
        self._active: dict[str, tuple[str, float]] = {}  # practice -> (active key id, when seen)
        self._lock = asyncio.Lock()

    # -- values --------------------------------------------------------------------------------

    async def encrypt(self, practice_id: str, plaintext: bytes, purpose: str) -> bytes:
        key = self._fresh_active(practice_id) or await self._active_key(practice_id)
        nonce = os.urandom(_NONCE)
        aad = _aad(practice_id, purpose)
        return FORMAT_VERSION + uuid.UUID(key.key_id).bytes + nonce + key.aead.encrypt(nonce, plaintext, aad)

    async def decrypt(self, practice_id: str, blob: bytes, purpose: str) -> bytes:
        key_id = key_id_of(blob)
        key = self._keys.get(key_id)
        if key is None or time.monotonic() - self._checked.get(key_id, 0.0) > self._ttl:
            key = await self._load_key(key_id, practice_id)
        try:
            return key.aead.decrypt(blob[17:29], blob[29:], _aad(practice_id, purpose))
        except InvalidTag:
            # Another practice's or another purpose's value, or damaged: never say more.
            raise FailedPrecondition("ciphertext does not verify", reason="CIPHERTEXT_INVALID") from None

    async def ensure_key(self, practice_id: str) -> None:
        """Makes (or loads) the practice's data key now. A use case that encrypts inside its own
        write transaction calls this first: on SQLite the key's insert, in a session of its own,
        would wait on that transaction's lock."""
        if self._fresh_active(practice_id) is None:
            await self._active_key(practice_id)

    async def encrypt_json(self, practice_id: str, value: object, purpose: str) -> bytes:
        return await self.encrypt(practice_id, json.dumps(value, separators=(",", ":")).encode(), purpose)

    async def decrypt_json(self, practice_id: str, blob: bytes, purpose: str) -> object:
        return json.loads(await self.decrypt(practice_id, blob, purpose))

    async def reencrypt(self, practice_id: str, blob: bytes, purpose: str) -> bytes | None:
        """The value under the practice's active data key, or None when it is under it already:
        the step of a background pass that retires an old data key (store what it returns)."""
        active = self._fresh_active(practice_id) or await self._active_key(practice_id)
        if key_id_of(blob) == active.key_id:
            return None
        return await self.encrypt(practice_id, await self.decrypt(practice_id, blob, purpose), purpose)

    # -- rotation and shredding ----------------------------------------------------------------

    async def rotate_data_key(self, practice_id: str) -> str:
        """A new active data key for the practice; the old ones stay to decrypt. Returns its id."""
        async with self._lock:
            table = self._table
            async with self._sessions() as session, session.begin():
                if await self._is_shredded(session, practice_id):
                    raise _shredded()
                await session.execute(
                    table.update()
                    .where(table.c.practice_id == practice_id, table.c.active.is_(True))
                    .values(active=False)
                )
                key = await self._insert_key(session, practice_id)
            self._remember(key, active=True)
            return key.key_id

    async def rewrap(self, practice_id: str | None = None, *, batch_size: int = 100) -> int:
        """Re-wraps every data key row (of one practice, or all) that is not under the provider's
        active KEK, a batch per transaction; safe while the service serves. Returns rows rewrapped."""
        table = self._table
        done = 0
        for _ in range(3):  # a key made under the old KEK while a pass ran is caught by the next
            after = ""
            rewrapped = 0
            while True:
                target = await self._call("active_kek_id")
                query = select(table).where(table.c.key_id > after, table.c.kek_id != SHREDDED)
                if target is not None:
                    query = query.where(table.c.kek_id != target)
                if practice_id is not None:
                    query = query.where(table.c.practice_id == practice_id)
                async with self._sessions() as session:
                    rows = (await session.execute(query.order_by(table.c.key_id).limit(batch_size))).all()
                if not rows:
                    break
                updates = []
                for row in rows:
                    context = _wrap_context(row.practice_id, row.key_id)
                    plaintext = await self._call("unwrap", row.kek_id, row.wrapped_key, context)
                    kek_id, wrapped = await self._call("wrap", plaintext, context)
                    if kek_id != row.kek_id:
                        updates.append((row, kek_id, wrapped))
                async with self._sessions() as session, session.begin():
                    for row, kek_id, wrapped in updates:
                        result = await session.execute(
                            table.update()
                            .where(table.c.key_id == row.key_id, table.c.kek_id == row.kek_id)
                            .values(kek_id=kek_id, wrapped_key=wrapped)
                        )
                        rewrapped += result.rowcount  # 0: shredded (or rewrapped) meanwhile
                after = rows[-1].key_id
            done += rewrapped
            if rewrapped == 0 or target is None:  # None: a provider that cannot name its active KEK
                break
        return done

    async def shred(self, practice_id: str) -> int:
        """Crypto-shreds the practice: overwrites and deletes its data key rows, leaves a tombstone,
        drops the cached keys. Every ciphertext of the practice is unreadable from now on
        (``PRACTICE_SHREDDED``) and nothing more is encrypted for it. Returns the keys destroyed.

        On SQLite the rows are deleted with ``secure_delete`` on and the WAL is checkpointed; on
        PostgreSQL the table is vacuumed after, so the old row versions go too (best effort: a
        backup taken before holds the wrapped keys; retiring the KEK they are under ends those)."""
        table = self._table
        async with self._lock:
            async with self._sessions() as session, session.begin():
                sqlite = session.bind.dialect.name == "sqlite"
                if sqlite:
                    await session.execute(text("PRAGMA secure_delete=ON"))
                rows = (
                    await session.execute(
                        select(table.c.key_id, table.c.wrapped_key).where(
                            table.c.practice_id == practice_id, table.c.kek_id != SHREDDED
                        )
                    )
                ).all()
                for row in rows:
                    await session.execute(
                        table.update()
                        .where(table.c.key_id == row.key_id)
                        .values(wrapped_key=bytes(len(row.wrapped_key)), kek_id=SHREDDED, active=False)
                    )
                await session.execute(table.delete().where(table.c.practice_id == practice_id))
                await session.execute(
                    table.insert().values(
                        key_id=str(uuid.uuid4()),
                        practice_id=practice_id,
                        kek_id=SHREDDED,
                        wrapped_key=b"",
                        active=False,
                        created_at=datetime.now(UTC),
                    )
                )
            self._forget_practice(practice_id)
        await self._purge_old_versions(sqlite)
        return len(rows)

    async def is_shredded(self, practice_id: str) -> bool:
        async with self._sessions() as session:
            return await self._is_shredded(session, practice_id)

    async def status(self) -> dict[str, Any]:
        """Counts for an operator: data keys per KEK, practices, active keys, shredded practices."""
        table = self._table
        async with self._sessions() as session:
            per_kek = dict((await session.execute(select(table.c.kek_id, func.count()).group_by(table.c.kek_id))).all())
            practices = (
                await session.execute(
                    select(func.count(func.distinct(table.c.practice_id))).where(table.c.kek_id != SHREDDED)
                )
            ).scalar_one()
            active = (await session.execute(select(func.count()).where(table.c.active.is_(True)))).scalar_one()
        shredded = per_kek.pop(SHREDDED, 0)
        return {
            "data_keys_per_kek": per_kek,
            "practices": practices,
            "active_keys": active,
            "shredded_practices": shredded,
        }

    # -- internals -----------------------------------------------------------------------------

    def _fresh_active(self, practice_id: str) -> _DataKey | None:
        entry = self._active.get(practice_id)
        if entry is None or time.monotonic() - entry[1] > self._ttl:
            return None
        return self._keys.get(entry[0])

    def _remember(self, key: _DataKey, *, active: bool) -> None:
        now = time.monotonic()
        self._keys[key.key_id] = key
        self._checked[key.key_id] = now
        if active:
            self._active[key.practice_id] = (key.key_id, now)

    def _forget(self, key_id: str) -> None:
        key = self._keys.pop(key_id, None)
        self._checked.pop(key_id, None)
        if key is not None and self._active.get(key.practice_id, ("",))[0] == key_id:
            self._active.pop(key.practice_id, None)

    def _forget_practice(self, practice_id: str) -> None:
        for key_id in [k for k, key in self._keys.items() if key.practice_id == practice_id]:
            self._forget(key_id)
        self._active.pop(practice_id, None)

    async def _call(self, what: str, *args: Any) -> Any:
        provider = self._provider
        if what == "active_kek_id":
            if not hasattr(type(provider), "active_kek_id") and not hasattr(provider, "active_kek_id"):
                return None
            if getattr(provider, "blocking", False):
                return await asyncio.to_thread(getattr, provider, "active_kek_id")
            return provider.active_kek_id
        method = getattr(provider, what)
        if getattr(provider, "blocking", False):
            return await asyncio.to_thread(method, *args)
        return method(*args)

    async def _is_shredded(self, session, practice_id: str) -> bool:  # noqa: ANN001
        table = self._table
        found = await session.execute(
            select(table.c.key_id).where(table.c.practice_id == practice_id, table.c.kek_id == SHREDDED).limit(1)
        )
        return found.first() is not None

    async def _insert_key(self, session, practice_id: str) -> _DataKey:  # noqa: ANN001
        key_id = str(uuid.uuid4())
        plaintext = AESGCM.generate_key(bit_length=256)
        kek_id, wrapped = await self._call("wrap", plaintext, _wrap_context(practice_id, key_id))
        await session.execute(
            self._table.insert().values(
                key_id=key_id,
                practice_id=practice_id,
                kek_id=kek_id,
                wrapped_key=wrapped,
                active=True,
                created_at=datetime.now(UTC),
            )
        )
        return _DataKey(key_id, practice_id, AESGCM(plaintext))

    async def _active_key(self, practice_id: str) -> _DataKey:
        async with self._lock:
            fresh = self._fresh_active(practice_id)
            if fresh is not None:
                return fresh
            table = self._table
            async with self._sessions() as session, session.begin():
                row = (
                    await session.execute(
                        select(table)
                        .where(table.c.practice_id == practice_id, table.c.active.is_(True))
                        .order_by(table.c.created_at.desc())
                    )
                ).first()
                if row is None:
                    if await self._is_shredded(session, practice_id):
                        self._forget_practice(practice_id)
                        raise _shredded()
                    key = await self._insert_key(session, practice_id)
                else:
                    key = self._keys.get(row.key_id) or await self._unwrap(row)
            self._remember(key, active=True)
            return key

    async def _load_key(self, key_id: str, practice_id: str) -> _DataKey:
        async with self._sessions() as session:
            row = (await session.execute(select(self._table).where(self._table.c.key_id == key_id))).first()
            shredded = row is None and await self._is_shredded(session, practice_id)
        if row is None:
            self._forget(key_id)
            if shredded:
                self._forget_practice(practice_id)
                raise _shredded()
            raise FailedPrecondition("data key not found", reason="DATA_KEY_MISSING")
        key = self._keys.get(key_id) or await self._unwrap(row)
        self._remember(key, active=False)
        return key

    async def _unwrap(self, row) -> _DataKey:  # noqa: ANN001
        context = _wrap_context(row.practice_id, row.key_id)
        plaintext = await self._call("unwrap", row.kek_id, row.wrapped_key, context)
        return _DataKey(row.key_id, row.practice_id, AESGCM(plaintext))

    async def _purge_old_versions(self, sqlite: bool) -> None:
        bind = self._sessions.kw.get("bind")
        if bind is None:
            return
        try:
            if sqlite:
                async with bind.connect() as conn:
                    await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            else:
                async with bind.connect() as conn:
                    auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await auto.execute(text(f'VACUUM "{self._table.name}"'))
        except Exception:  # noqa: BLE001, S110 - best effort: the rows are gone either way
            pass


def _shredded() -> FailedPrecondition:
    return FailedPrecondition("the practice's data keys were shredded", reason="PRACTICE_SHREDDED")


def _aad(practice_id: str, purpose: str) -> bytes:
    return f"{practice_id}|{purpose}".encode()


def _wrap_context(practice_id: str, key_id: str) -> bytes:
    return f"data-key|{practice_id}|{key_id}".encode()


if __name__ == "__main__":  # python -m libs.crypto status|rotate-kek|rewrap|retire-kek|rotate-data-key|shred
    import sys

    from libs.key_providers import main

    sys.exit(main())


_log = logging.getLogger("concord.crypto")


def rewrap_in_background(cipher: EnvelopeCipher, service: str) -> Callable[[], Awaitable[None]]:
    """Starts re-wrapping, once, the data keys a KEK rotation left under an older KEK (a service
    restarted after ``python -m libs.crypto rotate-kek`` finishes the job without an operator);
    returns the closer that stops it. A failure is logged by its type and retried at the next start."""

    async def run() -> None:
        try:
            done = await cipher.rewrap()
        except Exception as error:  # noqa: BLE001 (a background step: logged, never raised into serving)
            _log.warning("%s: re-wrapping data keys failed (%s); the next start retries", service, type(error).__name__)
            return
        if done:
            _log.info("%s: %d data keys re-wrapped under the active key-encryption key", service, done)

    task = asyncio.create_task(run())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
