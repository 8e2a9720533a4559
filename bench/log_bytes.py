"""Bytes of log each audio frame writes: the sendAudio handler's own stdout (its JSON log lines and EMF
records), invoked in-process N times against moto, warm (the first, cold, invocation is left out).

    .venv/bin/python -m bench.log_bytes [--frames 200] [--log-level INFO]

`--log-level` is what Lambda's ApplicationLogLevel sets (AWS_LAMBDA_LOG_LEVEL). Lambda's own platform lines
and API Gateway's access-log line are not the function's output; docs/performance.md adds them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(frames: int, log_level: str) -> dict:
    os.environ.update({
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "TABLE_NAME": "sessions-bench", "AUDIO_STREAM_NAME": "audio-bench", "STAGE_NAME": "bench",
        "POWERTOOLS_SERVICE_NAME": "session-service", "POWERTOOLS_METRICS_NAMESPACE": "BroadcastSessions",
        "AWS_LAMBDA_LOG_LEVEL": log_level, "MAX_AUDIO_BYTES": "24000",
    })
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "session_core")]
    import boto3
    from moto import mock_aws

    from tests.support.lambdas import http_event, load_handler, new_execution_environment, ws_event, Context

    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="sessions-bench", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        boto3.client("kinesis").create_stream(StreamName="audio-bench", ShardCount=1)
        new_execution_environment()
        create, send = load_handler("create_session"), load_handler("ws_send_audio")
        session = json.loads(create(http_event("create_session", sub="speaker-1", body={"sourceLanguage": "en"}),
                                    Context(function_name="create_session"))["body"])
        who = {"sessionId": session["sessionId"], "role": "speaker", "userId": "speaker-1", "targetLanguage": "",
               "legacy": False}
        chunk = base64.b64encode(bytes(3200)).decode()  # 100 ms of 16 kHz 16-bit mono PCM, as the console sends

        def frame(seq: int) -> None:
            event = ws_event("ws_send_audio", connection_id="bench-conn=", who=who,
                             body={"action": "sendAudio", "seq": seq, "data": chunk})
            assert send(event, Context(function_name="ws_send_audio"))["statusCode"] == 200

        frame(0)  # cold: its ColdStart metric is not per frame
        sys.stdout.flush()
        with tempfile.TemporaryFile() as captured:
            saved = os.dup(1)
            os.dup2(captured.fileno(), 1)
            try:
                for seq in range(1, frames + 1):
                    frame(seq)
                sys.stdout.flush()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            captured.seek(0)
            output = captured.read()
    lines = output.decode().splitlines()
    emf = sum(len(line) + 1 for line in lines if '"_aws"' in line)
    return {"frames": frames, "logLevel": log_level, "bytesPerFrame": round(len(output) / frames, 1),
            "emfBytesPerFrame": round(emf / frames, 1), "linesPerFrame": round(len(lines) / frames, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    print(json.dumps(measure(args.frames, args.log_level)))


if __name__ == "__main__":
    main()
