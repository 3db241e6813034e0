"""The listening socket: bound before uvicorn starts, so the real port is known at once."""

from __future__ import annotations

import socket

__all__ = ["bind"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), bound before uvicorn starts so the real
    port is known and there is no race to find a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
