"""Mailbox passwords at rest: Fernet tokens (AES-128-CBC + HMAC-SHA256), never the plaintext.

The keys come from `TRUEPIPE_CAPTURE_KEY`: one Fernet key, or a comma-separated list whose
first key encrypts and every key decrypts (put a new key first to rotate, run
`truepipe mailbox rekey`, then drop the old one). Without it, the key is derived from
`TRUEPIPE_SECRET_KEY` with HKDF-SHA256; that derived key also stays a last decryption key
once `TRUEPIPE_CAPTURE_KEY` is set, so moving to an explicit key loses no stored password.

A token no key can open (a key was changed or dropped) raises `SecretError` with what to do:
the caller records it on that mailbox and goes on with the others.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

HKDF_SALT = b"truepipe capture"
HKDF_INFO = b"mailbox passwords v1"


class SecretError(Exception):
    """A stored password that cannot be decrypted with the configured keys."""


def derived_key(secret_key: str) -> bytes:
    """The Fernet key derived from TRUEPIPE_SECRET_KEY (HKDF-SHA256, 32 bytes, url-safe base64)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(raw)


@lru_cache(maxsize=8)
def _fernet(capture_keys: str, secret_key: str) -> MultiFernet:
    keys: list[Fernet] = []
    for position, key in enumerate((k.strip() for k in capture_keys.split(",") if k.strip()), start=1):
        try:
            keys.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the value: it is a secret (or part of one).
            raise ImproperlyConfigured(
                f"TRUEPIPE_CAPTURE_KEY: key {position} is not a Fernet key (32 bytes, url-safe base64; "
                'make one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())")'
            ) from None
    keys.append(Fernet(derived_key(secret_key)))
    return MultiFernet(keys)


def fernet() -> MultiFernet:
    """Every configured key, the first one encrypting."""
    return _fernet(getattr(settings, "TRUEPIPE_CAPTURE_KEY", "") or "", settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        raise SecretError(
            "the stored password cannot be decrypted: TRUEPIPE_CAPTURE_KEY (or TRUEPIPE_SECRET_KEY, "
            "which it defaults to) changed since it was saved. Put the old key back after the new one "
            "in TRUEPIPE_CAPTURE_KEY (comma-separated), or set the password again with "
            "`truepipe mailbox password NAME`."
        ) from None


def rotate(token: str) -> str:
    """The same password encrypted with the first key (raises `SecretError` like `decrypt`)."""
    try:
        return fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError, ValueError):
        decrypt(token)  # raises the explanatory error
        raise
