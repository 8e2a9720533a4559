"""Static checks of template.yaml (and of the files that go with it)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest


def resource(value) -> str:
    """A policy Resource (string or intrinsic) as a comparable string."""
    return json.dumps(value, sort_keys=True)


TABLE_ARN = resource({"Fn::GetAtt": ["SessionsTable", "Arn"]})
STREAM_ARN = resource({"Fn::GetAtt": ["AudioStream", "Arn"]})
# Starting a teardown, and reading its earlier executions (one that failed is started again under a new name).
START_TEARDOWN = {("states:StartExecution", resource({"Ref": "TeardownStateMachine"})),
                  ("states:DescribeExecution", resource({"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:"
                                                         "${AWS::AccountId}:execution:${TeardownStateMachine.Name}:*"}))}


def connections(method: str) -> tuple[str, str]:
    """ManageConnections on this API's own connections, one HTTP method."""
    arn = ("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/"
           f"{method}/@connections/*")
    return ("execute-api:ManageConnections", resource({"Fn::Sub": arn}))


def on_table(*actions: str) -> set[tuple[str, str]]:
    return {(f"dynamodb:{action}", TABLE_ARN) for action in actions}


# Every (action, resource) each function may use, exactly: a new permission means a new row here.
EXPECTED_GRANTS = {
    "CreateSessionFunction": on_table("PutItem", "GetItem", "UpdateItem", "DeleteItem"),
    "GetSessionFunction": on_table("GetItem"),
    "UpdateSessionFunction": on_table("UpdateItem") | START_TEARDOWN,
    "DeleteSessionFunction": on_table("UpdateItem") | START_TEARDOWN,
    # Reads a session's owner only for a connection that names no role; $connect's conditional write decides.
    "WsAuthorizerFunction": on_table("GetItem"),
    # The old protocol's connect-time messages go through the welcome function.
    "WsConnectFunction": on_table("GetItem", "PutItem", "UpdateItem", "DeleteItem") | {connections("POST"), connections("DELETE")}
    | {("lambda:InvokeFunction", resource({"Fn::GetAtt": ["WsWelcomeFunction", "Arn"]}))},
    "WsDisconnectFunction": on_table("GetItem", "DeleteItem", "UpdateItem") | START_TEARDOWN,
    "WsSendAudioFunction": on_table("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchWriteItem")
    | {("kinesis:PutRecord", STREAM_ARN)},
    "WsHeartbeatFunction": {connections("POST")},  # connectionRefreshRequired to the published clients
    "WsSessionControlFunction": on_table("GetItem", "UpdateItem", "Query", "BatchWriteItem")
    | {("kinesis:PutRecord", STREAM_ARN)} | START_TEARDOWN,  # endSession
    "WsSessionInfoFunction": on_table("GetItem", "UpdateItem"),
    "WsWelcomeFunction": {connections("POST")} | on_table("GetItem"),  # the state, read when it is posted
    "WsCreateSessionFunction": on_table("GetItem", "PutItem", "UpdateItem"),
    "WsDefaultFunction": set(),
    "StatusBroadcastFunction": on_table("GetItem", "Query", "UpdateItem", "DeleteItem") | {connections("POST")}
    | {("sqs:SendMessage", resource({"Fn::GetAtt": ["StatusBroadcastFailureQueue", "Arn"]}))}
    # Its event source mapping reads the table's stream, no other.
    | {(f"dynamodb:{action}", resource({"Fn::GetAtt": ["SessionsTable", "StreamArn"]}))
       for action in ("DescribeStream", "GetRecords", "GetShardIterator")}
    | {("dynamodb:ListStreams", resource({"Fn::Sub": "${SessionsTable.Arn}/stream/*"}))},
    # Listeners of one language from the index; gone listeners dropped as the status broadcast does; its two
    # mappings read the audio streams through their enhanced fan-out consumers, no other stream.
    "AudioFanoutFunction": on_table("GetItem", "Query", "UpdateItem", "DeleteItem") | {connections("POST")}
    | {("dynamodb:Query", resource({"Fn::Sub": "${SessionsTable.Arn}/index/ListenersByLanguage"}))}
    | {(f"kinesis:{action}", resource({"Fn::GetAtt": [consumer, "ConsumerARN"]}))
       for action in ("SubscribeToShard", "DescribeStreamConsumer")
       for consumer in ("AudioFanoutConsumer", "TranslatedAudioFanoutConsumer")}
    | {(f"kinesis:{action}", resource({"Fn::GetAtt": [stream, "Arn"]}))
       for action in ("DescribeStream", "DescribeStreamSummary", "GetRecords", "GetShardIterator", "ListShards")
       for stream in ("AudioStream", "TranslatedAudioStream")}
    # A crowd's chunks handed to the slice workers, and nothing else written to that stream.
    | {("kinesis:PutRecords", resource({"Fn::GetAtt": ["AudioSliceStream", "Arn"]}))},
    # The slice worker posts and drops gone listeners; it reads its one stream through its consumer, and no index.
    "AudioSliceFunction": on_table("GetItem", "Query", "UpdateItem", "DeleteItem") | {connections("POST")}
    | {(f"kinesis:{action}", resource({"Fn::GetAtt": ["AudioSliceConsumer", "ConsumerARN"]}))
       for action in ("SubscribeToShard", "DescribeStreamConsumer")}
    | {(f"kinesis:{action}", resource({"Fn::GetAtt": ["AudioSliceStream", "Arn"]}))
       for action in ("DescribeStream", "DescribeStreamSummary", "GetRecords", "GetShardIterator", "ListShards")},
    # The same reads and posts for the listeners of referenced chunks; its two mappings read the audio streams
    # directly (no consumer); it stores chunks and signs the URLs to them (GetObject: what a URL is checked against).
    "ReferencedAudioFunction": on_table("GetItem", "Query", "UpdateItem", "DeleteItem") | {connections("POST")}
    | {("dynamodb:Query", resource({"Fn::Sub": "${SessionsTable.Arn}/index/ListenersByLanguage"}))}
    | {(f"s3:{action}", resource({"Fn::Sub": "${ChunkBucket.Arn}/chunks/*"})) for action in ("PutObject", "GetObject")}
    | {(f"kinesis:{action}", resource({"Fn::GetAtt": [stream, "Arn"]}))
       for action in ("DescribeStream", "DescribeStreamSummary", "GetRecords", "GetShardIterator", "ListShards")
       for stream in ("AudioStream", "TranslatedAudioStream")},
    "TeardownWorkerFunction": on_table("DeleteItem", "UpdateItem") | {connections("POST"), connections("DELETE")},
    "TeardownFinishFunction": on_table("UpdateItem"),
    # Ends forgotten sessions and starts their teardown; asks whether a socket is still there.
    "SessionSweepFunction": on_table("GetItem", "Query", "UpdateItem", "DeleteItem", "BatchWriteItem") | START_TEARDOWN
    | {connections("GET")},
}
POOL_ID = {"Fn::If": ["CreateUserPool", {"Ref": "UserPool"}, {"Ref": "ExistingUserPoolId"}]}
CLIENT_ID = {"Fn::If": ["CreateUserPool", {"Ref": "UserPoolClient"}, {"Ref": "ExistingUserPoolClientId"}]}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def test_the_permission_table_covers_every_function(functions):
    assert set(functions) == set(EXPECTED_GRANTS)


