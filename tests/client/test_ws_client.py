"""WebSocketClient against an in-process websockets server on 127.0.0.1 (port 0)
standing in for API Gateway, with a fake clock for every timer."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest
from broadcast_client import (
    BufferFull,
    ConfigurationError,
    ConnectionCallbacks,
    ConnectionLimits,
    ConnectionLost,
    ConnectionTiming,
    PolicyViolation,
    RetryPolicy,
    SpeakerReplaced,
    StaticTokenProvider,
    StreamClosed,
    WebSocketClient,
)
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError
from websockets.protocol import State

from tests.client.fakes import Clock, FakeGateway, FakeTimers, FakeTokens, async_test, jwt

SESSION = "golden-eagle-427"


def client(gw: FakeGateway, timers: FakeTimers | None = None, *, role: str = "speaker", tokens=None,
           clock=None, connector=None, **options) -> WebSocketClient:
    """A client on the fake gateway, waiting on `timers`, with no jitter (and a test's clock or connector)."""
    timers = timers or FakeTimers()
    if role == "speaker" and tokens is None:
        tokens = FakeTokens("token-1")
    fakes = {name: fake for name, fake in (("clock", clock), ("connector", connector)) if fake}
    return WebSocketClient(gw.url, SESSION, role=role, token_provider=tokens, **options,
                           callbacks=ConnectionCallbacks(sleep=timers.sleep, random=lambda: 0.0, **fakes))


async def drop(gw: FakeGateway, how: str) -> None:
    conn = gw.connections[-1]
    if how == "abort":
        conn.ws.transport.abort()  # the network goes away: no close frame
    else:
        await conn.ws.close(code=int(how), reason="test")


# ----------------------------------------------------------------- streaming


@async_test
async def test_speaker_sends_base64_audio_with_increasing_seq():
    async with FakeGateway() as gw:
        async with client(gw) as live:
            seqs = [await live.send_audio(bytes([n]) * 100) for n in range(3)]
            await live.drain()
            await gw.wait_for(lambda: len(gw.seqs()) == 3)

        assert seqs == [range(1), range(1, 2), range(2, 3)]
        assert gw.handshakes == [{"sessionId": SESSION, "role": "speaker", "token": "token-1"}]
        assert gw.audio() == [(n, bytes([n]) * 100) for n in range(3)]
        assert gw.connections[0].messages[0] == {"action": "sendAudio", "seq": 0,
                                                 "data": "AAAA" * 33 + "AA=="}


@async_test
async def test_large_chunks_are_split_under_128kb_and_sent_in_32kb_frames():
    audio = bytes(range(256)) * 1200  # 307,200 bytes
    async with FakeGateway() as gw:
        async with client(gw) as live:
            seqs = await live.send_audio(audio)
            await live.drain()
            await gw.wait_for(lambda: len(gw.seqs()) == len(seqs))

        conn = gw.connections[0]
        assert seqs == range(4)
        assert gw.seqs() == [0, 1, 2, 3]
        assert b"".join(data for _, data in gw.audio()) == audio
        assert all(sum(frames) <= 128 * 1024 for frames in conn.frames)
        assert all(size <= 32 * 1024 for frames in conn.frames for size in frames)
        assert max(len(frames) for frames in conn.frames) > 1  # really fragmented


@async_test
async def test_pause_and_resume_keep_their_place_among_audio_and_status_comes_back():
    async with FakeGateway() as gw:
        async with client(gw) as live:
            await live.send_audio(b"before")
            await live.pause()
            await live.send_audio(b"while paused")
            await live.resume()
            await live.drain()
            messages = live.messages()
            statuses = [(await anext(messages))["status"], (await anext(messages))["status"]]

        assert gw.connections[0].actions() == ["sendAudio", "pause", "sendAudio", "resume"]
        assert statuses == ["paused", "active"]


@async_test
async def test_a_listener_joins_with_its_language_and_cannot_send_audio():
    async with FakeGateway() as gw:
        async with client(gw, role="listener", target_language="es") as live:
            with pytest.raises(RuntimeError):
                await live.send_audio(b"x")
            with pytest.raises(RuntimeError):
                await live.pause()

        assert gw.handshakes == [{"sessionId": SESSION, "role": "listener", "targetLanguage": "es"}]


@async_test
async def test_an_anonymous_listener_carries_the_join_key_on_every_connection():
    async with FakeGateway() as gw:
        async with client(gw, role="listener", join_key="the-key-of-the-link-0123456789ab") as live:
            await live.settle()
        assert gw.handshakes == [{"sessionId": SESSION, "role": "listener",
                                  "joinKey": "the-key-of-the-link-0123456789ab"}]


@async_test
async def test_too_much_waiting_audio_is_refused_not_dropped():
    async with FakeGateway() as gw, client(gw, limits=ConnectionLimits(max_buffered_bytes=400)) as live:
        await live.send_audio(b"x" * 150)  # ~240 bytes of JSON, queued
        with pytest.raises(BufferFull):
            await live.send_audio(b"y" * 150)
        assert (live.next_seq, live.buffered) == (1, 1)
        await live.drain()
        assert await live.send_audio(b"z" * 150) == range(1, 2)  # room again, seq unbroken


# ---------------------------------------------------------------- reconnection


@pytest.mark.parametrize("how", ["1011", "1001", "abort"])
@async_test
async def test_after_a_drop_it_reconnects_to_the_same_session_and_seq_continues(how):
    async with FakeGateway() as gw:
        async with client(gw) as live:
            for n in range(5):
                await live.send_audio(bytes([n]))
            await gw.wait_for(lambda: len(gw.seqs()) == 5)

            gw.hold = asyncio.Event()  # keep the reconnection waiting in its handshake
            await drop(gw, how)
            await gw.wait_for(lambda: len(gw.handshakes) == 2)
            for n in range(5, 10):
                await live.send_audio(bytes([n]))
            assert (live.connected, live.buffered) == (False, 5)  # held, in order
            gw.hold.set()
            await live.drain()
            await gw.wait_for(lambda: len(gw.seqs()) == 10)

        assert gw.audio() == [(n, bytes([n])) for n in range(10)]  # no gap, no duplicate, in order
        assert [c.audio()[0][0] for c in gw.connections] == [0, 5]
        assert [h["sessionId"] for h in gw.handshakes] == [SESSION, SESSION]
        assert live.connections == 2


@async_test
async def test_a_chunk_whose_send_failed_is_sent_again_first():
    opened = 0

    async def connector(url: str, **options):
        nonlocal opened
        ws = await ws_connect(url, **options)
        opened += 1
        if opened == 1:
            real_send = ws.send

            async def send(message, *args, **kwargs):
                text = message if isinstance(message, str) else "".join(message)
                if '"seq":3,' in text:  # the network dies during this send
                    ws.transport.abort()
                    raise ConnectionClosedError(None, None)
                await real_send(message, *args, **kwargs)

            ws.send = send
        return ws

    async with FakeGateway() as gw:
        async with client(gw, connector=connector) as live:
            for n in range(6):
                await live.send_audio(bytes([n]))
            await live.drain()
            await gw.wait_for(lambda: len(gw.seqs()) == 6)

        assert [seq for seq, _ in gw.connections[0].audio()] == [0, 1, 2]
        assert [seq for seq, _ in gw.connections[1].audio()] == [3, 4, 5]


@async_test
async def test_it_reconnects_before_the_connection_lifetime_limit_holding_audio_meanwhile():
    timers, clock = FakeTimers(), Clock()
    tokens = FakeTokens(jwt(exp=clock.now + 3600, tag="first"), jwt(exp=clock.now + 7200, tag="second"))
    async with FakeGateway() as gw:
        async with client(gw, timers, tokens=tokens, clock=clock,
                          timing=ConnectionTiming(max_connection_age=100.0)) as live:
            await live.send_audio(b"a")
            await gw.wait_for(lambda: len(gw.seqs()) == 1)
            await timers.wait_for_sleeper(100.0)

            gw.hold = asyncio.Event()
            clock.now += 3590  # the first token is about to expire too
            await timers.advance(100.0)
            await gw.wait_for(lambda: len(gw.handshakes) == 2)
            await gw.wait_for(lambda: gw.connections[0].ws.state is State.CLOSED)
            for chunk in (b"b", b"c", b"d"):
                await live.send_audio(chunk)
            assert live.buffered == 3
            gw.hold.set()
            await live.drain()
            await gw.wait_for(lambda: len(gw.seqs()) == 4)

        first, second = gw.connections
        assert first.ws.close_code == 1000  # closed by the client, cleanly
        assert gw.audio() == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]
        assert [seq for seq, _ in second.audio()] == [1, 2, 3]
        assert [h["token"] for h in gw.handshakes] == tokens.tokens  # reconnected with a fresh token


