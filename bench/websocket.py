"""WebSocket connect latency: the handshake through the local API Gateway emulation, which runs the
REQUEST authorizer and then `$connect` before it upgrades, as a listener (anonymous) and as a speaker
(with a token), beside a bare handshake to a trivial aiohttp echo server (the framework the gateway
itself uses) that this suite starts in a process of its own on 127.0.0.1 -- same client code, same run.

One handshake at a time (the latency of a join, not a throughput test); each socket is closed at once
and its `$disconnect` given GAP seconds before the next handshake. The three kinds are interleaved in
a shuffled order every round, so drift on a noisy machine hits all of them alike. Sessions are spread
over SESSIONS sessions, so a speaker never replaces its own still-open previous connection and status
broadcasts stay small.

The old protocol's connects are measured too: a speaker that creates its session with its connect query
and waits, sending nothing, for `sessionCreated`, and a listener that joins with its query and waits for
`sessionJoined` (both delivered after the handshake by the welcome function: docs/architecture.md,
"Messages at connect time"), from the start of the handshake to the message, beside the same run's native
speaker handshake (which gets no message).

Run as `python -m bench.websocket --echo-server` it is that echo server (prints its port, serves until
its stdin closes).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from websockets.asyncio.client import connect

from .stats import row, summary
from .support import Reports, create_sessions, end_session, id_token, settle

SAMPLES = 200  # per kind
WARMUP = 10  # rounds thrown away (workers warm, JWKS cached, TCP paths hot)
SESSIONS = 20
GAP = 0.05  # s after each close
ROUND_TRIPS = 100  # heartbeat / echo round trips and raw DynamoDB calls, for the breakdown rows
WELCOMES = 60  # old-protocol connects of each kind (each speaker one creates a session)
GOAL_MS = 30.0
KINDS = ("baseline", "listener", "speaker")
ROOT = Path(__file__).resolve().parents[1]


def ws_connect(url: str, **kw):
    """The client every suite uses: websockets' asyncio client, no proxy lookup, no keepalive pings."""
    return connect(url, proxy=None, ping_interval=None, open_timeout=60, **kw)


@contextmanager
def echo_server() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-m", "bench.websocket", "--echo-server"], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"echo server did not start: {line!r}")
        yield f"ws://127.0.0.1:{int(line)}/dev"
    finally:
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _handshake(url: str) -> float:
    start = time.perf_counter()
    ws = await ws_connect(url)
    elapsed = (time.perf_counter() - start) * 1000
    await ws.close()
    return elapsed


async def _samples(urls: dict, mark) -> tuple[dict[str, list[float]], list[str], dict[str, list[str]]]:
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    failures: dict[str, list[str]] = {kind: [] for kind in KINDS}
    order: list[str] = []  # stack handshakes in the order they ran (to split the functions' REPORTs)
    rng = random.Random(17)
    for i in range(WARMUP + SAMPLES):
        kinds = list(KINDS)
        rng.shuffle(kinds)
        for kind in kinds:
            try:
                elapsed = await _handshake(urls[kind](i))
            except Exception as exc:  # noqa: BLE001 - a refused handshake (500: $connect timed out) is a finding
                elapsed = None
                if i >= WARMUP:
                    failures[kind].append(f"{type(exc).__name__}: {exc}")
            if i >= WARMUP:
                if elapsed is not None:
                    samples[kind].append(elapsed)
                if kind != "baseline":
                    order.append(kind)
            await asyncio.sleep(GAP)
        if i == WARMUP - 1:
            mark()
    return samples, order, failures


def run(info: dict) -> list[dict]:
    token = id_token(info)
    sessions = create_sessions(info, token, SESSIONS)
    reports = Reports(info)
    functions = ("WsAuthorizerFunction", "WsConnectFunction")
    settle(info)
    stack_url = info["webSocketUrl"]
    with echo_server() as echo_url:
        urls = {
            "baseline": lambda i: f"{echo_url}?sessionId={sessions[i % SESSIONS]}&role=listener",
            "listener": lambda i: f"{stack_url}?sessionId={sessions[i % SESSIONS]}&role=listener",
            "speaker": lambda i: f"{stack_url}?sessionId={sessions[i % SESSIONS]}&role=speaker&token={token}",
        }
        samples, order, failures = asyncio.run(_samples(urls, lambda: reports.mark(*functions)))
        per_function = {f: reports.durations(f) for f in functions}
        settle(info)
        round_trips = asyncio.run(_round_trips(urls["speaker"](0), urls["baseline"](0)))
        settle(info)
        welcomes = asyncio.run(_welcomes(stack_url, token, urls["speaker"]))
    raw = _raw_calls(info, sessions[0])
    for session_id in sessions:
        end_session(info, token, session_id)

    baseline = summary(samples["baseline"])
    if failures["baseline"]:
        raise RuntimeError(f"the bare echo server refused handshakes: {failures['baseline'][:3]}")
    rows = []
    for kind, label in (("listener", "listener, anonymous"), ("speaker", "speaker, with token")):
        result = summary(samples[kind])
        name = f"WS connect {label} (authorizer + $connect) vs bare handshake"
        if failures[kind]:  # failed handshakes are not in the percentiles, and fail the goal
            name += f" [{len(failures[kind])} of {SAMPLES} failed: {failures[kind][0]}]"
        rows.append(row(name, result, baseline, goal=f"p95 <= {GOAL_MS:g} ms",
                        met=result["p95"] <= GOAL_MS and not failures[kind]) | {"failures": failures[kind][:10]})
    # Where the handshake's time goes: the two functions' own durations as the stack measured them
    # (its REPORT lines). Handshakes ran one at a time, so the n-th REPORT is the n-th handshake's.
    for function, durations in per_function.items():
        if len(durations) == len(order):
            for kind in ("listener", "speaker"):
                mine = [d for d, k in zip(durations, order) if k == kind]
                rows.append(row(f"↳ {function} ({kind}), per its REPORT", summary(mine)))
        else:
            rows.append(row(f"↳ {function} (listener + speaker), per its REPORT", summary(durations)))
    rows.append(row("↳ heartbeat round trip on an open socket (gateway + 1 Lambda invoke, no AWS call) vs echo",
                    summary(round_trips["heartbeat"]), summary(round_trips["echo"])))
    native = summary(welcomes["native"])
    rows.append(row("old speaker connect (createSession query) -> sessionCreated, vs a native speaker handshake",
                    summary(welcomes["sessionCreated"]), native))
    rows.append(row("old listener connect (joinSession query) -> sessionJoined, vs a native speaker handshake",
                    summary(welcomes["sessionJoined"]), native))
    rows.append(row("↳ raw DynamoDB GetItem (one session read), one at a time", summary(raw["GetItem"])))
    rows.append(row("↳ raw DynamoDB PutItem + UpdateItem (a listener $connect's two writes), one at a time",
                    summary(raw["PutItem + UpdateItem"])))
    return rows


