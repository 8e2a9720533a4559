"""Lambda emulation: each template function runs in pooled worker subprocesses.

A worker (worker.py) is one execution environment: it imports the handler once
and then serves invocations one at a time over lean newline-JSON pipes. A pool
per function keeps idle workers warm, spawns more on demand up to a concurrency
limit, kills a worker that overruns the function's Timeout, and turns handler
exceptions into Lambda-shaped error payloads. Everything that invokes a function
(the HTTP and WebSocket gateways, the stream pollers, and the Lambda Invoke API of
the AWS endpoint, which Step Functions tasks call) goes through ``LambdaRuntime.invoke``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from .iam import access_key_for
from .template import ACCOUNT_ID, FunctionSpec

log = logging.getLogger("local_stack")

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
END_OF_LOGS = b"\x00local-stack:end:"  # same as worker.END_OF_LOGS (the worker imports nothing of ours)
# Lambda scales a function to the account's concurrency (1,000 by default). Workers start only on demand
# (one warm at start), and an invocation mostly waits on AWS calls, not CPU: at 2 a function, 20 speakers'
# sendAudio queued behind 2 workers (~30 of 200 chunks/s forwarded, docs/local-stack.md). 10 lets one busy
# function overlap its calls while capping a burst at ~10 x 60 MB of workers.
DEFAULT_MAX_CONCURRENCY = 10
# Lambda gives init 10 s; a 2-core laptop spawning several workers at once needs slack.
INIT_TIMEOUT = 30.0
# Workers started at once per function: a cold start is ~1 s of CPU, and a burst that
# starts many at once starves the warm ones (2-core machines) more than it helps.
MAX_STARTING = 1
# Pipe reader limit: well above Lambda's 6 MB payload limit, so no real response is cut.
STREAM_LIMIT = 32 * 1024 * 1024
# How long an answer waits for its invocation's log lines (a handler's stray thread could hold them up).
LOG_FLUSH_TIMEOUT = 1.0
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


class InvocationError(Exception):
    """The function failed; ``error`` is the payload Lambda would return (errorType, errorMessage)."""

    def __init__(self, error: dict) -> None:
        self.error = error
        super().__init__(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")


class UnknownFunction(LookupError):
    """No function with that logical id in the template."""


class LogSink:
    """One function's log lines: to our stderr (prefixed) and to its own log file."""

    def __init__(self, name: str, path: Path | None, *, prefix: bool = True) -> None:
        self._prefix = f"[{name}] ".encode() if prefix else b""
        self._file: BinaryIO | None = open(path, "wb", buffering=0) if path else None  # noqa: SIM115
        self._out = sys.stderr.buffer

    def write(self, line: bytes) -> None:
        if not line.endswith(b"\n"):
            line += b"\n"
        with contextlib.suppress(OSError, ValueError):  # a closed terminal must not stop the stack
            self._out.write(self._prefix + line)
            self._out.flush()
        if self._file:
            self._file.write(line)

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def lambda_environment(spec: FunctionSpec, *, aws_endpoint: str | None, region: str,
                       log_stream: str) -> dict[str, str]:
    """Exactly the template's variables plus what Lambda itself sets (which wins, as in Lambda)."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "en_US.UTF-8", "TZ": ":UTC"}
    env.update(spec.environment)
    env.update(FAKE_CREDENTIALS)
    # The key names the function, so the local AWS endpoint can apply its role (iam.py).
    env["AWS_ACCESS_KEY_ID"] = access_key_for(spec.logical_id)
    env.update({
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
        # X-Ray has no daemon here.
        "POWERTOOLS_TRACE_DISABLED": "true",
    })
    if spec.log_format:
        env["AWS_LAMBDA_LOG_FORMAT"] = spec.log_format
    if spec.log_level:
        env["AWS_LAMBDA_LOG_LEVEL"] = spec.log_level
    if aws_endpoint:
        # boto3 sends every service there; a later per-service AWS_ENDPOINT_URL_<SERVICE> can override.
        env["AWS_ENDPOINT_URL"] = aws_endpoint
    return env


class Worker:
    """One worker subprocess and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process, sink: LogSink) -> None:
        self.proc = proc
        self.init_ms = 0.0
        self.invocations = 0
        self._logs_written: dict[bytes, asyncio.Future] = {}  # request id -> its logs are in the sink
        self._logs = asyncio.ensure_future(self._pump_logs(proc.stderr, sink))

    @classmethod
    async def spawn(cls, spec: FunctionSpec, *, aws_endpoint: str | None, region: str, sink: LogSink) -> Worker:
        log_stream = f"{dt.datetime.now(dt.UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        config = {
            "handler": spec.handler,
            "path": [str(spec.code_dir)] + [str(p) for p in spec.layer_dirs],
            "function_name": spec.function_name,
            "function_arn": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{spec.function_name}",
            "memory_size": spec.memory_size,
            "log_group": spec.log_group,
            "log_stream": log_stream,
        }
        if not spec.code_dir.is_dir():
            raise InvocationError({"errorType": "Runtime.ImportModuleError",
                                   "errorMessage": f"CodeUri folder {spec.code_dir} does not exist"})
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-u", str(WORKER_SCRIPT), json.dumps(config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=lambda_environment(spec, aws_endpoint=aws_endpoint, region=region, log_stream=log_stream),
            limit=STREAM_LIMIT,
            # Own process group: a terminal's Ctrl-C reaches only the stack, which then stops
            # workers in order; and a timeout kill takes the handler's own children too.
            start_new_session=True,
        )
        worker = cls(proc, sink)
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), INIT_TIMEOUT)
        except TimeoutError:
            await worker.kill()
            raise InvocationError({"errorType": "Runtime.InitTimeout",
                                   "errorMessage": f"Init did not finish within {INIT_TIMEOUT:.0f} seconds"}) from None
        except BaseException:
            await worker.kill()
            raise
        message = _parse(line)
        if message != {"ready": True}:
            await worker.kill()
            raise InvocationError((message or {}).get("error") or await worker._exit_error())
        worker.init_ms = (time.perf_counter() - started) * 1000
        return worker

    async def invoke(self, request_id: str, payload: bytes, timeout: float) -> dict:
        """Returns the worker's response; raises InvocationError (worker dead) on timeout or crash."""
        key = request_id.encode()
        logs_written = self._logs_written[key] = asyncio.get_running_loop().create_future()
        try:
            return await self._invoke(payload, timeout, logs_written)
        finally:
            self._logs_written.pop(key, None)

    async def _invoke(self, payload: bytes, timeout: float, logs_written: asyncio.Future) -> dict:
        try:
            self.proc.stdin.write(payload)
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            await self.kill()
            raise InvocationError({"errorType": "Sandbox.Timedout",
                                   "errorMessage": f"Task timed out after {timeout:.2f} seconds"}) from None
        except (ConnectionError, ValueError):  # pipe gone, or a line past STREAM_LIMIT
            await self.kill()
            raise InvocationError(await self._exit_error()) from None
        except BaseException:
            await self.kill()  # cancelled mid-invocation: the protocol state is unknown
            raise
        message = _parse(line)
        if message is None:
            await self.kill()
            raise InvocationError(await self._exit_error())
        # Logs travel on another pipe: let them reach the log file before the caller answers.
        await asyncio.wait({logs_written}, timeout=LOG_FLUSH_TIMEOUT)
        return message

    async def _exit_error(self) -> dict:
        code = await self.proc.wait()
        return {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited with error: exit status {code}"}

    async def close(self, grace: float = 2.0) -> None:
        """Lets an idle worker exit on end-of-input, killing it if it lingers."""
        if self.proc.returncode is None and self.proc.stdin:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                pass
        await self.kill()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        # Flush the last log lines; a grandchild still holding stderr must not hang us.
        await asyncio.wait({self._logs}, timeout=2.0)

    async def _pump_logs(self, stream: asyncio.StreamReader, sink: LogSink) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # one line longer than the limit: pass it on in pieces
                line = await stream.read(STREAM_LIMIT)
            if not line:
                return
            text, marker, request_id = line.partition(END_OF_LOGS)
            if text:
                sink.write(text)
            if marker:
                written = self._logs_written.get(request_id.rstrip(b"\n"))
                if written and not written.done():
                    written.set_result(None)


def _parse(line: bytes) -> dict | None:
    if not line:
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class FunctionPool:
    """Warm workers of one function, at most ``max_concurrency`` of them.

    A request that finds no idle worker starts a new one in the background
    (while under the limit) and takes whichever worker is free first: the
    pool grows with demand, but a burst doesn't make requests wait a whole
    cold start when a busy worker frees up within milliseconds.
    """

    def __init__(self, spec: FunctionSpec, *, aws_endpoint: str | None, region: str, sink: LogSink,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        self.spec = spec
        self._aws_endpoint = aws_endpoint
        self._region = region
        self._sink = sink
        self._max = max_concurrency
        self._idle: list[Worker] = []  # LIFO: the most recently used worker stays hot
        self._busy: set[Worker] = set()
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._workers = 0  # alive or starting
        self._starting = 0
        self._tasks: set[asyncio.Task] = set()
        self._starts: set[asyncio.Task] = set()
        self._closed = False

    @property
    def size(self) -> int:
        return self._workers

    async def warm(self) -> None:
        """Starts one worker ahead of traffic, so the first request isn't a cold start."""
        if self._workers or self._closed:
            return
        self._workers += 1
        self._starting += 1
        await self._start_worker()

    async def invoke(self, event: Any, request_id: str | None = None) -> Any:
        request_id = request_id or str(uuid.uuid4())
        payload = json.dumps({"id": request_id, "event": event,
                              "timeout_ms": int(self.spec.timeout * 1000)}).encode() + b"\n"
        # The invocation runs to its end even if the caller stops waiting (client gone,
        # integration timeout), so the worker goes back to the pool in a known state.
        task = self._background(self._invoke(payload, request_id))
        return await asyncio.shield(task)

    async def _invoke(self, payload: bytes, request_id: str) -> Any:
        worker = await self._acquire()
        first = worker.invocations == 0
        worker.invocations += 1
        self._busy.add(worker)
        start = time.perf_counter()
        status = "error"
        try:
            response = await worker.invoke(request_id, payload, self.spec.timeout)
            status = "ok" if response.get("ok") else "error"
        except InvocationError as exc:
            status = exc.error["errorType"]
            raise
        finally:
            self._busy.discard(worker)
            if worker.proc.returncode is None and not self._closed:
                self._release(worker)
            else:
                self._workers -= 1
                self._background(worker.kill())
                self._grow()
            init = f" Init Duration: {worker.init_ms:.2f} ms" if first else ""
            self._sink.write(f"REPORT RequestId: {request_id} Duration: {(time.perf_counter() - start) * 1000:.2f} ms"
                             f"{init} Memory Size: {self.spec.memory_size} MB Status: {status}".encode())
        if response.get("ok"):
            return response.get("result")
        raise InvocationError(response.get("error") or {"errorType": "Runtime.Unknown", "errorMessage": "no error"})

    async def _acquire(self) -> Worker:
        if self._closed:
            raise InvocationError(_SHUTDOWN)
        if self._idle:
            return self._idle.pop()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._grow()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed over just as we were cancelled
            raise

    def _release(self, worker: Worker) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _grow(self) -> None:
        """One start per waiting request not already covered by a start in progress."""
        waiting = sum(not w.done() for w in self._waiters)
        while not self._closed and self._workers < self._max and self._starting < min(waiting, MAX_STARTING):
            self._workers += 1
            self._starting += 1
            task = self._background(self._start_worker())
            self._starts.add(task)
            task.add_done_callback(self._starts.discard)

    async def _start_worker(self) -> None:
        try:
            worker = await Worker.spawn(self.spec, aws_endpoint=self._aws_endpoint, region=self._region,
                                        sink=self._sink)
        except InvocationError as exc:
            self._starting -= 1
            self._workers -= 1
            log.warning("%s failed to start: %s", self.spec.logical_id, exc)
            # Like Lambda, the request that would have run there gets the init error;
            # the others retry init rather than waiting forever.
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(InvocationError(exc.error))
                    break
            self._grow()
            return
        self._starting -= 1
        if self._closed:
            self._workers -= 1
            await worker.kill()
        else:
            self._release(worker)
            self._grow()  # starts are one at a time: begin the next if requests still wait

    def _background(self, coroutine: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so an abandoned failure isn't reported as unhandled

    async def close(self) -> None:
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(InvocationError(_SHUTDOWN))
        for task in list(self._starts):
            task.cancel()  # a half-started worker is killed by Worker.spawn
        idle, self._idle = self._idle, []
        await asyncio.gather(*(w.close() for w in idle), *(w.kill() for w in list(self._busy)))
        # Invocations and kills started before (or by) the ones above; re-check, as they may start more.
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.wait(pending)


_SHUTDOWN = {"errorType": "Runtime.Shutdown", "errorMessage": "the local stack is stopping"}


class LambdaRuntime:
    """All functions of the template, invocable by logical id."""

    def __init__(self, functions: dict[str, FunctionSpec], *, aws_endpoint: str | None, region: str,
                 log_dir: Path | None = None, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                 prefix_logs: bool = True) -> None:
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)
        self._sinks = {lid: LogSink(lid, log_dir / f"{lid}.log" if log_dir else None, prefix=prefix_logs)
                       for lid in functions}
        self.pools = {lid: FunctionPool(spec, aws_endpoint=aws_endpoint, region=region, sink=self._sinks[lid],
                                        max_concurrency=max_concurrency)
                      for lid, spec in functions.items()}

    async def warm(self) -> None:
        """One worker per function, started in parallel."""
        await asyncio.gather(*(pool.warm() for pool in self.pools.values()))

    async def invoke(self, function: str, event: Any, request_id: str | None = None) -> Any:
        pool = self.pools.get(function)
        if pool is None:
            raise UnknownFunction(function)
        return await pool.invoke(event, request_id)

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
        for sink in self._sinks.values():
            sink.close()