@async_test
async def test_reconnect_replaces_the_connection_on_request():
    async with FakeGateway() as gw:
        async with client(gw) as live:
            await live.reconnect()
            await live.send_audio(b"after")
            await live.drain()
            await gw.wait_for(lambda: len(gw.seqs()) == 1)

        assert live.connections == 2 and len(gw.handshakes) == 2
        assert gw.connections[1].audio() == [(0, b"after")]


@async_test
async def test_reconnection_gives_up_after_its_retries():
    timers = FakeTimers()
    async with FakeGateway() as gw:
        retry = ConnectionTiming(reconnect=RetryPolicy(max_retries=2, base_delay=1.0))
        async with client(gw, timers, timing=retry) as live:
            gw.refuse = lambda query: 503
            await drop(gw, "1011")
            with pytest.raises(ConnectionLost, match="3 attempt"):
                async for _ in live.messages():
                    pass

        assert len(gw.handshakes) == 1 + 3
        assert timers.requested.count(0.0) == 3  # a backoff wait (jitter pinned to 0) before each try


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("status", [401, 403])
@async_test
async def test_a_refused_handshake_is_a_policy_violation_and_is_not_retried(status):
    async with FakeGateway() as gw:
        gw.refuse = lambda query: status
        live = client(gw, tokens=StaticTokenProvider("token-1"), timing=ConnectionTiming(connect_retries=5))

        with pytest.raises(PolicyViolation) as caught:
            await live.connect()

        assert (caught.value.status, len(gw.handshakes)) == (status, 1)
        assert f"HTTP {status}" in str(caught.value) and "token-1" not in str(caught.value)


