"""The console in a real browser, as a speaker and listeners use it: a speaker goes live from Chromium's fake
microphone (440 Hz bursts), listeners in other browser contexts hear it (the bursts found again in the PCM their
pages play) and see every state; the audio reaches Kinesis as 16 kHz 16-bit mono PCM."""

from __future__ import annotations

import base64
import itertools
import os
import re
import struct
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import eventually
from tests.support.mouth_to_ear import LISTENER_TAP, SPEAKER_TAP, TONE_HZ, pair

from .conftest import MAX_LISTENERS

# The README's screenshots; a run refreshes them with UPDATE_SCREENSHOTS=1 (otherwise they go to a temporary
# folder, so a test run leaves the work tree as it found it).
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOTS = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else Path(tempfile.gettempdir()) / "console-screenshots"
CHUNK_BYTES = 3200  # 100 ms of 16 kHz 16-bit mono
SAMPLE_RATE = 16_000


def loud_pitch(chunks: list[bytes]) -> float:
    """The pitch (zero crossings) of the chunks that are all tone: the bursts' silence and edges left out."""
    crossings = samples = 0
    for chunk in chunks:
        values = struct.unpack(f"<{len(chunk) // 2}h", chunk)
        if min(max(abs(v) for v in values[i:i + 160]) for i in range(0, len(values), 160)) < 1000:
            continue  # a 10 ms stretch without tone
        crossings += sum(1 for a, b in itertools.pairwise(values) if (a < 0) != (b < 0))
        samples += len(values)
    assert samples, "no chunk is all tone"
    return crossings / 2 / (samples / SAMPLE_RATE)


def sign_in(page, stack, name: str) -> None:
    user = stack.user(name)
    page.fill("#username", user["username"])
    page.fill("#password", user["password"])
    page.click("#sign-in")


def see(page, selector: str, text: str | re.Pattern, timeout: float = 15_000) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_have_text(text, timeout=timeout)


def focused(page, element_id: str, timeout: float = 5_000) -> None:
    page.wait_for_function("id => document.activeElement && document.activeElement.id === id", arg=element_id,
                           timeout=timeout)


def create_session(page, stack, language: str = "en", tier: str = "standard", access: str = "link") -> str:
    """Signs alice in on the speaker page and creates a session; returns its ID."""
    page.goto(stack["consoleUrl"] + "speaker.html")
    sign_in(page, stack, "alice")
    page.wait_for_selector("#create-section", state="visible")
    focused(page, "language")
    page.select_option("#language", language)
    page.select_option("#tier", tier)
    page.select_option("#access", access)
    page.click("#create")
    page.wait_for_selector("#session-section", state="visible")
    focused(page, "go-live")
    session_id = page.inner_text("#session-id")
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", session_id)
    return session_id


def go_live(page) -> None:
    page.click("#go-live")
    see(page, "#connection", "connected")
    see(page, "#notice", "Live: the microphone is streaming.")
    focused(page, "pause")


def create_and_go_live(page, stack, language: str = "en", tier: str = "standard") -> str:
    session_id = create_session(page, stack, language, tier)
    go_live(page)
    return session_id


def chunks_confirmed(page) -> int:
    return int(page.inner_text("#chunks"))


def ear(page) -> dict:
    return page.evaluate("({onsets: window.__ear, pitches: window.__earPitches})")


def hears_the_tone(speaker, listener, bursts: int = 2) -> list[float]:
    """Waits until the listener page has played `bursts` onsets of the tone; returns their mouth-to-ear delays."""
    eventually(lambda: len(ear(listener)["onsets"]) >= bursts, 30, f"{bursts} bursts played by the listener page")
    pitches = ear(listener)["pitches"]
    assert pitches and all(abs(p - TONE_HZ) < TONE_HZ * 0.05 for p in pitches), pitches
    delays = pair(speaker.evaluate("window.__mouth"), ear(listener)["onsets"])
    assert delays, "the bursts played are the ones the microphone sent"
    return delays


@pytest.fixture
def contexts(browser):
    made = []

    def new(tap: str | None = None):
        context = browser.new_context()
        if tap:
            context.add_init_script(tap)
        made.append(context)
        return context.new_page()

    yield new
    for context in made:
        context.close()


