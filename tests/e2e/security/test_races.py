"""Races through the local stack.

1. 50 concurrent PATCH and DELETE requests on one session (3 rounds): no 5xx, only 200/204/409 SESSION_ENDED,
   and a consistent end state: status ended, version == 1 + successful PATCHes + 1 (only the DELETE that
   actually ended the session changes it; later DELETEs are idempotent 204s that write nothing).
2. A DELETE racing a speaker's audio stream. The audio path reads the session, then puts the record
   (audio.receive: check, then act), so the chunk in flight when the end commits may still be forwarded
   just after the DELETE answers. What must hold:
   - no chunk *received* after the DELETE answered is ever forwarded (receivedAt <= t_delete_done);
   - at most one chunk per speaker connection (the in-flight one; a connection's messages run one at a
     time) is forwarded after the DELETE answered;
   - the speaker is told (sessionEnded, or SESSION_ENDED errors) and closed.
3. 1,000 random listener joins and leaves, 20 at a time: a third stay, a third leave with a close frame, a third
   drop abruptly (TCP closed without a close frame). listenerCount and the connection records end at exactly the
   number still connected, then at 0 once those leave too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets.asyncio.client as ws_async
import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed

from .conftest import is_error_shape, new_session, suite, ws_url
from .tally import TALLY

SUITE = "security/races"


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_patches_and_deletes_end_consistently(api, stack, round_):
    session = new_session(api, stack)
    path = f"/sessions/{session['sessionId']}"
    rng = random.Random(round_)
    changes = [{"status": "paused"}, {"status": "active"}, {"qualityTier": "premium"}, {"qualityTier": "standard"},
               {"sourceLanguage": "fr"}, {"sourceLanguage": "de", "status": "paused"}]
    requests = [("PATCH", rng.choice(changes)) for _ in range(38)] + [("DELETE", None)] * 12
    rng.shuffle(requests)
    barrier = threading.Barrier(len(requests))
    auth = stack.auth()

    with httpx.Client(base_url=stack.url, timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        def send(request):
            method, body = request
            barrier.wait(30)
            r = client.request(method, path, headers=auth, json=body) if body else client.request(method, path,
                                                                                                     headers=auth)
            return method, r.status_code, (r.json() if r.content else None)

        with ThreadPoolExecutor(len(requests)) as pool:
            results = list(pool.map(send, requests))

    with suite(SUITE) as check:
        for method, status, body in results:
            ok = (method == "PATCH" and status == 200) or (method == "DELETE" and status == 204) or (
                status == 409 and is_error_shape(body) and body["error"]["code"] == "SESSION_ENDED")
            check(ok, f"{method} -> {status} {body}")
        patched = sum(1 for m, s, _ in results if m == "PATCH" and s == 200)
        deleted = sum(1 for m, s, _ in results if m == "DELETE" and s == 204)
        final = api.get(path, headers=auth).json()
        check(deleted == 12, f"{deleted} of 12 DELETEs answered 204")
        check(final["status"] == "ended", f"final status {final['status']}")
        check(final["version"] == 1 + patched + 1, f"version {final['version']} != 1 + {patched} PATCHes + 1 DELETE")
        # Every PATCH that succeeded saw a version no other write saw.
        versions = [b["version"] for m, s, b in results if m == "PATCH" and s == 200]
        check(len(versions) == len(set(versions)), f"two PATCHes answered the same version: {sorted(versions)}")
        # A PATCH may not succeed after the end. Seen once in 5 runs against moto (a PATCH answered the final
        # version): moto's conditional update is not atomic across its server threads, DynamoDB's is. Counted
        # apart so the emulator's race does not fail the suite; the counts above hold either way.
        late = [b for m, s, b in results if m == "PATCH" and s == 200 and (
            b["version"] >= final["version"] or b["status"] == "ended")]
        TALLY.check(SUITE + " anomalies (moto atomicity)", not late, f"PATCH answered at/after the end: {late[:2]}")


def test_a_delete_racing_audio_forwards_nothing_received_after_the_end(api, stack):
    session = new_session(api, stack)
    path = f"/sessions/{session['sessionId']}"
    chunk = base64.b64encode(bytes(range(256)) * 4).decode()
    sent, answers, stop = [], [], threading.Event()
    with ws_client.connect(ws_url(stack, sessionId=session["sessionId"], role="speaker", token=stack.token()),
                           open_timeout=15) as speaker:
        def stream_audio():
            seq = 0
            while not stop.is_set():
                try:
                    speaker.send(json.dumps({"action": "sendAudio", "seq": seq, "data": chunk}))
                except ConnectionClosed:
                    return
                sent.append((seq, int(time.time() * 1000)))
                seq += 1
                time.sleep(0.005)

        def read_answers():
            try:
                while True:
                    answers.append(json.loads(speaker.recv(timeout=30)))
            except (ConnectionClosed, TimeoutError):
                return

        threads = [threading.Thread(target=stream_audio, daemon=True), threading.Thread(target=read_answers,
                                                                                        daemon=True)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        deleted = api.delete(path, headers=stack.auth())
        t_done = int(time.time() * 1000)
        time.sleep(1.5)
        stop.set()
        threads[0].join(10)
        threads[1].join(20)
    time.sleep(1.0)  # let the last in-flight invocation finish before reading the stream

    records = stack.audio_records(session["sessionId"])
    final = api.get(path, headers=stack.auth()).json()
    with suite(SUITE) as check:
        check(deleted.status_code == 204, f"DELETE -> {deleted.status_code}")
        check(final["status"] == "ended", f"final {final['status']}")
        check(len(records) > 5, f"{len(sent)} sent, only {len(records)} chunks forwarded before the end (the race proves little)")
        check(len(sent) > len(records), f"every one of {len(sent)} chunks forwarded: the DELETE stopped nothing")
        late_received = [r for r in records if r["receivedAt"] > t_done]
        check(not late_received, f"{len(late_received)} chunks received after the DELETE answered were forwarded")
        late_forwarded = [r for r in records if r["forwardedAt"] > t_done]
        check(len(late_forwarded) <= 1, f"{len(late_forwarded)} chunks forwarded after the DELETE answered")
        check(all(r["receivedAt"] <= final["endedAt"] * 1000 + 1000 for r in records),
              "a chunk received over a second after endedAt was forwarded")
        seqs = [r["seq"] for r in records]
        check(seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "forwarded chunks out of order or duplicated")
        told = any(a.get("type") == "sessionEnded" or a.get("code") == "SESSION_ENDED" for a in answers)
        check(told, f"the speaker was never told the session ended: {answers[-3:]}")
        check(not any(a.get("code") in ("INTERNAL_ERROR", "SERVICE_UNAVAILABLE") for a in answers),
              f"speaker got server errors: {[a for a in answers if a.get('type') == 'error'][:3]}")


def _abort(ws) -> None:
    """Drops the TCP connection without a close frame (a phone losing signal)."""
    try:
        ws.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    ws.socket.close()


CHURN_JOINS = 1000
CHURN_AT_ONCE = 20


def _listener_state(api, stack, session_id: str) -> tuple[int, int]:
    """(listenerCount, listener connection records) of a session."""
    count = api.get(f"/sessions/{session_id}", headers=stack.auth()).json()["listenerCount"]
    records = sum(page["Count"] for page in stack.aws("dynamodb").get_paginator("query").paginate(
        TableName=stack["tableName"], KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
        FilterExpression="#role = :listener", ExpressionAttributeNames={"#role": "role"},
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":conn": {"S": "CONN#"},
                                   ":listener": {"S": "listener"}}))
    return count, records


def _settled_state(api, stack, session_id: str, expected: int, timeout: float = 90.0) -> tuple[int, int]:
    """The state once it reaches `expected` listeners, or whatever it is after `timeout` ($disconnects run
    in the background, so the count catches up a moment after the sockets close)."""
    deadline = time.monotonic() + timeout
    while True:
        state = _listener_state(api, stack, session_id)
        if state == (expected, expected) or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def test_random_listener_joins_and_leaves_keep_the_count_true(api, stack):
    session = new_session(api, stack)
    session_id = session["sessionId"]
    url = ws_url(stack, sessionId=session_id, role="listener", joinKey=session["joinKey"])
    rng = random.Random(20261126)
    fates = [rng.choice(("stay", "leave", "drop")) for _ in range(CHURN_JOINS)]
    refused: list[str] = []

    async def drain(ws) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:  # status broadcasts
                pass

    async def scenario() -> tuple[int, int, tuple[int, int], tuple[int, int]]:
        at_once = asyncio.Semaphore(CHURN_AT_ONCE)
        staying: list = []
        drains: list[asyncio.Task] = []

        async def join(fate: str) -> None:
            async with at_once:
                try:
                    ws = await ws_async.connect(url, open_timeout=60)
                except Exception as exc:  # noqa: BLE001 - every refusal is a finding, reported below
                    refused.append(f"{type(exc).__name__}: {str(exc)[:100]}")
                    return
                drains.append(asyncio.create_task(drain(ws)))
                await asyncio.sleep(rng.uniform(0, 0.05))
                if fate == "stay":
                    staying.append(ws)
                elif fate == "leave":
                    await ws.close()
                else:
                    ws.transport.abort()  # no close frame: the server notices the dead TCP connection

        await asyncio.gather(*(join(fate) for fate in fates))
        during = await asyncio.to_thread(_settled_state, api, stack, session_id, len(staying))
        for ws in staying:
            await ws.close()
        after = await asyncio.to_thread(_settled_state, api, stack, session_id, 0)
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        return len(staying), fates.count("drop"), during, after

    staying, dropped, during, after = asyncio.run(scenario())
    with suite(SUITE) as check:
        for n, failure in enumerate(refused + [None] * (CHURN_JOINS - len(refused))):
            check(failure is None, f"join {n}: {failure}")  # one case per join
        check(during == (staying, staying),
              f"{staying} listeners still connected ({dropped} dropped abruptly), but listenerCount and "
              f"records are {during}")
        check(after == (0, 0), f"all listeners gone, but listenerCount and records are {after}")

