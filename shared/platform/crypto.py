"""Encryption of reporter data at rest: AES-256-GCM (``cryptography``) with a key ring for rotation.

Sealed format (bytes): ``b"g1" | len(key_id) (1 byte) | key_id (ASCII) | nonce (12 bytes) |
ciphertext+tag`` — AES-GCM as in NIST SP 800-38D with a random 96-bit nonce per message. The
associated data binds a ciphertext to its row (the case id), so a sealed value copied to another
row does not decrypt.

Keys come from a setting ``"id:base64key,id2:base64key"``: the first key seals, every listed key
opens. Rotation: put a new key first, keep the old ones listed, re-seal the stored rows
(``gridcase pii rotate``), then drop the old key.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)
MAGIC = b"g1"
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class KeyringError(ValueError):
    """A key setting is malformed, or a sealed value names a key the ring does not hold / fails
    authentication."""


def new_key() -> str:
    """A fresh 256-bit key, URL-safe base64 (for the key setting)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Keyring:
    """Ordered AES-256 keys ``((key_id, key), …)``; the first seals."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, setting: str) -> Keyring:
        """Read ``"id:base64key,…"``.

        Raises:
            KeyringError: empty, a malformed entry, a key that is not 32 bytes, a repeated id.
        """
        keys: list[tuple[str, bytes]] = []
        for entry in (e.strip() for e in setting.split(",") if e.strip()):
            key_id, sep, b64 = entry.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise KeyringError(f"key entry {key_id[:32]!r}: expected 'id:base64key' (id: letters, digits, _.-)")
            try:
                key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
            except ValueError:
                raise KeyringError(f"key {key_id!r} is not base64") from None
            if len(key) != 32:
                raise KeyringError(f"key {key_id!r} has {len(key)} bytes; AES-256 needs 32")
            if any(k == key_id for k, _ in keys):
                raise KeyringError(f"key id {key_id!r} listed twice")
            keys.append((key_id, key))
        if not keys:
            raise KeyringError("no key given")
        return cls(tuple(keys))

    @classmethod
    def development(cls, secret: str) -> Keyring:
        """A key derived (HKDF-SHA256) from ``secret`` for development runs without a key setting;
        logs a warning: production sets its own keys."""
        log.warning("no PII key configured (INTAKE_PII_KEYS): using a development key derived from the pseudonym key")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gridcase-pii", info=b"dev").derive(secret.encode())
        return cls((("dev", key),))

    @property
    def current(self) -> str:
        """Id of the sealing key."""
        return self.keys[0][0]

    def seal(self, value: dict, associated: bytes) -> bytes:
        """Encrypt ``value`` (JSON-serialisable) under the current key, bound to ``associated``."""
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        kid = key_id.encode("ascii")
        return MAGIC + bytes([len(kid)]) + kid + nonce + AESGCM(key).encrypt(nonce, plaintext, associated)

    @staticmethod
    def key_id_of(sealed: bytes) -> str:
        """The id of the key that sealed ``sealed``.

        Raises:
            KeyringError: not a sealed value.
        """
        if len(sealed) < 3 or sealed[:2] != MAGIC:
            raise KeyringError("not a sealed value")
        return sealed[3:3 + sealed[2]].decode("ascii")

    def open(self, sealed: bytes, associated: bytes) -> dict:
        """Decrypt a value sealed by :meth:`seal`.

        Raises:
            KeyringError: unknown key id, tampered data or wrong ``associated``.
        """
        key_id = self.key_id_of(sealed)
        key = dict(self.keys).get(key_id)
        if key is None:
            raise KeyringError(f"sealed with key {key_id!r}, which is not configured")
        start = 3 + len(key_id)
        nonce, body = sealed[start:start + NONCE_BYTES], sealed[start + NONCE_BYTES:]
        try:
            return json.loads(AESGCM(key).decrypt(nonce, body, associated))
        except Exception:  # noqa: BLE001 - InvalidTag and friends: one message
            raise KeyringError("sealed value failed authentication") from None

    def reseal(self, sealed: bytes, associated: bytes) -> bytes | None:
        """``sealed`` under the current key, or ``None`` when it already is."""
        if self.key_id_of(sealed) == self.current:
            return None
        return self.seal(self.open(sealed, associated), associated)
