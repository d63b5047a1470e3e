"""uvicorn's h11 protocol with ``TCP_NODELAY`` on every connection.

A response leaves in two writes (headers, then body). With Nagle's algorithm on, the body
waits for the client's delayed ACK of the headers: about 40 ms on Linux loopback for every
answer. uvicorn turns Nagle off itself only when it opens the socket in the same process,
not when ``--workers N`` hands the socket to worker processes (uvicorn issue #3149), so
``mlkit serve`` uses this class in both modes. It lives in its own module because worker
processes import it by name.
"""

from __future__ import annotations

import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["H11NoDelay", "HttpToolsNoDelay", "best"]


def _nodelay(transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket (a Unix socket, say): nothing to do
            pass


class H11NoDelay(H11Protocol):
    """:class:`H11Protocol` that sets ``TCP_NODELAY`` when a connection is made."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        _nodelay(transport)
        super().connection_made(transport)


try:  # httptools parses HTTP in C: a quarter of a millisecond less per request than h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is in the serving extra
    HttpToolsNoDelay = None
else:
    class HttpToolsNoDelay(HttpToolsProtocol):  # type: ignore[no-redef]
        """:class:`HttpToolsProtocol` that sets ``TCP_NODELAY`` when a connection is made."""

        def connection_made(self, transport) -> None:  # type: ignore[override]
            _nodelay(transport)
            super().connection_made(transport)


def best() -> type:
    """The fastest protocol class installed: httptools, else h11."""
    return HttpToolsNoDelay or H11NoDelay
