"""Passwords as values that do not leak through repr, str, logs or tracebacks."""

from __future__ import annotations

import hmac


class Secret:
    """A password or other secret string that never shows itself.

    ``repr()`` and ``str()`` print asterisks, so a Secret can sit in a dataclass,
    a log record or a traceback's locals without exposing its value. Call
    :meth:`reveal` at the one place the value is needed.

    Example:
        >>> s = Secret("wso2carbon")
        >>> s
        Secret('********')
        >>> s.reveal()
        'wso2carbon'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret takes a str")
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


PasswordLike = str | Secret


def reveal(password: str | Secret | None) -> str | None:
    """The plain value of a password given as str, Secret or None."""
    if isinstance(password, Secret):
        return password.reveal()
    return password


def as_secret(password: str | Secret | None) -> Secret | None:
    """A password given as str, Secret or None, as a Secret (or None)."""
    if isinstance(password, str):
        return Secret(password)
    return password
