"""A crowd's audio in slices: above AUDIO_SLICE_THRESHOLD listeners of a language the fan-out (AudioFanoutFunction)
puts one record a slice to the slice stream instead of posting, and the worker (AudioSliceFunction) posts each
listener of a slice its chunks in order; a refused record is put again alone; a failed slice is reported by its
first record; gone listeners are dropped as the fan-out drops them."""

import base64
import json
import time
import uuid

import boto3
import pytest

from tests.functions.conftest import TABLE
from tests.functions.test_audio_fanout import audio_of, floor, put_listener, translated
from tests.support.lambdas import http_event, sample_event

THRESHOLD = 4
PER_SLICE = 2


@pytest.fixture
def session_id(invoke, cognito):
    from jwt import decode

    sub = decode(cognito["tokens"]["alice"]["IdToken"], options={"verify_signature": False})["sub"]
    status, _, body = invoke("create_session", http_event("create_session", sub=sub, body={"sourceLanguage": "en"}))
    assert status == 201
    return body["sessionId"]


@pytest.fixture
def slice_stream(invoke, setenv):
    from session_core.platform import settings as settings_module

    name = f"slices-{uuid.uuid4().hex[:8]}"
    boto3.client("kinesis").create_stream(StreamName=name, ShardCount=1)
    setenv("AUDIO_SLICE_STREAM_NAME", name)
    setenv("AUDIO_SLICE_THRESHOLD", str(THRESHOLD))
    setenv("AUDIO_SLICE_LISTENERS", str(PER_SLICE))
    yield name
    settings_module.settings.cache_clear()  # the next test reads its own environment


def slice_records(stream: str) -> list[dict]:
    """What the fan-out put, as the worker's mapping delivers it."""
    kinesis = boto3.client("kinesis")
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    return [{"kinesis": {"partitionKey": r["PartitionKey"], "sequenceNumber": r["SequenceNumber"],
                         "data": base64.b64encode(r["Data"]).decode()},
             "eventSourceARN": f"arn:aws:kinesis:eu-west-1:123456789012:stream/{stream}"} for r in records]


def payload(record: dict) -> dict:
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


def test_the_slicing_is_a_power_of_two_of_slices_and_a_listener_keeps_its_slice():
    from session_core.usecases import slices

    assert [slices.slice_count(n, 64) for n in (1, 64, 65, 128, 129, 1000, 10000)] == [1, 1, 2, 2, 4, 16, 256]
    ids = [f"conn-{i}=" for i in range(1000)]
    spread = [slices.slice_of(c, 16) for c in ids]
    assert spread == [slices.slice_of(c, 16) for c in ids]  # stable: one slice, one order
    assert set(spread) == set(range(16)) and max(spread.count(s) for s in range(16)) < 2 * 1000 / 16


def test_the_sample_event_is_posted(invoke, management_api):
    management_api.reset()
    assert invoke.raw("audio_slice", sample_event("audio_slice")) == {"batchItemFailures": []}


def test_at_the_threshold_the_fanout_posts_itself(invoke, management_api, session_id, slice_stream):
    management_api.reset()
    listeners = [put_listener(session_id, "es") for _ in range(THRESHOLD)]
    invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", 0, b"a", "1")]})
    assert all(audio_of(management_api, c) == [(0, b"a")] for c in listeners)
    assert slice_records(slice_stream) == []


def test_above_the_threshold_each_listener_is_in_one_slice_and_gets_every_chunk_in_order(
        invoke, management_api, session_id, slice_stream):
    from session_core.usecases import slices

    management_api.reset()
    spanish = [put_listener(session_id, "es") for _ in range(7)]
    french = put_listener(session_id, "fr")
    result = invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", s, f"es-{s}".encode(), str(s))
                                                     for s in range(3)]
                                         + [translated(session_id, "fr", 0, b"fr", "9")]})
    assert result == {"batchItemFailures": []}
    # The fan-out posted the small language itself and none of the crowd.
    assert audio_of(management_api, french) == [(0, b"fr")]
    assert all(management_api.posts[c] == [] for c in spanish)
    records = slice_records(slice_stream)
    # 7 listeners, 2 a slice: 4 slices, one record each with listeners (the batch's chunks merged).
    assert len(records) == len({slices.slice_of(c, 4) for c in spanish})
    members = {}
    for record in records:
        body = payload(record)
        assert record["kinesis"]["partitionKey"] == f"{session_id}#es#{body['slice']}"
        for connection in body["listeners"]:
            assert slices.slice_of(connection["connectionId"], 4) == body["slice"]
            members[connection["connectionId"]] = body["slice"]
    assert sorted(members) == sorted(spanish)  # each listener in exactly one slice
    assert invoke.raw("audio_slice", {"Records": records}) == {"batchItemFailures": []}
    for listener in spanish:
        assert audio_of(management_api, listener) == [(2, b"es-0es-1es-2")]
        assert management_api.posts[listener][0]["chunks"] == 3


def test_a_slice_keeps_its_order_across_records_and_a_late_joiner_gets_only_the_later_chunks(
        invoke, management_api, session_id, slice_stream):
    management_api.reset()
    early = [put_listener(session_id, "en") for _ in range(5)]
    invoke.raw("audio_fanout", {"Records": [floor(session_id, 0, b"first-", "1")]})
    late = put_listener(session_id, "en")
    invoke.raw("audio_fanout", {"Records": [floor(session_id, 1, b"second", "2")]})
    records = slice_records(slice_stream)
    # A backlog of a slice's records in one batch is posted in order, merged into one message per listener.
    assert invoke.raw("audio_slice", {"Records": records}) == {"batchItemFailures": []}
    for listener in early:
        assert audio_of(management_api, listener) == [(1, b"first-second")]
    assert audio_of(management_api, late) == [(1, b"second")]
    # One record after another (the steady state): one message each, in order.
    management_api.reset()
    for record in records:
        invoke.raw("audio_slice", {"Records": [record]})
    assert all([seq for seq, _ in audio_of(management_api, c)] == [0, 1] for c in early)


