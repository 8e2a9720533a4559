"""Referenced audio chunks: a few seconds of a (session, language)'s audio stored once as a WAV object, and a
short-lived presigned GET URL to it that the listeners are posted (usecases/referenced.py).

WAV, because the hybrid listener client plays each chunk with an HTML audio element from the bytes it
fetches, and every browser decodes 16-bit PCM WAV; the service has PCM, so a WAV is a 44-byte header away.
The bucket expires objects after a day (template.yaml), long after any URL to them has.
"""

from __future__ import annotations

import io
import wave
from functools import cache

from botocore.config import Config

from ..platform.aws import CONFIG, session
from ..platform.settings import settings

CONTENT_TYPE = "audio/wav"
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM


@cache
def _s3():
    # SigV4 (S3 accepts no other signature for presigned URLs in newer regions) and virtual-hosted names on AWS;
    # an AWS_ENDPOINT_URL (the local stack) gets path-style URLs, which its host serves.
    return session().create_client("s3", config=CONFIG.merge(Config(signature_version="s3v4")))


def wav(pcm: bytes, sample_rate: int, channels: int) -> bytes:
    """The PCM (16-bit little-endian) as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)
    return out.getvalue()


def key(session_id: str, language: str, first_sequence: int) -> str:
    # One prefix per session: a session's chunks can be listed or removed together.
    return f"chunks/{session_id}/{language}/{first_sequence:020d}.wav"


def store(object_key: str, body: bytes) -> str:
    """Stores a chunk; returns a presigned GET URL to it, valid for CHUNK_URL_SECONDS."""
    bucket = settings().required("chunk_bucket_name")
    _s3().put_object(Bucket=bucket, Key=object_key, Body=body, ContentType=CONTENT_TYPE)
    return _s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": object_key},
                                        ExpiresIn=settings().chunk_url_seconds)
