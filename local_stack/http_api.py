"""API Gateway HTTP API emulation (payload format 2.0) in front of the Lambda runtime.

Per request: find the API by stage prefix and the route by method and path
(most specific first, like API Gateway), answer CORS preflights, run the JWT
authorizer, build the exact 2.0 event, invoke the function and map its
response. Gateway-made answers use API Gateway's bodies: 404 {"message":"Not
Found"}, 401 {"message":"Unauthorized"}, 500 {"message":"Internal Server Error"}.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict

from .lambdas import InvocationError
from .limits import HTTP_REQUEST_LINE_AND_HEADERS, PARSER_LIMITS, install_quiet_parser_errors, request_line_and_headers
from .serving import Invoker, Listener
from .template import ACCOUNT_ID, Cors, HttpApiSpec, JwtAuthorizer, Route

log = logging.getLogger("local_stack")

MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API payload limit
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Response headers the gateway owns: the function can't set them.
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"})


class Verifier(Protocol):
    def verify(self, token: str | None) -> dict: ...


def _message(status: int, message: str) -> tuple[int, CIMultiDict, bytes]:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return status, CIMultiDict({"Content-Type": "application/json"}), body




# --------------------------------------------------------------------- routing


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    pattern: re.Pattern | None  # None for $default
    specificity: tuple


def _compile(route: Route) -> _CompiledRoute:
    if route.path == "$default":
        return _CompiledRoute(route, None, (2, 0, 0))
    parts, static, greedy = [], 0, False
    for segment in route.path.strip("/").split("/") if route.path != "/" else []:
        param = re.fullmatch(r"\{([^{}+]+)(\+?)\}", segment)
        if param and param.group(2):
            parts.append(f"(?P<{_group(param.group(1))}>.+)")
            greedy = True
        elif param:
            parts.append(f"(?P<{_group(param.group(1))}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            static += 1
    pattern = re.compile("/" + "/".join(parts))
    # Fewer greedy/variable parts first, then exact methods over ANY.
    return _CompiledRoute(route, pattern, (1 if greedy else 0, -static, route.method == "ANY"))


def _group(name: str) -> str:
    # Regex group names must be identifiers; keep the original name via a hex encoding.
    return "p" + name.encode().hex()


class Router:
    """Route selection of one API."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = sorted((_compile(r) for r in routes), key=lambda c: c.specificity)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for compiled in self._routes:
            if compiled.route.method not in (method, "ANY"):
                continue
            if compiled.pattern is None:
                return compiled.route, {}
            found = compiled.pattern.fullmatch(path)
            if found:
                params = {bytes.fromhex(k[1:]).decode(): unquote(v) for k, v in found.groupdict().items()}
                return compiled.route, params
        return None


# ---------------------------------------------------------------------- events


_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")


def is_text(content_type: str | None) -> bool:
    """Bodies API Gateway passes as text; everything else (even forms) arrives base64-encoded."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def claim_string(value: Any) -> str:
    """API Gateway hands JWT claims to the function as strings: 1700000000 -> "1700000000", [a, b] -> "[a b]"."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(claim_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def format_time(epoch: float) -> str:
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def new_request_id() -> str:
    """Shaped like API Gateway's apigw-requestid (16 base64 characters)."""
    return base64.b64encode(os.urandom(11)).decode()


def build_event(*, method: str, raw_path: str, raw_query: str, query: Iterable[tuple[str, str]],
                headers: Iterable[tuple[str, str]], body: bytes, source_ip: str, route: Route,
                path_parameters: dict[str, str], api: HttpApiSpec, domain_name: str, request_id: str,
                claims: dict | None = None, scopes: list[str] | None = None,
                now: float | None = None) -> dict:
    """An API Gateway HTTP API payload format 2.0 event."""
    now = time.time() if now is None else now
    merged: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        # Format 2.0 joins repeated headers (and query parameters) with commas.
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    cookie_header = merged.pop("cookie", None)
    query_parameters: dict[str, str] = {}
    for name, value in query:
        query_parameters[name] = f"{query_parameters[name]},{value}" if name in query_parameters else value

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookie_header:
        event["cookies"] = [c.strip() for c in cookie_header.split(";") if c.strip()]
    event["headers"] = merged
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    request_context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": api.api_id,
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {
            "claims": {k: claim_string(v) for k, v in claims.items()},
            "scopes": scopes,
        }}
    request_context.update({
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": api.stage,
        "time": format_time(now),
        "timeEpoch": int(now * 1000),
    })
    event["requestContext"] = request_context
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        content_type = merged.get("content-type")
        text = None
        if is_text(content_type):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        event["body"] = text if text is not None else base64.b64encode(body).decode()
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


class BadResponse(ValueError):
    """The function's result is not a valid payload 2.0 response."""


