"""What each function loads at cold start, in a fresh process with tracing on as on AWS: the
libraries a path does not use stay unloaded (their cost is measured in bench/cold_start.py)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "botocore.client", "pydantic", "aws_xray_sdk.core", "jwt", "cryptography",
         # Powertools' event handler: its package loads every resolver and every event data class.
         "aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")
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


# A session read from the table is a plain dataclass (domain.Session); no function loads pydantic (request
# bodies: pydantic_core, below).
@pytest.mark.parametrize("folder", ["ws_connect", "ws_disconnect", "status_broadcast", "teardown_worker",
                                    "teardown_finish", "audio_fanout", "ws_welcome", "get_session", "delete_session", "ws_send_audio",
                                    "ws_session_control", "ws_session_info", "session_sweep"])
def test_functions_that_take_no_body_start_without_pydantic(folder):
    result = loaded_by(folder)
    assert "pydantic" not in result["loaded"] and "botocore.client" in result["loaded"]
    assert result["patched"]  # their DynamoDB calls are traced


# The request bodies are checked by pydantic_core from a declared schema (models.py): the functions that take one
# start and parse it without pydantic's model layer (≈ 0.25x of their cold start, docs/performance.md).
PARSE_A_BODY = {
    "create_session": "from session_core.api.validation import parse_json\n"
                      "from session_core.models import CreateSessionRequest\n"
                      "assert parse_json(CreateSessionRequest, b'{\"sourceLanguage\": \"en\"}').sourceLanguage == 'en'",
    "update_session": "from session_core.api.validation import parse_json\n"
                      "from session_core.models import UpdateSessionRequest\n"
                      "request = parse_json(UpdateSessionRequest, '{\"status\": \"paused\"}')\n"
                      "assert request.changes() == {'status': 'paused'}",
    "ws_create_session": "from session_core.api.validation import validated\n"
                         "from session_core.models import LegacyCreateSession\n"
                         "from session_core.api.dialects import old, renamed\n"
                         "wanted = validated(LegacyCreateSession, {'sourceLanguage': 'en',\n"
                         "                                         'partialResults': 'false'})\n"
                         "assert wanted.as_create_request().partialResultsEnabled is False",
}


@pytest.mark.parametrize("folder", sorted(PARSE_A_BODY))
def test_functions_that_take_a_body_start_and_parse_it_without_pydantic(folder):
    assert "pydantic" not in loaded_by(folder)["loaded"]
    checked_by_pydantic_core = "\nassert 'pydantic_core' in sys.modules"
    assert "pydantic" not in loaded_by(folder, after=PARSE_A_BODY[folder] + checked_by_pydantic_core)["loaded"]


@pytest.mark.parametrize("later", ["import boto3", "import botocore.session", "import botocore.client, boto3"])
def test_botocore_imported_after_the_handler_is_patched_for_xray(later):
    assert loaded_by("ws_heartbeat", after=later)["patched"]


@pytest.mark.parametrize("folder", ["create_session", "get_session", "update_session", "delete_session"])
def test_http_functions_check_tokens_without_pyjwt(folder):
    # API Gateway verified the signature: the product's token rules are base64 and JSON. PyJWT loads only under
    # the SAM CLI, which runs no authorizer.
    loaded = loaded_by(folder)["loaded"]
    assert "jwt" not in loaded and "cryptography" not in loaded


@pytest.mark.parametrize("folder", ["create_session", "get_session", "update_session", "delete_session"])
def test_http_functions_start_without_powertools_event_handler(folder):
    # Routed by session_core.api.router: Powertools' event handler package would load every resolver it has.
    loaded = loaded_by(folder)["loaded"]
    assert "aws_lambda_powertools.event_handler" not in loaded
    assert "aws_lambda_powertools.utilities.data_classes" not in loaded


# What sendAudio, pause/resume and the session info read on their first message: the item becomes a session
# without pydantic (before, the first read loaded it: ~0.3x of a cold start).
READ_A_SESSION = """
from session_core.data.sessions import from_item
session = from_item({"pk": {"S": "SESSION#golden-eagle-427"}, "sk": {"S": "META"}, "sessionId": {"S": "golden-eagle-427"},
    "speakerId": {"S": "u"}, "sourceLanguage": {"S": "en"}, "qualityTier": {"S": "standard"}, "status": {"S": "active"},
    "minStabilityThreshold": {"N": "0.85"}, "createdAt": {"N": "1"}, "updatedAt": {"N": "1"}, "expiresAt": {"N": "9"},
    "version": {"N": "1"}, "muted": {"BOOL": True}, "listeners_es": {"N": "2"}})
