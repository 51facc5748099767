"""Idle connections time out: uvicorn's HTTP protocol with a clock on reading a request.

uvicorn closes a kept-alive connection 5 s after its last answer, but a connection that never
sends a request, or sends its headers a byte at a time, is kept for ever; tens of thousands of
them exhaust the file descriptors and stall everyone. Here a request's headers must arrive whole
within `HEADERS_S` of the connection opening (or of the previous answer's keep-alive ending).
A request being answered is never timed out: a long generation is not idle.

The clock fits both of uvicorn's HTTP protocols: httptools' (the C parser, which the server
uses where it is installed: it costs less per streamed token) and h11's (pure Python).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADERS_S = 10.0

if TYPE_CHECKING:  # both protocols have what the clock uses (`loop`, `transport`, `cycle`, ...)
    _Protocol = H11Protocol
else:
    _Protocol = object


class HeadersClock(_Protocol):
    """The clock, mixed into one of uvicorn's HTTP protocols."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = 0.0
        self._clock: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEADERS_S)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_headers():
            self._arm(None)  # keep the same deadline: trickling bytes does not extend it
        elif self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm(self.timeout_keep_alive + HEADERS_S)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._clock is not None:
            self._clock.cancel()
        super().connection_lost(exc)

    def _reading_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self, seconds: float | None) -> None:
        if seconds is not None:
            self._deadline = self.loop.time() + seconds
        if self._clock is not None:
            self._clock.cancel()
        self._clock = self.loop.call_at(self._deadline, self._expired)

    def _expired(self) -> None:
        self._clock = None
        if self._reading_headers() and not self.transport.is_closing():
            self.transport.close()


class TimedH11Protocol(HeadersClock, H11Protocol):
    """h11's protocol with the clock."""


def timed_protocol() -> type[asyncio.Protocol]:
    """The fastest HTTP protocol installed, with the clock: httptools', else h11's."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return TimedH11Protocol

    class TimedHttpToolsProtocol(HeadersClock, HttpToolsProtocol):  # type: ignore[misc]
        """httptools' protocol with the clock."""

    return TimedHttpToolsProtocol
