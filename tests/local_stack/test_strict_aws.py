"""The local AWS endpoint says no where AWS does: IAM from each function's SAM-expanded role, DynamoDB
transaction conflicts, and the @faults hook. The proxy runs for real here, in front of a fake upstream
that holds each request for a while, so the overlaps DynamoDB would see are made on purpose."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from local_stack.aws_proxy import AwsProxy
from local_stack.conflicts import TransactionConflicts
from local_stack.iam import Iam, Role, Statement, access_key_for, function_roles, operation_of, requests_of
from local_stack.template import ACCOUNT_ID, Physical, Template, TemplateError, load_yaml

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
TABLE = "sessions"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}"


def role(*statements: dict) -> Role:
    return Role("Fn", "local-Fn", "local-FnRole", tuple(Statement.parse(s, "test") for s in statements))


# ------------------------------------------------------------------------------ the IAM decision


def test_an_allow_must_name_the_action_and_the_resource():
    fn = role({"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": TABLE_ARN})
    assert fn.allows("dynamodb:UpdateItem", TABLE_ARN)
    assert fn.allows("DynamoDB:updateitem", TABLE_ARN)  # actions are case-insensitive
    assert not fn.allows("dynamodb:GetItem", TABLE_ARN)
    assert not fn.allows("dynamodb:UpdateItem", TABLE_ARN + "-other")
    assert not fn.allows("dynamodb:UpdateItem", TABLE_ARN.upper())  # resources are not


def test_wildcards_deny_wins_and_not_action():
    fn = role({"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": f"arn:aws:dynamodb:*:{ACCOUNT_ID}:table/s?ssions"},
              {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"},
              {"Effect": "Allow", "NotAction": "kinesis:*", "Resource": "arn:aws:sqs:*"})
    assert fn.allows("dynamodb:PutItem", TABLE_ARN)
    assert not fn.allows("dynamodb:DeleteItem", TABLE_ARN)
    assert not fn.allows("dynamodb:Query", TABLE_ARN)
    assert fn.allows("sqs:SendMessage", "arn:aws:sqs:eu-west-1:1:q")
    assert not fn.allows("kinesis:PutRecord", "arn:aws:sqs:eu-west-1:1:q")


def test_a_conditional_allow_grants_nothing():
    fn = role({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*",
               "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}})
    assert not fn.allows("dynamodb:GetItem", TABLE_ARN)


def test_what_a_request_asks_for():
    transaction = {"TransactItems": [
        {"Put": {"TableName": TABLE, "Item": {}}}, {"Update": {"TableName": TABLE, "Key": {}}},
        {"ConditionCheck": {"TableName": TABLE, "Key": {}}}]}
    assert requests_of("dynamodb", "TransactWriteItems", "/", transaction, REGION) == [
        ("dynamodb:PutItem", TABLE_ARN), ("dynamodb:UpdateItem", TABLE_ARN), ("dynamodb:ConditionCheckItem", TABLE_ARN)]
    query = {"TableName": TABLE, "IndexName": "byOwner"}
    assert requests_of("dynamodb", "Query", "/", query, REGION) == [("dynamodb:Query", TABLE_ARN + "/index/byOwner")]
    put = {"StreamName": "audio"}
    assert requests_of("kinesis", "PutRecord", "/", put, REGION) == [
        ("kinesis:PutRecord", f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/audio")]
    start = {"stateMachineArn": "arn:aws:states:x"}
    assert requests_of("states", "StartExecution", "/", start, REGION) == [("states:StartExecution", "arn:aws:states:x")]
    invoke = "/2015-03-31/functions/local-Fn/invocations"
    assert operation_of({}, invoke, b"") == ("lambda", "InvokeFunction")
    assert requests_of("lambda", "InvokeFunction", invoke, {}, REGION) == [
        ("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:local-Fn")]
    assert operation_of({"X-Amz-Target": "DynamoDB_20120810.GetItem"}, "/", b"") == ("dynamodb", "GetItem")



def test_what_an_s3_request_asks_for_signed_or_presigned():
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=ASIAKEY/20261207/eu-west-1/s3/aws4_request, "
                               "SignedHeaders=host, Signature=x"}
    path = "/chunks-bucket/chunks/s/en/1.wav"
    assert operation_of(signed, path, b"RIFF", "PUT", {"x-id": "PutObject"}) == ("s3", "PutObject")
    presigned = {"X-Amz-Credential": "ASIAKEY/20261207/eu-west-1/s3/aws4_request", "X-Amz-Signature": "x"}
    assert operation_of({}, path, b"", "GET", presigned) == ("s3", "GetObject")
    assert requests_of("s3", "GetObject", path, {}, REGION) == [("s3:GetObject", "arn:aws:s3:::chunks-bucket/chunks/s/en/1.wav")]
    # Bucket-level and multipart requests are no object read or write: no role here grants them.
    assert operation_of(signed, "/chunks-bucket", b"", "GET", {}) == ("s3", "S3Request")
    assert operation_of(signed, path, b"", "POST", {"uploads": ""}) == ("s3", "S3Request")
    # Unsigned, or signed for another service: not read as S3.
    assert operation_of({}, path, b"", "GET", {}) is None


def test_a_presigned_url_is_held_to_the_role_of_the_function_that_signed_it():
    role = Role("Fn", "local-Fn", "local-FnRole", (Statement.parse(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/chunks/*"}, "t"),))
    iam = Iam({"Fn": role})
    query = {"X-Amz-Credential": f"{access_key_for('Fn')}/20261207/eu-west-1/s3/aws4_request"}
    assert iam.role_of({}, query) is role
    assert iam.denial({}, [("s3:GetObject", "arn:aws:s3:::b/chunks/x.wav")], query) is None
    assert "s3:GetObject" in iam.denial({}, [("s3:GetObject", "arn:aws:s3:::b/other.wav")], query)


@pytest.fixture(scope="module")
def template_roles() -> dict[str, Role]:
    template = Template.load(ROOT / "template.yaml")
    physical = {"SessionsTable": Physical("local-SessionsTable", {
        "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/local-SessionsTable",
        "StreamArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/local-SessionsTable/stream/x"})}
    return function_roles(template, physical)


def test_each_function_gets_exactly_its_role_from_the_template(template_roles):
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/local-SessionsTable"
    delete = template_roles["DeleteSessionFunction"]
    assert delete.allows("dynamodb:UpdateItem", table) and not delete.allows("dynamodb:GetItem", table)
    assert delete.allows("logs:PutLogEvents", "arn:aws:logs:x")  # SAM's AWSLambdaBasicExecutionRole
    assert not template_roles["GetSessionFunction"].allows("dynamodb:UpdateItem", table)
    assert template_roles["WsSendAudioFunction"].allows(
        "kinesis:PutRecord", f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/local-AudioStream")
    assert not template_roles["WsHeartbeatFunction"].allows("dynamodb:GetItem", table)
    assert set(template_roles) == set(Template.load(ROOT / "template.yaml").resources_of_type(
        "AWS::Serverless::Function"))


def test_a_managed_policy_the_local_stack_does_not_know_is_refused_at_start():
    template = Template(load_yaml("""
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/get_session
      Handler: app.lambda_handler
      Runtime: python3.13
      Policies: [arn:aws:iam::aws:policy/AdministratorAccess]