assert session.muted and session.minStabilityThreshold == 0.85 and session.languageCounts == {"es": 2}
"""


@pytest.mark.parametrize("folder", ["ws_send_audio", "ws_session_control", "ws_session_info"])
def test_reading_a_session_loads_no_pydantic(folder):
    assert "pydantic" not in loaded_by(folder, after=READ_A_SESSION)["loaded"]


# Clients come from botocore's session (session_core.platform.aws): boto3 would add s3transfer, its resource
# machinery and a data path every model lookup lists (≈ 0.1x of a cold start) and returns the same client.
@pytest.mark.parametrize("folder", sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()))
def test_functions_start_without_boto3(folder):
    assert "boto3" not in loaded_by(folder)["loaded"]


MAKE_CLIENTS = """
import os
os.environ.update(AWS_DEFAULT_REGION="eu-west-1", WEBSOCKET_MANAGEMENT_URL="https://example.execute-api.eu-west-1.amazonaws.com/test")
from session_core.platform import aws, management
dynamodb, kinesis, posts = aws.client("dynamodb"), aws.client("kinesis"), management._client()
assert dynamodb.meta.service_model.service_name == "dynamodb" and kinesis.meta.service_model.service_name == "kinesis"
assert dynamodb.meta.config.retries["mode"] == "standard" and kinesis.meta.config.read_timeout == 5
assert posts.meta.endpoint_url == "https://example.execute-api.eu-west-1.amazonaws.com/test"
assert posts.meta.config.max_pool_connections == aws.MAX_POOL_CONNECTIONS
"""


@pytest.mark.parametrize("folder", ["get_session", "ws_send_audio", "teardown_worker"])
def test_clients_are_made_without_boto3_and_traced(folder):
    result = loaded_by(folder, after=MAKE_CLIENTS)
    assert "boto3" not in result["loaded"] and "botocore.client" in result["loaded"] and result["patched"]


def test_the_layer_ships_bytecode_that_is_never_rechecked(tmp_path):
    # Lambda's /opt is read-only: a layer module without a valid .pyc is compiled again at every cold start
    # (≈ 15 ms for GET's session_core modules, docs/performance.md). The layer's own build runs here with pip
    # stubbed out (the wheels are not what is tested), with this interpreter standing in for python3.13.
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 0\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    artifacts = tmp_path / "layer"
    (artifacts / "python").mkdir(parents=True)  # pip's --target would make it
    subprocess.run(["make", "-s", "build-SessionCoreLayer", f"ARTIFACTS_DIR={artifacts}", f"PYTHON={python}"],
                   cwd=ROOT / "layers" / "session_core", check=True, capture_output=True, timeout=120)
    sources = sorted((artifacts / "python" / "session_core").rglob("*.py"))
    assert len(sources) > 10
    for source in sources:
        header = Path(importlib.util.cache_from_source(str(source))).read_bytes()[:8]
        # PEP 552: magic number of this Python, then flags 0b01: hash-based, unchecked.
        assert header[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(header[4:8], "little") == 0b01, source


IDEMPOTENCY_CLIENT = """
import os
os.environ.update(AWS_DEFAULT_REGION="eu-west-1")
from session_core.platform import aws
from session_core.data import idempotency
import boto3
assert idempotency._persistence().client is aws.client("dynamodb"), "a client of its own"
assert boto3.DEFAULT_SESSION is None, "a boto3 session"
"""


def test_the_idempotency_records_use_the_functions_dynamodb_client():
    # Powertools' persistence layer imports boto3 (a create with an Idempotency-Key) but is handed the one
    # DynamoDB client: no boto3 session, no second load of the endpoints and models (≈ 0.2x).
    assert "boto3" in loaded_by("create_session", after=IDEMPOTENCY_CLIENT)["loaded"]
