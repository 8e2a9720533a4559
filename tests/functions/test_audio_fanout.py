"""The audio streams' consumer (AudioFanoutFunction): floor and translated chunks to exactly the listeners of their
language, in order, in each dialect's shape; malformed records skipped and counted; gone listeners dropped; one
(session, language)'s failure reported by its first record."""

import base64
import copy
import json
import time
import uuid

import boto3
import pytest

from tests.functions.conftest import TABLE, TRANSLATED_STREAM_ARN
from tests.support.lambdas import http_event, sample_event

FLOOR_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/audio-test"


@pytest.fixture
def session_id(invoke, cognito):
    from jwt import decode

    sub = decode(cognito["tokens"]["alice"]["IdToken"], options={"verify_signature": False})["sub"]
    status, _, body = invoke("create_session", http_event("create_session", sub=sub, body={"sourceLanguage": "en"}))
    assert status == 201
    return body["sessionId"]


def put_listener(session_id: str, language: str, *, dialect: str = "native", connected_at: int | None = None,
                 counted: bool = False) -> str:
    connection_id = f"conn-{uuid.uuid4().hex[:10]}="
    ddb = boto3.client("dynamodb")
    ddb.put_item(TableName=TABLE, Item={
        "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"CONN#{connection_id}"},
        "connectionId": {"S": connection_id}, "sessionId": {"S": session_id}, "role": {"S": "listener"},
        "userId": {"S": ""}, "targetLanguage": {"S": language}, "dialect": {"S": dialect},
        # A hybrid listener is sent referenced chunks (test_referenced_audio.py), keyed apart in the index.
        "listening": {"S": f"{session_id}#{language}{'#referenced' if dialect == 'hybrid' else ''}"},
        "connectedAt": {"N": str(connected_at or int(time.time()) - 3600)},
        "expiresAt": {"N": str(int(time.time()) + 7800)}})
    if counted:
        ddb.update_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}},
                        UpdateExpression="ADD listenerCount :one, #l :one",
                        ExpressionAttributeNames={"#l": f"listeners_{language}"},
                        ExpressionAttributeValues={":one": {"N": "1"}})
    return connection_id


def kinesis_record(payload, *, sequence: str, translated: bool) -> dict:
    record = copy.deepcopy(sample_event("audio_fanout")["Records"][1 if translated else 0])
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    record["kinesis"]["data"] = base64.b64encode(data).decode()
    record["kinesis"]["sequenceNumber"] = sequence
    record["eventSourceARN"] = TRANSLATED_STREAM_ARN if translated else FLOOR_ARN
    return record


def floor(session_id: str, seq: int, pcm: bytes, sequence: str) -> dict:
    return kinesis_record({"sessionId": session_id, "seq": seq, "receivedAt": 1700000000000 + seq,
                           "sourceLanguage": "en", "audio": base64.b64encode(pcm).decode()},
                          sequence=sequence, translated=False)


def translated(session_id: str, language: str, sequence_number: int, pcm: bytes, sequence: str, **more) -> dict:
    return kinesis_record({"sessionId": session_id, "language": language, "sequenceNumber": sequence_number,
                           "audioData": base64.b64encode(pcm).decode(), **more}, sequence=sequence, translated=True)


def audio_of(management_api, connection_id: str) -> list[tuple[int, bytes]]:
    return [(m["sequenceNumber"], base64.b64decode(m["audioData"])) for m in management_api.posts[connection_id]
            if m["type"] in ("audio", "audioData")]


def test_the_sample_event_is_delivered(invoke, management_api):
    management_api.reset()
    assert invoke.raw("audio_fanout", sample_event("audio_fanout")) == {"batchItemFailures": []}


