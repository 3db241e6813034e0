"""The HTTP protocol limits, on top of uvicorn's HTTP protocol (httptools or h11): deadlines for
slow headers, bodies and readers, the header size limit and the connection limit."""

from __future__ import annotations

import asyncio
from typing import Any

from .errors import APIError, ServiceUnavailable

__all__ = [
    "BODY_TIMEOUT_S",
    "DEFAULT_MAX_CONNECTIONS",
    "HEADER_TIMEOUT_S",
    "MAX_HEADER_BYTES",
    "WRITE_TIMEOUT_S",
    "limited",
]

#: a connection must complete a request's headers within this many seconds of opening (or of
#: its previous response), else it is closed: slow-loris clients cannot pile up
HEADER_TIMEOUT_S = 10.0
#: and the request's body within this many seconds of its headers (1 MiB, the largest body
#: accepted, in 30 s is 35 KB/s)
BODY_TIMEOUT_S = 30.0
#: a client that does not read its responses: its connection is closed once the server's
#: write buffer has stayed full this long
WRITE_TIMEOUT_S = 30.0
#: most bytes a request line and headers may take (httptools has no limit of its own)
MAX_HEADER_BYTES = 64 * 1024
#: most connections open at once; the ones beyond get 503 (health probes excepted)
DEFAULT_MAX_CONNECTIONS = 512
#: a connection beyond the limit that sends nothing is closed after this long
REFUSED_GRACE_S = 1.0
#: what the 503 of a connection beyond the limit asks the client to wait
RETRY_AFTER_S = 1
#: the request a connection beyond the limit is still served (monitoring must see the server)
_HEALTH = (b"GET /_emulator/health ", b"GET /_emulator/health?")

_REASONS = {431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def _closing_response(error: APIError) -> bytes:
    """``error`` (its status, envelope and headers, as the error renders them) as a complete
    HTTP/1.1 response that closes the connection."""
    status, body, headers = error.reply()
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
        *(b"%s: %s" % pair for pair in headers),
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_TOO_LARGE = _closing_response(
    APIError(
        f"Request headers are larger than {MAX_HEADER_BYTES} bytes",
        status=431,
        type="invalid_request_error",
    )
)


def limited(
    base: type[asyncio.Protocol],
    timeout_s: float,
    body_timeout_s: float,
    *,
    write_timeout_s: float = WRITE_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (``base``) with the emulator's limits (one class per server: it
    counts that server's connections).

    - request headers must arrive within ``timeout_s``, then the body within
      ``body_timeout_s`` (uvicorn only times out idle keep-alive connections, not slow ones);
      a body cut off this way reaches the app as a disconnect;
    - headers past :data:`MAX_HEADER_BYTES` get 431, however many reads they came in;
    - a connection whose responses are not read (the write buffer stays full) is closed after
      ``write_timeout_s``;
    - beyond ``max_connections`` open connections, a request gets 503 with ``Retry-After``
      and a closed connection (``GET /_emulator/health`` is still served).
    """
    too_many = _closing_response(
        ServiceUnavailable(
            f"Too many open connections: the emulator serves at most {max_connections} at once "
            f"(--max-connections). Retry after {RETRY_AFTER_S} s.",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    )

    class Limited(base):  # type: ignore[valid-type,misc]
        #: connections of this server open now
        open = 0
        _deadline: asyncio.TimerHandle | None = None
        _body_deadline: asyncio.TimerHandle | None = None
        _write_deadline: asyncio.TimerHandle | None = None
        _body_cycle: Any = None
        _header_bytes = 0
        _counted = False
        _refused = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            Limited.open += 1
            self._counted = True
            if Limited.open > max_connections:
                self._refused = True  # answered 503 at its first bytes, unless a health probe
                self._arm_deadline(REFUSED_GRACE_S)
            else:
                self._arm_deadline()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                if not data.startswith(_HEALTH):
                    self._close_with(too_many)
                    return
                self._refused = False
            cycle = self.cycle
            if cycle is None or cycle.response_complete:  # these bytes start a request
                size = self._header_bytes + len(data)
                if size > MAX_HEADER_BYTES:  # (the headers may all be in this one read)
                    end = data.find(b"\r\n\r\n")
                    if end < 0 or self._header_bytes + end + 4 > MAX_HEADER_BYTES:
                        self._close_with(_TOO_LARGE)
                        return
                self._header_bytes = size
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                self._header_bytes = 0  # a request is being answered: the rest is its body
                if cycle.more_body and cycle is not self._body_cycle:  # body still to come
                    self._body_cycle = cycle
                    self._body_deadline = self.loop.call_later(
                        body_timeout_s, self._expire_body, cycle
                    )

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._cancel_body_deadline()
            self._arm_deadline()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_deadline is None:
                self._write_deadline = self.loop.call_later(write_timeout_s, self._expire_write)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._write_deadline is not None:
                self._write_deadline.cancel()
                self._write_deadline = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._counted:
                Limited.open -= 1
                self._counted = False
            for timer in (self._deadline, self._write_deadline):
                if timer is not None:
                    timer.cancel()
            self._cancel_body_deadline()
            super().connection_lost(exc)

        def _close_with(self, response: bytes) -> None:
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

        def _cancel_body_deadline(self) -> None:
            if self._body_deadline is not None:
                self._body_deadline.cancel()
                self._body_deadline = None

        def _expire_body(self, cycle: Any) -> None:
            self._body_deadline = None
            if self.cycle is cycle and cycle.more_body and not self.transport.is_closing():
                self.transport.close()  # the body stopped arriving

        def _expire_write(self) -> None:
            self._write_deadline = None
            if not self.transport.is_closing():
                self.transport.abort()  # nobody reads: its buffered answers are thrown away

        def _arm_deadline(self, seconds: float = timeout_s) -> None:
            self._header_bytes = 0
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(seconds, self._expire, self.cycle)

        def _expire(self, cycle: Any) -> None:
            self._deadline = None
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()  # no new request since the deadline was set

    Limited.__name__ = Limited.__qualname__ = f"Limited{base.__name__}"
    return Limited
