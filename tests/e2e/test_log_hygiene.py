"""No token, password or audio payload reaches a function's log.

Marked to run last (`runs_last`, tests/conftest.py): the end-to-end modules share
one local stack, so this scans the logs every function wrote during the whole
run (HTTP, WebSocket, teardown, security tests). It also drives a short
scenario of its own first, so that run alone it still exercises every path that
handles a secret: a token in the query string and in a header, a forged token,
audio that is forwarded, refused, held while paused, and a teardown.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.e2e.conftest import LocalStackHandle, eventually

pytestmark = [pytest.mark.local_only("scans the local stack's log files"),
              pytest.mark.runs_last("scans the logs every earlier test wrote")]

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.")
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{201,}")
WAIT = 30.0


def ws_url(stack: LocalStackHandle, **params: str) -> str:
    return f"{stack['webSocketUrl']}?{httpx.QueryParams(params)}"


def receive(ws, kind: str) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("type") == kind:
            return message
    raise AssertionError(f"no {kind} message")



@pytest.fixture(scope="module")
def sent_audio(stack) -> list[str]:
    """Runs the scenario; returns the base64 audio it sent (each well over 200 characters)."""
    payloads = [base64.b64encode(os.urandom(900)).decode() for _ in range(3)]
    auth = stack.auth("alice")
    with httpx.Client(timeout=30) as client:
        session = client.post(f"{stack.url}/sessions", headers=auth, json={"sourceLanguage": "en"}).json()
        session_id = session["sessionId"]
        url = ws_url(stack, sessionId=session_id, role="speaker", token=stack.token("alice"))
        with connect(url, open_timeout=30, ping_interval=None) as speaker:
            speaker.send(json.dumps({"action": "sendAudio", "seq": 0, "data": payloads[0]}))
            # Refused: not base64 (one bad character at the end of a long run).
            speaker.send(json.dumps({"action": "sendAudio", "seq": 1, "data": payloads[1] + "!"}))
            assert receive(speaker, "error")["code"] == "INVALID_AUDIO"
            speaker.send(json.dumps({"action": "pause"}))
            receive(speaker, "status")
            speaker.send(json.dumps({"action": "sendAudio", "seq": 2, "data": payloads[2]}))  # held
            speaker.send(json.dumps({"action": "resume"}))  # forwards the held chunk
            receive(speaker, "status")
            # A listener with a forged token, and one with the token in a header.
            with pytest.raises(InvalidStatus):
                connect(ws_url(stack, sessionId=session_id, role="listener", token=stack.token("bob") + "x"),
                        open_timeout=30).close()
            with connect(ws_url(stack, sessionId=session_id, role="listener"), additional_headers={
                    "Authorization": f"Bearer {stack.token('bob', access=True)}"}, open_timeout=30) as listener:
                client.delete(f"{stack.url}/sessions/{session_id}", headers=auth).raise_for_status()
                receive(listener, "sessionEnded")
    execution = f"{session_id}-{session['createdAt']}"
    eventually(lambda: any(line.get("correlation_id") == execution and line.get("message") == "request"
                           for line in stack.log_lines("TeardownFinishFunction")), WAIT, "the teardown to finish")
    return payloads


def secrets_of(stack: LocalStackHandle, audio: list[str]) -> dict[str, str]:
    """Label -> secret: every token issued in this run, every password, the audio sent here."""
    secrets = {}
    for user, result in stack._tokens.items():
        for kind, value in result.items():
            if isinstance(value, str) and len(value) > 20:
                secrets[f"{user} {kind}"] = value
    for user in stack["users"]:
        secrets[f"{user['name']} password"] = user["password"]
    for index, payload in enumerate(audio):
        secrets[f"audio payload {index}"] = payload
        secrets[f"audio payload {index} (start)"] = payload[:64]
    return secrets


def test_the_scenario_was_logged(stack, sent_audio):
    outcomes = {line.get("outcome") for line in stack.log_lines("WsSendAudioFunction")
                if line.get("message") == "request"}
    # A refused frame is logged; a forwarded or held one only at DEBUG (the stack runs INFO, as on AWS).
    assert "INVALID_AUDIO" in outcomes and "ok" not in outcomes
    authorizer = [line for line in stack.log_lines("WsAuthorizerFunction") if line.get("message") == "request"]
    assert {"allowed", "unauthorized"} <= {line["outcome"] for line in authorizer}
    assert all(line.get("connectionId") for line in authorizer)


def test_no_function_log_holds_a_token_a_password_or_audio(stack, sent_audio):
    logs = sorted((stack.state_dir / "logs").glob("*.log"))
    assert len(logs) >= 10, logs
    secrets = secrets_of(stack, sent_audio)
    assert any(label.endswith("IdToken") for label in secrets) and any("password" in s for s in secrets)
    found = []
    scanned = 0
    for path in logs:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            scanned += 1
            where = f"{Path(path).name}:{number}"
            if JWT.search(line):
                found.append(f"{where}: a JWT")
            if LONG_BASE64.search(line):
                found.append(f"{where}: a base64 run over 200 characters")
            found += [f"{where}: {label}" for label, secret in secrets.items() if secret in line]
    assert scanned > 50
    assert not found, "\n".join(found[:50])  # where and what, never the secret itself
