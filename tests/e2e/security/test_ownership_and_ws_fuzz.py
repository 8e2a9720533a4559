"""Ownership over HTTP and real sockets, and WebSocket frame fuzzing.

- bob may not PATCH/DELETE alice's session (403 FORBIDDEN), nor connect as its speaker (handshake 403);
- listeners can never sendAudio, pause or resume (SPEAKER_ONLY), whatever the frame looks like;
- random and malformed frames get error messages or a close as API Gateway would (1003 binary, 1009 > 128 KB),
  and a second, well-behaved connection keeps getting its heartbeats answered during and after.
"""

from __future__ import annotations

import base64
import json
import random
import string
import threading
import time

import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import new_session, suite, ws_url

OWN = "security/ownership"
FUZZ = "security/ws-fuzz"


def connect(stack, **query):
    return ws_client.connect(ws_url(stack, **query), open_timeout=15, max_size=None, close_timeout=5)


def recv_json(ws, timeout=10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws, predicate, timeout=10.0) -> dict:
    """The first message matching predicate (status broadcasts may arrive in between)."""
    deadline = time.monotonic() + timeout
    while True:
        message = recv_json(ws, max(0.1, deadline - time.monotonic()))
        if predicate(message):
            return message


def frames(text: str, characters: int = 16 * 1024) -> list[str]:
    """The message as several frames, each at most 32 KB (16 K characters of at most 2 UTF-8 bytes)."""
    return [text[i:i + characters] for i in range(0, len(text), characters)]


def heartbeat(ws, timeout=10.0) -> dict:
    ws.send(json.dumps({"action": "heartbeat"}))
    return recv_until(ws, lambda m: m.get("type") in ("heartbeatAck", "error"), timeout)


def test_bob_cannot_change_end_or_speak_for_alices_session(api, stack):
    session = new_session(api, stack, "alice")
    path = f"/sessions/{session['sessionId']}"
    with suite(OWN) as check:
        for access in (False, True):
            for change in ({"status": "paused"}, {"status": "ended"}, {"qualityTier": "premium"},
                           {"sourceLanguage": "fr"}):
                r = api.patch(path, headers=stack.auth("bob", access=access), json=change)
                check(r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN",
                      f"bob PATCH {change} access={access}: {r.status_code}")
            r = api.patch(path, headers={**stack.auth("bob", access=access), "If-Match": '"1"'},
                          json={"status": "paused"})
            check(r.status_code == 403, f"bob PATCH If-Match access={access}: {r.status_code}")
            r = api.delete(path, headers=stack.auth("bob", access=access))
            check(r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN",
                  f"bob DELETE access={access}: {r.status_code}")
            for via in ("query", "header"):
                try:
                    query = {"sessionId": session["sessionId"], "role": "speaker"}
                    token = stack.token("bob", access=access)
                    if via == "query":
                        cm = connect(stack, **query, token=token)
                    else:
                        cm = ws_client.connect(ws_url(stack, **query), open_timeout=15,
                                               additional_headers={"Authorization": f"Bearer {token}"})
                    with cm:
                        status = 101
                except InvalidStatus as refusal:
                    status = refusal.response.status_code
                check(status == 403, f"bob speaker via {via} access={access}: {status}")
        after = api.get(path, headers=stack.auth()).json()
        check(after == session, f"alice's session changed: {after}")


def test_listeners_can_never_act_as_speaker(api, stack):
    session = new_session(api, stack, "alice")
    audio = base64.b64encode(b"\x00" * 64).decode()
    frames = [
        {"action": "sendAudio", "seq": 1, "data": audio},
        {"action": "sendAudio", "seq": 0, "data": audio, "role": "speaker"},
        {"action": "sendAudio", "seq": 2, "data": audio, "sessionId": session["sessionId"]},
        {"action": "pause"}, {"action": "resume"},
        {"action": "pause", "role": "speaker", "token": stack.token("alice")},
        {"action": "resume", "sessionId": session["sessionId"]},
    ]
    with suite(OWN) as check:
        for token in (None, stack.token("bob"), stack.token("alice")):  # even the owner, joined as a listener
            # The anonymous one with the session's key, as its link carries it.
            key = session["joinKey"] if token is None else None
            with connect(stack, sessionId=session["sessionId"], role="listener", token=token, joinKey=key) as ws:
                for frame in frames:
                    ws.send(json.dumps(frame))
                    answer = recv_until(ws, lambda m: m.get("type") == "error")
                    check(answer.get("code") == "SPEAKER_ONLY",
                          f"listener(token={bool(token)}) {frame['action']}: {answer}")
        r = api.get(f"/sessions/{session['sessionId']}", headers=stack.auth()).json()
        check(r["status"] == "active" and r["version"] == 1, f"session changed by listeners: {r}")