async def _round_trips(speaker_url: str, echo_url: str) -> dict[str, list[float]]:
    """What one Lambda invocation costs through the gateway, without any AWS call in it: a heartbeat
    (the function answers at once) beside the same round trip to the bare echo server."""
    samples: dict[str, list[float]] = {"heartbeat": [], "echo": []}
    message = json.dumps({"action": "heartbeat"})
    async with ws_connect(speaker_url) as stack, ws_connect(echo_url) as echo:
        for i in range(WARMUP + ROUND_TRIPS):
            for name, ws in (("heartbeat", stack), ("echo", echo)):
                start = time.perf_counter()
                await ws.send(message)
                answer = await ws.recv()
                while ws is stack and "heartbeatAck" not in answer:  # a status broadcast came first
                    answer = await ws.recv()
                if i >= WARMUP:
                    samples[name].append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(GAP)
    return samples


async def _welcomes(stack_url: str, token: str, native_url) -> dict[str, list[float]]:
    """Handshake start -> the old protocol's unasked message, one connect at a time, interleaved with a
    native speaker handshake; each created session ends with its speaker's socket."""
    samples: dict[str, list[float]] = {"sessionCreated": [], "sessionJoined": [], "native": []}

    async def timed(url: str, kind: str | None):
        start = time.perf_counter()
        ws = await ws_connect(url)
        message: dict = {}
        while kind and message.get("type") != kind:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        return (time.perf_counter() - start) * 1000, message, ws

    create = f"{stack_url}?action=createSession&sourceLanguage=en&qualityTier=standard&token={token}"
    for i in range(WARMUP + WELCOMES):
        created_ms, created, speaker = await timed(create, "sessionCreated")
        joined_ms, _, listener = await timed(
            f"{stack_url}?action=joinSession&sessionId={created['sessionId']}&targetLanguage=es", "sessionJoined")
        native_ms, _, native = await timed(native_url(i), None)
        for ws in (native, listener, speaker):
            await ws.close()
        if i >= WARMUP:
            samples["sessionCreated"].append(created_ms)
            samples["sessionJoined"].append(joined_ms)
            samples["native"].append(native_ms)
        await asyncio.sleep(GAP)
    return samples


def _raw_calls(info: dict, session_id: str) -> dict[str, list[float]]:
    """DynamoDB calls straight from boto3, one at a time: a GetItem of the session, and a listener
    $connect's two conditional writes (the connection item, then the count; here on a bench-only partition)."""
    ddb = boto3.client("dynamodb", endpoint_url=info["awsEndpointUrl"], region_name=info["region"],
                       aws_access_key_id="local", aws_secret_access_key="local")
    table = info["tableName"]
    samples: dict[str, list[float]] = {"GetItem": [], "PutItem + UpdateItem": []}
    for i in range(WARMUP + ROUND_TRIPS):
        pk = {"S": f"BENCH#{uuid.uuid4().hex}"}
        calls = (("GetItem", lambda: ddb.get_item(TableName=table, Key={"pk": {"S": f"SESSION#{session_id}"},
                                                                         "sk": {"S": "META"}}, ConsistentRead=True)),
                 ("PutItem + UpdateItem", lambda pk=pk: (
                     ddb.put_item(TableName=table, Item={"pk": pk, "sk": {"S": "CONN#x"}},
                                  ConditionExpression="attribute_not_exists(pk)"),
                     ddb.update_item(TableName=table, Key={"pk": pk, "sk": {"S": "META"}},
                                     UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}}))))
        for name, call in calls:
            start = time.perf_counter()
            call()
            if i >= WARMUP:
                samples[name].append((time.perf_counter() - start) * 1000)
            time.sleep(GAP)
    return samples


# ------------------------------------------------------------------ echo server


def _serve_echo() -> None:
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        # The same WebSocketResponse settings as the local stack's gateway (local_stack/ws_api.py).
        ws = web.WebSocketResponse(max_msg_size=128 * 1024, autoping=True)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the bench closes it
        await runner.cleanup()

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1:] == ["--echo-server"]:
        _serve_echo()
    else:
        sys.exit("usage: python -m bench.websocket --echo-server")