def test_floor_audio_goes_to_the_source_language_and_the_original_listeners_in_order(invoke, management_api,
                                                                                     session_id):
    management_api.reset()
    english, original = put_listener(session_id, "en"), put_listener(session_id, "")
    spanish = put_listener(session_id, "es")
    result = invoke.raw("audio_fanout", {"Records": [floor(session_id, s, f"pcm-{s}".encode(), str(100 + s))
                                                     for s in range(4)]})
    assert result == {"batchItemFailures": []}
    # The batch's four chunks reach each listener as one message (one metering increment): the audio in
    # order, numbered by the last chunk, timed by the first.
    for listener in (english, original):
        assert audio_of(management_api, listener) == [(3, b"pcm-0pcm-1pcm-2pcm-3")]
        message = management_api.posts[listener][0]
        assert message == {"type": "audio", "sessionId": session_id, "language": "en", "sequenceNumber": 3,
                           "audioData": message["audioData"], "format": "pcm", "sampleRate": 16000, "channels": 1,
                           "timestamp": 1700000000000, "chunks": 4}
    assert management_api.posts[spanish] == []


def test_one_chunk_is_one_message_and_a_backlog_is_merged_within_one_32_kb_increment(invoke, management_api,
                                                                                     session_id):
    management_api.reset()
    listener = put_listener(session_id, "en")
    invoke.raw("audio_fanout", {"Records": [floor(session_id, 0, b"a" * 3200, "1")]})
    (alone,) = management_api.posts[listener]
    assert alone["sequenceNumber"] == 0 and "chunks" not in alone
    management_api.reset()
    chunks = [bytes([s]) * 3200 for s in range(10)]  # 100 ms each
    invoke.raw("audio_fanout", {"Records": [floor(session_id, s, chunk, str(10 + s)) for s, chunk in enumerate(chunks)]})
    sent = management_api.posts[listener]
    assert [(m["sequenceNumber"], m.get("chunks")) for m in sent] == [(6, 7), (9, 3)]
    assert b"".join(base64.b64decode(m["audioData"]) for m in sent) == b"".join(chunks)
    assert all(len(json.dumps(m)) <= 32 * 1024 for m in sent)


def test_translated_audio_goes_to_exactly_its_language_in_each_dialects_shape(invoke, management_api, session_id):
    management_api.reset()
    native, old = put_listener(session_id, "es"), put_listener(session_id, "es", dialect="old")
    hybrid, french = put_listener(session_id, "es", dialect="hybrid"), put_listener(session_id, "fr")
    english = put_listener(session_id, "en")
    invoke.raw("audio_fanout", {"Records": [
        translated(session_id, "es", 0, b"es-0", "1", transcript="hola", duration=100, timestamp=5),
        translated(session_id, "es", 1, b"es-1", "2")]})
    for listener in (native, old):
        assert audio_of(management_api, listener) == [(1, b"es-0es-1")]
    assert management_api.posts[native][0]["transcript"] == "hola"
    # The hybrid listener client plays referenced chunks: the inline fan-out does not even read it.
    assert management_api.posts[hybrid] == []
    assert {k: management_api.posts[old][0][k] for k in ("type", "targetLanguage", "timestamp")} == {
        "type": "audioData", "targetLanguage": "es", "timestamp": 5}
    assert management_api.posts[french] == [] and management_api.posts[english] == []


