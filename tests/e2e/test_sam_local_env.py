"""env.local.json (for `sam local invoke` containers) names the local stack's real resources:
the stack's IDs are deterministic, so the shipped file stays right."""

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.local_only("checks env.local.json against the local stack")


def test_env_local_json_matches_the_running_local_stack(stack):
    params = json.loads((ROOT / "env.local.json").read_text())["Parameters"]
    assert params["JWT_ISSUER"] == stack["issuer"]
    assert params["JWT_AUDIENCE"] == stack["userPoolClientId"]
    assert params["TABLE_NAME"] == stack["tableName"]
    assert params["AUDIO_STREAM_NAME"] == stack["audioStreamName"]
    assert params["TRANSLATED_AUDIO_STREAM_ARN"] == stack["resources"]["TranslatedAudioStream"]["attrs"]["Arn"]
    assert params["CHUNK_BUCKET_NAME"] == stack["outputs"]["ChunkBucketName"]
    assert params["AUDIO_SLICE_STREAM_NAME"] == stack["resources"]["AudioSliceStream"]["ref"]
    assert params["TEARDOWN_STATE_MACHINE_ARN"] in stack["stateMachines"].values()
    assert urlparse(params["WEBSOCKET_MANAGEMENT_URL"]).path == urlparse(stack["managementApiUrl"]).path
    assert urlparse(params["JWKS_URL"]).path == urlparse(stack["jwksUrl"]).path
