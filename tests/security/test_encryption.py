"""Encryption at rest (libs/crypto.py, libs/key_providers.py): KEK rotation with a background
rewrap, data key rotation, crypto-shredding, derived keys that survive rotation, associated data,
and the AWS KMS provider (moto). SQLite, and PostgreSQL when CONCORD_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import MetaData, Table, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from libs import db
from libs.blind_index import BlindIndexer
from libs.crypto import SHREDDED, EnvelopeCipher, LocalKeyring, data_keys_table, key_id_of
from libs.errors import FailedPrecondition
from libs.key_providers import AwsKmsProvider, encryption_context, key_provider_from, run
from libs.webhooks import zenoti_secret

PURPOSE = "patient"


@dataclass
class Store:
    settings: object
    engine: AsyncEngine
    sessions: async_sessionmaker
    table: Table

    def keyring(self) -> LocalKeyring:
        return LocalKeyring.in_data_dir(self.settings.data_dir)

    def cipher(self, provider=None, **kw) -> EnvelopeCipher:  # noqa: ANN001
        return EnvelopeCipher(provider or self.keyring(), self.sessions, self.table, **kw)

    async def rows(self, practice_id: str | None = None) -> list:
        query = select(self.table)
        if practice_id is not None:
            query = query.where(self.table.c.practice_id == practice_id)
        async with self.sessions() as session:
            return list((await session.execute(query)).all())


@pytest.fixture
async def store(settings) -> AsyncIterator[Store]:  # noqa: ANN001
    # The sync service's table name and schema (the conftest drops the schemas it made).
    engine = db.create_engine("sync", settings)
    schema = db.schema_for("sync", settings)
    metadata = MetaData()
    table = data_keys_table(metadata, "sync")
    async with engine.begin() as conn:
        if schema:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(metadata.create_all)
    yield Store(settings, engine, db.create_session_factory(engine), table)
    await engine.dispose()


def _practice() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def _value(practice_id: str, n: int = 0) -> bytes:
    return f'{{"family":"Canary-{practice_id}-{n}"}}'.encode()


async def test_kek_rotation_rewrap_keeps_every_ciphertext_readable(store: Store) -> None:
    keyring = store.keyring()
    cipher = store.cipher(keyring)
    practices = [_practice() for _ in range(3)]
    blobs = {p: await cipher.encrypt(p, _value(p), PURPOSE) for p in practices}
    assert {r.kek_id for r in await store.rows()} == {"kek-1"}

    assert keyring.rotate() == "kek-2"
    path = keyring.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["active"] == "kek-2" and set(document["keys"]) == {"kek-1", "kek-2"}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    # New data keys are wrapped under the new KEK at once; old rows still unwrap (kek-1 is kept).
    newcomer = _practice()
    new_blob = await cipher.encrypt(newcomer, _value(newcomer), PURPOSE)
    assert {r.kek_id for r in await store.rows(newcomer)} == {"kek-2"}
    fresh = store.cipher()
    for p in practices:
        assert await fresh.decrypt(p, blobs[p], PURPOSE) == _value(p)

    assert await cipher.rewrap() == 3
    assert {r.kek_id for r in await store.rows()} == {"kek-2"}
    assert await cipher.rewrap() == 0
    # The data is untouched: the same ciphertexts, and the data keys themselves did not change.
    assert key_id_of(blobs[practices[0]]) in {r.key_id for r in await store.rows(practices[0])}
    for p in practices:
        assert await cipher.decrypt(p, blobs[p], PURPOSE) == _value(p)  # the cache stays valid

    keyring.retire("kek-1")
    assert set(json.loads(path.read_text())["keys"]) == {"kek-2"}
    with pytest.raises(FailedPrecondition) as refused:
        keyring.retire("kek-2")
    assert refused.value.reason == "KEK_ACTIVE"
    after = store.cipher()
    for p in [*practices, newcomer]:
        assert await after.decrypt(p, new_blob if p == newcomer else blobs[p], PURPOSE) == _value(p)


async def test_a_running_service_follows_a_rotation_made_by_another_process(store: Store) -> None:
    service_keyring = store.keyring()  # loaded at the service's start
    service = store.cipher(service_keyring)
    old = _practice()
    blob = await service.encrypt(old, _value(old), PURPOSE)

    operator = store.keyring()  # python -m libs.crypto rotate-kek, then rewrap
    operator.rotate()
    assert await store.cipher(operator).rewrap() == 1

    # The service's keyring has never seen kek-2: it reloads the file instead of failing.
    assert await store.cipher(service_keyring).decrypt(old, blob, PURPOSE) == _value(old)
    newcomer = _practice()
    await service.encrypt(newcomer, _value(newcomer), PURPOSE)
    assert {r.kek_id for r in await store.rows(newcomer)} == {"kek-2"}


async def test_a_rewrap_interleaved_with_traffic_loses_nothing(store: Store) -> None:
    keyring = store.keyring()
    cipher = store.cipher(keyring)
    practices = [_practice() for _ in range(12)]
    written: dict[tuple[str, int], bytes] = {}
    for p in practices:
        written[(p, 0)] = await cipher.encrypt(p, _value(p), PURPOSE)
    keyring.rotate()

    stop = asyncio.Event()

    async def traffic(worker: int) -> int:
        n, ops = 1, 0
        traffic_cipher = store.cipher(store.keyring(), cache_ttl=0)  # another replica, no cache
        while not stop.is_set() or n < 4:
            for p in practices[worker::3]:
                assert await traffic_cipher.decrypt(p, written[(p, 0)], PURPOSE) == _value(p)
                written[(p, n)] = await traffic_cipher.encrypt(p, _value(p, n), PURPOSE)
                ops += 1
            extra = _practice()
            written[(extra, 0)] = await traffic_cipher.encrypt(extra, _value(extra), PURPOSE)
            practices.append(extra)
            n += 1
            await asyncio.sleep(0)
        return ops

    async def rewrap() -> int:
        try:
            return await cipher.rewrap(batch_size=2)
        finally:
            stop.set()

    results = await asyncio.gather(rewrap(), *(traffic(w) for w in range(3)))
    assert results[0] >= 12 and all(results[1:])
    await cipher.rewrap()  # keys made by traffic meanwhile are already under kek-2; nothing is left
    assert {r.kek_id for r in await store.rows()} == {"kek-2"}
    reader = store.cipher()
    for (p, n), blob in written.items():
        assert await reader.decrypt(p, blob, PURPOSE) == _value(p, n)


async def test_data_key_rotation_new_writes_use_the_new_key_old_ones_still_decrypt(store: Store) -> None:
    cipher = store.cipher()
    other_replica = store.cipher(cache_ttl=0)
    practice = _practice()
    old = await cipher.encrypt(practice, _value(practice, 1), PURPOSE)
    assert key_id_of(await other_replica.encrypt(practice, b"x", PURPOSE)) == key_id_of(old)

    new_key = await cipher.rotate_data_key(practice)
    assert new_key != key_id_of(old)
    new = await cipher.encrypt(practice, _value(practice, 2), PURPOSE)
    assert key_id_of(new) == new_key
    assert key_id_of(await other_replica.encrypt(practice, b"x", PURPOSE)) == new_key
    rows = await store.rows(practice)
    assert sorted((r.key_id == new_key, r.active) for r in rows) == [(False, False), (True, True)]
    for reader in (cipher, store.cipher()):
        assert await reader.decrypt(practice, old, PURPOSE) == _value(practice, 1)
        assert await reader.decrypt(practice, new, PURPOSE) == _value(practice, 2)

    # The background pass's step: moves a value to the active key, leaves one under it alone.
    moved = await cipher.reencrypt(practice, old, PURPOSE)
    assert moved is not None and key_id_of(moved) == new_key
    assert await cipher.decrypt(practice, moved, PURPOSE) == _value(practice, 1)
    assert await cipher.reencrypt(practice, new, PURPOSE) is None


async def test_shredding_makes_the_practice_unreadable_and_leaves_others_alone(store: Store) -> None:
    cipher = store.cipher()
    replica = store.cipher(cache_ttl=0)  # another process holding the keys in its cache
    gone, kept = _practice(), _practice()
    gone_blob = await cipher.encrypt(gone, _value(gone), PURPOSE)
    await cipher.rotate_data_key(gone)
    gone_blob2 = await cipher.encrypt(gone, _value(gone, 2), PURPOSE)
    kept_blob = await cipher.encrypt(kept, _value(kept), PURPOSE)
    assert await replica.decrypt(gone, gone_blob, PURPOSE) == _value(gone)
    wrapped = [r.wrapped_key for r in await store.rows(gone)]

    assert await cipher.shred(gone) == 2
    rows = await store.rows(gone)
    assert [(r.kek_id, r.wrapped_key, r.active) for r in rows] == [(SHREDDED, b"", False)]  # a tombstone
    for reader in (cipher, replica, store.cipher()):
        for blob in (gone_blob, gone_blob2):
            with pytest.raises(FailedPrecondition) as refused:
                await reader.decrypt(gone, blob, PURPOSE)
            error = refused.value
            assert error.reason == "PRACTICE_SHREDDED"
            assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
            assert all(w.hex() not in str(error) for w in wrapped)
        with pytest.raises(FailedPrecondition) as refused:
            await reader.encrypt(gone, b"new data", PURPOSE)
        assert refused.value.reason == "PRACTICE_SHREDDED"
        assert await reader.decrypt(kept, kept_blob, PURPOSE) == _value(kept)
    with pytest.raises(FailedPrecondition):
        await cipher.rotate_data_key(gone)
    assert await cipher.is_shredded(gone) and not await cipher.is_shredded(kept)
    assert (await cipher.status())["shredded_practices"] == 1
    assert await cipher.rewrap() == 0  # the tombstone is nobody's key
    if not store.settings.database_url:
        raw = b"".join(p.read_bytes() for p in store.settings.data_dir.glob("sync.db*"))
        assert raw and [w for w in wrapped if w in raw] == []  # overwritten, not only unlinked


async def test_derived_keys_and_blind_indexes_are_stable_across_kek_rotation(store: Store) -> None:
    keyring = store.keyring()
    purposes = ("sync-blind-index", "temporal-payloads", "vendor-webhook-secrets")
    before = {p: keyring.derive(p) for p in purposes}
    projection = {"family_name": "Oyelaran", "given_name": "Ife", "birth_date": "1931-02-28", "email": "a@b.c"}
    digests = BlindIndexer(before["sync-blind-index"]).digests("p-1", projection)
    secret = zenoti_secret(before["vendor-webhook-secrets"], "config-1")
    assert len(set(before.values())) == 3

    keyring.rotate()
    keyring.rotate()
    for ring in (keyring, store.keyring()):
        assert ring.active_kek_id == "kek-3"
        assert {p: ring.derive(p) for p in purposes} == before
        assert BlindIndexer(ring.derive("sync-blind-index")).digests("p-1", projection) == digests
        assert zenoti_secret(ring.derive("vendor-webhook-secrets"), "config-1") == secret
    # The derivation root is not a KEK: it wraps nothing, and retiring old KEKs leaves it.
    keyring.retire("kek-1")
    assert store.keyring().derive("sync-blind-index") == before["sync-blind-index"]


def test_a_keyring_from_before_roots_keeps_deriving_what_it_derived(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "keys" / "keyring.json"
    path.parent.mkdir()
    kek = os.urandom(32)
    path.write_text(json.dumps({"active": "kek-1", "keys": {"kek-1": base64.b64encode(kek).decode()}}))
    old_way = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sync-blind-index").derive(kek)
    keyring = LocalKeyring(path)
    assert keyring.derive("sync-blind-index") == old_way
    keyring.rotate()
    keyring.retire("kek-1")
    assert LocalKeyring(path).derive("sync-blind-index") == old_way
    assert json.loads(path.read_text())["derivation_root"] == "root-1"


async def test_associated_data_binds_values_to_their_practice_and_purpose(store: Store) -> None:
    cipher = store.cipher()
    a, b = _practice(), _practice()
    blob = await cipher.encrypt(a, _value(a), PURPOSE)
    await cipher.ensure_key(b)
    for practice, purpose in ((b, PURPOSE), (a, "merge-base")):
        with pytest.raises(FailedPrecondition) as refused:
            await cipher.decrypt(practice, blob, purpose)
        assert refused.value.reason == "CIPHERTEXT_INVALID"
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(FailedPrecondition):
        await cipher.decrypt(a, tampered, PURPOSE)
    with pytest.raises(FailedPrecondition) as refused:
        await cipher.decrypt(a, b"\x02" + blob[1:], PURPOSE)
    assert refused.value.reason == "CIPHERTEXT_FORMAT"

    # A wrapped data key moved to another practice's row does not unwrap (the wrap context binds it).
    async with store.sessions() as session, session.begin():
        await session.execute(store.table.update().where(store.table.c.practice_id == a).values(practice_id=b))
        await session.execute(store.table.delete().where(store.table.c.key_id != key_id_of(blob)))
    with pytest.raises(FailedPrecondition) as refused:
        await store.cipher().decrypt(b, blob, PURPOSE)
    assert refused.value.reason == "KEK_UNWRAP_FAILED"


async def test_the_operator_command_line_rotates_rewraps_and_retires(store: Store) -> None:
    cipher = store.cipher()
    practice = _practice()
    blob = await cipher.encrypt(practice, _value(practice), PURPOSE)
    settings = store.settings

    status = await run("status", settings)
    assert status["keyring"]["active"] == "kek-1"
    assert status["services"]["sync"]["data_keys_per_kek"] == {"kek-1": 1}
    with pytest.raises(FailedPrecondition) as refused:
        await run("retire-kek", settings, kek="kek-1")
    assert refused.value.reason == "KEK_ACTIVE"
    assert (await run("rotate-kek", settings))["active"] == "kek-2"
    with pytest.raises(FailedPrecondition) as refused:
        await run("retire-kek", settings, kek="kek-1")
    assert refused.value.reason == "KEK_IN_USE"
    assert (await run("rewrap", settings))["services"]["sync"] == {"rewrapped": 1}
    retired = await run("retire-kek", settings, kek="kek-1")
    assert retired["keyring"]["keks"] == ["kek-2"] and retired["keyring"]["retired"] == ["kek-1"]
    assert await store.cipher().decrypt(practice, blob, PURPOSE) == _value(practice)

    await run("rotate-data-key", settings, practice=practice)
    assert (await run("status", settings))["services"]["sync"]["active_keys"] == 1
    assert (await run("shred", settings, practice=practice))["services"]["sync"] == {"keys_destroyed": 2}
    with pytest.raises(FailedPrecondition) as refused:
        await store.cipher().decrypt(practice, blob, PURPOSE)
    assert refused.value.reason == "PRACTICE_SHREDDED"


# -- AWS KMS ------------------------------------------------------------------------------------


@pytest.fixture
def kms(monkeypatch):  # noqa: ANN001, ANN201
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


async def test_the_kms_provider_wraps_data_keys_under_kms_with_the_practice_in_context(store: Store, kms) -> None:  # noqa: ANN001
    first = kms.create_key(Description="concord-test-1")["KeyMetadata"]
    provider = key_provider_from(
        SimpleNamespace(data_dir=store.settings.data_dir, key_provider="aws-kms", aws_kms_key_id=first["KeyId"])
    )
    assert isinstance(provider, AwsKmsProvider)
    cipher = store.cipher(provider)
    practice = _practice()
    blob = await cipher.encrypt(practice, _value(practice), PURPOSE)
    [row] = await store.rows(practice)
    assert row.kek_id == f"kms:{first['KeyId']}" == provider.active_kek_id
    assert await store.cipher(provider).decrypt(practice, blob, PURPOSE) == _value(practice)
    assert encryption_context(f"data-key|{practice}|{row.key_id}".encode()) == {
        "concord:purpose": "data-key",
        "concord:practice_id": practice,
        "concord:data_key_id": row.key_id,
    }
    # The EncryptionContext binds the wrapped key to its practice and data key.
    with pytest.raises(FailedPrecondition) as refused:
        provider.unwrap(row.kek_id, row.wrapped_key, f"data-key|p-other|{row.key_id}".encode())
    assert refused.value.reason == "KEK_UNWRAP_FAILED"

    # Moving to a new KMS key: point the setting at it and rewrap.
    second = kms.create_key(Description="concord-test-2")["KeyMetadata"]
    moved = AwsKmsProvider(second["Arn"], kms)
    assert await store.cipher(moved).rewrap() == 1
    assert {r.kek_id for r in await store.rows(practice)} == {f"kms:{second['KeyId']}"}
    assert await store.cipher(moved).decrypt(practice, blob, PURPOSE) == _value(practice)
    assert await cipher.decrypt(practice, blob, PURPOSE) == _value(practice)  # cached, still valid


def test_the_provider_factory_defaults_to_the_local_keyring(tmp_path) -> None:  # noqa: ANN001
    assert isinstance(key_provider_from(SimpleNamespace(data_dir=tmp_path)), LocalKeyring)
    assert isinstance(key_provider_from(SimpleNamespace(data_dir=tmp_path, key_provider="local")), LocalKeyring)
    with pytest.raises(FailedPrecondition) as refused:
        key_provider_from(SimpleNamespace(data_dir=tmp_path, key_provider="aws-kms", aws_kms_key_id=""))
    assert refused.value.reason == "KMS_KEY_MISSING"
    with pytest.raises(FailedPrecondition):
        key_provider_from(SimpleNamespace(data_dir=tmp_path, key_provider="vault"))
