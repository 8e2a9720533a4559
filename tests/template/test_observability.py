"""Static checks of the operations side of template.yaml: alarms (metric, statistic,
threshold parameter, comparison, the topic they notify), the dashboard, access
logs, API Gateway's logging role and tracing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.template.conftest import dashboard_body, load_cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(name for name, res in load_cfn_yaml(ROOT / "template.yaml")["Resources"].items()
                   if res["Type"] == "AWS::Serverless::Function")
TOPIC = [{"Ref": "AlarmTopic"}]
HTTP_API = {"Ref": "HttpApi"}
WS_API = {"Ref": "WebSocketApi"}
STAGE = {"Ref": "StageName"}
NAMESPACE = "BroadcastSessions"
SERVICE = "session-service"

# alarm -> (HTTP method, API Gateway Resource, threshold parameter, its default)
LATENCY_ALARMS = {
    "CreateSessionLatencyAlarm": ("POST", "/sessions", "CreateSessionLatencyBudgetMs", 2000),
    "GetSessionLatencyAlarm": ("GET", "/sessions/{sessionId}", "GetSessionLatencyBudgetMs", 500),
    "UpdateSessionLatencyAlarm": ("PATCH", "/sessions/{sessionId}", "UpdateSessionLatencyBudgetMs", 1000),
    "DeleteSessionLatencyAlarm": ("DELETE", "/sessions/{sessionId}", "DeleteSessionLatencyBudgetMs", 1000),
}


# --- helpers ---------------------------------------------------------------------

def resources_of(template: dict, rtype: str) -> dict[str, dict]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == rtype}


@pytest.fixture(scope="module")
def alarms(template) -> dict[str, dict]:
    """Logical ID -> Properties of every CloudWatch alarm."""
    return {name: res["Properties"] for name, res in resources_of(template, "AWS::CloudWatch::Alarm").items()}


def dims(dimensions: list[dict]) -> dict:
    return {d["Name"]: d["Value"] for d in dimensions}


def queries(alarm: dict) -> dict[str, dict]:
    """Metric-math alarm: Id -> query."""
    return {q["Id"]: q for q in alarm["Metrics"]}


def stat_of(alarm: dict, query_id: str) -> tuple[str, str, dict, str, int]:
    """(namespace, metric name, dimensions, statistic, period) of a metric query of the alarm."""
    stat = queries(alarm)[query_id]["MetricStat"]
    metric = stat["Metric"]
    return metric["Namespace"], metric["MetricName"], dims(metric.get("Dimensions", [])), stat["Stat"], stat["Period"]


def returned_expression(alarm: dict) -> str:
    (returned,) = [q for q in alarm["Metrics"] if q.get("ReturnData", True)]
    return returned["Expression"]


def param_default(template: dict, threshold) -> float:
    assert isinstance(threshold, dict) and set(threshold) == {"Ref"}, f"threshold {threshold!r} is not a parameter"
    return float(template["Parameters"][threshold["Ref"]]["Default"])


# --- every alarm ---------------------------------------------------------------------

def test_the_alarm_topic_and_its_optional_email_subscription(template):
    resources = template["Resources"]
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Type"] == "AWS::SNS::Subscription"
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email",
                                          "Endpoint": {"Ref": "AlarmEmail"}}
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert template["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}


def test_every_alarm_notifies_the_topic_and_treats_missing_data_as_fine(alarms):
    assert len(alarms) >= 25
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == TOPIC, name
        assert alarm["OKActions"] == TOPIC, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", name
        assert alarm["AlarmDescription"], name


def test_every_threshold_is_a_parameter_but_the_failed_teardown_and_dropped_batch_ones(template, alarms):
    for name, alarm in alarms.items():
        if name in ("TeardownFailedAlarm", "StatusBroadcastFailureQueueAlarm"):
            assert alarm["Threshold"] == 0  # any failed execution, any dropped batch
        else:
            param_default(template, alarm["Threshold"])


def test_metric_math_alarms_are_well_formed(alarms):
    """At most 10 metrics (CloudWatch's limit), no SEARCH, exactly one returned
    expression, and every ID an expression names is defined in the alarm."""
    for name, alarm in alarms.items():
        if "Metrics" not in alarm:
            assert {"Namespace", "MetricName", "Period"} <= set(alarm), name
            assert ("Statistic" in alarm) != ("ExtendedStatistic" in alarm), name
            continue
        assert not {"Namespace", "MetricName", "Statistic", "ExtendedStatistic"} & set(alarm), name
        ids = queries(alarm)
        assert sum("MetricStat" in q for q in ids.values()) <= 10, name
        for query in ids.values():
            assert re.fullmatch(r"[a-z][A-Za-z0-9_]*", query["Id"]), query["Id"]
            if "Expression" in query:
                assert "SEARCH" not in query["Expression"], name
                names = set(re.findall(r"\b([a-z][A-Za-z0-9_]*)\b", query["Expression"]))
                assert names <= set(ids) | {"IF", "FILL"}, f"{name}: {names - set(ids)}"
        returned_expression(alarm)


# --- latency -------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LATENCY_ALARMS))
def test_each_http_route_has_a_p95_latency_alarm_at_its_budget(template, alarms, name):
    method, resource, parameter, default = LATENCY_ALARMS[name]
    alarm = alarms[name]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "Latency")
    assert dims(alarm["Dimensions"]) == {"ApiId": HTTP_API, "Stage": STAGE, "Method": method, "Resource": resource}
    assert alarm["ExtendedStatistic"] == "p95"
    assert alarm["Threshold"] == {"Ref": parameter}
    assert param_default(template, alarm["Threshold"]) == default
    assert alarm["Period"] == 300 and (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (2, 3)


def test_the_latency_alarms_cover_exactly_the_http_routes(http_events):
    routes = {(event["Method"].upper(), event["Path"]) for _, event in http_events}
    assert routes == {(method, resource) for method, resource, _, _ in LATENCY_ALARMS.values()}


def test_the_http_api_publishes_per_route_metrics(template):
    # Without detailed metrics HTTP APIs publish no Method/Resource dimensions: the alarms would never see data.
    props = template["Resources"]["HttpApi"]["Properties"]
    assert props["DefaultRouteSettings"]["DetailedMetricsEnabled"] is True


def test_websocket_integration_latency_alarm(template, alarms):
    alarm = alarms["WebSocketLatencyAlarm"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "IntegrationLatency")
    assert dims(alarm["Dimensions"]) == {"ApiId": WS_API, "Stage": STAGE}
    assert alarm["ExtendedStatistic"] == "p95"
    assert alarm["Threshold"] == {"Ref": "WebSocketLatencyBudgetMs"}
    assert param_default(template, alarm["Threshold"]) == 1000


# --- error rates ---------------------------------------------------------------------

def test_http_api_error_rate_is_5xx_over_count(template, alarms):
    alarm = alarms["HttpApiErrorRateAlarm"]
    assert returned_expression(alarm) == "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)"
    api = {"ApiId": HTTP_API, "Stage": STAGE}
    assert stat_of(alarm, "errors") == ("AWS/ApiGateway", "5xx", api, "Sum", 300)
    assert stat_of(alarm, "requests") == ("AWS/ApiGateway", "Count", api, "Sum", 300)
    assert alarm["Threshold"] == {"Ref": "ErrorRateAlarmPercent"}
    assert param_default(template, alarm["Threshold"]) == 5


def test_websocket_error_rate_is_failed_integrations_over_connects_and_messages(alarms):
    alarm = alarms["WebSocketErrorRateAlarm"]
    ids = queries(alarm)
    # IntegrationError counts every 4xx of an integration: $connect's deliberate refusals (a full or ended
    # session, someone else's) are answers, not failures, and are taken out (HandshakeRefused, which $connect
    # counts with each one).
    assert returned_expression(alarm) == \
        "IF(requests > 0, 100 * (IF(failed > 0, failed, 0) + FILL(executionErrors, 0)) / requests, 0)"
    assert ids["failed"]["Expression"] == "FILL(integrationErrors, 0) - FILL(refused, 0)"
    assert ids["requests"]["Expression"] == "FILL(connects, 0) + FILL(messages, 0)"
    api = {"ApiId": WS_API, "Stage": STAGE}
    for query_id, metric in [("integrationErrors", "IntegrationError"), ("executionErrors", "ExecutionError"),
                             ("connects", "ConnectCount"), ("messages", "MessageCount")]:
        assert stat_of(alarm, query_id) == ("AWS/ApiGateway", metric, api, "Sum", 300)
    assert stat_of(alarm, "refused") == (NAMESPACE, "HandshakeRefused", {"service": SERVICE, "stage": STAGE},
                                         "Sum", 300)
    assert len(alarm["Metrics"]) <= 10  # CloudWatch's limit for one alarm
    assert alarm["Threshold"] == {"Ref": "ErrorRateAlarmPercent"}


def function_alarms(alarms: dict) -> dict[str, str]:
    """Function logical ID -> the name of its error-rate alarm."""
    found = {}
    for name, alarm in alarms.items():
        if "Metrics" not in alarm:
            continue
        for query in alarm["Metrics"]:
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "AWS/Lambda" and metric["MetricName"] == "Errors":
                function = dims(metric["Dimensions"])["FunctionName"]["Ref"]
                assert function not in found, f"{function} has two error alarms"
                found[function] = name
    return found


def test_every_function_has_exactly_one_error_rate_alarm(functions, alarms):
    assert set(function_alarms(alarms)) == set(functions)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_error_rate_is_errors_over_invocations(template, alarms, function):
    name = function_alarms(alarms)[function]
    assert name == f"{function}ErrorRateAlarm"
    alarm = alarms[name]
    target = {"FunctionName": {"Ref": function}}
    assert stat_of(alarm, "errors") == ("AWS/Lambda", "Errors", target, "Sum", 300)
    assert stat_of(alarm, "invocations") == ("AWS/Lambda", "Invocations", target, "Sum", 300)
    if function == "WsAuthorizerFunction":
        # A refused token is an error by API Gateway's authorizer contract: those are taken out.
        assert returned_expression(alarm) == \
            "IF(invocations > 0, 100 * IF(failures > 0, failures, 0) / invocations, 0)"
        assert queries(alarm)["failures"]["Expression"] == "errors - FILL(unauthorized, 0)"
        # Only the authorizer's: the HTTP functions' 401s (api "http") are no authorizer invocation, and
        # subtracting them would hide the authorizer's crashes.
        assert stat_of(alarm, "unauthorized") == (NAMESPACE, "AuthorizationFailure",
                                                  {"api": "websocket", "service": SERVICE, "stage": STAGE},
                                                  "Sum", 300)
    else:
        # IF(...) keeps a function without invocations from dividing by zero.
        assert returned_expression(alarm) == "IF(invocations > 0, 100 * errors / invocations, 0)"
        assert len(alarm["Metrics"]) == 3
    assert alarm["Threshold"] == {"Ref": "ErrorRateAlarmPercent"}
    assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (2, 3)


# --- workflow and throttling -----------------------------------------------------------

def test_failed_teardown_executions_alarm(alarms):
    alarm = alarms["TeardownFailedAlarm"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/States", "ExecutionsFailed", "Sum")
    assert dims(alarm["Dimensions"]) == {"StateMachineArn": {"Ref": "TeardownStateMachine"}}
    assert alarm["Threshold"] == 0 and alarm["EvaluationPeriods"] == 1


def test_kinesis_write_throttling_alarm(alarms):
    alarm = alarms["AudioStreamThrottleAlarm"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == \
        ("AWS/Kinesis", "WriteProvisionedThroughputExceeded", "Sum")
    assert dims(alarm["Dimensions"]) == {"StreamName": {"Ref": "AudioStream"}}
    assert alarm["Threshold"] == {"Ref": "ThrottleAlarmThreshold"}


def test_dynamodb_throttling_alarm(alarms):
    alarm = alarms["SessionsTableThrottleAlarm"]
    assert returned_expression(alarm) == "FILL(reads, 0) + FILL(writes, 0)"
    table = {"TableName": {"Ref": "SessionsTable"}}
    assert stat_of(alarm, "reads") == ("AWS/DynamoDB", "ReadThrottleEvents", table, "Sum", 300)
    assert stat_of(alarm, "writes") == ("AWS/DynamoDB", "WriteThrottleEvents", table, "Sum", 300)
    assert alarm["Threshold"] == {"Ref": "ThrottleAlarmThreshold"}


# --- dashboard ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dashboard(template) -> dict:
    """The dashboard as CloudWatch reads it (metrics shorthand written out), substitutions as text."""
    (resource,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    names = set(re.findall(r"\$\{([\w:]+)\}", body))
    known = set(template["Parameters"]) | set(template["Resources"]) | {"AWS::Region", "AWS::StackName"}
    assert names <= known, f"unknown substitutions: {names - known}"
    return dashboard_body(body)


def widget_metrics(dashboard: dict) -> list[tuple[str, list]]:
    """(widget title, metric row) for every row of every widget."""
    return [(w["properties"]["title"], row) for w in dashboard["widgets"] for row in w["properties"]["metrics"]]


def emf_rows(dashboard: dict, name: str) -> list[list]:
    return [row for _, row in widget_metrics(dashboard) if row[:2] == [NAMESPACE, name]]


def test_the_dashboard_shows_the_business_metrics_with_the_stage(dashboard):
    for name in ("SessionEnded", "SessionDuration", "ListenerJoined", "ListenerLeft", "AudioChunksForwarded",
                 "AudioBytesForwarded", "AudioDroppedWhilePaused", "TeardownDuration", "LegacySessionCreation",
                 "AuthorizationFailure"):
        rows = emf_rows(dashboard, name)
        assert rows, f"{name} is not on the dashboard"
        for row in rows:
            pairs = dict(zip(row[2:-1:2], row[3:-1:2], strict=True)) if isinstance(row[-1], dict) else {}
            assert pairs.get("stage") == "${StageName}" and pairs.get("service") == SERVICE, row
    apis = {row[row.index("api") + 1] for row in emf_rows(dashboard, "SessionCreated")}
    assert apis == {"http", "websocket"}
    expressions = " ".join(row[0].get("expression", "") for _, row in widget_metrics(dashboard)
                           if isinstance(row[0], dict))
    for name in ("AudioRefused", "ColdStart", "ConnectionRefused"):  # by reason / function: SEARCH
        assert f'MetricName="{name}"' in expressions


def test_the_dashboard_shows_each_published_message_by_dialect_so_the_switch_off_can_be_planned(dashboard):
    # The (dialect, action) pairs are many and grow with the published clients: one SEARCH finds them all,
    # by exactly the dimensions the code writes (tests/functions/test_metrics.py checks those: action, dialect).
    expressions = [row[0]["expression"] for _, row in widget_metrics(dashboard)
                   if isinstance(row[0], dict) and "LegacyProtocolMessage" in row[0].get("expression", "")]
    assert expressions == ["SEARCH('{BroadcastSessions,action,dialect,service,stage} "
                           "MetricName=\"LegacyProtocolMessage\" stage=\"${StageName}\"', 'Sum', 300)"]


def test_the_dashboard_shows_p50_p95_p99_latency_of_every_http_route_against_its_budget(dashboard):
    for method, resource, budget, _ in LATENCY_ALARMS.values():
        route = ["AWS/ApiGateway", "Latency", "ApiId", "${HttpApi}", "Stage", "${StageName}",
                 "Method", method, "Resource", resource]
        (widget,) = [w["properties"] for w in dashboard["widgets"]
                     if any(row[:-1] == route for row in w["properties"]["metrics"])]
        assert [row[-1]["stat"] for row in widget["metrics"] if row[:-1] == route] == ["p50", "p95", "p99"]
        assert widget["annotations"]["horizontal"] == [{"label": "budget", "value": f"${{{budget}}}"}]


def test_the_dashboard_shows_error_rates_of_both_apis_and_every_function(dashboard, functions):
    titles = {w["properties"]["title"] for w in dashboard["widgets"]}
    assert {"HTTP API 5xx rate (%)", "WebSocket API error rate (%)", "Function errors"} <= titles
    rows = [row for _, row in widget_metrics(dashboard) if row[:2] == ["AWS/Lambda", "Errors"]]
    # Each line reads the function it is labelled with.
    assert sorted(rows, key=str) == sorted(
        (["AWS/Lambda", "Errors", "FunctionName", f"${{{function}}}", {"label": function, "stat": "Sum"}]
         for function in functions),
        key=str)


def test_every_emf_metric_on_the_dashboard_or_in_an_alarm_is_one_the_code_emits(template, dashboard, alarms):
    sources = "\n".join(p.read_text() for p in [*(ROOT / "layers").rglob("*.py"), *(ROOT / "functions").rglob("*.py")])
    emitted = set(re.findall(r'(?:metric\(\s*|refusal_metric=)"(\w+)"', sources))
    used = {row[1] for _, row in widget_metrics(dashboard) if row[0] == NAMESPACE}
    used |= set(re.findall(r'MetricName=\\?"(\w+)\\?"', json.dumps(dashboard)))
    for alarm in alarms.values():
        for query in alarm.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == NAMESPACE:
                used.add(metric["MetricName"])
    assert used and used <= emitted, used - emitted
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert (env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]) == (NAMESPACE, SERVICE)


def test_the_dashboard_widgets_do_not_overlap(dashboard):
    cells = set()
    for widget in dashboard["widgets"]:
        assert widget["x"] + widget["width"] <= 24
        area = {(x, y) for x in range(widget["x"], widget["x"] + widget["width"])
                for y in range(widget["y"], widget["y"] + widget["height"])}
        assert not area & cells, widget["properties"]["title"]
        cells |= area


# --- access logs and tracing ---------------------------------------------------------------

def access_format(template: dict, api: str) -> dict:
    settings = template["Resources"][api]["Properties"]["AccessLogSettings"]
    group = settings["DestinationArn"]["Fn::GetAtt"][0]
    log_group = template["Resources"][group]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert settings["DestinationArn"] == {"Fn::GetAtt": [group, "Arn"]}
    fmt = settings["Format"]
    assert "\n" not in fmt, "one line per request"
    return json.loads(fmt)


def test_http_api_access_log_is_json_with_the_request_id(template):
    fields = access_format(template, "HttpApi")
    assert fields["requestId"] == "$context.requestId"
    assert {"routeKey", "status", "responseLatency", "integrationLatency", "integrationError"} <= set(fields)


def test_websocket_api_access_log_is_json_with_the_request_and_connection_ids_and_no_query(template):
    fields = access_format(template, "WebSocketApi")
    assert fields["requestId"] == "$context.requestId"
    assert fields["connectionId"] == "$context.connectionId"
    assert {"eventType", "routeKey", "status", "integrationLatency"} <= set(fields)
    # A speaker's token travels in the query string: nothing that could carry it.
    for value in fields.values():
        assert not re.search(r"query|path|input|request\.|header", value, re.IGNORECASE), value


def test_api_gateway_may_write_websocket_logs(template):
    resources = template["Resources"]
    role = resources["ApiGatewayCloudWatchRole"]
    assert role["Type"] == "AWS::IAM::Role" and role["DeletionPolicy"] == "Retain"
    props = role["Properties"]
    (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert props["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}]
    assert "Policies" not in props
    account = resources["ApiGatewayAccount"]
    assert account["Type"] == "AWS::ApiGateway::Account"
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    # The stage's access logging fails to deploy before the account role is set (through a handle
    # that references the optional setting: tests/template/test_production_settings.py).
    assert resources["WebSocketApi"]["DependsOn"] == "ApiGatewayAccountReady"


def test_the_teardown_workflow_is_traced_and_logs_no_execution_data(template):
    props = template["Resources"]["TeardownStateMachine"]["Properties"]
    assert props["Tracing"] == {"Enabled": True}
    assert props["Logging"]["IncludeExecutionData"] is False


def test_the_operations_guide_names_every_alarm(template, alarms):
    section = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(\w+Alarm)`", section))
    per_function = {name for name in alarms if name.endswith("FunctionErrorRateAlarm")}
    assert named | per_function == set(alarms), set(alarms) - named - per_function
    assert "`<Function>ErrorRateAlarm`" in section
