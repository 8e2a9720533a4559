"""The broadcast-session CLI: WAV streaming, the speaker and listener commands, errors."""

from __future__ import annotations

import asyncio
import io
import json
import os
import wave

import httpx
import pytest
from broadcast_client import ClientConfig, ConnectionCallbacks
from broadcast_client.cli import Context, build_parser, main, run_listener, run_speaker, run_update, stream_wav

from tests.client.fakes import Clock, FakeGateway, FakeTimers, FakeTokens, Script, async_test, error_json, session_json

BASE = "https://abc123.execute-api.eu-west-1.amazonaws.com/dev"
SESSION = "golden-eagle-427"


def make_wav(path, seconds: float, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    frames = round(rate * seconds)
    pcm = (bytes(range(256)) * (frames * channels * width // 256 + 1))[:frames * channels * width]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return pcm


def context(gw_url: str | None, script: Script, clock: Clock | None = None) -> Context:
    config = ClientConfig(http_api_url=BASE, websocket_url=gw_url, region="eu-west-1", user_pool_client_id="c1",
                          cli_args=("--local", "/srv/app/.local/stack.json"))
    clock = clock or Clock(now=0.0)
    return Context(config, token_provider=FakeTokens("token-1"), http_options={"transport": script.transport},
                   live_options={"callbacks": ConnectionCallbacks(sleep=FakeTimers().sleep, random=lambda: 0.0)},
                   stdout=io.StringIO(), stderr=io.StringIO(),
                   clock=clock, sleep=clock.sleep)


# ------------------------------------------------------------------ streaming


@async_test
async def test_stream_wav_sends_100ms_chunks_in_real_time(tmp_path):
    pcm = make_wav(tmp_path / "talk.wav", 0.35)
    clock = Clock(now=0.0)
    sent: list[bytes] = []
    progress: list[tuple[float, float]] = []

    async def send(chunk: bytes) -> None:
        sent.append(chunk)
        clock.now += 0.02  # sending takes time; the pacing must absorb it

    chunks = await stream_wav(str(tmp_path / "talk.wav"), send, clock=clock, sleep=clock.sleep,
                              progress=lambda done, total: progress.append((done, total)))

    assert chunks == 4
    assert [len(c) for c in sent] == [3200, 3200, 3200, 1600]  # 1600 frames x 2 bytes, then the last 800
    assert b"".join(sent) == pcm
    assert clock.sleeps == pytest.approx([0.08, 0.08, 0.08, 0.03])  # chunk n leaves at n x 100 ms
    assert progress[-1] == pytest.approx((0.35, 0.35))


@async_test
async def test_stream_wav_chunks_stereo_frames(tmp_path):
    make_wav(tmp_path / "stereo.wav", 0.2, rate=48000, channels=2, width=2)
    sent: list[bytes] = []

    async def send(chunk: bytes) -> None:
        sent.append(chunk)

    clock = Clock(now=0.0)
    await stream_wav(str(tmp_path / "stereo.wav"), send, clock=clock, sleep=clock.sleep)

    assert [len(c) for c in sent] == [4800 * 4, 4800 * 4]


# -------------------------------------------------------------------- speaker


@pytest.mark.parametrize("keep", [False, True])
@async_test
async def test_speaker_creates_streams_and_ends_the_session(tmp_path, keep):
    pcm = make_wav(tmp_path / "talk.wav", 0.25)
    key = "the-key-of-the-link-0123456789ab"
    script = Script(httpx.Response(201, json=session_json(access="link", joinKey=key)), httpx.Response(204))
    async with FakeGateway() as gw:
        ctx = context(gw.url, script)
        argv = ["speaker", "--file", str(tmp_path / "talk.wav"), "--language", "en"] + (["--keep"] if keep else [])

        assert await run_speaker(ctx, build_parser().parse_args(argv)) == 0
        await gw.wait_for(lambda: len(gw.seqs()) == 3)

    out = ctx.stdout.getvalue()
    assert f"Session {SESSION} is live" in out
    # The listener link carries the session's key: anonymous listeners need it.
    assert f"broadcast-session listener {SESSION} --join-key {key} --local /srv/app/.local/stack.json" in out
    assert f"{gw.url}?sessionId={SESSION}&role=listener&joinKey={key}" in out
    assert gw.seqs() == [0, 1, 2] and b"".join(data for _, data in gw.audio()) == pcm
    assert json.loads(script.requests[0].content) == {"sourceLanguage": "en", "qualityTier": "standard"}
    if keep:
        assert script.calls() == ["POST /dev/sessions"]
        assert f"broadcast-session delete {SESSION} --local" in out
    else:
        assert script.calls() == ["POST /dev/sessions", f"DELETE /dev/sessions/{SESSION}"]
        assert f"Session {SESSION} ended." in out
    assert "Sent 3 chunk(s)." in ctx.stderr.getvalue()


@async_test
async def test_speaker_passes_the_partial_results_settings_to_the_new_session(tmp_path):
    make_wav(tmp_path / "talk.wav", 0.1)
    script = Script(httpx.Response(201, json=session_json()), httpx.Response(204))
    async with FakeGateway() as gw:
        ctx = context(gw.url, script)
        argv = ["speaker", "--file", str(tmp_path / "talk.wav"), "--language", "en", "--no-partial-results",
                "--min-stability", "0.9", "--max-buffer-timeout", "3.5"]
        assert await run_speaker(ctx, build_parser().parse_args(argv)) == 0

    assert json.loads(script.requests[0].content) == {
        "sourceLanguage": "en", "qualityTier": "standard", "partialResultsEnabled": False,
        "minStabilityThreshold": 0.9, "maxBufferTimeout": 3.5}


@async_test
async def test_interrupting_the_speaker_still_ends_the_session(tmp_path):
    make_wav(tmp_path / "talk.wav", 10.0)
    script = Script(httpx.Response(201, json=session_json()), httpx.Response(204))
    paced = asyncio.Event()

    async def stalled_pacing(_: float) -> None:
        paced.set()
        await asyncio.Event().wait()  # the file is mid-way when Ctrl-C arrives

    async with FakeGateway() as gw:
        ctx = context(gw.url, script)
        ctx.sleep = stalled_pacing
        speaker = asyncio.create_task(run_speaker(ctx, build_parser().parse_args(
            ["speaker", "--file", str(tmp_path / "talk.wav"), "--language", "en"])))
        await paced.wait()
        speaker.cancel()  # what asyncio.run does on Ctrl-C
        with pytest.raises(asyncio.CancelledError):
            await speaker

    assert script.calls() == ["POST /dev/sessions", f"DELETE /dev/sessions/{SESSION}"]
    assert f"Session {SESSION} ended." in ctx.stdout.getvalue()


@async_test
async def test_speaker_checks_the_file_before_creating_a_session(tmp_path):
    (tmp_path / "notes.txt").write_text("not audio")
    script = Script()
    ctx = context("ws://127.0.0.1:9/dev", script)

    for name, message in (("missing.wav", "no such file"), ("notes.txt", "not a WAV file")):
        args = build_parser().parse_args(["speaker", "--file", str(tmp_path / name), "--language", "en"])
        with pytest.raises(Exception, match=message):
            await run_speaker(ctx, args)
    assert script.requests == []


# ------------------------------------------------------------------- listener


@async_test
async def test_listener_prints_status_changes_until_the_session_ends():
    async with FakeGateway() as gw:
        ctx = context(gw.url, Script())
        listener = asyncio.create_task(run_listener(ctx, build_parser().parse_args(
            ["listener", SESSION, "--language", "es"])))
        await gw.wait_for(lambda: len(gw.connections) == 1)
        server = gw.connections[0].ws
        for status, count in (("active", 1), ("active", 1), ("active", 2), ("paused", 2)):
            await server.send(json.dumps({"type": "status", "sessionId": SESSION, "status": status,
                                          "listenerCount": count}))
        await server.send(json.dumps({"type": "sessionEnded", "sessionId": SESSION}))

        assert await listener == 0

    lines = ctx.stdout.getvalue().splitlines()
    assert lines[0] == f"Listening to session {SESSION} in es. Ctrl-C to leave."
    assert [line[10:] for line in lines[1:]] == ["active, 1 listener(s)", "active, 2 listener(s)",
                                                 "paused, 2 listener(s)", f"Session {SESSION} ended."]
    assert gw.handshakes[0]["targetLanguage"] == "es"


@async_test
async def test_an_anonymous_listener_joins_with_the_links_key_and_a_refusal_names_it():
    async with FakeGateway() as gw:
        ctx = context(gw.url, Script())
        ctx.token_provider = None  # no sign-in
        listener = asyncio.create_task(run_listener(ctx, build_parser().parse_args(
            ["listener", SESSION, "--join-key", "the-key-of-the-link-0123456789ab"])))
        await gw.wait_for(lambda: len(gw.connections) == 1)
        await gw.connections[0].ws.send(json.dumps({"type": "sessionEnded", "sessionId": SESSION}))
        assert await listener == 0
        assert gw.handshakes[0]["joinKey"] == "the-key-of-the-link-0123456789ab"
        assert "token" not in gw.handshakes[0]

        gw.refuse = lambda query: 403
        with pytest.raises(Exception, match="needs the key of its listener link"):
            await run_listener(ctx, build_parser().parse_args(["listener", SESSION]))


@async_test
async def test_a_public_speaker_session_prints_links_without_a_key(tmp_path):
    make_wav(tmp_path / "talk.wav", 0.1)
    script = Script(httpx.Response(201, json=session_json(access="public")), httpx.Response(204))
    async with FakeGateway() as gw:
        ctx = context(gw.url, script)
        argv = ["speaker", "--file", str(tmp_path / "talk.wav"), "--language", "en", "--access", "public"]
        assert await run_speaker(ctx, build_parser().parse_args(argv)) == 0
    out = ctx.stdout.getvalue()
    assert json.loads(script.requests[0].content)["access"] == "public"
    assert "--join-key" not in out and f"{gw.url}?sessionId={SESSION}&role=listener\n" in out


@async_test
async def test_listener_refused_by_an_ended_session_says_so():
    script = Script(httpx.Response(200, json=session_json(status="ended", endedAt=1_700_000_100)))
    async with FakeGateway() as gw:
        gw.refuse = lambda query: 403
        ctx = context(gw.url, script)
        with pytest.raises(Exception, match=f"Session {SESSION} has ended."):
            await run_listener(ctx, build_parser().parse_args(["listener", SESSION]))


@async_test
async def test_a_listener_refused_on_reconnection_because_the_session_ended_ends_cleanly():
    script = Script(httpx.Response(200, json=session_json(status="ended", endedAt=1_700_000_100)))
    async with FakeGateway() as gw:
        ctx = context(gw.url, script)
        listener = asyncio.create_task(run_listener(ctx, build_parser().parse_args(["listener", SESSION])))
        await gw.wait_for(lambda: len(gw.connections) == 1)
        gw.refuse = lambda query: 403
        gw.connections[0].ws.transport.abort()  # the socket drops as the session ends

        assert await listener == 0

    assert ctx.stdout.getvalue().splitlines()[-1].endswith(f"Session {SESSION} ended.")
    assert script.calls() == [f"GET /dev/sessions/{SESSION}"]


# ----------------------------------------------------------------- management


@async_test
async def test_update_sends_only_the_given_changes():
    script = Script(httpx.Response(200, json=session_json(status="paused", version=3)))
    ctx = context(None, script)

    await run_update(ctx, build_parser().parse_args(["update", SESSION, "--status", "paused", "--if-match", "2"]))

    assert json.loads(script.requests[0].content) == {"status": "paused"}
    assert script.requests[0].headers["If-Match"] == '"2"'
    assert json.loads(ctx.stdout.getvalue())["status"] == "paused"


def test_main_reports_errors_readably_with_exit_status_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no .local/stack.json here
    monkeypatch.delenv("BROADCAST_STACK", raising=False)

    assert main(["get", SESSION]) == 1
    assert "No stack chosen" in capsys.readouterr().err

    assert main(["get", SESSION, "--local", str(tmp_path / "gone.json")]) == 1
    assert "make dev" in capsys.readouterr().err

    assert main(["get", SESSION, "--stack", "x", "--local"]) == 1
    assert "either --local or --stack" in capsys.readouterr().err


def test_main_reports_api_errors(tmp_path, monkeypatch, capsys):
    """A stack.json pointing at a closed port: the error names the service, exit 1, no traceback."""
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps({"pid": os.getpid(), "httpApiUrl": "http://127.0.0.1:9/dev", "region": "eu-west-1",
                                 "userPoolClientId": "c1", "awsEndpointUrl": "http://127.0.0.1:9"}))
    monkeypatch.setenv("BROADCAST_USERNAME", "alice")
    monkeypatch.setenv("BROADCAST_PASSWORD", "secret-password")

    assert main(["delete", SESSION, "--local", str(stack)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Cognito" in err and "secret-password" not in err


def test_bad_command_lines_exit_2():
    with pytest.raises(SystemExit) as caught:
        main(["speaker", "--language", "en"])  # no --file
    assert caught.value.code == 2
    with pytest.raises(SystemExit):
        main(["speaker", "--file", "a.wav", "--language", "xx"])


def test_update_needs_a_change(capsys, tmp_path):
    ctx = context(None, Script())
    with pytest.raises(Exception, match="Nothing to change"):
        asyncio.run(run_update(ctx, build_parser().parse_args(["update", SESSION])))


def test_error_bodies_are_printed_with_their_request_id(tmp_path, monkeypatch):
    script = Script(httpx.Response(403, json=error_json("FORBIDDEN", "Only the speaker may change it.", "req-77")))
    ctx = context(None, script)
    from broadcast_client import Forbidden

    with pytest.raises(Forbidden, match=r"Only the speaker may change it\. \(HTTP 403 FORBIDDEN, request ID req-77\)"):
        asyncio.run(run_update(ctx, build_parser().parse_args(["update", SESSION, "--status", "ended"])))