def test_a_listener_hears_the_speaker_and_follows_every_state_until_the_end(console_stack, contexts):
    stack = console_stack
    speaker, listener = contexts(SPEAKER_TAP), contexts(LISTENER_TAP)
    session_id = create_session(speaker, stack, "fr", "premium")
    link = speaker.get_attribute("#listener-link", "href")
    # The link carries the session's join key: the anonymous listener below needs it.
    key = httpx.get(f"{stack.url}/sessions/{session_id}", headers=stack.auth("alice")).json()["joinKey"]
    assert link == f"{stack['consoleUrl']}listener.html?session={session_id}&key={key}"

    sockets = []
    listener.on("websocket", lambda socket: sockets.append(socket))
    listener.goto(link)  # joins from the link, anonymously, before the speaker is live
    see(listener, "#connection", "connected")
    see(listener, "#status", "Waiting for the speaker")
    see(listener, "#hearing", "The speaker's own language")
    focused(listener, "leave")

    go_live(speaker)
    see(speaker, "#listener-count", "1 (French 1)")  # told at connect, not after the next change
    see(listener, "#status", "Live")
    see(listener, "#announcer", re.compile("Status: Live"))
    hears_the_tone(speaker, listener)
    see(listener, "#latency", re.compile(r"^\d+ ms$"))
    assert len(sockets) == 1 and not sockets[0].is_closed()
    eventually(lambda: speaker.evaluate("document.getElementById('level').value") > 0.05, 10,
               "the level meter moves")
    eventually(lambda: chunks_confirmed(speaker) >= 10, 20, "a second of audio confirmed")

    SCREENSHOTS.mkdir(exist_ok=True)
    for page, name in ((speaker, "console-speaker.png"), (listener, "console-listener.png")):
        assert page.screenshot(path=str(SCREENSHOTS / name), full_page=True)[:8] == b"\x89PNG\r\n\x1a\n"

    speaker.click("#pause")
    focused(speaker, "resume")
    see(speaker, "#notice", "Paused: the microphone is not sent. Resume to carry on.")
    see(listener, "#status", "Paused")
    see(listener, "#notice", "The speaker paused the broadcast.")
    see(listener, "#announcer", "Status: Paused.")
    see(speaker, "#status", "Paused")
    speaker.click("#resume")
    focused(speaker, "pause")
    see(listener, "#status", "Live")
    see(speaker, "#notice", "Live: the microphone is streaming.")

    speaker.click("#mute")
    see(speaker, "#mute", "Unmute")
    assert speaker.get_attribute("#mute", "aria-pressed") == "true"
    see(speaker, "#notice", "Muted: the session stays live, but listeners hear nothing until you unmute.")
    see(listener, "#status", "Muted")
    see(listener, "#notice", "The speaker muted the microphone.")
    speaker.click("#mute")
    see(listener, "#status", "Live")
    sent_before = chunks_confirmed(speaker)
    eventually(lambda: chunks_confirmed(speaker) >= sent_before + 5, 15, "audio after the unmute")

    # End asks first; "Keep going" keeps it.
    speaker.click("#end")
    assert speaker.is_visible("#end-confirm")
    focused(speaker, "end-no")
    speaker.click("#end-no")
    assert not speaker.is_visible("#end-confirm")
    focused(speaker, "end")
    see(listener, "#status", "Live")
    speaker.click("#end")
    speaker.click("#end-yes")
    see(listener, "#status", "Ended")
    see(listener, "#notice", "The session has ended.")
    see(listener, "#connection", "closed (session ended)")
    eventually(sockets[0].is_closed, 10, "the listener's socket closes")
    see(speaker, "#status", "Ended")
    see(speaker, "#notice", "The session has ended.")
    focused(speaker, "new-session")

    sent = chunks_confirmed(speaker)
    records = eventually(lambda: (r := stack.audio_records(session_id)) and len(r) >= sent and r, 15,
                         "every chunk in Kinesis")
    assert [r["seq"] for r in records] == list(range(len(records))), "every chunk once, in order, no gap"
    assert {(r["sourceLanguage"], r["qualityTier"], r["partitionKey"]) for r in records} == {
        ("fr", "premium", session_id)}
    audio = [base64.b64decode(r["audio"]) for r in records]
    assert {len(chunk) for chunk in audio} == {CHUNK_BYTES}
    # The 48 kHz tone comes back at its pitch only if the wire is 16 kHz, 16-bit, little-endian, mono.
    pitch = loud_pitch(audio)
    assert abs(pitch - TONE_HZ) < TONE_HZ * 0.03, f"{pitch:.0f} Hz"

    # And a way to start again.
    speaker.click("#new-session")
    assert speaker.is_visible("#create-section") and not speaker.is_visible("#session-section")
    focused(speaker, "language")
