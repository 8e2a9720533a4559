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
from tests.support.mouth_to_ear import LISTENER_TAP, SPEAKER_TAP, pair, tone_of

from .conftest import MAX_LISTENERS

# docs/console.md's screenshots; a run refreshes them with UPDATE_SCREENSHOTS=1 (otherwise they go to a temporary
# folder, so a test run leaves the work tree as it found it).
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOTS = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else Path(tempfile.gettempdir()) / "console-screenshots"
CHUNK_BYTES = 3200  # 100 ms of 16 kHz 16-bit mono
LOADED = 60_000  # ms: a state change behind a speaker's queued audio on a loaded machine
SAMPLE_RATE = 16_000


def loud_pitches(chunks: list[bytes]) -> list[float]:
    """The pitch (zero crossings) of each chunk that is all tone: the bursts' silence and edges left out."""
    pitches = []
    for chunk in chunks:
        values = struct.unpack(f"<{len(chunk) // 2}h", chunk)
        # A 1 ms stretch without tone: a burst's edge (even a few ms of it would pull the pitch off by more than the
        # 4 % tone_of allows) or its silence. 1 ms holds at least 0.4 of a period of the lowest tone, never quiet.
        if min(max(abs(v) for v in values[i:i + 16]) for i in range(0, len(values), 16)) < 1000:
            continue
        crossings = sum(1 for a, b in itertools.pairwise(values) if (a < 0) != (b < 0))
        pitches.append(crossings / 2 / (len(values) / SAMPLE_RATE))
    return pitches


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


def hears_the_tone(speaker, listener) -> list[float]:
    """Waits until the listener page has played a burst the microphone sent (its onset and pitch found in the
    played PCM); returns the mouth-to-ear delays of those found."""
    delays = eventually(lambda: pair(speaker.evaluate("window.__mouth"), ear(listener)["onsets"]), LOADED / 1000,
                        "a burst the microphone sent, played by the listener page")
    # A pitch is taken of a whole 100 ms of tone: the buffer with the onset may hold only the burst's start, so
    # the pitch can come with the next buffer.
    pitches = eventually(lambda: ear(listener)["pitches"], LOADED / 1000, "a whole 100 ms of a burst played")
    assert all(tone_of(p) for p in pitches), pitches
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
    # At least once, in order, no gap (a connection replaced on a loaded machine sends its unconfirmed chunks again).
    assert list(dict.fromkeys(r["seq"] for r in records)) == list(range(len({r["seq"] for r in records})))
    assert {(r["sourceLanguage"], r["qualityTier"], r["partitionKey"]) for r in records} == {
        ("fr", "premium", session_id)}
    audio = [base64.b64decode(r["audio"]) for r in records]
    assert {len(chunk) for chunk in audio} == {CHUNK_BYTES}
    # The 48 kHz tones come back at their pitches only if the wire is 16 kHz, 16-bit, little-endian, mono.
    pitches = loud_pitches(audio)
    assert pitches and all(tone_of(p) for p in pitches), [round(p) for p in pitches]
    assert len({tone_of(p) for p in pitches}) >= 2, "more than one burst's pitch"

    # And a way to start again.
    speaker.click("#new-session")
    assert speaker.is_visible("#create-section") and not speaker.is_visible("#session-section")
    focused(speaker, "language")


