"""The HTTP protocol limits: header and body deadlines and the header size limit, on top of
uvicorn's HTTP protocol (httptools or h11)."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["BODY_TIMEOUT_S", "HEADER_TIMEOUT_S", "MAX_HEADER_BYTES", "limited"]

#: a connection must complete a request's headers within this many seconds of opening (or of
#: its previous response), else it is closed: slow-loris clients cannot pile up
HEADER_TIMEOUT_S = 10.0
#: and the request's body within this many seconds of its headers (1 MiB, the largest body
#: accepted, in 30 s is 35 KB/s)
BODY_TIMEOUT_S = 30.0
#: most bytes a request line and headers may take (httptools has no limit of its own)
MAX_HEADER_BYTES = 64 * 1024
_TOO_LARGE = b'{"error":{"code":431,"message":"Request headers are larger than 65536 bytes",' \
    b'"type":"invalid_request_error"}}'  # fmt: skip
_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
)


def limited(
    base: type[asyncio.Protocol], timeout_s: float, body_timeout_s: float
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools or h11) closing connections whose request headers,
    or then body, do not arrive in time (uvicorn only times out idle keep-alive connections,
    not slow ones). A body cut off this way reaches the app as a disconnect."""

    class HeaderDeadline(base):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None
        _body_deadline: asyncio.TimerHandle | None = None
        _body_cycle: Any = None
        _header_bytes = 0

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                self._header_bytes = 0  # a request is being answered: the rest is its body
                if cycle.more_body and cycle is not self._body_cycle:  # body still to come
                    self._body_cycle = cycle
                    self._body_deadline = self.loop.call_later(
                        body_timeout_s, self._expire_body, cycle
                    )
                return
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self.transport.write(_TOO_LARGE_RESPONSE)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._cancel_body_deadline()
            self._arm_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._cancel_body_deadline()
            super().connection_lost(exc)

        def _cancel_body_deadline(self) -> None:
            if self._body_deadline is not None:
                self._body_deadline.cancel()
                self._body_deadline = None

        def _expire_body(self, cycle: Any) -> None:
            self._body_deadline = None
            if self.cycle is cycle and cycle.more_body and not self.transport.is_closing():
                self.transport.close()  # the body stopped arriving

        def _arm_deadline(self) -> None:
            self._header_bytes = 0
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(timeout_s, self._expire, self.cycle)

        def _expire(self, cycle: Any) -> None:
            self._deadline = None
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()  # no new request since the deadline was set

    HeaderDeadline.__name__ = HeaderDeadline.__qualname__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline
