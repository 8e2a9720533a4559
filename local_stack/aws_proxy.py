"""The AWS endpoint as the functions and moto's own Step Functions see it:
every request goes to moto, except the Lambda Invoke API, which runs the
template's real handlers in the local Lambda runtime.

moto executes state machines but runs no Lambda code without Docker; its
internal clients call http://localhost:$MOTO_PORT, so moto is started with
MOTO_PORT pointing here and its `lambda:invoke` tasks reach the real handlers.

Where AWS says no and moto would not, this endpoint says it first:
- IAM: a call signed by a function is checked against that function's role
  (iam.py) and refused with AccessDenied when the role does not allow it;
- DynamoDB transaction conflicts (conflicts.py);
- an asynchronous Invoke (`X-Amz-Invocation-Type: Event`) is answered 202 at once and runs afterwards,
  as Lambda queues it; a synchronous one answers with the function's result;
- Test facility (local only): `POST /@faults {"operation": "StartExecution", "count": N, "mode": M}`
  makes the next N requests of that operation fail; `count: 0` clears it. Modes:
  - "fail" (the default): answered 500 without reaching the service, as a failing AWS service would
    (botocore retries a 500: the functions' standard mode makes 3 attempts);
  - "applied": applied, then answered 500, as a request whose answer was lost (a timeout, a 500 after
    the write) is: botocore sends it again, so a non-idempotent write (`ADD`) applies twice;
  - "kill": refused, and so is every later request of the same caller for the next second, with an
    error botocore does not retry: the function dies at this call, after its previous calls took effect
    (a timeout or crash between two writes; its own clean-up cannot reach AWS either).
  With `"function": "<logical id>"` only that function's requests count (others pass), so a test aims
  at one function while the stream consumer, the sweep and the rest make the same calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from aiohttp import web

from .conflicts import TransactionConflicts
from .iam import Iam, Role, invoked_function, operation_of, request_payload, requests_of
from .serving import Invoker, Listener

log = logging.getLogger("local_stack")

FAULT_MODES = ("fail", "applied", "kill")
KILLED_SECONDS = 1.0  # a killed function's later calls are refused this long (its invocation ends meanwhile)
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
# Not passed on to moto: the body is sent whole, so a `100 Continue` would only be one more thing to read.
_NOT_FORWARDED = frozenset(h.encode() for h in HOP_HEADERS | {"expect"})
UPSTREAM_TIMEOUT = 120.0  # s for moto to answer one request
# An idle connection to moto is dropped before moto's own idle timeout (moto_server.py) closes it under us.
UPSTREAM_IDLE = 60.0
UPSTREAM_CONNECTIONS = 100  # at most this many requests at moto at once (each is a thread there), as before


class AwsProxy:
    def __init__(self, moto_endpoint: str, invoker: Invoker, functions_by_name: dict[str, str], *,
                 host: str = "127.0.0.1", port: int = 0, region: str = "eu-west-1") -> None:
        self.moto_endpoint = moto_endpoint  # set once moto runs
        self._invoker = invoker
        self.functions = functions_by_name  # function name -> logical id
        self.region = region
        self.iam: Iam | None = None  # set once the roles are known
        self.conflicts: TransactionConflicts | None = None
        self._faults: dict[str, list] = {}  # operation -> [requests that still fail, mode] (@faults)
        self._killed: dict[str, float] = {}  # caller's access key -> until when its requests are refused
        self.host, self.requested_port = host, port
        self.port: int | None = None
        self._listener = Listener(host, port, shutdown_timeout=2.0)
        self._upstream: Upstream | None = None
        self._later: set[asyncio.Task] = set()  # asynchronous invocations under way

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.port = await self._listener.start(app)

    async def stop(self) -> None:
        await self._listener.stop()
        if self._upstream:
            self._upstream.close()
            self._upstream = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if request.method == "POST" and path == "/@faults":
            return await self._inject_fault(request)
        body = await request.read()
        operation = operation_of(request.headers, path, body, request.method, request.query)
        held: list = []
        if operation:
            service, name = operation
            signer = self.iam.signer(request.headers, request.query) if self.iam is not None else None
            conflicts = self.conflicts if service == "dynamodb" else None
            # Read only when IAM or the conflicts need it: audio records are most of what passes here.
            payload = request_payload(request.headers, body) if signer or conflicts else {}
            refusal = self._refusal(request, service, name, path, payload, signer)
            if refusal is not None:
                return refusal
            if conflicts is not None:
                error, held = conflicts.admit(name, payload)
                if error is not None:
                    return _json_error(400, error, request)
        try:
            function = invoked_function(path) if request.method == "POST" else None
            if function is not None:
                return await self._invoke(body, function, request.headers.get("X-Amz-Invocation-Type"))
            answer = await self._forward(request, body)
            if operation and self._take_fault(operation[1], "applied", self._function_of(request)):
                return _json_error(500, {"__type": "com.amazon.coral.service#InternalFailure",
                                         "message": "Applied, then failed (local stack @faults)"}, request)
            return answer
        finally:
            if held:
                self.conflicts.release(held)

    def _refusal(self, request: web.Request, service: str, name: str, path: str, payload: dict,
                 signer: Role | None) -> web.Response | None:
        if signer is not None:
            denial = self.iam.denial(request.headers, requests_of(service, name, path, payload, self.region),
                                     request.query)
            if denial:
                if service == "lambda":  # a REST API: its own status and shape
                    return web.json_response({"Message": denial, "Type": "User"}, status=403,
                                             headers={"x-amzn-ErrorType": "AccessDeniedException"})
                if service == "s3":  # S3 answers in XML
                    return web.Response(status=403, content_type="application/xml", body=(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                        f"<Message>{escape(denial)}</Message></Error>").encode())
                return _json_error(400, {"__type": "com.amazon.coral.service#AccessDeniedException",
                                         "Message": denial}, request)
        caller = _caller(request)
        loop_time = asyncio.get_running_loop().time()
        function = signer.function if signer is not None else self._function_of(request)
        if self._killed.get(caller, 0) > loop_time or self._take_fault(name, "kill", function):
            self._killed.setdefault(caller, loop_time + KILLED_SECONDS)
            # Not retried by botocore: the function's call raises at once.
            return _json_error(400, {"__type": "com.amazon.coral.validate#ValidationException",
                                     "message": "Function killed here (local stack @faults)"}, request)
        if self._take_fault(name, "fail", function):
            return _json_error(500, {"__type": "com.amazon.coral.service#InternalFailure",
                                     "message": "Injected failure (local stack @faults)"}, request)
        return None

    def _function_of(self, request: web.Request) -> str | None:
        role = self.iam.role_of(request.headers, request.query) if self.iam is not None else None
        return role.function if role is not None else None

    def _take_fault(self, operation: str, mode: str, function: str | None) -> bool:
        fault = self._faults.get(operation)
        if not fault or fault[1] != mode or fault[0] <= 0 or fault[2] not in (None, function):
            return False
        fault[0] -= 1
        return True

    async def _inject_fault(self, request: web.Request) -> web.Response:
        """The @faults test facility (module docstring)."""
        fault = request_payload(request.headers, await request.read())
        operation, count, mode = fault.get("operation"), fault.get("count", 1), fault.get("mode", "fail")
        function = fault.get("function")
        if (not isinstance(operation, str) or not operation or type(count) is not int or count < 0
                or mode not in FAULT_MODES or not (function is None or isinstance(function, str))):
            return web.json_response({"message": "expected {\"operation\": name, \"count\": n >= 0, "
                                                 "\"mode\": \"fail\" | \"applied\" | \"kill\", "
                                                 "\"function\": logical id (optional)}"}, status=400)
        if count:
            self._faults[operation] = [count, mode, function]
        else:
            self._faults.pop(operation, None)
        return web.Response(status=204)

    async def _invoke(self, body: bytes, name: str, invocation_type: str | None = None) -> web.Response:
        function = self.functions.get(name.rsplit(":function:", 1)[-1].split(":")[0])
        if function is None:
            return web.json_response({"Type": "User", "message": f"Function not found: {name}"}, status=404,
                                     headers={"x-amzn-ErrorType": "ResourceNotFoundException"})
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            return web.json_response({"Type": "User", "message": "Could not parse request body into json"},
                                     status=400, headers={"x-amzn-ErrorType": "InvalidRequestContentException"})
        if invocation_type == "Event":
            task = asyncio.get_running_loop().create_task(self._invoke_later(function, event))
            self._later.add(task)
            task.add_done_callback(self._later.discard)
            return web.Response(status=202)
        try:
            result = await self._invoker.invoke(function, event)
        except Exception as exc:  # noqa: BLE001 - Lambda reports a function error in a 200 response
            error = getattr(exc, "error", {"errorType": type(exc).__name__, "errorMessage": str(exc)})
            return web.json_response(error, headers={"X-Amz-Function-Error": "Unhandled",
                                                     "X-Amz-Executed-Version": "$LATEST"})
        return web.Response(body=json.dumps(result).encode(), content_type="application/json",
                            headers={"X-Amz-Executed-Version": "$LATEST"})

    async def _invoke_later(self, function: str, event: dict) -> None:
        try:
            await self._invoker.invoke(function, event)
        except Exception as exc:  # noqa: BLE001 - Lambda logs an asynchronous invocation's failure, nobody waits
            log.info("asynchronous invocation of %s failed: %s", function, exc)

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if self._upstream is None or self._upstream.endpoint != self.moto_endpoint:
            if self._upstream:
                self._upstream.close()
            self._upstream = Upstream(self.moto_endpoint)
        headers = [(k, v) for k, v in request.raw_headers if k.lower() not in _NOT_FORWARDED]
        async with asyncio.timeout(UPSTREAM_TIMEOUT):
            status, out_headers, body = await self._upstream.request(
                request.method.encode(), request.rel_url.raw_path_qs.encode(), headers, body)
        return web.Response(status=status, body=body, headers=[
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in out_headers
            if name.lower() not in _NOT_FORWARDED])


class UpstreamClosed(ConnectionError):
    """moto closed a connection before answering."""


class Upstream:
    """HTTP/1.1 to moto over kept-alive connections, headers and bodies passed through as bytes.

    A general HTTP client (aiohttp's) builds and parses multidicts, cookies, URLs and a response object for
    every request: on the local stack's hot path (every AWS call a function makes) that was most of the
    endpoint's CPU per call (docs/local-stack.md). moto answers each request with Content-Length (or chunked,
    or to the end of the connection, which is then not reused), so a few reads delimit it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        parts = urlsplit(endpoint)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._host_header = parts.netloc.encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._slots = asyncio.Semaphore(UPSTREAM_CONNECTIONS)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            writer.close()

    async def request(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        head = b"".join([method, b" ", target, b" HTTP/1.1\r\nHost: ", self._host_header,
                         b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n",
                         *(b"%s: %s\r\n" % header for header in headers), b"\r\n"])
        async with self._slots:
            return await self._send(head, body, method == b"HEAD")

    async def _send(self, head: bytes, body: bytes,
                    head_only: bool) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        while True:
            reader, writer, reused = await self._connection()
            try:
                writer.write(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    writer.write(body)
                answer = await self._read_response(reader, head_only)
            except BaseException as exc:
                writer.close()
                # A kept connection moto closed while it was idle: nothing was sent back, so nothing was
                # done; the request goes again on a new connection (as HTTP clients do). Anything else fails.
                if reused and isinstance(exc, UpstreamClosed | ConnectionResetError | BrokenPipeError):
                    continue
                raise
            status, out_headers, out_body, keep = answer
            if keep:
                self._idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status, out_headers, out_body

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < UPSTREAM_IDLE and not reader.at_eof() and not writer.is_closing():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=1024 * 1024)
        return reader, writer, False

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader,
                             head_only: bool) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        while True:
            try:
                block = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise UpstreamClosed("moto closed the connection before answering") from None
                raise
            lines = block[:-4].split(b"\r\n")
            version, code, *_ = lines[0].split(b" ", 2)
            status = int(code)
            if status >= 200:
                break  # 1xx: an interim answer (`100 Continue`); the real one follows
        headers, length, chunked, keep = [], None, False, version == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip(), value.strip()
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)
            elif lower == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lower == b"connection":
                keep = keep and value.lower() != b"close"
            headers.append((name, value))
        if head_only or status in (204, 304):
            body = b""
        elif chunked:
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
                parts.append((await reader.readexactly(size + 2))[:-2])
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            body = b"".join(parts)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body, keep = await reader.read(), False  # to the end of the connection
        return status, headers, body, keep


def _caller(request: web.Request) -> str:
    """Who signed the request: the access key in its SigV4 Authorization header."""
    authorization = request.headers.get("Authorization", "")
    return authorization.split("Credential=", 1)[-1].split("/", 1)[0] if "Credential=" in authorization else ""


def _json_error(status: int, error: dict, request: web.Request) -> web.Response:
    """An error in the JSON protocols' shape (DynamoDB, Kinesis, Step Functions, ...)."""
    content_type = request.headers.get("Content-Type", "application/x-amz-json-1.0").split(";")[0]
    return web.Response(status=status, body=json.dumps(error).encode(), content_type=content_type,
                        headers={"x-amzn-ErrorType": error["__type"].rsplit("#", 1)[-1]})
