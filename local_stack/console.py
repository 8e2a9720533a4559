"""The console: the speaker and listener pages built from web/ (web/dist/console), served on a port of
their own, with /config.json describing the running stack so the pages need no configuration.

The pages call the HTTP API, the WebSocket API and Cognito (moto) directly from the browser, as they
would on AWS: the HTTP API answers the console's origin by the template's CORS configuration
(CorsAllowedOrigins, `*` by default) and moto answers CORS for every origin. Nothing is proxied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from .serving import Listener

log = logging.getLogger("local_stack")

ROOT = Path(__file__).resolve().parents[1]
CONSOLE_DIR = ROOT / "web" / "dist" / "console"
BUILD_HINT = "the console is not built: run `make console` (npm ci and npm run build in web/)"


def console_config(info: dict, parameters: dict) -> dict:
    """What the pages need from stack.json: the stack outputs a deployed console would be given."""
    return {
        "httpApiUrl": info["httpApiUrl"],
        "webSocketUrl": info["webSocketUrl"],
        "region": info["region"],
        "userPoolId": info["userPoolId"],
        "userPoolClientId": info["userPoolClientId"],
        "cognitoEndpoint": info["awsEndpointUrl"],
        "allowAnonymousListeners": str(parameters.get("AllowAnonymousListeners", "true")).lower() == "true",
        "localUsers": [user["username"] for user in info.get("users") or []],
    }


class ConsoleServer:
    def __init__(self, config: Callable[[], dict], *, root: Path = CONSOLE_DIR, host: str = "127.0.0.1",
                 port: int = 3002) -> None:
        self._config = config
        self.root = root
        self.host, self.requested_port = host, port
        self.port: int | None = None
        self._listener = Listener(host, port, shutdown_timeout=1.0)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def built(self) -> bool:
        return (self.root / "index.html").is_file()

    async def start(self) -> None:
        if not self.built:
            log.warning("%s", BUILD_HINT)
        app = web.Application(middlewares=[_no_cache])
        app.router.add_get("/config.json", self._config_json)
        app.router.add_get("/", self._index)
        app.router.add_get("/{path:.*}", self._file)
        self.port = await self._listener.start(app)

    async def stop(self) -> None:
        await self._listener.stop()

    async def _config_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._config())

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._send(self.root / "index.html")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        path = (self.root / request.match_info["path"]).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise web.HTTPNotFound()
        return self._send(path)

    def _send(self, path: Path) -> web.StreamResponse:
        if not self.built:
            return web.Response(status=503, text=f"The local stack runs, but {BUILD_HINT}.\n")
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)


@web.middleware
async def _no_cache(request: web.Request, handler: Callable) -> web.StreamResponse:
    # A rebuilt console or a restarted stack (new ports) must never be served from a stale cache.
    response = await handler(request)
    response.headers["Cache-Control"] = "no-store"
    return response
