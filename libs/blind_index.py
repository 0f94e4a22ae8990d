"""Blind indexes of a patient's identifying fields: keyed HMAC-SHA256 of normalised values, so the
hub finds a patient by email, phone or name and birth date without decrypting a record, and the
indexes reveal nothing to whoever reads the table without the key.

Each index is of one *kind* (which fields it covers); two records share an index of a kind exactly
when their normalised values of those fields are equal. The key is per practice (an index of one
practice never matches another's) and is derived from the keyring's derivation root, which
rotating the key-encryption key leaves alone (libs/crypto.py): no re-index is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping

# The kinds, with the projected fields each covers. Email and phone are deterministic keys on
# their own only with a name that agrees (families share an inbox and a phone).
KINDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "phone": ("phone",),
    "family_birth": ("family_name", "birth_date"),
    "name": ("given_name", "family_name"),
    "birth": ("birth_date",),
    "family_postal": ("family_name", "postal_code"),
}


def _normalise(field: str, value: str) -> str:
    if field in ("given_name", "family_name"):
        # Accents, case, spacing and punctuation aside: "José  O'Neil" = "jose oneil".
        decomposed = unicodedata.normalize("NFKD", value)
        letters = "".join(c for c in decomposed if not unicodedata.combining(c))
        words = re.sub(r"[^\w\s]", "", letters.casefold()).split()
        if field == "given_name":
            words = words[:1]  # the first given name: "Ann Marie" and "Ann" are often one person
        return " ".join(words)
    if field == "email":
        return value.strip().lower()
    if field == "postal_code":
        return re.sub(r"\s", "", value).upper()[:5]
    return value.strip()  # phone (E.164 in projections), birth_date (ISO)


# Kinds a candidate is looked up by. A birth date alone is shared by hundreds of patients of a
# large practice: it only tells whether two candidates' birth dates differ.
LOOKUP_KINDS = frozenset(KINDS) - {"birth"}


def lookup_digests(digests: Mapping[str, str]) -> set[str]:
    return {digest for kind, digest in digests.items() if kind in LOOKUP_KINDS}


def index_values(projection: Mapping[str, str | None]) -> dict[str, str]:
    """kind -> the normalised plaintext the index is made of, for every kind whose fields are all present."""
    out = {}
    for kind, fields in KINDS.items():
        parts = [_normalise(f, projection[f]) if projection.get(f) else "" for f in fields]
        if all(parts):
            out[kind] = "\x1f".join(parts)
    return out


class BlindIndexer:
    """The practice's index key makes the indexes; ``digests`` is what the sync service stores."""

    def __init__(self, root_key: bytes) -> None:
        self._root = root_key

    def _key(self, practice_id: str) -> bytes:
        return hmac.new(self._root, f"blind-index:{practice_id}".encode(), hashlib.sha256).digest()

    def digests(self, practice_id: str, projection: Mapping[str, str | None]) -> dict[str, str]:
        key = self._key(practice_id)
        return {
            kind: hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
            for kind, value in index_values(projection).items()
        }


MATCH, POSSIBLE, NO_MATCH = "MATCH", "POSSIBLE", "NO_MATCH"


def decide(theirs: Mapping[str, str], candidate: Mapping[str, str]) -> tuple[str, list[str]]:
    """Compares one record's digests with a candidate's: the verdict and why (the kinds that agree,
    and "<kind>_differs" for those both hold differently). Names and birth dates weigh most:

    - MATCH: family name and birth date agree and the given name does not differ; or email or
      phone agrees with the full name, and the birth date does not differ.
    - POSSIBLE: any other agreement of email, phone, family name + birth date, full name, or
      family name + postal code (a shared family phone, a new surname, a typo in a birth date).
    - NO_MATCH: nothing of that agrees.
    """
    same = sorted(k for k in theirs if candidate.get(k) == theirs[k])
    differs = sorted(f"{k}_differs" for k in theirs if k in candidate and candidate[k] != theirs[k])
    why = same + differs
    agree = set(same)
    name_differs = "name_differs" in differs
    birth_differs = "birth_differs" in differs
    if "family_birth" in agree and not name_differs:
        return MATCH, why
    if agree & {"email", "phone"} and "name" in agree and not birth_differs:
        return MATCH, why
    if agree & {"email", "phone", "family_birth", "name", "family_postal"}:
        return POSSIBLE, why
    return NO_MATCH, why