@async_test
async def test_a_401_handshake_is_retried_once_with_a_refreshed_token():
    async with FakeGateway() as gw:
        gw.refuse = lambda query: 401 if query["token"] == "expired" else None
        tokens = FakeTokens("expired", "fresh")
        async with client(gw, tokens=tokens) as live:
            assert live.connected

        assert [h["token"] for h in gw.handshakes] == ["expired", "fresh"]


@async_test
async def test_a_second_401_handshake_is_a_policy_violation():
    async with FakeGateway() as gw:
        gw.refuse = lambda query: 401
        tokens = FakeTokens("one", "two")

        with pytest.raises(PolicyViolation):
            await client(gw, tokens=tokens).connect()
        assert (len(gw.handshakes), tokens.refreshes) == (2, 1)


@async_test
async def test_a_refused_reconnection_stops_the_client_without_retrying():
    async with FakeGateway() as gw:
        async with client(gw) as live:
            gw.refuse = lambda query: 403  # e.g. the session ended while the socket was down
            await drop(gw, "abort")

            with pytest.raises(PolicyViolation) as caught:
                async for _ in live.messages():
                    pass
            with pytest.raises(PolicyViolation):
                await live.send_audio(b"x")

        assert caught.value.status == 403
        assert len(gw.handshakes) == 2


@async_test
async def test_a_1008_close_is_a_policy_violation_without_reconnection():
    async with FakeGateway() as gw:
        async with client(gw) as live:
            await gw.connections[0].ws.close(code=1008, reason="policy")

            with pytest.raises(PolicyViolation) as caught:
                async for _ in live.messages():
                    pass

        assert caught.value.close_code == 1008
        assert len(gw.handshakes) == 1


@async_test
async def test_an_unreachable_server_is_connection_lost():
    async with FakeGateway() as gw:
        url = gw.url
    live = WebSocketClient(url, SESSION, role="listener", timing=ConnectionTiming(connect_retries=1),
                           callbacks=ConnectionCallbacks(sleep=FakeTimers().sleep, random=lambda: 0.0))
    with pytest.raises(ConnectionLost, match="2 attempt"):
        await live.connect()


# ---------------------------------------------------------------- stopping


@async_test
async def test_session_ended_ends_the_messages_and_nothing_reconnects():
    async with FakeGateway() as gw:
        async with client(gw, role="listener") as live:
            server = gw.connections[0].ws
            await server.send(json.dumps({"type": "status", "sessionId": SESSION, "status": "active",
                                          "listenerCount": 3}))
            await server.send(json.dumps({"type": "sessionEnded", "sessionId": SESSION}))
            await server.close()

            received = [message async for message in live.messages()]

            assert [m["type"] for m in received] == ["status", "sessionEnded"]
            assert received[0]["listenerCount"] == 3
            assert live.session_ended and not live.connected
            with pytest.raises(StreamClosed):
                await live.reconnect()

        assert len(gw.handshakes) == 1


@async_test
async def test_frames_that_are_not_a_json_object_are_skipped_and_the_next_message_arrives():
    async with FakeGateway() as gw, client(gw, role="listener") as live:
        server = gw.connections[0].ws
        for frame in (b'{"type": "status"}', "not json", '["status"]', "42"):
            await server.send(frame)
        await server.send(json.dumps({"type": "sessionEnded", "sessionId": SESSION}))

        received = [message async for message in live.messages()]

        assert received == [{"type": "sessionEnded", "sessionId": SESSION}]


