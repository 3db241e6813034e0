"""API keys: reading one from an ``Authorization`` header, and, with ``--only-known-keys``,
refusing keys the emulator was not told about."""

from __future__ import annotations

from collections.abc import Callable

from .errors import AuthenticationError
from .wire import KEY_PREFIX, is_api_key

__all__ = ["KEYS_SEEN", "MAX_KEY_LENGTH", "Authenticator", "parse_authorization"]

#: most Authorization header values whose key is remembered (parsed once, not per request)
KEYS_SEEN = 1024
MAX_KEY_LENGTH = 256


def parse_authorization(authorization: str | bytes | None) -> str:
    """The API key of an ``Authorization`` header value, or 401 saying what is wrong."""
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    if not authorization:
        raise AuthenticationError(
            f"Missing API key: send the header 'Authorization: Bearer {KEY_PREFIX}...'"
        )
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError(
            f"Invalid API key: use the Bearer scheme, 'Authorization: Bearer {KEY_PREFIX}...'"
        )
    key = key.strip()
    if not is_api_key(key) or len(key) > MAX_KEY_LENGTH:
        raise AuthenticationError(f"Invalid API key: keys start with '{KEY_PREFIX}'")
    return key


class Authenticator:
    """Keys from header values (each value parsed once: a client sends the same header on
    every request), checked against ``known`` when only known keys are accepted."""

    def __init__(self, known: Callable[[str], bool] | None = None) -> None:
        self.known = known
        self._seen: dict[str | bytes | None, str] = {}

    def __call__(self, authorization: str | bytes | None) -> str:
        key = self._seen.get(authorization)
        if key is None:
            key = parse_authorization(authorization)
            if len(self._seen) >= KEYS_SEEN:
                self._seen.clear()
            self._seen[authorization] = key
        if self.known is not None and not self.known(key):
            raise AuthenticationError("Invalid API key")
        return key