"""), ROOT)
    with pytest.raises(TemplateError, match="AdministratorAccess is unknown to the local stack"):
        function_roles(template, {})


def test_only_a_key_naming_a_function_is_checked_and_only_while_enforced():
    roles = {"Fn": role({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE_ARN})}
    signed = {"Authorization": f"AWS4-HMAC-SHA256 Credential={access_key_for('Fn')}/20261128/{REGION}/dynamodb/"
                               f"aws4_request, SignedHeaders=host, Signature=x"}
    developer = {"Authorization": signed["Authorization"].replace(access_key_for("Fn"), "AKIADEVELOPER")}
    asked = [("dynamodb:PutItem", TABLE_ARN)]
    assert "is not authorized to perform: dynamodb:PutItem" in Iam(roles).denial(signed, asked)
    assert Iam(roles).denial(developer, asked) is None
    assert Iam(roles, enforce=False).denial(signed, asked) is None


# ------------------------------------------------------------------- through the proxy, for real


class SlowUpstream:
    """Stands in for moto: answers every request after `hold` seconds, and counts what reached it."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.received: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(request.headers.get("X-Amz-Target", request.path))
        await asyncio.sleep(self.hold)
        return web.json_response({}, content_type="application/x-amz-json-1.0")


async def _with_proxy(scenario, *, conflicts: bool = True, roles: dict | None = None, hold: float = 0.3):
    upstream = SlowUpstream(hold)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    proxy = AwsProxy(f"http://127.0.0.1:{runner.addresses[0][1]}", invoker=None, functions_by_name={},
                     region=REGION)
    proxy.iam = Iam(roles or {})
    proxy.conflicts = TransactionConflicts({TABLE: ("pk", "sk")}) if conflicts else None
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as http:
            return await scenario(http, proxy.endpoint, upstream)
    finally:
        await proxy.stop()
        await runner.cleanup()


async def _call(http: aiohttp.ClientSession, endpoint: str, operation: str, payload: dict,
                key: str = "AKIADEVELOPER") -> tuple[int, dict]:
    headers = {"X-Amz-Target": f"DynamoDB_20120810.{operation}", "Content-Type": "application/x-amz-json-1.0",
               "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20261128/{REGION}/dynamodb/aws4_request"}
    async with http.post(endpoint + "/", data=json.dumps(payload), headers=headers) as response:
        return response.status, json.loads(await response.read() or b"{}")


