"""Finding the service: the local stack's stack.json and CloudFormation outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from botocore.stub import Stubber
from broadcast_client import CognitoTokenProvider, ConfigurationError, load_local_config, load_stack_config

STACK_JSON = {
    "pid": os.getpid(),
    "httpApiUrl": "http://127.0.0.1:3000/dev",
    "webSocketUrl": "ws://127.0.0.1:3001/dev",
    "awsEndpointUrl": "http://127.0.0.1:4566",
    "region": "eu-west-1",
    "userPoolId": "eu-west-1_abc",
    "userPoolClientId": "client123",
    "users": [{"name": "alice", "username": "alice", "email": "alice@example.com", "password": "Alice-Pass-1"},
              {"name": "bob", "username": "bob@example.com", "email": "bob@example.com", "password": "Bob-Pass-1"}],
}


def write(tmp_path, info: dict) -> str:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(info))
    return str(path)


def test_local_config_reads_stack_json(tmp_path):
    path = write(tmp_path, STACK_JSON)

    config = load_local_config(path)

    assert (config.http_api_url, config.websocket_url, config.region) == (
        "http://127.0.0.1:3000/dev", "ws://127.0.0.1:3001/dev", "eu-west-1")
    assert (config.user_pool_client_id, config.cognito_endpoint_url) == ("client123", "http://127.0.0.1:4566")
    assert [u.name for u in config.users] == ["alice", "bob"]
    assert config.cli_args == ("--local", path)
    assert "Alice-Pass-1" not in repr(config)


def test_local_users_fill_in_credentials(tmp_path):
    config = load_local_config(write(tmp_path, STACK_JSON))

    first = config.token_provider()
    bob = config.token_provider("bob")

    assert isinstance(first, CognitoTokenProvider)
    assert (first.username, first.client_id) == ("alice", "client123")
    assert bob.username == "bob@example.com"  # the sign-in name, found by short name
    assert first._client.meta.endpoint_url == "http://127.0.0.1:4566"


def test_a_stack_without_a_websocket_url_says_so_when_one_is_needed(tmp_path):
    config = load_local_config(write(tmp_path, {k: v for k, v in STACK_JSON.items() if k != "webSocketUrl"}))

    assert config.websocket_url is None
    with pytest.raises(ConfigurationError, match="WebSocket URL"):
        config.websocket_client("golden-eagle-427")


def test_a_missing_stack_file_says_how_to_start_one(tmp_path):
    with pytest.raises(ConfigurationError, match="make dev"):
        load_local_config(tmp_path / "nope.json")


def test_a_stack_file_left_by_a_stopped_stack_is_refused(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    path = write(tmp_path, {**STACK_JSON, "pid": int(finished.stdout)})

    with pytest.raises(ConfigurationError, match="not running"):
        load_local_config(path)


def test_an_incomplete_stack_file_names_what_is_missing(tmp_path):
    path = write(tmp_path, {**STACK_JSON, "userPoolClientId": ""})
    with pytest.raises(ConfigurationError, match="userPoolClientId"):
        load_local_config(path)


def test_credentials_are_required_without_local_users(tmp_path):
    config = load_local_config(write(tmp_path, {**STACK_JSON, "users": []}))
    with pytest.raises(ConfigurationError, match="--username"):
        config.token_provider()


# ------------------------------------------------------------- CloudFormation


def cloudformation():
    client = boto3.client("cloudformation", region_name="eu-west-1")
    return client, Stubber(client)


def test_stack_config_comes_from_the_outputs():
    client, stub = cloudformation()
    outputs = {"HttpApiUrl": "https://h.execute-api.eu-west-1.amazonaws.com/dev",
               "WebSocketUrl": "wss://w.execute-api.eu-west-1.amazonaws.com/dev",
               "UserPoolId": "eu-west-1_pool", "UserPoolClientId": "client9", "Region": "eu-west-1"}
    stub.add_response("describe_stacks", {"Stacks": [{
        "StackName": "broadcast", "CreationTime": "2025-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]},
        {"StackName": "broadcast"})

    with stub:
        config = load_stack_config("broadcast", "eu-west-1", client=client)

    assert (config.http_api_url, config.websocket_url) == (outputs["HttpApiUrl"], outputs["WebSocketUrl"])
    assert (config.user_pool_client_id, config.user_pool_id, config.region) == ("client9", "eu-west-1_pool",
                                                                                "eu-west-1")
    assert config.cognito_endpoint_url is None and config.users == ()
    assert config.cli_args == ("--stack", "broadcast", "--region", "eu-west-1")


def test_an_unknown_stack_is_a_readable_error():
    client, stub = cloudformation()
    stub.add_client_error("describe_stacks", service_error_code="ValidationError",
                          service_message="Stack with id nope does not exist", http_status_code=400)
    with stub, pytest.raises(ConfigurationError, match="Stack nope does not exist in eu-west-1"):
        load_stack_config("nope", "eu-west-1", client=client)


def test_a_stack_of_something_else_is_refused():
    client, stub = cloudformation()
    stub.add_response("describe_stacks", {"Stacks": [{
        "StackName": "other", "CreationTime": "2025-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": "BucketName", "OutputValue": "b"}]}]})
    with stub, pytest.raises(ConfigurationError, match="HttpApiUrl, UserPoolClientId"):
        load_stack_config("other", "eu-west-1", client=client)