def test_the_speaker_reconnects_without_losing_audio(console_stack, contexts):
    stack = console_stack
    speaker = contexts()
    session_id = create_and_go_live(speaker, stack)
    eventually(lambda: chunks_confirmed(speaker) >= 10, 20, "a second of audio confirmed")

    # The server drops the speaker's socket (as API Gateway does at its limits): the page reconnects.
    connections = stack.aws("dynamodb").query(
        TableName=stack["tableName"], KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":conn": {"S": "CONN#"}})["Items"]
    (speaker_connection,) = [c["connectionId"]["S"] for c in connections if c["role"]["S"] == "speaker"]
    # Connection IDs are base64: a "/" or "+" in one must be escaped in the path, as botocore does.
    dropped = httpx.delete(f"{stack['managementApiUrl']}/@connections/{quote(speaker_connection, safe='')}")
    assert dropped.status_code == 204
    see(speaker, "#reconnects", "1")
    see(speaker, "#connection", "connected")
    see(speaker, "#notice", "Live: the microphone is streaming.")
    after_drop = chunks_confirmed(speaker)
    eventually(lambda: chunks_confirmed(speaker) >= after_drop + 10, 20, "audio after the reconnection")
    speaker.click("#end")
    speaker.click("#end-yes")
    see(speaker, "#status", "Ended")

    confirmed = chunks_confirmed(speaker)
    records = eventually(lambda: (r := stack.audio_records(session_id)) and len({x["seq"] for x in r}) >= confirmed
                         and r, 15, "every confirmed chunk in Kinesis")
    # At least once: what the dropped socket had not confirmed may arrive twice, never out of order or missing.
    first_seen = list(dict.fromkeys(r["seq"] for r in records))
    assert first_seen == list(range(len(first_seen)))
    assert len(records) - len(first_seen) <= 20, "repeats are bounded by the confirmation interval"


def test_a_half_open_link_is_noticed_in_seconds_and_the_notice_says_offline(console_stack, contexts):
    stack = console_stack
    speaker = contexts()
    create_and_go_live(speaker, stack)
    eventually(lambda: chunks_confirmed(speaker) >= 5, 20, "audio confirmed")
    # No close reaches either side: the heartbeats go unanswered, and the page must notice by itself.
    speaker.context.set_offline(True)
    see(speaker, "#notice", "Offline: this device has no network. The audio is kept and sent once the connection "
                            "is back.", timeout=5_000)
    see(speaker, "#connection", "reconnecting", timeout=15_000)  # ackTimeout 8 s after a heartbeat, 1 s apart
    stuck = chunks_confirmed(speaker)
    speaker.context.set_offline(False)
    see(speaker, "#connection", "connected", timeout=30_000)
    see(speaker, "#notice", "Live: the microphone is streaming.")
    eventually(lambda: chunks_confirmed(speaker) >= stuck + 10, LOADED / 1000, "the kept audio and more confirmed")


def test_a_reload_gets_the_speaker_back_to_the_session(console_stack, contexts):
    stack = console_stack
    speaker, listener = contexts(), contexts()
    session_id = create_session(speaker, stack, access="public")
    go_live(speaker)
    listener.goto(f"{stack['consoleUrl']}listener.html?session={session_id}")
    see(listener, "#status", "Live")
    eventually(lambda: chunks_confirmed(speaker) >= 10, 20, "a second of audio confirmed")
    before = max(r["seq"] for r in stack.audio_records(session_id))

    speaker.reload()  # or a closed tab: the page forgets everything but what it kept for this
    see(listener, "#status", "Speaker disconnected")
    see(listener, "#notice", "The speaker disconnected. Stay here: the audio comes back when they reconnect.")
    sign_in(speaker, stack, "alice")
    see(speaker, "#session-id", session_id)
    see(speaker, "#notice", f"Your session {session_id} is still on: go live to carry on.")
    focused(speaker, "go-live")
    go_live(speaker)
    see(listener, "#status", "Live")
    eventually(lambda: chunks_confirmed(speaker) >= 10, 20, "audio after coming back")
    # Its chunks carry on the session's numbering: nothing the pipeline would take for a repeat.
    records = eventually(lambda: (r := stack.audio_records(session_id)) and max(x["seq"] for x in r) > before + 10
                         and r, 15, "the new audio in Kinesis")
    assert [r["seq"] for r in records if r["seq"] > before][:3] == [before + 1, before + 2, before + 3]

    speaker.click("#end")
    speaker.click("#end-yes")
    see(listener, "#status", "Ended")
    speaker.reload()
    sign_in(speaker, stack, "alice")
    page_shows_create = speaker.wait_for_selector("#create-section", state="visible")
    assert page_shows_create, "an ended session is not offered again"