@pytest.mark.parametrize("payload, reason", [
    (b"not json", "NOT_JSON"),
    (b"[1]", "NOT_AN_OBJECT"),
    ({"sessionId": "Robert'); DROP", "language": "es", "sequenceNumber": 0, "audioData": "AAAA"}, "SESSION_ID"),
    ({"language": "xx", "sequenceNumber": 0, "audioData": "AAAA"}, "LANGUAGE"),
    ({"language": "es", "sequenceNumber": "1", "audioData": "AAAA"}, "SEQUENCE_NUMBER"),
    ({"language": "es", "sequenceNumber": True, "audioData": "AAAA"}, "SEQUENCE_NUMBER"),
    ({"language": "es", "sequenceNumber": 0, "audioData": "not base64!"}, "AUDIO_DATA"),
    ({"language": "es", "sequenceNumber": 0}, "AUDIO_DATA"),
    ({"language": "es", "sequenceNumber": 0, "audioData": "AAAA", "sampleRate": 44100}, "FORMAT"),
    ({"language": "es", "sequenceNumber": 0, "audioData": "AAAA", "timestamp": "now"}, "TIMESTAMP"),
    ({"language": "es", "sequenceNumber": 0, "audioData": "AAAA", "transcript": 7}, "TRANSCRIPT"),
])
def test_a_malformed_translated_record_is_skipped_counted_and_logged_by_reason(invoke, management_api, session_id,
                                                                               log_lines, capsys, payload, reason):
    management_api.reset()
    listener = put_listener(session_id, "es")
    if isinstance(payload, dict):
        payload = {"sessionId": session_id, **payload}
    log_lines()
    capsys.readouterr()
    result = invoke.raw("audio_fanout", {"Records": [
        kinesis_record(payload, sequence="1", translated=True), translated(session_id, "es", 5, b"after", "2")]})
    assert result == {"batchItemFailures": []}  # never retried: it would fail forever
    assert audio_of(management_api, listener) == [(5, b"after")]
    lines = log_lines()
    skipped = [line for line in lines if line.get("message") == "audio record skipped"]
    assert [line["reason"] for line in skipped] == [reason]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [m["AudioRecordsMalformed"] for m in metrics if "AudioRecordsMalformed" in m] == [[1.0]]
    assert "DROP" not in json.dumps(lines)  # the content is never echoed


def test_a_gone_listener_is_dropped_and_counted_off_one_still_connecting_is_kept(invoke, management_api, session_id):
    from session_core.data import connections

    management_api.reset()
    live = put_listener(session_id, "es", counted=True)
    gone = put_listener(session_id, "es", counted=True)
    connecting = put_listener(session_id, "es", connected_at=int(time.time()), counted=True)
    management_api.gone |= {gone, connecting}
    invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", 0, b"a", "1"),
                                            translated(session_id, "es", 1, b"b", "2")]})
    assert audio_of(management_api, live) == [(1, b"ab")]
    remaining = {c.connectionId for page in connections.listeners(session_id, "es") for c in page}
    assert remaining == {live, connecting}
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{session_id}"},
                                                                   "sk": {"S": "META"}})["Item"]
    assert item["listenerCount"]["N"] == "2" and item["listeners_es"]["N"] == "2"


def test_one_languages_failure_reports_its_first_record_and_the_others_are_delivered(invoke, management_api,
                                                                                     session_id, monkeypatch):
    from session_core import errors
    from session_core.data import connections

    management_api.reset()
    spanish, french = put_listener(session_id, "es"), put_listener(session_id, "fr")
    listeners = connections.listeners

    def failing(session, language, *args, **kwargs):
        if language == "fr":
            raise errors.ServiceUnavailable()
        return listeners(session, language, *args, **kwargs)

    monkeypatch.setattr(connections, "listeners", failing)
    result = invoke.raw("audio_fanout", {"Records": [
        translated(session_id, "es", 0, b"es", "10"), translated(session_id, "fr", 0, b"fr", "20"),
        translated(session_id, "fr", 1, b"fr", "30")]})
    assert result == {"batchItemFailures": [{"itemIdentifier": "20"}]}
    assert audio_of(management_api, spanish) == [(0, b"es")] and management_api.posts[french] == []


def test_a_language_switch_moves_the_listener_in_the_index(invoke, session_id):
    from session_core.data import connections

    listener = put_listener(session_id, "es", counted=True)
    connections.switch_language(session_id, listener, "fr", "native")
    in_language = {language: {c.connectionId for page in connections.listeners(session_id, language) for c in page}
                   for language in ("es", "fr")}
    assert in_language == {"es": set(), "fr": {listener}}