# Per audio frame, a trace would cost more than the frame's compute (docs/performance.md): sendAudio is traced
# only when its caller's trace is sampled (PassThrough), which API Gateway WebSocket requests never are.
PASS_THROUGH_TRACING = {"WsSendAudioFunction", "AudioFanoutFunction", "AudioSliceFunction"}


@pytest.mark.parametrize("name", sorted(EXPECTED_GRANTS))
def test_function_runs_python313_arm64_traced_with_json_logs(functions, name):
    props = functions[name]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Tracing"] == ("PassThrough" if name in PASS_THROUGH_TRACING else "Active")
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    # Lambda drops its INFO platform lines (start, report: two a frame) and DEBUG lines before they are billed.
    assert props["LoggingConfig"]["SystemLogLevel"] == "WARN"
    assert props["LoggingConfig"]["ApplicationLogLevel"] == "INFO"


@pytest.mark.parametrize("name", sorted(EXPECTED_GRANTS))
def test_function_handler_file_exists(functions, repo_root, name):
    props = functions[name]
    module, _, _ = props["Handler"].rpartition(".")
    assert (repo_root / props["CodeUri"] / f"{module.replace('.', '/')}.py").is_file()


@pytest.mark.parametrize("name", sorted(EXPECTED_GRANTS))
def test_function_is_granted_exactly_its_actions_on_exactly_its_resources(functions, name):
    props = functions[name]
    assert "Role" not in props, "an explicit Role would bypass the Policies checked here"
    grants = set()
    for policy in as_list(props.get("Policies", [])):
        # SAM policy templates and managed policies grant more than their name says.
        assert isinstance(policy, dict) and set(policy) == {"Statement"}, f"not an inline statement: {policy!r}"
        for statement in as_list(policy["Statement"]):
            assert statement["Effect"] == "Allow"
            assert "NotAction" not in statement and "NotResource" not in statement
            grants |= {(action, resource(arn)) for action in as_list(statement["Action"])
                       for arn in as_list(statement["Resource"])}
    assert grants == EXPECTED_GRANTS[name]