def test_the_session_id_field_reads_what_phones_type_and_explains_a_bad_one(console_stack, contexts):
    stack = console_stack
    speaker, listener = contexts(), contexts()
    session_id = create_session(speaker, stack, access="public")
    listener.goto(stack["consoleUrl"] + "listener.html")

    listener.fill("#session-input", "ocean-lantern")
    listener.click("#join")
    see(listener, "#notice", "A session ID has three parts: two words and a three-digit number joined by hyphens, "
                             "like golden-eagle-427.")
    assert listener.get_attribute("#session-input", "aria-invalid") == "true"
    focused(listener, "session-input")
    listener.fill("#session-input", "ocean-lantern-61")
    listener.press("#session-input", "Enter")
    see(listener, "#notice", re.compile("^A session ID ends in three digits"))

    # As a phone types it: a capital first letter, a space after the autocomplete.
    words = session_id.split("-")
    listener.fill("#session-input", f" {words[0].capitalize()}-{words[1].capitalize()}-{words[2]} ")
    listener.click("#join")
    see(listener, "#status", "Waiting for the speaker")
    assert listener.input_value("#session-input") == session_id
    assert listener.get_attribute("#session-input", "aria-invalid") is None
    see(listener, "#session-id", session_id)


def test_leave_clears_the_page_and_no_audio_in_a_language_is_said(console_stack, contexts):
    stack = console_stack
    speaker, listener = contexts(), contexts()
    session_id = create_session(speaker, stack, access="public")
    go_live(speaker)
    listener.goto(f"{stack['consoleUrl']}listener.html?session={session_id}")
    # Names, not codes, in the picker.
    options = listener.eval_on_selector_all("#language option", "options => options.map(o => o.textContent)")
    assert options[0] == "The speaker's own (original)" and "German (de)" in options and "Japanese (ja)" in options
    see(listener, "#status", "Live")
    see(listener, "#latency", re.compile(r"^\d+ ms$"))

    # Nobody translates into German here: within seconds the page says so, instead of playing silence.
    listener.select_option("#language", "de")
    see(listener, "#hearing", "German (de)")
    see(listener, "#notice", "No audio is arriving in German (de): the speaker is live, but this session may not be "
                             "translated into it. Choose another language, or the original.", timeout=10_000)
    see(listener, "#latency", "-")
    see(speaker, "#listener-count", "1 (German 1)")
    listener.select_option("#language", "")
    see(listener, "#hearing", "The speaker's own language")
    see(listener, "#latency", re.compile(r"^\d+ ms$"))
    see(listener, "#notice", f"Listening to {session_id}.")

    listener.click("#leave")
    see(listener, "#notice", "You left the session.")
    focused(listener, "session-input")
    assert not listener.is_visible("#live-section")
    for fact in ("status", "listener-count", "hearing", "latency"):
        assert listener.inner_text(f"#{fact}") == "-", fact
    assert listener.inner_text("#connection") == "not connected"
    see(speaker, "#listener-count", "0")


def test_every_control_is_a_44_px_touch_target(console_stack, contexts):
    stack = console_stack
    speaker, listener = contexts(), contexts()
    create_session(speaker, stack)
    listener.goto(stack["consoleUrl"] + "listener.html")
    listener.click("#sign-in-summary")
    for page in (speaker, listener):
        small = page.evaluate("""() => [...document.querySelectorAll('button, input, select, summary')]
            .filter(e => e.offsetParent !== null)
            .map(e => ({id: e.id || e.tagName, box: e.getBoundingClientRect()}))
            .filter(({box}) => box.height < 44 || box.width < 44)
            .map(({id, box}) => `${id} ${Math.round(box.width)}x${Math.round(box.height)}`)""")
        assert small == [], page.url


