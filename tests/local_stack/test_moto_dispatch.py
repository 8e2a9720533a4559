"""moto's server calls the DynamoDB and Kinesis handlers without its Flask app (local_stack/moto_server.py,
dispatch_json_protocols_directly), and answers exactly as through Flask: the same status, headers and body
for successes and for the errors the functions rely on (ConditionalCheckFailed, ResourceNotFound,
ValidationException, TransactionCanceled)."""

from __future__ import annotations

import json
from unittest import mock

import flask
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from local_stack.moto_server import dispatch_json_protocols_directly

AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/eu-west-1/{}/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0")
KEY = {"pk": {"S": "a"}}
SETUP = [
    ("dynamodb", "CreateTable", {"TableName": "t", "BillingMode": "PAY_PER_REQUEST",
                                 "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                                 "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}),
    ("kinesis", "CreateStream", {"StreamName": "s", "ShardCount": 1}),
]
CALLS = [
    ("dynamodb", "PutItem", {"TableName": "t", "Item": {**KEY, "n": {"N": "1"}}}),
    ("dynamodb", "GetItem", {"TableName": "t", "Key": KEY}),
    ("dynamodb", "UpdateItem", {"TableName": "t", "Key": KEY, "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValues": "ALL_NEW"}),
    ("dynamodb", "PutItem", {"TableName": "t", "Item": KEY, "ConditionExpression": "attribute_not_exists(pk)"}),
    ("dynamodb", "GetItem", {"TableName": "missing", "Key": KEY}),
    ("dynamodb", "Query", {"TableName": "t", "KeyConditionExpression": "pk = :k",
                           "ExpressionAttributeValues": {":k": {"S": "a"}}}),
    ("dynamodb", "Query", {"TableName": "t", "KeyConditionExpression": "pk = :k"}),  # :k undefined
    ("dynamodb", "TransactWriteItems", {"TransactItems": [
        {"ConditionCheck": {"TableName": "t", "Key": KEY, "ConditionExpression": "attribute_not_exists(pk)"}}]}),
    ("dynamodb", "DeleteItem", {"TableName": "t", "Key": KEY, "ReturnValues": "ALL_OLD"}),
    ("kinesis", "PutRecord", {"StreamName": "s", "Data": "AAAA", "PartitionKey": "p"}),
    ("kinesis", "PutRecord", {"StreamName": "missing", "Data": "AAAA", "PartitionKey": "p"}),
    ("kinesis", "GetShardIterator", {"StreamName": "s", "ShardId": "shardId-000000000000",
                                     "ShardIteratorType": "NOT_A_TYPE"}),
]
TARGETS = {"dynamodb": "DynamoDB_20120810", "kinesis": "Kinesis_20131202"}
VARYING = {"date", "x-amzn-requestid", "x-amz-id-2", "x-amz-crc32"}  # per request, or a checksum of a new id


@pytest.fixture(scope="module")
def patched():
    original = DomainDispatcherApplication.__call__
    dispatch_json_protocols_directly()
    yield DomainDispatcherApplication.__call__.original
    DomainDispatcherApplication.__call__ = original


def _ask(client: Client, service: str, operation: str, payload: dict):
    content_type = "application/x-amz-json-1.0" if service == "dynamodb" else "application/x-amz-json-1.1"
    answer = client.post("/", data=json.dumps(payload), headers={
        "X-Amz-Target": f"{TARGETS[service]}.{operation}", "Content-Type": content_type,
        "Authorization": AUTH.format(service), "X-Amz-Date": "20250101T000000Z"})
    headers = sorted((k.lower(), v) for k, v in answer.headers.items() if k.lower() not in VARYING)
    body = answer.get_data()
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return answer.status_code, headers, body


def _reset(app) -> None:
    Client(app).post("/moto-api/reset")  # moto's own API: through Flask


def _session(app) -> list:
    client = Client(app)
    for call in SETUP:
        assert _ask(client, *call)[0] == 200
    return [_ask(client, *call) for call in CALLS]


def test_json_protocols_answer_as_through_flask_without_it(patched):
    app = DomainDispatcherApplication(create_backend_app)
    with mock.patch.object(DomainDispatcherApplication, "__call__", patched):
        _reset(app)
        through_flask = _session(app)
    _reset(app)
    with mock.patch.object(flask.Flask, "wsgi_app", side_effect=AssertionError("went through Flask")):
        direct = _session(app)
    statuses = [status for status, _, _ in direct]
    assert statuses == [200, 200, 200, 400, 400, 200, 400, 400, 200, 200, 400, 400]
    errors = [body.get("__type", "") for status, _, body in direct if status == 400]
    assert any("ConditionalCheckFailed" in e for e in errors) and any("ResourceNotFound" in e for e in errors)
    assert any("TransactionCanceled" in e for e in errors) and any("ValidationException" in e for e in errors)
    assert direct == through_flask


def test_other_services_and_browser_requests_still_go_through_flask(patched):
    app = DomainDispatcherApplication(create_backend_app)
    client = Client(app)
    with mock.patch.object(flask.Flask, "wsgi_app", side_effect=AssertionError("went through Flask")):
        with pytest.raises(AssertionError, match="went through Flask"):
            client.post("/", data="{}", headers={"X-Amz-Target": "DynamoDB_20120810.ListTables",
                                                 "Authorization": AUTH.format("dynamodb"),
                                                 "Origin": "http://localhost:5173"})
        with pytest.raises(AssertionError, match="went through Flask"):
            client.post("/", data="{}", headers={"X-Amz-Target": "AWSStepFunctions.ListStateMachines",
                                                 "Authorization": AUTH.format("states")})
