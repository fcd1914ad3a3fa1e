"""Encryption of SIP passwords that must be kept for a short while (a bulk reset's new
passwords until the person who ran it downloads them once).

Fernet (AES-128-CBC + HMAC-SHA256, from the ``cryptography`` package) with a key derived
from Django's SECRET_KEY by HKDF for this one purpose: a database dump alone reveals nothing,
and rotating SECRET_KEY makes what is left unreadable (it expires within the hour anyway).
"""

from __future__ import annotations

import base64
import secrets
import string
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

# Letters and digits without look-alikes (0/O, 1/l/I): read aloud, typed on a phone keypad.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
GENERATED_LENGTH = 20


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vobizadmin",
               info=b"bulk reset passwords").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@sensitive_variables()
def seal(plaintext: str) -> str:
    """``plaintext`` encrypted and authenticated, as text for a database column."""
    return _fernet(settings.SECRET_KEY).encrypt(plaintext.encode()).decode()


@sensitive_variables()
def unseal(token: str) -> str | None:
    """The plaintext of ``seal``'s output, or None when it cannot be read (tampered with, or
    sealed under another SECRET_KEY)."""
    try:
        return _fernet(settings.SECRET_KEY).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None


def generate_password(length: int = GENERATED_LENGTH) -> str:
    """A new SIP password: ``length`` characters from PASSWORD_ALPHABET (~113 bits at 20),
    at least one upper-case letter, lower-case letter and digit."""
    while True:
        candidate = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if (any(c.isupper() for c in candidate) and any(c.islower() for c in candidate)
                and any(c.isdigit() for c in candidate)):
            return candidate
