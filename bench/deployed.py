"""A deployed stack against Req 11's p95 budgets: `make bench ARGS="--stack NAME [--region REGION]"`.

The stack is found by its CloudFormation outputs and gets test users of its own (deployed/, as
`make test-deployed`); nothing here reads the local stack's internals, so the figures are what a client
of that stack sees from this machine, network included:

- http: CLIENTS concurrent clients, each create -> get -> update -> delete, CYCLES times;
- websocket: speaker handshakes (REQUEST authorizer + $connect), one at a time;
- audio: one speaker sending a 100 ms chunk 10 times a second; each chunk's latency is its Kinesis
  arrival time (ApproximateArrivalTimestamp, the stream's clock) minus the send time on this machine's
  clock moved onto the service's (the offset from the heartbeat round trip with the smallest delay,
  whose serverTime is the function's clock: error at most half that round trip, reported).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

from deployed import aws_client, sign_in

from .audio import CHUNK_BYTES
from .http_api import session_cycles
from .stats import row, summary
from .support import create_sessions, end_session
from .websocket import ws_connect

# Req 11: p95 budgets, in ms.
BUDGETS_MS = {"create": 2000, "get": 500, "update": 1000, "connect": 1000, "audio": 100}
RATE = 10.0  # chunks a second
SIZES = {  # full run, then --short (the form `make test` runs against the local stack)
    False: {"clients": 5, "cycles": 20, "connects": 50, "chunks": 100, "heartbeats": 20},
    True: {"clients": 2, "cycles": 3, "connects": 5, "chunks": 10, "heartbeats": 5},
}


async def _connects(url: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        ws = await ws_connect(url, max_size=None)
        samples.append((time.perf_counter() - start) * 1000)
        await ws.close()
        await asyncio.sleep(0.2)  # its $disconnect is done before the next handshake replaces it
    return samples


async def _clock_offset(ws, heartbeats: int) -> tuple[float, float]:
    """(service clock - this machine's clock, in ms; the round trip it came from, in ms)."""
    best = None
    for _ in range(heartbeats):
        sent = time.time() * 1000
        await ws.send(json.dumps({"action": "heartbeat"}))
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("type") == "heartbeatAck":
                break
        received = time.time() * 1000
        sample = (reply["serverTime"] - (sent + received) / 2, received - sent)
        best = sample if best is None or sample[1] < best[1] else best
    return best


async def _audio(url: str, session_id: str, chunks: int, heartbeats: int) -> tuple[dict[int, float], float, float]:
    """Send times (epoch ms, service clock) by seq; the clock offset and its round trip."""
    data = base64.b64encode(os.urandom(CHUNK_BYTES)).decode()
    sent: dict[int, float] = {}
    async with ws_connect(url, max_size=None) as ws:
        offset, round_trip = await _clock_offset(ws, heartbeats)
        start = time.perf_counter()
        for seq in range(chunks):
            delay = start + seq / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[seq] = time.time() * 1000 + offset
            await ws.send(json.dumps({"action": "sendAudio", "seq": seq, "data": data}))
        await asyncio.sleep(1.0)  # the last chunks' invocations finish before the socket closes
    return sent, offset, round_trip


def _arrivals(kinesis, stream: str, iterators: dict[str, str], session_id: str, count: int,
              timeout: float = 30.0) -> dict[int, float]:
    """Kinesis arrival time (epoch ms) of each of the session's records, read after the sending."""
    arrived: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(arrived) < count and time.monotonic() < deadline:
        for shard, iterator in list(iterators.items()):
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            iterators[shard] = page["NextShardIterator"]
            for record in page["Records"]:
                body = json.loads(record["Data"])
                if body.get("sessionId") == session_id:
                    arrived[int(body["seq"])] = record["ApproximateArrivalTimestamp"].timestamp() * 1000
        time.sleep(0.25)  # GetRecords: 5 calls a second per shard
    return arrived


def run(info: dict, suites: tuple[str, ...] = ("http", "websocket", "audio"), short: bool = False) -> list[dict]:
    size = SIZES[short]
    alice = next(u for u in info["users"] if u["name"] == "alice")
    token = sign_in(info, alice)["IdToken"]
    rows = []

    def budget_row(op: str, label: str, values: list[float], **extra) -> dict:
        result = summary(values)
        return row(label, result, goal=f"p95 <= {BUDGETS_MS[op]} ms",
                   met=bool(values) and result["p95"] <= BUDGETS_MS[op]) | extra

    if "http" in suites:
        clients, cycles = size["clients"], size["cycles"]
        samples = asyncio.run(session_cycles(info["httpApiUrl"], token, clients, cycles))
        for op, method in (("create", "POST /sessions"), ("get", "GET /sessions/{id}"),
                           ("update", "PATCH /sessions/{id}")):
            rows.append(budget_row(op, f"HTTP {method} ({clients} clients)", samples[op]))
        rows.append(row(f"↳ HTTP DELETE /sessions/{{id}} ({clients} clients)", summary(samples["delete"])))
    if "websocket" in suites:
        (session_id,) = create_sessions(info, token, 1)
        try:
            url = f"{info['webSocketUrl']}?sessionId={session_id}&role=speaker&token={token}"
            samples = asyncio.run(_connects(url, size["connects"]))
        finally:
            end_session(info, token, session_id)
        rows.append(budget_row("connect", "WS connect, speaker with token (authorizer + $connect)", samples))
    if "audio" in suites:
        (session_id,) = create_sessions(info, token, 1)
        kinesis, stream = aws_client("kinesis", info["region"]), info["audioStreamName"]
        try:
            iterators = {shard["ShardId"]: kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="LATEST")["ShardIterator"]
                for shard in kinesis.list_shards(StreamName=stream)["Shards"]}
            url = f"{info['webSocketUrl']}?sessionId={session_id}&role=speaker&token={token}"
            sent, offset, round_trip = asyncio.run(_audio(url, session_id, size["chunks"], size["heartbeats"]))
            arrived = _arrivals(kinesis, stream, iterators, session_id, len(sent))
        finally:
            end_session(info, token, session_id)
        latencies = [arrived[seq] - sent[seq] for seq in sent if seq in arrived]
        label = f"audio sendAudio -> Kinesis arrival, 1 speaker at {RATE:g}/s"
        if len(arrived) < len(sent):
            label += f" [{len(sent) - len(arrived)} of {len(sent)} never arrived]"
        rows.append(budget_row("audio", label, latencies))
        rows[-1]["met"] = rows[-1]["met"] and len(arrived) == len(sent)
        rows.append(row(f"↳ heartbeat round trip behind the clock offset ({offset:+.0f} ms; audio figures "
                        f"are exact to half of it)", summary([round_trip])))
    return rows
