"""Network faults a scenario can inject: responses that misbehave on the wire.

Over a real socket (uvicorn) a reset aborts the TCP connection; in-process (no socket) the
same faults raise :class:`NetworkFault` into the caller, which transports surface as errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

__all__ = ["FaultResponse", "NetworkFault", "cut"]


class NetworkFault(ConnectionError):
    """Raised in-process where a socket would have been cut."""


#: SO_LINGER on, 0 seconds: closing the socket sends an RST, so the client reads ECONNRESET
_RESET = struct.pack("ii", 1, 0)


def _transport(receive: Receive) -> Any:
    cycle = getattr(receive, "__self__", None)
    return getattr(cycle, "transport", None)


def cut(receive: Receive, why: str, *, rst: bool = False) -> None:
    """Drop the connection (``rst``: with a TCP reset); in-process, raise ``why``."""
    transport = _transport(receive)
    if transport is None:
        raise NetworkFault(why)
    sock = transport.get_extra_info("socket") if rst else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


class FaultResponse(Response):
    """Sends ``body`` (the response the client should have had) in a broken way."""

    def __init__(
        self, fault: str, body: bytes, status_code: int = 200,
        options: Mapping[str, float] | None = None, media_type: str = "application/json",
    ) -> None:  # fmt: skip
        super().__init__(body, status_code, media_type=media_type)
        self.fault = fault
        self.options = dict(options or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await getattr(self, "_" + self.fault)(receive, send)

    async def _reset(self, receive: Receive, send: Send) -> None:
        cut(receive, "connection reset by the emulator (scenario fault 'reset')", rst=True)

    async def _hang(self, receive: Receive, send: Send) -> None:
        """Answer nothing until the client gives up (or max_s passes, then reset)."""
        try:
            async with asyncio.timeout(self.options.get("max_s", 300.0)):
                while True:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        return
        except TimeoutError:
            cut(receive, "the emulator hung up after the scenario's hang time", rst=True)

    async def _close_mid_body(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2],
                    "more_body": True})  # fmt: skip
        cut(receive, "connection closed mid-body (scenario fault 'close_mid_body')")

    async def _malformed_json(self, receive: Receive, send: Send) -> None:
        await self._send_whole(send, bytes(self.body).replace(b'":', b'" ', 1) + b",}")

    async def _truncated_json(self, receive: Receive, send: Send) -> None:
        await self._send_whole(send, bytes(self.body[: max(1, len(self.body) // 2)]))

    async def _dribble(self, receive: Receive, send: Send) -> None:
        size = int(self.options.get("chunk_bytes", 16))
        gap = self.options.get("interval_ms", 100.0) / 1000
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        for start in range(0, len(self.body), size):
            chunk = self.body[start : start + size]
            more = start + size < len(self.body)
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            if more:
                await asyncio.sleep(gap)

    async def _send_whole(self, send: Send, body: bytes) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
