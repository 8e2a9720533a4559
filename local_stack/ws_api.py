"""API Gateway WebSocket API emulation, read from AWS::Serverless::WebSocketApi.

- The handshake runs the REQUEST authorizer and then `$connect`, as API Gateway
  does: an exception "Unauthorized" from the authorizer is a 401, a Deny policy
  a 403, a non-2xx `$connect` its own status; the upgrade fails, no close frame.
- Frames: text only (a binary frame closes the socket with 1003), messages over
  128 KB close it with 1009. Route selection follows the template's
  `$request.body.<field>` expression; unknown or unparsable -> `$default`.
  A connection's messages are handled one at a time, in order.
- Routes with a RouteResponseSelectionExpression send the function's `body`
  back to the caller. `$disconnect` runs after every close, whoever closed.
- Idle sockets close after 10 minutes, every socket after 2 hours (flags).
- The API Gateway Management API is served on the same port:
  POST/GET/DELETE /{stage}/@connections/{id}, 410 for unknown connections.
- Test facility (local only, not part of API Gateway): `POST /{stage}/@faults/{id}?count=N`
  makes the next N `POST /{stage}/@connections/{id}` answer 500 (InternalServerErrorException),
  as a failing Management API would; `count=0` clears it. Answers 204. The end-to-end tests use it
  to make a teardown batch fail and be retried. Note that botocore retries a 500 itself (the
  functions' standard mode: 3 attempts), so a function's post fails only once N >= 3.
  `POST /{stage}/@faults/$connect?delayMs=D&count=N` holds the next N handshakes for D ms after
  `$connect` returned, before the connection counts as connected: the window in which AWS answers
  a post to the new connection with 410, made wide enough for a test to hit it.
  `POST /{stage}/@faults/$disconnect?count=N` loses the `$disconnect` of the next N closes (whoever
  closes): API Gateway delivers `$disconnect` on a best-effort basis, and a lost one leaves the
  connection's record behind.
- AWS-like latency (off by default; the local gateway answers in about a millisecond):
  `local_stack dev --ws-post-latency-ms D`, or `POST /{stage}/@faults/$latency?latencyMs=D` on a running
  stack (0 turns it off), holds every @connections call (POST, GET, DELETE) D ms before it is answered,
  each call on its own (concurrent calls overlap, as on AWS), so a fan-out's queueing shows locally.
  local_stack/README.md "How close to AWS" has the figure and where it comes from.
- The Management API applies the caller's IAM role (iam.py): a function whose role does not
  allow `execute-api:ManageConnections` on the connection gets 403, as on AWS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .iam import Iam
from .limits import PARSER_LIMITS, WEBSOCKET_URL_CHARACTERS, install_quiet_parser_errors, too_large
from .serving import Invoker, Listener
from .template import ACCOUNT_ID, fake_api_id

log = logging.getLogger("local_stack")

MAX_MESSAGE_BYTES = 128 * 1024
IDLE_TIMEOUT = 600.0
MAX_LIFETIME = 7200.0
CLOSE_UNSUPPORTED = 1003  # binary frame
CLOSE_GOING_AWAY = 1001  # idle timeout, lifetime, DeleteConnection


@dataclass(frozen=True)
class WebSocketApiSpec:
    logical_id: str
    api_id: str
    stage: str
    route_selection: str  # "$request.body.action"
    routes: dict[str, str]  # route key -> function logical id
    two_way: frozenset[str]  # routes whose function's body goes back to the caller
    authorizer: str | None  # function logical id of the $connect authorizer


def websocket_apis(template: Any) -> list[WebSocketApiSpec]:
    """The template's AWS::Serverless::WebSocketApi resources."""
    specs = []
    for logical_id, resource in template.resources_of_type("AWS::Serverless::WebSocketApi").items():
        props = resource.get("Properties", {})
        routes, two_way = {}, set()
        for key, route in props.get("Routes", {}).items():
            routes[key] = template.function_of(route.get("FunctionArn"), f"{logical_id}.Routes.{key}")
            if route.get("RouteResponseSelectionExpression"):
                two_way.add(key)
        auth = props.get("Auth") or {}
        authorizer = (template.function_of(auth["AuthArn"], f"{logical_id}.Auth")
                      if auth.get("AuthType") == "CUSTOM" else None)
        specs.append(WebSocketApiSpec(
            logical_id=logical_id,
            api_id=fake_api_id(logical_id),
            stage=str(template.resolve(props.get("StageName", "default"), where=f"{logical_id}.StageName")),
            route_selection=props["RouteSelectionExpression"],
            routes=routes,
            two_way=frozenset(two_way),
            authorizer=authorizer,
        ))
    return specs


