"""The one error family of the emulator, rendered in the real API's envelope.

Every failure the emulator answers, whatever raised it, becomes
``{"error": {"code": <http status>, "message": ..., "type": ...}}``: an :class:`APIError`
renders itself (:meth:`APIError.reply`), and every path that answers an error uses that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .wire import ERROR_TYPES, Reply, error_body, error_type, json_reply

if TYPE_CHECKING:
    from .tasks import StoreFull

__all__ = [
    "ERROR_TYPES",
    "APIError",
    "AuthenticationError",
    "InsufficientCredits",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "RateLimited",
    "RequestTooLarge",
    "ServerError",
    "ServiceUnavailable",
    "UnsupportedMediaType",
    "error_body",
    "method_not_allowed",
    "server_error",
    "store_full",
    "task_not_found",
]


class APIError(Exception):
    """An error answered to the client in the real envelope."""

    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.type = type or error_type(self.status)
        #: the type was given (a scenario's): a route's own types do not replace it
        self.typed = type is not None
        self.headers = dict(headers or {})

    def body(self, types: Mapping[int, str] | None = None) -> dict[str, dict[str, object]]:
        """The error envelope; ``types``: the route's error type by status, where it has its
        own (Suno's ``bad_request``)."""
        kind = self.type
        if types and not self.typed:
            kind = types.get(self.status, kind)
        return error_body(self.status, self.message, kind)

    def reply(self, types: Mapping[int, str] | None = None) -> Reply:
        """The whole answer: status, the envelope as JSON, and the error's headers."""
        return json_reply(self.body(types), self.status, self.headers)


class InvalidRequest(APIError):
    status = 400


class AuthenticationError(APIError):
    status = 401


class InsufficientCredits(APIError):
    status = 402


class NotFound(APIError):
    status = 404


class MethodNotAllowed(APIError):
    status = 405


class RequestTooLarge(APIError):
    status = 413


class UnsupportedMediaType(APIError):
    status = 415


class RateLimited(APIError):
    status = 429


class ServerError(APIError):
    status = 500


class ServiceUnavailable(APIError):
    status = 503


def method_not_allowed(method: str, path: str, allow: str) -> MethodNotAllowed:
    """405 for ``method`` on ``path``, naming the methods it allows (also in ``Allow``)."""
    return MethodNotAllowed(
        f"Method {method} is not allowed on {path[:200]!r}. Allowed: {allow}",
        headers={"Allow": allow},
    )


def task_not_found(task_id: str) -> NotFound:
    """404 for a task that is unknown, forgotten, or another key's (indistinguishable)."""
    shown = task_id if len(task_id) <= 80 and task_id.isprintable() else repr(task_id[:80])
    return NotFound(f"Task not found: {shown}")


def store_full(full: StoreFull) -> ServiceUnavailable:
    """503 for a create while every task the emulator holds is still live (it never forgets an
    acknowledged task to make room), with ``Retry-After`` until the next one ends."""
    wait = 60 if full.retry_after_s is None else max(1, math.ceil(full.retry_after_s))
    return ServiceUnavailable(
        f"The emulator holds {full.max_tasks} tasks, all still running, and forgets only "
        f"finished ones. Retry after {wait} s, or start it with a larger --max-tasks.",
        headers={"Retry-After": str(wait)},
    )


def server_error(exc: BaseException) -> ServerError:
    """500 for a bug in the emulator (``exc``), pointing to where its traceback went."""
    return ServerError(
        f"Internal emulator error ({type(exc).__name__}). This is a bug in the emulator; "
        "the traceback is in the server log and in GET /_emulator/health (server_errors)."
    )