@async_test
async def test_a_replaced_speaker_stops_instead_of_taking_the_session_back():
    async with FakeGateway() as gw:
        async with client(gw) as live:
            server = gw.connections[0].ws
            await server.send(json.dumps({"type": "error", "code": "SPEAKER_REPLACED",
                                          "message": "Another connection of this speaker took over the session."}))
            await server.close()

            messages = live.messages()
            assert (await anext(messages))["code"] == "SPEAKER_REPLACED"
            with pytest.raises(SpeakerReplaced):
                await anext(messages)
            with pytest.raises(SpeakerReplaced):
                await live.send_audio(b"x")

        assert len(gw.handshakes) == 1


@async_test
async def test_close_ends_messages_and_closes_cleanly():
    async with FakeGateway() as gw:
        live = client(gw, role="listener")
        await live.connect()
        consumer = asyncio.create_task(anext(live.messages(), "ended"))
        await live.close()
        await live.close()  # idempotent

        assert await consumer == "ended"
        await gw.wait_for(lambda: gw.connections[0].ws.state is State.CLOSED)
        assert gw.connections[0].ws.close_code == 1000
        with pytest.raises(StreamClosed):
            await live.reconnect()


# ---------------------------------------------------------------- heartbeat


@async_test
async def test_heartbeats_are_sent_on_the_interval_and_acks_recorded():
    timers = FakeTimers()
    async with FakeGateway() as gw:
        async with client(gw, timers, role="listener", timing=ConnectionTiming(heartbeat_interval=30.0)) as live:
            conn = gw.connections[0]
            await timers.wait_for_sleeper(30.0)
            assert conn.actions() == []
            await timers.advance(30.0)
            await gw.wait_for(lambda: conn.actions() == ["heartbeat"])
            await timers.wait_for_sleeper(30.0)
            await timers.advance(30.0)
            await gw.wait_for(lambda: conn.actions() == ["heartbeat", "heartbeat"])

            # Messages arrive in order: once this one is read, the acks before it were too.
            await conn.ws.send(json.dumps({"type": "status", "status": "active", "listenerCount": 1}))
            await anext(live.messages())
            assert live.last_server_time == 1_700_000_000_000
        assert len(gw.handshakes) == 1


@async_test
async def test_unanswered_heartbeats_replace_a_dead_connection():
    timers = FakeTimers()
    async with FakeGateway() as gw:
        gw.answer_heartbeats = False
        async with client(gw, timers, role="listener", timing=ConnectionTiming(heartbeat_interval=30.0)):
            for beats in (1, 2):
                await timers.wait_for_sleeper(30.0)
                await timers.advance(30.0)
                await gw.wait_for(lambda beats=beats: gw.connections[0].actions() == ["heartbeat"] * beats)
            assert len(gw.handshakes) == 1
            await timers.wait_for_sleeper(30.0)
            await timers.advance(30.0)  # the second heartbeat went unanswered too
            await gw.wait_for(lambda: len(gw.connections) == 2)

        assert gw.connections[0].ws.state is State.CLOSED


def test_constructor_rejects_what_cannot_work():
    with pytest.raises(ConfigurationError, match="ws://"):
        WebSocketClient("https://example.com/dev", SESSION)
    with pytest.raises(ValueError, match="token_provider"):
        WebSocketClient("wss://example.com/dev", SESSION, role="speaker")
    with pytest.raises(ValueError):
        WebSocketClient("wss://example.com/dev", "", role="listener")


@async_test
async def test_settle_waits_until_the_server_answered_a_heartbeat_sent_after_the_audio():
    async with FakeGateway() as gw, client(gw) as live:
        await live.send_audio(b"last words")
        assert await live.settle(timeout=5) is True
        assert gw.connections[0].actions()[-2:] == ["sendAudio", "heartbeat"]
        gw.answer_heartbeats = False
        await live.send_audio(b"unanswered")
        assert await live.settle(timeout=0.3) is False


def test_the_options_come_in_three_groups():
    # Who connects, then the limits, the timing and the callbacks: each a small dataclass with its defaults.
    assert list(inspect.signature(WebSocketClient).parameters) == [
        "url", "session_id", "role", "token_provider", "target_language", "join_key", "first_seq",
        "limits", "timing", "callbacks"]
    assert ConnectionTiming().heartbeat_interval == 30.0 and ConnectionLimits().max_frame_bytes == 32 * 1024
    with pytest.raises(ValueError, match="too small for any audio"):
        ConnectionLimits(max_message_bytes=60)