def _random_frame(rng: random.Random) -> str:
    kind = rng.randrange(10)
    actions = ["sendAudio", "heartbeat", "pause", "resume", "createSession", "$connect", "$default",
               "$disconnect", "", "SENDAUDIO", "unknown", None, 1, [], {}]
    if kind == 0:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return json.dumps(rng.choice([None, 1, "x", [1, 2], True, 1.5]))
    if kind == 2:
        return '{"action": "sendAudio", "seq": ' + rng.choice(['"1"', "-1", "1.5", "null", "1e309", "[]"]) + \
            ', "data": "AAAA"}'
    if kind == 3:
        return json.dumps({"action": "sendAudio", "seq": rng.randrange(100),
                           "data": rng.choice(["", "!!!", "A", "AAA=A", None, 5, "=" * 8, "\u00e9" * 4])})
    if kind == 4:
        return json.dumps({"action": rng.choice(actions)})
    if kind == 5:
        return json.dumps({"action": "createSession", "sourceLanguage": rng.choice(["en", "xx", 1, None, "EN"]),
                           "qualityTier": rng.choice(["standard", "gold", None, 3])})
    if kind == 6:
        return '{"action": "heartbeat", "x": ' + "[" * 200 + "]" * 200 + "}"
    if kind == 7:
        return json.dumps({"action": "pause", "extra": "\x00\ud800".encode("utf-8", "surrogatepass").decode(
            "utf-8", "replace")})
    if kind == 8:
        return json.dumps({"action": {"nested": "sendAudio"}, "seq": 1, "data": "AAAA"})
    return '{"action": "heartbeat"' + rng.choice(["", ",", "}}", ', "action": "pause"}'])


class Watchdog:
    """A well-behaved listener whose heartbeat must stay answered while the fuzzing runs."""

    def __init__(self, stack, session_id: str, join_key: str) -> None:
        self._cm = connect(stack, sessionId=session_id, role="listener", joinKey=join_key)
        self.ws = self._cm.__enter__()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = heartbeat(self.ws, timeout=10)
                if answer.get("type") != "heartbeatAck":
                    self.failures.append(f"heartbeat answered {answer}")
            except Exception as exc:  # noqa: BLE001
                self.failures.append(f"heartbeat failed: {exc!r}")
                return
            self.latencies.append(time.monotonic() - started)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)
        self._cm.__exit__(None, None, None)


