"""The listening socket: bound before uvicorn starts, so the real port is known at once."""

from __future__ import annotations

import resource
import socket

__all__ = ["bind", "raise_fd_limit"]

#: the soft descriptor limit is raised at most this far when the hard limit is "unlimited"
FD_LIMIT_CAP = 1 << 20


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


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (a process that only
    serves: every connection and webhook delivery holds one); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_LIMIT_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # e.g. a container's limit lower than it says
            return soft
        return target
    return soft
