"""The referenced audio function (ReferencedAudioFunction): a batch's audio of each (session, language) stored once
as a WAV chunk, its presigned URL posted to the listeners sent referenced chunks (the hybrid listener client's
translatedAudio) and to no other; a chunk that cannot be stored is counted and posted to nobody."""

import io
import wave

import httpx
import pytest

from tests.functions import test_audio_fanout
from tests.functions.test_audio_fanout import floor, kinesis_record, put_listener, translated
from tests.support.lambdas import sample_event

session_id = test_audio_fanout.session_id  # the fixture: a session of alice's


def referenced_posts(management_api, connection_id: str) -> list[dict]:
    return [m for m in management_api.posts[connection_id] if m["type"] == "translatedAudio"]


def pcm_of(url: str) -> bytes:
    response = httpx.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        return wav.readframes(wav.getnframes())


def test_the_sample_event_is_delivered(invoke, management_api):
    management_api.reset()
    assert invoke.raw("referenced_audio", sample_event("referenced_audio")) == {"batchItemFailures": []}


def test_a_batch_of_a_language_is_one_stored_chunk_posted_by_url_to_its_referenced_listeners_only(
        invoke, management_api, session_id):
    management_api.reset()
    hybrid, inline = put_listener(session_id, "es", dialect="hybrid"), put_listener(session_id, "es")
    other = put_listener(session_id, "fr", dialect="hybrid")
    pcm = [bytes([s]) * 3200 for s in range(20)]  # 2 s of 100 ms chunks
    result = invoke.raw("referenced_audio", {"Records": [
        translated(session_id, "es", 40 + s, chunk, str(100 + s), transcript=f"t{s}" if s < 2 else None,
                   timestamp=1700000000000 + s * 100) for s, chunk in enumerate(pcm)]})
    assert result == {"batchItemFailures": []}
    (message,) = referenced_posts(management_api, hybrid)
    assert message == {"type": "translatedAudio", "sessionId": session_id, "targetLanguage": "es",
                       "url": message["url"], "sequenceNumber": 40, "timestamp": 1700000000000, "duration": 2.0,
                       "transcript": "t0 t1"}
    assert pcm_of(message["url"]) == b"".join(pcm)
    # Inline listeners are the inline fan-out's: not read here; nor is another language's.
    assert management_api.posts[inline] == [] and management_api.posts[other] == []


def test_floor_audio_reaches_the_referenced_listeners_of_the_source_language_and_of_the_original(
        invoke, management_api, session_id):
    management_api.reset()
    english, original = put_listener(session_id, "en", dialect="hybrid"), put_listener(session_id, "", dialect="hybrid")
    invoke.raw("referenced_audio", {"Records": [floor(session_id, s, b"\x01\x00" * 800, str(200 + s)) for s in range(3)]})
    for listener in (english, original):
        (message,) = referenced_posts(management_api, listener)
        assert message["targetLanguage"] == "en" and message["sequenceNumber"] == 0 and message["duration"] == 0.15
        assert pcm_of(message["url"]) == b"\x01\x00" * 2400


def test_a_chunk_that_cannot_be_stored_is_counted_and_posted_to_nobody(invoke, management_api, session_id,
                                                                     monkeypatch, capsys):
    from session_core.data import chunk_store

    management_api.reset()
    spanish, french = put_listener(session_id, "es", dialect="hybrid"), put_listener(session_id, "fr", dialect="hybrid")
    real_store = chunk_store.store

    def store(key, body):
        if "/es/" in key:
            raise OSError("S3 unreachable")
        return real_store(key, body)

    monkeypatch.setattr(chunk_store, "store", store)
    capsys.readouterr()
    result = invoke.raw("referenced_audio", {"Records": [translated(session_id, "es", 0, b"es", "1"),
                                                         translated(session_id, "fr", 0, b"fr", "2")]})
    # Not retried (the next chunk is due by then): no failure reported, the other language delivered.
    assert result == {"batchItemFailures": []}
    assert management_api.posts[spanish] == []
    assert len(referenced_posts(management_api, french)) == 1
    assert '"ReferencedChunksNotStored":[1.0]' in capsys.readouterr().out


def test_malformed_records_are_skipped_and_counted_and_the_rest_delivered(invoke, management_api, session_id,
                                                                         capsys):
    management_api.reset()
    listener = put_listener(session_id, "es", dialect="hybrid")
    capsys.readouterr()
    result = invoke.raw("referenced_audio", {"Records": [
        kinesis_record(b"not json", sequence="1", translated=True),
        kinesis_record({"sessionId": session_id, "language": "xx", "sequenceNumber": 0, "audioData": "AAAA"},
                       sequence="2", translated=True),
        translated(session_id, "es", 5, b"ok", "3")]})
    assert result == {"batchItemFailures": []}
    (message,) = referenced_posts(management_api, listener)
    assert message["sequenceNumber"] == 5 and pcm_of(message["url"]) == b"ok"
    out = capsys.readouterr().out
    assert '"AudioRecordsMalformed":[2.0]' in out and "not json" not in out


def test_a_failure_to_reach_the_listeners_is_reported_by_the_languages_first_record(invoke, management_api,
                                                                                    session_id, monkeypatch):
    from session_core.data import connections

    management_api.reset()
    put_listener(session_id, "es", dialect="hybrid")
    monkeypatch.setattr(connections, "listeners", lambda *a, **k: (_ for _ in ()).throw(OSError("index down")))
    result = invoke.raw("referenced_audio", {"Records": [translated(session_id, "es", 0, b"es", "7"),
                                                         translated(session_id, "es", 1, b"es", "8")]})
    assert result == {"batchItemFailures": [{"itemIdentifier": "7"}]}


@pytest.mark.parametrize("dialect, delivery, referenced", [
    ("hybrid", "", True), ("native", "", False), ("old", "", False),
    ("native", "referenced", True), ("hybrid", "inline", False)])  # a listener's choice at connect wins
def test_who_is_keyed_for_referenced_chunks_and_a_language_switch_keeps_it(session_id, dialect, delivery,
                                                                          referenced):
    from session_core.data import connections

    listener = put_listener(session_id, "es", dialect=dialect, counted=True)
    connections.switch_language(session_id, listener, "fr", dialect, delivery)

    def keyed(as_referenced: bool) -> set[str]:
        return {c.connectionId for page in connections.listeners(session_id, "fr", referenced=as_referenced)
                for c in page}

    assert (listener in keyed(True), listener in keyed(False)) == (referenced, not referenced)