def test_a_refused_slice_record_is_put_again_alone(invoke, management_api, session_id, slice_stream, monkeypatch):
    from session_core.data import audio_stream
    from session_core.usecases import slices

    management_api.reset()
    listeners = [put_listener(session_id, "es") for _ in range(5)]
    occupied = sorted({slices.slice_of(c, 4) for c in listeners})  # 4 slices; by chance one may have none
    requests, real = [], audio_stream.call

    def throttling_once(service, operation, **parameters):
        requests.append([entry["PartitionKey"] for entry in parameters["Records"]])
        if len(requests) == 1:  # Kinesis refuses the first record once, as a throttled shard does
            refused = real(service, operation, **{**parameters, "Records": parameters["Records"][1:]})
            return {"FailedRecordCount": 1, "Records": [{"ErrorCode": "ProvisionedThroughputExceededException"}]
                    + refused["Records"]}
        return real(service, operation, **parameters)

    monkeypatch.setattr(audio_stream, "call", throttling_once)
    assert invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", 0, b"a", "1")]}) == {
        "batchItemFailures": []}
    assert requests == [[f"{session_id}#es#{s}" for s in occupied], [f"{session_id}#es#{occupied[0]}"]]
    assert sorted(r["kinesis"]["partitionKey"] for r in slice_records(slice_stream)) == requests[0]


def test_slice_records_that_cannot_be_put_fail_their_language_only(invoke, management_api, session_id, slice_stream,
                                                                   monkeypatch):
    from session_core.data import audio_stream
    from session_core.usecases import slices

    management_api.reset()
    monkeypatch.setattr(slices.time, "sleep", lambda seconds: None)
    for _ in range(5):
        put_listener(session_id, "es")
    french = put_listener(session_id, "fr")
    monkeypatch.setattr(audio_stream, "call", lambda service, operation, **parameters: {
        "FailedRecordCount": len(parameters["Records"]),
        "Records": [{"ErrorCode": "InternalFailure"} for _ in parameters["Records"]]})
    result = invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", 0, b"a", "10"),
                                                     translated(session_id, "fr", 0, b"b", "20")]})
    assert result == {"batchItemFailures": [{"itemIdentifier": "10"}]}
    assert audio_of(management_api, french) == [(0, b"b")]


def test_the_worker_drops_gone_listeners_and_keeps_one_still_connecting(invoke, management_api, session_id,
                                                                        slice_stream):
    from session_core.data import connections

    management_api.reset()
    live = [put_listener(session_id, "es", counted=True) for _ in range(3)]
    gone = put_listener(session_id, "es", counted=True)
    connecting = put_listener(session_id, "es", connected_at=int(time.time()), counted=True)
    management_api.gone |= {gone, connecting}
    invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", 0, b"a", "1")]})
    assert invoke.raw("audio_slice", {"Records": slice_records(slice_stream)}) == {"batchItemFailures": []}
    assert all(audio_of(management_api, c) == [(0, b"a")] for c in live)
    remaining = {c.connectionId for page in connections.listeners(session_id, "es") for c in page}
    assert remaining == {*live, connecting}
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{session_id}"},
                                                                   "sk": {"S": "META"}})["Item"]
    assert item["listeners_es"]["N"] == "4"


def test_a_failed_slice_reports_its_first_record_and_the_other_slices_are_posted(invoke, management_api, session_id,
                                                                                 slice_stream, monkeypatch):
    from session_core.usecases import slices

    management_api.reset()
    listeners = [put_listener(session_id, "es") for _ in range(7)]
    invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", 0, b"a", "1")]})
    invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", 1, b"b", "2")]})
    records = slice_records(slice_stream)
    failing = payload(records[0])["slice"]
    post_each = slices.post_each

    def failing_slice(session, plan, shape, pool):
        if any(slices.slice_of(connection.connectionId, 4) == failing for connection, _ in plan):
            raise RuntimeError("the table is unavailable")
        return post_each(session, plan, shape, pool)

    monkeypatch.setattr(slices, "post_each", failing_slice)
    result = invoke.raw("audio_slice", {"Records": records})
    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}]}
    for listener in listeners:
        expected = [] if slices.slice_of(listener, 4) == failing else [(1, b"ab")]
        assert audio_of(management_api, listener) == expected


def test_a_malformed_slice_record_is_skipped_counted_and_not_retried(invoke, management_api, session_id,
                                                                     slice_stream, log_lines):
    management_api.reset()
    listeners = [put_listener(session_id, "es") for _ in range(5)]
    invoke.raw("audio_fanout", {"Records": [translated(session_id, "es", 0, b"a", "1")]})
    records = slice_records(slice_stream)
    broken = {"kinesis": {"partitionKey": "x", "sequenceNumber": "0", "data": base64.b64encode(b"{").decode()}}
    log_lines()
    assert invoke.raw("audio_slice", {"Records": [broken, *records]}) == {"batchItemFailures": []}
    assert all(audio_of(management_api, c) == [(0, b"a")] for c in listeners)
    assert [line["message"] for line in log_lines() if "skipped" in line.get("message", "")] == [
        "slice record skipped"]
