"""Test support for the Salesforce sandbox: a fake clock, a change-event receiver, keys for the JWT
bearer flow, and a requests transport adapter that lets simple-salesforce reach the sandbox."""

from __future__ import annotations

import asyncio
import functools
import json
from urllib.parse import urlsplit, urlunsplit

import httpx
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import HTTPAdapter

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z


class Receiver:
    """Change-event endpoint behind an httpx.MockTransport; ``statuses`` are answered in turn, then 200."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def events(self, url: str | None = None) -> list[dict]:
        return [json.loads(r.content) for r in self.requests if url is None or str(r.url) == url]

    def headers(self) -> list[dict]:
        return [e["payload"]["ChangeEventHeader"] for e in self.events()]


@functools.cache
def rsa_key(n: int = 0) -> rsa.RSAPrivateKey:
    """A 2048-bit key per n, made once per test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class LoopbackAdapter(HTTPAdapter):
    """Stands in for DNS and TLS. simple-salesforce always builds ``https://{domain}.salesforce.com`` for
    login and ``https://{instance}`` for data calls; this sends each such request, unchanged otherwise,
    over plain HTTP to the sandbox served on the loopback address."""

    def __init__(self, netloc: str) -> None:
        super().__init__()
        self.netloc = netloc
        self.hosts: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs):  # noqa: ANN003, ANN201
        parts = urlsplit(request.url or "")
        self.hosts.append(parts.netloc)
        request.url = urlunsplit(("http", self.netloc, parts.path, parts.query, ""))
        return super().send(request, **kwargs)


def loopback_session(server_url: str) -> tuple[requests.Session, LoopbackAdapter]:
    adapter = LoopbackAdapter(urlsplit(server_url).netloc)
    session = requests.Session()
    session.mount("https://", adapter)
    return session, adapter
