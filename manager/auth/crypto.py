"""Credential primitives: token generation, hashing, sealing, HMAC request signatures and
passwords."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

TOKEN_PREFIX = "berth_"
SIGNATURE_SCHEME = "BERTH-HMAC-SHA256"

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def new_access_key() -> str:
    return "BK" + secrets.token_hex(9).upper()


def new_secret() -> str:
    return secrets.token_urlsafe(30)


def format_token(access_key: str, secret: str) -> str:
    """The single string users paste into `berth login --token`."""
    return f"{TOKEN_PREFIX}{access_key}.{secret}"


def parse_token(token: str) -> tuple[str, str] | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    access_key, sep, secret = token.removeprefix(TOKEN_PREFIX).partition(".")
    if not sep or not access_key or not secret:
        return None
    return access_key, secret


def sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def signing_key_for(secret: str) -> bytes:
    """Clients sign with a key derived from the secret; the secret itself never signs anything."""
    return hmac.new(secret.encode(), b"berth-request-signing-v1", hashlib.sha256).digest()


def string_to_sign(*, method: str, path_qs: str, date: str, body: bytes) -> bytes:
    body_hash = hashlib.sha256(body).hexdigest()
    return "\n".join([method.upper(), path_qs, date, body_hash]).encode()


def sign(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class Sealer:
    """Seals small secrets at rest with a key derived from the manager's secret_key."""

    def __init__(self, secret_key: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())
        self._fernet = Fernet(key)

    def seal(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def unseal(self, data: bytes) -> bytes | None:
        try:
            return self._fernet.decrypt(data)
        except InvalidToken:
            return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        # Spend the same time as a real check so a missing account is not observable by timing.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
