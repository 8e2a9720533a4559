"""The Kinesis streams this service writes: the speaker's audio to the transcription pipeline (AudioStream) and
a crowd's slices to the slice workers (AudioSliceStream). The only module that speaks Kinesis."""

from __future__ import annotations

import json

from ..platform.aws import call
from ..platform.settings import settings


def forward(session_id: str, record: dict, after: str | None = None) -> str:
    """Puts one audio record, partition key the session ID (a session's records stay in order on one shard),
    ordered after the record whose sequence number is `after`; its own sequence number."""
    request = {"StreamName": settings().audio_stream_name, "PartitionKey": session_id,
               "Data": json.dumps(record).encode()}
    if after:
        request["SequenceNumberForOrdering"] = after
    return call("kinesis", "put_record", **request)["SequenceNumber"]


def put_slices(entries: list[dict]) -> list[dict]:
    """One PutRecords of slice records ({"PartitionKey", "Data"}); the entries Kinesis refused (throttled)."""
    answer = call("kinesis", "put_records", StreamName=settings().audio_slice_stream_name, Records=entries)
    return [entry for entry, result in zip(entries, answer["Records"], strict=True) if "ErrorCode" in result]
