"""The settings a first production deploy depends on: throttling, what survives a stack deletion,
the Powertools version on AWS, the account-wide API Gateway setting, the stream consumer's grants,
the listener cap against the broadcast's timeout, and the audio chunk size against the transports."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from session_core.usecases.broadcast import POST_THREADS

# AWS quotas (API Gateway: account throttle per region, WebSocket frame size; Kinesis: record size).
ACCOUNT_RATE, ACCOUNT_BURST = 10_000, 5_000
WEBSOCKET_MESSAGE_BYTES, WEBSOCKET_FRAME_BYTES = 128 * 1024, 32 * 1024
KINESIS_RECORD_BYTES = 1024 * 1024
# The status broadcast's cost per post (PostToConnection in the same region, with a margin for its tail).
POST_SECONDS = 0.05
# What the Lambda python3.13 runtime itself provides: the layer must not carry a second copy.
RUNTIME_PACKAGES = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}


def parameter(template, name) -> dict:
    return template["Parameters"][name]


def ref(name: str) -> dict:
    return {"Ref": name}


# ------------------------------------------------------------------ throttling


@pytest.mark.parametrize("rate, burst", [("HttpApiThrottlingRateLimit", "HttpApiThrottlingBurstLimit"),
                                         ("WebSocketThrottlingRateLimit", "WebSocketThrottlingBurstLimit"),
                                         ("AudioThrottlingRateLimit", "AudioThrottlingBurstLimit")])
def test_throttling_parameters_stay_within_the_account_quota(template, rate, burst):
    for name, quota in ((rate, ACCOUNT_RATE), (burst, ACCOUNT_BURST)):
        spec = parameter(template, name)
        assert spec["Type"] == "Number"
        assert 1 <= spec["MinValue"] <= spec["Default"] <= spec["MaxValue"] <= quota, name


def test_the_http_api_stage_is_throttled_from_the_parameters(template):
    settings = template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == ref("HttpApiThrottlingRateLimit")
    assert settings["ThrottlingBurstLimit"] == ref("HttpApiThrottlingBurstLimit")


def test_send_audio_has_its_own_stage_limit_sized_for_all_speakers_and_the_other_routes_the_default(template):
    api = template["Resources"]["WebSocketApi"]["Properties"]
    assert api["DefaultRouteSettings"] == {"ThrottlingRateLimit": ref("WebSocketThrottlingRateLimit"),
                                           "ThrottlingBurstLimit": ref("WebSocketThrottlingBurstLimit")}
    assert api["RouteSettings"] == {"sendAudio": {"ThrottlingRateLimit": ref("AudioThrottlingRateLimit"),
                                                  "ThrottlingBurstLimit": ref("AudioThrottlingBurstLimit")}}
    assert "sendAudio" in api["Routes"]
    # The default is the documented arithmetic: 200 speakers x 10 chunks of 100 ms a second.
    assert parameter(template, "AudioThrottlingRateLimit")["Default"] == 200 * 10


def test_no_checkov_comment_cites_throttling_the_template_does_not_set(template):
    for name, res in template["Resources"].items():
        for skip in (res.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            if "throttling" in skip["comment"].lower():
                assert "HTTP API and WebSocket stage throttling" in skip["comment"], name


# ----------------------------------------------------------------- data safety


@pytest.mark.parametrize("name", ["SessionsTable", "UserPool", "AudioStream"])
def test_what_holds_data_survives_a_stack_deletion_and_a_replacement(template, name):
    res = template["Resources"][name]
    assert res["DeletionPolicy"] == "Retain"
    assert res["UpdateReplacePolicy"] == "Retain"


def test_named_log_groups_go_with_the_stack_so_it_can_be_created_again_under_the_same_name(template):
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in res["Properties"]:
            assert res.get("DeletionPolicy", "Delete") == "Delete", name


# ------------------------------------------------------------------ Powertools


def test_every_function_runs_only_the_layer_built_from_this_repository(template, functions):
    assert "PowertoolsLayerVersion" not in template["Parameters"]
    for name, props in functions.items():
        assert props["Layers"] == [ref("SessionCoreLayer")], name
    assert ":layer:" not in json.dumps(template), "a layer ARN from outside the stack"


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"not pinned: {line}"
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


@pytest.fixture(scope="module")
def layer_pins(repo_root) -> dict[str, str]:
    return _pins((repo_root / "layers" / "session_core" / "requirements.txt").read_text())


def test_the_layer_pins_exactly_the_versions_the_tests_run(layer_pins, repo_root):
    tested = _pins((repo_root / "requirements" / "dev.txt").read_text())
    assert {"aws-lambda-powertools", "pydantic-core", "pyjwt", "aws-xray-sdk"} <= set(layer_pins)
    drifted = {name: (version, tested.get(name)) for name, version in layer_pins.items()
               if tested.get(name) != version}
    assert not drifted, f"layer pin vs requirements/dev.txt: {drifted}"


def test_the_layer_lists_every_run_time_dependency_of_what_it_pins(layer_pins):
    # Installed --no-deps: a dependency missing here would be missing on AWS (tracer needs aws-xray-sdk).
    missing = set()
    for name in layer_pins:
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in layer_pins and dependency not in RUNTIME_PACKAGES:
                missing.add(f"{dependency} (for {name})")
    assert not missing, sorted(missing)
    assert not set(layer_pins) & (RUNTIME_PACKAGES - {"jmespath"}), "the runtime provides these"


def test_the_layer_is_built_from_its_pins_and_nothing_else(template, repo_root):
    layer = template["Resources"]["SessionCoreLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    makefile = (repo_root / "layers" / "session_core" / "Makefile").read_text()
    (recipe,) = re.findall(r"^build-SessionCoreLayer:\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    install = recipe.replace("\\\n", " ")
    for flag in ("--no-deps", "--only-binary=:all:", "--platform manylinux2014_aarch64", "--python-version 3.13",
                 "-r requirements.txt", '--target "$(ARTIFACTS_DIR)/python"'):
        assert flag in install, flag
    assert 'cp -R session_core "$(ARTIFACTS_DIR)/python/"' in recipe


# ----------------------------------------------------- API Gateway account role


def test_the_account_wide_api_gateway_role_is_optional(template):
    assert parameter(template, "ManageApiGatewayAccount") == {**parameter(template, "ManageApiGatewayAccount"),
                                                              "Default": "true", "AllowedValues": ["true", "false"]}
    assert template["Conditions"]["CreateApiGatewayAccount"] == {
        "Fn::Equals": [ref("ManageApiGatewayAccount"), "true"]}
    for name in ("ApiGatewayAccount", "ApiGatewayCloudWatchRole"):
        assert template["Resources"][name]["Condition"] == "CreateApiGatewayAccount", name


def test_the_websocket_stage_waits_for_the_account_role_only_when_the_stack_sets_it(template):
    resources = template["Resources"]
    # A DependsOn on a resource whose condition is false fails the deploy; the reference inside !If does not.
    assert resources["WebSocketApi"]["DependsOn"] == "ApiGatewayAccountReady"
    ready = resources["ApiGatewayAccountReady"]
    assert "Condition" not in ready
    assert ready["Metadata"]["AccountSettings"]["Fn::If"][:2] == ["CreateApiGatewayAccount", ref("ApiGatewayAccount")]
    for name, res in resources.items():
        depends_on = res.get("DependsOn") or []
        assert "ApiGatewayAccount" not in ([depends_on] if isinstance(depends_on, str) else depends_on), name


# ----------------------------------------------------------- stream consumer


def test_no_function_uses_a_sam_stream_event_whose_managed_policy_reads_every_stream(functions):
    for name, props in functions.items():
        kinds = {event["Type"] for event in (props.get("Events") or {}).values()}
        assert not kinds & {"DynamoDB", "Kinesis"}, name
        assert "ManagedPolicyArns" not in props, name


def test_the_status_broadcast_reads_the_table_stream_through_an_explicit_mapping(template):
    mappings = {name: res["Properties"] for name, res in template["Resources"].items()
                if res["Type"] == "AWS::Lambda::EventSourceMapping"}
    assert sorted(mappings) == ["AudioFanoutEventSourceMapping", "AudioSliceEventSourceMapping",
                                "ReferencedAudioEventSourceMapping", "ReferencedTranslatedAudioEventSourceMapping",
                                "StatusBroadcastEventSourceMapping", "TranslatedAudioFanoutEventSourceMapping"]
    mapping = mappings["StatusBroadcastEventSourceMapping"]
    assert mapping["FunctionName"] == ref("StatusBroadcastFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["SessionsTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 3
    assert 1 <= mapping["ParallelizationFactor"] <= 10
    (pattern,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"])["eventName"] == ["MODIFY"]


@pytest.mark.parametrize("name, consumer, stream, function", [
    ("AudioFanoutEventSourceMapping", "AudioFanoutConsumer", "AudioStream", "AudioFanoutFunction"),
    ("TranslatedAudioFanoutEventSourceMapping", "TranslatedAudioFanoutConsumer", "TranslatedAudioStream",
     "AudioFanoutFunction"),
    ("AudioSliceEventSourceMapping", "AudioSliceConsumer", "AudioSliceStream", "AudioSliceFunction")])
def test_the_audio_fanout_reads_each_audio_stream_through_an_enhanced_fanout_consumer(template, name, consumer, stream,
                                                                                      function):
    mapping = template["Resources"][name]["Properties"]
    assert mapping["FunctionName"] == ref(function)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [consumer, "ConsumerARN"]}
    assert template["Resources"][consumer]["Properties"]["StreamARN"] == {"Fn::GetAtt": [stream, "Arn"]}
    # Audio is worth delivering at once or not at all: no batching window, no retries of stale audio.
    assert mapping["MaximumBatchingWindowInSeconds"] == 0
    assert mapping["MaximumRecordAgeInSeconds"] == 60 and mapping["MaximumRetryAttempts"] <= 2
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # A slice's (a session's, a language's) records stay in order across the shard's concurrent batches.
    assert mapping["ParallelizationFactor"] == 10


@pytest.mark.parametrize("name, stream", [("ReferencedAudioEventSourceMapping", "AudioStream"),
                                          ("ReferencedTranslatedAudioEventSourceMapping", "TranslatedAudioStream")])
def test_referenced_audio_reads_each_audio_stream_in_batches_of_about_two_seconds(template, name, stream):
    mapping = template["Resources"][name]["Properties"]
    assert mapping["FunctionName"] == ref("ReferencedAudioFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [stream, "Arn"]}
    # The batching window is a chunk's length; the batch size (records of 100 ms) does not cut it shorter.
    assert mapping["MaximumBatchingWindowInSeconds"] == 2 and mapping["BatchSize"] >= 10 * 2 * 10
    assert mapping["MaximumRecordAgeInSeconds"] == 60 and mapping["MaximumRetryAttempts"] <= 2
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_chunk_bucket_is_private_encrypted_tls_only_short_lived_and_readable_from_browsers(template):
    bucket = template["Resources"]["ChunkBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"][k] is True for k in (
        "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 1
    (cors,) = bucket["CorsConfiguration"]["CorsRules"]
    assert "GET" in cors["AllowedMethods"] and cors["AllowedOrigins"]
    policy = template["Resources"]["ChunkBucketPolicy"]["Properties"]
    assert policy["Bucket"] == ref("ChunkBucket")
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # The URLs expire in minutes: a listener fetches a chunk within seconds of being told of it.
    env = template["Resources"]["ReferencedAudioFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CHUNK_BUCKET_NAME"] == ref("ChunkBucket") and 30 <= int(env["CHUNK_URL_SECONDS"]) <= 600


# ------------------------------------------------------ listener cap vs timeout


def test_one_broadcast_at_the_listener_cap_finishes_well_inside_the_function_timeout(template, functions):
    cap = parameter(template, "MaxListenersPerSession")["MaxValue"]
    timeout = functions["StatusBroadcastFunction"]["Timeout"]
    seconds = cap / POST_THREADS * POST_SECONDS
    assert seconds <= 0.6 * timeout, f"{cap} listeners: {seconds:.0f} s of posts in a {timeout} s timeout"
    assert timeout <= 900


# --------------------------------------------------------------- audio chunks


def send_audio(size: int) -> bytes:
    """The largest sendAudio message for a chunk of `size` bytes (sequence numbers up to 2**53)."""
    data = base64.b64encode(bytes(size)).decode()
    return json.dumps({"action": "sendAudio", "seq": 2**53, "data": data}).encode()


def test_max_audio_bytes_allows_only_chunks_that_fit_a_websocket_message(template):
    spec = parameter(template, "MaxAudioBytes")
    assert spec["MinValue"] <= spec["Default"] <= spec["MaxValue"]
    assert len(send_audio(spec["MaxValue"])) <= WEBSOCKET_MESSAGE_BYTES
    # Honest: not far below what a message carries either (2 KiB more no longer fits).
    assert len(send_audio(spec["MaxValue"] + 2048)) > WEBSOCKET_MESSAGE_BYTES
    # The default fits one frame: what a client that does not fragment messages (a browser) can send.
    assert len(send_audio(spec["Default"])) <= WEBSOCKET_FRAME_BYTES < len(send_audio(spec["Default"] + 1024))
    # The Kinesis record (the chunk base64-encoded, with its session metadata) is far below 1 MiB.
    assert len(send_audio(spec["MaxValue"])) * 2 < KINESIS_RECORD_BYTES


# -------------------------------------------------------------- names and URLs


def test_the_websocket_api_is_named_after_the_stack(template):
    assert template["Resources"]["WebSocketApi"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-websocket"}


def test_output_urls_use_the_partitions_url_suffix(template):
    for name in ("HttpApiUrl", "WebSocketUrl"):
        value = template["Outputs"][name]["Value"]["Fn::Sub"]
        assert ".execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}" in value, name
        assert "amazonaws.com" not in value, name
