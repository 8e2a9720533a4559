"""The CLI speaker: it streams a whole WAV in order and ends the session, or, with --keep, leaves it open and
says how to end it."""

from __future__ import annotations

import asyncio
import base64
import re

import pytest

from tests.e2e.client.conftest import run_cli
from tests.support.audio import write_tone

pytestmark = pytest.mark.local_only("the client's --local configuration reads the local stack's stack.json")


def test_cli_speaker_streams_the_whole_wav_in_order_and_ends_the_session(stack, stack_json, config, tmp_path):
    frames = write_tone(tmp_path / "tone.wav", seconds=1.5)  # 15 chunks of 100 ms
    result = run_cli(tmp_path, "speaker", "--file", str(tmp_path / "tone.wav"), "--language", "en",
                     "--local", str(stack_json))
    assert result.returncode == 0, result.stdout + result.stderr
    live = re.search(r"^Session (\S+) is live \(en, standard\)\.$", result.stdout, re.MULTILINE)
    assert live, result.stdout
    sid = live.group(1)
    # A link session (the default): the printed listener command carries its key.
    assert re.search(rf"broadcast-session listener {sid} --join-key [A-Za-z0-9_-]{{32}} --local "
                     rf"{re.escape(str(stack_json.resolve()))}", result.stdout), result.stdout
    assert f"Session {sid} ended." in result.stdout
    assert "Sent 15 chunk(s)." in result.stderr

    records = stack.audio_records(sid)
    assert [r["seq"] for r in records] == list(range(15))
    assert b"".join(base64.b64decode(r["audio"]) for r in records) == frames
    assert {(r["sourceLanguage"], r["qualityTier"]) for r in records} == {("en", "standard")}

    async def status() -> str:
        async with config.http_service(config.token_provider()) as http:
            return (await http.get_session(sid)).status

    assert asyncio.run(status()) == "ended"


def test_cli_speaker_keep_leaves_the_session_open(stack, stack_json, config, tmp_path):
    frames = write_tone(tmp_path / "short.wav", seconds=0.5)
    result = run_cli(tmp_path, "speaker", "--file", str(tmp_path / "short.wav"), "--language", "fr",
                     "--quality", "premium", "--keep", "--local", str(stack_json))
    assert result.returncode == 0, result.stdout + result.stderr
    sid = re.search(r"^Session (\S+) is live \(fr, premium\)\.$", result.stdout, re.MULTILINE).group(1)
    hint = f"Session {sid} is still open; end it with: broadcast-session delete {sid} --local {stack_json.resolve()}"
    assert hint in result.stdout
    assert f"Session {sid} ended." not in result.stdout

    records = stack.audio_records(sid)
    assert [r["seq"] for r in records] == list(range(5))
    assert b"".join(base64.b64decode(r["audio"]) for r in records) == frames

    async def get():
        async with config.http_service(config.token_provider()) as http:
            return await http.get_session(sid)

    session = asyncio.run(get())
    assert (session.status, session.source_language, session.quality_tier) == ("active", "fr", "premium")

    ended = run_cli(tmp_path, "delete", sid, "--local", str(stack_json))  # the command the hint gave
    assert ended.returncode == 0, ended.stderr
    assert ended.stdout.strip() == f"Session {sid} ended."
    assert asyncio.run(get()).status == "ended"