def test_no_wildcard_action_anywhere(template):
    # A Deny may name every action (the chunk bucket refuses anything but TLS): it takes away, never grants.
    for node in walk(template):
        if isinstance(node, dict):
            assert "NotAction" not in node
            if node.get("Effect") == "Deny":
                continue
            for action in as_list(node.get("Action", [])):
                assert "*" not in str(action), f"wildcard action {action!r}"


def test_sessions_table(template):
    table = template["Resources"]["SessionsTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types["pk"] == types["sk"] == "S"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_every_route_uses_the_cognito_authorizer(template, http_events):
    api = template["Resources"]["HttpApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "CognitoAuthorizer"
    assert http_events
    for name, event in http_events:
        # Without ApiId SAM puts the route on an implicit API that has no authorizer.
        assert event.get("ApiId") == {"Ref": "HttpApi"}, name
        assert event.get("Auth", {}).get("Authorizer", "CognitoAuthorizer") == "CognitoAuthorizer", name


def test_authorizer_checks_the_pool_issuer_and_the_client_audience(template):
    resources = template["Resources"]
    authorizer = resources["HttpApi"]["Properties"]["Auth"]["Authorizers"]["CognitoAuthorizer"]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    jwt = authorizer["JwtConfiguration"]
    assert jwt["issuer"] == {
        "Fn::Sub": ["https://cognito-idp.${AWS::Region}.amazonaws.com/${PoolId}", {"PoolId": POOL_ID}]
    }
    assert jwt["audience"] == [CLIENT_ID]
    assert resources["UserPoolClient"]["Properties"]["UserPoolId"] == {"Ref": "UserPool"}


def test_cors_origins_come_from_the_parameter(template):
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == {"Ref": "CorsAllowedOrigins"}
    assert template["Parameters"]["CorsAllowedOrigins"]["Type"] == "CommaDelimitedList"


def test_samconfig_parameter_overrides_are_template_parameters(template, repo_root):
    config = tomllib.loads((repo_root / "samconfig.toml").read_text(encoding="utf-8"))
    found = 0
    for env in config.values():
        if not isinstance(env, dict):
            continue  # version = 0.1
        for command in env.values():
            overrides = command.get("parameters", {}).get("parameter_overrides")
            if overrides is None:
                continue
            # A list of "Key=Value" (as written here) or one string (as `sam deploy --guided` writes).
            items = overrides if isinstance(overrides, list) else shlex.split(overrides)
            keys = {item.split("=", 1)[0] for item in items}
            assert keys <= set(template["Parameters"]), f"unknown parameters: {keys - set(template['Parameters'])}"
            found += 1
    assert found, "samconfig.toml has no parameter_overrides"


def test_the_deploying_guide_documents_every_template_parameter(template, repo_root):
    guide = repo_root / "docs" / "deploying.md"
    assert guide.is_file(), "docs/deploying.md is missing"
    text = guide.read_text(encoding="utf-8")
    missing = [name for name in template["Parameters"] if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"docs/deploying.md does not mention: {missing}"


@pytest.mark.parametrize("name", sorted(EXPECTED_GRANTS))
def test_function_has_a_sample_event_for_its_route(functions, http_events, repo_root, name):
    path = repo_root / "events" / f"{Path(functions[name]['CodeUri']).name}.json"
    assert path.is_file(), f"{name}: no sample event {path.relative_to(repo_root)}"
    event = json.loads(path.read_text(encoding="utf-8"))
    routes = {f"{e['Method'].upper()} {e['Path']}" for n, e in http_events if n == name}
    if routes:  # an HttpApi payload 2.0 event names its route
        assert event.get("routeKey") in routes


def test_the_deploying_guide_names_exactly_the_template_outputs(template, repo_root):
    text = (repo_root / "docs" / "deploying.md").read_text(encoding="utf-8")
    section = text[text.index("## First deploy"):]
    section = section[:section.index("\n## ", 4)] if "\n## " in section[4:] else section
    named = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    assert named == set(template["Outputs"]), (named ^ set(template["Outputs"]))


def test_every_two_way_websocket_route_has_a_route_response(template):
    api = template["Resources"]["WebSocketApi"]["Properties"]
    two_way = {key for key, route in api["Routes"].items() if route.get("RouteResponseSelectionExpression")}
    responses = {res["Properties"]["RouteId"]["Ref"] for res in template["Resources"].values()
                 if res["Type"] == "AWS::ApiGatewayV2::RouteResponse"}
    # AWS::Serverless::WebSocketApi names a route's resource WebSocketApi<Key capitalized>Route.
    expected = {f"WebSocketApi{key.replace('$', '').capitalize()}Route" for key in two_way}
    assert responses == expected
    assert "$connect" not in two_way and "$disconnect" not in two_way


def test_the_old_clients_messages_reach_the_functions_of_their_new_names(template):
    # Same function, same rules and same grants; two-way, so their errors reach the caller.
    routes = template["Resources"]["WebSocketApi"]["Properties"]["Routes"]
    for old, new in {"audioChunk": "sendAudio", "pauseBroadcast": "pause", "resumeBroadcast": "resume"}.items():
        assert routes[old] == routes[new], old


def test_the_websocket_authorizer_has_no_identity_source_so_it_always_runs(template):
    auth = template["Resources"]["WebSocketApi"]["Properties"]["Auth"]
    assert auth == {"AuthType": "CUSTOM", "AuthArn": {"Ref": "WsAuthorizerFunction.Alias"}}


def test_stream_batches_that_fail_every_retry_go_to_an_encrypted_queue(template):
    mapping = template["Resources"]["StatusBroadcastEventSourceMapping"]["Properties"]
    on_failure = mapping["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Destination": {"Fn::GetAtt": ["StatusBroadcastFailureQueue", "Arn"]}}
    queue = template["Resources"]["StatusBroadcastFailureQueue"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["KmsMasterKeyId"] == "alias/aws/sqs"


def test_the_stream_consumer_reports_failed_records_not_whole_batches(template):
    mapping = template["Resources"]["StatusBroadcastEventSourceMapping"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True  # a crash still splits the batch


def test_a_dropped_stream_batch_raises_an_alarm(template):
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
              and r["Properties"].get("Namespace") == "AWS/SQS"]
    assert len(alarms) == 1, alarms
    alarm = alarms[0]
    assert alarm["Dimensions"] == [{"Name": "QueueName",
                                    "Value": {"Fn::GetAtt": ["StatusBroadcastFailureQueue", "QueueName"]}}]
    assert (alarm["MetricName"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "ApproximateNumberOfMessagesVisible", "GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