def test_malformed_and_random_frames_get_errors_and_never_hurt_other_connections(api, stack):
    session = new_session(api, stack, "alice")
    rng = random.Random(20261126)
    with suite(FUZZ) as check, Watchdog(stack, session["sessionId"], session["joinKey"]) as watchdog:
        with connect(stack, sessionId=session["sessionId"], role="speaker", token=stack.token()) as speaker:
            for i in range(150):
                frame = _random_frame(rng)
                try:
                    value = json.loads(frame)
                    action = value.get("action") if isinstance(value, dict) else None
                except ValueError:
                    action = None
                # Each frame is answered by an error, a reply, or nothing (a valid sendAudio / pause / resume);
                # a heartbeat right after proves the connection is alive and its answers in order.
                speaker.send(frame)
                speaker.send(json.dumps({"action": "heartbeat"}))
                want_acks, acks = (2 if action == "heartbeat" else 1), 0
                while acks < want_acks:
                    answer = recv_json(speaker)
                    if answer.get("type") == "heartbeatAck":
                        acks += 1
                    elif answer.get("type") == "error":
                        check(set(answer) >= {"code", "message", "requestId"} and answer["code"] != "INTERNAL_ERROR"
                              and "Traceback" not in json.dumps(answer), f"frame {i} {frame[:60]!r}: {answer}")
                    else:
                        check(answer.get("type") in ("status", "sessionCreated"), f"frame {i}: odd answer {answer}")
                check(True, f"frame {i} then heartbeat")

            # Unknown actions: exactly one UNKNOWN_ACTION error each.
            for action in ("unknownAction", "deleteSession", "$default", "admin", "SENDAUDIO"):
                speaker.send(json.dumps({"action": action}))
                answer = recv_until(speaker, lambda m: m.get("type") == "error")
                check(answer.get("code") == "UNKNOWN_ACTION", f"unknown action {action}: {answer}")

            # Not JSON / not an object.
            for frame in ("{not json", "[]", '"sendAudio"', "null", "", " "):
                if not frame.strip():
                    continue
                speaker.send(frame)
                answer = recv_until(speaker, lambda m: m.get("type") == "error")
                check(answer.get("code") in ("INVALID_MESSAGE", "UNKNOWN_ACTION"), f"frame {frame!r}: {answer}")

            # Just under 128 KB, in frames of at most 32 KB (API Gateway's): delivered and answered (valid
            # base64 of ~96 KB, over MaxAudioBytes: AUDIO_TOO_LARGE), never a close.
            big = json.dumps({"action": "sendAudio", "seq": 1, "data": "A" * (128 * 1024 - 200)})
            assert len(big.encode()) < 128 * 1024
            speaker.send(frames(big))
            answer = recv_until(speaker, lambda m: m.get("type") == "error", timeout=20)
            check(answer.get("code") == "AUDIO_TOO_LARGE", f"127 KB sendAudio: {answer}")
            check(heartbeat(speaker).get("type") == "heartbeatAck", "heartbeat after a 127 KB sendAudio")
            huge_string = json.dumps({"action": "heartbeat", "pad": "\u00e9" * (60 * 1024)}, ensure_ascii=False)
            assert len(huge_string.encode()) < 128 * 1024
            speaker.send(frames(huge_string))
            check(recv_until(speaker, lambda m: m.get("type") == "heartbeatAck").get("type") == "heartbeatAck",
                  "127 KB heartbeat")

            # A flood of 200 messages, as fast as the socket takes them: every heartbeat answered, in order.
            for n in range(200):
                speaker.send(json.dumps({"action": "heartbeat", "n": n}) if n % 2 else "{flood")
            acks = errors = 0
            deadline = time.monotonic() + 60
            while acks + errors < 200 and time.monotonic() < deadline:
                message = recv_json(speaker, timeout=30)
                acks += message.get("type") == "heartbeatAck"
                errors += message.get("type") == "error" and message.get("code") == "INVALID_MESSAGE"
            check((acks, errors) == (100, 100), f"flood: {acks} acks, {errors} errors of 200")

        # Over 128 KB: closed with 1009 (message too big), as API Gateway does.
        with connect(stack, sessionId=session["sessionId"], role="speaker", token=stack.token()) as speaker:
            speaker.send(json.dumps({"action": "heartbeat", "pad": "x" * (128 * 1024 + 10)}))
            try:
                speaker.recv(timeout=10)
                code = None
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            check(code == 1009, f"> 128 KB: close code {code}")

        # Binary frames: closed with 1003.
        with connect(stack, sessionId=session["sessionId"], role="speaker", token=stack.token()) as speaker:
            speaker.send(b"\x00\x01binary")
            try:
                speaker.recv(timeout=10)
                code = None
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            check(code == 1003, f"binary: close code {code}")

        time.sleep(1.0)  # the watchdog keeps going after the abuse
        check(not watchdog.failures, f"watchdog: {watchdog.failures[:3]}")
        check(len(watchdog.latencies) >= 5, f"watchdog got only {len(watchdog.latencies)} heartbeats")
        check(max(watchdog.latencies, default=0) < 5.0, f"watchdog heartbeat took {max(watchdog.latencies):.2f}s")
    with connect(stack, sessionId=session["sessionId"], role="listener", joinKey=session["joinKey"]) as after:
        assert heartbeat(after).get("type") == "heartbeatAck"
    final = api.get(f"/sessions/{session['sessionId']}", headers=stack.auth()).json()
    assert final["status"] in ("active", "paused")
