"""What each function loads at cold start, in a fresh process with tracing on as on AWS: the
libraries a path does not use stay unloaded (their cost is measured in bench/cold_start.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "botocore.client", "pydantic", "aws_xray_sdk.core", "jwt", "cryptography")
# Imports the handler module as Lambda does (its folder, then the layer), then reports which of HEAVY are
# loaded and whether botocore's API calls are patched for X-Ray.
PROBE = """
import json, sys
sys.path[:0] = [{folder!r}, {layer!r}]
import app
{after}
loaded = [name for name in {heavy!r} if name in sys.modules]
client = sys.modules.get("botocore.client")
patched = bool(client and getattr(client, "_xray_enabled", False))
print(json.dumps({{"loaded": loaded, "patched": patched}}))
"""


def loaded_by(folder: str, after: str = "") -> dict:
    env = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false",
           "AWS_REGION": "eu-west-1", "TABLE_NAME": "sessions", "POWERTOOLS_SERVICE_NAME": "session-service",
           "POWERTOOLS_METRICS_NAMESPACE": "BroadcastSessions"}
    code = PROBE.format(folder=str(ROOT / "functions" / folder), layer=str(ROOT / "layers" / "session_core"),
                        heavy=HEAVY, after=after)
    result = subprocess.run([sys.executable, "-I", "-c", code], env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_authorizer_starts_without_the_aws_sdk_pydantic_the_xray_sdk_or_pyjwt():
    # PyJWT loads on the first token; an anonymous listener never needs it.
    assert loaded_by("ws_authorizer")["loaded"] == []


@pytest.mark.parametrize("folder", ["ws_heartbeat", "ws_default"])
def test_functions_without_aws_calls_do_not_load_botocore_for_their_trace(folder):
    loaded = loaded_by(folder)["loaded"]
    assert "botocore.client" not in loaded and "boto3" not in loaded and "aws_xray_sdk.core" in loaded


# They read no session (their conditional writes check it), so they need no Session model.
@pytest.mark.parametrize("folder", ["ws_connect", "ws_disconnect", "status_broadcast", "audio_fanout", "teardown_worker",
                                    "teardown_finish"])
def test_functions_that_only_write_start_without_pydantic(folder):
    result = loaded_by(folder)
    assert "pydantic" not in result["loaded"] and "botocore.client" in result["loaded"]
    assert result["patched"]  # their DynamoDB calls are traced


@pytest.mark.parametrize("later", ["import boto3", "import botocore.session", "import botocore.client, boto3"])
def test_botocore_imported_after_the_handler_is_patched_for_xray(later):
    assert loaded_by("ws_heartbeat", after=later)["patched"]


@pytest.mark.parametrize("folder", ["create_session", "get_session", "update_session", "delete_session"])
def test_http_functions_check_tokens_without_pyjwt(folder):
    # API Gateway verified the signature: the product's token rules are base64 and JSON. PyJWT loads only under
    # the SAM CLI, which runs no authorizer.
    loaded = loaded_by(folder)["loaded"]
    assert "jwt" not in loaded and "cryptography" not in loaded