def map_response(result: Any) -> tuple[int, CIMultiDict, bytes]:
    """Function result -> (status, headers, body), with API Gateway's inference for results without statusCode."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, CIMultiDict({"Content-Type": "application/json"}), json.dumps(result).encode()
    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise BadResponse(f"statusCode {status!r} is not an HTTP status")
    headers = CIMultiDict()
    for name, value in (result.get("headers") or {}).items():
        if not isinstance(value, (str, int, float, bool)):
            raise BadResponse(f"header {name!r} is not a string")
        if str(name).lower() not in _HOP_BY_HOP:
            headers[str(name)] = claim_string(value)
    for cookie in result.get("cookies") or []:
        if not isinstance(cookie, str):
            raise BadResponse("cookies must be strings")
        headers.add("Set-Cookie", cookie)
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise BadResponse("body must be a string")
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadResponse("body is not valid base64") from None
    else:
        data = body.encode()
    if data and "Content-Type" not in headers:
        headers["Content-Type"] = "text/plain; charset=utf-8"
    return status, headers, data


# ------------------------------------------------------------------------ CORS


def _origin_allowed(cors: Cors, origin: str) -> bool:
    for allowed in cors.allow_origins:
        if allowed == "*" or allowed.lower() == origin.lower():
            return True
        if "*" in allowed and re.fullmatch(re.escape(allowed).replace(r"\*", ".*"), origin, re.IGNORECASE):
            return True
    return False


def _allow_origin_value(cors: Cors, origin: str) -> str:
    return "*" if "*" in cors.allow_origins and not cors.allow_credentials else origin


def preflight_headers(cors: Cors, origin: str, method: str, request_headers: str) -> CIMultiDict:
    """Headers of API Gateway's answer to a CORS preflight; empty when it doesn't allow the request."""
    headers = CIMultiDict()
    if not _origin_allowed(cors, origin):
        return headers
    if "*" not in cors.allow_methods and method.upper() not in cors.allow_methods:
        return headers
    asked = [h.strip().lower() for h in request_headers.split(",") if h.strip()]
    if "*" not in cors.allow_headers and any(h not in cors.allow_headers for h in asked):
        return headers
    headers["Access-Control-Allow-Origin"] = _allow_origin_value(cors, origin)
    headers["Access-Control-Allow-Methods"] = ",".join(cors.allow_methods)
    if cors.allow_headers:
        headers["Access-Control-Allow-Headers"] = ",".join(cors.allow_headers)
    if cors.max_age is not None:
        headers["Access-Control-Max-Age"] = str(cors.max_age)
    if cors.allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


def apply_cors(cors: Cors, origin: str | None, headers: CIMultiDict) -> None:
    """With CorsConfiguration set, API Gateway's CORS headers replace the function's."""
    for name in list(headers):
        if name.lower().startswith("access-control-"):
            del headers[name]
    if not origin or not _origin_allowed(cors, origin):
        return
    headers["Access-Control-Allow-Origin"] = _allow_origin_value(cors, origin)
    if cors.expose_headers:
        headers["Access-Control-Expose-Headers"] = ",".join(cors.expose_headers)
    if cors.allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"


# ------------------------------------------------------------------- authorizer


def identity(authorizer: JwtAuthorizer, headers: Any, query: Any) -> str | None:
    """The token from the identity source ($request.header.X or $request.querystring.X)."""
    source = authorizer.identity_sources[0] if authorizer.identity_sources else "$request.header.Authorization"
    if source.startswith("$request.header."):
        return headers.get(source[len("$request.header."):]) or None
    if source.startswith("$request.querystring."):
        return query.get(source[len("$request.querystring."):]) or None
    return None


def scopes_of(claims: dict) -> list[str] | None:
    scope = claims.get("scope")
    return scope.split() if isinstance(scope, str) and scope.strip() else None


# ----------------------------------------------------------------------- server


class HttpGateway:
    """All HTTP APIs of the template on one port, each under its stage (/dev/...)."""

    def __init__(self, apis: list[HttpApiSpec], invoker: Invoker,
                 verifier_for: Callable[[JwtAuthorizer], Verifier], *, host: str = "127.0.0.1",
                 port: int = 3000) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._invoker = invoker
        self._apis: list[tuple[str, HttpApiSpec, Router]] = []
        prefixes: dict[str, str] = {}
        for api in apis:
            prefix = "" if api.stage == "$default" else f"/{api.stage}"
            if prefix in prefixes:
                raise ValueError(f"HTTP APIs {prefixes[prefix]} and {api.logical_id} both serve stage "
                                 f"{api.stage!r}; the local stack serves them on one port")
            prefixes[prefix] = api.logical_id
            self._apis.append((prefix, api, Router(api.routes)))
        # Longest prefix first, so /dev/... is not taken by a $default API.
        self._apis.sort(key=lambda item: -len(item[0]))
        self._verifiers = {(api.logical_id, route.authorizer.name): verifier_for(route.authorizer)
                           for api in apis for route in api.routes if route.authorizer}
        # In-flight requests get a few seconds to finish when the stack stops.
        self._listener = Listener(host, port, shutdown_timeout=5.0)

    def url(self, api: HttpApiSpec) -> str:
        stage = "" if api.stage == "$default" else f"/{api.stage}"
        return f"http://{self.host}:{self.port}{stage}"

    async def start(self) -> None:
        install_quiet_parser_errors()
        app = web.Application(client_max_size=MAX_BODY_BYTES, handler_args=PARSER_LIMITS)
        # Every path, control characters included (a bare ".*" misses a decoded %0A and aiohttp's own 404 answers).
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        self.port = await self._listener.start(app)

    async def stop(self) -> None:
        await self._listener.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = new_request_id()
        try:
            status, headers, body, function = await self._respond(request, request_id)
        except Exception:  # a gateway bug still answers like API Gateway; the traceback goes to our log only
            log.exception("%s %s: gateway error", request.method, request.rel_url.raw_path)
            status, headers, body, function = *_message(500, "Internal Server Error"), None
        headers["apigw-requestid"] = request_id
        log.info("%s %s -> %d%s %.1f ms", request.method, request.rel_url.raw_path, status,
                 f" ({function})" if function else "", (time.perf_counter() - started) * 1000)
        return web.Response(status=status, headers=headers, body=body if body and status not in (204, 304) else None)

    async def _respond(self, request: web.Request, request_id: str) -> tuple[int, CIMultiDict, bytes, str | None]:
        if request_line_and_headers(request) > HTTP_REQUEST_LINE_AND_HEADERS:
            return (*_message(431, "Request Header Fields Too Large"), None)
        raw_path = request.rel_url.raw_path
        found = self._find_api(raw_path)
        if found is None:
            return (*_message(404, "Not Found"), None)
        prefix, api, router = found
        origin = request.headers.get("Origin")
        if api.cors and request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
            headers = preflight_headers(api.cors, origin, request.headers["Access-Control-Request-Method"],
                                        request.headers.get("Access-Control-Request-Headers", ""))
            return 204, headers, b"", None
        status, headers, body, function = await self._route(request, request_id, raw_path, prefix, api, router)
        if api.cors:
            apply_cors(api.cors, origin, headers)
        return status, headers, body, function

    def _find_api(self, raw_path: str) -> tuple[str, HttpApiSpec, Router] | None:
        for prefix, api, router in self._apis:
            if not prefix or raw_path == prefix or raw_path.startswith(prefix + "/"):
                return prefix, api, router
        return None

    async def _route(self, request: web.Request, request_id: str, raw_path: str, prefix: str, api: HttpApiSpec,
                     router: Router) -> tuple[int, CIMultiDict, bytes, str | None]:
        match = router.match(request.method, raw_path[len(prefix):] or "/")
        if match is None:
            return (*_message(404, "Not Found"), None)
        route, path_parameters = match

        claims = scopes = None
        if route.authorizer:
            token = identity(route.authorizer, request.headers, request.rel_url.query)
            try:
                # JWKS keys are cached after the first fetch (warmed at startup), so this is CPU only.
                claims = self._verifiers[(api.logical_id, route.authorizer.name)].verify(token)
            except Exception as exc:  # noqa: BLE001 - whatever is wrong with the token, the answer is a bare 401
                log.info("%s %s: 401 (%s)", request.method, raw_path, exc)
                return (*_message(401, "Unauthorized"), None)
            scopes = scopes_of(claims)
            if route.scopes and not set(route.scopes) & set(scopes or ()):
                return (*_message(403, "Forbidden"), None)

        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return (*_message(413, "Request Entity Too Large"), None)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        source_ip = peer[0] if peer else "127.0.0.1"
        headers = list(request.headers.items())
        forwarded = request.headers.get("X-Forwarded-For")
        headers = [(k, v) for k, v in headers if k.lower() not in ("x-forwarded-for", "x-forwarded-port",
                                                                    "x-forwarded-proto")]
        headers += [("x-forwarded-for", f"{forwarded}, {source_ip}" if forwarded else source_ip),
                    ("x-forwarded-port", str(self.port)), ("x-forwarded-proto", "http")]
        if "X-Amzn-Trace-Id" not in request.headers:
            headers.append(("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()}"))
        event = build_event(
            method=request.method, raw_path=raw_path, raw_query=request.rel_url.raw_query_string,
            query=request.rel_url.query.items(), headers=headers, body=body, source_ip=source_ip, route=route,
            path_parameters=path_parameters, api=api, domain_name=request.host or f"{self.host}:{self.port}",
            request_id=request_id, claims=claims, scopes=scopes,
        )
        try:
            result = await asyncio.wait_for(self._invoker.invoke(route.function, event), route.timeout_ms / 1000)
            return (*map_response(result), route.function)
        except TimeoutError:
            log.warning("%s: integration timed out after %d ms", route.function, route.timeout_ms)
            return (*_message(503, "Service Unavailable"), route.function)
        except InvocationError as exc:
            log.warning("%s failed: %s", route.function, exc)
            return (*_message(500, "Internal Server Error"), route.function)
        except BadResponse as exc:
            log.warning("%s returned a malformed response: %s", route.function, exc)
            return (*_message(500, "Internal Server Error"), route.function)

