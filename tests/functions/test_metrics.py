"""The EMF metrics and the log lines each kind of event produces, read from
what the handlers print (Powertools writes EMF records and logs to stdout)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from session_core.platform import observability
from session_core.platform import settings as settings_module

from tests.support.emf import BASE
from tests.support.lambdas import Context, http_event, load_handler, sample_event, ws_event

ROOT = Path(__file__).resolve().parents[2]
SESSION_ID = re.compile(r"^[a-z]+-[a-z]+-\d{3}$")




@pytest.fixture(autouse=True)
def fresh_settings():
    settings_module.settings.cache_clear()
    yield
    settings_module.settings.cache_clear()


# --- scenario helpers -----------------------------------------------------------

ALICE = "alice-metrics-sub"


def create(invoke, sub=ALICE) -> dict:
    status, _, body = invoke("create_session", http_event("create_session", sub=sub, body={"sourceLanguage": "en"}))
    assert status == 201
    return body


def speaker(session) -> dict:
    return {"sessionId": session["sessionId"], "role": "speaker", "userId": session["speakerId"],
            "targetLanguage": "", "legacy": False}


def listener(session) -> dict:
    return {"sessionId": session["sessionId"], "role": "listener", "userId": "", "targetLanguage": "es",
            "legacy": False}


def link_query(session) -> dict:
    """An anonymous listener's connect query: the session's link carries its key."""
    return {"sessionId": session["sessionId"], "role": "listener", "joinKey": session.get("joinKey", "")}


def new_connection() -> str:
    return f"conn-{uuid.uuid4().hex[:10]}="


def send_audio(invoke, who, seq, payload: bytes = b"\x01\x02\x03\x04", connection_id="speaker-conn="):
    body = {"action": "sendAudio", "seq": seq, "data": base64.b64encode(payload).decode()}
    status, _, reply = invoke("ws_send_audio", ws_event("ws_send_audio", connection_id=connection_id, who=who,
                                                        body=body))
    assert status == 200
    return reply


def control(invoke, who, action):
    return invoke("ws_session_control", ws_event("ws_session_control", connection_id="speaker-conn=", who=who,
                                                 route=action, body={"action": action}))[2]


# --- sessions -------------------------------------------------------------------

def test_a_session_created_over_http_counts_session_created_for_the_http_api(invoke, emf):
    create(invoke)
    assert emf.total("SessionCreated", api="http") == 1
    assert emf.total("SessionCreated", api="websocket") == 0
    assert emf.points("LegacySessionCreation") == []
    (value, unit, _), = emf.points("SessionCreated")
    assert (value, unit) == (1, "Count")


def test_a_repeated_idempotent_create_is_counted_once(invoke, emf):
    headers = {"idempotency-key": f"key-{uuid.uuid4().hex}"}
    for _ in range(2):
        invoke("create_session", http_event("create_session", sub=ALICE, body={"sourceLanguage": "en"},
                                            headers=headers))
    assert emf.total("SessionCreated", api="http") == 1


def test_a_legacy_session_counts_for_the_websocket_api_and_as_a_legacy_creation(invoke, emf):
    who = {"sessionId": "", "role": "speaker", "userId": ALICE, "targetLanguage": "", "legacy": True}
    status, _, reply = invoke("ws_create_session", ws_event("ws_create_session", connection_id=new_connection(),
                                                            who=who, body={"action": "createSession",
                                                                           "sourceLanguage": "en"}))
    assert status == 200 and reply["type"] == "sessionCreated"
    assert emf.total("SessionCreated", api="websocket") == 1
    assert emf.total("SessionCreated", api="http") == 0
    assert emf.total("LegacySessionCreation") == 1


def test_every_old_protocol_message_counts_by_action_answered_or_refused(invoke, emf, monkeypatch):
    who = {"sessionId": "", "role": "speaker", "userId": ALICE, "targetLanguage": "", "legacy": True}
    connection = new_connection()

    def old(function, action, **body):
        event = ws_event(function, connection_id=connection, who=who, route=action, body={"action": action, **body})
        return invoke(function, event)[2]

    session_id = old("ws_create_session", "createSession", sourceLanguage="en", partialResults="true")["sessionId"]
    chunk = {"sessionId": session_id, "audioData": "AAAA"}
    assert old("ws_send_audio", "audioChunk", chunkIndex=0, **chunk) is None
    assert old("ws_send_audio", "audioChunk", chunkIndex=-1, **chunk)["code"] == "INVALID_SEQ"
    assert old("ws_session_control", "pauseBroadcast")["status"] == "paused"
    assert old("ws_session_control", "resumeBroadcast")["status"] == "active"
    send_audio(invoke, {**who, "sessionId": session_id}, 1, connection_id=connection)  # the new vocabulary: not counted
    monkeypatch.setenv("LEGACY_WEBSOCKET_SESSION_CREATION", "disabled")
    settings_module.settings.cache_clear()
    assert old("ws_session_control", "pauseBroadcast")["code"] == "LEGACY_CREATION_DISABLED"
    counts = {action: emf.total("LegacyProtocolMessage", action=action, dialect="native")
              for action in ("createSession", "audioChunk", "pauseBroadcast", "resumeBroadcast")}
    assert counts == {"createSession": 1, "audioChunk": 2, "pauseBroadcast": 2, "resumeBroadcast": 1}
    assert sum(value for value, _, _ in emf.points("LegacyProtocolMessage")) == 6
    assert emf.total("AudioRefused", reason="INVALID_SEQ") == 1  # the same metrics as sendAudio's


def test_ending_a_session_counts_session_ended_once(invoke, emf):
    session = create(invoke)
    emf.clear()
    for _ in range(2):
        invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))
    assert emf.total("SessionEnded") == 1


def test_a_patch_to_ended_counts_session_ended_and_other_patches_do_not(invoke, emf):
    session = create(invoke)
    emf.clear()
    invoke("update_session", http_event("update_session", session_id=session["sessionId"], sub=ALICE,
                                        body={"status": "paused"}))
    assert emf.total("SessionEnded") == 0
    invoke("update_session", http_event("update_session", session_id=session["sessionId"], sub=ALICE,
                                        body={"status": "ended"}))
    assert emf.total("SessionEnded") == 1


# --- listeners ------------------------------------------------------------------

def test_listener_joins_and_leaves_are_counted_and_speakers_are_not(invoke, emf):
    session = create(invoke)
    emf.clear()
    ids = [new_connection() for _ in range(2)]
    for connection in ids:
        assert invoke.raw("ws_connect", ws_event("ws_connect", connection_id=connection,
                                                 who=listener(session),
                                                 query=link_query(session)))["statusCode"] == 200
    invoke.raw("ws_connect", ws_event("ws_connect", connection_id=new_connection(), who=speaker(session)))
    assert emf.total("ListenerJoined") == 2
    invoke.raw("ws_disconnect", ws_event("ws_disconnect", connection_id=ids[0], who=listener(session),
                                                 query=link_query(session)))
    invoke.raw("ws_disconnect", ws_event("ws_disconnect", connection_id=ids[0], who=listener(session),
                                                 query=link_query(session)))  # repeated
    assert emf.total("ListenerLeft") == 1


def test_listeners_closed_by_the_teardown_count_as_leaving_once(invoke, emf, management_api):
    management_api.reset()
    session = create(invoke)
    ids = [new_connection() for _ in range(3)]
    for connection in ids:
        invoke.raw("ws_connect", ws_event("ws_connect", connection_id=connection, who=listener(session),
                                                 query=link_query(session)))
    emf.clear()
    batch = {"sessionId": session["sessionId"], "executionName": "test",
             "connections": [{"connectionId": {"S": c}, "role": {"S": "listener"}} for c in ids]}
    assert invoke.raw("teardown_worker", batch) == {"closed": 3}
    assert emf.total("ListenerLeft") == 3
    # Their own $disconnect finds nothing left to remove.
    invoke.raw("ws_disconnect", ws_event("ws_disconnect", connection_id=ids[0], who=listener(session),
                                                 query=link_query(session)))
    assert emf.total("ListenerLeft") == 3


# --- audio ----------------------------------------------------------------------

def test_forwarded_audio_counts_chunks_and_decoded_bytes(invoke, emf):
    session = create(invoke)
    emf.clear()
    send_audio(invoke, speaker(session), 0, b"\x00" * 100)
    send_audio(invoke, speaker(session), 1, b"\x00" * 7)
    assert emf.total("AudioChunksForwarded") == 2
    assert emf.total("AudioBytesForwarded") == 107
    assert {unit for _, unit, _ in emf.points("AudioBytesForwarded")} == {"Bytes"}
    assert emf.points("AudioRefused") == []


@pytest.mark.parametrize(("body", "reason"), [
    ({"action": "sendAudio", "seq": -1, "data": "AAAA"}, "INVALID_SEQ"),
    ({"action": "sendAudio", "seq": 1, "data": "not base64!"}, "INVALID_AUDIO"),
    ({"action": "sendAudio", "seq": 1, "data": base64.b64encode(b"\x00" * 5000).decode()}, "AUDIO_TOO_LARGE"),
    ("not json", "INVALID_MESSAGE"),
])
def test_refused_audio_counts_audio_refused_by_reason(invoke, emf, body, reason):
    session = create(invoke)
    emf.clear()
    event = ws_event("ws_send_audio", who=speaker(session), **({"body": body} if isinstance(body, dict)
                                                                else {"raw_body": body}))
    status, _, reply = invoke("ws_send_audio", event)
    assert status == 200 and reply["code"] == reason
    assert emf.total("AudioRefused", reason=reason) == 1
    assert emf.points("AudioChunksForwarded") == []


def test_audio_from_a_listener_or_to_an_ended_session_is_refused_with_its_reason(invoke, emf):
    session = create(invoke)
    send_audio(invoke, listener(session), 0, connection_id=new_connection())
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))
    send_audio(invoke, speaker(session), 1)
    assert emf.total("AudioRefused", reason="SPEAKER_ONLY") == 1
    assert emf.total("AudioRefused", reason="SESSION_ENDED") == 1


def test_paused_audio_is_counted_buffered_then_forwarded_or_dropped(invoke, emf, monkeypatch):
    session = create(invoke)
    who = speaker(session)
    control(invoke, who, "pause")
    clock = {"now": time.time()}
    monkeypatch.setattr(time, "time", lambda: clock["now"])
    emf.clear()
    send_audio(invoke, who, 1, b"\x00" * 10)   # 40 s old at the resume: dropped
    clock["now"] += 15
    send_audio(invoke, who, 2, b"\x00" * 20)   # 25 s old at the resume: forwarded
    assert emf.total("AudioChunksBuffered") == 2
    assert emf.points("AudioChunksForwarded") == []
    clock["now"] += 25
    assert control(invoke, who, "resume")["status"] == "active"
    assert emf.total("AudioDroppedWhilePaused") == 1
    assert emf.total("AudioChunksForwarded") == 1
    assert emf.total("AudioBytesForwarded") == 20


# --- authorization ----------------------------------------------------------------

def test_a_refused_token_counts_an_authorization_failure(invoke, emf):
    session = create(invoke)
    emf.clear()
    with pytest.raises(Exception, match="^Unauthorized$"):
        invoke.raw("ws_authorizer", ws_event("ws_authorizer", query={
            "sessionId": session["sessionId"], "role": "speaker", "token": "garbage"}))
    # By API: the authorizer's error-rate alarm subtracts the WebSocket ones from its Lambda errors.
    assert emf.total("AuthorizationFailure", api="websocket") == 1
    assert emf.total("AuthorizationFailure", api="http") == 0
    assert emf.points("ConnectionRefused") == []


def test_a_refused_connection_counts_connection_refused_by_reason(invoke, emf):
    policy = invoke.raw("ws_authorizer", ws_event("ws_authorizer", query={
        "sessionId": "Lonely-Heron", "role": "listener"}))
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert emf.total("ConnectionRefused", reason="INVALID_SESSION_ID") == 1
    assert emf.points("AuthorizationFailure") == []


def test_a_connection_refused_at_connect_counts_connection_refused_by_reason(invoke, emf, log_lines):
    # The authorizer does not read the session: $connect's condition refuses an ended one.
    session = create(invoke)
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))
    emf.clear()
    assert invoke.raw("ws_connect", ws_event("ws_connect", connection_id=new_connection(),
                                             who=listener(session),
                                                 query=link_query(session)))["statusCode"] == 403
    assert emf.total("ConnectionRefused", reason="SESSION_ENDED") == 1
    # Without a reason, for the WebSocket error-rate alarm: a refusal is an IntegrationError, not a failure.
    assert emf.total("HandshakeRefused") == 1
    assert emf.points("ListenerJoined") == []
    refusals = [line for line in log_lines() if line["message"] == "connection refused"]
    assert [line["reason"] for line in refusals] == ["SESSION_ENDED"]


def test_an_http_request_without_claims_counts_an_authorization_failure(invoke, emf):
    # Each route needs its caller (GET: to show the join key to the owner only).
    invoke("get_session", http_event("get_session", session_id="lonely-heron-321", sub=None))
    invoke("update_session", http_event("update_session", session_id="lonely-heron-321", sub=None,
                                        body={"status": "paused"}))
    assert emf.total("AuthorizationFailure", api="http") == 2
    assert emf.total("AuthorizationFailure", api="websocket") == 0


# --- teardown ---------------------------------------------------------------------

def test_finishing_a_teardown_records_session_and_teardown_durations(invoke, emf):
    session = create(invoke)
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))
    emf.clear()
    started = datetime.fromtimestamp(time.time() - 2.5, UTC).isoformat()
    event = sample_event("teardown_finish") | {"sessionId": session["sessionId"], "startedAt": started}
    invoke.raw("teardown_finish", event)
    (duration, unit, dims), = emf.points("SessionDuration")
    assert unit == "Seconds" and 0 <= duration <= 5 and dims == BASE
    (teardown, unit, dims), = emf.points("TeardownDuration")
    assert unit == "Milliseconds" and 2500 <= teardown < 10_000 and dims == BASE


# --- cold starts --------------------------------------------------------------------

def test_the_first_invocation_of_an_execution_environment_counts_a_cold_start(table, emf):
    handler = load_handler("ws_heartbeat")  # a fresh module: a fresh execution environment
    event = ws_event("ws_heartbeat")
    handler(event, Context(function_name="broadcast-WsHeartbeatFunction-abc"))
    assert emf.total("ColdStart", function="broadcast-WsHeartbeatFunction-abc") == 1
    handler(event, Context(function_name="broadcast-WsHeartbeatFunction-abc"))
    assert emf.total("ColdStart", function="broadcast-WsHeartbeatFunction-abc") == 1


# --- every metric -------------------------------------------------------------------

def test_every_metric_has_the_stage_and_only_low_cardinality_dimensions(invoke, emf, management_api):
    management_api.reset()
    session = create(invoke)
    connection = new_connection()
    invoke.raw("ws_connect", ws_event("ws_connect", connection_id=connection, who=listener(session),
                                                 query=link_query(session)))
    send_audio(invoke, speaker(session), 0)
    send_audio(invoke, speaker(session), -1)
    invoke.raw("ws_disconnect", ws_event("ws_disconnect", connection_id=connection, who=listener(session),
                                                 query=link_query(session)))
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))
    records = emf.read()
    assert len(records) >= 6
    allowed = {"stage", "service", "api", "reason", "function"}
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            (names,) = directive["Dimensions"]
            assert {"stage", "service"} <= set(names) <= allowed, names
            for name in names:
                assert not SESSION_ID.match(str(record[name])) and connection not in str(record[name])
            assert record["stage"] == "test"


# --- logs ---------------------------------------------------------------------------

def test_websocket_lines_carry_the_request_and_connection_ids_and_one_summary(invoke, log_lines):
    session = create(invoke)
    log_lines()
    event = ws_event("ws_send_audio", connection_id="conn-logs-1=", who=speaker(session),
                     body={"action": "sendAudio", "seq": 0, "data": "not base64!"})
    invoke("ws_send_audio", event)
    summaries = [line for line in log_lines() if line["message"] == "request"]
    assert len(summaries) == 1
    (summary,) = summaries
    assert summary["correlation_id"] == event["requestContext"]["requestId"]
    assert summary["connectionId"] == "conn-logs-1="
    assert summary["route"] == "sendAudio" and summary["outcome"] == "INVALID_AUDIO"


def test_an_audio_frame_forwarded_or_held_writes_no_info_line(invoke, log_lines):
    """Ten frames a second per speaker: an INFO line each would cost more than the frame's compute
    (docs/performance.md). Refused frames are still logged (above); a success only at DEBUG."""
    session = create(invoke)
    log_lines()
    for seq in range(3):
        invoke("ws_send_audio", ws_event("ws_send_audio", connection_id="conn-logs-2=", who=speaker(session),
                                         body={"action": "sendAudio", "seq": seq, "data": "AAAA"}))
    assert [line for line in log_lines() if line["level"] in ("INFO", "WARNING", "ERROR")] == []


def test_the_authorizer_logs_one_summary_with_the_connection_id_and_never_the_token(invoke, cognito, log_lines):
    session = create(invoke, sub="someone-else")
    token = cognito["tokens"]["alice"]["IdToken"]
    outcomes, written = [], []
    for query in ({"sessionId": session["sessionId"], "role": "admin", "token": token},   # no such role
                  {"sessionId": session["sessionId"], "role": "speaker", "token": token + "x"},  # forged
                  {"sessionId": session["sessionId"], "role": "listener", "token": token}):  # fine
        event = ws_event("ws_authorizer", query=query)
        with contextlib.suppress(Exception):  # the 401 is an exception by API Gateway's contract
            invoke.raw("ws_authorizer", event)
        written += log_lines()
        lines = [line for line in written if line.get("correlation_id") == event["requestContext"]["requestId"]]
        (summary,) = [line for line in lines if line["message"] == "request"]
        assert summary["connectionId"] == event["requestContext"]["connectionId"]
        outcomes.append((summary["outcome"], summary.get("reason")))
    assert outcomes == [("refused", "INVALID_ROLE"), ("unauthorized", "UNAUTHORIZED"), ("allowed", None)]
    text = json.dumps(written)
    assert token not in text and token[:40] not in text


def test_teardown_lines_are_correlated_by_the_execution_name(invoke, log_lines):
    session = create(invoke)
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))
    log_lines()
    name = f"{session['sessionId']}-{session['createdAt']}"
    invoke.raw("teardown_finish", sample_event("teardown_finish") | {"sessionId": session["sessionId"],
                                                                     "executionName": name})
    lines = log_lines()
    assert lines and all(line["correlation_id"] == name for line in lines)
    (summary,) = [line for line in lines if line["message"] == "request"]
    assert summary["step"] == "finish" and summary["sessionId"] == session["sessionId"]


def test_a_failure_that_escapes_a_handler_is_logged_as_a_structured_error(invoke, log_lines):
    with pytest.raises(KeyError):
        invoke.raw("teardown_finish", {"executionName": "broken-run"})  # no sessionId
    (error,) = [line for line in log_lines() if line["message"] == "invocation failed"]
    assert error["level"] == "ERROR" and error["errorType"] == "KeyError"
    assert error["correlation_id"] == "broken-run" and "exception" in error


def test_log_lines_are_scrubbed_of_tokens_and_audio(log_lines):
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    audio = base64.b64encode(bytes(range(256)) * 2).decode()
    observability.logger.info("oops", extra={"detail": f"Bearer {jwt}", "frame": {"data": audio}})
    (line,) = log_lines()
    text = json.dumps(line)
    assert jwt not in text and "eyJzdWIiOiJ4In0" not in text and audio[:60] not in text
    assert line["message"] == "oops" and "REDACTED" in line["detail"]
    assert observability.redact("short AAAA= and ids like golden-eagle-427 stay") == \
        "short AAAA= and ids like golden-eagle-427 stay"


# --- every function is observed ---------------------------------------------------

@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")))
def test_every_function_entry_point_is_observed(table, folder):
    # observed(): logger context with a correlation ID, Tracer, metrics flushing, cold starts.
    assert getattr(load_handler(folder), "observed", False) is True


def test_keys_one_invocation_appends_do_not_carry_over_to_the_next(invoke, log_lines):
    session = create(invoke)
    invoke("ws_heartbeat", ws_event("ws_heartbeat", connection_id="conn-carry="))
    invoke("get_session", http_event("get_session", session_id=session["sessionId"]))
    lines = log_lines()
    (ws_line,) = [line for line in lines if line.get("route") == "heartbeat"]
    (http_line,) = [line for line in lines if line.get("route") == "GET /sessions/{sessionId}"]
    assert ws_line["connectionId"] == "conn-carry=" and "connectionId" not in http_line
