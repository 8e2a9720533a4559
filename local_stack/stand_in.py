"""A stand-in for the translation pipeline (`dev --stand-in-pipeline LANG`, off by default), so that the
listener path for a translated language runs end to end without one: it reads the speaker's audio (the
stream of the template output `AudioStreamName`) and writes each chunk back, unchanged, as the audio of
LANG to the translated-audio input (the stream of the output `TranslatedAudioStreamName`), in the record
shape docs/protocols.md documents. It is NOT a translation: every record says so in its `transcript`."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

from .kinesis import KinesisMapping, KinesisPoller

log = logging.getLogger("local_stack")

LABEL = "[stand-in pipeline: the original audio, not a translation]"
SOURCE_OUTPUT, TARGET_OUTPUT = "AudioStreamName", "TranslatedAudioStreamName"


class StandInPipeline:
    """Reads the floor audio like a mapping would, and puts each chunk on the translated-audio input."""

    def __init__(self, language: str, outputs: dict[str, str], kinesis_client: Any, region: str) -> None:
        missing = [name for name in (SOURCE_OUTPUT, TARGET_OUTPUT) if not outputs.get(name)]
        if missing:
            raise ValueError(f"--stand-in-pipeline needs the template outputs {', '.join(missing)}")
        self.language = language
        self._client = kinesis_client
        self._target = outputs[TARGET_OUTPUT]
        source_arn = kinesis_client.describe_stream_summary(StreamName=outputs[SOURCE_OUTPUT])[
            "StreamDescriptionSummary"]["StreamARN"]
        self._poller = KinesisPoller(KinesisMapping(name="StandInPipeline", function="stand-in", stream=SOURCE_OUTPUT),
                                     source_arn, kinesis_client, self, region)

    @property
    def stream_arn(self) -> str:
        return self._poller.stream_arn

    def wake(self, shards: set[str] | None = None) -> None:
        self._poller.wake(shards)

    async def start(self) -> None:
        await self._poller.start()
        log.info("stand-in pipeline: the original audio is fed back as %r (not a translation)", self.language)

    async def stop(self) -> None:
        await self._poller.stop()

    async def invoke(self, function: str, event: Any, request_id: str | None = None) -> None:
        """A batch of the speaker's audio records: each written back as LANG, in order."""
        entries = [entry for entry in map(self._entry, event["Records"]) if entry is not None]
        for entry in entries:  # one at a time: a session's records keep their order
            # moto's notice of these records wakes the translated stream's readers (stack._waker)
            await asyncio.to_thread(self._client.put_record, StreamName=self._target, **entry)

    def _entry(self, record: dict) -> dict | None:
        try:
            chunk = json.loads(base64.b64decode(record["kinesis"]["data"]))
            session_id = chunk["sessionId"]
            sequence = chunk["seq"] if chunk.get("seq") is not None else chunk["receivedAt"]
            translated = {"sessionId": session_id, "language": self.language, "sequenceNumber": sequence,
                          "audioData": chunk["audio"], "format": "pcm", "sampleRate": 16000, "channels": 1,
                          "timestamp": chunk["receivedAt"], "transcript": LABEL}
        except (KeyError, TypeError, ValueError):
            return None  # not a floor chunk: nothing to feed back
        return {"PartitionKey": f"{session_id}#{self.language}", "Data": json.dumps(translated).encode()}