def _connection_id() -> str:
    # The shape API Gateway uses: 12 base64 characters ending in "=".
    return base64.b64encode(os.urandom(10)).decode()[:15] + "="


def _request_id() -> str:
    return base64.b64encode(os.urandom(12)).decode()[:16]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _request_time(ms: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(ms / 1000))


def select_route(expression: str, body: str, routes: dict[str, str]) -> str:
    """The route key for a message, per a `$request.body.<path>` selection expression."""
    prefix = "$request.body."
    if not expression.startswith(prefix):
        return "$default"
    try:
        value: Any = json.loads(body)
        for part in expression[len(prefix):].split("."):
            value = value.get(part) if isinstance(value, dict) else None
    except ValueError:
        return "$default"
    return value if isinstance(value, str) and value in routes and not value.startswith("$") else "$default"


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Connection:
    connection_id: str
    ws: web.WebSocketResponse
    authorizer: dict
    connected_at: int
    source_ip: str
    user_agent: str
    last_active: int = field(default_factory=_now_ms)
    closed_by_server: tuple[int, str] | None = None


class WebSocketGateway:
    def __init__(self, api: WebSocketApiSpec, invoker: Invoker, *, host: str = "127.0.0.1", port: int = 3001,
                 region: str = "eu-west-1", idle_timeout: float = IDLE_TIMEOUT,
                 max_lifetime: float = MAX_LIFETIME, iam: Iam | None = None, post_latency: float = 0.0) -> None:
        self.api = api
        self.iam = iam
        self.host, self.requested_port = host, port
        self.port: int | None = None
        self.region = region
        self.idle_timeout, self.max_lifetime = idle_timeout, max_lifetime
        self._invoker = invoker
        self._connections: dict[str, Connection] = {}
        self._listener = Listener(host, port, shutdown_timeout=2.0)
        self._tasks: set[asyncio.Task] = set()
        self._faults: dict[str, int] = {}  # connection id -> posts that still answer 500 (@faults)
        self._connect_delays: list[float] = []  # seconds each of the next handshakes is held (@faults/$connect)
        self._lost_disconnects = 0  # closes whose $disconnect is not invoked (@faults/$disconnect)
        self.post_latency = post_latency  # seconds each @connections call is held (@faults/$latency)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/{self.api.stage}"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.api.stage}"

    @property
    def domain(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        install_quiet_parser_errors()
        app = web.Application(handler_args=PARSER_LIMITS)
        stage = self.api.stage
        app.router.add_get(f"/{stage}", self._handshake)
        app.router.add_route("*", f"/{stage}/@connections/{{connection_id}}", self._manage)
        app.router.add_post(f"/{stage}/@faults/$connect", self._delay_connects)
        app.router.add_post(f"/{stage}/@faults/$disconnect", self._lose_disconnects)
        app.router.add_post(f"/{stage}/@faults/$latency", self._set_latency)
        app.router.add_post(f"/{stage}/@faults/{{connection_id}}", self._inject_fault)
        self.port = await self._listener.start(app)

    async def stop(self) -> None:
        for connection in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await connection.ws.close(code=CLOSE_GOING_AWAY, message=b"Going away")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        await self._listener.stop()

    # ---------------------------------------------------------------- handshake

    async def _handshake(self, request: web.Request) -> web.StreamResponse:
        if len(request.rel_url.raw_path_qs) > WEBSOCKET_URL_CHARACTERS:
            return too_large(414, "Request-URI Too Long")
        connection_id, connected_at = _connection_id(), _now_ms()
        try:
            authorizer = await self._authorize(request, connection_id, connected_at)
            await self._connect(request, connection_id, connected_at, authorizer)
            if self._connect_delays:
                await asyncio.sleep(self._connect_delays.pop(0))
        except Refused as refusal:
            log.info("WS $connect %s refused: %d (%s)", connection_id, refusal.status, refusal)
            return web.json_response({"message": "Forbidden" if refusal.status == 403 else
                                      "Unauthorized" if refusal.status == 401 else "Internal server error"},
                                     status=refusal.status)
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, autoping=True)
        await ws.prepare(request)
        connection = Connection(connection_id, ws, authorizer, connected_at, request.remote or "127.0.0.1",
                                request.headers.get("User-Agent", ""))
        self._connections[connection_id] = connection
        log.info("WS %s connected (%s)", connection_id, authorizer.get("role", ""))
        try:
            await self._serve(connection)
        finally:
            self._connections.pop(connection_id, None)
            if self._lost_disconnects > 0:
                self._lost_disconnects -= 1
                log.info("WS %s: $disconnect lost (@faults)", connection_id)
            else:
                # $disconnect runs in the background; the close must not wait for it.
                self._background(self._disconnect(connection))
        return ws

    def _context(self, route: str, event_type: str, connection_id: str, connected_at: int, source_ip: str,
                 user_agent: str, authorizer: dict | None = None) -> dict:
        now = _now_ms()
        context = {
            "routeKey": route, "eventType": event_type, "extendedRequestId": _request_id(),
            "requestTime": _request_time(now), "messageDirection": "IN", "stage": self.api.stage,
            "connectedAt": connected_at, "requestTimeEpoch": now,
            "identity": {"sourceIp": source_ip, "userAgent": user_agent},
            "requestId": _request_id(), "domainName": self.domain, "connectionId": connection_id,
            "apiId": self.api.api_id,
        }
        if authorizer is not None:
            context["authorizer"] = authorizer
        return context

    async def _authorize(self, request: web.Request, connection_id: str, connected_at: int) -> dict:
        if not self.api.authorizer:
            return {}
        headers = dict(request.headers)
        query = dict(request.rel_url.query)
        method_arn = (f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{self.api.api_id}/"
                      f"{self.api.stage}/$connect")
        event = {
            "type": "REQUEST", "methodArn": method_arn,
            "headers": headers, "multiValueHeaders": {k: request.headers.getall(k) for k in headers},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: request.rel_url.query.getall(k) for k in query} or None,
            "stageVariables": {},
            "requestContext": self._context("$connect", "CONNECT", connection_id, connected_at,
                                            request.remote or "127.0.0.1", request.headers.get("User-Agent", "")),
        }
        started = time.perf_counter()
        try:
            result = await self._invoker.invoke(self.api.authorizer, event)
        except Exception as exc:  # noqa: BLE001 - an authorizer error is API Gateway's 401 or 500
            if "Unauthorized" in str(exc):
                raise Refused(401, "authorizer: Unauthorized") from None
            raise Refused(500, f"authorizer failed: {exc}") from None
        statements = ((result or {}).get("policyDocument") or {}).get("Statement") or []
        effects = {s.get("Effect") for s in statements if s.get("Action") in ("execute-api:Invoke", ["execute-api:Invoke"])}
        if "Allow" not in effects or "Deny" in effects:
            raise Refused(403, "authorizer: Deny")
        context = {k: v for k, v in (result.get("context") or {}).items() if isinstance(v, (str, int, float, bool))}
        return {**context, "principalId": result.get("principalId", ""),
                "integrationLatency": int((time.perf_counter() - started) * 1000)}

    async def _connect(self, request: web.Request, connection_id: str, connected_at: int, authorizer: dict) -> None:
        function = self.api.routes.get("$connect")
        if not function:
            return
        headers = dict(request.headers)
        query = dict(request.rel_url.query)
        event = {
            "headers": headers, "multiValueHeaders": {k: request.headers.getall(k) for k in headers},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: request.rel_url.query.getall(k) for k in query} or None,
            "requestContext": self._context("$connect", "CONNECT", connection_id, connected_at,
                                            request.remote or "127.0.0.1", request.headers.get("User-Agent", ""),
                                            authorizer),
            "isBase64Encoded": False,
        }
        try:
            result = await self._invoker.invoke(function, event)
        except Exception as exc:  # noqa: BLE001
            raise Refused(500, f"$connect failed: {exc}") from None
        status = (result or {}).get("statusCode", 200) if isinstance(result, dict) else 200
        if not 200 <= int(status) < 300:
            raise Refused(int(status), "$connect refused")

    # ---------------------------------------------------------------- messages

    async def _serve(self, connection: Connection) -> None:
        ws = connection.ws
        lifetime = asyncio.get_running_loop().call_later(
            self.max_lifetime, lambda: self._background(self._close(connection, CLOSE_GOING_AWAY, "Going away")))
        try:
            while True:
                idle_left = self.idle_timeout - (_now_ms() - connection.last_active) / 1000
                try:
                    message = await ws.receive(timeout=max(0.0, idle_left))
                except asyncio.TimeoutError:
                    await self._close(connection, CLOSE_GOING_AWAY, "Going away")
                    return
                if message.type == WSMsgType.TEXT:
                    connection.last_active = _now_ms()
                    await self._message(connection, message.data)
                elif message.type == WSMsgType.BINARY:
                    await self._close(connection, CLOSE_UNSUPPORTED, "Binary frames are not supported")
                    return
                else:  # CLOSE, CLOSING, CLOSED, ERROR (oversize: aiohttp closes with 1009)
                    return
        finally:
            lifetime.cancel()

    async def _message(self, connection: Connection, body: str) -> None:
        route = select_route(self.api.route_selection, body, self.api.routes)
        function = self.api.routes.get(route)
        if not function:
            return
        context = self._context(route, "MESSAGE", connection.connection_id, connection.connected_at,
                                connection.source_ip, connection.user_agent, connection.authorizer)
        context["messageId"] = _request_id()
        event = {"requestContext": context, "body": body, "isBase64Encoded": False}
        try:
            result = await self._invoker.invoke(function, event)
        except Exception as exc:  # noqa: BLE001 - API Gateway answers an integration failure with this message
            log.info("WS %s %s: integration failed: %s", connection.connection_id, route, exc)
            result = {"body": json.dumps({"message": "Internal server error",
                                          "connectionId": connection.connection_id,
                                          "requestId": context["requestId"]})} if route in self.api.two_way else None
        if route in self.api.two_way and isinstance(result, dict) and result.get("body") and not connection.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await connection.ws.send_str(str(result["body"]))

    async def _disconnect(self, connection: Connection) -> None:
        function = self.api.routes.get("$disconnect")
        if not function:
            return
        code, reason = connection.closed_by_server or (connection.ws.close_code or 1005, "")
        context = self._context("$disconnect", "DISCONNECT", connection.connection_id, connection.connected_at,
                                connection.source_ip, connection.user_agent, connection.authorizer)
        context |= {"disconnectStatusCode": code, "disconnectReason": reason}
        event = {"headers": {"Host": self.domain}, "multiValueHeaders": {"Host": [self.domain]},
                 "requestContext": context, "isBase64Encoded": False}
        try:
            await self._invoker.invoke(function, event)
        except Exception as exc:  # noqa: BLE001
            log.info("WS %s $disconnect failed: %s", connection.connection_id, exc)

    async def _close(self, connection: Connection, code: int, reason: str) -> None:
        connection.closed_by_server = (code, reason)
        with contextlib.suppress(Exception):
            await connection.ws.close(code=code, message=reason.encode())

    def _background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- @connections

    async def _manage(self, request: web.Request) -> web.Response:
        if self.post_latency:
            await asyncio.sleep(self.post_latency)  # the round trip to AWS: awaited, so calls overlap
        if self.iam is not None:
            resource = (f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{self.api.api_id}/{self.api.stage}/"
                        f"{request.method}/@connections/{request.match_info['connection_id']}")
            denial = self.iam.denial(request.headers, [("execute-api:ManageConnections", resource)])
            if denial:
                return web.json_response({"message": denial}, status=403,
                                         headers={"x-amzn-ErrorType": "ForbiddenException"})
        connection = self._connections.get(request.match_info["connection_id"])
        if connection is None or connection.ws.closed:
            return web.json_response({"message": "Gone"}, status=410, headers={"x-amzn-ErrorType": "GoneException"})
        if request.method == "POST":
            if self._faults.get(connection.connection_id, 0) > 0:
                self._faults[connection.connection_id] -= 1
                return web.json_response({"message": "Internal server error"}, status=500,
                                         headers={"x-amzn-ErrorType": "InternalServerErrorException"})
            data = await request.read()
            if len(data) > MAX_MESSAGE_BYTES:
                return web.json_response({"message": "Payload too large"}, status=413)
            try:
                await connection.ws.send_str(data.decode())
            except UnicodeDecodeError:
                await connection.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                return web.json_response({"message": "Gone"}, status=410,
                                         headers={"x-amzn-ErrorType": "GoneException"})
            return web.Response(status=200)
        if request.method == "GET":
            return web.json_response({
                "ConnectedAt": _iso(connection.connected_at), "LastActiveAt": _iso(connection.last_active),
                "Identity": {"SourceIp": connection.source_ip, "UserAgent": connection.user_agent}})
        if request.method == "DELETE":
            self._background(self._close(connection, CLOSE_GOING_AWAY, "Going away"))
            return web.Response(status=204)
        return web.json_response({"message": "Method not allowed"}, status=405)

    async def _delay_connects(self, request: web.Request) -> web.Response:
        """The @faults/$connect test facility (module docstring)."""
        try:
            delay_ms, count = int(request.rel_url.query.get("delayMs", "")), int(request.rel_url.query.get("count", "1"))
        except ValueError:
            delay_ms = count = -1
        if delay_ms < 0 or count < 0:
            return web.json_response({"message": "delayMs and count must be non-negative integers"}, status=400)
        self._connect_delays = [delay_ms / 1000] * count
        return web.Response(status=204)

    async def _lose_disconnects(self, request: web.Request) -> web.Response:
        """The @faults/$disconnect test facility (module docstring)."""
        count = _count(request)
        if count is None:
            return web.json_response({"message": "count must be a non-negative integer"}, status=400)
        self._lost_disconnects = count
        return web.Response(status=204)

    async def _set_latency(self, request: web.Request) -> web.Response:
        """The @faults/$latency test facility (module docstring)."""
        try:
            latency_ms = float(request.rel_url.query.get("latencyMs", ""))
        except ValueError:
            latency_ms = -1
        if not 0 <= latency_ms <= 10_000:
            return web.json_response({"message": "latencyMs must be a number from 0 to 10000"}, status=400)
        self.post_latency = latency_ms / 1000
        return web.Response(status=204)

    async def _inject_fault(self, request: web.Request) -> web.Response:
        """The @faults test facility (module docstring)."""
        count = _count(request)
        if count is None:
            return web.json_response({"message": "count must be a non-negative integer"}, status=400)
        connection_id = request.match_info["connection_id"]
        if count:
            self._faults[connection_id] = count
        else:
            self._faults.pop(connection_id, None)
        return web.Response(status=204)


def _count(request: web.Request) -> int | None:
    """A test facility's `count` query parameter (default 1), or None if it is not a non-negative integer."""
    try:
        count = int(request.rel_url.query.get("count", "1"))
    except ValueError:
        return None
    return count if count >= 0 else None


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
