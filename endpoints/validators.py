"""The documented rules for values staff type (docs/vobiz-api.md, "Validation rules").

Legacy values from the API may break them; they are displayed as they are and never
re-sent unless the user changes them.
"""

import re

from django.core.exceptions import ValidationError

USERNAME_RE = re.compile(r"^[A-Za-z0-9]+$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]+$")
PASSWORD_MIN = 8
USERNAME_MAX = 64
ALIAS_MAX = 100
PASSWORD_MAX = 128

USERNAME_HINT = "Letters and digits only. Vobiz adds a number to the end."
ALIAS_HINT = "Letters, digits, hyphens (-) and underscores (_) only."
PASSWORD_HINT = f"At least {PASSWORD_MIN} characters."


def validate_username(value: str) -> None:
    if not USERNAME_RE.fullmatch(value or ""):
        raise ValidationError(
            "Enter a username using only letters (a-z, A-Z) and digits (0-9).", code="username"
        )


def validate_alias(value: str) -> None:
    if value and not ALIAS_RE.fullmatch(value):
        raise ValidationError(
            "Enter an alias using only letters, digits, hyphens (-) and underscores (_).",
            code="alias",
        )


def validate_password(value: str) -> None:
    if len(value or "") < PASSWORD_MIN:
        raise ValidationError(
            f"Enter a password of at least {PASSWORD_MIN} characters.", code="password"
        )
