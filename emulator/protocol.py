"""The HTTP protocol limits, on top of uvicorn's httptools protocol: deadlines for slow headers,
bodies and readers, the header size limit of every request and the connection limit."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import APIError, ServiceUnavailable
from .wire import Reply, send_reply

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


_TOO_LARGE_ERROR = APIError(
    f"Request headers are larger than {MAX_HEADER_BYTES} bytes",
    status=431,
    type="invalid_request_error",
)
_TOO_LARGE = _closing_response(_TOO_LARGE_ERROR)
_TOO_LARGE_REPLY = Reply(
    431,
    _TOO_LARGE_ERROR.reply().body,
    [*_TOO_LARGE_ERROR.reply().headers, (b"connection", b"close")],
)


async def _refuse_too_large(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI answer to a pipelined request whose headers are too large, served in its turn
    (the requests before it on the connection are answered first), then the connection closes."""
    await send_reply(send, _TOO_LARGE_REPLY)


def limited(
    base: type[HttpToolsProtocol],
    timeout_s: float,
    body_timeout_s: float,
    *,
    write_timeout_s: float = WRITE_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol (``base``) with the emulator's limits (one class per server:
    it counts that server's connections).

    - request headers must arrive within ``timeout_s``, then the body within
      ``body_timeout_s`` (uvicorn only times out idle keep-alive connections, not slow ones);
      a body cut off this way reaches the app as a disconnect;
    - headers past :data:`MAX_HEADER_BYTES` get 431 and a closed connection, on every request
      of a keep-alive connection, however many reads they came in and whatever came before
      them in the same read (pipelining); the requests before it are answered first;
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
        app: Any  # (uvicorn's: the ASGI app it starts for each request)
        _deadline: asyncio.TimerHandle | None = None
        _body_deadline: asyncio.TimerHandle | None = None
        _write_deadline: asyncio.TimerHandle | None = None
        _body_cycle: Any = None
        _counted = False
        _refused = False
        # The header limit, request by request. The parser's callbacks say where it is: in a
        # request's headers or between requests (``_heading``), or in a body. While heading,
        # reads are fed only as far as the open header block may still grow, so a block that
        # starts a read is held to the limit byte for byte. A block that starts inside a read,
        # after the end of another request, may have up to that read's length in it
        # (``_unsure``); if that and what followed may pass the limit, its size is measured
        # from what the parser read once its headers end.
        _heading = True
        _header_bytes = 0  # of the open header block, counted read by read
        _unsure = 0  # more bytes it may have, in the read it began in
        _chunk = 0  # length of the bytes being parsed now
        _heads = 0  # header blocks ended
        _dropping = False  # a too-large request was seen: what follows is not read
        _owe_431 = False  # send 431 once the requests before it are answered

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
            if self._dropping:
                self.flow.pause_reading()
                return
            while True:
                chunk, heads = data, self._heads
                if self._heading:
                    if self._header_bytes + len(data) > MAX_HEADER_BYTES:  # only what it may take
                        chunk = data[: MAX_HEADER_BYTES - self._header_bytes]
                    self._header_bytes += len(chunk)
                self._chunk = len(chunk)
                super().data_received(chunk)
                if len(chunk) == len(data):
                    break
                data = data[len(chunk) :]
                if self.transport.is_closing() or self._dropping:
                    return
                if self._heads == heads:  # the open header block took all it may and goes on
                    self._too_large()
                    return
            cycle = self.cycle
            waiting = cycle is not None and not cycle.response_complete and cycle.more_body
            if waiting and cycle is not self._body_cycle:  # a body still to come: its deadline
                self._body_cycle = cycle
                self._body_deadline = self.loop.call_later(body_timeout_s, self._expire_body, cycle)

        def on_headers_complete(self) -> None:
            self._heads += 1
            self._heading = False
            size = self._header_bytes + self._unsure
            self._header_bytes = self._unsure = 0
            if size > MAX_HEADER_BYTES and self._head_size() > MAX_HEADER_BYTES:
                self._dropping = True  # answered 431 in its turn, and nothing after it
                app = self.app
                self.app = _refuse_too_large  # (uvicorn starts, or queues, the request's app)
                try:
                    super().on_headers_complete()
                finally:
                    self.app = app
                return
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._heading = True
            # a request that starts after this one, in the same bytes, is not counted in
            # _header_bytes: it has at most what is left of them
            self._unsure = self._chunk

        def _head_size(self) -> int:
            """The request line and headers as the parser read them (``METHOD URL HTTP/1.1``,
            ``name: value`` lines and the blank line, each line ending in CRLF)."""
            size = len(self.parser.get_method()) + len(self.url) + 14  # (+ the blank line)
            for name, value in self.headers:
                size += len(name) + len(value) + 4
            return size

        def _too_large(self) -> None:
            """Refuse the open header block: 431 now, or once the requests before it are
            answered."""
            self._dropping = True
            cycle = self.cycle
            if cycle is None or cycle.response_complete:
                self._close_with(_TOO_LARGE)
            else:
                self._owe_431 = True
                self.flow.pause_reading()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._cancel_body_deadline()
            if self._owe_431 and self.cycle.response_complete:  # every request before it
                self._close_with(_TOO_LARGE)
                return
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
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(seconds, self._expire, self.cycle)

        def _expire(self, cycle: Any) -> None:
            self._deadline = None
            idle = cycle is None or cycle.response_complete  # (not a pipelined one in flight)
            if self.cycle is cycle and idle and not self.transport.is_closing():
                self.transport.close()  # no new request since the deadline was set

    Limited.__name__ = Limited.__qualname__ = f"Limited{base.__name__}"
    return Limited
