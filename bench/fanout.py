"""Audio fan-out (issue 23): one speaker sends 100 ms chunks (3,200 bytes) at 10 a second to a session of N
listeners of its language (N = 1, 100, 1,000; BENCH_FANOUT_SIZES), through sendAudio, the audio stream and
AudioFanoutFunction, and above AudioSliceThreshold listeners the slice stream and AudioSliceFunction
(docs/architecture.md "Audio to listeners").

- **chunk sent -> last listener received, N listeners**: per chunk, from its send to the last of the N
  listeners receiving it (every listener must receive every chunk); p50 and p95 over the chunks.
- **chunk sent -> first listener received**: the same to the first of them (what one listener feels).
  A listener may get several chunks in one message when the fan-out is behind (docs/protocols.md): each
  chunk counts as received with the message that carries it.
  **Baseline** (same run, same stack, interleaved with the chunks): the speaker's heartbeat round trip, one
  WebSocket message through the gateway and a function and back, with no stream and no fan-out.

`BENCH_FANOUT_CHUNKS` (default 50) chunks per size.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time

from .stats import row, summary
from .support import create_sessions, id_token, raise_open_files, settle
from .websocket import ws_connect

STACK_ARGS = ["--parameter-overrides", "MaxListenersPerSession=2000"]
SIZES = [int(n) for n in os.environ.get("BENCH_FANOUT_SIZES", "1,100,1000").split(",")]
CHUNKS = int(os.environ.get("BENCH_FANOUT_CHUNKS", "50"))
BATCH = 50  # handshakes at once
PCM = base64.b64encode(bytes(3200)).decode()  # 100 ms of 16 kHz 16-bit mono
RECEIVE_TIMEOUT = 60.0
HEARTBEAT_TIMEOUT = 30.0


class Listener:
    def __init__(self, ws) -> None:
        self.ws, self.received = ws, {}  # sequenceNumber -> perf_counter
        self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                message = json.loads(frame)
                if message.get("type") == "audio":
                    # A merged message carries the chunks up to its number (the bench's chunks are numbered 0..n).
                    at, last = time.perf_counter(), message["sequenceNumber"]
                    for seq in range(last - message.get("chunks", 1) + 1, last + 1):
                        self.received.setdefault(seq, at)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 10)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _heartbeat(speaker) -> float:
    """The round trip in ms; inf if no answer within HEARTBEAT_TIMEOUT (a stack swamped by the fan-out)."""
    started = time.perf_counter()
    await speaker.send(json.dumps({"action": "heartbeat"}))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(HEARTBEAT_TIMEOUT):
            while True:
                if json.loads(await speaker.recv()).get("type") == "heartbeatAck":
                    return (time.perf_counter() - started) * 1000
    return float("inf")


async def _one(info: dict, token: str, size: int) -> dict:
    (session_id,) = await asyncio.to_thread(create_sessions, info, token, 1)
    base = f"{info['webSocketUrl']}?sessionId={session_id}"
    speaker = await ws_connect(f"{base}&role=speaker&token={token}")
    listeners: list[Listener] = []
    try:
        for start in range(0, size, BATCH):
            opened = await asyncio.gather(*(ws_connect(f"{base}&role=listener&targetLanguage=en")
                                            for _ in range(min(BATCH, size - start))))
            listeners += [Listener(ws) for ws in opened]
        await asyncio.to_thread(settle, info, timeout=300)
        sent: dict[int, float] = {}
        heartbeats: list[float] = []
        for seq in range(CHUNKS):
            tick = time.perf_counter()
            sent[seq] = tick
            await speaker.send(json.dumps({"action": "sendAudio", "seq": seq, "data": PCM}))
            if seq % 5 == 4:  # the baseline, interleaved (a tenth of a second apart from the chunks)
                heartbeats.append(await _heartbeat(speaker))
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))
        deadline = time.perf_counter() + RECEIVE_TIMEOUT
        while time.perf_counter() < deadline and any(len(lst.received) < CHUNKS for lst in listeners):
            await asyncio.sleep(0.05)
        last, first, missing = [], [], 0
        for seq, at in sent.items():
            times = [lst.received.get(seq) for lst in listeners]
            missing += sum(t is None for t in times)
            arrived = [t for t in times if t is not None]
            if arrived:
                first.append((min(arrived) - at) * 1000)
                last.append((max(arrived) - at) * 1000 if len(arrived) == len(times) else float("inf"))
        print(f"bench: fan-out to {size}: last listener p50 {summary(last)['p50']:.0f} ms, "
              f"missing {missing}", flush=True)
        return {"last": last, "first": first, "heartbeat": heartbeats, "missing": missing}
    finally:
        await asyncio.gather(*(lst.close() for lst in listeners))
        with contextlib.suppress(Exception):
            await speaker.close()
        await asyncio.to_thread(settle, info, timeout=300)


async def _all(info: dict) -> dict[int, dict]:
    token = id_token(info)
    return {size: await _one(info, token, size) for size in SIZES}


def run(info: dict) -> list[dict]:
    raise_open_files(2 * max(SIZES) + 1024)
    rows = []
    for size, result in asyncio.run(_all(info)).items():
        baseline = summary(result["heartbeat"])
        rows.append(row(f"chunk sent -> last of {size:,} listeners received (baseline: speaker heartbeat round trip)",
                        summary(result["last"]), baseline) | {"missing": result["missing"]})
        rows.append(row(f"↳ chunk sent -> first of {size:,} listeners received", summary(result["first"]), baseline))
    return rows