SESSION = {"pk": {"S": "SESSION#golden-eagle-427"}, "sk": {"S": "META"}}
OTHER = {"pk": {"S": "SESSION#golden-eagle-427"}, "sk": {"S": "CONN#abc"}}


def transaction(*keys: dict) -> dict:
    return {"TransactItems": [{"Update": {"TableName": TABLE, "Key": key, "UpdateExpression": "SET a = :a"}}
                              for key in keys]}


def test_concurrent_transactions_on_one_item_conflict():
    async def scenario(http, endpoint, upstream):
        first = asyncio.ensure_future(_call(http, endpoint, "TransactWriteItems", transaction(SESSION)))
        await asyncio.sleep(0.1)  # the first is running
        second = await _call(http, endpoint, "TransactWriteItems", transaction(OTHER, SESSION))
        other_item = await _call(http, endpoint, "TransactWriteItems", transaction(OTHER))
        return await first, second, other_item, list(upstream.received)

    first, second, other_item, received = asyncio.run(_with_proxy(scenario))
    assert first[0] == 200 and other_item[0] == 200
    status, body = second
    assert status == 400 and body["__type"].endswith("#TransactionCanceledException")
    assert [r["Code"] for r in body["CancellationReasons"]] == ["None", "TransactionConflict"]
    assert len(received) == 2  # the cancelled one never reached DynamoDB


def test_a_plain_write_to_an_item_inside_a_running_transaction_fails():
    async def scenario(http, endpoint, upstream):
        running = asyncio.ensure_future(_call(http, endpoint, "TransactWriteItems", transaction(SESSION)))
        await asyncio.sleep(0.1)
        during = await asyncio.gather(
            _call(http, endpoint, "UpdateItem", {"TableName": TABLE, "Key": SESSION}),
            _call(http, endpoint, "PutItem", {"TableName": TABLE, "Item": {**SESSION, "status": {"S": "x"}}}),
            _call(http, endpoint, "DeleteItem", {"TableName": TABLE, "Key": OTHER}))
        await running
        after = await _call(http, endpoint, "UpdateItem", {"TableName": TABLE, "Key": SESSION})
        return during, after

    during, after = asyncio.run(_with_proxy(scenario))
    assert [(s, b.get("__type", "").rsplit("#", 1)[-1]) for s, b in during] == [
        (400, "TransactionConflictException"), (400, "TransactionConflictException"), (200, "")]
    assert after[0] == 200  # the item is free once the transaction is answered


def test_with_conflicts_switched_off_concurrent_transactions_both_pass():
    async def scenario(http, endpoint, upstream):
        return await asyncio.gather(*(_call(http, endpoint, "TransactWriteItems", transaction(SESSION))
                                      for _ in range(2)))

    assert [status for status, _ in asyncio.run(_with_proxy(scenario, conflicts=False))] == [200, 200]


def test_a_function_is_refused_what_its_role_does_not_allow_before_dynamodb_sees_it():
    roles = {"Fn": role({"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": TABLE_ARN})}

    async def scenario(http, endpoint, upstream):
        denied = await _call(http, endpoint, "GetItem", {"TableName": TABLE, "Key": SESSION}, access_key_for("Fn"))
        allowed = await _call(http, endpoint, "UpdateItem", {"TableName": TABLE, "Key": SESSION}, access_key_for("Fn"))
        return denied, allowed, list(upstream.received)

    denied, allowed, received = asyncio.run(_with_proxy(scenario, roles=roles, hold=0))
    assert denied[0] == 400 and denied[1]["__type"].endswith("#AccessDeniedException")
    assert "dynamodb:GetItem on resource: " + TABLE_ARN in denied[1]["Message"]
    assert allowed[0] == 200 and received == ["DynamoDB_20120810.UpdateItem"]


def test_the_faults_hook_fails_the_next_calls_of_one_operation():
    async def scenario(http, endpoint, upstream):
        async with http.post(endpoint + "/@faults", json={"operation": "GetItem", "count": 2}) as r:
            assert r.status == 204
        async with http.post(endpoint + "/@faults", json={"operation": "GetItem", "count": -1}) as r:
            assert r.status == 400
        results = [await _call(http, endpoint, "GetItem", {"TableName": TABLE, "Key": SESSION}) for _ in range(3)]
        other = await _call(http, endpoint, "PutItem", {"TableName": TABLE, "Item": SESSION})
        return [s for s, _ in results], other[0]

    assert asyncio.run(_with_proxy(scenario, hold=0)) == ([500, 500, 200], 200)
