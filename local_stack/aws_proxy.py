"""The AWS endpoint as the functions and moto's own Step Functions see it:
every request goes to moto, except the Lambda Invoke API, which runs the
template's real handlers in the local Lambda runtime.

moto executes state machines but runs no Lambda code without Docker; its
internal clients call http://localhost:$MOTO_PORT, so moto is started with
MOTO_PORT pointing here and its `lambda:invoke` tasks reach the real handlers.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

import aiohttp
from aiohttp import web

log = logging.getLogger("local_stack")

INVOKE_PREFIX = "/2015-03-31/functions/"
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class Invoker(Protocol):
    async def invoke(self, function: str, event: Any, request_id: str | None = None) -> Any: ...


class AwsProxy:
    def __init__(self, moto_endpoint: str, invoker: Invoker, functions_by_name: dict[str, str], *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.moto_endpoint = moto_endpoint  # set once moto runs
        self._invoker = invoker
        self.functions = functions_by_name  # function name -> logical id
        self.host, self.requested_port = host, port
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=120))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.requested_port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if self._session:
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if request.method == "POST" and path.startswith(INVOKE_PREFIX) and path.endswith("/invocations"):
            return await self._invoke(request, path[len(INVOKE_PREFIX):-len("/invocations")])
        return await self._forward(request)

    async def _invoke(self, request: web.Request, name: str) -> web.Response:
        from urllib.parse import unquote
        name = unquote(name)
        function = self.functions.get(name.rsplit(":function:", 1)[-1].split(":")[0])
        if function is None:
            return web.json_response({"Type": "User", "message": f"Function not found: {name}"}, status=404,
                                     headers={"x-amzn-ErrorType": "ResourceNotFoundException"})
        body = await request.read()
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            return web.json_response({"Type": "User", "message": "Could not parse request body into json"},
                                     status=400, headers={"x-amzn-ErrorType": "InvalidRequestContentException"})
        try:
            result = await self._invoker.invoke(function, event)
        except Exception as exc:  # noqa: BLE001 - Lambda reports a function error in a 200 response
            error = getattr(exc, "error", {"errorType": type(exc).__name__, "errorMessage": str(exc)})
            return web.json_response(error, headers={"X-Amz-Function-Error": "Unhandled",
                                                     "X-Amz-Executed-Version": "$LATEST"})
        return web.Response(body=json.dumps(result).encode(), content_type="application/json",
                            headers={"X-Amz-Executed-Version": "$LATEST"})

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(request.method, self.moto_endpoint.rstrip("/") + str(request.rel_url),
                                         headers=headers, data=await request.read()) as upstream:
            body = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=upstream.status, headers=out_headers, body=body)
