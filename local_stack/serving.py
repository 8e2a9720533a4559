"""What the local stack's servers share: how one runs on a port, and what they call to run a function.

Each server (the HTTP API, a WebSocket API, the AWS endpoint, the console) is an aiohttp
application behind a ``Listener``; the gateways invoke functions through an ``Invoker``
(the Lambda runtime, or a stand-in in tests).
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web


class Invoker(Protocol):
    async def invoke(self, function: str, event: Any, request_id: str | None = None) -> Any: ...


class Listener:
    """One aiohttp application on host:port; port 0 asks the system for a free one (``port`` is the real one)."""

    def __init__(self, host: str, port: int, *, shutdown_timeout: float) -> None:
        self.host, self.requested_port = host, port
        self.port: int | None = None
        self._shutdown_timeout = shutdown_timeout  # how long in-flight requests get to finish on stop
        self._runner: web.AppRunner | None = None

    async def start(self, app: web.Application) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        self._runner = runner  # stop() cleans up even when the bind below fails
        await web.TCPSite(runner, self.host, self.requested_port).start()
        self.port = runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