def test_a_refused_join_is_explained(console_stack, browser):
    stack = console_stack
    anonymous, signed_in = browser.new_context(), browser.new_context()
    try:
        # Anonymous: the handshake's refusal has no readable reason, so the page lists the three.
        page = anonymous.new_page()
        page.goto(stack["consoleUrl"] + "listener.html?session=silent-owl-999")
        see(page, "#notice", "Session silent-owl-999 refused the join: it does not exist, has ended, or is "
                             "full, or it needs its speaker's listener link (with its key). Sign in to find out "
                             "which.")
        focused(page, "session-input")

        # Signed in: the page reads the session and says which.
        page = signed_in.new_page()
        page.goto(stack["consoleUrl"] + "listener.html")
        page.click("#sign-in-summary")
        sign_in(page, stack, "bob")
        see(page, "#sign-in-summary", f"Signed in as {stack.user('bob')['username']}")

        def join(session_id: str) -> None:
            page.fill("#session-input", session_id)
            page.click("#join")

        join("silent-owl-999")
        see(page, "#notice", "There is no session silent-owl-999: check the ID (sessions expire).")

        made = httpx.post(f"{stack.url}/sessions", headers=stack.auth("alice"), json={"sourceLanguage": "en"}).json()
        created = made["sessionId"]
        crowd = [anonymous.new_page() for _ in range(MAX_LISTENERS)]
        for n, other in enumerate(crowd, 1):
            other.goto(f"{stack['consoleUrl']}listener.html?session={created}&key={made['joinKey']}")
            see(other, "#listener-count", re.compile(rf"^{n}\b"))
        join(created)
        see(page, "#notice", f"Session {created} is full: it has {MAX_LISTENERS} listeners, the most it admits.")

        assert httpx.delete(f"{stack.url}/sessions/{created}", headers=stack.auth("alice")).status_code == 204
        see(crowd[0], "#status", "Ended")
        join(created)
        see(page, "#notice", f"Session {created} has ended.")
    finally:
        anonymous.close()
        signed_in.close()


def test_two_listeners_hear_the_tone_in_the_source_language_and_the_stand_in_translation(console_stack, contexts):
    """The stack's stand-in pipeline feeds the floor audio back as Spanish: not a translation, but the whole path."""
    stack = console_stack
    speaker = contexts(SPEAKER_TAP)
    original, spanish = contexts(LISTENER_TAP), contexts(LISTENER_TAP)
    session_id = create_session(speaker, stack, "en", access="public")
    go_live(speaker)
    original.goto(f"{stack['consoleUrl']}listener.html?session={session_id}")
    spanish.goto(f"{stack['consoleUrl']}listener.html?session={session_id}&lang=es")
    see(spanish, "#hearing", "Spanish (es)")
    for page in (original, spanish):
        see(page, "#status", "Live", LOADED)
    see(speaker, "#listener-count", "2 (English 1, Spanish 1)")
    see(speaker, "#announcer", re.compile(r"Listeners: 2 \(English 1, Spanish 1\)"))
    for page in (original, spanish):
        hears_the_tone(speaker, page)

    # The local gateway handles a connection's messages one at a time: on a loaded machine the speaker's audio
    # queues ahead of its controls, so they get a minute here (the states' own timing: tests/e2e).
    speaker.click("#pause")
    see(speaker, "#status", "Paused", LOADED)
    for page in (original, spanish):
        see(page, "#status", "Paused", LOADED)
    speaker.click("#resume")
    speaker.click("#mute")
    for page in (original, spanish):
        see(page, "#status", "Muted", LOADED)
    speaker.click("#mute")
    for page in (original, spanish):
        see(page, "#status", "Live", LOADED)

    speaker.close()  # the tab closes: the speaker is gone, the session is not
    for page in (original, spanish):
        see(page, "#status", "Speaker disconnected", LOADED)
    assert httpx.delete(f"{stack.url}/sessions/{session_id}", headers=stack.auth("alice")).status_code == 204
    for page in (original, spanish):
        see(page, "#status", "Ended", LOADED)
        see(page, "#notice", "The session has ended.")
