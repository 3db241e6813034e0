"""The one error family of the emulator, rendered in the real API's envelope.

Every failure the emulator answers, whatever raised it, becomes
``{"error": {"code": <http status>, "message": ..., "type": ...}}``.
"""

from __future__ import annotations

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
]

#: HTTP status -> error ``type`` on the wire ([choice] in the contract; a scenario may override).
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_credits",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """An error answered to the client in the real envelope."""

    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.type = type or ERROR_TYPES.get(self.status, "server_error")
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, object]]:
        return error_body(self.status, self.message, self.type)


def error_body(status: int, message: str, type: str) -> dict[str, dict[str, object]]:
    """The wire envelope of an error."""
    return {"error": {"code": status, "message": message, "type": type}}


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
