"""Instructions per request in the server's HTTP protocol: the emulator's limits
(``protocol.limited``) over uvicorn's httptools protocol, against that protocol alone.

The app is a trivial ASGI one and the transport a fake, so what is counted is the protocol's
own work per request (parsing, the limits' bookkeeping, the request cycle), one create-sized
POST per read ("one") or four per read ("pipelined"). Per request = (count after N2 reads -
count after N1) / (N2 - N1) / requests per read, under callgrind, each in its own process.

Usage: ``python benchmarks/count_protocol.py`` (needs valgrind, about 2 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from count import per_request, valgrind_path

FEW, MANY = 2000, 6000
SIDES = ("limited", "bare")
READS = {"one": 1, "pipelined": 4}
BODY = b'{"model":"cogview-4","prompt":"a red fox"}'
REQUEST = (
    b"POST /api/v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Authorization: Bearer aio_bench\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def _child(side: str, mode: str, reads: int) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from emulator.server import uvicorn_config

    config = uvicorn_config(_app, max_connections=10)
    config.load()
    protocol_class = config.http_protocol_class if side == "limited" else HttpToolsProtocol
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    data = REQUEST * READS[mode]
    for _ in range(reads):
        protocol.data_received(data)
        for _ in range(2 * READS[mode]):  # each request's task runs and answers
            await asyncio.sleep(0)
    assert transport.written and not transport.closed
    protocol.connection_lost(None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, mode, reads = args.child
        asyncio.run(_child(side, mode, int(reads)))
        return 0
    valgrind = valgrind_path()
    print("instructions per request in the HTTP protocol (callgrind, one process each)")
    print(f"{'reads':10} {'limited':>10} {'bare':>10} {'added':>8}")
    for mode, count in READS.items():
        per = {
            side: per_request(valgrind, __file__, side, mode, FEW, MANY) / count for side in SIDES
        }
        added = per["limited"] - per["bare"]
        print(f"{mode:10} {per['limited']:>10,.0f} {per['bare']:>10,.0f} {added:>8,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
